"""The size budget: every variant's size against its full-dev F1, the Pareto front, and latency from one run.

Rows are every committed full-dev run (``benchmarks/results/students/*/metrics.json`` and the
teacher's) and every row of the vocabulary curves (``benchmarks/results/vocab-*.json``). A variant
whose bundle is on this machine (its run's directory, or the bundle in ``models/`` with the same model
file) is also timed here, all in one run: ``edgekit run`` in a fresh process per bundle on the same
``--n`` dev questions, ``--threads`` threads, p50 per question. Variants whose bundle is elsewhere
keep no latency (a figure from another machine is not comparable).

    python -m benchmarks.budget [--n 200] [--threads 2]

Writes ``benchmarks/results/budget.json`` and ``budget.png`` (F1 against size, log scale, with the
25 MB and 50 MB budgets, 90% and 95% of the teacher's F1, and the front).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.results_doc import (
    BUDGETS_MB,
    FULL_DEV,
    RESULTS,
    ROOT,
    TEACHER,
    shipped_bundles,
    size_front,
    variants,
)
from edgekit.atomic import write_json
from edgekit.bundle import Bundle, load_bundle
from edgekit.device import describe
from edgekit.errors import EdgekitError
from edgekit.export.pipeline import run_fresh
from edgekit.provenance import module_command
from edgekit.squad import default_data_dir


def same_model(bundle: Bundle, row: dict[str, Any], sha: str | None) -> bool:
    """Whether ``bundle`` holds the model the row's F1 is of: by the model file's sha256 where the run recorded it
    (runs before that recorded only name and size: then both must match, to the kilobyte)."""
    entry = bundle.manifest.files[bundle.manifest.model_file]
    if sha:
        return entry.sha256 == sha
    return bundle.manifest.name == row["name"] and round(entry.size / 1e6, 3) == round(row["size_mb"], 3)


def find_bundle(recorded: Path, row: dict[str, Any], sha: str | None, shipped: dict[str, Path]) -> Path | None:
    """The bundle holding the model the row's F1 is of: the run's own directory where it is still here and
    unchanged, else a shipped bundle with the same model file; None when neither is on this machine."""
    if recorded.is_dir():
        try:
            if same_model(load_bundle(recorded), row, sha):
                return recorded
        except EdgekitError:
            pass  # unreadable now: fall back to a shipped copy
    return shipped.get(sha) if sha else None


def time_bundle(bundle: Path, dataset: Path, n: int, threads: int) -> dict[str, float]:
    """p50 and mean per question of ``edgekit run`` on the first ``n`` questions, in a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        m = run_fresh(bundle, dataset, Path(tmp) / "run", n, ["--threads", str(threads)])
    return {"p50_ms": m["latency_ms"]["p50"], "mean_ms": m["latency_ms"]["mean"], "peak_rss_mb": m["peak_rss_mb"]}


def plot(table: list[dict[str, Any]], teacher_f1: float, out: Path) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 6))
    sizes = [r["size_mb"] for r in table]
    ax.set_xscale("log")
    ax.set_xlim(min(sizes) / 1.25, max(sizes) * 1.6)
    ticks = sorted({10.0, 15.0, *BUDGETS_MB, 100.0, 200.0, round(max(sizes))})
    ax.set_xticks([t for t in ticks if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]])
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    front = [r for r in table if r["front"]]
    ax.scatter(sizes, [r["f1"] for r in table], color="#999", s=24, label="variant")
    ax.plot([r["size_mb"] for r in front], [r["f1"] for r in front], "o-", color="#1f77b4", label="Pareto front")
    for i, r in enumerate(front):  # labels alternate above and below the line: neighbours on the front are close
        up = i % 2 == 1
        ax.annotate(
            r["name"].removesuffix("-onnx").replace("-onnx-", "-"),
            (r["size_mb"], r["f1"]),
            fontsize=7,
            xytext=(-4 if up else 5, 9 if up else -12),
            textcoords="offset points",
            ha="right" if up else "left",
        )
    low = ax.get_ylim()[0]
    for mb in BUDGETS_MB:
        ax.axvline(mb, color="#d62728", ls="--", lw=1)
        ax.text(mb * 1.03, low + 0.5, f"{mb:.0f} MB", color="#d62728", fontsize=8, va="bottom")
    for share in (0.90, 0.95):
        ax.axhline(share * teacher_f1, color="#2ca02c", ls=":", lw=1)
        ax.text(
            ax.get_xlim()[1] / 1.03,
            share * teacher_f1 + 0.2,
            f"{share:.0%} of the teacher's F1",
            color="#2ca02c",
            fontsize=8,
            ha="right",
            va="bottom",
        )
    ax.set_xlabel("model size, MB (log)")
    ax.set_ylabel(f"F1, full SQuAD v1.1 dev ({FULL_DEV:,} questions)")
    ax.set_title("Size against accuracy: every variant, the teacher at the right")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=200, help="dev questions to time each bundle on (0: no timing)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dataset", type=Path, default=default_data_dir() / "dev-v1.1.json")
    p.add_argument("--out", type=Path, default=RESULTS / "budget.json")
    args = p.parse_args(argv)

    table = variants()
    shipped = shipped_bundles()
    teacher = next(r for r in table if r["path"] == str(TEACHER.relative_to(ROOT)))
    front = {id(r) for r in size_front(table)}
    for r in table:
        r["front"] = id(r) in front
        r["f1_kept"] = r["f1"] / teacher["f1"]
        r["latency"] = None
        bundle = find_bundle(Path(r.pop("bundle")), r, r.pop("model_sha256"), shipped)
        r["timed_bundle"] = None
        if args.n > 0 and bundle is not None:
            print(f"timing {r['name']} ({bundle})", flush=True)
            r["timed_bundle"] = str(bundle.relative_to(ROOT) if bundle.is_relative_to(ROOT) else bundle)
            r["latency"] = time_bundle(bundle, args.dataset, args.n, args.threads)
    table.sort(key=lambda r: (r["size_mb"], -r["f1"]))
    write_json(
        args.out,
        {
            "teacher": teacher["name"],
            "teacher_f1": teacher["f1"],
            "budgets_mb": list(BUDGETS_MB),
            "timing": {"n": args.n, "threads": args.threads, "device": describe()},
            "command": module_command("benchmarks.budget", argv),
            "rows": table,
        },
    )
    plot(table, teacher["f1"], args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
