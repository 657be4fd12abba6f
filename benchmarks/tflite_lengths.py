"""TFLite at one fixed length against one signature per length, the same student, in one run.

A TFLite model has static shapes, so a bundle converted at ``max_seq_len`` alone pads every window to
it; one with a signature per length of ``export.to_tflite.signature_lengths`` pads a window only to the
shortest length that holds it. This converts the student both ways (int8, ai-edge-quantizer's dynamic
recipe, as the export chain does), then runs each bundle through the edgekit runner on the same dev
questions, each (bundle, repeat) in a fresh process, repeats interleaved (``benchmarks.speed``'s
workers), and writes the p50/mean latency, F1, size and peak RSS of both and their ratio::

    python -m benchmarks.tflite_lengths [--model runs/distill/minilm-l6-kd-e4/model] [--n 300] [--repeats 3]

The two bundles are written under ``--work`` and reused when there already.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from benchmarks.speed import measure, summarize
from edgekit import device
from edgekit.atomic import write_json
from edgekit.bundle import load_bundle
from edgekit.errors import EdgekitError
from edgekit.provenance import module_command
from edgekit.squad import default_data_dir

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def bundles(model: str, work: Path, max_seq_len: int, doc_stride: int) -> dict[str, Path]:
    """The int8 TFLite bundle at ``max_seq_len`` only and the one with a signature per length."""
    from edgekit.export.models import load_qa
    from edgekit.export.to_tflite import signature_lengths, tflite_bundles

    out = {}
    for kind, lengths in (("fixed", [max_seq_len]), ("per-length", signature_lengths(max_seq_len))):
        d = work / kind
        path = d / f"{kind}-int8-tflite"
        try:
            if load_bundle(path).manifest.source.get("tflite_lengths") == lengths:
                out[kind] = path
                continue
        except EdgekitError:
            pass
        tflite_bundles(load_qa(model), d, kind, max_seq_len, doc_stride, lengths=lengths)
        out[kind] = path
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(ROOT / "runs" / "distill" / "minilm-l6-kd-e4" / "model"))
    p.add_argument("--max-seq-len", type=int, default=256, help="the longest window (default: %(default)s)")
    p.add_argument("--doc-stride", type=int, default=128)
    p.add_argument("--dataset", type=Path, default=default_data_dir() / "dev-v1.1.json")
    p.add_argument("--n", type=int, default=300, help="questions, spread evenly over the dataset")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "tflite-lengths")
    p.add_argument("--out", type=Path, default=RESULTS / "tflite-lengths.json")
    args = p.parse_args(argv)

    made = bundles(args.model, args.work, args.max_seq_len, args.doc_stride)
    systems = [(f"edgekit-tflite-int8-{kind}", "edgekit", str(path)) for kind, path in made.items()]
    runs = measure(systems, args, args.threads, "bundle x repeat")
    rows = []
    for name, _, target in systems:
        row = summarize(name, runs[name], None)
        b = load_bundle(target)
        row.update(lengths=b.manifest.source["tflite_lengths"], model_size_mb=round(b.model_size_mb, 2))
        rows.append(row)
    fixed, per_length = rows
    result = {
        "rows": rows,
        "per_length_vs_fixed_p50": per_length["p50_ms"] / fixed["p50_ms"],
        "per_length_vs_fixed_mean": per_length["mean_ms"] / fixed["mean_ms"],
        "per_length_minus_fixed_f1": per_length["f1"] - fixed["f1"],
        "model": args.model,
        "settings": {"n": args.n, "repeats": args.repeats, "warmup": args.warmup, "threads": args.threads},
        "device": device.describe(),
        "command": module_command("benchmarks.tflite_lengths", argv),
    }
    write_json(args.out, result)
    for r in rows:
        print(
            f"{r['name']}: lengths {r['lengths']}, {r['model_size_mb']} MB, p50 {r['p50_ms']:.2f} ms, "
            f"mean {r['mean_ms']:.2f} ms, F1 {r['f1']:.2f}, peak RSS {r['peak_rss_mb']:.0f} MB"
        )
    print(
        f"per-length / fixed: p50 {result['per_length_vs_fixed_p50']:.2f}, mean {result['per_length_vs_fixed_mean']:.2f}"
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
