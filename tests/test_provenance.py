"""The recorded command must rerun the result on another machine: module name, not a local path."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from edgekit.provenance import module_command, portable


def test_explicit_arguments_are_kept_in_order() -> None:
    assert module_command("benchmarks.speed", ["--repeats", "5", "a b"]) == [
        "python", "-m", "benchmarks.speed", "--repeats", "5", "a b",
    ]  # fmt: skip


def test_shell_arguments_are_taken_from_argv_without_the_script_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["/home/someone/edgekit/benchmarks/compress.py", "--out", "x"])
    assert module_command("benchmarks.compress") == ["python", "-m", "benchmarks.compress", "--out", "x"]


def test_an_empty_argument_list_is_not_replaced_by_the_process_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["prog", "--leak"])
    assert module_command("m", []) == ["python", "-m", "m"]


def test_a_recorded_command_is_shown_relative_to_the_checkout(tmp_path: Path) -> None:
    root = tmp_path / "work" / "main"
    cmd = [str(root / ".venv/bin/python3"), "-m", "benchmarks.x", str(root / "runs/b"), "--dataset",
           str(tmp_path / "work/shared/data/dev.json"), "--out", "/elsewhere/out", "--n", "5"]  # fmt: skip
    assert portable(cmd, root) == [
        "python", "-m", "benchmarks.x", "runs/b", "--dataset", "../shared/data/dev.json", "--out", "/elsewhere/out",
        "--n", "5",
    ]  # fmt: skip


def test_a_command_is_recorded_relative_to_where_it_ran(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A results file must render the same in every checkout: an absolute data path recorded as given
    would be shown relative in one checkout and absolute in another."""
    root = tmp_path / "work" / "main"
    root.mkdir(parents=True)
    monkeypatch.chdir(root)
    data = str(tmp_path / "work" / "shared" / "data" / "dev.tsv")
    assert module_command("benchmarks.x", ["--dataset", data]) == [
        "python", "-m", "benchmarks.x", "--dataset", "../shared/data/dev.tsv",
    ]  # fmt: skip
