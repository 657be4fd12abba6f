"""A run's ``metrics.json`` as a typed record: what the runner writes, and the schema everything read back obeys.

The runner writes it; ``deploy`` pulls it from a device, ``report`` reads it from run directories, and a
fleet's summary lines quote it. A device's reply and an old run directory are as untrusted
as a user's file, so every reader goes through :func:`check_metrics`: the fields' types (:class:`RunResult`,
and the task's own score record, ``Task.scores``), numbers finite and in range, and the rules across fields (percentiles in
order, the bundle's task and format matching the run's task and runtime, the run id when one is expected).
A bad file is one line naming it, the field and what was expected, never a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from edgekit.errors import InputError
from edgekit.jsonfile import READ_BACK_BYTES, Range, from_json, read_json

Ms = Annotated[float, Range(0.0, 3.6e6)]  # up to an hour per example
Mb = Annotated[float, Range(0.0, 1e7)]
Count = Annotated[int, Range(0, 1e12)]
Percent = Annotated[float, Range(0.0, 100.0)]
Examples = Annotated[int, Range(1, 1e12)]


@dataclass(frozen=True)
class Latency:
    """``edgekit.timing.LatencyStats`` as written: percentiles of per-example times in ms."""

    n: Annotated[int, Range(1, 1e12)]
    mean: Ms
    p50: Ms
    p90: Ms
    p99: Ms
    min: Ms
    max: Ms


@dataclass(frozen=True)
class BundleRecord:
    """The bundle a run measured (``Bundle.summary``)."""

    name: str
    format: Literal["onnx", "tflite"]
    precision: str
    model_size_mb: Mb
    params: Count
    layers: Count
    size_mb: Mb | None = None
    task: str = "extractive-qa"
    source: dict[str, Any] = field(default_factory=dict)
    labels: list[str] | None = None


@dataclass(frozen=True)
class RunResult:
    """The fields of a ``metrics.json`` every task shares (the task's scores are its own record)."""

    latency_ms: Latency
    peak_rss_mb: Mb
    throughput_qps: Annotated[float, Range(0.0, 1e9)]
    bundle: BundleRecord
    task: str = "extractive-qa"
    device: dict[str, Any] = field(default_factory=dict)
    backend: str | None = None
    threads: Annotated[int, Range(1, 4096)] | None = None
    run_id: str | None = None
    model_latency_ms: Latency | None = None
    cold_start_ms: Ms | None = None
    load_ms: Ms | None = None
    resumed_from: Count | None = None


DEVICE_TEXT = ("cpu", "arch", "emulated")  # device fields reports and plots print, besides the bundle's name
LITERT_MODULES = ("ai_edge_litert", "tflite_runtime")  # the TFLite backend records its interpreter's package


def check_metrics(m: Any, path: str | Path, run_id: str | None = None) -> dict[str, Any]:
    """``m``, read back from ``path``, if it is a metrics.json as the runner writes it (see the module docstring);
    ``run_id``: the id this run was given (a device's reply must carry it)."""
    from edgekit.backends import BACKENDS
    from edgekit.tasks import TASKS, get_task

    run = from_json(RunResult, m, path)
    if run.task not in TASKS:
        raise InputError(path, "field 'task'", f"one of {sorted(TASKS)}, got {ascii(run.task)[:60]}")
    from_json(get_task(run.task).scores, m, path)
    if run_id is not None and run.run_id != run_id:
        raise InputError(path, "field 'run_id'", f"this run's id {run_id}, got {ascii(run.run_id)[:60]}")
    for name, lat in (("latency_ms", run.latency_ms), ("model_latency_ms", run.model_latency_ms)):
        if lat is not None and not lat.min <= lat.p50 <= lat.p90 <= lat.p99 <= lat.max >= lat.mean >= lat.min:
            raise InputError(path, f"field '{name}'", "percentiles in order: min <= p50 <= p90 <= p99 <= max")
    if run.bundle.task != run.task:
        raise InputError(path, "field 'bundle.task'", f"the run's task {run.task}, got {ascii(run.bundle.task)[:60]}")
    formats = {**BACKENDS, **dict.fromkeys(LITERT_MODULES, "tflite")}
    if run.backend is not None and formats.get(run.backend) != run.bundle.format:
        runs = sorted(b for b, fmt in formats.items() if fmt == run.bundle.format)
        raise InputError(path, "field 'backend'", f"a runtime of {run.bundle.format} models ({', '.join(runs)})")
    shown = {f"device.{k}": run.device.get(k) for k in DEVICE_TEXT}
    shown |= {"bundle.name": run.bundle.name, "bundle.precision": run.bundle.precision}
    for field_name, value in shown.items():  # printed in summary lines, tables and plots
        if value is not None and not (isinstance(value, str) and value.isprintable() and len(value) <= 200):
            raise InputError(path, f"field '{field_name}'", f"printable text, got {ascii(value)[:60]}")
    return m


def read_metrics(path: str | Path, run_id: str | None = None) -> dict[str, Any]:
    """A ``metrics.json`` edgekit wrote, read back (no link followed, bounded, strict) and checked."""
    return check_metrics(read_json(path, "metrics.json", READ_BACK_BYTES, read_back=True), path, run_id)
