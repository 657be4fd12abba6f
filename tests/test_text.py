"""Outside text shown safely: one terminal line, one Markdown cell."""

from __future__ import annotations

import subprocess
import sys

from edgekit.text import md_cell, md_row, one_line


def test_one_line_escapes_control_characters_and_keeps_the_rest() -> None:
    assert one_line("a\nb\r\x1b[2Jc\t") == "a\\nb\\r\\x1b[2Jc\\t"
    assert one_line("café ✓ 日本") == "café ✓ 日本"
    assert one_line("x" * 50, limit=10) == "xxxxxxx..."


def test_a_markdown_cell_cannot_end_itself_or_open_html() -> None:
    assert md_cell("a|b") == "a\\|b"
    assert md_cell("a\\|b") == "a\\\\\\|b"  # the backslash is escaped too: the pipe stays escaped
    assert md_cell("<script>") == "&lt;script&gt;"
    assert md_row(["x|y", 1.5]) == "| x\\|y | 1.5 |"


def test_a_refusal_naming_a_file_with_control_characters_stays_one_line(tiny_bundle, tmp_path) -> None:
    data = tmp_path / "bad\x1b[31m\nname.json"
    data.write_text("{not json")
    r = subprocess.run(
        [sys.executable, "-m", "edgekit.cli", "run", str(tiny_bundle.path), "--dataset", str(data), "--out",
         str(tmp_path / "out")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 2
    [line] = r.stderr.strip().splitlines()
    assert "\x1b" not in line and "bad\\x1b[31m\\nname.json" in line


def test_a_write_that_fails_without_a_file_name_names_the_destination(
    monkeypatch, tiny_bundle, tmp_path, capsys
) -> None:
    """Disk full: ``write()`` raises ENOSPC naming no file; the one line names the --out the user gave."""
    import errno

    import edgekit.runner
    from edgekit.cli import main

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(edgekit.runner, "run", full)
    out = tmp_path / "out"
    assert main(["run", str(tiny_bundle.path), "--out", str(out)]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line == f"edgekit: error: {out}: expected a usable path (No space left on device)"
