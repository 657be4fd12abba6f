"""Distillation on 1 against N processes (torchrun, DDP): the same steps on the same global batch.

Each process count trains the recipe's student from scratch in a fresh output directory, through the
real launcher (``torchrun --standalone --nproc-per-node N -m edgekit.export.distill``), for ``--steps`` steps
with dropout off (``training.dropout=0``), so that the runs must agree step by step up to the order of
floating-point sums: the loss curves are compared against ``--tolerance`` (relative). Measured per run:
the teacher-logits cache (``teacher_logits_s``: exporting the teacher's ONNX bundle and filling the
cache by process 0 while the others wait), the Trainer's wall time per step, and the whole command's
wall time. On a CPU the processes share its cores (torchrun gives each
one thread when N > 1; one process uses them all), so N processes show what DDP costs or gains there;
on a machine with N GPUs it is the multi-GPU speedup.

    python -m benchmarks.ddp [--recipe export/recipes/minilm-l6-kd.toml] [--steps 30] [--processes 1 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.batching import RESULTS
from edgekit import device
from edgekit.atomic import write_json
from edgekit.export.recipes import RECIPES_DIR, add_recipe_arguments, load_recipe
from edgekit.provenance import module_command

ROOT = Path(__file__).resolve().parents[1]


def launcher() -> list[str]:
    script = Path(sys.executable).with_name("torchrun")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "torch.distributed.run"]


def train(recipe: Path, sets: list[str], n: int, work: Path, steps: int, train_limit: int) -> dict[str, Any]:
    """One fresh run on ``n`` processes; its result.json and training log, with the command's wall time."""
    work.mkdir(parents=True, exist_ok=True)
    out = Path(tempfile.mkdtemp(prefix=f"processes-{n}-", dir=work))  # fresh: no cache from an earlier run
    overrides = [
        *sets,
        f"output_dir={json.dumps(str(out))}",
        f"training.max_steps={steps}",
        f"data.train_limit={train_limit}",
        "training.dropout=0",
        "training.logging_steps=1",
        f"training.save_steps={steps}",
    ]
    cmd = [
        *launcher(),
        "--standalone",
        "--nproc-per-node",
        str(n),
        "-m",
        "edgekit.export.distill",
        "--recipe",
        str(recipe),
    ]
    cmd += [a for s in overrides for a in ("--set", s)] + ["--no-eval"]
    print(f"{n} process(es): {' '.join(cmd)}", file=sys.stderr)
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True)
    wall = time.perf_counter() - t0
    name = load_recipe(recipe, overrides).name
    result = json.loads((out / name / "result.json").read_text())
    log = json.loads((out / name / "training_log.json").read_text())
    summary = next(e for e in log if "train_runtime" in e)
    return {
        "processes": n,
        "per_process_batch": result["recipe"]["training"]["batch_size"] // n,
        "steps": result["steps"],
        "teacher_logits_s": result["teacher_logits_s"],
        "train_runtime_s": summary["train_runtime"],
        "step_s": summary["train_runtime"] / result["steps"],
        "command_wall_s": round(wall, 1),
        "loss": [e["loss"] for e in log if "loss" in e],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.ddp", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_recipe_arguments(p)
    p.add_argument("--steps", type=int, default=30, help="training steps per run (default: 30)")
    p.add_argument("--train-limit", type=int, default=300, help="training questions (default: 300)")
    p.add_argument("--processes", type=int, nargs="+", default=[1, 2], help="process counts (default: 1 2)")
    p.add_argument("--tolerance", type=float, default=1e-3, help="relative loss difference allowed (default: 1e-3)")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "ddp-benchmark", help="where the runs are written")
    p.add_argument("--out", type=Path, default=RESULTS / "ddp.json", help="result file")
    args = p.parse_args(argv)
    recipe = args.recipe or RECIPES_DIR / "minilm-l6-kd.toml"
    settings = load_recipe(recipe, args.overrides)  # a bad recipe is one line before anything starts

    runs = [train(recipe, args.overrides, n, args.work, args.steps, args.train_limit) for n in args.processes]
    base = runs[0]
    for r in runs:
        diffs = [abs(a - b) / abs(b) for a, b in zip(r["loss"], base["loss"], strict=True)]
        r["max_relative_loss_difference"] = max(diffs)
        r["loss_curve_equal"] = max(diffs) <= args.tolerance
        r["step_time_vs_first"] = r["step_s"] / base["step_s"]
    result = {
        "recipe": settings.name,
        "global_batch": settings.training.batch_size,
        "train_limit": args.train_limit,
        "tolerance": args.tolerance,
        "runs": runs,
        "device": device.describe(),
        "command": module_command("benchmarks.ddp", argv),
    }
    write_json(args.out, result)
    for r in runs:
        print(
            f"{r['processes']} process(es): {r['step_s']:.2f} s/step (x{r['step_time_vs_first']:.2f}), "
            f"teacher logits {r['teacher_logits_s']:.0f} s, loss curve "
            f"{'equal' if r['loss_curve_equal'] else 'DIFFERENT'} (max rel. diff {r['max_relative_loss_difference']:.1e})"
        )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
