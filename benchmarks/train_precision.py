"""Training step time in fp32 against bf16 autocast (``training.bf16``), on a recipe's real batches.

On a CPU with AVX512-BF16 or AMX, ``training.bf16 = true`` runs the student's matrix products in
bfloat16 over fp32 master weights (torch CPU autocast, as transformers' Trainer applies it). This
times training steps (forward, backward, AdamW) of the recipe's student on ``--steps``
length-grouped batches at evenly spaced quantiles of batch length, each in both precisions,
interleaved (fp32, bf16, fp32, ...) so that machine noise falls on both; each batch keeps the median
of ``--repeats`` timings. The bf16/fp32 ratio is of estimates measured in the same run. What bf16
does to accuracy is measured by training with it (``benchmarks.distill_table`` shows the precision
of every student and KD/FT pair).

    python -m benchmarks.train_precision --recipe export/recipes/experiments/mpnet-l6-ft.toml [--steps 8] [--repeats 3]
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from benchmarks.batching import (
    RESULTS,
    interleaved_times,
    mean_step,
    quantile_batches,
    recipe_windows,
    step_timing_args,
    train_step,
)
from edgekit import device
from edgekit.atomic import write_json
from edgekit.export.distill import EpochLengthGroupedSampler
from edgekit.export.recipes import load_recipe
from edgekit.provenance import module_command


def main(argv: list[str] | None = None) -> int:
    args = step_timing_args(__doc__, 8, "train-precision").parse_args(argv)

    recipe = load_recipe(args.recipe, args.set)
    tr = recipe.training
    student, data, lengths = recipe_windows(recipe)
    bs = tr.batch_size * tr.grad_accum
    picked = quantile_batches(list(EpochLengthGroupedSampler(bs, lengths.tolist(), tr.seed)), lengths, bs, args.steps)
    step = train_step(student.model, data, tr.learning_rate)
    times = interleaved_times(
        {"fp32": (picked, step), "bf16": (picked, functools.partial(step, bf16=True))}, args.repeats
    )
    step_s = {k: mean_step(v) for k, v in times.items()}
    result: dict[str, Any] = {
        "recipe": recipe.name,
        "student_params": student.params,
        "batch_size": bs,
        "max_seq_len": recipe.data.max_seq_len,
        "timed_batches": args.steps,
        "timed_batch_len": [int(lengths[b].max()) for b in picked],
        "repeats": args.repeats,
        "mean_step_s": step_s,  # mean over the timed batches of each one's median time
        "step_s_all": times,
        "bf16_vs_fp32_step_time": step_s["bf16"] / step_s["fp32"],
        "cpu_bf16_flags": device.bf16_features(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "device": device.describe(),
        "command": module_command("benchmarks.train_precision", argv),
    }
    out = args.out or RESULTS / f"train-precision-{recipe.name}.json"
    write_json(out, result)
    print(
        f"{recipe.name}: mean step {step_s['fp32']:.2f} s fp32 -> {step_s['bf16']:.2f} s bf16 autocast "
        f"(x{result['bf16_vs_fp32_step_time']:.2f}); {out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
