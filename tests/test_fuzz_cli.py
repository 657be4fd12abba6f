"""Property tests through the real command line: random damage to the four input files and a run directory.

Each example copies valid files into a fresh directory, damages one (bytes flipped, cut or
inserted, or one JSON/TOML value replaced by a value of another type or range), runs the
``edgekit`` command that reads it, and checks the contract every command keeps:

- exit 0, or exit 2 with one line that names the damaged file (or the output directory);
- never a traceback, never another exit status;
- no file outside the command's ``--out`` changes.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import tempfile
from pathlib import Path

import pytest
from error_catalog import VALID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fuzz import _mutate, _mutations
from test_reliability import snapshot

from edgekit.cli import main

CLI = settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
ODD_VALUES = st.sampled_from(
    [None, True, 0, -1, 2**63, 1e308, float("nan"), "", "x", "../../etc/passwd", [], {}, [1], {"a": 1}]
)
RECIPE = 'name = "fz"\noutput_dir = "{out}"\n[loss]\nalpha = 0.5\ntemperature = 2.0\n[training]\nepochs = 1.0\n'


def _paths(obj, prefix=()):
    """Every path to a value inside a JSON object."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*prefix, i))


def _replace(obj, path, value):
    if not path:
        return value
    node = obj
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return obj


@st.composite
def damage(draw, data: bytes, is_json: bool = True):
    """Bytes of ``data`` damaged: at byte level, or (JSON) one value replaced by an odd one."""
    if is_json and draw(st.booleans()):
        obj = json.loads(data)
        paths = list(_paths(obj))
        path = paths[draw(st.integers(0, len(paths) - 1))]
        return json.dumps(_replace(obj, path, draw(ODD_VALUES))).encode()
    return _mutate(data, draw(_mutations()))


def check_contract(argv: list[str], work: Path, damaged: Path, out: Path | None = None) -> None:
    outside = {k: v for k, v in snapshot(work).items() if out is None or not (work / k).is_relative_to(out)}
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    text = err.getvalue()
    assert code in (0, 2), text
    assert "Traceback" not in text
    if code == 2:
        last = text.strip().splitlines()[-1]
        assert last.startswith("edgekit: error: ") and text.count("edgekit: error:") == 1, text
        assert damaged.name in last or "output directory" in last, text
    after = {k: v for k, v in snapshot(work).items() if out is None or not (work / k).is_relative_to(out)}
    assert after == outside, "a file outside --out changed"


@pytest.fixture(scope="module")
def seed(tmp_path_factory, tiny_bundle) -> Path:
    """Valid inputs to damage: a dataset, its predictions, the tiny bundle, and a finished run."""
    root = tmp_path_factory.mktemp("seed")
    (root / "data.json").write_text(json.dumps(VALID))
    (root / "pred.json").write_text(json.dumps({"q1": "France", "q2": "Paris"}))
    shutil.copytree(tiny_bundle.path, root / "bundle")
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        main(["run", str(root / "bundle"), "--dataset", str(root / "data.json"), "--out", str(root / "run")])
    return root


def fresh(seed: Path) -> Path:
    work = Path(tempfile.mkdtemp(prefix="fuzz-", dir=seed.parent))
    for name in ("data.json", "pred.json", "bundle", "run"):
        src = seed / name
        (shutil.copytree if src.is_dir() else shutil.copyfile)(src, work / name)
    return work


def run_argv(work: Path, out: Path) -> list[str]:
    return ["run", str(work / "bundle"), "--dataset", str(work / "data.json"), "--out", str(out), "--no-progress"]


@CLI
@given(data=st.data())
def test_damaged_dataset(seed, data) -> None:
    work = fresh(seed)
    target = work / "data.json"
    target.write_bytes(data.draw(damage(target.read_bytes())))
    check_contract(run_argv(work, work / "out"), work, target, work / "out")


@CLI
@given(data=st.data())
def test_damaged_predictions(seed, data) -> None:
    work = fresh(seed)
    target = work / "pred.json"
    target.write_bytes(data.draw(damage(target.read_bytes())))
    check_contract(["score", "--dataset", str(work / "data.json"), "--predictions", str(target)], work, target)


@CLI
@given(data=st.data())
def test_damaged_manifest(seed, data) -> None:
    work = fresh(seed)
    target = work / "bundle" / "manifest.json"
    target.write_bytes(data.draw(damage(target.read_bytes())))
    check_contract(run_argv(work, work / "out"), work, target, work / "out")
    check_contract(["verify", str(work / "bundle")], work, target)


@CLI
@given(data=st.data())
def test_damaged_recipe(seed, data) -> None:
    """``--eval-only`` reads the recipe and then the (absent) result it names: a valid recipe ends in exit 2 too."""
    work = fresh(seed)
    target = work / "recipe.toml"
    target.write_bytes(data.draw(damage(RECIPE.format(out=work / "train").encode(), is_json=False)))
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["distill", "--recipe", str(target), "--eval-only"])
    text = err.getvalue()
    assert code == 2 and text.count("\n") == 1 and "Traceback" not in text, text
    assert target.name in text or "result.json" in text, text


@CLI
@given(data=st.data(), which=st.sampled_from(["run.json", "predictions.jsonl", "metrics.json"]))
def test_damaged_run_directory(seed, data, which) -> None:
    """Resuming a finished run whose files were damaged: it resumes, or refuses naming the file."""
    work = fresh(seed)
    target = work / "run" / which
    raw = target.read_bytes()
    target.write_bytes(data.draw(damage(raw, is_json=which != "predictions.jsonl")))
    check_contract(run_argv(work, work / "run"), work, target, work / "run")
