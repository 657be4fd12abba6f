"""The one strict JSON reader and the typed schemas of every file edgekit reads back.

Each read-back file (a run's metrics.json and run.json, a fleet's fleet.json, the ``--backend auto`` cache,
a teacher-logit cache's progress, a Trainer checkpoint's state) is fuzzed from a valid one: a random field
replaced by a hostile value, or the bytes cut. Its reader accepts the result whole or refuses it with one
InputError line naming the file, never anything else.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgekit.errors import InputError
from edgekit.jsonfile import MAX_DEPTH, Range, from_json, iter_members, read_json
from edgekit.result import check_metrics, read_metrics

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
FUZZ = settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)


def _one_line(exc: InputError, path: Path) -> None:
    assert str(path) in str(exc) and "\n" not in str(exc) and "expected" in str(exc)


# -- the reader ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, where",
    [
        ('{"a": NaN}', "NaN"),
        ('{"a": -Infinity}', "Infinity"),
        ('{"a": 1' + "0" * 5000 + "}", "value"),
        ('{"a": "\\ud800"}', "lone surrogate"),
        ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "nesting"),
        ("[" * 100_000, "nesting"),
        ('{"a": 1', "line 1"),
        ("", "line 1"),
    ],
    ids=["nan", "infinity", "huge integer", "lone surrogate", "too deep", "very deep", "torn", "empty"],
)
def test_what_json_does_not_allow_or_edgekit_bounds_is_one_line(tmp_path: Path, text: str, where: str) -> None:
    f = tmp_path / "x.json"
    f.write_text(text)
    for read_back in (False, True):
        with pytest.raises(InputError, match=where) as exc:
            read_json(f, "x", read_back=read_back)
        _one_line(exc.value, f)


@pytest.mark.parametrize(
    "text, where",
    [
        ('{"data": [1, NaN]}', "NaN"),
        ('{"data": [{"a": "\\ud800"}]}', "data\\[0\\]"),
        ('{"data": [' + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1) + "]}", "nesting"),
        ('{"data": [1 2]}', "line 1 column 13"),
        ('{"data": [1], "version": 1} x', "Extra data"),
        ("[1, 2]", "a JSON object with a 'data' member"),
    ],
    ids=["nan", "lone surrogate", "too deep", "no comma", "extra", "not an object"],
)
def test_a_streamed_file_is_refused_as_a_whole_one_is(tmp_path: Path, text: str, where: str) -> None:
    f = tmp_path / "x.json"
    f.write_text(text)
    with pytest.raises(InputError, match=where) as exc:
        list(iter_members(f, "x", stream="data"))
    _one_line(exc.value, f)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)


@FUZZ
@given(
    members=st.dictionaries(st.text(max_size=5), JSON_VALUES, max_size=3),
    items=st.lists(JSON_VALUES, max_size=4),
    indent=st.sampled_from([None, 0, 2]),
)
def test_members_streamed_are_the_file_read_whole(
    tmp_path: Path, members: dict, items: list, indent: int | None
) -> None:
    f = tmp_path / "x.json"
    text = json.dumps({**members, "data": items}, indent=indent)
    f.write_text(text)
    rebuilt: dict[str, Any] = {}
    for name, i, value in iter_members(f, "x", stream="data"):
        if i is None:
            rebuilt[name] = value
        else:
            rebuilt.setdefault(name, []).append(value)
    assert rebuilt == json.loads(text)
    for end in range(len(text)):  # every cut of an object is no JSON: refused in one line, never another error
        f.write_text(text[:end])
        with pytest.raises(InputError) as exc:
            list(iter_members(f, "x", stream="data"))
        _one_line(exc.value, f)


def test_nesting_up_to_the_bound_is_read(tmp_path: Path) -> None:
    f = tmp_path / "deep.json"
    f.write_text("[" * MAX_DEPTH + "]" * MAX_DEPTH)
    assert read_json(f) is not None


def test_size_is_bounded_before_parsing(tmp_path: Path) -> None:
    f = tmp_path / "big.json"
    f.write_text(json.dumps(["x" * 100] * 100))
    with pytest.raises(InputError, match="at most 1,000 bytes"):
        read_json(f, "results", max_bytes=1000)


@pytest.mark.parametrize("read_back", [False, True])
def test_the_bound_is_not_allocated_up_front(tmp_path: Path, read_back: bool) -> None:
    """A small file under a bound of a terabyte reads in a buffer of its own size: reading ``bound + 1`` bytes
    would ask the C heap for the terabyte first (a MemoryError here, an out-of-memory kill on a small device)."""
    f = tmp_path / "small.json"
    f.write_text('{"a": 1}')
    assert read_json(f, "results", max_bytes=1 << 40, read_back=read_back) == {"a": 1}


def test_a_file_without_a_stated_size_is_read_to_its_end() -> None:
    """/proc files state size 0 and still have text."""
    from edgekit.jsonfile import read_bytes

    assert b"VmRSS" in read_bytes("/proc/self/status", "status", max_bytes=1 << 20)


def test_a_file_read_back_is_never_a_link_or_fifo_a_users_file_may_be_a_link(tmp_path: Path) -> None:
    real, link, fifo = tmp_path / "real.json", tmp_path / "link.json", tmp_path / "fifo.json"
    real.write_text('{"a": 1}')
    link.symlink_to(real)
    os.mkfifo(fifo)
    assert read_json(link) == {"a": 1}  # a dataset the user named through a link
    for path in (link, fifo):
        with pytest.raises(InputError, match="not a link, FIFO or device"):
            read_json(path, read_back=True)
    with pytest.raises(InputError, match="not a device or a pipe"):  # never waited on
        read_json(fifo)


# -- the schemas -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Inner:
    k: Literal["a", "b"]


@dataclass(frozen=True)
class Record:
    count: Annotated[int, Range(0, 10)]
    share: Annotated[float, Range(0.0, 1.0)]
    names: list[str]
    inner: Inner
    table: dict[str, float]
    maybe: int | None = None


GOOD = {"count": 3, "share": 0.5, "names": ["x"], "inner": {"k": "a"}, "table": {"t": 1}, "extra": "later versions"}


def test_a_record_is_built_from_its_annotations() -> None:
    r = from_json(Record, GOOD, "f.json")
    assert r.inner == Inner("a") and r.maybe is None and r.table == {"t": 1}


@pytest.mark.parametrize(
    "change, where",
    [
        ({"count": 11}, "field 'count'"),
        ({"count": True}, "field 'count'"),
        ({"count": 1.0}, "field 'count'"),
        ({"share": "0.5"}, "field 'share'"),
        ({"names": ["x", 1]}, r"field 'names\[1\]'"),
        ({"inner": {"k": "c"}}, "field 'inner.k'"),
        ({"inner": []}, "field 'inner'"),
        ({"table": {"t": None}}, "field 'table.t'"),
        ({"maybe": "1"}, "field 'maybe'"),
        ({"count": None}, "field 'count'"),
    ],
)
def test_a_field_of_the_wrong_type_or_range_is_named(change: dict, where: str) -> None:
    with pytest.raises(InputError, match=where):
        from_json(Record, {**GOOD, **change}, "f.json")
    with pytest.raises(InputError, match=r"field 'share'.*present"):
        from_json(Record, {k: v for k, v in GOOD.items() if k != "share"}, "f.json")


def _a_run_metrics() -> dict[str, Any]:
    return read_json(RESULTS / "teacher-mpnet-fp32-onnx" / "metrics.json")


def test_every_committed_metrics_file_obeys_the_schema() -> None:
    files = sorted(RESULTS.rglob("metrics.json"))
    assert len(files) > 50
    for f in files:
        read_metrics(f)


@pytest.mark.parametrize(
    "change, where",
    [
        ({"latency_ms.p50": 1e9}, "latency_ms"),  # above max, or over the hour a bound allows
        ({"latency_ms.min": 0.5, "latency_ms.p50": 0.1}, "percentiles in order"),
        ({"bundle.task": "text-classification"}, "bundle.task"),
        ({"backend": "litert"}, "field 'backend'"),
        ({"device.cpu": "x\x1b[2Jy"}, "device.cpu"),
        ({"f1": 100.5}, "field 'f1'"),
        ({"n_questions": 0}, "n_questions"),
        ({"peak_rss_mb": -1}, "peak_rss_mb"),
        ({"task": "summarization"}, "field 'task'"),
        ({"run_id": "another"}, "run_id"),
    ],
)
def test_metrics_that_contradict_themselves_or_their_run_are_refused(change: dict, where: str) -> None:
    m = _a_run_metrics()
    m["run_id"] = "this"
    check_metrics(m, "m.json", run_id="this")
    for dotted, value in change.items():
        *parents, key = dotted.split(".")
        target = m
        for p in parents:
            target = target[p]
        target[key] = value
    with pytest.raises(InputError, match=where):
        check_metrics(m, "m.json", run_id="this")


# -- every file read back, fuzzed ------------------------------------------------------------------------

HOSTILE = st.sampled_from(
    [None, True, -1, 0, 10**30, -1e308, 1e308, "", "x\x00\n", "\ud800", [], {}, [[[[]]]], {"a": {"b": {}}}]
)


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:3]):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def mutated(draw, valid: dict[str, Any]) -> bytes:
    """``valid`` with one value replaced (or the whole document), serialized; or its bytes cut short."""
    doc = json.loads(json.dumps(valid))
    paths = _paths(doc)
    path = draw(st.sampled_from(paths))
    value = draw(HOSTILE)
    if not path:
        doc = value
    else:
        target = doc
        for p in path[:-1]:
            target = target[p]
        target[path[-1]] = value
    data = json.dumps(doc).encode("utf-8", "surrogatepass")
    if draw(st.booleans()) and draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return data


def _readers(tmp: Path) -> dict[str, tuple[dict[str, Any], Any]]:
    """Each read-back file: a valid document and the call that reads it from a path."""
    from edgekit.backends.choose import _remembered, _valid_choice
    from edgekit.device_runners.deploy import read_fleet, target_dir_name
    from edgekit.export.distill import TrainerProgress
    from edgekit.export.teacher_cache import _progress
    from edgekit.runner import _check_resume

    identity = {"model_sha256": "a" * 64, "dataset_sha256": "b" * 64, "backend": "onnxruntime", "threads": 2}
    target = "ssh://pi@pi5"
    fleet = {
        "bundle": "b",
        "targets": [target],
        "status": "finished",
        "devices": [{"target": target, "results": target_dir_name(target), "ok": True, "error": None}],
    }
    choice = {"k": {"backend": "onnxruntime", "candidates": {"onnxruntime": {"same_answers_as_onnxruntime": 1.0}}}}

    def run_json(path: Path) -> None:
        _check_resume(path.parent, identity)

    def cache(path: Path) -> None:
        for record in _remembered(path).values():  # whatever is remembered is checked before it is obeyed
            _valid_choice(record, "onnx")

    return {
        "metrics.json": (_a_run_metrics(), read_metrics),
        "run.json": (identity, run_json),
        "fleet.json": (fleet, read_fleet),
        "backend-choice.json": (choice, cache),
        "progress.json": ({"done": 5}, lambda p: _progress(p, 10)),
        "trainer_state.json": (
            {"global_step": 10, "epoch": 1.0},
            lambda p: from_json(TrainerProgress, read_json(p, read_back=True), p),
        ),
    }


@pytest.mark.parametrize(
    "name", ["metrics.json", "run.json", "fleet.json", "backend-choice.json", "progress.json", "trainer_state.json"]
)
@FUZZ
@given(data=st.data())
def test_every_file_read_back_is_accepted_whole_or_refused_in_one_line(tmp_path: Path, name: str, data) -> None:
    valid, read = _readers(tmp_path)[name]
    path = tmp_path / name
    path.write_text(json.dumps(valid))
    read(path)  # the valid one is read
    path.write_bytes(data.draw(mutated(valid)))
    try:
        read(path)
    except InputError as exc:
        _one_line(exc, path)
