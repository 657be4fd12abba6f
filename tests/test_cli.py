"""The command line: --help everywhere, one-line errors with exit 2."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from edgekit.cli import WORKSTATION_COMMANDS, build_parser, main

COMMANDS = [
    [],
    ["score"],
    ["run"],
    ["verify"],
    ["export"],
    ["export", "onnx"],
    ["export", "fuse"],
    ["export", "int8"],
    ["distill"],
    ["deploy"],
    ["report"],
    ["demo"],
]


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c) or "edgekit")
def test_help(cmd: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*cmd, "--help"])
    assert exit_.value.code == 0
    assert "usage: edgekit" in capsys.readouterr().out


def test_console_script_installed() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "edgekit.cli", "--version"], capture_output=True, text=True, check=True
    )
    assert proc.stdout.startswith("edgekit ")


def test_user_error_is_one_line_exit_2(tmp_path, capsys) -> None:
    bad = tmp_path / "pred.json"
    bad.write_text("[1]")
    code = main(["score", "--dataset", str(tmp_path / "missing.json"), "--predictions", str(bad)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("edgekit: error: ") and "missing.json" in err and "Traceback" not in err


def test_bad_threads_and_limit(tmp_path, minilm_bundle, dev_path, capsys) -> None:
    for flag, value in (("--threads", "0"), ("--limit", "0")):
        code = main(["run", str(minilm_bundle.path), "--dataset", str(dev_path), "--out", str(tmp_path), flag, value])
        assert code == 2
        err = capsys.readouterr().err
        assert f"{flag[2:]}=0: expected a" in err and err.count("\n") == 1, err


def test_unwritable_output_directory(tmp_path, minilm_bundle, dev_path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    code = main(["run", str(minilm_bundle.path), "--dataset", str(dev_path), "--out", str(blocker / "sub")])
    assert code == 2 and "a writable directory" in capsys.readouterr().err


def test_export_int8_weights_are_7_bit_unless_full_range(tmp_path, tiny_bundle) -> None:
    """The CLI's settings reach the quantizer and are recorded in the manifest."""
    from edgekit.bundle import load_bundle

    for flags, seven_bit in (([], True), (["--full-range", "--per-tensor"], False)):
        out = tmp_path / f"int8-{seven_bit}"
        assert main(["export", "int8", str(tiny_bundle.path), str(out), *flags]) == 0
        q = load_bundle(out).manifest.source["quantization"]
        assert q["reduce_range"] is seven_bit and q["per_channel"] is seven_bit and q["weight_type"] == "qint8"


def test_results_record_a_rerunnable_command(tmp_path, tiny_bundle, dev_path) -> None:
    """metrics.json says ``edgekit run ...``, not the path of the script on the machine that ran it."""
    import json

    argv = ["run", str(tiny_bundle.path), "--dataset", str(dev_path), "--out", str(tmp_path), "--limit", "2"]
    assert main([*argv, "--no-progress"]) == 0
    assert json.loads((tmp_path / "metrics.json").read_text())["command"] == ["edgekit", *argv, "--no-progress"]


def test_export_static_int8_records_its_calibration_data(tmp_path, tiny_bundle, train_path) -> None:
    from edgekit.bundle import load_bundle

    out = tmp_path / "static"
    flags = ["--static", "minmax", "--calibration-data", str(train_path), "--calibration-windows", "4"]
    assert main(["export", "int8", str(tiny_bundle.path), str(out), *flags]) == 0
    q = load_bundle(out).manifest.source["quantization"]
    assert q["calibration"] == "minmax" and q["calibration_data"] == f"4 windows of {train_path.name}"


def _parsers(parser: argparse.ArgumentParser, name: str = "edgekit"):
    """Every parser under ``parser`` (sub-commands and their steps), with its command line."""
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {sub_name}")


@pytest.mark.parametrize("command", [None, *WORKSTATION_COMMANDS])
def test_every_option_says_what_it_does(command) -> None:
    missing = [
        f"{name} {action.dest}"
        for name, parser in _parsers(build_parser(command))
        if command is None or name.startswith(f"edgekit {command}")
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction | argparse._HelpAction) and not action.help
    ]
    assert not missing, f"options without help text: {missing}"
