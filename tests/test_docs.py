"""The pages a user reads: generated from the results files, short, and about the software."""

from __future__ import annotations

import re
from pathlib import Path

from benchmarks import results_doc

ROOT = Path(__file__).resolve().parents[1]
TEXTS = [
    ROOT / "README.md",
    *(ROOT / "docs").glob("*.md"),
    *(p for ext in ("md", "log") for p in (ROOT / "benchmarks" / "results").rglob(f"*.{ext}")),
]
SOURCES = [p for d in ("edgekit", "export", "device_runners", "benchmarks", "tests") for p in (ROOT / d).rglob("*.py")]


def test_results_pages_match_the_results_files() -> None:
    """docs/results.md and the README's table are exactly what `python -m benchmarks.results_doc` writes now."""
    assert results_doc.main(["--check"]) == 0, "run `python -m benchmarks.results_doc`"


def test_the_readme_is_short() -> None:
    assert len((ROOT / "README.md").read_text().splitlines()) <= 300


def test_the_project_speaks_of_itself_not_of_the_work_process() -> None:
    words = re.compile(r"\bstop \d+\b|\b(across|two|next|earlier) sessions\b|\bseed paper\b|\bthe seed's\b", re.I)
    hits = [
        f"{p.relative_to(ROOT)}:{i}"
        for p in [*TEXTS, *SOURCES]
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if words.search(line) and p.name != "test_docs.py"
    ]
    assert not hits, hits
