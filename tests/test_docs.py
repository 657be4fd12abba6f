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


def test_each_budget_names_its_best_variant_by_kind() -> None:
    def row(name: str, mb: float, f1: float, float_activations: tuple[str, ...] = ()) -> dict:
        return {"name": name, "size_mb": mb, "f1": f1, "f1_kept": f1 / 80, "float_activations": list(float_activations)}

    d = {
        "budgets_mb": [25.0, 50.0],
        "teacher_f1": 80.0,
        "rows": [
            row("s-int8-onnx", 20, 70.0),
            row("m-int4-onnx", 40, 77.0),
            row("m-int8-onnx", 49, 74.0),
            row("m-int8-onnx-float-act", 49, 75.0, ("output/dense",)),
            row("m-int8-onnx-over", 60, 79.0),
            row("s-vocab8000-int8-onnx", 12, 65.0),
            row("s-fp32-onnx", 90, 71.0),
            row("m-fp32-onnx", 260, 78.0),
        ],
    }
    lines = results_doc._best_within(d)
    assert [line.split(":")[0] for line in lines] == [
        "- best within 25 MB",
        "- the same students before quantization or pruning",
        "- best within 50 MB",
        "- best within 50 MB with int8 layers",
        "- best within 50 MB with int8 weights, float activations into some products",
        "- the same students before quantization or pruning",
    ]
    assert "best s-fp32-onnx (90.0 MB), F1 71.00 = 88.8%" in lines[1] and "best m-fp32-onnx" in lines[5]
    assert "m-int8-onnx (49.0 MB), F1 74.00 = 92.5%" in lines[3] and "m-int8-onnx-float-act" in lines[4]
    assert "90% is 72.00: held; 95% is 76.00: 2.00 F1 short" in lines[3]


def test_the_product_names_no_folder_of_this_workspace() -> None:
    """Datasets and teachers reach the product through flags, hub names and environment variables; only the
    tests' and benchmarks' own configuration knows where this workspace keeps them."""
    workspace = re.compile(r"\.\./shared\b|\bshared/(data|models|docs)\b|[\"']shared[\"']")
    hits = [
        f"{p.relative_to(ROOT)}:{i}"
        for d in ("edgekit", "export", "device_runners")
        for p in (ROOT / d).rglob("*")
        if p.is_file() and p.suffix in (".py", ".toml", ".sh", ".md", ".txt")
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if workspace.search(line)
    ]
    assert not hits, hits
