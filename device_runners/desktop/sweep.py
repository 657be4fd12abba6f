"""Desktop CPU (x86_64 or ARM laptops): the same measurement over bundles x thread counts.

For each bundle (ONNX/TFLite, fp32/int8) and each thread count, runs the edgekit
runner (a fresh process per cell) on the same questions into ``OUT/<bundle>/t<threads>/`` (each run resumable,
with the usual metrics.json) and writes ``OUT/sweep.json`` and ``OUT/sweep.md``.
Feed the run directories to ``edgekit report`` for plots.

    python -m edgekit.device_runners.desktop.sweep BUNDLE... --out runs/sweep [--limit 200] [--threads 1 2 4]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from edgekit.atomic import write_json, write_text
from edgekit.cli import MAX_EXAMPLES, Parser, whole
from edgekit.destination import SWEEP, claim
from edgekit.device import describe
from edgekit.errors import EdgekitError
from edgekit.provenance import module_command
from edgekit.runner import run_in_process
from edgekit.squad import default_data_dir
from edgekit.text import md_table


def sweep(bundles: list[Path], dataset: Path, out: Path, threads: list[int], limit: int | None) -> list[dict[str, Any]]:
    """One ``edgekit run`` process per cell, so each peak RSS is that cell's own."""
    rows = []
    for b in bundles:
        for t in threads:
            cell = out / b.name / f"t{t}"
            flags = ["--threads", str(t)] + (["--limit", str(limit)] if limit else [])
            m = run_in_process(b, dataset, cell, flags, show=True)  # the runner's progress in this terminal
            rows.append(
                {
                    "bundle": m["bundle"]["name"],
                    "format": m["bundle"]["format"],
                    "precision": m["bundle"]["precision"],
                    "threads": t,
                    "p50_ms": m["latency_ms"]["p50"],
                    "p90_ms": m["latency_ms"]["p90"],
                    "throughput_qps": m["throughput_qps"],
                    "peak_rss_mb": m["peak_rss_mb"],
                    "f1": m["f1"],
                    "n_questions": m["n_questions"],
                }
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundles", nargs="+", type=Path, help="edge bundle directories")
    p.add_argument("--dataset", type=Path, default=default_data_dir() / "dev-v1.1.json", help="SQuAD v1.1 JSON")
    p.add_argument("--out", type=Path, required=True, help="directory for the runs and sweep.json/.md")
    p.add_argument("--limit", type=whole(1, MAX_EXAMPLES), default=200, help="first N questions (default: %(default)s)")
    p.add_argument(
        "--threads",
        type=whole(1, 10_000),
        nargs="+",
        default=sorted({1, 2, os.cpu_count() or 1}),
        help="thread counts to sweep",
    )
    args = p.parse_args(argv)
    command = module_command("edgekit.device_runners.desktop.sweep", argv)
    try:
        claim(args.out, SWEEP, [*args.bundles, args.dataset])
    except EdgekitError as exc:
        print(f"sweep: error: {exc}", file=sys.stderr)
        return 2
    # written first, so an interrupted sweep's directory is still known as one and resumes
    write_json(args.out / "sweep.json", {"rows": [], "status": "running", "command": command})
    rows = sweep(args.bundles, args.dataset, args.out, args.threads, args.limit)
    write_json(args.out / "sweep.json", {"rows": rows, "device": describe(), "command": command})
    lines = md_table(
        ["bundle", "threads", "p50 ms", "p90 ms", "q/s", "peak RSS MB", "F1"],
        (
            [
                r["bundle"],
                r["threads"],
                f"{r['p50_ms']:.1f}",
                f"{r['p90_ms']:.1f}",
                f"{r['throughput_qps']:.2f}",
                f"{r['peak_rss_mb']:.0f}",
                f"{r['f1']:.1f}",
            ]
            for r in rows
        ),
    )
    write_text(args.out / "sweep.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
