"""The sdist and the wheel built from it, installed into a fresh virtualenv, run far from the checkout.

The sdist is built from a copy of the sources the package is made of, the wheel from the unpacked sdist, and
it is installed with pip (no editable
link back here). Its dependencies are the ones this suite runs on, made importable through a plain path
entry (installing torch into each test venv would take minutes and prove nothing about this wheel); that
path holds no edgekit of its own: the editable install's hook there is a ``.pth`` file, which a path entry
does not run. Every command runs with the working directory in a temporary folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "edgekit", "export", "device_runners", "requirements")

pytestmark = pytest.mark.slow


class Venv:
    def __init__(self, path: Path, cwd: Path) -> None:
        self.path, self.cwd = path, cwd
        self.bin = path / "bin"
        self.env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        self.env["PATH"] = f"{self.bin}{os.pathsep}{self.env['PATH']}"

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        exe = self.bin / argv[0] if (self.bin / argv[0]).exists() else argv[0]
        done = subprocess.run(
            [str(exe), *argv[1:]], cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=600
        )
        if check and done.returncode != 0:
            pytest.fail(f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
        return done


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    # the sdist first, then the wheel from the unpacked sdist, as pip builds one from PyPI
    build_sdist = "import sys; from setuptools import build_meta; print(build_meta.build_sdist(sys.argv[1]))"
    made = subprocess.run(
        [sys.executable, "-c", build_sdist, str(tmp / "sdist")], cwd=src, check=True, capture_output=True, text=True
    )
    with tarfile.open(tmp / "sdist" / made.stdout.split()[-1]) as sdist:
        sdist.extractall(tmp / "unpacked", filter="data")
    (unpacked,) = (tmp / "unpacked").iterdir()
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"), str(unpacked)],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp / "dist").glob("*.whl")
    path = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    site = Path(
        sysconfig.get_path("purelib", vars={"base": str(path), "platbase": str(path)}, scheme="venv")
        if "venv" in sysconfig.get_scheme_names()
        else next(path.glob("lib/python*/site-packages"))
    )
    (site / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run([*pip, "--python", str(path / "bin" / "python"), "install", "--no-deps", str(wheel)], check=True)
    work = tmp / "elsewhere"
    work.mkdir()
    return Venv(path, work)


def test_one_import_root_from_the_wheel_and_no_generic_ones(venv: Venv) -> None:
    code = (
        "import importlib.util, json, edgekit, edgekit.export, edgekit.device_runners; "
        "print(json.dumps({'files': [edgekit.__file__, edgekit.export.__file__, edgekit.device_runners.__file__], "
        "'generic': [n for n in ('export', 'device_runners') if importlib.util.find_spec(n)]}))"
    )
    seen = json.loads(venv.run("python", "-c", code).stdout)
    assert all(Path(f).is_relative_to(venv.path) for f in seen["files"]), seen
    assert seen["generic"] == []
    shown = venv.run("python", "-m", "pip", "show", "-f", "edgekit-kd", check=False)
    if shown.returncode == 0:  # the venv has no pip of its own; pip's answer comes from this one's below
        assert "edgekit/export/recipes/demo.toml" in shown.stdout


def test_the_extras_name_this_distribution(venv: Venv) -> None:
    """An extra that pulls another (``export`` brings ``runner``) names this distribution, not another one."""
    site = Path(venv.run("python", "-c", "import edgekit; print(edgekit.__file__)").stdout.strip()).parents[1]
    (metadata,) = site.glob("edgekit_kd-*.dist-info/METADATA")
    name = next(line.split(": ", 1)[1] for line in metadata.read_text().splitlines() if line.startswith("Name: "))
    requires = [line for line in metadata.read_text().splitlines() if line.startswith("Requires-Dist: edgekit")]
    assert requires and all(r.startswith(f"Requires-Dist: {name}[") for r in requires), (name, requires)


def test_commands_and_their_data_ship_in_the_wheel(venv: Venv) -> None:
    assert venv.run("edgekit", "--version").stdout.strip()
    assert "--out" in venv.run("edgekit", "demo", "--help").stdout
    code = (
        "from edgekit.export.recipes import load_recipe; from edgekit.device_runners import device_requirements; "
        "from edgekit.squad import sample_path; "
        "print(load_recipe('demo').name, load_recipe('demo-intents').name, load_recipe('minilm-l6-kd-e4').name, "
        "bool(device_requirements()), "
        "sample_path('dev').is_file())"
    )
    shown = venv.run("python", "-c", code).stdout.split()
    assert shown == ["demo", "demo-intents", "minilm-l6-kd-e4", "True", "True"]  # a preset, an experiment by name
    site = Path(venv.run("python", "-c", "import edgekit; print(edgekit.__file__)").stdout.strip()).parent
    for folder in ("export/recipes", "export/recipes/experiments"):  # every preset and every experiment
        shipped = sorted(p.name for p in (ROOT / folder).glob("*.toml"))
        assert sorted(p.name for p in (site / folder).glob("*.toml")) == shipped, folder
    for script in ("device_runners/raspberry_pi/setup.sh", "device_runners/android/termux-setup.sh"):
        assert (site / script).is_file(), script


def test_export_int8_run_and_deploy_from_the_wheel(venv: Venv, sshd) -> None:
    """A tiny chain through the installed commands; deploy ships the device side alone."""
    venv.run("edgekit", "export", "onnx", "packaged:all-MiniLM-L6-v2", "fp32", "--max-seq-len", "128",
             "--doc-stride", "64", "--validate-dataset", "packaged:dev", "--validate-n", "2")  # fmt: skip
    venv.run("edgekit", "export", "int8", "fp32", "int8")
    venv.run("edgekit", "run", "int8", "--dataset", "packaged:dev", "--limit", "3", "--out", "run")
    assert json.loads((venv.cwd / "run" / "metrics.json").read_text())["n_questions"] == 3
    target = f"ssh://{sshd.user}@127.0.0.1:{sshd.port}"
    venv.run(
        "edgekit", "deploy", target, "int8", "--dataset", "packaged:dev", "--limit", "2", "--out", "pulled",
        "--remote-dir", str(venv.cwd / "device"), "--remote-python", sys.executable,
        "-i", str(sshd.identity), "--ssh-option", sshd.options[0],
    )  # fmt: skip
    shipped = sorted(p.relative_to(venv.cwd / "device").as_posix() for p in (venv.cwd / "device").rglob("*.py"))
    assert any(p.endswith("edgekit/runner.py") for p in shipped)
    assert not [p for p in shipped if "/export/" in p or "/device_runners/" in p], shipped
    assert json.loads((venv.cwd / "pulled" / "metrics.json").read_text())["n_questions"] == 2
