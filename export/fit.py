"""``edgekit fit``: the most accurate student that fits a size and latency budget, measured on the device.

The space: every starting bundle the user has, each in the post-training forms edgekit makes from it
(an fp32 ONNX bundle: as it is, dynamic int8 with 7- and 8-bit weights, 4-bit weights; a dynamic int8
bundle: as it is, with float activations into every MatMul, and into the feed-forward ones; anything else as it
is), times the
runtimes that run its format and the thread counts asked for.

The search, cheapest evidence first:

1. **Size** is known once a form is built: a form over ``--max-mb`` is never run.
2. **Rungs** of a growing sample of the evaluation set (default 200, 1,000, then all; the examples in a
   seeded random order, stratified by label for a classifier, so each rung holds the last). Every candidate
   left runs the rung on the target device through the runner (``local``: a process of its own here;
   ``ssh://``: ``edgekit deploy``), which gives the task's score by its official rule and the per-example
   latency. The runner resumes its own log, so a rung answers only the examples the last one did not.
3. **Elimination with confidence** after each rung, by a paired bootstrap over the rung's examples (1,000
   resamples, 95% intervals): a candidate goes when its median latency is above the bound with confidence,
   its score below ``--min-score`` with confidence, or another candidate that meets every bound with
   confidence scores higher with confidence, or answers every example alike and is faster with confidence.
   Candidates are never dropped by rank alone, so a close one is measured on more examples, not guessed.
4. **The answer**, from the candidates measured on the whole set: the highest score that meets every bound
   (ties: the faster, then the smaller); if none does, the nearest and what it misses. The Pareto front over
   size, score and latency, the report of the fully measured candidates, and ``fit.json`` with every
   candidate, every measurement and the commands that rebuild and rerun the chosen bundle.

Everything measured lives in ``--out`` (bundles, run directories): a fit run again with the same arguments
reuses what is there and measures only the rest, whether it was interrupted or finished. ``--exhaustive``
measures every candidate that fits the size on the whole set, the reference the search is tested against.
"""

from __future__ import annotations

import io
import random
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.atomic import write_bytes, write_json, write_text
from edgekit.bundle import Bundle, load_bundle
from edgekit.destination import OutputKind, claim, locked
from edgekit.device_runners.deploy import DEFAULT_REMOTE_DIR, DEFAULT_REMOTE_PYTHON, DeployConfig, deploy, target_for
from edgekit.errors import EdgekitError, InputError
from edgekit.jsonfile import READ_BACK_BYTES, read_json
from edgekit.predlog import COMMON_FIELDS, read_log
from edgekit.result import read_metrics
from edgekit.squad import resolve_data_path, squad_json
from edgekit.tasks import Task, get_task
from edgekit.text import md_table

FIT = OutputKind("an edgekit fit", ("fit.json",))
DEFAULT_RUNGS = (200, 1000)  # then the whole set
RESAMPLES = 1000
ONNX_BACKENDS = ("onnxruntime", "openvino")


@dataclass(frozen=True)
class Budget:
    """The bounds a chosen bundle must meet: model file size, median latency on the device, score."""

    max_mb: float
    max_p50_ms: float | None = None
    min_score: float | None = None


@dataclass(frozen=True)
class Form:
    """A post-training form of a starting bundle: how edgekit makes it, and the command that does."""

    name: str
    build: Callable[[Bundle, Path], Bundle] | None
    command: Callable[[str, str], list[str]] | None


def _int8(reduce_range: bool) -> Callable[[Bundle, Path], Bundle]:
    def build(src: Bundle, out: Path) -> Bundle:
        from edgekit.export.quantize import DynamicInt8, quantize_dynamic_bundle

        return quantize_dynamic_bundle(src, out, out.name, DynamicInt8(reduce_range=reduce_range))

    return build


def _int4(src: Bundle, out: Path) -> Bundle:
    from edgekit.export.quantize import Int4Weights, quantize_int4_bundle

    return quantize_int4_bundle(src, out, out.name, Int4Weights())


def _float_act(groups: list[str]) -> Callable[[Bundle, Path], Bundle]:
    def build(src: Bundle, out: Path) -> Bundle:
        from edgekit.export.quantize import float_activations_bundle

        return float_activations_bundle(src, out, groups, out.name)

    return build


FFN = ["intermediate/dense", "output/dense"]  # the feed-forward products, where int8 activations cost most


AS_IS = Form("as-is", None, None)
FORMS = {
    "int8": Form("int8", _int8(True), lambda s, o: ["edgekit", "export", "int8", s, o]),
    "int8-full-range": Form(
        "int8-full-range", _int8(False), lambda s, o: ["edgekit", "export", "int8", s, o, "--full-range"]
    ),
    "int4": Form("int4", _int4, lambda s, o: ["edgekit", "export", "int4", s, o]),
    "float-act": Form(
        "float-act",
        _float_act(["all"]),
        lambda s, o: ["edgekit", "export", "float-activations", s, o, "--group", "all"],
    ),
    "float-act-ffn": Form(
        "float-act-ffn",
        _float_act(FFN),
        lambda s, o: ["edgekit", "export", "float-activations", s, o, *[a for g in FFN for a in ("--group", g)]],
    ),
}
SAME_SIZE = ("as-is", "float-act", "float-act-ffn")  # forms whose model file is the start's size: pruned unbuilt


def forms_of(bundle: Bundle) -> list[Form]:
    """The forms edgekit makes from ``bundle`` (see the module docstring)."""
    m = bundle.manifest
    method = m.source.get("quantization", {}).get("method")
    if m.model_format == "onnx" and m.precision == "fp32":
        return [AS_IS, FORMS["int8"], FORMS["int8-full-range"], FORMS["int4"]]
    if m.model_format == "onnx" and method == "onnxruntime dynamic":
        return [AS_IS, FORMS["float-act"], FORMS["float-act-ffn"]]
    return [AS_IS]


@dataclass(frozen=True)
class Candidate:
    """One point of the space: a form of a starting bundle, on a runtime, with a thread count."""

    id: str
    start: str
    form: str
    backend: str
    threads: int | None


@dataclass(frozen=True)
class Measurement:
    """One candidate measured on the first ``n`` examples of the evaluation order, on the device."""

    n: int
    score: float
    score_ci: tuple[float, float] | None
    p50_ms: float
    p50_ci: tuple[float, float] | None
    peak_rss_mb: float
    run_dir: str
    seconds: float


@dataclass
class Entry:
    """A candidate, its bundle once built, what was measured and why it stopped (``status``)."""

    candidate: Candidate
    bundle: str = ""
    size_mb: float = 0.0
    status: str = "pending"
    measurements: list[Measurement] = field(default_factory=list)

    @property
    def last(self) -> Measurement:
        return self.measurements[-1]


def parse_duration(text: str) -> float:
    """``90s``, ``45m``, ``3h`` or seconds -> seconds."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([smh]?)\s*", text)
    if not m or float(m[1]) <= 0:
        raise InputError(None, f"--time-budget {text!a}", "a positive duration such as 600s, 45m or 3h")
    return float(m[1]) * {"": 1, "s": 1, "m": 60, "h": 3600}[m[2]]


# -- the evaluation order --------------------------------------------------------------------------------


def _write_order(task: Task, examples: Sequence[Any], path: Path, seed: int) -> None:
    """The evaluation set in a seeded random order, in the task's own file format (what the runner reads on
    any device); a classifier's examples interleaved label by label, so every prefix is stratified."""
    rng = random.Random(seed)
    order = list(examples)
    rng.shuffle(order)
    if task.name == "text-classification":
        by_label: dict[str, list[Any]] = {}
        for ex in order:
            by_label.setdefault(ex.label, []).append(ex)
        queues, order = list(by_label.values()), []
        while any(queues):
            order += [q.pop(0) for q in queues if q]
        text = "sentence\tlabel\n" + "".join(f"{ex.text}\t{ex.label}\n" for ex in order)
        write_text(path.with_suffix(".tsv"), text)
    elif task.name == "token-classification":
        text = "\n".join("".join(f"{w}\t{t}\n" for w, t in zip(s.words, s.tags, strict=True)) for s in order)
        write_text(path.with_suffix(".conll"), text)
    else:  # SQuAD v1.1, one paragraph per question so the file's order is the questions' order
        write_json(path.with_suffix(".json"), squad_json(order))


def order_file(out: Path, task: Task) -> Path:
    suffix = {"text-classification": ".tsv", "token-classification": ".conll"}.get(task.name, ".json")
    return out / f"evaluation-order{suffix}"


# -- scores per example, and the bootstrap ---------------------------------------------------------------


def components(task: Task, examples: Sequence[Any], predictions: dict[str, Any], path: Path) -> np.ndarray:
    """Per example, a (numerator, denominator) pair whose sums give the task's headline score as
    ``100 * sum(num) / sum(den)``: a question's F1, a text's 0/1, a sentence's ``2 * correct`` entities over its
    predicted plus gold ones (entity F1 is not a mean over sentences, but its counts add up)."""
    from edgekit.entities import entities_of
    from edgekit.metric import f1_score, max_over_ground_truths

    rows = []
    for ex in examples:
        if ex.id not in predictions:
            raise InputError(path, f"id {ex.id}", "a prediction for every example of the rung")
        p = predictions[ex.id]
        if task.name == "extractive-qa":
            rows.append((max_over_ground_truths(f1_score, str(p), ex.answer_texts), 1.0))
        elif task.name == "text-classification":
            rows.append((float(p == ex.label), 1.0))
        else:
            if not isinstance(p, list) or len(p) != len(ex.words):
                raise InputError(path, f"id {ex.id}", f"{len(ex.words)} tags")
            gold, pred = set(entities_of(ex.tags)), set(entities_of(p))
            rows.append((2.0 * len(gold & pred), float(len(gold) + len(pred))))
    return np.asarray(rows, dtype=np.float64)


def _resample_scores(comp: np.ndarray, idx: np.ndarray) -> np.ndarray:
    num, den = comp[idx, 0].sum(axis=1), comp[idx, 1].sum(axis=1)
    return 100.0 * np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def _interval(values: np.ndarray) -> tuple[float, float]:
    lo, hi = np.percentile(values, [2.5, 97.5])
    return round(float(lo), 3), round(float(hi), 3)


# -- building and measuring ------------------------------------------------------------------------------


def _build(path: Path, start: Bundle, form: Form) -> Bundle:
    """The form of ``start`` in ``path``: made once and reused while it verifies (``fit.json`` records the starts'
    model hashes, so a resumed fit has the same starts)."""
    if form.build is None:
        return start
    if (path / "manifest.json").is_file():
        try:
            return load_bundle(path)
        except EdgekitError:
            pass  # rebuilt below, in place (an earlier bundle of the same kind)
    return form.build(start, path)


@dataclass(frozen=True)
class Device:
    """Where candidates run: this machine (``local``) or an ``ssh://`` / ``adb`` target through deploy."""

    spec: str
    identity: Path | None = None
    ssh_options: tuple[str, ...] = ()
    user: str | None = None
    remote_dir: str = DEFAULT_REMOTE_DIR
    remote_python: str = DEFAULT_REMOTE_PYTHON
    warmup: int = 3

    def run(self, c: Candidate, bundle: Path, dataset: Path, n: int, run_dir: Path) -> dict[str, Any]:
        flags = ["--limit", str(n), "--warmup", str(self.warmup), "--backend", c.backend]
        flags += ["--threads", str(c.threads)] if c.threads else []
        if self.spec == "local":
            from edgekit.runner import run_in_process

            return run_in_process(bundle, dataset, run_dir, [*flags, "--no-progress"])
        config = DeployConfig(
            limit=n,
            threads=c.threads,
            backend=c.backend,
            warmup=self.warmup,
            remote_dir=self.remote_dir,
            remote_python=self.remote_python,
            stream=False,
        )
        deploy(target_for(self.spec, self.identity, self.ssh_options, self.user), bundle, dataset, run_dir, config)
        return read_metrics(run_dir / "metrics.json")


def _measure(
    device: Device, task: Task, entry: Entry, out: Path, order: Path, examples: Sequence[Any], n: int
) -> tuple[Measurement, np.ndarray, np.ndarray]:
    """Run ``entry`` on the first ``n`` examples on the device; the measurement and, per example, the score
    components and latencies the bootstrap resamples."""
    t0 = time.time()
    run_dir = out / "runs" / entry.candidate.id
    metrics = device.run(entry.candidate, _bundle_path(entry, out), order, n, run_dir)
    predictions = read_json(run_dir / "predictions.json", "predictions", READ_BACK_BYTES * 16, read_back=True)
    if not isinstance(predictions, dict):
        raise InputError(run_dir / "predictions.json", "top level", "an object of id -> prediction")
    wanted = examples[:n]
    comp = components(task, wanted, predictions, run_dir / "predictions.json")
    records = {
        r["id"]: r for r in read_log(run_dir / "predictions.jsonl", False, {**COMMON_FIELDS, **task.record_fields})
    }
    lat = np.asarray([records[ex.id]["latency_ms"] for ex in wanted if ex.id in records], dtype=np.float64)
    if len(lat) != len(wanted):
        raise InputError(run_dir / "predictions.jsonl", "records", f"a latency for each of the {n} examples")
    score = 100.0 * comp[:, 0].sum() / comp[:, 1].sum() if comp[:, 1].sum() else 0.0
    if abs(score - float(metrics[task.headline])) > 0.01:  # agrees with the runner's own rule (to its rounding)
        raise InputError(run_dir / "metrics.json", f"field '{task.headline}'", f"{score:.4f} as its predictions give")
    m = Measurement(
        n=n,
        score=round(score, 4),
        score_ci=None,  # filled in once every candidate of the rung is measured
        p50_ms=round(float(np.median(lat)), 3),
        p50_ci=None,
        peak_rss_mb=float(metrics["peak_rss_mb"]),
        run_dir=_shown(run_dir, out),
        seconds=round(time.time() - t0, 1),
    )
    return m, comp, lat


# -- the search ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FitSettings:
    """Everything a fit depends on; ``fit.json`` records it, and a fit resumed into the same ``--out`` must match."""

    starts: tuple[str, ...]
    eval: str
    budget: Budget
    device: str
    backends: tuple[str, ...] | None = None
    threads: tuple[int | None, ...] = (None,)
    rungs: tuple[int, ...] = DEFAULT_RUNGS
    seed: int = 0
    split: str | None = None
    exhaustive: bool = False


def _rungs(wanted: Sequence[int], total: int, exhaustive: bool) -> list[int]:
    return [total] if exhaustive else sorted({min(n, total) for n in wanted} | {total})


def _meets(e: Entry, budget: Budget) -> list[str]:
    """What ``e``'s last measurement misses of the budget, in words (empty: it meets every bound)."""
    m, misses = e.last, []
    if e.size_mb > budget.max_mb:
        misses.append(f"size {e.size_mb:.1f} MB > {budget.max_mb:g} MB")
    if budget.max_p50_ms is not None and m.p50_ms > budget.max_p50_ms:
        misses.append(f"p50 {m.p50_ms:.1f} ms > {budget.max_p50_ms:g} ms")
    if budget.min_score is not None and m.score < budget.min_score:
        misses.append(f"score {m.score:.2f} < {budget.min_score:g}")
    return misses


def _intervals(alive: list[Entry], data: dict[str, tuple[np.ndarray, np.ndarray]], n: int, seed: int) -> dict:
    """Each candidate's bootstrap scores over the rung's examples, the same resamples for all (so differences are
    paired), with the 95% intervals of score and median latency filled into its measurement."""
    idx = np.random.default_rng([seed, n]).integers(0, n, size=(RESAMPLES, n))
    boot = {e.candidate.id: _resample_scores(data[e.candidate.id][0], idx) for e in alive}
    for e in alive:
        p50s = np.median(data[e.candidate.id][1][idx], axis=1)
        e.measurements[-1] = replace(e.last, score_ci=_interval(boot[e.candidate.id]), p50_ci=_interval(p50s))
    return boot


def _eliminate(
    alive: list[Entry], data: dict[str, tuple[np.ndarray, np.ndarray]], boot: dict, n: int, budget: Budget
) -> None:
    """Drop what the rung shows, with 95% confidence, cannot be the answer (see the module docstring)."""
    sure = [
        e
        for e in alive
        if (budget.max_p50_ms is None or e.last.p50_ci[1] <= budget.max_p50_ms)
        and (budget.min_score is None or e.last.score_ci[0] >= budget.min_score)
    ]
    for e in alive:
        cid = e.candidate.id
        if budget.max_p50_ms is not None and e.last.p50_ci[0] > budget.max_p50_ms:
            e.status = f"dropped after {n}: p50 above {budget.max_p50_ms:g} ms with 95% confidence"
            continue
        if budget.min_score is not None and e.last.score_ci[1] < budget.min_score:
            e.status = f"dropped after {n}: score below {budget.min_score:g} with 95% confidence"
            continue
        for a in sure:
            aid = a.candidate.id
            if aid == cid or a.status != "running":
                continue
            if np.percentile(boot[aid] - boot[cid], 2.5) > 0:
                e.status = f"dropped after {n}: {aid} meets the bounds and scores higher with 95% confidence"
                break
            same = np.array_equal(data[aid][0], data[cid][0])
            if same and a.last.p50_ci[1] < e.last.p50_ci[0]:
                e.status = f"dropped after {n}: {aid} meets the bounds, answers alike and is faster with 95% confidence"
                break


def fit(
    settings: FitSettings,
    out: Path,
    device: Device,
    time_budget_s: float | None = None,
    argv: Sequence[str] | None = None,
    say: Callable[[str], None] = lambda s: print(s, file=sys.stderr),
) -> dict[str, Any]:
    """Search the space and write ``fit.json``, ``fit.md``, ``fit.png`` and ``report/`` into ``out``."""
    starts = [load_bundle(s) for s in settings.starts]
    tasks = {b.manifest.task for b in starts}
    if len(tasks) != 1:
        raise InputError(None, "the students", f"bundles of one task, got {sorted(tasks)}")
    task = get_task(tasks.pop())
    eval_path = resolve_data_path(settings.eval, Path(settings.eval))  # packaged:dev too
    examples_all = task.load_examples(eval_path, settings.split, starts[0].manifest)
    out = claim(out, FIT, [*settings.starts, eval_path])
    with locked(out):
        return _fit(settings, out, device, task, starts, examples_all, time_budget_s, argv, say)


def _space(settings: FitSettings, starts: list[Bundle]) -> list[tuple[Candidate, Bundle, Form, str]]:
    """Every candidate, with its starting bundle, its form and the name of the directory its bundle is built in."""
    from edgekit.backends import BACKENDS

    space = []
    for i, start in enumerate(starts):
        fmt = start.manifest.model_format
        backends = [b for b, f in BACKENDS.items() if f == fmt and b != "openvino-bf16"]
        if settings.backends is not None:
            backends = [b for b in backends if b in settings.backends]
        for form in forms_of(start):
            for backend in backends:
                for threads in settings.threads:
                    key = f"s{i}-{start.manifest.name}-{form.name}"
                    cid = f"{key}-{backend}-t{threads or 'auto'}"
                    space.append((Candidate(cid, settings.starts[i], form.name, backend, threads), start, form, key))
    return space


def _fit(
    settings: FitSettings,
    out: Path,
    device: Device,
    task: Task,
    starts: list[Bundle],
    examples_all: Sequence[Any],
    time_budget_s: float | None,
    argv: Sequence[str] | None,
    say: Callable[[str], None],
) -> dict[str, Any]:
    t0 = time.time()
    shas = [b.manifest.files[b.manifest.model_file].sha256 for b in starts]
    # the budget is not among what must match: a fit with another budget into the same --out reuses every
    # bundle and measurement there (the runner resumes its runs) and measures only what it needs besides
    same = {k: v for k, v in _jsonable(asdict(settings)).items() if k != "budget"}
    record = {"settings": {**same, "starts_sha256": shas}, "budget": asdict(settings.budget)}
    earlier = out / "fit.json"
    if earlier.is_file():
        found = read_json(earlier, "fit record", READ_BACK_BYTES, read_back=True)
        if not isinstance(found, dict) or found.get("settings") != record["settings"]:
            raise InputError(earlier, "field 'settings'", "the same settings as the fit being resumed; use a new --out")
    else:  # first: the directory is this fit's from now on, and a killed fit resumes
        write_json(earlier, {**record, "status": "running", "candidates": []})
    order = order_file(out, task)
    if not order.is_file():
        _write_order(task, examples_all, order, settings.seed)
    examples = task.load_examples(order, None, starts[0].manifest)
    rungs = _rungs(settings.rungs, len(examples), settings.exhaustive)

    entries: list[Entry] = []
    for c, start, form, key in _space(settings, starts):
        if form.name in SAME_SIZE and start.model_size_mb > settings.budget.max_mb:
            entry = Entry(c, "", round(start.model_size_mb, 3), f"over {settings.budget.max_mb:g} MB (unbuilt)")
        else:
            bundle = _build(out / "bundles" / key, start, form)
            entry = Entry(c, _shown(bundle.path, out), round(bundle.model_size_mb, 3))
            entry.status = (
                "running" if entry.size_mb <= settings.budget.max_mb else f"over {settings.budget.max_mb:g} MB"
            )
        entries.append(entry)
    say(f"fit: {len(entries)} candidates, {sum(e.status == 'running' for e in entries)} within the size bound")

    stopped = None
    for n in rungs:
        alive = [e for e in entries if e.status == "running"]
        data: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for e in alive:
            if time_budget_s is not None and time.time() - t0 > time_budget_s:
                stopped = f"time budget of {time_budget_s:g} s spent before rung {n} was done"
                break
            m, comp, lat = _measure(device, task, e, out, order, examples, n)
            e.measurements.append(m)
            data[e.candidate.id] = (comp, lat)
            say(f"  {e.candidate.id}: {n} examples, {task.headline} {m.score:.2f}, p50 {m.p50_ms:.1f} ms")
            _write(out, record, entries, None, argv, t0)
        if stopped:
            break
        boot = _intervals(alive, data, n, settings.seed)
        if n < rungs[-1]:
            _eliminate(alive, data, boot, n, settings.budget)
        else:
            for e in alive:
                e.status = "measured on all"
    result = _write(out, record, entries, stopped, argv, t0, task, len(examples), settings.budget)
    return result


def _bundle_path(e: Entry, out: Path) -> Path:
    """Where ``e``'s bundle is: a start as the user gave it, a built form inside ``out``."""
    return Path(e.bundle) if e.candidate.form == "as-is" else out / e.bundle


def _shown(path: Path, out: Path) -> str:
    """A path as fit.json records it: relative to ``--out`` inside it (the record reads the same wherever the
    directory is copied), as given otherwise."""
    try:
        return str(Path(path).relative_to(out))
    except ValueError:
        return str(path)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    return obj


def _write(
    out: Path,
    record: dict[str, Any],
    entries: list[Entry],
    stopped: str | None,
    argv: Sequence[str] | None,
    t0: float,
    task: Task | None = None,
    total: int = 0,
    budget: Budget | None = None,
) -> dict[str, Any]:
    """``fit.json`` as it stands (after each measurement, so an interrupted fit shows its progress); with
    ``task``, the answer, the Pareto front, fit.md, fit.png and the report."""
    doc: dict[str, Any] = {**record, "status": "running", "candidates": [_jsonable(asdict(e)) for e in entries]}
    if task is not None and budget is not None:
        full = [e for e in entries if e.status == "measured on all"]
        doc.update(_answer(full, budget, entries, total, out))
        if full:  # the device every measurement was made on, as its runner recorded it
            doc["device"] = read_metrics(out / full[0].last.run_dir / "metrics.json")["device"]
        doc["status"] = stopped or "finished"
    doc["seconds"] = round(time.time() - t0, 1)
    doc["command"] = list(argv or [])
    write_json(out / "fit.json", doc)
    if task is not None:
        _pages(out, doc, entries, task, budget)
    return doc


def _answer(full: list[Entry], budget: Budget, entries: list[Entry], total: int, out: Path) -> dict[str, Any]:
    """The chosen candidate (or the nearest and what it misses), the Pareto front and what the search cost."""
    meeting = [e for e in full if not _meets(e, budget)]
    chosen = max(meeting, key=lambda e: (e.last.score, -e.last.p50_ms, -e.size_mb), default=None)
    answer: dict[str, Any] = {"chosen": None, "nearest": None, "missing": []}
    if chosen is not None:
        answer["chosen"] = chosen.candidate.id
        answer["commands"] = _commands(chosen, out)
    elif full:

        def shortfall(e: Entry) -> float:
            m = e.last
            lat = max(0.0, m.p50_ms / budget.max_p50_ms - 1) if budget.max_p50_ms else 0.0
            score = max(0.0, 1 - m.score / budget.min_score) if budget.min_score else 0.0
            return max(0.0, e.size_mb / budget.max_mb - 1) + lat + score

        nearest = min(full, key=shortfall)
        answer.update(nearest=nearest.candidate.id, missing=_meets(nearest, budget), commands=_commands(nearest, out))
    front = [
        e.candidate.id
        for e in full
        if not any(
            o is not e
            and o.size_mb <= e.size_mb
            and o.last.p50_ms <= e.last.p50_ms
            and o.last.score >= e.last.score
            and (o.size_mb, o.last.p50_ms, o.last.score) != (e.size_mb, e.last.p50_ms, e.last.score)
            for o in full
        )
    ]
    considered = [e for e in entries if e.measurements or e.status == "running"]
    answered = sum(e.last.n for e in entries if e.measurements)  # rungs resume: each example answered once
    return {
        **answer,
        "pareto": front,
        "cost": {
            "candidates": len(entries),
            "within_size": len(considered),
            "measured_on_all": len(full),
            "share_measured_on_all": round(len(full) / len(considered), 3) if considered else 0.0,
            "examples_answered": answered,
            "examples_if_all_measured_on_all": total * len(considered),
        },
    }


def _commands(e: Entry, out: Path) -> list[list[str]]:
    """The commands that rebuild ``e``'s bundle from its start and measure it as the fit did (paths as the fit
    was given them)."""
    form = FORMS.get(e.candidate.form)
    bundle = str(_bundle_path(e, out))
    cmds = [form.command(e.candidate.start, bundle)] if form and form.command else []
    run = ["edgekit", "run", bundle, "--dataset", "EVAL", "--out", "OUT", "--backend", e.candidate.backend]
    return [*cmds, run + (["--threads", str(e.candidate.threads)] if e.candidate.threads else [])]


def _pages(out: Path, doc: dict[str, Any], entries: list[Entry], task: Task, budget: Budget | None) -> None:
    """fit.md (every candidate), fit.png (score against size and latency, the bounds drawn, the choice marked)
    and the existing report over the fully measured candidates."""
    rows = []
    for e in entries:
        m = e.measurements[-1] if e.measurements else None
        mark = " (chosen)" if e.candidate.id == doc.get("chosen") else ""
        rows.append(
            [
                e.candidate.id + mark,
                f"{e.size_mb:.1f}",
                f"{m.score:.2f}" + (f" [{m.score_ci[0]:.1f}, {m.score_ci[1]:.1f}]" if m.score_ci else "") if m else "",
                f"{m.p50_ms:.1f}" if m else "",
                str(m.n) if m else "0",
                e.status,
            ]
        )
    cost = doc.get("cost", {})
    head = [
        "# edgekit fit",
        "",
        f"Chosen: **{doc.get('chosen') or 'none meets every bound'}**"
        + (f"; nearest {doc['nearest']}, missing {', '.join(doc['missing'])}" if doc.get("nearest") else ""),
        "",
        f"Measured on all {cost.get('measured_on_all', 0)} of {cost.get('within_size', 0)} candidates within the "
        f"size bound; {cost.get('examples_answered', 0):,} examples answered against "
        f"{cost.get('examples_if_all_measured_on_all', 0):,} for measuring every one on all.",
        "",
    ]
    table = md_table(["candidate", "MB", f"{task.headline} [95% CI]", "p50 ms", "examples", "status"], rows)
    write_text(out / "fit.md", "\n".join([*head, *table]) + "\n")
    full = [e for e in entries if e.status == "measured on all"]
    if full and budget is not None:
        _plot(out / "fit.png", full, doc.get("chosen"), budget, task.headline)
        from edgekit.export.report import write_report

        write_report([out / e.last.run_dir for e in full], out / "report")


def _plot(path: Path, full: list[Entry], chosen: str | None, budget: Budget, headline: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, x, bound, label in (
        (axes[0], lambda e: e.size_mb, budget.max_mb, "model file (MB)"),
        (axes[1], lambda e: e.last.p50_ms, budget.max_p50_ms, "p50 latency on the device (ms)"),
    ):
        for e in full:
            pick = e.candidate.id == chosen
            ax.scatter(x(e), e.last.score, s=60 if pick else 20, c="tab:red" if pick else "tab:blue", zorder=3)
        if bound is not None:
            ax.axvline(bound, color="grey", linestyle="--", label=f"bound {bound:g}")
            ax.legend(loc="lower right")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(headline)
    fig.suptitle("edgekit fit: candidates measured on the whole set (chosen in red)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    write_bytes(path, buf.getvalue())
