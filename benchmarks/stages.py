"""Where a question's time goes, per runtime: tokenize, model and decode, by context length and threads.

For each bundle and each runtime that runs it on this machine (ONNX bundles: ONNX Runtime, OpenVINO
f32 and, on a CPU with bfloat16, bf16; TFLite: LiteRT), at each thread count, the runner answers
``--n`` dev questions spread over the set (after a warm-up) and times its three stages per question:
tokenizing into windows, the runtime calls, and decoding the best span. Reported: the median of each
stage and its share of the total, the model time by number of windows (a context longer than one
window costs one more window each), and the model time per 1,000 tokens.

    python -m benchmarks.stages BUNDLE... [--n 300] [--threads 1 2]  -> benchmarks/results/stages.json
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

from benchmarks.batching import RESULTS
from benchmarks.speed import pick_questions
from edgekit import device
from edgekit.atomic import write_json
from edgekit.backends import BACKENDS, RuntimeOptions
from edgekit.bundle import load_bundle
from edgekit.errors import EdgekitError
from edgekit.provenance import module_command
from edgekit.runner import QAModel
from edgekit.squad import default_data_dir

WARMUP = 5


def profile(bundle: Path, backend: str, threads: int, examples: list) -> dict[str, Any]:
    """One bundle on one runtime at one thread count."""
    qa = QAModel.load(bundle, RuntimeOptions(threads=threads, backend=backend))
    per: list[tuple[int, int, float, float, float]] = []  # windows, tokens, tokenize, model, decode ms
    for i, ex in enumerate(examples):
        qa.answer(ex.question, ex.context)
        if i >= WARMUP:
            per.append((qa.last_windows, qa.last_tokens, qa.last_tokenize_ms, qa.last_model_ms, qa.last_decode_ms))
    stage = {name: [p[k] for p in per] for k, name in ((2, "tokenize"), (3, "model"), (4, "decode"))}
    total = sum(sum(v) for v in stage.values())
    by_windows: dict[str, list[float]] = {}
    for windows, _, _, model, _ in per:
        by_windows.setdefault(str(windows) if windows < 3 else "3+", []).append(model)
    return {
        "bundle": load_bundle(bundle).manifest.name,
        "backend": qa.backend.name,
        "threads": threads,
        "questions": len(per),
        **{f"{name}_ms_p50": round(statistics.median(v), 3) for name, v in stage.items()},
        "share_of_time": {name: round(sum(v) / total, 4) for name, v in stage.items()},
        "model_ms_p50_by_windows": {k: round(statistics.median(v), 2) for k, v in sorted(by_windows.items())},
        "questions_by_windows": {k: len(v) for k, v in sorted(by_windows.items())},
        "model_ms_per_1k_tokens": round(1000 * sum(stage["model"]) / sum(p[1] for p in per), 2),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.stages", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("bundles", nargs="+", type=Path, help="bundle directories")
    p.add_argument("--dataset", type=Path, default=default_data_dir() / "dev-v1.1.json")
    p.add_argument("--n", type=int, default=300, help="questions, spread evenly over the dataset (default: 300)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts (default: 1 2)")
    p.add_argument("--out", type=Path, default=RESULTS / "stages.json", help="result file (default: %(default)s)")
    args = p.parse_args(argv)
    examples = pick_questions(args.dataset, args.n + WARMUP)
    rows, unavailable = [], {}
    for bundle in args.bundles:
        fmt = load_bundle(bundle).manifest.model_format
        for backend in (b for b, f in BACKENDS.items() if f == fmt):
            for threads in args.threads:
                try:
                    rows.append(profile(bundle, backend, threads, examples))
                except EdgekitError as exc:  # a runtime this machine lacks: said, not measured
                    unavailable[backend] = " ".join(str(exc).split())
                    break
                r = rows[-1]
                print(
                    f"{r['bundle']} {r['backend']} t{threads}: model {r['model_ms_p50']:.1f} ms, tokenize "
                    f"{r['tokenize_ms_p50']:.2f} ms, decode {r['decode_ms_p50']:.2f} ms (p50 per question)"
                )
    write_json(
        args.out,
        {
            "rows": rows,
            "unavailable": unavailable,
            "settings": {"n": args.n, "warmup": WARMUP, "dataset": str(args.dataset)},
            "device": device.describe(),
            "command": module_command("benchmarks.stages", argv),
        },
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
