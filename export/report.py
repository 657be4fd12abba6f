"""The teacher-vs-students report: one table, three plots, as Markdown, HTML and JSON.

Inputs are the runner's ``metrics.json`` files (any bundles, any devices; a run
directory stands for the ``metrics.json`` inside it) and, optionally, the size
report ``compress.json``, whose reference rows (BERT-base, BERT-large, the
teacher) become the grey bars of the size plot. Every number in the outputs is
read from those files; nothing is typed in here.

Speedup is the teacher's median latency per example divided by the row's, on
the same device and task; the teacher is the row with the largest model file there
(so an fp32 model is the baseline of its own int8 form) unless ``baseline`` names
one (no speedup where a device ran only one model size). Runs of several tasks
(extractive QA, text and token classification) are grouped by task: a table, a headline and a
Pareto front each, since their scores (F1, accuracy) do not compare.
"""

from __future__ import annotations

import base64
import html
import math
import shutil
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from edgekit.atomic import write_bytes, write_json, write_text
from edgekit.destination import REPORT, replacing
from edgekit.device_runners.deploy import read_fleet
from edgekit.errors import InputError
from edgekit.jsonfile import read_json
from edgekit.predlog import COMMON_FIELDS, read_log
from edgekit.result import check_metrics
from edgekit.text import md_cell, md_table

T = TypeVar("T")

PLOTS = ("sizes.png", "f1_vs_latency.png", "latency_by_device.png", "score_vs_size.png")


@dataclass(frozen=True)
class Row:
    """One model x format x precision x device measurement."""

    model: str
    device: str
    threads: int | None
    params: int
    layers: int
    method: str
    format: str
    precision: str
    size_mb: float
    exact_match: float | None  # QA
    f1: float | None
    bertscore_f1: float | None
    n_questions: int  # questions or examples
    latency_p50_ms: float
    latency_p90_ms: float
    throughput_qps: float
    peak_rss_mb: float
    speedup: float | None
    metrics_path: str
    is_baseline: bool = False  # the row the device's speedups are against (the teacher)
    emulated: bool = False  # latencies are emulation time (device_runners/raspberry_pi/emulate.py)
    task: str = "extractive-qa"
    accuracy: float | None = None  # text classification
    macro_f1: float | None = None
    surface_f1: float | None = None  # token classification (its entity F1 is ``f1``)
    dataset: str = ""  # the file the run read, by name: rows over different files are not comparable

    @property
    def score(self) -> float:
        """The task's headline score: F1 for QA (entity F1 for a tagger), accuracy for a classifier."""
        return self.f1 if self.accuracy is None else self.accuracy  # type: ignore[return-value]

    @property
    def score_name(self) -> str:
        return "accuracy" if self.accuracy is not None else "entity F1" if self.surface_f1 is not None else "F1"


def device_label(d: dict[str, Any]) -> str:
    """A short, honest name for where a run happened; emulated runs say so."""
    if d.get("emulated"):
        return f"{d.get('cpu', '?')} (emulated, qemu on x86_64)"
    return f"{d.get('cpu', '?')} ({d.get('arch', '?')}, {d.get('cores_logical', '?')} cores)"


def method_of(bundle: dict[str, Any]) -> str:
    src = bundle.get("source", {})
    if src.get("method"):
        return str(src["method"])
    if src.get("model") and not src.get("recipe"):
        return "teacher (fine-tuned)" if not (src.get("fresh_qa_head") or src.get("fresh_head")) else "untrained head"
    return str(src.get("recipe", "?"))


def _metrics_file(path: Path) -> Path:
    return path / "metrics.json" if path.is_dir() else path


def _expand(path: Path) -> list[Path]:
    """A fleet deploy's directory stands for the results of the devices its ``fleet.json`` lists as finished;
    anything else for itself."""
    fleet_file = path / "fleet.json"
    if not (fleet_file.is_file() or fleet_file.is_symlink()):
        return [path]
    fleet = read_fleet(fleet_file)
    return [path / d.results for d in fleet.devices if d.ok]


def read_inputs(paths: list[Path]) -> tuple[list[tuple[Path, dict[str, Any]]], list[dict[str, Any]]]:
    """Split inputs into runner metrics and size-reference rows, refusing anything else by name."""
    runs, refs = [], []
    for p in [d for given in paths for d in _expand(Path(given))]:
        f = _metrics_file(Path(p))
        obj = read_json(f, "results")
        if isinstance(obj, dict) and "latency_ms" in obj and ("f1" in obj or "accuracy" in obj) and "bundle" in obj:
            runs.append((f, obj))  # checked by build_rows
        elif isinstance(obj, dict) and isinstance(obj.get("rows"), list):
            for i, r in enumerate(obj["rows"]):
                if isinstance(r, dict) and r.get("kind") == "reference":
                    _value(r, "name", f, str, where=f"rows[{i}]")
                    _value(r, "size_mb", f, float, where=f"rows[{i}]")
                    _value(r, "params", f, int, where=f"rows[{i}]")
                    refs.append(r)
        else:
            raise InputError(
                f, "top level", "a runner metrics.json (f1 or accuracy, latency_ms, bundle) or compress.json (rows)"
            )
    if not runs:
        raise InputError(paths[0] if paths else Path("."), "inputs", "at least one runner metrics.json")
    return runs, refs


def _bertscore(metrics_path: Path) -> float | None:
    """BERTScore F1 from ``bertscore.json`` beside the metrics (benchmarks/bertscore.py), if computed."""
    f = metrics_path.with_name("bertscore.json")
    return _value(read_json(f, "BERTScore"), "f1", f, float) if f.exists() else None


def _value(obj: Any, dotted: str, path: Path, kind: type, where: str = "") -> Any:
    """``obj[a][b]...`` for ``dotted`` = "a.b...", of type ``kind`` (float: any finite number, int: a whole one)."""
    value = obj
    for key in dotted.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    place = f"{where}: field '{dotted}'" if where else f"field '{dotted}'"
    if kind is float:
        try:
            ok = not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(float(value))
        except OverflowError:  # an integer beyond any float
            ok = False
        if not ok:
            raise InputError(path, place, f"a finite number, got {_short(value)}")
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InputError(path, place, f"a {kind.__name__}, got {_short(value)}")
    if kind is str and not value.isprintable():
        raise InputError(path, place, f"printable text, got {_short(value)}")
    return value


def _short(value: Any) -> str:
    text = ascii(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _dataset_name(m: dict[str, Any]) -> str:
    """The name of the file a run read (and its split), as its metrics.json records it; '?' when it does not."""
    d = m.get("dataset")
    path = d.get("path") if isinstance(d, dict) else None
    if not isinstance(path, str):
        return "?"
    split = (m.get("run_config") or {}).get("split") if isinstance(m.get("run_config"), dict) else None
    return Path(path).name + (f":{split}" if isinstance(split, str) else "")


def build_rows(runs: list[tuple[Path, dict[str, Any]]], baseline: str | None = None) -> list[Row]:
    """One row per metrics file, each checked against the run schema first (``edgekit.result.check_metrics``: a
    hand-edited or foreign file gets one line, not a crash), then read as the record it is."""
    rows = []
    for path, m in runs:
        check_metrics(m, path)
        b, lat = m["bundle"], m["latency_ms"]
        if lat["p50"] <= 0:
            raise InputError(path, "field 'latency_ms.p50'", f"a positive time, got {lat['p50']}")
        task = m.get("task", "extractive-qa")
        if task == "token-classification":
            scores = {"exact_match": None, "f1": float(m["f1"]), "surface_f1": float(m["surface_f1"])}
        elif task == "text-classification":
            scores = {
                "exact_match": None,
                "f1": None,
                "accuracy": float(m["accuracy"]),
                "macro_f1": float(m["macro_f1"]),
            }
        else:
            scores = {"exact_match": float(m["exact_match"]), "f1": float(m["f1"])}
        scores["n_questions"] = m["n_questions"] if task == "extractive-qa" else m["n_examples"]
        rows.append(
            Row(
                model=b["name"],
                device=device_label(m.get("device", {})),
                threads=m.get("threads"),
                params=b["params"],
                layers=b["layers"],
                method=method_of(b),
                format=b["format"],
                precision=b["precision"],
                size_mb=float(b["model_size_mb"]),
                bertscore_f1=_bertscore(path) if task == "extractive-qa" else None,
                **scores,
                task=task,
                latency_p50_ms=float(lat["p50"]),
                latency_p90_ms=float(lat["p90"]),
                throughput_qps=float(m["throughput_qps"]),
                peak_rss_mb=float(m["peak_rss_mb"]),
                speedup=None,
                metrics_path=str(path),
                emulated=bool(m.get("device", {}).get("emulated")),
                dataset=_dataset_name(m),
            )
        )
    if baseline and baseline not in {r.model for r in rows}:
        names = ", ".join(sorted({r.model for r in rows}))
        raise InputError(None, f"--baseline {baseline}", f"the name of a bundle in the inputs: {names}")
    out = []
    for r in rows:
        same = [x for x in rows if x.device == r.device and x.task == r.task]
        if baseline:
            base = next((x for x in same if x.model == baseline), None)
        else:  # the teacher: the largest model on disk, when the device ran models of different sizes
            base = max(same, key=lambda x: x.size_mb) if len({x.size_mb for x in same}) > 1 else None
        # emulated latencies are emulation time: their ratios say nothing about the board's speed
        speed = base.latency_p50_ms / r.latency_p50_ms if base and not r.emulated else None
        out.append(replace(r, speedup=speed, is_baseline=r is base))
    return sorted(out, key=lambda r: (r.task, r.device, -r.params, r.format, r.precision))


def headline(rows: list[Row]) -> list[str]:
    """Per task and device: the baseline (teacher) against the best student: x smaller, x faster, share of its
    score (F1, accuracy).

    The best student is the smallest one within one point of the most accurate student on that
    device: what fits a budget without giving up what the other students reach.
    """
    lines = []
    for task, dev in sorted({(r.task, r.device) for r in rows}):
        same = [r for r in rows if r.device == dev and r.task == task]
        base = next((r for r in same if r.is_baseline), None)
        others = [r for r in same if r is not base]
        if base is None or not others:
            continue
        # the smallest student within one F1 point of the most accurate one (then the faster)
        top = max(r.score for r in others)
        best = min((r for r in others if r.score >= top - 1.0), key=lambda r: (r.size_mb, r.latency_p50_ms))
        prefix = f"{task}, " if len({r.task for r in rows}) > 1 else ""
        fast = f", {best.speedup:.1f}× faster," if best.speedup else " (latency here is emulation time: not compared)"
        lines.append(
            f"{prefix}{dev}: {best.model} ({best.format} {best.precision}, {best.size_mb:.1f} MB) is "
            f"{base.size_mb / best.size_mb:.1f}× smaller than {base.model} ({base.size_mb:.1f} MB){fast} "
            + (
                f"and keeps {100 * best.score / base.score:.1f}% of its {best.score_name} "
                if base.score
                else f"and scores {best.score_name} "
            )
            + f"({best.score:.1f} vs {base.score:.1f}, {_questions([best, base])})."
        )
    return lines


def budget_picks(rows: list[Row], budgets: Iterable[float]) -> list[dict[str, Any]]:
    """Per task, device and size budget (MB of model file): the most accurate row that fits (then the smaller,
    then the faster), with its share of the baseline's score; ``best`` is None where nothing measured fits."""
    picks = []
    for task, dev in sorted({(r.task, r.device) for r in rows}):
        same = [r for r in rows if r.device == dev and r.task == task]
        base = next((r for r in same if r.is_baseline), None)
        for mb in sorted(set(budgets)):
            fits = [r for r in same if r.size_mb <= mb]
            best = max(fits, key=lambda r: (r.score, -r.size_mb, -r.latency_p50_ms), default=None)
            picks.append(
                {
                    "task": task,
                    "device": dev,
                    "budget_mb": mb,
                    "best": None if best is None else rows.index(best),
                    "kept": best.score / base.score if best and base and base.score else None,
                }
            )
    return picks


def budget_lines(rows: list[Row], picks: list[dict[str, Any]]) -> list[str]:
    """The size-budget picks in words, one line each."""
    lines = []
    several = len({r.task for r in rows}) > 1
    for p in picks:
        where = f"{p['task'] + ', ' if several else ''}{p['device']}, within {p['budget_mb']:g} MB"
        if p["best"] is None:
            lines.append(f"{where}: no measured form fits.")
            continue
        r = rows[p["best"]]
        kept = f" ({100 * p['kept']:.1f}% of the baseline's)" if p["kept"] is not None else ""
        fast = f", {r.speedup:.1f}× faster" if r.speedup else ""
        lines.append(
            f"{where}: #{p['best'] + 1} {r.model} ({r.format} {r.precision}, {r.size_mb:.1f} MB), "
            f"{r.score_name} {r.score:.1f}{kept}{fast}."
        )
    return lines


def _questions(rows: list[Row]) -> str:
    counts = sorted({r.n_questions for r in rows})
    noun = "questions" if all(r.task == "extractive-qa" for r in rows) else "examples"
    return f"{counts[0]:,} {noun}" if len(counts) == 1 else "on " + " / ".join(f"{n:,}" for n in counts) + f" {noun}"


def title(rows: list[Row]) -> str:
    """What the report shows, and no more: 'teacher vs students' only when some device has a baseline."""
    devices = len({r.device for r in rows})
    # a teacher is a baseline of another model than some row (not the fp32 form of the same one)
    has_teacher = any(b.is_baseline and any(r.device == b.device and r.params != b.params for r in rows) for b in rows)
    what = "teacher vs students" if has_teacher else f"{len(rows)} run{'s' if len(rows) != 1 else ''}"
    return f"edgekit report: {what} on {_plural(devices, 'device')}, {_questions(rows)}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def pareto_front(items: Iterable[T], cost: Callable[[T], float], gain: Callable[[T], float]) -> list[T]:
    """The items no other beats on both cost (lower: latency, size) and gain (higher: a score), cheapest first;
    of equal costs only the best gain."""
    front, best = [], float("-inf")
    for item in sorted(items, key=lambda i: (cost(i), -gain(i))):
        if gain(item) > best:
            front.append(item)
            best = gain(item)
    return front


def _latencies(metrics_path: str) -> list[float]:
    """Per-question latencies from the prediction log beside a metrics file (none if it has no log)."""
    log = Path(metrics_path).with_name("predictions.jsonl")
    if not log.exists():
        return []
    records = read_log(log, repair=False, fields=COMMON_FIELDS)  # any task: only the latencies are read
    return [_value(r, "latency_ms", log, float, where=f"id {r['id']}") for r in records]


def plot(rows: list[Row], refs: list[dict[str, Any]], out: Path, budgets: Iterable[float] = ()) -> list[Path]:
    """Write the four PNG plots; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    def plain_log_x(ax) -> None:
        """A log axis with labels a person reads: plain numbers, 1-2-5 in every decade unless that crowds them."""
        ax.set_xscale("log")
        lo, hi = ax.get_xlim()
        subs = (1.0, 2.0, 5.0) if hi / max(lo, 1e-9) < 10**3.5 else (1.0,)
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=subs))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())

    paths = [out / name for name in PLOTS]

    # sizes: one bar per artifact, reference models in grey
    arts = {(r.model, r.format, r.precision): r.size_mb for r in rows}
    labels = [f"{r['name']} (fp32, reference)" for r in refs] + [f"{m} ({f} {p})" for (m, f, p) in arts]
    sizes = [float(r["size_mb"]) for r in refs] + list(arts.values())
    colors = ["#b0b0b0"] * len(refs) + ["#2b6cb0" if p == "fp32" else "#dd6b20" for (_, _, p) in arts]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(labels) + 1.2))
    ax.barh(labels, sizes, color=colors)
    for y, s in enumerate(sizes):
        ax.text(s, y, f" {s:,.1f} MB", va="center", fontsize=8)
    plain_log_x(ax)
    ax.set_xlabel("model file size, MB (log scale)")
    ax.invert_yaxis()
    ax.set_title("Size: references (grey), fp32 (blue), int8 or int4 (orange)")
    fig.tight_layout()
    fig.savefig(paths[0], dpi=110)
    plt.close(fig)

    # score against latency, then against size: the Pareto front per device; points carry the table's row (#)
    markers = "osD^v<>"
    tasks = sorted({r.task for r in rows})
    names = {"extractive-qa": "F1 (SQuAD v1.1)", "text-classification": "accuracy", "token-classification": "entity F1"}

    def score_against(
        x: Callable[[Row], float], xlabel: str, what: str, path: Path, lines: Iterable[float] = ()
    ) -> None:
        """One score-vs-x plot with each device's Pareto front; ``lines``: size budgets drawn at their x."""
        fig, ax = plt.subplots(figsize=(9, 5.5))
        for i, (task, dev) in enumerate(sorted({(r.task, r.device) for r in rows})):
            pts = [(n, r) for n, r in enumerate(rows, 1) if r.device == dev and r.task == task]
            sc = ax.scatter([x(r) for _, r in pts], [r.score for _, r in pts], marker=markers[i % len(markers)])
            for n, r in pts:
                ax.annotate(str(n), (x(r), r.score), fontsize=8, xytext=(4, 3), textcoords="offset points")
            front = pareto_front([(x(r), r.score) for _, r in pts], lambda p: p[0], lambda p: p[1])
            ax.step(
                [a for a, _ in front],
                [b for _, b in front],
                where="post",
                color=sc.get_facecolor()[0],
                linewidth=2,
                label=f"{task + ', ' if len(tasks) > 1 else ''}{dev}: Pareto front",
            )
        for mb in sorted(set(lines)):
            ax.axvline(mb, color="#718096", linestyle="--", linewidth=1)
            ax.annotate(f"{mb:g} MB", (mb, 1), xycoords=("data", "axes fraction"), fontsize=8, xytext=(3, -12),
                        textcoords="offset points")  # fmt: skip
        plain_log_x(ax)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(", ".join(f"{names[t]}" for t in tasks) + (" (by task)" if len(tasks) > 1 else ""))
        ax.set_title(f"Score vs {what}, {_questions(rows)} (numbers: rows of the table; line: Pareto front)")
        ax.legend(fontsize=8, loc="best")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)

    score_against(lambda r: r.latency_p50_ms, "median latency per example, ms (log scale)", "latency", paths[1])

    # latency distribution per row, grouped by device
    data = [(r, _latencies(r.metrics_path)) for r in rows]
    data = [(r, lat) for r, lat in data if lat]
    fig, ax = plt.subplots(figsize=(11, 0.45 * max(len(data), 1) + 1.8))
    if data:
        devices = sorted({r.device for r, _ in data})
        box = ax.boxplot([lat for _, lat in data], orientation="horizontal", showfliers=False, patch_artist=True)
        palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for patch, (r, _) in zip(box["boxes"], data, strict=True):
            patch.set_facecolor(palette[devices.index(r.device) % len(palette)])
            patch.set_alpha(0.6)
        labels = [f"#{rows.index(r) + 1} {r.model} ({r.format} {r.precision})" for r, _ in data]
        ax.set_yticks(range(1, len(data) + 1), labels, fontsize=8)
        handles = [plt.Rectangle((0, 0), 1, 1, color=palette[i % len(palette)], alpha=0.6) for i in range(len(devices))]
        ax.legend(handles, devices, fontsize=8, loc="best")
        plain_log_x(ax)
    ax.set_xlabel(f"ms per question, {_questions(rows)} (log scale; boxes: quartiles, whiskers: 1.5 IQR)")
    ax.set_title("Latency per question, by run (#) and device")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(paths[2], dpi=110)
    plt.close(fig)

    score_against(
        lambda r: r.size_mb, "model file size, MB (log scale; dashed: size budgets)", "size", paths[3], budgets
    )
    return paths


COLUMNS = [
    ("model", "model"),
    ("dataset", "data"),
    ("device", "device"),
    ("threads", "threads"),
    ("params", "params"),
    ("layers", "layers"),
    ("method", "method"),
    ("format", "format"),
    ("precision", "precision"),
    ("size_mb", "size MB"),
    ("exact_match", "EM"),
    ("f1", "F1"),
    ("bertscore_f1", "BERTScore F1"),
    ("accuracy", "accuracy"),
    ("macro_f1", "macro-F1"),
    ("surface_f1", "surface F1"),
    ("latency_p50_ms", "p50 ms"),
    ("latency_p90_ms", "p90 ms"),
    ("throughput_qps", "q/s"),
    ("peak_rss_mb", "peak RSS MB"),
    ("speedup", "speedup"),
    ("n_questions", "questions"),
]


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "–"
    if key == "params":
        return f"{value / 1e6:.1f}M"
    if key == "speedup":
        return f"{value:.1f}×"
    if key in (
        "size_mb",
        "exact_match",
        "f1",
        "accuracy",
        "macro_f1",
        "surface_f1",
        "latency_p50_ms",
        "latency_p90_ms",
        "throughput_qps",
        "peak_rss_mb",
    ):
        return f"{value:.1f}" if value >= 10 else f"{value:.2f}"
    if key == "bertscore_f1":
        return f"{100 * value:.1f}"
    return str(value)


# the columns of each task's scores; a task's table leaves out the others'
TASK_COLUMNS = {
    "extractive-qa": ("exact_match", "f1", "bertscore_f1"),
    "text-classification": ("accuracy", "macro_f1"),
    "token-classification": ("f1", "surface_f1"),
}


def table_cells(rows: list[Row], task: str | None = None) -> tuple[list[str], list[list[str]]]:
    """The table of ``task``'s rows (all rows when None), each numbered as its point in the plots."""
    other = {c for t, cols in TASK_COLUMNS.items() if t != task for c in cols} - set(TASK_COLUMNS.get(task or "", ()))
    other = other if task else set()
    cols = [(k, h) for k, h in COLUMNS if k not in other]
    head = ["#", *(h for _, h in cols)]
    return head, [
        [str(n), *(_cell(k, getattr(r, k)) for k, _ in cols)]
        for n, r in enumerate(rows, 1)
        if task is None or r.task == task
    ]


def task_tables(rows: list[Row]) -> list[tuple[str, list[str], list[list[str]]]]:
    """One table per task in the rows (their numbers stay those of the plots)."""
    return [(task, *table_cells(rows, task)) for task in sorted({r.task for r in rows})]


def markdown(rows: list[Row], refs: list[dict[str, Any]], plots: list[Path], budgets: list[str] = ()) -> str:
    """report.md: every piece of text from the runs' files escaped (a name holding ``|`` or HTML stays one cell)."""
    lines = [f"# {md_cell(title(rows))}", "", *[f"- {md_cell(line)}" for line in headline(rows)], ""]
    tables = task_tables(rows)
    for task, head, body in tables:
        if len(tables) > 1:
            lines += [f"## {md_cell(task)}", ""]
        lines += [*md_table(head, body), ""]
    if budgets:
        lines += ["## Size budgets", "", *[f"- {md_cell(line)}" for line in budgets], ""]
    if refs:
        lines += ["", "Reference sizes (fp32, parameters × 4 bytes): "]
        lines += [f"- {md_cell(r['name'])}: {r['params'] / 1e6:.1f}M params, {r['size_mb']:.1f} MB" for r in refs]
    lines += ["", *[f"![{p.stem}]({p.name})" for p in plots], "", NOTES]
    return "\n".join(lines) + "\n"


NOTES = (
    "Latency: wall time per question (tokenize + model + decode), batch 1, after warm-up, on the device named in "
    "the row; emulated rows are qemu emulation time, not the board's, and get no speedup. Speedup: the median "
    "latency of the device's largest model file (or --baseline) divided by the row's. Headline: the smallest "
    "student within one F1 point of the device's most accurate one. Numbers (#) in the plots are table rows. "
    "EM/F1: official SQuAD v1.1 scoring on the row's questions; accuracy and macro-F1 (classification): over the "
    "row's examples; entity F1 (token classification): exact span and type (CoNLL), surface F1: WNUT-17's unique "
    "surface forms (see the questions column; rows over different sets are not strictly comparable)."
)


def html_page(rows: list[Row], refs: list[dict[str, Any]], plots: list[Path], budgets: list[str] = ()) -> str:
    """A single self-contained HTML file: the table and the plots embedded as data URIs."""
    tables = []
    for task, head, body in task_tables(rows):
        th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
        trs = "\n".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>" for cells in body)
        caption = f"<h2>{html.escape(task)}</h2>" if len({r.task for r in rows}) > 1 else ""
        tables.append(f"{caption}<table><thead><tr>{th}</tr></thead><tbody>\n{trs}\n</tbody></table>")
    imgs = "\n".join(
        f'<figure><img alt="{p.stem}" src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}">'
        f"<figcaption>{p.stem}</figcaption></figure>"
        for p in plots
    )
    ref_items = "".join(
        f"<li>{html.escape(r['name'])}: {r['params'] / 1e6:.1f}M params, {r['size_mb']:.1f} MB</li>" for r in refs
    )
    refs_html = f"<h2>Reference sizes (fp32)</h2><ul>{ref_items}</ul>" if refs else ""
    budget_items = "".join(f"<li>{html.escape(line)}</li>" for line in budgets)
    refs_html = (f"<h2>Size budgets</h2><ul>{budget_items}</ul>" if budgets else "") + refs_html
    items = "".join(f"<li>{html.escape(line)}</li>" for line in headline(rows))
    headline_html = f'<ul class="headline">{items}</ul>' if items else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title(rows))}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; color: #1a202c; }}
table {{ border-collapse: collapse; font-size: 12px; }}
th, td {{ border: 1px solid #cbd5e0; padding: 4px 6px; text-align: right; }}
th {{ background: #edf2f7; }} td:nth-child(-n+4), td:nth-child(8) {{ text-align: left; }}
figure {{ margin: 18px 0; }} img {{ max-width: 100%; border: 1px solid #e2e8f0; }}
p.notes {{ font-size: 12px; color: #4a5568; max-width: 900px; }}
ul.headline {{ font-size: 17px; line-height: 1.5; max-width: 1100px; }}
</style></head><body>
<h1>{html.escape(title(rows))}</h1>
{headline_html}
{"".join(tables)}
{refs_html}
{imgs}
<p class="notes">{html.escape(NOTES)}</p>
</body></html>
"""


def write_report(
    inputs: list[Path],
    out: Path,
    baseline: str | None = None,
    command: list[str] | None = None,
    budgets: Iterable[float] = (),
    shot: bool = False,
) -> dict:
    """Read the inputs and write report.{md,html,json} and the PNG plots into ``out``; ``budgets`` (MB) adds
    the best form within each size budget; ``shot``: also ``report-screenshot.png``, the page as Chromium
    renders it (without Chromium the report is still written, then the error raised)."""
    runs, refs = read_inputs(inputs)
    rows = build_rows(runs, baseline)
    picks = budget_picks(rows, budgets)
    lines = budget_lines(rows, picks)
    report = {
        "rows": [asdict(r) for r in rows],
        "references": refs,
        "inputs": [str(p) for p in inputs],
        "devices": sorted({r.device for r in rows}),
        "title": title(rows),
        "headline": headline(rows),
        "budgets": picks,
        "command": command,
        "notes": NOTES,
    }
    with replacing(out, REPORT, inputs) as tmp:
        plots = plot(rows, refs, tmp, budgets)
        write_text(tmp / "report.md", markdown(rows, refs, plots, lines))
        write_text(tmp / "report.html", html_page(rows, refs, plots, lines))
        write_json(tmp / "report.json", report)
        missing = None
        if shot:
            try:
                screenshot(tmp / "report.html", tmp / "report-screenshot.png", height=page_height(len(rows)))
            except InputError as exc:
                missing = InputError(out / "report.html", exc.where, exc.expected)
    if missing is not None:
        raise missing
    return report


def page_height(n_rows: int) -> int:
    """About the height of a report page of ``n_rows`` rows at 1500 px wide: a screenshot without a blank third."""
    return min(1800 + 150 * n_rows, 9000)


def screenshot(html_path: Path, png_path: Path, width: int = 1500, height: int = 4200) -> Path:
    """Render ``html_path`` in headless Chromium and save a PNG (what a person would see)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not browser:
        raise InputError(
            html_path,
            "screenshot",
            "Chromium installed: sudo apt-get install chromium (or, as root, make system-deps); the report "
            "itself is written, only the PNG is missing",
        )
    tmp_png = png_path.with_name(png_path.name + ".partial.png")
    argv = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={png_path.parent / '.chromium-profile'}",
        f"--window-size={width},{height}",
        f"--screenshot={tmp_png}",
        html_path.resolve().as_uri(),
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    shutil.rmtree(png_path.parent / ".chromium-profile", ignore_errors=True)
    if proc.returncode != 0 or not tmp_png.exists():
        raise InputError(html_path, "screenshot", f"Chromium to render it ({proc.stderr.strip()[-500:]})")
    write_bytes(png_path, tmp_png.read_bytes())
    tmp_png.unlink()
    return png_path
