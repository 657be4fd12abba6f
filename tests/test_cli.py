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
        with pytest.raises(SystemExit) as exit_:  # argparse's refusal, in one line
            main(["run", str(minilm_bundle.path), "--dataset", str(dev_path), "--out", str(tmp_path), flag, value])
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert f"argument {flag}: expected a whole number from 1" in err and err.count("\n") == 1, err


def test_unwritable_output_directory(tmp_path, minilm_bundle, dev_path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    code = main(["run", str(minilm_bundle.path), "--dataset", str(dev_path), "--out", str(blocker / "sub")])
    assert code == 2 and f"a path through directories; {blocker} is a file" in capsys.readouterr().err


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


def _every_parser() -> list[argparse.ArgumentParser]:
    """``edgekit``'s parser with every workstation command's, every sub-command's, and the other entry points'."""
    from edgekit.device_runners.desktop import sweep
    from edgekit.export import distill

    found, stack = [], [build_parser(name) for name in [None, *WORKSTATION_COMMANDS]]
    for module in (sweep, distill):  # their own parsers, built as their main() builds them
        parser = None

        def grab(p, *args, **kwargs):
            nonlocal parser
            parser = p
            raise SystemExit(0)

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(argparse.ArgumentParser, "parse_args", grab)
            with pytest.raises(SystemExit):
                module.main([])
        stack.append(parser)
    while stack:
        p = stack.pop()
        found.append(p)
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                stack.extend(action.choices.values())
    return found


HOSTILE_NUMBERS = ["nan", "inf", "-inf", "", "x", "1e400", "0x10", "1" + "0" * 5000]


def test_every_number_a_command_takes_is_bounded() -> None:
    """No flag takes a bare int or float (0 threads, -1 copies, NaN tolerance, 10^20 windows would pass it and fail
    later, or never): each has bounds, refuses NaN, infinity, text and out-of-range values at parse time, and
    accepts its bounds and its default."""
    actions = [(p.prog, a) for p in _every_parser() for a in p._actions]
    bare = [f"{prog} {a.dest}" for prog, a in actions if a.type in (int, float) and a.choices is None]
    assert not bare
    bounded = [(prog, a) for prog, a in actions if hasattr(a.type, "bounds")]
    assert len({(prog, a.dest) for prog, a in bounded}) >= 30
    for prog, a in bounded:
        low, high = a.type.bounds
        step = 1 if isinstance(low, int) else 1e-3 * max(1.0, abs(high))
        for bad in [*HOSTILE_NUMBERS, str(low - step), str(high + step)]:
            with pytest.raises(argparse.ArgumentTypeError, match="expected"):
                a.type(bad)
        assert a.type(str(low)) == low and a.type(str(high)) == high, (prog, a.dest)
        for default in a.default if isinstance(a.default, list) else [a.default]:
            assert default is None or low <= default <= high, (prog, a.dest, default)


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "b", "--out", "o", "--threads", "0"],
        ["run", "b", "--out", "o", "--warmup", "nan"],
        ["export", "augment-questions", "b", "o", "--seed", "-1"],
        ["export", "int8", "b", "o", "--calibration-windows", "1e400"],
        ["deploy", "ssh://h", "b", "--out", "o", "--jobs", "0"],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_a_number_out_of_range_is_one_line_before_any_work(argv: list[str], tmp_path) -> None:
    proc = subprocess.run([sys.executable, "-m", "edgekit.cli", *argv], capture_output=True, text=True, cwd=tmp_path)
    [line] = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and "expected a" in line and "--help" in line and not list(tmp_path.iterdir())


WITHOUT_TORCH = (
    "import sys\n"
    "for name in ('torch', 'transformers', 'optimum', 'datasets'):\n"
    "    sys.modules[name] = None  # imported: ModuleNotFoundError, as on an install without the export extra\n"
    "from edgekit.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def test_an_install_without_the_export_extra_says_so_and_still_reports(tmp_path, tiny_bundle) -> None:
    """The wheel's device side, or the runner and report extras alone: a workstation command that needs torch
    says which extra to install in one line (exit 2), even for --help; report needs only matplotlib."""
    from edgekit.runner import RunConfig, run

    run(tiny_bundle.path, "packaged:dev", tmp_path / "run", RunConfig(limit=2, warmup=0, progress=False))
    for argv in (["distill", "--help"], ["export", "onnx", "packaged:all-MiniLM-L6-v2", str(tmp_path / "b")]):
        proc = subprocess.run([sys.executable, "-c", WITHOUT_TORCH, *argv], capture_output=True, text=True)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert "needs torch" in proc.stderr and "pip install 'edgekit-kd[export]'" in proc.stderr
    for argv in (["report", "--help"], ["report", str(tmp_path / "run"), "--out", str(tmp_path / "rep")]):
        proc = subprocess.run([sys.executable, "-c", WITHOUT_TORCH, *argv], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "rep" / "report.md").is_file() and not (tmp_path / "b").exists()
