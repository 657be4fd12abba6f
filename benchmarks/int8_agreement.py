"""Does an int8 bundle answer like its fp32 source on this CPU, and like the same bundle on ARM?

The default dynamic int8 form has 7-bit weights because x86 CPUs without an int8 dot
product (VNNI/AMX) saturate int16 pair sums with 8-bit ones; CPUs with VNNI, and ARM with
dotprod, do not. This benchmark checks the choice on the CPU it runs on: it quantizes an
fp32 ONNX bundle both ways (7-bit default, 8-bit ``--full-range``), runs fp32 and both int8
bundles through the runner on the same N dev questions, and, unless ``--no-emulated``, runs
the default int8 bundle on the emulated Raspberry Pi too (arm64 Python under qemu, the
shipped ``edgekit/`` only). Writes ``benchmarks/results/int8-agreement/<bundle>.json``:
EM/F1 per variant, the share of answers equal to fp32's, the share equal between this host
and ARM on the same bundle, and this CPU's int8 features. Emulated latency is not a Pi's.

    python -m benchmarks.int8_agreement FP32_BUNDLE [--n 100] [--emulated-n 100] [--no-emulated]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from edgekit.atomic import write_json
from edgekit.bundle import load_bundle
from edgekit.device import describe
from edgekit.device_runners.raspberry_pi.emulate import add_cache_argument
from edgekit.predlog import read_log
from edgekit.provenance import module_command
from edgekit.runner import RunConfig, run
from edgekit.squad import default_data_dir

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "int8-agreement"


def _answers(run_dir: Path) -> dict[str, str]:
    return {r["id"]: r["answer"] for r in read_log(run_dir / "predictions.jsonl")}


def same_share(a: dict[str, str], b: dict[str, str]) -> float | None:
    """Share of the questions both answered whose answers are the same text."""
    common = a.keys() & b.keys()
    return sum(a[q] == b[q] for q in common) / len(common) if common else None


def _scores(run_dir: Path) -> dict[str, float | int]:
    m = json.loads((run_dir / "metrics.json").read_text())
    return {"exact_match": m["exact_match"], "f1": m["f1"], "n_questions": m["n_questions"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", type=Path, help="fp32 ONNX bundle")
    p.add_argument("--dataset", type=Path, default=default_data_dir() / "dev-v1.1.json", help="SQuAD v1.1 JSON")
    p.add_argument("--n", type=int, default=100, help="first N questions on this host (default: %(default)s)")
    p.add_argument("--emulated-n", type=int, default=100, help="first N on the emulated Pi (default: %(default)s)")
    p.add_argument("--no-emulated", action="store_true", help="this host only (e.g. a model too big to emulate)")
    p.add_argument("--threads", type=int, default=2, help="runtime threads (default: %(default)s)")
    add_cache_argument(p)
    p.add_argument("--out", type=Path, default=RESULTS, help="results directory (default: %(default)s)")
    args = p.parse_args(argv)

    from edgekit.backends import RuntimeOptions
    from edgekit.export.quantize import DynamicInt8, quantize_dynamic_bundle

    src = load_bundle(args.bundle)
    name = src.manifest.name
    config = RunConfig(limit=args.n, warmup=1, progress=True, runtime=RuntimeOptions(threads=args.threads))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bundles = {
            "fp32": src.path,
            "int8 7-bit (default)": quantize_dynamic_bundle(src, work / "int8-7bit", None, DynamicInt8()).path,
            "int8 8-bit (--full-range)": quantize_dynamic_bundle(
                src, work / "int8-8bit", None, DynamicInt8(reduce_range=False)
            ).path,
        }
        runs = {label: work / "runs" / f"host-{i}" for i, label in enumerate(bundles)}
        for label, path in bundles.items():
            print(f"{label}: {args.n} questions on this host", flush=True)
            run(path, args.dataset, runs[label], config)
        answers = {label: _answers(d) for label, d in runs.items()}
        variants = {
            label: {**_scores(runs[label]), "same_answer_as_fp32": same_share(answers[label], answers["fp32"])}
            for label in runs
        }
        emulated = None
        if not args.no_emulated:
            emulated = _emulated(bundles["int8 7-bit (default)"], args, work, answers)
    result = {
        "bundle": name,
        "width": src.manifest.hidden_size,
        "dataset": args.dataset.name,
        "device": describe(),
        "variants": variants,
        "emulated_arm64_int8_default": emulated,
        "command": module_command("benchmarks.int8_agreement", argv),
    }
    write_json(args.out / f"{name}.json", result)
    print(json.dumps({k: result[k] for k in ("variants", "emulated_arm64_int8_default")}, indent=1))
    return 0


def _emulated(bundle: Path, args: argparse.Namespace, work: Path, host: dict[str, dict[str, str]]) -> dict[str, object]:
    """The default int8 bundle on the emulated Pi, compared answer by answer with this host's run of it."""
    from edgekit.device_runners.deploy import stage_code
    from edgekit.device_runners.raspberry_pi.emulate import emulated_python

    py = emulated_python(args.cache)
    out = work / "runs" / "emulated"
    cmd = ["run", str(bundle), "--dataset", str(args.dataset), "--out", str(out), "--limit", str(args.emulated_n)]
    cmd += ["--warmup", "0", "--threads", str(args.threads)]
    print(f"int8 7-bit (default): {args.emulated_n} questions on the emulated Pi (slow: emulation)", flush=True)
    proc = py.edgekit(cmd, stage_code(work / "code"), text=True)
    if proc.returncode != 0:
        raise SystemExit(f"emulated run failed (exit {proc.returncode})")
    arm = _answers(out)
    m = json.loads((out / "metrics.json").read_text())
    return {
        **_scores(out),
        "same_answer_as_this_host": same_share(arm, host["int8 7-bit (default)"]),
        "same_answer_as_fp32": same_share(arm, host["fp32"]),
        "device": {k: m["device"].get(k) for k in ("cpu", "arch", "cpu_features", "int8_dot_product", "emulated")},
    }


if __name__ == "__main__":
    raise SystemExit(main())
