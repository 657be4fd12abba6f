"""A real student bundle on the emulated Raspberry Pi (arm64 Debian userland under qemu) vs this host.

Runs the edgekit runner on the first N dev questions twice: natively on this host
and under ``qemu-aarch64-static`` with Debian bookworm's arm64 Python and the
aarch64 wheels (see ``device_runners/raspberry_pi/emulate.py``). Writes both run
directories under ``benchmarks/results/devices/`` and ``comparison.json`` saying
whether every answer is the same. Latency in the emulated ``metrics.json`` is
emulation time (its device record says so), not a Pi's.

    python -m benchmarks.emulated_pi BUNDLE [--n 5] [--cache ~/.cache/edgekit/arm64]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from edgekit.atomic import write_json
from edgekit.bundle import load_bundle
from edgekit.device_runners.raspberry_pi.emulate import add_cache_argument
from edgekit.predlog import read_log
from edgekit.provenance import module_command
from edgekit.runner import RunConfig, run
from edgekit.squad import default_data_dir

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "devices"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", type=Path, help="edge bundle directory")
    p.add_argument("--dataset", type=Path, default=default_data_dir() / "dev-v1.1.json", help="SQuAD v1.1 JSON")
    p.add_argument("--n", type=int, default=5, help="first N questions (default: %(default)s; ~2 s each emulated)")
    add_cache_argument(p)
    p.add_argument("--out", type=Path, default=RESULTS, help="results directory (default: %(default)s)")
    args = p.parse_args(argv)

    from edgekit.device_runners.deploy import stage_code
    from edgekit.device_runners.raspberry_pi.emulate import emulated_python

    name = load_bundle(args.bundle).manifest.name
    host_dir, arm_dir = args.out / f"{name}-host-x86_64", args.out / f"{name}-emulated-arm64"
    run(args.bundle, args.dataset, host_dir, RunConfig(limit=args.n, warmup=1, progress=False))
    py = emulated_python(args.cache)
    cmd = ["run", str(args.bundle), "--dataset", str(args.dataset), "--out", str(arm_dir)]
    cmd += ["--limit", str(args.n), "--warmup", "1", "--no-progress"]
    with tempfile.TemporaryDirectory() as code:
        proc = py.edgekit(cmd, stage_code(Path(code)), capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"emulated run failed:\n{proc.stderr[-3000:]}")
    host = {r["id"]: r for r in read_log(host_dir / "predictions.jsonl")}
    arm = {r["id"]: r for r in read_log(arm_dir / "predictions.jsonl")}
    same = {i: host[i]["answer"] == arm[i]["answer"] for i in host}
    hm, am = (json.loads((d / "metrics.json").read_text()) for d in (host_dir, arm_dir))
    comparison = {
        "bundle": name,
        "n_questions": len(host),
        "same_answers": sum(same.values()),
        "all_same": all(same.values()) and host.keys() == arm.keys(),
        "max_confidence_diff": max(abs(host[i]["confidence"] - arm[i]["confidence"]) for i in host),
        "host_p50_ms": hm["latency_ms"]["p50"],
        "emulated_p50_ms": am["latency_ms"]["p50"],
        "emulation_slowdown": am["latency_ms"]["p50"] / hm["latency_ms"]["p50"],
        "emulated": am["device"].get("emulated"),
        "command": module_command("benchmarks.emulated_pi", argv),
    }
    write_json(args.out / f"{name}-comparison.json", comparison)
    print(json.dumps(comparison, indent=1))
    return 0 if comparison["all_same"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
