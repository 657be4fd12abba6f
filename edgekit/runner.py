"""Run a bundle over a dataset of its task and measure the scores, latency, throughput and memory.

This is the device-side program: no torch, only the bundle's runtime, the
tokenizer and numpy. The bundle's task (``edgekit.tasks``: extractive QA, text
classification) says how the data is read, what a prediction is and how it is
scored; everything else here is the same for every task. Outputs in ``--out``:

- ``predictions.jsonl``: one record per example as it is answered (resumable),
- ``predictions.json``: the id -> prediction map (for QA the official one),
- ``metrics.json``: scores, latency percentiles, cold start, throughput, peak RSS,
  and the bundle and device records.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgekit import __version__, device, predlog
from edgekit.atomic import write_json
from edgekit.backends import RuntimeOptions
from edgekit.bundle import Bundle, load_bundle, sha256_file
from edgekit.decode import DEFAULT_N_BEST
from edgekit.destination import LOCK_FILE, RUN, claim, locked
from edgekit.errors import BundleError, EdgekitError, InputError
from edgekit.jsonfile import READ_BACK_BYTES, read_json
from edgekit.result import read_metrics
from edgekit.squad import resolve_data_path
from edgekit.tasks import Task, TaskModel, get_task
from edgekit.tasks.qa import QAModel  # noqa: F401  (the QA model's long-standing import path)
from edgekit.timing import Stopwatch, summarize


@dataclass(frozen=True)
class RunConfig:
    """How to run: which questions, runtime settings, warm-up."""

    limit: int | None = None
    warmup: int = 3
    n_best: int = DEFAULT_N_BEST
    runtime: RuntimeOptions = field(default_factory=RuntimeOptions)
    progress: bool = True
    run_id: str | None = None  # recorded in metrics.json: who asked for this run (deploy checks it)
    split: str | None = None  # a split of a dataset file that holds several (CLINC150's JSON)

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit <= 0:
            raise EdgekitError(f"limit={self.limit}: expected a positive number of questions")
        if self.warmup < 0:
            raise EdgekitError(f"warmup={self.warmup}: expected 0 or more warm-up runs")
        if self.n_best <= 0:
            raise EdgekitError(f"n_best={self.n_best}: expected a positive number of candidates per window")
        # it names the run's remote directory on a device, so a plain word
        if self.split is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", self.split):
            raise EdgekitError(f"split {self.split!a}: expected a split name of letters, digits, '_' or '-'")


def _run_identity(bundle: Bundle, task: Task, dataset_sha: str, config: RunConfig, backend: str) -> dict[str, Any]:
    """What must be equal for a resumed run to continue an earlier one: everything it measures but ``--limit``."""
    m = bundle.manifest
    return {
        "model_sha256": m.files[m.model_file].sha256,
        "tokenizer_sha256": m.files[m.tokenizer_file].sha256,
        "dataset_sha256": dataset_sha,
        **({"split": config.split} if config.split else {}),
        **task.identity(m, config.n_best),
        "backend": backend,
        "threads": config.runtime.threads,
        "low_memory": config.runtime.low_memory,
        **({} if config.runtime.spin else {"spin": False}),  # absent when default: earlier runs resume as they were
        "warmup": config.warmup,
    }


def _refuse_orphan_log(out: Path) -> None:
    """A prediction log whose run.json is gone belongs to an unknown bundle and settings: never adopt it."""
    log = out / "predictions.jsonl"
    if log.exists() and not (out / "run.json").exists():
        raise InputError(
            log,
            "file",
            "a prediction log beside the run.json of the run that wrote it; without it, which bundle and settings "
            "answered is unknown, so it is not adopted: use a new --out directory",
        )


def _check_resume(out: Path, identity: dict[str, Any]) -> None:
    run_file = out / "run.json"
    if run_file.exists() or run_file.is_symlink():
        # read back as untrusted (no link followed, bounded, strict); anything but this run's settings is refused
        earlier = read_json(run_file, "run settings", READ_BACK_BYTES, read_back=True)
        if not isinstance(earlier, dict) or not {"model_sha256", "dataset_sha256"} <= earlier.keys():
            raise InputError(
                run_file,
                "top level",
                "the settings of an edgekit run (model_sha256, dataset_sha256, ...); another program's file, "
                "so this directory is left alone: use a new --out directory",
            )
        if earlier != identity:
            diff = sorted(k for k in identity.keys() | earlier.keys() if earlier.get(k) != identity.get(k))
            raise InputError(
                run_file,
                f"fields {diff}",
                "the same bundle, dataset and settings as the run being resumed; "
                "use a new --out directory (or delete this one) for a different run",
            )
    else:
        write_json(run_file, identity)


def _ensure_writable(out: Path) -> None:
    """Refuse, before any work, a run directory whose files this run rewrites are not files it can replace."""
    for name in ("run.json", "predictions.jsonl", "predictions.json", "metrics.json"):
        p = out / name
        if p.is_symlink() or (p.exists() and not p.is_file()):
            raise InputError(
                p, "file", "a regular file this run writes, or none; not a link or a directory (left alone)"
            )
    try:  # a new file of a random name: a link planted at a fixed one would be followed
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(out, "output directory", f"a writable directory ({exc.strerror})") from None


def run(
    bundle_path: str | Path,
    dataset_path: str | Path,
    out_dir: str | Path,
    config: RunConfig | None = None,
    argv: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Answer every question (resuming an earlier run in ``out_dir``) and write the outputs.

    Returns the metrics dict also written to ``metrics.json``.
    """
    config = config or RunConfig()
    dataset_path = resolve_data_path(str(dataset_path), Path(dataset_path))  # packaged:dev, packaged:clinc150
    _refuse_orphan_log(Path(out_dir))
    made = not Path(out_dir).exists()
    out = claim(out_dir, RUN, (bundle_path, dataset_path))
    try:
        _ensure_writable(out)
        with locked(out):
            return _run(bundle_path, dataset_path, out, config, argv)
    except EdgekitError:
        # refused before anything was written (a bad dataset or bundle): the directory this run made goes too
        if made and all(p.name == LOCK_FILE for p in out.iterdir()):
            shutil.rmtree(out, ignore_errors=True)
        raise


def _run(
    bundle_path: str | Path, dataset_path: Path, out: Path, config: RunConfig, argv: Sequence[str] | None
) -> dict[str, Any]:
    manifest = load_bundle(bundle_path, verify=False).manifest  # which task; the model loads verified below
    task = get_task(manifest.task, Path(bundle_path) / "manifest.json")
    # without their gold answers while the model runs: scoring reads the file again once the model is gone
    everything = task.load_examples(dataset_path, config.split, manifest, gold=False)
    known_ids = {ex.id for ex in everything}
    examples = _limited(everything, config.limit)
    del everything

    runtime, choice = config.runtime, None
    if runtime.backend == "auto":
        if task.name != "extractive-qa":
            raise EdgekitError(
                f"--backend auto: chooses among runtimes on QA answers; for a {task.name} bundle name the backend"
            )
        from edgekit.backends.choose import choose_backend

        name, choice = choose_backend(bundle_path, runtime, examples, config.n_best)
        runtime = replace(runtime, backend=name)
    t_cold = time.perf_counter()
    model = task.load_model(bundle_path, runtime, config.n_best)
    device.release_free_heap()  # the model file's parse buffers: freed, but kept by the C heap until trimmed
    load_ms = (time.perf_counter() - t_cold) * 1000.0
    dataset_sha = sha256_file(dataset_path)
    _check_resume(out, _run_identity(model.bundle, task, dataset_sha, config, model.backend.name))

    log_path = out / "predictions.jsonl"
    fields = {**predlog.COMMON_FIELDS, **task.record_fields}
    by_id = {ex.id: ex for ex in examples}

    def check(record: dict[str, Any]) -> None:  # a record of an example past --limit is checked when it is run
        if record["id"] not in known_ids:
            raise ValueError(f"an id of the dataset being run, got {record['id']!r}")
        task.check_record(record, manifest, by_id.get(record["id"]))

    done = {r["id"] for r in predlog.iter_log(log_path, fields=fields, check=check)}
    todo = [ex for ex in examples if ex.id not in done]
    resumed_from = len(examples) - len(todo)

    first = todo[0] if todo else examples[0]
    watch = Stopwatch()
    with watch.time():
        _predict(model, task, first, dataset_path)
    cold_start_ms = load_ms + watch.ms
    for _ in range(config.warmup):
        _predict(model, task, first, dataset_path)

    _predict_all(model, task, todo, log_path, dataset_path, config.progress)
    bundle, backend = model.bundle, model.backend.name
    del model, todo, first  # the runtime's session and buffers go before the log and the gold answers are read
    device.release_free_heap()
    if sha256_file(dataset_path) != dataset_sha:
        raise InputError(
            dataset_path, "file", "the file this run answered, unchanged until it is scored (it changed during the run)"
        )
    examples = _limited(task.load_examples(dataset_path, config.split, bundle.manifest), config.limit)

    # only what the metrics take from each record is kept: the log of a whole dataset, parsed at once, would sit
    # on top of the model and the dataset (docs/runner.md, "Memory")
    answered: dict[str, Any] = {}
    timings: dict[str, tuple[float, float]] = {}
    peak = 0.0
    for r in predlog.iter_log(log_path, fields=fields, check=check):
        if r["id"] in by_id:
            answered[r["id"]] = task.prediction(r)
            timings[r["id"]] = (r["latency_ms"], r["model_ms"])
            peak = max(peak, r["peak_rss_mb"])
    predictions = {ex.id: answered[ex.id] for ex in examples if ex.id in answered}
    write_json(out / "predictions.json", predictions)
    metrics = _metrics(bundle, backend, task, examples, timings, peak, predictions, dataset_path, config, argv)
    metrics.update(cold_start_ms=cold_start_ms, load_ms=load_ms, resumed_from=resumed_from)
    if choice is not None:
        metrics["backend_choice"] = choice
    write_json(out / "metrics.json", metrics)
    return metrics


def _limited(examples: Sequence[Any], limit: int | None) -> list[Any]:
    return list(examples if limit is None else examples[:limit])


def _predict(model: TaskModel, task: Task, ex: Any, dataset_path: Path) -> dict[str, Any]:
    noun = task.example_noun.removesuffix("s")
    try:
        return model.predict(ex)
    except BundleError as exc:  # the model's fault on this input (non-finite scores): named with the input
        raise BundleError(exc.path, f"{exc.where} on {noun} id {ex.id}", exc.expected) from None
    except InputError as exc:
        # the predictions so far are in the log: re-running after a fix resumes from here
        raise InputError(dataset_path, f"{noun} id {ex.id}", exc.expected) from None


def _predict_all(
    model: TaskModel, task: Task, todo: list[Any], log_path: Path, dataset_path: Path, progress: bool
) -> None:
    from tqdm import tqdm

    if not todo:
        print(
            f"{log_path.parent}: already complete, every one of the {task.example_noun} answered; metrics rewritten",
            file=sys.stderr,
        )
        return

    watch = Stopwatch()
    with predlog.open_log(log_path) as log:
        for ex in tqdm(todo, desc=task.example_noun, unit=task.example_noun[0], disable=not progress, file=sys.stderr):
            with watch.time():
                fields = _predict(model, task, ex, dataset_path)
            predlog.append(
                log,
                {
                    "id": ex.id,
                    **fields,
                    "latency_ms": round(watch.ms, 3),
                    "model_ms": round(model.last_model_ms, 3),
                    "peak_rss_mb": round(device.peak_rss_mb(), 1),
                },
            )


def _metrics(
    bundle: Bundle,
    backend: str,
    task: Task,
    examples: list[Any],
    timings: dict[str, tuple[float, float]],
    peak_rss_mb: float,
    predictions: dict[str, Any],
    dataset_path: Path,
    config: RunConfig,
    argv: Sequence[str] | None,
) -> dict[str, Any]:
    latencies = [timings[i][0] for i in predictions]
    model_ms = [timings[i][1] for i in predictions]
    stats = summarize(latencies)
    peak = max(device.peak_rss_mb(), peak_rss_mb)
    return {
        **task.score(examples, predictions, bundle.manifest),
        "latency_ms": stats.as_dict(),
        "model_latency_ms": summarize(model_ms).as_dict(),
        "throughput_qps": 1000.0 * stats.n / sum(latencies),
        "peak_rss_mb": round(peak, 1),
        "warmup_runs": config.warmup,
        "threads": config.runtime.threads,
        "low_memory": config.runtime.low_memory,
        "spin": config.runtime.spin,
        "backend": backend,
        "n_best": config.n_best,
        "bundle": bundle.summary(),
        "dataset": {
            "path": str(dataset_path),
            "limit": config.limit,
            **({"split": config.split} if config.split else {}),
        },
        "device": device.describe(),
        "command": list(argv) if argv is not None else sys.argv,
        "edgekit_version": __version__,
        "run_id": config.run_id,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "task": task.name,
        "notes": f"latency: wall time per {task.example_noun.removesuffix('s')} (tokenize + model + decode), batch 1, after warm-up; "
        f"throughput: {task.example_noun} per second answered one at a time",
        "run_config": {k: v for k, v in asdict(config).items() if k not in ("runtime", "run_id")},
    }


def run_in_process(
    bundle: str | Path, dataset: str | Path, out: str | Path, flags: Sequence[str] = (), show: bool = False
) -> dict[str, Any]:
    """``edgekit run BUNDLE --dataset DATASET --out OUT FLAGS...`` in a Python process of its own, and its
    metrics.json, read back and checked. A runner inside the calling process (a training run, a sweep) would
    share its threads and report its RSS; this one's latency and peak memory are the runner's own. ``show``
    lets the runner's progress through to this terminal; otherwise a failure says the runner's last line."""
    import subprocess

    argv = [sys.executable, "-m", "edgekit.cli", "run", str(bundle), "--dataset", str(dataset), "--out", str(out)]
    proc = subprocess.run([*argv, *flags], capture_output=not show, text=True)
    if proc.returncode != 0:
        said = (proc.stderr or "").strip().splitlines()
        raise EdgekitError(f"{bundle}: edgekit run failed: {said[-1] if said else f'exit {proc.returncode}'}")
    return read_metrics(Path(out) / "metrics.json")
