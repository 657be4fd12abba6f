"""No unsafe loading or shell use in the project's own code (a scan; the behaviour is tested elsewhere).

User files are read as JSON, TOML, safetensors, ONNX/TFLite and numpy without
pickle; remote commands are argument lists quoted by shlex (tests/test_deploy.py
sends spaces, quotes, $ and backticks through a real shell and sshd).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for d in ("edgekit", "export", "device_runners", "benchmarks") for p in (ROOT / d).rglob("*.py"))

FORBIDDEN = {
    r"\bimport pickle\b|\bpickle\.load": "pickle",
    r"torch\.load\((?![^)]*weights_only=True)": "torch.load without weights_only=True",
    r"allow_pickle\s*=\s*True": "numpy allow_pickle=True",
    r"shell\s*=\s*True": "subprocess with shell=True",
    r"\bos\.system\(|\bos\.popen\(": "os.system/os.popen",
    r"(?<![.\w])(eval|exec)\(": "eval/exec",
    r"\.extractall\((?![^)]*filter=)": "tar extraction without a filter",
}


@pytest.mark.parametrize("pattern", FORBIDDEN, ids=list(FORBIDDEN.values()))
def test_no_unsafe_calls(pattern: str) -> None:
    hits = [
        f"{p.relative_to(ROOT)}:{i}"
        for p in SOURCES
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if re.search(pattern, line) and not line.lstrip().startswith("#")
    ]
    assert not hits, f"{FORBIDDEN[pattern]}: {hits}"


def test_scan_sees_the_code() -> None:
    assert len(SOURCES) > 30 and any(p.name == "deploy.py" for p in SOURCES)
