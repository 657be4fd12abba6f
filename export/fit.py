"""``edgekit fit``: the most accurate student that fits a size and latency budget, measured on the device.

The space: every starting bundle the user has, then the transformers checkpoints given (exported first to fp32 ONNX
and, with the tflite extra, fp32 and int8 TFLite), then the students of ``--train-recipes`` (trained first, within
the time budget: one cut short stops at a checkpoint, is not searched, and resumes on the next fit; then exported as
``edgekit export --recipe`` exports them), each in the post-training forms edgekit makes from it (an fp32 ONNX
bundle: as it is, dynamic int8 with 7- and 8-bit weights and with 4-bit embeddings, 4-bit weights, and with
``--vocab-keep`` its vocabulary pruned, then int8 with 8- and 4-bit embeddings; a dynamic int8 bundle: as it is,
with float activations into every MatMul, and into the feed-forward ones; anything else as it is), times the
runtimes that run its format and the thread counts asked for. A ``--teacher`` runs every rung beside them, as the
reference its share (``--min-share``) is of.

The search, cheapest evidence first:

1. **Size** is known once a form is built: a form over ``--max-mb`` is never run.
2. **Rungs** of a growing sample of the evaluation set (default 200, 1,000, then all; the examples in a
   seeded random order, stratified by label for a classifier, so each rung holds the last). Every candidate
   left runs the rung on the target device through the runner (``local``: a process of its own here;
   ``ssh://``: ``edgekit deploy``), which gives the task's score by its official rule and the per-example
   latency. The runner resumes its own log, so a rung answers only the examples the last one did not.
3. **Elimination with confidence** after each rung, by a paired bootstrap over the rung's examples (1,000
   resamples, 95% intervals): a candidate goes when its median latency is above the bound with confidence,
   its score below the floor (``--min-score``; the share of the teacher's, resampled with it) with confidence, or
   another candidate that meets every bound with confidence scores higher with confidence, or answers every
   example alike and is faster with confidence.
   Candidates are never dropped by rank alone, so a close one is measured on more examples, not guessed.
4. **The answer**, from the candidates measured on the whole set: the highest score that meets every bound
   (ties: the faster, then the smaller); if none does, the nearest and what it misses. The Pareto front over
   size, score and latency, the report of the fully measured candidates, and ``fit.json`` with every
   candidate, every measurement and the commands that rebuild and rerun the chosen bundle.

Everything measured lives in ``--out`` (bundles, run directories): a fit run again into it reuses what is there
and measures only the rest, whether it was interrupted or finished, and whether the budget, the runtimes, the
threads or the students after the earlier ones changed; what the measurements depend on (``EVIDENCE``, the
starts already there) must be the same. ``--exhaustive`` measures every candidate that fits the size on the whole
set, the reference the search is tested against.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import random
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekit.atomic import write_bytes, write_json, write_text
from edgekit.bundle import Bundle, load_bundle
from edgekit.destination import REPORT, OutputKind, check_destination, claim, locked
from edgekit.device_runners.deploy import DEFAULT_REMOTE_DIR, DEFAULT_REMOTE_PYTHON, DeployConfig, deploy, target_for
from edgekit.errors import EdgekitError, InputError
from edgekit.jsonfile import READ_BACK_BYTES, read_json
from edgekit.predlog import COMMON_FIELDS, read_log
from edgekit.result import read_metrics
from edgekit.squad import resolve_data_path, squad_json
from edgekit.tasks import Task, get_task
from edgekit.text import md_table

if TYPE_CHECKING:
    from edgekit.export.recipes import Recipe

FIT = OutputKind("an edgekit fit", ("fit.json",))
DEFAULT_RUNGS = (200, 1000)  # then the whole set
RESAMPLES = 1000
TRAINED_CHECK = 16  # dev examples the runner answers on each bundle of a trained student before the search
ONNX_BACKENDS = ("onnxruntime", "openvino")


@dataclass(frozen=True)
class Budget:
    """The bounds a chosen bundle must meet: model file size, median latency on the device, score, and the share
    of the teacher's score (the teacher measured by the same runner on the same examples)."""

    max_mb: float
    max_p50_ms: float | None = None
    min_score: float | None = None
    min_share: float | None = None

    def floor(self, teacher: float | np.ndarray | None) -> float | np.ndarray | None:
        """The lowest score that meets the bounds, given the teacher's score (or its bootstrap resamples)."""
        if self.min_share is None or teacher is None:
            return self.min_score
        share = self.min_share * teacher
        return share if self.min_score is None else np.maximum(self.min_score, share)


@dataclass(frozen=True)
class Step:
    """One step from a bundle to the next (quantize, prune), and the ``edgekit export`` command that does it."""

    name: str
    build: Callable[[Bundle, Path], Bundle]
    command: Callable[[str, str], list[str]]
    keeps_size: bool = False  # the model file stays its source's size (float activations)


@dataclass(frozen=True)
class Form:
    """A post-training form of a starting bundle: the steps that make it from the start (none: the start as it
    is). Its name is the steps' names joined, and each step's bundle is built once in the directory named by the
    steps so far, so forms that begin alike (a pruned vocabulary, then int8 with 8- or 4-bit embeddings) share it."""

    steps: tuple[Step, ...] = ()

    @property
    def name(self) -> str:
        return "-".join(s.name for s in self.steps) or "as-is"


@dataclass(frozen=True)
class VocabSource:
    """The text that ranks a vocabulary's pieces for the pruned forms (``edgekit export prune-vocab``'s flags)."""

    files: tuple[Path, ...]
    examples: tuple[Any, ...]
    english_words: int
    split: str | None = None


def _int8(reduce_range: bool, embedding_bits: int = 8) -> Step:
    def build(src: Bundle, out: Path) -> Bundle:
        from edgekit.export.quantize import DynamicInt8, quantize_dynamic_bundle

        settings = DynamicInt8(reduce_range=reduce_range, embedding_bits=embedding_bits)
        return quantize_dynamic_bundle(src, out, out.name, settings)

    flags = ([] if reduce_range else ["--full-range"]) + (["--embedding-bits", "4"] if embedding_bits == 4 else [])
    name = "int8" + ("" if reduce_range else "-full-range") + ("-emb4" if embedding_bits == 4 else "")
    return Step(name, build, lambda s, o: ["edgekit", "export", "int8", s, o, *flags])


def _int4(src: Bundle, out: Path) -> Bundle:
    from edgekit.export.quantize import Int4Weights, quantize_int4_bundle

    return quantize_int4_bundle(src, out, out.name, Int4Weights())


def _float_act(name: str, groups: list[str]) -> Step:
    def build(src: Bundle, out: Path) -> Bundle:
        from edgekit.export.quantize import float_activations_bundle

        return float_activations_bundle(src, out, groups, out.name)

    flags = [a for g in groups for a in ("--group", g)]
    return Step(name, build, lambda s, o: ["edgekit", "export", "float-activations", s, o, *flags], keeps_size=True)


def _prune(keep: int, vocab: VocabSource) -> Step:
    def build(src: Bundle, out: Path) -> Bundle:
        from edgekit.export.vocab import prune_bundle

        return prune_bundle(src, out, out.name, keep, list(vocab.examples), list(vocab.files), vocab.english_words)

    flags = [a for f in vocab.files for a in ("--corpus", str(f))] + ["--english-words", str(vocab.english_words)]
    flags += ["--corpus-split", vocab.split] if vocab.split else []
    return Step(
        f"vocab{keep}", build, lambda s, o: ["edgekit", "export", "prune-vocab", s, o, "--keep", str(keep), *flags]
    )


FFN = ["intermediate/dense", "output/dense"]  # the feed-forward products, where int8 activations cost most
INT8, INT8_FULL, INT8_EMB4 = _int8(True), _int8(False), _int8(True, 4)
AS_IS = Form()
FLOAT_ACT = (Form((_float_act("float-act", ["all"]),)), Form((_float_act("float-act-ffn", FFN),)))
INT4 = Form((Step("int4", _int4, lambda s, o: ["edgekit", "export", "int4", s, o]),))


def forms_of(bundle: Bundle, vocab_keep: Sequence[int] = (), vocab: VocabSource | None = None) -> list[Form]:
    """The forms edgekit makes from ``bundle`` (see the module docstring); ``vocab_keep`` adds, to an fp32 start,
    its vocabulary pruned to each size (ranked on ``vocab``), then int8 with 8- and 4-bit embeddings."""
    m = bundle.manifest
    method = m.source.get("quantization", {}).get("method")
    if m.model_format == "onnx" and m.precision == "fp32":
        forms = [AS_IS, Form((INT8,)), Form((INT8_FULL,)), Form((INT8_EMB4,)), INT4]
        for keep in vocab_keep if vocab is not None else ():
            if keep < m.vocab_size:
                forms += [Form((_prune(keep, vocab), INT8)), Form((_prune(keep, vocab), INT8_EMB4))]
        return forms
    if m.model_format == "onnx" and method == "onnxruntime dynamic":
        return [AS_IS, *FLOAT_ACT]
    return [AS_IS]


@dataclass(frozen=True)
class Start:
    """A starting bundle: the path as the command line gave it (or where the fit made it), and the commands that
    made it (a checkpoint's exports, a recipe's training and export; none for a bundle given as it is)."""

    bundle: Bundle
    path: str
    made_by: tuple[tuple[str, ...], ...] = ()


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
    make: list[list[str]] = field(default_factory=list)  # the export commands that build it from its start

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


def _step_dirs(out: Path, base: str, form: Form) -> list[Path]:
    """Where each of ``form``'s steps writes its bundle: ``bundles/<base>-<the steps' names so far>``."""
    names = [s.name for s in form.steps]
    return [out / "bundles" / "-".join([base, *names[: i + 1]]) for i in range(len(names))]


def _build(dirs: list[Path], start: Bundle, form: Form) -> Bundle:
    """The form of ``start``, each step made once into its directory and reused while it verifies (``fit.json``
    records the starts' model hashes and the vocabulary's corpus, so a resumed fit builds from the same)."""
    bundle = start
    for step, path in zip(form.steps, dirs, strict=True):
        if (path / "manifest.json").is_file():
            try:
                bundle = load_bundle(path)
                continue
            except EdgekitError:
                pass  # rebuilt below, in place (an earlier bundle of the same kind)
        bundle = step.build(bundle, path)
    return bundle


def _make_commands(start: str, form: Form, dirs: list[Path]) -> list[list[str]]:
    """The ``edgekit export`` commands that make ``form`` from ``start`` into ``dirs``, in order."""
    sources = [start, *map(str, dirs)]
    return [step.command(src, str(dst)) for step, src, dst in zip(form.steps, sources, dirs, strict=False)]


def _keeps_size(form: Form) -> bool:
    """Whether ``form``'s model file is its start's size (as it is, or float activations): pruned unbuilt."""
    return all(s.keeps_size for s in form.steps)


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
    teacher: str | None = None
    vocab_keep: tuple[int, ...] = ()
    train_recipes: tuple[str, ...] = ()


# what the measurements in an --out depend on: a fit into it must match these to reuse them (the students may
# be added to, the runtimes, threads, rungs, vocabulary sizes and budget may change)
EVIDENCE = ("eval", "seed", "split", "device", "machine", "corpus")


def _rungs(wanted: Sequence[int], total: int, exhaustive: bool) -> list[int]:
    return [total] if exhaustive else sorted({min(n, total) for n in wanted} | {total})


def _teacher_floor(budget: Budget, teacher: Entry | None) -> float | None:
    """The lowest score that meets the bounds, given the teacher's last (whole-set) measurement where it has one."""
    return budget.floor(teacher.last.score if teacher and teacher.measurements else None)


def _meets(e: Entry, budget: Budget, floor: float | None) -> list[str]:
    """What ``e``'s last measurement misses of the budget (``floor``: the lowest score that meets it), in words
    (empty: it meets every bound)."""
    m, misses = e.last, []
    if e.size_mb > budget.max_mb:
        misses.append(f"size {e.size_mb:.1f} MB > {budget.max_mb:g} MB")
    if budget.max_p50_ms is not None and m.p50_ms > budget.max_p50_ms:
        misses.append(f"p50 {m.p50_ms:.1f} ms > {budget.max_p50_ms:g} ms")
    if floor is not None and m.score < floor:
        misses.append(f"score {m.score:.2f} < {floor:.2f}")
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
    alive: list[Entry],
    data: dict[str, tuple[np.ndarray, np.ndarray]],
    boot: dict,
    n: int,
    budget: Budget,
    floor: np.ndarray | float | None,
) -> None:
    """Drop what the rung shows, with 95% confidence, cannot be the answer (see the module docstring); ``floor``
    is the lowest score that meets the bounds, per resample (the teacher's share is paired with the candidates)."""

    def above_floor(cid: str) -> np.ndarray:
        return boot[cid] - (0.0 if floor is None else floor)

    sure = [
        e
        for e in alive
        if (budget.max_p50_ms is None or e.last.p50_ci[1] <= budget.max_p50_ms)
        and (floor is None or np.percentile(above_floor(e.candidate.id), 2.5) >= 0)
    ]
    for e in alive:
        cid = e.candidate.id
        if budget.max_p50_ms is not None and e.last.p50_ci[0] > budget.max_p50_ms:
            e.status = f"dropped after {n}: p50 above {budget.max_p50_ms:g} ms with 95% confidence"
            continue
        if floor is not None and np.percentile(above_floor(cid), 97.5) < 0:
            e.status = f"dropped after {n}: score below the floor ({_floor_words(budget)}) with 95% confidence"
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


def _floor_words(budget: Budget) -> str:
    said = [f"{budget.min_score:g}"] if budget.min_score is not None else []
    return " and ".join(said + ([f"{budget.min_share:g} of the teacher's"] if budget.min_share is not None else []))


def fit(
    settings: FitSettings,
    out: Path,
    device: Device,
    time_budget_s: float | None = None,
    argv: Sequence[str] | None = None,
    say: Callable[[str], None] = lambda s: print(s, file=sys.stderr),
    vocab: VocabSource | None = None,
) -> dict[str, Any]:
    """Train the recipes (within the time budget), search the space and write ``fit.json``, ``fit.md``,
    ``fit.png`` and ``report/`` into ``out``; ``vocab`` ranks the pieces of the pruned forms."""
    t0 = time.time()
    checkpoints = [s for s in settings.starts if is_checkpoint(s)]
    starts = [Start(load_bundle(s), s) for s in settings.starts if s not in checkpoints]
    models = {c: _load_checkpoint(c) for c in checkpoints}  # a bad one is refused before anything is written
    teacher = load_bundle(settings.teacher) if settings.teacher else None
    recipes = _recipes(settings.train_recipes, out)
    tasks = {b.manifest.task for b in [*(s.bundle for s in starts), *([teacher] if teacher else [])]}
    if models:
        from edgekit.export.to_onnx import task_of

        tasks |= {task_of(m) for m in models.values()}
    tasks |= {r.task for r in recipes}
    if len(tasks) != 1:
        raise InputError(None, "the students, recipes and teacher", f"bundles of one task, got {sorted(tasks)}")
    if settings.budget.min_share is not None and teacher is None:
        raise InputError(None, "--min-share", "a --teacher bundle, measured alongside, whose score it is a share of")
    if settings.vocab_keep and vocab is None:
        raise InputError(None, "--vocab-keep", "the text that ranks the pieces (--corpus)")
    task = get_task(tasks.pop())
    eval_path = resolve_data_path(settings.eval, Path(settings.eval))  # packaged:dev too
    # a bad evaluation set is refused before anything trains
    examples_all = task.load_examples(eval_path, settings.split, starts[0].bundle.manifest) if starts else None
    inputs = [*settings.starts, *([settings.teacher] if settings.teacher else []), eval_path]
    out = claim(out, FIT, [*inputs, *(p for r in recipes for p in r.recipe.inputs())])
    check_destination(out / "report", REPORT)  # written last: refused now, not after the measuring
    with locked(out):
        # checked on the given bundles before anything is exported or trained, and written first, so a fit killed
        # while training finds its directory (and its checkpoints) again
        record = {"settings": _evidence(settings, starts, vocab), "budget": asdict(settings.budget)}
        if not _check_earlier(out, record["settings"]):
            write_json(out / "fit.json", {**record, "status": "running", "candidates": []})
        added = [s for c, m in models.items() for s in _export_checkpoint(c, m, out, task, eval_path, settings.split)]
        deadline = None if time_budget_s is None else t0 + time_budget_s
        trained, untrained = _train(recipes, deadline, say)
        added += [Start(load_bundle(p), p, made) for p, made in trained]
        if added:  # their hashes too, now that they are known
            starts += added
            record["settings"]["starts_sha256"] = _start_hashes(starts)
            _check_earlier(out, record["settings"])
        if not starts:
            raise EdgekitError(f"no student to search: {'; '.join(untrained)}")
        if examples_all is None:
            examples_all = task.load_examples(eval_path, settings.split, starts[0].bundle.manifest)
        return _fit(
            settings, out, device, task, starts, teacher, examples_all, record, t0, time_budget_s, argv, say, vocab
        )


def is_checkpoint(path: str) -> bool:
    """A transformers model directory (its config.json, no bundle manifest): exported by the fit, then searched."""
    p = Path(path)
    return p.is_dir() and (p / "config.json").is_file() and not (p / "manifest.json").exists()


def _load_checkpoint(path: str) -> Any:
    from edgekit.export.models import load_trained

    model = load_trained(path)
    if model.fresh_head:
        raise InputError(Path(path), "model", "a trained model of one of edgekit's tasks, with its head (none here)")
    return model


def _export_checkpoint(path: str, model: Any, out: Path, task: Task, eval_path: Path, split: str | None) -> list[Start]:
    """A checkpoint's starts, made as ``edgekit export onnx`` and ``edgekit export tflite`` make them (default window
    lengths) into ``out/exported/<name>``: fp32 ONNX and, with the tflite extra, fp32 and int8 TFLite, the fp32
    ones checked against PyTorch on the evaluation set's first examples. Bundles there of the same checkpoint
    (by the hash of its files, in their manifests) are reused."""
    from edgekit.bundle import sha256_file
    from edgekit.export.to_onnx import onnx_bundle, validate
    from edgekit.export.to_tflite import tflite_bundles

    p = Path(path)
    files = sorted(f for f in p.iterdir() if f.is_file() and not f.is_symlink())
    digest = hashlib.sha256("".join(f"{f.name}\0{sha256_file(f)}\n" for f in files).encode()).hexdigest()
    source = {"checkpoint_sha256": digest}
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", p.name if p.name != "model" else f"{p.parent.name}-model")
    where, check = out / "exported" / name, ("--validate-dataset", str(eval_path))
    onnx_dir = where / f"{name}-fp32-onnx"
    steps: list[tuple[tuple[str, ...], list[Path], Callable[[], list[Bundle]]]] = [
        (
            ("edgekit", "export", "onnx", path, str(onnx_dir), *check),
            [onnx_dir],
            lambda: [onnx_bundle(model, onnx_dir, onnx_dir.name, source=source)],
        )
    ]
    if importlib.util.find_spec("litert_torch") is not None:
        steps.append(
            (
                ("edgekit", "export", "tflite", path, str(where), "--name", name, *check),
                [where / f"{name}-{q}-tflite" for q in ("fp32", "int8")],
                lambda: tflite_bundles(model, where, name, source=source),
            )
        )
    starts, examples = [], None
    for command, paths, build in steps:
        made = _same_checkpoint(paths, digest)
        for b in made or build():
            if made is None and b.manifest.precision == "fp32":
                examples = examples or list(task.load_examples(eval_path, split, b.manifest))[:8]
                validate(model, b, examples).require_ok(b.path)
            starts.append(Start(b, str(b.path), (command,)))
    return starts


def _same_checkpoint(paths: list[Path], digest: str) -> list[Bundle] | None:
    """The bundles at ``paths`` when each loads and was made from the checkpoint of ``digest``; None otherwise."""
    try:
        bundles = [load_bundle(p) for p in paths]
    except EdgekitError:
        return None
    return bundles if all(b.manifest.source.get("checkpoint_sha256") == digest for b in bundles) else None


@dataclass(frozen=True)
class _Recipe:
    """A recipe to train: as the user named it, as read (into ``--out``), and the task its student is for."""

    given: str
    recipe: Recipe
    task: str


def _recipes(names: Sequence[str], out: Path) -> list[_Recipe]:
    """The recipes to train, read now (a bad one is refused before anything runs), each writing into
    ``out/trained/<its name>``."""
    from edgekit.export.recipes import load_recipe
    from edgekit.tasks import RECIPE_NAMES

    recipes = [load_recipe(n, [f"output_dir={json.dumps(str(out / 'trained'))}"]) for n in names]
    seen = [r.name for r in recipes]
    if len(set(seen)) != len(seen):
        raise InputError(None, "--train-recipes", f"recipes of distinct names (each trains into its own), got {seen}")
    return [_Recipe(n, r, RECIPE_NAMES[r.task]) for n, r in zip(names, recipes, strict=True)]


def _train(
    recipes: list[_Recipe], deadline: float | None, say: Callable[[str], None]
) -> tuple[list[tuple[str, tuple[tuple[str, ...], ...]]], list[str]]:
    """Each recipe's student trained (resumed where a checkpoint is) until the deadline, then exported as
    ``edgekit export --recipe`` exports it (fp32 and int8 ONNX and, with the tflite extra, fp32 and int8 TFLite,
    each checked against PyTorch and by the runner on a few dev examples): the bundles that start the search (all
    but the int8 ONNX, which is the fp32 one's int8 form), each with the commands that made it, in the recipes'
    order, and what stopped the others."""
    from edgekit.export.distill import StoppedAtDeadline, run_distill
    from edgekit.export.pipeline import Variants, export_all

    trained, untrained = [], []
    tflite = importlib.util.find_spec("litert_torch") is not None
    for r in recipes:
        if not (r.recipe.out / "result.json").is_file():
            if deadline is not None and time.time() > deadline:
                untrained.append(f"{r.given}: not trained, the time budget was spent")
                continue
            say(f"fit: training {r.given} into {r.recipe.out}")
            try:
                run_distill(
                    r.recipe, evaluate=False, argv=["edgekit", "distill", "--recipe", r.given], deadline=deadline
                )
            except StoppedAtDeadline as e:
                untrained.append(f"{r.given}: {e}")
                continue
        rows = export_all(r.recipe, TRAINED_CHECK, Variants(tflite=tflite))
        at = ["--recipe", r.given, "--set", f"output_dir={json.dumps(str(r.recipe.out.parent))}"]
        made = (("edgekit", "distill", *at), ("edgekit", "export", *at, *([] if tflite else ["--no-tflite"])))
        trained += [(row.path, made) for row in rows if (row.format, row.precision) != ("onnx", "int8")]
    for line in untrained:
        say(f"fit: {line}")
    return trained, untrained


def _space(
    settings: FitSettings, starts: list[Start], vocab: VocabSource | None
) -> list[tuple[Candidate, Start, Form, str]]:
    """Every candidate, with its start, its form and the name its built bundles' directories begin with."""
    space = []
    for i, start in enumerate(starts):
        m = start.bundle.manifest
        backends = [b for b in _runtimes(start.bundle) if settings.backends is None or b in settings.backends]
        for form in forms_of(start.bundle, settings.vocab_keep, vocab):
            for backend in backends:
                for threads in settings.threads:
                    key = f"s{i}-{m.name}"
                    cid = f"{key}-{form.name}-{backend}-t{threads or 'auto'}"
                    space.append((Candidate(cid, start.path, form.name, backend, threads), start, form, key))
    return space


def _runtimes(bundle: Bundle) -> list[str]:
    """The runtimes that run ``bundle``'s format (bf16 OpenVINO is not searched)."""
    from edgekit.backends import BACKENDS

    return [b for b, f in BACKENDS.items() if f == bundle.manifest.model_format and b != "openvino-bf16"]


def _teacher_entry(settings: FitSettings, teacher: Bundle) -> Entry:
    """The teacher as a reference, never a candidate: its format's first runtime (among ``--backends`` where
    one is), the first thread count."""
    own = _runtimes(teacher)
    backend = next((b for b in own if settings.backends is None or b in settings.backends), own[0])
    sha = teacher.manifest.files[teacher.manifest.model_file].sha256
    cid = f"teacher-{teacher.manifest.name}-{sha[:8]}"
    c = Candidate(cid, str(settings.teacher), "as-is", backend, settings.threads[0])
    return Entry(c, str(settings.teacher), round(teacher.model_size_mb, 3), "reference")


def _evidence(settings: FitSettings, starts: list[Start], vocab: VocabSource | None) -> dict[str, Any]:
    """``fit.json``'s settings: the fit's own, the starts' model hashes, the machine of a local device and the
    vocabulary's corpus (by hash)."""
    from edgekit.bundle import sha256_file
    from edgekit.device import describe

    # a device reached over ssh or adb is known by its address; this machine by its CPU, cores and runtimes
    here = {k: v for k, v in describe().items() if k in ("cpu", "cpu_features", "cores_logical", "runtimes")}
    return {
        **{k: v for k, v in _jsonable(asdict(settings)).items() if k != "budget"},
        "starts_sha256": _start_hashes(starts),
        "machine": here if settings.device == "local" else None,
        "corpus": None
        if vocab is None
        else {
            "files": [{"file": f.name, "sha256": sha256_file(f)} for f in vocab.files],
            "split": vocab.split,
            "english_words": vocab.english_words,
        },
    }


def _start_hashes(starts: list[Start]) -> list[str]:
    return [s.bundle.manifest.files[s.bundle.manifest.model_file].sha256 for s in starts]


def _differs(found: Any, now: dict[str, Any]) -> str | None:
    """The first setting in which an earlier fit's measurements were made otherwise than this fit's would be
    (None: they can be reused). The starting students may be added to, never changed or reordered."""
    if not isinstance(found, dict):
        return "settings"
    for key in EVIDENCE:
        if found.get(key) != now[key]:
            return key
    shas, earlier = now["starts_sha256"], found.get("starts_sha256")
    if not isinstance(earlier, list) or shas[: len(earlier)] != earlier[: len(shas)]:
        return "starts_sha256"
    return None


def _check_earlier(out: Path, settings: dict[str, Any]) -> bool:
    """Whether ``out`` holds an earlier fit, refusing one whose measurements were made otherwise (``_differs``): a
    fit into the same --out reuses every bundle and measurement there (the runner resumes its runs) and measures
    only what it needs besides."""
    earlier = out / "fit.json"
    if not earlier.is_file():
        return False
    found = read_json(earlier, "fit record", READ_BACK_BYTES, read_back=True)
    why = _differs(found.get("settings") if isinstance(found, dict) else None, settings)
    if why is not None:
        raise InputError(
            earlier,
            f"field 'settings.{why}'",
            "the same evaluation set, seed, device and starting students as the measurements there; use a new --out",
        )
    return True


def _fit(
    settings: FitSettings,
    out: Path,
    device: Device,
    task: Task,
    starts: list[Start],
    teacher_bundle: Bundle | None,
    examples_all: Sequence[Any],
    record: dict[str, Any],
    t0: float,
    time_budget_s: float | None,
    argv: Sequence[str] | None,
    say: Callable[[str], None],
    vocab: VocabSource | None,
) -> dict[str, Any]:
    order = order_file(out, task)
    if not order.is_file():
        _write_order(task, examples_all, order, settings.seed)
    examples = task.load_examples(order, None, starts[0].bundle.manifest)
    rungs = _rungs(settings.rungs, len(examples), settings.exhaustive)
    budget = settings.budget

    entries: list[Entry] = []
    for c, start, form, key in _space(settings, starts, vocab):
        dirs = _step_dirs(out, key, form)
        make = [list(m) for m in start.made_by] + _make_commands(c.start, form, dirs)
        if _keeps_size(form) and start.bundle.model_size_mb > budget.max_mb:
            size = round(start.bundle.model_size_mb, 3)
            entry = Entry(c, "", size, f"over {budget.max_mb:g} MB (unbuilt)", make=make)
        else:
            bundle = _build(dirs, start.bundle, form)
            entry = Entry(c, _shown(bundle.path, out), round(bundle.model_size_mb, 3), make=make)
            entry.status = "running" if entry.size_mb <= budget.max_mb else f"over {budget.max_mb:g} MB"
        entries.append(entry)
    teacher = _teacher_entry(settings, teacher_bundle) if teacher_bundle else None
    say(f"fit: {len(entries)} candidates, {sum(e.status == 'running' for e in entries)} within the size bound")

    stopped = None
    for n in rungs:
        alive = [e for e in entries if e.status == "running"]
        measured = [teacher] if teacher and alive else []
        data: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for e in measured + alive:
            if time_budget_s is not None and time.time() - t0 > time_budget_s:
                stopped = f"time budget of {time_budget_s:g} s spent before rung {n} was done"
                break
            m, comp, lat = _measure(device, task, e, out, order, examples, n)
            e.measurements.append(m)
            data[e.candidate.id] = (comp, lat)
            say(f"  {e.candidate.id}: {n} examples, {task.headline} {m.score:.2f}, p50 {m.p50_ms:.1f} ms")
            _write(out, record, entries, teacher, None, argv, t0)
        if stopped:
            break
        boot = _intervals(measured + alive, data, n, settings.seed)
        if n < rungs[-1]:
            _eliminate(alive, data, boot, n, budget, budget.floor(boot[teacher.candidate.id] if measured else None))
        else:
            for e in alive:
                e.status = "measured on all"
    return _write(out, record, entries, teacher, stopped, argv, t0, task, len(examples), budget)


def _bundle_path(e: Entry, out: Path) -> Path:
    """Where ``e``'s bundle is: its start as the user gave it (or where the fit made it), a built form inside
    ``out``."""
    return Path(e.candidate.start) if e.candidate.form == "as-is" else out / e.bundle


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
    teacher: Entry | None,
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
    doc["teacher"] = _jsonable(asdict(teacher)) if teacher else None
    if task is not None and budget is not None:
        full = [e for e in entries if e.status == "measured on all"]
        doc.update(_answer(full, budget, entries, teacher, total, out))
        if full:  # the device every measurement was made on, as its runner recorded it
            doc["device"] = read_metrics(out / full[0].last.run_dir / "metrics.json")["device"]
        doc["status"] = stopped or "finished"
    doc["seconds"] = round(time.time() - t0, 1)
    doc["command"] = list(argv or [])
    write_json(out / "fit.json", doc)
    if task is not None:
        _pages(out, doc, entries, teacher, task, budget)
    return doc


def _answer(
    full: list[Entry], budget: Budget, entries: list[Entry], teacher: Entry | None, total: int, out: Path
) -> dict[str, Any]:
    """The chosen candidate (or the nearest and what it misses), the Pareto front and what the search cost."""
    floor = _teacher_floor(budget, teacher)
    meeting = [e for e in full if not _meets(e, budget, floor)]
    chosen = max(meeting, key=lambda e: (e.last.score, -e.last.p50_ms, -e.size_mb), default=None)
    answer: dict[str, Any] = {"chosen": None, "nearest": None, "missing": []}
    if chosen is not None:
        answer["chosen"] = chosen.candidate.id
        answer["commands"] = _commands(chosen, out)
    elif full:

        def shortfall(e: Entry) -> float:
            m = e.last
            lat = max(0.0, m.p50_ms / budget.max_p50_ms - 1) if budget.max_p50_ms else 0.0
            score = max(0.0, 1 - m.score / floor) if floor else 0.0
            return max(0.0, e.size_mb / budget.max_mb - 1) + lat + score

        nearest = min(full, key=shortfall)
        answer.update(
            nearest=nearest.candidate.id, missing=_meets(nearest, budget, floor), commands=_commands(nearest, out)
        )
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
    bundle = str(_bundle_path(e, out))
    run = ["edgekit", "run", bundle, "--dataset", "EVAL", "--out", "OUT", "--backend", e.candidate.backend]
    return [*e.make, run + (["--threads", str(e.candidate.threads)] if e.candidate.threads else [])]


def _share(e: Entry, teacher: Entry | None) -> str:
    """``e``'s last score as a share of the teacher's on the same examples ('' without a teacher measured so)."""
    same = [m for m in (teacher.measurements if teacher else []) if e.measurements and m.n == e.last.n]
    return f"{e.last.score / same[0].score:.1%}" if same and same[0].score else ""


def _pages(
    out: Path, doc: dict[str, Any], entries: list[Entry], teacher: Entry | None, task: Task, budget: Budget | None
) -> None:
    """fit.md (the teacher and every candidate), fit.png (score against size and latency, the bounds drawn, the
    choice marked) and the existing report over the fully measured candidates, against the teacher where measured."""
    rows = []
    for e in [*([teacher] if teacher else []), *entries]:
        m = e.measurements[-1] if e.measurements else None
        mark = " (chosen)" if e.candidate.id == doc.get("chosen") else ""
        rows.append(
            [
                e.candidate.id + mark,
                f"{e.size_mb:.1f}",
                f"{m.score:.2f}" + (f" [{m.score_ci[0]:.1f}, {m.score_ci[1]:.1f}]" if m.score_ci else "") if m else "",
                *([_share(e, teacher)] if teacher else []),
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
    columns = ["candidate", "MB", f"{task.headline} [95% CI]", *(["of teacher"] if teacher else [])]
    table = md_table([*columns, "p50 ms", "examples", "status"], rows)
    write_text(out / "fit.md", "\n".join([*head, *table]) + "\n")
    full = [e for e in entries if e.status == "measured on all"]
    if full and budget is not None:
        reference = teacher if teacher and teacher.measurements and teacher.last.n == full[0].last.n else None
        floor = _teacher_floor(budget, reference)
        _plot(out / "fit.png", full, doc.get("chosen"), budget, task.headline, floor)
        from edgekit.export.report import write_report

        runs = [out / e.last.run_dir for e in [*([reference] if reference else []), *full]]
        baseline = load_bundle(reference.bundle).manifest.name if reference else None
        write_report(runs, out / "report", baseline)


def _plot(
    path: Path, full: list[Entry], chosen: str | None, budget: Budget, headline: str, floor: float | None
) -> None:
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
        if floor is not None:
            ax.axhline(floor, color="grey", linestyle=":", label=f"floor {floor:.2f}")
        if bound is not None or floor is not None:
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
