"""OpenVINO at the windows' own lengths against lengths in steps, the same bundles, in one run.

OpenVINO's CPU plugin prepares its kernels for each input shape it meets, so the OpenVINO backend pads a
window to a multiple of ``LENGTH_STEP`` tokens. This runs every window of the same dev questions through
``OpenVinoBackend`` at each ``--steps`` value (1: the windows' own lengths), for each bundle and precision,
each (bundle, precision, step, repeat) in a fresh process, repeats interleaved, and writes per-window p50 and
mean latency, the share of padded positions and the process's peak RSS, medians over repeats::

    python -m benchmarks.openvino_lengths BUNDLE... [--precisions f32 bf16] [--steps 1 32 64 128] [--n 150]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.speed import pick_questions
from edgekit import device
from edgekit.atomic import write_json, write_text
from edgekit.provenance import module_command
from edgekit.squad import default_data_dir

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def worker(bundle_dir: Path, precision: str, step: int, dataset: Path, n: int, threads: int) -> dict[str, Any]:
    """Every window of ``n`` questions spread over ``dataset`` through the backend, one call each, timed."""
    import numpy as np

    from edgekit.backends import RuntimeOptions
    from edgekit.backends.openvino import OpenVinoBackend, stepped_length
    from edgekit.bundle import load_bundle
    from edgekit.features import batch_inputs

    bundle = load_bundle(bundle_dir)
    m, tok = bundle.manifest, bundle.tokenizer()
    examples = pick_questions(dataset, n)
    feeds = [
        batch_inputs([w], m.input_names, m.pad_id) for ex in examples for w in tok.windows(ex.question, ex.context)
    ]
    t0 = time.perf_counter()
    backend = OpenVinoBackend(bundle, RuntimeOptions(threads=threads), bf16=precision == "bf16", length_step=step)
    load_s = time.perf_counter() - t0
    ms = []
    for f in feeds:
        t = time.perf_counter()
        backend(f)
        ms.append(1000 * (time.perf_counter() - t))
    tokens = [f["input_ids"].shape[1] for f in feeds]
    padded = [stepped_length(k, step, m.max_seq_len) for k in tokens]
    return {
        "windows": len(feeds),
        "shapes": len(set(padded)),
        "padding_pct": 100 * (1 - sum(tokens) / sum(padded)),
        "load_s": load_s,
        "p50_ms": float(np.median(ms)),
        "mean_ms": float(np.mean(ms)),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    out = [
        "| bundle | precision | step | shapes | padding | load s | p50 ms | mean ms | peak RSS MB | p50 vs step 1 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r['bundle']} | {r['precision']} | {r['step']} | {r['shapes']} | {r['padding_pct']:.1f}% | "
            f"{r['load_s']:.1f} | {r['p50_ms']:.1f} | {r['mean_ms']:.1f} | {r['peak_rss_mb']:.0f} | "
            f"{r['p50_vs_own_lengths']:.2f} |"
        )
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundles", nargs="*", type=Path, help="ONNX bundles")
    p.add_argument("--precisions", nargs="+", choices=["f32", "bf16"], default=["f32"])
    p.add_argument("--steps", nargs="+", type=int, default=[1, 32, 64, 128])
    p.add_argument("--dataset", type=Path, default=default_data_dir() / "dev-v1.1.json")
    p.add_argument("--n", type=int, default=150, help="questions, spread evenly over the dataset")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--out", type=Path, default=RESULTS / "openvino-lengths.json")
    p.add_argument("--worker", nargs=3, metavar=("BUNDLE", "PRECISION", "STEP"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        b, precision, step = args.worker
        print(json.dumps(worker(Path(b), precision, int(step), args.dataset, args.n, args.threads)))
        return 0

    from tqdm import tqdm

    from edgekit.bundle import load_bundle

    configs = [(b, pr, s) for b in args.bundles for pr in args.precisions for s in sorted(set(args.steps) | {1})]
    runs: dict[tuple[Path, str, int], list[dict[str, Any]]] = {c: [] for c in configs}
    common = ["--dataset", str(args.dataset), "--n", str(args.n), "--threads", str(args.threads)]
    with tqdm(total=len(configs) * args.repeats, desc="setting x repeat") as bar:
        for _ in range(args.repeats):
            for c in configs:
                cmd = [sys.executable, "-m", "benchmarks.openvino_lengths", "--worker", str(c[0]), c[1], str(c[2])]
                proc = subprocess.run([*cmd, *common], capture_output=True, text=True, cwd=ROOT, check=False)
                if proc.returncode != 0:
                    raise SystemExit(f"{c} failed:\n{proc.stderr[-3000:]}")
                runs[c].append(json.loads(proc.stdout.strip().splitlines()[-1]))
                bar.update()
    rows = []
    for b, precision, step in configs:
        got = runs[(b, precision, step)]
        row: dict[str, Any] = {"bundle": load_bundle(b).manifest.name, "precision": precision, "step": step}
        row.update({k: got[0][k] for k in ("windows", "shapes", "padding_pct")})
        row.update({k: statistics.median(g[k] for g in got) for k in ("load_s", "p50_ms", "mean_ms", "peak_rss_mb")})
        rows.append(row)
    for r in rows:
        own = next(o for o in rows if (o["bundle"], o["precision"], o["step"]) == (r["bundle"], r["precision"], 1))
        r["p50_vs_own_lengths"] = r["p50_ms"] / own["p50_ms"]
    result = {
        "rows": rows,
        "settings": {"n": args.n, "repeats": args.repeats, "threads": args.threads, "steps": sorted(set(args.steps))},
        "device": device.describe(),
        "command": module_command("benchmarks.openvino_lengths", argv),
        "notes": "per-window latency through OpenVinoBackend, one window a call; medians over repeats, each in a "
        "fresh process; step 1: each window at its own length",
    }
    write_json(args.out, result)
    table = markdown(rows)
    write_text(args.out.with_suffix(".md"), table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
