"""Text and token classification end to end, in one run: teacher against students, scores and speed.

For one dataset (SST-2's dev TSV, CLINC150's test split, or a CoNLL file such as WNUT-17's test set; the
bundles' task says which):

1. **Scores on the whole set through the edgekit runner**: every bundle given (the teacher's fp32 ONNX,
   each student's fp32 and int8) runs the full set in a process of its own (``edgekit run``): accuracy,
   macro-F1, CLINC150's in-scope accuracy and out-of-scope recall; a tagger's entity and surface-form F1;
   p50, peak RSS.
2. **Speed against what a user runs without edgekit**: transformers' ``pipeline("text-classification")``
   (a tagger: ``pipeline("token-classification", aggregation_strategy="first")`` on the sentence's words) on
   the teacher (fp32 PyTorch) and each bundle through edgekit's own model (``TextClassifier``, ``Tagger``),
   batch 1, on the same ``--n`` examples spread over the set; each (system, repeat) in a fresh process,
   repeats interleaved, medians over repeats of the per-example median. Ratios are to the pipeline in this run.
3. **The peers' forms of a student** (``--peer CHECKPOINT``, the student's transformers checkpoint, e.g.
   ``edgekit export checkpoint`` of its shipped bundle; then ``--bundles`` are edgekit's forms of that student,
   and ``--teacher`` may be left out): the HF pipeline on the checkpoint, Optimum's ONNX export in the same
   pipeline and its dynamic INT8 (``ORTQuantizer`` with its config for this CPU), against each bundle through
   each of ``--backends``; every system scored on the timed examples. Compared as ``benchmarks.speed`` compares
   QA's peers (:func:`benchmarks.speed.peer_ratios`, the score being accuracy or entity F1).

    python -m benchmarks.classification --teacher runs/distill/mpnet-sst2-ft/model \\
        --dataset $EDGEKIT_DATA_DIR/sst2/dev.tsv --bundles T32 S32 S8 --out benchmarks/results/classification-sst2.json
    python -m benchmarks.classification --peer runs/peers/S --dataset ... --bundles S32 S8 \\
        --backends onnxruntime openvino openvino-bf16 --out benchmarks/results/peers-wnut17.json
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

from benchmarks import speed as qa_speed
from edgekit import device
from edgekit.atomic import write_json
from edgekit.bundle import load_bundle
from edgekit.entities import score_entities
from edgekit.provenance import module_command
from edgekit.runner import run_in_process
from edgekit.tasks.classification import load_texts
from edgekit.tasks.tokens import load_sentences

GOALS = {
    "text-classification": {"student_int8_vs_hf_speedup_min": 20.0, "student_int8_peak_rss_max_mb": 120.0},
    "token-classification": {"student_int8_vs_hf_speedup_min": 20.0, "student_int8_share_of_teacher_f1_min": 0.95},
}


def pick(dataset: Path, split: str | None, n: int, task: str) -> list[Any]:
    examples = load_sentences(dataset) if task == "token-classification" else load_texts(dataset, split)
    step = max(1, len(examples) // n)
    return examples[::step][:n]


PIPELINES = ("hf-pipeline", "optimum-ort", "optimum-ort-int8")  # transformers' pipeline, on PyTorch or Optimum


def word_tags(words: list[str] | tuple[str, ...], groups: list[dict[str, Any]]) -> list[str]:
    """The token-classification pipeline's entities (character spans in the words joined by spaces, as it joins
    them) as one IOB2 tag per word, so that its answers are scored by the same rule as edgekit's."""
    starts, at = [], 0
    for w in words:
        starts.append(at)
        at += len(w) + 1
    tags = ["O"] * len(words)
    for g in groups:
        inside = [i for i, s in enumerate(starts) if s < g["end"] and s + len(words[i]) > g["start"]]
        for k, i in enumerate(inside):
            tags[i] = f"{'I' if k else 'B'}-{g['entity_group']}"
    return tags


def _predictor(system: str, target: str, task: str, threads: int) -> Any:
    """One example -> its prediction (a label, or a tagger's tag per word). ``system``: one of
    :data:`PIPELINES`, or ``edgekit`` or ``edgekit:BACKEND``."""
    if system in PIPELINES:
        import torch
        from transformers import AutoTokenizer, pipeline

        torch.set_num_threads(threads)
        model: Any = target
        if system != "hf-pipeline":
            model = qa_speed.optimum_session(target, task, threads, int8=system == "optimum-ort-int8")
        tok = AutoTokenizer.from_pretrained(target)
        if task == "token-classification":
            pipe = pipeline(
                "token-classification", model=model, tokenizer=tok, aggregation_strategy="first", device="cpu"
            )

            def tag(ex: Any) -> list[str]:
                out = pipe(list(ex.words), is_split_into_words=True)
                return word_tags(ex.words, out[0] if out and isinstance(out[0], list) else out)

            return tag
        pipe = pipeline("text-classification", model=model, tokenizer=tok, device="cpu")
        return lambda ex: pipe(ex.text)[0]["label"]
    from edgekit.backends import RuntimeOptions

    options = RuntimeOptions(threads=threads, backend=system.partition(":")[2] or "onnxruntime")
    if task == "token-classification":
        from edgekit.tasks.tokens import Tagger

        tagger = Tagger.load(target, options)
        return lambda ex: tagger.predict(ex)["tags"]
    from edgekit.tasks.classification import TextClassifier

    model = TextClassifier.load(target, options)
    return lambda ex: model.predict(ex)["label"]


def worker(
    system: str, target: str, task: str, dataset: Path, split: str | None, n: int, threads: int, warmup: int
) -> dict:
    """Time one system on ``n`` examples in this process (a fresh subprocess per call of :func:`main`)."""
    examples = pick(dataset, split, n, task)
    predict = _predictor(system, target, task, threads)
    for ex in examples[:warmup]:
        predict(ex)
    lat, got = [], []
    for ex in examples:
        t = time.perf_counter()
        got.append(predict(ex))
        lat.append((time.perf_counter() - t) * 1000.0)
    out = {"p50_ms": statistics.median(lat), "mean_ms": statistics.fmean(lat), "peak_rss_mb": device.peak_rss_mb()}
    if task == "text-classification":
        out["accuracy_on_sample"] = 100.0 * sum(g == ex.label for g, ex in zip(got, examples, strict=True)) / len(got)
    else:
        out["f1_on_sample"] = score_entities([ex.tags for ex in examples], got)["f1"]
    return out


def peer_systems(peer: Path, task: str, work: Path) -> list[tuple[str, str, str]]:
    """(name, system, target) of the peers' forms of the student whose checkpoint is ``peer``: the HF pipeline
    on it, Optimum's export of it and that export's dynamic INT8 for this CPU (both made once under ``work``)."""
    config = qa_speed.optimum_cpu_config(device.cpu_features()["cpu_features"])
    optimum, int8 = qa_speed.optimum_forms(peer, work, peer.name, config, task)
    return [
        ("hf-pipeline-student", "hf-pipeline", str(peer)),
        ("optimum-ort-student", "optimum-ort", str(optimum)),
        (f"optimum-ort-int8-{config}-student", "optimum-ort-int8", str(int8)),
    ]


def peer_rows(speed: dict[str, dict[str, Any]], task: str) -> list[dict[str, Any]]:
    """The peer run's systems as :func:`benchmarks.speed.peer_ratios` reads them: edgekit's as
    ``edgekit-student-BUNDLE[-BACKEND]``, the score on the timed examples as ``f1`` (a classifier's: accuracy)."""
    key = "f1_on_sample" if task == "token-classification" else "accuracy_on_sample"
    return [
        {
            "name": f"edgekit-student-{name.removeprefix('edgekit:').replace(':', '-')}" if name.startswith("edgekit:")
            else name,
            "p50_ms": s["p50_ms"],
            "f1": s[key],
            "model": "student",
        }
        for name, s in speed.items()
        if name != "hf-pipeline"  # the teacher's pipeline, when one is given too
    ]  # fmt: skip


def full_run(bundle: Path, dataset: Path, split: str | None, out: Path, threads: int) -> dict[str, Any]:
    """``edgekit run`` over the whole set in a process of its own; its metrics.json."""
    m = run_in_process(
        bundle, dataset, out, ["--threads", str(threads), "--no-progress"] + (["--split", split] if split else [])
    )
    keep = ("accuracy", "macro_f1", "in_scope_accuracy", "oos_recall", "f1", "precision", "recall", "surface_f1")
    keep += ("n_examples", "peak_rss_mb", "cold_start_ms")
    return {**{k: m[k] for k in keep if k in m}, "p50_ms": m["latency_ms"]["p50"], "bundle": m["bundle"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--teacher",
        type=Path,
        default=None,
        help="the teacher's transformers directory (HF pipeline; optional with --peer)",
    )
    p.add_argument("--dataset", type=Path, required=True, help="the bundles' dataset (TSV, CLINC150 JSON, CoNLL)")
    p.add_argument("--split", default=None, help="split of a CLINC150 file (default: test)")
    p.add_argument(
        "--bundles",
        type=Path,
        nargs="+",
        required=True,
        help="teacher and student bundles (with --peer: the student's)",
    )
    p.add_argument(
        "--peer",
        type=Path,
        default=None,
        help="the student's transformers checkpoint: time the HF pipeline and Optimum's fp32 and INT8 forms of it",
    )
    p.add_argument(
        "--backends",
        nargs="+",
        default=["onnxruntime"],
        choices=["onnxruntime", "openvino", "openvino-bf16"],
        help="the runtimes each bundle is timed on (default: onnxruntime)",
    )
    p.add_argument("--work", type=Path, default=qa_speed.ROOT / "runs" / "speed", help="Optimum's exports, made once")
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
    if args.teacher is None and args.peer is None:
        p.error("expected --teacher, --peer or both")
    # bundles by their manifest's name: a run's bundle directory is often just bundle-fp32-onnx
    manifests = {load_bundle(b).manifest.name: (b, load_bundle(b).manifest) for b in args.bundles}
    tasks = {m.task for _, m in manifests.values()}
    if len(tasks) != 1 or not tasks <= set(GOALS):
        raise SystemExit(f"--bundles: expected bundles of one task among {sorted(GOALS)}, got {sorted(tasks)}")
    (task,) = tasks
    if args.worker:
        system, target = args.worker
        print(json.dumps(worker(system, target, task, args.dataset, args.split, args.n, args.threads, args.warmup)))
        return 0
    if len(manifests) != len(args.bundles):
        raise SystemExit("--bundles: expected bundles of different names")
    systems = [("hf-pipeline", "hf-pipeline", str(args.teacher))] if args.teacher else []
    for n, (b, _) in manifests.items():
        systems += [
            (f"edgekit:{n}" + (f":{r}" if r != "onnxruntime" else ""), f"edgekit:{r}", str(b)) for r in args.backends
        ]
    if args.peer:
        systems += peer_systems(args.peer, task, args.work)
    timings: dict[str, list[dict]] = {name: [] for name, _, _ in systems}
    base = [sys.executable, "-m", "benchmarks.classification", "--peer" if args.peer else "--teacher"]
    base += [str(args.peer or args.teacher)]
    base += ["--dataset", str(args.dataset), "--bundles", *map(str, args.bundles), "--out", str(args.out)]
    base += ["--n", str(args.n), "--threads", str(args.threads), "--warmup", str(args.warmup)]
    base += ["--split", args.split] if args.split else []
    for r in range(args.repeats):
        for name, system, target in systems:
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
            **{k: v for k, v in runs[0].items() if k.endswith("_on_sample")},
            "repeats_p50_ms": [round(t["p50_ms"], 3) for t in runs],
        }
        for name, runs in timings.items()
    }
    if args.teacher:
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
        "teacher": str(args.teacher) if args.teacher else None,
        **(
            {"peer": str(args.peer), "peers": qa_speed.peer_ratios(peer_rows(speed, task), "student")}
            if args.peer
            else {}
        ),
        "backends": args.backends,
        "threads": args.threads,
        "repeats": args.repeats,
        "speed": speed,
        "accuracy_full_set": accuracy,
        "bundles": {
            name: {"precision": m.precision, "format": m.model_format, "params": m.params}
            for name, (_, m) in manifests.items()
        },
        "task": task,
        "goals": {
            **(GOALS[task] if args.teacher else {}),
            **({"edgekit_vs_optimum_speedup_min": 1.5} if args.peer else {}),
        },
        "device": device.describe(),
        "command": module_command("benchmarks.classification", sys.argv[1:] if argv is None else argv),
        "notes": "speed: batch 1, medians over repeats (each a fresh process) of the per-example median; "
        "accuracy: the whole set through `edgekit run`, one process per bundle",
    }
    write_json(args.out, result)
    print(json.dumps({k: round(v["p50_ms"], 2) for k, v in speed.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
