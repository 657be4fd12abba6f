"""Side-by-side speed: what a user would run instead vs the edgekit runner, in one run.

Systems, all on the same dev questions (spread evenly over the dev set), batch 1:

  hf-pipeline-teacher   transformers ``pipeline("question-answering")``, fp32 PyTorch teacher (what a user runs without edgekit)
  optimum-ort-teacher   Optimum's ``ORTModelForQuestionAnswering`` pipeline, the same teacher exported by Optimum
  optimum-ort-int8-*    the same pipeline on Optimum's dynamic INT8 of that export (``ORTQuantizer``, the
                        ``AutoQuantizationConfig`` of this CPU: avx512_vnni, avx512, avx2 or arm64)
  edgekit-teacher       the teacher's fp32 ONNX bundle through the edgekit runner (ONNX Runtime; where the
                        openvino package is installed also OpenVINO f32 and, on a CPU with bfloat16, bf16)
  edgekit-teacher-NAME  each other form of the teacher given (``--teacher-forms``: int8, float activations, ...)
  edgekit-student-*     each student bundle given (ONNX int8, TFLite fp32/int8, ...) through the edgekit runner
                        (with --low-memory also the int8 ONNX students with the memory arena off;
                        fp32 ONNX students also through OpenVINO bf16 where it runs)
  *-LABEL               each ``--peer LABEL CHECKPOINT FP32_BUNDLE [FORM ...]``: a student measured as the teacher
                        is (HF pipeline and Optimum's fp32 and int8 forms of its checkpoint, edgekit's fp32 bundle
                        and each other form through the runner), its pipelines on the student's own window length;
                        ``edgekit export checkpoint`` makes the checkpoint of a shipped bundle

Each (system, repeat) runs in a fresh process, so peak RSS is that system's own,
and repeats are interleaved (a, b, c, d, a, b, ...) so that machine noise spreads
over all systems. Reported per system: medians over repeats of the median latency
per question, throughput, peak RSS, EM/F1 on those questions (a check that every
system answers the same task), and for edgekit the bare model time, so the
runner's own overhead (tokenize + decode) is visible. Ratios are to the HF
pipeline measured in the same run; the peer comparison takes each tool's fastest form of the teacher (and of
each ``--peer`` student), edgekit's among those within 0.5 F1 of Optimum's fastest. A thread sweep then times
the edgekit teacher and the int8 students, the same way, at each ``--sweep-threads`` count (by default 1 and
twice the cores: how far fewer threads fall behind and what oversubscribing costs).

    python -m benchmarks.speed --students B1 B2 ... [--n 500] [--repeats 3] [--threads 2] [--sweep-threads 1 4]
        [--peer LABEL CHECKPOINT FP32_BUNDLE [FORM ...]]
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
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from edgekit import device
from edgekit.atomic import write_json, write_text
from edgekit.decode import DEFAULT_N_BEST
from edgekit.errors import EdgekitError
from edgekit.metric import evaluate
from edgekit.provenance import module_command
from edgekit.squad import Example, default_data_dir, load_squad

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TEACHER = ROOT.parent / "shared" / "models" / "mpnet-base-squad"
TEACHER_BUNDLE = ROOT / "runs" / "bundles" / "mpnet-base-squad-fp32-onnx"
GOALS = {
    "student_int8_vs_hf_speedup_min": 20.0,
    "edgekit_teacher_vs_hf_speedup_min": 2.0,
    "edgekit_teacher_vs_optimum_speedup_min": 1.0,
    "runner_overhead_max_pct": 10.0,
    "student_int8_peak_rss_max_mb": 150.0,
    "edgekit_vs_optimum_teacher_speedup_min": 1.5,
}
# worker system -> edgekit runtime backend (None: the bundle format's own)
EDGEKIT_SYSTEMS = {
    "edgekit": None,
    "edgekit-low-memory": None,
    "edgekit-openvino": "openvino",
    "edgekit-openvino-bf16": "openvino-bf16",
    "edgekit-auto": "auto",  # what `edgekit run --backend auto` picks on this machine (edgekit.backends.choose)
}


@dataclass(frozen=True)
class System:
    """One row of the table: a worker kind on a target (a checkpoint, an Optimum directory or a bundle), and the
    model it is a form of (the teacher, a ``--peer`` student; None for a ``--students`` bundle)."""

    name: str
    kind: str
    target: str
    model: str | None = None
    max_seq_len: int = 384  # the pipelines' window; the runner takes its bundle's


def pick_questions(dataset: Path, n: int) -> list[Example]:
    examples = load_squad(dataset)
    step = max(1, len(examples) // n)
    return examples[::step][:n]


def _timed(answer, examples: list[Example], warmup: int) -> tuple[dict[str, str], list[float]]:
    for ex in examples[:warmup]:
        answer(ex)
    preds, lat = {}, []
    for ex in examples:
        t = time.perf_counter()
        preds[ex.id] = answer(ex)
        lat.append((time.perf_counter() - t) * 1000.0)
    return preds, lat


def worker(
    system: str, target: str, dataset: Path, n: int, threads: int, warmup: int, max_seq_len: int = 384
) -> dict[str, Any]:
    """Measure one system in this process (called in a fresh subprocess by :func:`main`)."""
    examples = pick_questions(dataset, n)
    t0 = time.perf_counter()
    model_ms: list[float] = []
    choice: dict[str, Any] | None = None
    if system in ("hf-pipeline", "optimum-ort", "optimum-ort-int8"):
        import torch
        from transformers import AutoTokenizer, pipeline

        torch.set_num_threads(threads)
        tok = AutoTokenizer.from_pretrained(target)
        if system == "hf-pipeline":
            from transformers import AutoModelForQuestionAnswering

            model = AutoModelForQuestionAnswering.from_pretrained(target, dtype=torch.float32).eval()
        else:
            model = optimum_session(target, "extractive-qa", threads, int8=system == "optimum-ort-int8")
        pipe = pipeline("question-answering", model=model, tokenizer=tok, device="cpu")

        def answer(ex: Example) -> str:
            with torch.inference_mode():
                return pipe(question=ex.question, context=ex.context, max_seq_len=max_seq_len, doc_stride=128)["answer"]
    else:
        from edgekit.backends import RuntimeOptions
        from edgekit.runner import QAModel

        options = RuntimeOptions(
            threads=threads, low_memory=system == "edgekit-low-memory", backend=EDGEKIT_SYSTEMS[system]
        )
        if options.backend == "auto":  # chosen (or remembered) before the model is opened, as `edgekit run` does
            from edgekit.backends.choose import choose_backend

            chosen, choice = choose_backend(target, options, examples, DEFAULT_N_BEST)
            options = replace(options, backend=chosen)
        qa = QAModel.load(target, options)

        def answer(ex: Example) -> str:
            text = qa.answer(ex.question, ex.context).text
            model_ms.append(qa.last_model_ms)
            return text

    load_ms = (time.perf_counter() - t0) * 1000.0
    preds, lat = _timed(answer, examples, warmup)
    model_ms = model_ms[-len(lat) :] if model_ms else []
    score = evaluate(examples, preds)
    return {
        "system": system,
        "target": target,
        "n": len(lat),
        "load_ms": load_ms,
        "p50_ms": statistics.median(lat),
        "p90_ms": sorted(lat)[int(0.9 * (len(lat) - 1))],
        "throughput_qps": 1000.0 * len(lat) / sum(lat),
        "model_p50_ms": statistics.median(model_ms) if model_ms else None,
        "model_total_ms": sum(model_ms) if model_ms else None,
        "total_ms": sum(lat),
        "peak_rss_mb": device.peak_rss_mb(),
        "exact_match": score.exact_match,
        "f1": score.f1,
        **({"auto_choice": choice} if choice else {}),
    }


def openvino_backends() -> list[str]:
    """The OpenVINO backends this machine runs: none without the package, bf16 only on a CPU with bfloat16."""
    from edgekit.backends.openvino import cpu_has_bf16

    try:
        bf16 = cpu_has_bf16()
    except EdgekitError:  # no openvino package
        return []
    return ["openvino", "openvino-bf16"] if bf16 else ["openvino"]


# Optimum's model class for each edgekit task
OPTIMUM_CLASSES = {
    "extractive-qa": "ORTModelForQuestionAnswering",
    "text-classification": "ORTModelForSequenceClassification",
    "token-classification": "ORTModelForTokenClassification",
}


def optimum_model(task: str) -> Any:
    """Optimum's ONNX Runtime model class for ``task``."""
    import optimum.onnxruntime

    return getattr(optimum.onnxruntime, OPTIMUM_CLASSES[task])


def optimum_export(checkpoint: Path, out: Path, task: str = "extractive-qa") -> Path:
    """Optimum's own ONNX export of a checkpoint (done once, reused)."""
    if (out / "model.onnx").exists():
        return out
    from transformers import AutoTokenizer

    model = optimum_model(task).from_pretrained(checkpoint, export=True)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(checkpoint).save_pretrained(out)
    return out


OPTIMUM_INT8_FILE = "model_quantized.onnx"


def optimum_session(target: str, task: str, threads: int, int8: bool) -> Any:
    """Optimum's model of ``task`` from its export (``int8``: its quantized file) on ``threads`` threads."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    return optimum_model(task).from_pretrained(
        target, session_options=so, file_name=OPTIMUM_INT8_FILE if int8 else None
    )


def optimum_forms(
    checkpoint: Path, work: Path, label: str, config: str, task: str = "extractive-qa"
) -> tuple[Path, Path]:
    """Optimum's fp32 export of a checkpoint and that export's dynamic INT8 for CPU ``config``, each made once
    under ``work`` (``optimum-LABEL``, ``optimum-LABEL-int8-CONFIG``) and reused."""
    optimum = optimum_export(checkpoint, work / f"optimum-{label}", task)
    return optimum, optimum_int8(optimum, work / f"optimum-{label}-int8-{config}", config)


def optimum_cpu_config(features: list[str]) -> str:
    """The ``AutoQuantizationConfig`` Optimum offers for this CPU: its most capable x86 target the CPU has,
    ``arm64`` on ARM."""
    if "asimd" in features or not any(f.startswith("avx") for f in features):
        return "arm64"
    return "avx512_vnni" if "avx512_vnni" in features else "avx512" if "avx512f" in features else "avx2"


def optimum_int8(optimum_dir: Path, out: Path, config: str) -> Path:
    """Optimum's own dynamic INT8 form of its export (``ORTQuantizer`` with ``AutoQuantizationConfig.<config>``,
    its defaults but dynamic), done once and reused."""
    if (out / OPTIMUM_INT8_FILE).exists():
        return out
    from optimum.onnxruntime import ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig
    from transformers import AutoTokenizer

    qconfig = getattr(AutoQuantizationConfig, config)(is_static=False)
    ORTQuantizer.from_pretrained(optimum_dir).quantize(quantization_config=qconfig, save_dir=out)
    AutoTokenizer.from_pretrained(optimum_dir).save_pretrained(out)
    return out


def _fastest(rows: list[dict[str, Any]], prefix: str, min_f1: float) -> dict[str, Any] | None:
    kept = [r for r in rows if r["name"].startswith(prefix) and r["f1"] >= min_f1]
    return min(kept, key=lambda r: r["p50_ms"]) if kept else None


def peer_ratios(rows: list[dict[str, Any]], model: str = "teacher", tolerance: float = 0.5) -> dict[str, Any]:
    """Each tool's best deployable form of ``model`` (the teacher, or a ``--peer`` student's label), compared two
    ways: Optimum's fastest form against edgekit's fastest within ``tolerance`` F1 of it; and each tool's fastest
    form within ``tolerance`` F1 of the fp32 model (the HF pipeline's answers), a quantized form that loses more
    being no answer to the same need. Rows of runs before ``--peer`` carry no model: theirs is the teacher."""
    out: dict[str, Any] = {}
    rows = [r for r in rows if r.get("model", "teacher") == model]
    fp32_f1 = next(r["f1"] for r in rows if r["name"] == f"hf-pipeline-{model}")
    fastest = _fastest(rows, "optimum-", float("-inf"))
    assert fastest is not None
    kept = _fastest(rows, "optimum-", fp32_f1 - tolerance)
    for key, ref, f1 in (("fastest", fastest, fastest["f1"]), ("accuracy_kept", kept, fp32_f1)):
        if ref is None:
            continue
        edge = _fastest(rows, f"edgekit-{model}", f1 - tolerance)
        out[f"optimum_{key}_{model}"] = ref["name"]
        if edge is not None:
            out[f"edgekit_{key}_{model}"] = edge["name"]
            out[f"edgekit_vs_optimum_{key}_{model}_speedup"] = ref["p50_ms"] / edge["p50_ms"]
            out[f"edgekit_minus_optimum_{key}_{model}_f1"] = edge["f1"] - ref["f1"]
    return out


def peer_systems(
    model: str, checkpoint: Path, fp32_bundle: Path, forms: list[Path], openvino: list[str], config: str, work: Path
) -> list[System]:
    """Every tool's forms of one model: the HF pipeline and Optimum's fp32 and int8 forms of its checkpoint (on
    the window length of its fp32 bundle), edgekit's fp32 bundle (ONNX Runtime, OpenVINO, ``--backend auto``) and
    each other bundle of it (ONNX Runtime, OpenVINO)."""
    from edgekit.bundle import load_bundle

    optimum, optimum_q = optimum_forms(checkpoint, work, model, config)
    one = partial(System, model=model, max_seq_len=load_bundle(fp32_bundle).manifest.max_seq_len)
    fp32 = str(fp32_bundle)
    systems = [
        one(f"hf-pipeline-{model}", "hf-pipeline", str(checkpoint)),
        one(f"optimum-ort-{model}", "optimum-ort", str(optimum)),
        one(f"optimum-ort-int8-{config}-{model}", "optimum-ort-int8", str(optimum_q)),
        one(f"edgekit-{model}-fp32-onnx", "edgekit", fp32),
        *(one(f"edgekit-{model}-fp32-onnx-{b}", f"edgekit-{b}", fp32) for b in openvino),
        one(f"edgekit-{model}-fp32-onnx-auto", "edgekit-auto", fp32),
    ]
    for b in forms:
        name = load_bundle(b).manifest.name.removeprefix(f"{model}-")
        systems.append(one(f"edgekit-{model}-{name}", "edgekit", str(b)))
        # OpenVINO runs an int8 ONNX graph too, with kernels of its own (bf16: the float parts in bfloat16)
        systems += [one(f"edgekit-{model}-{name}-{o}", f"edgekit-{o}", str(b)) for o in openvino]
    return systems


def measure(
    systems: list[System], args: argparse.Namespace, threads: int, desc: str
) -> dict[str, list[dict[str, Any]]]:
    """Every (system, repeat) in a fresh worker process at ``threads`` threads, repeats interleaved. The
    backend choice of ``--backend auto`` is remembered in ``args.choice_cache`` (this run's own), if set: its first
    repeat measures the candidates (in its load time), the later ones reuse that choice as a user's runs do."""
    from tqdm import tqdm

    cache = getattr(args, "choice_cache", None)
    env = {**os.environ, **({"XDG_CACHE_HOME": str(cache)} if cache else {})}
    runs: dict[str, list[dict[str, Any]]] = {s.name: [] for s in systems}
    common = ["--dataset", str(args.dataset), "--n", str(args.n), "--threads", str(threads)]
    common += ["--warmup", str(args.warmup)]
    with tqdm(total=len(systems) * args.repeats, desc=desc) as bar:
        for _ in range(args.repeats):
            for s in systems:
                cmd = [sys.executable, "-m", "benchmarks.speed", "--worker", s.kind, s.target, *common]
                cmd += ["--max-seq-len", str(s.max_seq_len)]
                with tempfile.TemporaryFile() as err:
                    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT, env=env)
                    if proc.returncode != 0:
                        err.seek(0)
                        raise SystemExit(f"{s.name} failed:\n{err.read().decode(errors='replace')[-3000:]}")
                runs[s.name].append(json.loads(proc.stdout.strip().splitlines()[-1]))
                bar.update()
    return runs


def thread_sweep(rows: list[dict[str, Any]], systems: list[System], args: argparse.Namespace) -> list[dict[str, Any]]:
    """The edgekit teacher (ONNX Runtime) and the int8 students at each of ``--sweep-threads``: how latency
    scales with threads on this CPU. The main table's own thread count is taken from its rows."""
    swept = [s for s in systems if s.name == "edgekit-teacher-fp32-onnx" or s.name.endswith("int8-onnx")]
    keys = ("p50_ms", "mean_ms", "model_p50_ms", "runner_overhead_pct", "peak_rss_mb", "f1")
    out = []
    for threads in sorted({*args.sweep_threads, args.threads}):
        if threads == args.threads:
            got = [r for r in rows if r["name"] in {s.name for s in swept}]
        else:
            runs = measure(swept, args, threads, f"{threads} threads: system x repeat")
            got = [summarize(s.name, runs[s.name], None) for s in swept]
        out += [{"threads": threads, "name": r["name"], **{k: r.get(k) for k in keys}} for r in got]
    return out


def _median(runs: list[dict[str, Any]], key: str) -> float | None:
    vals = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def summarize(name: str, runs: list[dict[str, Any]], base: dict[str, Any] | None) -> dict[str, Any]:
    keys = ("p50_ms", "p90_ms", "throughput_qps", "peak_rss_mb", "model_p50_ms", "load_ms")
    s = {k: _median(runs, k) for k in keys}
    s["mean_ms"] = statistics.median(r["total_ms"] / r["n"] for r in runs)
    s.update(name=name, target=runs[0]["target"], n=runs[0]["n"], repeats=len(runs))
    s.update(exact_match=runs[0]["exact_match"], f1=runs[0]["f1"])
    s["p50_ms_each_repeat"] = [round(r["p50_ms"], 2) for r in runs]
    if runs[0].get("auto_choice"):
        s["auto_backend_each_repeat"] = [r["auto_choice"]["backend"] for r in runs]
        s["auto_choice"] = runs[0]["auto_choice"]  # the first repeat's: it measured the candidates
    if runs[0].get("model_total_ms"):
        # overhead of tokenize + decode + Python around the runtime call, as a share of the bare model time
        s["runner_overhead_pct"] = statistics.median(
            100.0 * (r["total_ms"] - r["model_total_ms"]) / r["model_total_ms"] for r in runs
        )
    if base:
        s["speedup_vs_hf_pipeline"] = base["p50_ms"] / s["p50_ms"]
        s["rss_ratio_vs_hf_pipeline"] = s["peak_rss_mb"] / base["peak_rss_mb"]
    return s


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| system | questions | p50 ms | p90 ms | q/s | model p50 ms | runner overhead | peak RSS MB | EM | F1 "
        "| speedup vs HF pipeline |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        over = f"{r['runner_overhead_pct']:.1f}%" if r.get("runner_overhead_pct") is not None else "–"
        mp = f"{r['model_p50_ms']:.1f}" if r.get("model_p50_ms") else "–"
        lines.append(
            f"| {r['name']} | {r['n']} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | {r['throughput_qps']:.2f} | {mp} | "
            f"{over} | {r['peak_rss_mb']:.0f} | {r['exact_match']:.1f} | {r['f1']:.1f} | "
            f"{r.get('speedup_vs_hf_pipeline', 1.0):.1f}× |"
        )
    return "\n".join(lines) + "\n"


def sweep_markdown(sweep: list[dict[str, Any]]) -> str:
    """Latency by thread count, one row per system and thread count."""
    lines = [
        "| system | threads | p50 ms | mean ms | model p50 ms | runner overhead | peak RSS MB | F1 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(sweep, key=lambda r: (r["name"], r["threads"])):
        lines.append(
            f"| {r['name']} | {r['threads']} | {r['p50_ms']:.1f} | {r['mean_ms']:.1f} | {r['model_p50_ms']:.1f} "
            f"| {r['runner_overhead_pct']:.1f}% | {r['peak_rss_mb']:.0f} | {r['f1']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--students", nargs="*", type=Path, default=[], help="student bundles to measure")
    p.add_argument("--teacher", type=Path, default=TEACHER, help="teacher transformers directory")
    p.add_argument("--teacher-bundle", type=Path, default=TEACHER_BUNDLE, help="teacher fp32 ONNX bundle")
    p.add_argument(
        "--teacher-forms",
        nargs="*",
        type=Path,
        default=[],
        help="other bundles of the teacher (int8, float activations, ...) to measure beside it",
    )
    p.add_argument("--dataset", type=Path, default=default_data_dir() / "dev-v1.1.json")
    p.add_argument("--n", type=int, default=500, help="questions, spread evenly over the dataset (default: 500)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument(
        "--sweep-threads",
        type=int,
        nargs="*",
        default=[1, 2 * (os.cpu_count() or 1)],
        help="also time the edgekit teacher and int8 students at these thread counts (default: %(default)s)",
    )
    p.add_argument(
        "--low-memory", action="store_true", help="also run int8 ONNX students with --low-memory (memory arena off)"
    )
    p.add_argument(
        "--peer",
        nargs="+",
        action="append",
        default=[],
        metavar="ARG",
        help="a student measured against the peers as the teacher is (repeatable): a label, its transformers "
        "checkpoint, its fp32 ONNX bundle and other bundles of it (int8, ...)",
    )
    p.add_argument("--max-seq-len", type=int, default=384, help=argparse.SUPPRESS)  # a worker's pipeline window
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "speed")
    p.add_argument("--out", type=Path, default=RESULTS / "speed.json")
    p.add_argument("--worker", nargs=2, metavar=("SYSTEM", "TARGET"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        result = worker(*args.worker, args.dataset, args.n, args.threads, args.warmup, args.max_seq_len)
        print(json.dumps(result))
        return 0

    from edgekit.bundle import load_bundle

    if any(len(peer) < 3 for peer in args.peer):
        p.error("--peer: expected LABEL CHECKPOINT FP32_BUNDLE [FORM ...]")
    optimum_config = optimum_cpu_config(device.cpu_features()["cpu_features"])
    choice_cache = tempfile.TemporaryDirectory(prefix="backend-choice-")
    args.choice_cache = Path(choice_cache.name)
    openvino = openvino_backends()
    peers = [("teacher", args.teacher, args.teacher_bundle, args.teacher_forms)]
    peers += [(label, Path(ckpt), Path(fp32), [Path(f) for f in forms]) for label, ckpt, fp32, *forms in args.peer]
    systems = [s for peer in peers for s in peer_systems(*peer, openvino, optimum_config, args.work)]
    for b in args.students:
        m = load_bundle(b).manifest
        systems.append(System(f"edgekit-student-{m.name}", "edgekit", str(b)))
        if args.low_memory and m.model_format == "onnx" and m.precision == "int8":
            systems.append(System(f"edgekit-student-{m.name}-low-memory", "edgekit-low-memory", str(b)))
        if m.model_format == "onnx" and m.precision == "fp32" and "openvino-bf16" in openvino:
            systems.append(System(f"edgekit-student-{m.name}-openvino-bf16", "edgekit-openvino-bf16", str(b)))

    runs = measure(systems, args, args.threads, "system x repeat")
    base = summarize("hf-pipeline-teacher", runs["hf-pipeline-teacher"], None)
    rows = [
        {**(summarize(s.name, runs[s.name], base) if s.name != base["name"] else base), "model": s.model}
        for s in systems
    ]
    by = {r["name"]: r for r in rows}
    int8 = [r for r in rows if r["name"].startswith("edgekit-student") and r["name"].endswith("int8-onnx")]
    low = [r for r in rows if r["name"].endswith("int8-onnx-low-memory")]
    edge = by["edgekit-teacher-fp32-onnx"]
    teacher_rows = [r for r in rows if r["name"].startswith("edgekit-teacher")]
    fastest = min(teacher_rows, key=lambda r: r["p50_ms"])
    optimum = by["optimum-ort-teacher"]
    auto = by["edgekit-teacher-fp32-onnx-auto"]
    checks = {
        "edgekit_teacher_vs_hf_speedup": edge["speedup_vs_hf_pipeline"],
        "edgekit_teacher_vs_optimum_speedup": optimum["p50_ms"] / edge["p50_ms"],
        "fastest_edgekit_teacher": fastest["name"],
        "fastest_edgekit_teacher_vs_hf_speedup": fastest["speedup_vs_hf_pipeline"],
        "fastest_edgekit_teacher_vs_optimum_speedup": optimum["p50_ms"] / fastest["p50_ms"],
        "fastest_edgekit_teacher_f1_minus_hf_f1": fastest["f1"] - base["f1"],
        "runner_overhead_pct_teacher": edge.get("runner_overhead_pct"),
        "edgekit_teacher_auto_backend": auto["auto_backend_each_repeat"],
        "edgekit_teacher_auto_vs_optimum_speedup": optimum["p50_ms"] / auto["p50_ms"],
        "edgekit_teacher_auto_f1_minus_hf_f1": auto["f1"] - base["f1"],
    }
    for model, *_ in peers:
        checks.update(peer_ratios(rows, model))
    checks["optimum_cpu_config"] = optimum_config
    if int8:
        checks["student_int8_vs_hf_speedup"] = int8[0]["speedup_vs_hf_pipeline"]
        checks["student_int8_vs_hf_mean_speedup"] = base["mean_ms"] / int8[0]["mean_ms"]
        checks["student_int8_peak_rss_mb"] = int8[0]["peak_rss_mb"]
        checks["runner_overhead_pct_student_int8"] = int8[0].get("runner_overhead_pct")
    if low:
        checks["student_int8_low_memory_peak_rss_mb"] = low[0]["peak_rss_mb"]
        checks["student_int8_low_memory_vs_hf_speedup"] = low[0]["speedup_vs_hf_pipeline"]
    sweep = thread_sweep(rows, systems, args)
    result = {
        "rows": rows,
        "thread_sweep": sweep,
        "ratios": checks,
        "goals": GOALS,
        "peer_models": [model for model, *_ in peers],
        "settings": {
            "n": args.n,
            "repeats": args.repeats,
            "warmup": args.warmup,
            "threads": args.threads,
            "sweep_threads": sorted({*args.sweep_threads, args.threads}),
        },
        "device": device.describe(),
        "command": module_command("benchmarks.speed", argv),
        "notes": "medians over repeats of per-question median latency; each (system, repeat) in a fresh process; "
        "runner overhead = (wall - bare model time) / bare model time, summed over questions",
    }
    write_json(args.out, result)
    table = markdown(rows) + "\n" + sweep_markdown(sweep)
    write_text(args.out.with_suffix(".md"), table)
    print(table)
    print(json.dumps(checks, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
