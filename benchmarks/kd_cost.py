"""What each distillation loss costs per training step, measured by the real training command.

Hidden-state, attention and PKD terms need the teacher's intermediate states, which are too large to cache
(a 768-wide state per token per layer), so training runs the teacher forward on every step (under bf16
autocast where the recipe trains so); logit-only KD reads the teacher's logits from the cache instead. This runs ``python -m edgekit.export.distill`` on each
recipe for ``--steps`` steps on the first ``--train-limit`` training questions, one after another in one
output directory (so the teacher's bundle and logits cache are made once, by the first run), and writes the
Trainer's own seconds per step and what a full epoch of the recipe would take at that rate::

    python -m benchmarks.kd_cost export/recipes/experiments/mpnet-l3-kd-{logits,hidden,attention,pkd}.toml

Writes ``benchmarks/results/kd-cost.json``. The first run's setup time includes the teacher's ONNX export and
its logits for the limited questions' windows; compare the rows of one run only.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from edgekit import device
from edgekit.atomic import write_json
from edgekit.errors import EdgekitError
from edgekit.export.recipes import load_recipe
from edgekit.provenance import module_command

RESULTS = Path(__file__).resolve().parent / "results"


def timed_run(recipe: Path, out_dir: Path, steps: int, train_limit: int, overrides: list[str]) -> dict[str, Any]:
    """One short training run of ``recipe`` in a process of its own: wall time and the Trainer's step rate."""
    name = f"cost-{recipe.stem}"
    sets = [*overrides, f"output_dir={json.dumps(str(out_dir))}", f'name="{name}"', f"training.max_steps={steps}"]
    sets += [f"data.train_limit={train_limit}", "training.save_steps=1000000", "training.logging_steps=1"]
    argv = [sys.executable, "-m", "edgekit.export.distill", "--recipe", str(recipe), "--no-eval"]
    argv += [a for s in sets for a in ("--set", s)]
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        said = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"
        raise EdgekitError(f"{recipe}: the training run failed: {said}")
    log = json.loads((out_dir / name / "training_log.json").read_text())
    summary = next(e for e in reversed(log) if "train_runtime" in e)
    parts = sorted({k for e in log for k in e if k.startswith("loss_")})
    return {
        "steps": summary["step"],
        "train_s": round(summary["train_runtime"], 2),
        "s_per_step": round(summary["train_runtime"] / summary["step"], 3),
        "setup_s": round(wall - summary["train_runtime"], 1),
        "loss_terms": parts,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("recipes", type=Path, nargs="+", help="distillation recipes, the baseline first")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every recipe")
    p.add_argument("--steps", type=int, default=10, help="training steps per recipe (default: %(default)s)")
    p.add_argument("--train-limit", type=int, default=200, help="training questions (default: %(default)s)")
    p.add_argument(
        "--windows-per-epoch",
        type=int,
        default=13291,
        help="the full training set's windows, for the epoch estimate (default: %(default)s, the 44-article "
        "subset at 256/128)",
    )
    p.add_argument("--out", type=Path, default=RESULTS / "kd-cost.json", help="JSON result (default: %(default)s)")
    a = p.parse_args(argv)
    recipes = [(path, load_recipe(path, a.set)) for path in a.recipes]  # a bad recipe fails before any run
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for path, recipe in recipes:
            print(f"{recipe.name}: {a.steps} steps", flush=True)
            r = timed_run(path, Path(tmp), a.steps, a.train_limit, a.set)
            steps_per_epoch = math.ceil(a.windows_per_epoch / recipe.training.batch_size)
            epoch_min = round(steps_per_epoch * r["s_per_step"] / 60, 1)
            rows.append({"recipe": recipe.name, "bf16": recipe.training.bf16, **r, "epoch_min": epoch_min})
    base = rows[0]["s_per_step"]
    for r in rows:
        r["x_baseline"] = round(r["s_per_step"] / base, 2)
    write_json(
        a.out,
        {
            "command": module_command("benchmarks.kd_cost", argv),
            "device": device.describe(),
            "steps": a.steps,
            "train_limit": a.train_limit,
            "windows_per_epoch": a.windows_per_epoch,
            "rows": rows,
        },
    )
    for r in rows:
        print(f"{r['recipe']}: {r['s_per_step']} s/step ({r['x_baseline']}x), epoch ~{r['epoch_min']} min")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
