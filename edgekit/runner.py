"""Answer SQuAD questions with a bundle and measure EM/F1, latency, throughput and memory.

This is the device-side program: no torch, only the bundle's runtime, the
tokenizer and numpy. Outputs in ``--out``:

- ``predictions.jsonl``: one record per question as it is answered (resumable),
- ``predictions.json``: the official id -> answer map,
- ``metrics.json``: scores, latency percentiles, cold start, throughput, peak RSS,
  and the bundle and device records.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from edgekit import __version__, device, predlog
from edgekit.atomic import write_json
from edgekit.backends import Backend, RuntimeOptions, open_backend
from edgekit.bundle import Bundle, load_bundle, sha256_file
from edgekit.decode import DEFAULT_N_BEST, Span, best_span
from edgekit.destination import RUN, claim, locked
from edgekit.errors import EdgekitError, InputError
from edgekit.features import QATokenizer, batch_inputs
from edgekit.metric import evaluate
from edgekit.squad import MAX_CONTEXT_CHARS, Example, load_squad
from edgekit.timing import Stopwatch, summarize

# Windows go to the runtime one per call. Batching them saves nothing on a CPU and costs both ways: a batch
# is padded to its longest window, and its activations (attention grows with windows x length^2) set the
# peak memory. Measured on 2 x86 cores: 21 windows a call held ~1 GB for MiniLM on a 100 KB context
# (benchmarks/results/long-context-8192-tokens-per-call.json); for the int8 MiniLM on 500 dev questions,
# 8 windows of 256 a call peaked at 173 MB RSS, one at 152 MB, same latency; the MPNet teacher answered
# questions of 2+ windows of 384 in 0.85x the time of 5-window calls.


@dataclass
class QAModel:
    """A bundle made ready to answer: tokenizer, runtime session and decoding settings."""

    bundle: Bundle
    tokenizer: QATokenizer
    backend: Backend
    n_best: int = DEFAULT_N_BEST
    # the last call's stages (to separate runner overhead from the model; benchmarks.stages), windows, tokens
    last_tokenize_ms: float = 0.0
    last_model_ms: float = 0.0
    last_decode_ms: float = 0.0
    last_windows: int = 0
    last_tokens: int = 0

    @classmethod
    def load(
        cls, bundle_path: str | Path, options: RuntimeOptions | None = None, n_best: int = DEFAULT_N_BEST
    ) -> QAModel:
        options = options or RuntimeOptions()
        bundle = load_bundle(bundle_path)
        return cls(bundle, bundle.tokenizer(), open_backend(bundle, options), n_best)

    def answer(self, question: str, context: str) -> Span:
        """Tokenize into windows, run them one at a time, decode the best span."""
        m = self.bundle.manifest
        if len(context) > MAX_CONTEXT_CHARS:
            raise InputError(None, "context", f"at most {MAX_CONTEXT_CHARS:,} characters, got {len(context):,}")
        tokenize, model, decode = Stopwatch(), Stopwatch(), Stopwatch()
        with tokenize.time():
            windows = self.tokenizer.windows(question, context)
        start: list[np.ndarray] = []
        end: list[np.ndarray] = []
        with model.time():
            for w in windows:
                s, e = self.backend(batch_inputs([w], m.input_names, m.pad_id, self.backend.fixed_seq_len))
                start.append(s[0])
                end.append(e[0])
        with decode.time():
            span = best_span(context, windows, start, end, self.n_best, m.max_answer_len)
        self.last_tokenize_ms, self.last_model_ms, self.last_decode_ms = tokenize.ms, model.ms, decode.ms
        self.last_windows, self.last_tokens = len(windows), sum(len(w) for w in windows)
        return span


@dataclass(frozen=True)
class RunConfig:
    """How to run: which questions, runtime settings, warm-up."""

    limit: int | None = None
    warmup: int = 3
    n_best: int = DEFAULT_N_BEST
    runtime: RuntimeOptions = field(default_factory=RuntimeOptions)
    progress: bool = True
    run_id: str | None = None  # recorded in metrics.json: who asked for this run (deploy checks it)

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit <= 0:
            raise EdgekitError(f"limit={self.limit}: expected a positive number of questions")
        if self.warmup < 0:
            raise EdgekitError(f"warmup={self.warmup}: expected 0 or more warm-up runs")
        if self.n_best <= 0:
            raise EdgekitError(f"n_best={self.n_best}: expected a positive number of candidates per window")


def _run_identity(bundle: Bundle, dataset_sha: str, config: RunConfig, backend: str) -> dict[str, Any]:
    """What must be equal for a resumed run to continue an earlier one: everything it measures but ``--limit``."""
    m = bundle.manifest
    return {
        "model_sha256": m.files[m.model_file].sha256,
        "tokenizer_sha256": m.files[m.tokenizer_file].sha256,
        "dataset_sha256": dataset_sha,
        "max_seq_len": m.max_seq_len,
        "doc_stride": m.doc_stride,
        "max_answer_len": m.max_answer_len,
        "n_best": config.n_best,
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
    if run_file.exists():
        try:
            earlier = json.loads(run_file.read_text())
        except ValueError:
            earlier = None
        if earlier != identity:
            was = earlier if isinstance(earlier, dict) else {}
            diff = sorted(k for k in identity.keys() | was.keys() if was.get(k) != identity.get(k))
            raise InputError(
                run_file,
                f"fields {diff}",
                "the same bundle, dataset and settings as the run being resumed; "
                "use a new --out directory (or delete this one) for a different run",
            )
    else:
        write_json(run_file, identity)


def _ensure_writable(out: Path) -> None:
    try:
        probe = out / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
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
    dataset_path = Path(dataset_path)
    _refuse_orphan_log(Path(out_dir))
    out = claim(out_dir, RUN, (bundle_path, dataset_path))
    _ensure_writable(out)
    with locked(out):
        return _run(bundle_path, dataset_path, out, config, argv)


def _run(
    bundle_path: str | Path, dataset_path: Path, out: Path, config: RunConfig, argv: Sequence[str] | None
) -> dict[str, Any]:
    examples = load_squad(dataset_path)
    if config.limit is not None:
        examples = examples[: config.limit]

    runtime, choice = config.runtime, None
    if runtime.backend == "auto":
        from edgekit.backends.choose import choose_backend

        name, choice = choose_backend(bundle_path, runtime, examples, config.n_best)
        runtime = replace(runtime, backend=name)
    t_cold = time.perf_counter()
    qa = QAModel.load(bundle_path, runtime, config.n_best)
    load_ms = (time.perf_counter() - t_cold) * 1000.0
    _check_resume(out, _run_identity(qa.bundle, sha256_file(dataset_path), config, qa.backend.name))

    log_path = out / "predictions.jsonl"
    done = {r["id"]: r for r in predlog.read_log(log_path)}
    wanted = {ex.id for ex in examples}
    stray = sorted(set(done) - wanted)
    if stray and config.limit is None:
        raise InputError(log_path, f"id {stray[0]}", "only ids of the dataset being run")
    todo = [ex for ex in examples if ex.id not in done]
    resumed_from = len(examples) - len(todo)

    first = todo[0] if todo else examples[0]
    watch = Stopwatch()
    with watch.time():
        _answer(qa, first, dataset_path)
    cold_start_ms = load_ms + watch.ms
    for _ in range(config.warmup):
        _answer(qa, first, dataset_path)

    _answer_all(qa, todo, log_path, dataset_path, config.progress)

    records = {r["id"]: r for r in predlog.read_log(log_path) if r["id"] in wanted}
    predictions = {ex.id: records[ex.id]["answer"] for ex in examples if ex.id in records}
    write_json(out / "predictions.json", predictions)
    metrics = _metrics(qa, examples, records, predictions, dataset_path, config, argv)
    metrics.update(cold_start_ms=cold_start_ms, load_ms=load_ms, resumed_from=resumed_from)
    if choice is not None:
        metrics["backend_choice"] = choice
    write_json(out / "metrics.json", metrics)
    return metrics


def _answer(qa: QAModel, ex: Example, dataset_path: Path) -> Span:
    try:
        return qa.answer(ex.question, ex.context)
    except InputError as exc:
        # the answers so far are in the log: re-running after a fix resumes from here
        raise InputError(dataset_path, f"question id {ex.id}", exc.expected) from None


def _answer_all(qa: QAModel, todo: list[Example], log_path: Path, dataset_path: Path, progress: bool) -> None:
    from tqdm import tqdm

    if not todo:
        print(f"{log_path.parent}: already complete, every question answered; metrics rewritten", file=sys.stderr)
        return

    watch = Stopwatch()
    with predlog.open_log(log_path) as log:
        for ex in tqdm(todo, desc="questions", unit="q", disable=not progress, file=sys.stderr):
            with watch.time():
                span = _answer(qa, ex, dataset_path)
            predlog.append(
                log,
                {
                    "id": ex.id,
                    "answer": span.text,
                    "start_char": span.start_char,
                    "confidence": round(span.confidence, 6),
                    "latency_ms": round(watch.ms, 3),
                    "model_ms": round(qa.last_model_ms, 3),
                    "windows": qa.last_windows,
                    "peak_rss_mb": round(device.peak_rss_mb(), 1),
                },
            )


def _metrics(
    qa: QAModel,
    examples: list[Example],
    records: dict[str, dict[str, Any]],
    predictions: dict[str, str],
    dataset_path: Path,
    config: RunConfig,
    argv: Sequence[str] | None,
) -> dict[str, Any]:
    score = evaluate(examples, predictions)
    latencies = [records[i]["latency_ms"] for i in predictions]
    model_ms = [records[i]["model_ms"] for i in predictions]
    stats = summarize(latencies)
    peak = max([device.peak_rss_mb()] + [r.get("peak_rss_mb", 0.0) for r in records.values()])
    return {
        "exact_match": score.exact_match,
        "f1": score.f1,
        "n_questions": score.total,
        "n_answered": score.answered,
        "latency_ms": stats.as_dict(),
        "model_latency_ms": summarize(model_ms).as_dict(),
        "throughput_qps": 1000.0 * stats.n / sum(latencies),
        "peak_rss_mb": round(peak, 1),
        "warmup_runs": config.warmup,
        "threads": config.runtime.threads,
        "low_memory": config.runtime.low_memory,
        "spin": config.runtime.spin,
        "backend": qa.backend.name,
        "n_best": config.n_best,
        "bundle": qa.bundle.summary(),
        "dataset": {"path": str(dataset_path), "limit": config.limit},
        "device": device.describe(),
        "command": list(argv) if argv is not None else sys.argv,
        "edgekit_version": __version__,
        "run_id": config.run_id,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "notes": "latency: wall time per question (tokenize + model + decode), batch 1, after warm-up; "
        "throughput: questions per second answered one at a time",
        "run_config": {k: v for k, v in asdict(config).items() if k not in ("runtime", "run_id")},
    }
