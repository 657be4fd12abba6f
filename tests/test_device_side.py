"""The device side stands alone: what ``edgekit deploy`` ships runs with only the device's packages.

Each check runs in a fresh interpreter in isolated mode without ``site`` (``-I -S``): its path
holds the files a deploy ships (``device_runners.deploy.stage_code``) and a site directory with
only ``device_runners/requirements.txt`` and its dependencies. Nothing of the checkout, and no
torch, transformers or matplotlib, can be imported there, so a module or a parser that reaches
for the workstation side fails here exactly as it would on a Raspberry Pi.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from device_tools import link_site

from edgekit.cli import DEVICE_COMMANDS, WORKSTATION_COMMANDS
from edgekit.device_runners import device_requirements
from edgekit.device_runners.deploy import stage_code

WORKSTATION = ("export", "device_runners", "benchmarks", "torch", "transformers", "optimum", "matplotlib")


@pytest.fixture(scope="module")
def device(tmp_path_factory) -> Path:
    """A directory with ``code/`` (what a deploy ships) and ``site/`` (the device's packages only)."""
    root = tmp_path_factory.mktemp("device")
    stage_code(root / "code")
    link_site(device_requirements(), root / "site")
    return root


def on_device(device: Path, program: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``program`` (Python source; ``sys.argv[1:]`` = ``args``) as the device would, from ``device``."""
    boot = (
        "import sys, site; sys.path.insert(0, sys.argv.pop(1)); site.addsitedir(sys.argv.pop(1)); "
        "exec(compile(sys.argv.pop(1), '<device>', 'exec'))"
    )
    argv = [sys.executable, "-I", "-S", "-c", boot, str(device / "code"), str(device / "site"), program, *args]
    return subprocess.run(argv, capture_output=True, text=True, cwd=device, timeout=300)


def edgekit_on_device(device: Path, *args: str) -> subprocess.CompletedProcess:
    return on_device(device, "import runpy; runpy.run_module('edgekit.cli', run_name='__main__')", *args)


def test_every_shipped_module_imports_with_only_the_device_packages(device) -> None:
    program = f"""
import importlib, json, pkgutil, sys
import edgekit, edgekit.cli
names = [m.name for m in pkgutil.walk_packages(edgekit.__path__, "edgekit.")]
for name in names:
    importlib.import_module(name)
edgekit.cli.build_parser()
print(json.dumps({{"modules": names, "edgekit": edgekit.__file__,
                  "workstation": sorted(m for m in sys.modules if m.split(".")[0] in {WORKSTATION!r})}}))
"""
    proc = on_device(device, program)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    assert seen["edgekit"].startswith(str(device / "code"))  # the shipped copy, not the checkout's
    assert seen["workstation"] == []
    assert {"edgekit.cli", "edgekit.runner", "edgekit.backends.onnx", "edgekit.backends.tflite"} <= set(seen["modules"])


def test_the_checkout_and_workstation_libraries_are_out_of_reach(device) -> None:
    """The check above could not pass by accident: the isolated interpreter really lacks them."""
    for name in WORKSTATION:
        proc = on_device(device, f"import {name}")
        assert proc.returncode == 1 and "ModuleNotFoundError" in proc.stderr, name


@pytest.mark.parametrize("command", DEVICE_COMMANDS)
def test_device_commands_have_help_on_the_device(device, command) -> None:
    proc = edgekit_on_device(device, command, "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: edgekit")


@pytest.mark.parametrize("command", sorted(WORKSTATION_COMMANDS))
def test_workstation_commands_are_one_clear_line_on_the_device(device, command) -> None:
    proc = edgekit_on_device(device, command, "--help")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "a workstation command" in proc.stderr, proc.stderr


def test_the_runner_answers_on_the_device(device, tiny_bundle, dev_path, tmp_path) -> None:
    """``edgekit run`` and ``score`` end to end, with only the shipped files and the device's packages."""
    out = tmp_path / "run"
    args = ["run", str(tiny_bundle.path), "--dataset", str(dev_path), "--out", str(out), "--limit", "3"]
    proc = edgekit_on_device(device, *args, "--warmup", "0", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_questions"] == 3 and metrics["backend"] == "onnxruntime"
    proc = edgekit_on_device(
        device, "score", "--dataset", str(dev_path), "--predictions", str(out / "predictions.json")
    )
    assert proc.returncode == 0 and "exact_match" in proc.stdout
