"""Text classification end to end, in one run: teacher against students, accuracy and speed.

For one dataset (SST-2's dev TSV, or CLINC150's test split):

1. **Accuracy on the whole set through the edgekit runner**: every bundle given (the teacher's fp32 ONNX,
   each student's fp32 and int8) runs the full set in a process of its own (``edgekit run``): accuracy,
   macro-F1, CLINC150's in-scope accuracy and out-of-scope recall, p50, peak RSS.
2. **Speed against what a user runs without edgekit**: transformers' ``pipeline("text-classification")`` on
   the teacher (fp32 PyTorch) and each bundle through edgekit's own classifier (``TextClassifier``), batch 1,
   on the same ``--n`` examples spread over the set; each (system, repeat) in a fresh process, repeats
   interleaved, medians over repeats of the per-example median. Ratios are to the pipeline in this run.

    python -m benchmarks.classification --teacher runs/distill/mpnet-sst2-ft/model \\
        --dataset $EDGEKIT_DATA_DIR/sst2/dev.tsv --bundles T32 S32 S8 --out benchmarks/results/classification-sst2.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from edgekit import device
from edgekit.atomic import write_json
from edgekit.bundle import load_bundle
from edgekit.provenance import module_command
from edgekit.runner import run_in_process
from edgekit.tasks.classification import TextExample, load_texts

GOALS = {"student_int8_vs_hf_speedup_min": 20.0, "student_int8_peak_rss_max_mb": 120.0}


def pick(dataset: Path, split: str | None, n: int) -> list[TextExample]:
    examples = load_texts(dataset, split)
    step = max(1, len(examples) // n)
    return examples[::step][:n]


def worker(system: str, target: str, dataset: Path, split: str | None, n: int, threads: int, warmup: int) -> dict:
    """Time one system on ``n`` examples in this process (a fresh subprocess per call of :func:`main`)."""
    examples = pick(dataset, split, n)
    if system == "hf-pipeline":
        import torch
        from transformers import pipeline

        torch.set_num_threads(threads)
        pipe = pipeline("text-classification", model=target, tokenizer=target, device="cpu")

        def predict(ex: TextExample) -> str:
            return pipe(ex.text)[0]["label"]
    else:
        from edgekit.backends import RuntimeOptions
        from edgekit.tasks.classification import TextClassifier

        model = TextClassifier.load(target, RuntimeOptions(threads=threads))

        def predict(ex: TextExample) -> str:
            return model.predict(ex)["label"]

    for ex in examples[:warmup]:
        predict(ex)
    lat, right = [], 0
    for ex in examples:
        t = time.perf_counter()
        right += predict(ex) == ex.label
        lat.append((time.perf_counter() - t) * 1000.0)
    return {
        "p50_ms": statistics.median(lat),
        "mean_ms": statistics.fmean(lat),
        "accuracy_on_sample": 100.0 * right / len(examples),
        "peak_rss_mb": device.peak_rss_mb(),
    }


def full_run(bundle: Path, dataset: Path, split: str | None, out: Path, threads: int) -> dict[str, Any]:
    """``edgekit run`` over the whole set in a process of its own; its metrics.json."""
    m = run_in_process(
        bundle, dataset, out, ["--threads", str(threads), "--no-progress"] + (["--split", split] if split else [])
    )
    keep = ("accuracy", "macro_f1", "in_scope_accuracy", "oos_recall", "n_examples", "peak_rss_mb", "cold_start_ms")
    return {**{k: m[k] for k in keep if k in m}, "p50_ms": m["latency_ms"]["p50"], "bundle": m["bundle"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", type=Path, required=True, help="the teacher's transformers directory (HF pipeline)")
    p.add_argument("--dataset", type=Path, required=True, help="classification dataset (TSV or CLINC150 JSON)")
    p.add_argument("--split", default=None, help="split of a CLINC150 file (default: test)")
    p.add_argument("--bundles", type=Path, nargs="+", required=True, help="teacher and student bundles")
    p.add_argument("--n", type=int, default=300, help="examples timed per system (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--out", type=Path, required=True, help="results JSON")
    p.add_argument(
        "--runs-dir",
        type=Path,
        default=None,
        help="keep each bundle's full-set run here (metrics.json, predictions.json, run.json: what a model card cites)",
    )
    p.add_argument("--worker", nargs=2, metavar=("SYSTEM", "TARGET"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        system, target = args.worker
        print(json.dumps(worker(system, target, args.dataset, args.split, args.n, args.threads, args.warmup)))
        return 0

    # bundles by their manifest's name: a run's bundle directory is often just bundle-fp32-onnx
    manifests = {load_bundle(b).manifest.name: (b, load_bundle(b).manifest) for b in args.bundles}
    if len(manifests) != len(args.bundles):
        raise SystemExit("--bundles: expected bundles of different names")
    systems = [("hf-pipeline", str(args.teacher))] + [(f"edgekit:{n}", str(b)) for n, (b, _) in manifests.items()]
    timings: dict[str, list[dict]] = {name: [] for name, _ in systems}
    base = [sys.executable, "-m", "benchmarks.classification", "--teacher", str(args.teacher)]
    base += ["--dataset", str(args.dataset), "--bundles", *map(str, args.bundles), "--out", str(args.out)]
    base += ["--n", str(args.n), "--threads", str(args.threads), "--warmup", str(args.warmup)]
    base += ["--split", args.split] if args.split else []
    for r in range(args.repeats):
        for name, target in systems:
            system = "hf-pipeline" if name == "hf-pipeline" else "edgekit"
            proc = subprocess.run([*base, "--worker", system, target], capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"{name}: {proc.stderr.strip()[-800:]}")
            timings[name].append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(f"repeat {r + 1}/{args.repeats} {name}: p50 {timings[name][-1]['p50_ms']:.2f} ms", file=sys.stderr)
    speed = {
        name: {
            "p50_ms": statistics.median(t["p50_ms"] for t in runs),
            "mean_ms": statistics.median(t["mean_ms"] for t in runs),
            "peak_rss_mb": statistics.median(t["peak_rss_mb"] for t in runs),
            "accuracy_on_sample": runs[0]["accuracy_on_sample"],
            "repeats_p50_ms": [round(t["p50_ms"], 3) for t in runs],
        }
        for name, runs in timings.items()
    }
    hf = speed["hf-pipeline"]["p50_ms"]
    for s in speed.values():
        s["speedup_vs_hf_pipeline"] = hf / s["p50_ms"]
    with tempfile.TemporaryDirectory() as tmp:
        runs = args.runs_dir or Path(tmp)
        accuracy = {n: full_run(b, args.dataset, args.split, runs / n, args.threads) for n, (b, _) in manifests.items()}
        if args.runs_dir:
            for n in manifests:
                (runs / n / "predictions.jsonl").unlink()  # per-example latencies: metrics.json has their summary
                (runs / n / ".edgekit.lock").unlink(missing_ok=True)
    result = {
        "dataset": {"path": str(args.dataset), "split": args.split, "n_timed": args.n},
        "teacher": str(args.teacher),
        "threads": args.threads,
        "repeats": args.repeats,
        "speed": speed,
        "accuracy_full_set": accuracy,
        "bundles": {
            name: {"precision": m.precision, "format": m.model_format, "params": m.params}
            for name, (_, m) in manifests.items()
        },
        "goals": GOALS,
        "device": device.describe(),
        "command": module_command("benchmarks.classification", sys.argv[1:] if argv is None else argv),
        "notes": "speed: batch 1, medians over repeats (each a fresh process) of the per-example median; "
        "accuracy: the whole set through `edgekit run`, one process per bundle",
    }
    write_json(args.out, result)
    print(json.dumps({k: round(v["speedup_vs_hf_pipeline"], 2) for k, v in speed.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
