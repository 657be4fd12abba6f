"""Where a runner's memory goes: peak RSS of ``edgekit run`` on a whole dataset, and its breakdown by cause.

Three measurements of one bundle, each in fresh processes, in one run:

  run         ``edgekit run BUNDLE --dataset DATASET`` over every example: the peak RSS the runner reports
              (the process's high-water mark), with the default settings and with ``--low-memory``.
  breakdown   the runner's steps, one after another in a worker process, in its order: the interpreter,
              numpy, the runtime library, edgekit's own modules (tokenizers, the progress bar), the dataset
              as the runner holds it while the model runs (inputs only), the bundle check (sha256 of every
              file, the tokenizer built and probed), the runtime session (its kernels and the weights), the
              activations of one window of the bundle's longest length; each step's growth of the resident
              set, and how far the peak rose above it while the step ran (a transient: the model file parsed
              beside the weights built from it).
  api         ``edgekit.load(BUNDLE)`` and one question answered: an app's footprint, without a dataset.

The model file's weights inline (the bundle format) against the same graph with its weights in an external
data file (memory-mapped by ONNX Runtime) is measured as the ``session`` step of both, in the breakdown.

``--levers`` measures, instead, ONNX Runtime settings the runner does not use, against the session as the runner
makes it, each in fresh processes, alternating, medians of ``--repeats``: the session's growth, the peak while it
loads, the growth after 300 windows of random lengths up to the bundle's, and their p50 (ORT's weight prepacking
off; the model in ORT's own format; that format with its weights used in place). It writes memory-levers.json.

    python -m benchmarks.memory models/minilm-l6-kd-e4-int8-onnx [--dataset DEV] [--threads 2] [--repeats 3]
    python -m benchmarks.memory models/minilm-l6-kd-e4-int8-onnx --levers
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks" / "results" / "memory.json"
GOAL_PEAK_RSS_MB = 100.0  # a Raspberry Pi Zero 2 W has 512 MB for everything


def _mb(kb_line: str) -> float:
    return int(kb_line.split()[1]) / 1024.0


def _fields(*names: str) -> list[float]:
    """Fields of /proc/self/status, in MiB."""
    lines = Path("/proc/self/status").read_text().splitlines()
    found = {line.split(":")[0]: _mb(line) for line in lines if line.endswith(" kB")}
    return [found.get(name, 0.0) for name in names]


def _status() -> tuple[float, float]:
    """This process's resident set and its high-water mark (MiB)."""
    rss, hwm = _fields("VmRSS", "VmHWM")
    return rss, hwm


def breakdown_worker(bundle: Path, dataset: Path, threads: int) -> list[dict[str, Any]]:
    """The runner's steps in its order, each step's resident growth and transient."""
    steps: list[dict[str, Any]] = []
    trim = None

    def step(name: str) -> None:
        if trim is not None:
            trim()  # the C heap's free pages back first, as the runner does after loading the model
        rss, hwm, anon, file = _fields("VmRSS", "VmHWM", "RssAnon", "RssFile")
        before = steps[-1]["rss_mb"] if steps else 0.0
        hwm_before = steps[-1]["hwm_mb"] if steps else 0.0  # a high-water mark only rises
        steps.append(
            {
                "step": name,
                "rss_mb": round(rss, 1),
                "hwm_mb": round(hwm, 1),
                "anon_mb": round(anon, 1),  # the process's own memory: heap, arenas, copies of weights
                "file_mb": round(file, 1),  # pages of mapped files (libraries' code, a mapped model): shared, evictable
                "grew_mb": round(rss - before, 1),
                "transient_mb": round(max(0.0, hwm - max(rss, hwm_before)), 1),
            }
        )

    step("interpreter")
    import numpy  # noqa: F401

    step("numpy")
    import onnxruntime  # noqa: F401

    step("runtime library (onnxruntime)")
    from edgekit import device
    from edgekit.backends import RuntimeOptions, check_model
    from edgekit.backends.onnx import OnnxBackend
    from edgekit.bundle import load_bundle
    from edgekit.tasks import get_task

    trim = device.release_free_heap
    import tqdm  # noqa: F401  (the runner's progress bar)

    step("edgekit, tokenizers, progress bar")
    device.keep_large_allocations_mapped()  # as `edgekit run` does before it loads anything
    manifest = load_bundle(bundle, verify=False).manifest
    task = get_task(manifest.task)
    examples = list(task.load_examples(dataset, None, manifest, gold=False))
    step(f"dataset ({len(examples)} examples, inputs only)")
    loaded = load_bundle(bundle)
    step("bundle check (sha256 of every file; the tokenizer built and probed)")
    backend = OnnxBackend(loaded, RuntimeOptions(threads=threads))
    step("runtime session (kernels, weights)")
    check_model(loaded, backend)
    step(f"activations ({manifest.max_seq_len}-token window)")
    return steps


def api_worker(bundle: Path, threads: int) -> dict[str, Any]:
    """``edgekit.load`` and one question answered from the packaged excerpt: an app's peak."""
    import edgekit
    from edgekit.squad import load_squad, sample_path

    ex = load_squad(sample_path("dev"))[0]
    qa = edgekit.load(bundle, threads=threads)
    answer = qa(question=ex.question, context=ex.context)
    rss, hwm = _status()
    return {"rss_mb": round(rss, 1), "peak_rss_mb": round(hwm, 1), "answer": answer["answer"]}


LEVER_CALLS = 300
LEVERS: dict[str, dict[str, str]] = {
    "as the runner makes it": {},
    "weight prepacking off": {"session.disable_prepacking": "1"},
    "ORT format": {"format": "ort"},
    "ORT format, weights used in place": {
        "format": "ort",
        "session.use_ort_model_bytes_directly": "1",
        "session.use_ort_model_bytes_for_initializers": "1",
    },
}


def _session_options(threads: int) -> Any:
    """The session options ``edgekit.backends.onnx.OnnxBackend`` uses (without ``--low-memory``)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.inter_op_num_threads, so.intra_op_num_threads = 1, threads
    so.enable_mem_pattern = False
    so.log_severity_level = 4
    return so


def lever_worker(model: Path, max_len: int, threads: int, lever: str) -> dict[str, Any]:
    """One lever's session: its growth, its load peak, the growth after LEVER_CALLS windows, and their p50."""
    import numpy as np
    import onnxruntime as ort

    so = _session_options(threads)
    for key, value in LEVERS[lever].items():
        if key != "format":
            so.add_session_config_entry(key, value)
    rss0, _ = _status()
    session = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
    rss1, hwm1 = _status()
    rng = np.random.default_rng(0)
    names = [i.name for i in session.get_inputs()]
    times = []
    for _ in range(LEVER_CALLS):
        n = int(rng.integers(max_len // 4, max_len + 1))
        feeds = {k: rng.integers(1000, 20000, (1, n)) if k == "input_ids" else np.ones((1, n), np.int64) for k in names}
        t = time.perf_counter()
        session.run(None, feeds)
        times.append(1000 * (time.perf_counter() - t))
    rss2, hwm2 = _status()
    return {
        "session_mb": round(rss1 - rss0, 1),
        "load_peak_mb": round(hwm1 - rss0, 1),
        "after_calls_mb": round(rss2 - rss0, 1),
        "peak_mb": round(hwm2 - rss0, 1),
        "p50_ms": round(statistics.median(times[20:]), 2),
    }


def ort_format_model(model: Path, out: Path, threads: int) -> Path:
    """The model optimized as the runner's session optimizes it, saved in ONNX Runtime's own (flatbuffer) format."""
    import onnxruntime as ort

    so = _session_options(threads)
    so.optimized_model_filepath = str(out)
    so.add_session_config_entry("session.save_model_format", "ORT")
    ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
    return out


def levers(bundle: Path, threads: int, repeats: int) -> dict[str, Any]:
    """Every lever in fresh processes, the levers alternating within each repeat; medians per lever."""
    from tqdm import tqdm

    from edgekit.bundle import load_bundle

    b = load_bundle(bundle)
    found: dict[str, list[dict[str, Any]]] = {name: [] for name in LEVERS}
    with tempfile.TemporaryDirectory(prefix="levers-") as tmp:
        ort_model = ort_format_model(b.model_path, Path(tmp) / "model.ort", threads)
        for _ in tqdm(range(repeats), desc="levers x repeat"):
            for name, entries in LEVERS.items():
                model = ort_model if entries.get("format") == "ort" else b.model_path
                args = [str(model), str(b.manifest.max_seq_len), str(threads), name]
                found[name].append(_worker("lever", bundle, *args))
    keys = found[next(iter(LEVERS))][0]
    return {name: {k: statistics.median(r[k] for r in runs) for k in keys} for name, runs in found.items()}


def _worker(kind: str, bundle: Path, *args: str) -> Any:
    """One worker in a fresh process: its resident set is that step sequence's own."""
    cmd = [sys.executable, "-m", "benchmarks.memory", str(bundle), "--worker", kind, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"worker {kind} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def external_data_bundle(bundle: Path, out: Path) -> Path:
    """A copy of the bundle whose model keeps every weight in one external data file beside it (ONNX's own
    layout), listed in its manifest like any bundle file."""
    import onnx

    from edgekit.atomic import write_json
    from edgekit.bundle import FileEntry, load_bundle, sha256_file

    src = load_bundle(bundle)
    model = onnx.load(str(src.model_path))
    onnx.save(
        model, str(out / "model.onnx"), save_as_external_data=True, location="model.onnx.data", size_threshold=1024
    )
    shutil.copyfile(src.tokenizer_path, out / src.manifest.tokenizer_file)
    files = {f.name: FileEntry(f.stat().st_size, sha256_file(f)) for f in sorted(out.iterdir())}
    write_json(out / "manifest.json", replace(src.manifest, files=files).to_json())
    return out


def _median_steps(runs: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    keys = ("rss_mb", "hwm_mb", "anon_mb", "file_mb", "grew_mb", "transient_mb")
    return [
        {"step": run0["step"], **{k: statistics.median(r[i][k] for r in runs) for k in keys}}
        for i, run0 in enumerate(runs[0])
    ]


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "| step | resident MB | anonymous MB | file pages MB | grew MB | transient MB |",
        "|---|---|---|---|---|---|",
        *(
            f"| {s['step']} | {s['rss_mb']:.1f} | {s['anon_mb']:.1f} | {s['file_mb']:.1f} "
            f"| {s['grew_mb']:+.1f} | {s['transient_mb']:.1f} |"
            for s in result["breakdown"]
        ),
    ]
    ext = result["breakdown_external_data"]
    session = next(s for s in ext if s["step"].startswith("runtime session"))
    lines += [
        "",
        f"Weights in an external data file: the session step grows {session['grew_mb']:+.1f} MB "
        f"(transient {session['transient_mb']:.1f} MB); resident after the activations "
        f"{ext[-1]['rss_mb']:.1f} MB against {result['breakdown'][-1]['rss_mb']:.1f} MB.",
        "",
        "| run | peak RSS MB | F1 | p50 ms |",
        "|---|---|---|---|",
        *(f"| {r['name']} | {r['peak_rss_mb']:.1f} | {r['f1']:.2f} | {r['p50_ms']:.1f} |" for r in result["runs"]),
        "",
        f"`edgekit.load` and one question: peak RSS {result['api']['peak_rss_mb']:.1f} MB.",
    ]
    return "\n".join(lines) + "\n"


def _write_levers(args: argparse.Namespace, argv: list[str] | None) -> int:
    from edgekit.atomic import write_json, write_text
    from edgekit.device import describe
    from edgekit.provenance import module_command

    found = levers(args.bundle, args.threads, args.repeats)
    result = {
        "bundle": str(args.bundle),
        "levers": found,
        "settings": {"threads": args.threads, "repeats": args.repeats, "calls": LEVER_CALLS},
        "device": describe(),
        "command": module_command("benchmarks.memory", argv),
        "notes": "MB over the process before the session: session = resident after it is made, load peak = the "
        "high-water mark then, after calls = resident after the windows, peak = the high-water mark at the end; "
        "windows of random token ids, lengths uniform from a quarter of the bundle's to all of it; p50 over all "
        "but the first 20; medians over repeats, each a fresh process",
    }
    out = args.out.with_name("memory-levers.json") if args.out == RESULT else args.out
    write_json(out, result)
    rows = [
        f"| {name} | {r['session_mb']:.1f} | {r['load_peak_mb']:.1f} | {r['after_calls_mb']:.1f} | {r['peak_mb']:.1f} "
        f"| {r['p50_ms']:.2f} |"
        for name, r in found.items()
    ]
    head = ["| session | grew MB | load peak MB | after calls MB | peak MB | p50 ms |", "|---|---|---|---|---|---|"]
    write_text(out.with_suffix(".md"), "\n".join([*head, *rows]) + "\n")
    print("\n".join([*head, *rows]))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", type=Path, help="edge bundle directory (ONNX)")
    p.add_argument(
        "--dataset",
        type=Path,
        default=Path(os.environ.get("EDGEKIT_DATA_DIR", ".")) / "squad" / "dev-v1.1.json",
        help="the task's dataset (default: $EDGEKIT_DATA_DIR/squad/dev-v1.1.json)",
    )
    p.add_argument("--threads", type=int, default=2, help="runtime threads (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="breakdown repeats, medians reported (default: 3)")
    p.add_argument("--no-run", action="store_true", help="only the breakdown and the API (no full runs)")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "memory")
    p.add_argument("--out", type=Path, default=RESULT)
    p.add_argument("--levers", action="store_true", help="ONNX Runtime settings the runner does not use, instead")
    p.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    # edgekit is imported here, not at the top: a worker's first step measures the interpreter alone

    if args.worker:
        kind, *rest = args.worker
        if kind == "api":
            print(json.dumps(api_worker(args.bundle, args.threads)))
        elif kind == "lever":
            model, max_len, threads, lever = rest
            print(json.dumps(lever_worker(Path(model), int(max_len), int(threads), lever)))
        else:
            print(json.dumps(breakdown_worker(args.bundle, args.dataset, args.threads)))
        return 0
    if args.levers:
        return _write_levers(args, argv)

    from tqdm import tqdm

    from edgekit.atomic import write_json, write_text
    from edgekit.device import describe
    from edgekit.provenance import module_command
    from edgekit.runner import run_in_process

    common = ["--dataset", str(args.dataset), "--threads", str(args.threads)]
    with tempfile.TemporaryDirectory(prefix="memory-") as tmp:
        external = external_data_bundle(args.bundle, Path(tmp))
        inline, ext = [], []
        for _ in tqdm(range(args.repeats), desc="breakdown x repeat"):
            inline.append(_worker("breakdown", args.bundle, *common))
            ext.append(_worker("breakdown", external, *common))
    api = _worker("api", args.bundle, *common)
    runs = []
    if not args.no_run:
        for name, flags in (("edgekit run", []), ("edgekit run --low-memory", ["--low-memory"])):
            out = args.work / f"{args.bundle.name}-{'low-memory' if flags else 'default'}-{int(time.time())}"
            m = run_in_process(args.bundle, args.dataset, out, ["--threads", str(args.threads), *flags], show=True)
            runs.append(
                {
                    "name": name,
                    "run_dir": str(out),
                    "peak_rss_mb": m["peak_rss_mb"],
                    "f1": m.get("f1", m.get("accuracy")),
                    "p50_ms": m["latency_ms"]["p50"],
                    "examples": m["latency_ms"]["n"],
                }
            )
    result = {
        "bundle": str(args.bundle),
        "dataset": str(args.dataset),
        "breakdown": _median_steps(inline),
        "breakdown_external_data": _median_steps(ext),
        "api": api,
        "runs": runs,
        "goal_peak_rss_mb": GOAL_PEAK_RSS_MB,
        "settings": {"threads": args.threads, "repeats": args.repeats},
        "device": describe(),
        "command": module_command("benchmarks.memory", argv),
        "notes": "resident MB: VmRSS after the step (the C heap trimmed first, as the runner does after loading), "
        "the sum of anonymous memory (RssAnon: the process's own) and file pages (RssFile: mapped libraries and "
        "files, shared with other processes mapping them and evictable under memory pressure); "
        "grew: its change over the step before; transient: how far the high-water mark rose above both while "
        "the step ran; medians over repeats, each a fresh process",
    }
    write_json(args.out, result)
    write_text(args.out.with_suffix(".md"), markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
