"""Training batches, random vs length-grouped, on a recipe's real training windows.

Every batch is cut to its longest window, so a step trains on ``batch_size x that length``
tokens. Over one whole epoch of each order this reports the mean padded length of a batch
(exact, no timing), then times training steps (forward, backward, AdamW) of the recipe's
student on ``--steps`` batches of each epoch taken at evenly spaced quantiles of batch length,
interleaved (random, grouped, random, ...) so that machine noise falls on both. Each batch is
timed ``--repeats`` times and keeps its median; the mean of those estimates an epoch's mean
step (grouped batches differ a lot in length, so the mean, not the median step, is what an
epoch costs); the grouped/random ratio is of estimates measured in the same run. The loss is
the gold-span loss alone: the KD term adds a softmax over two logit rows.

    python -m benchmarks.batching --recipe export/recipes/mpnet-l6-kd.toml [--steps 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from edgekit import device
from edgekit.atomic import write_json
from edgekit.export.distill import EpochLengthGroupedSampler, QADataset, build_student, collate, training_windows
from edgekit.export.models import LoadedQA, load_qa
from edgekit.export.recipes import Recipe, load_recipe
from edgekit.export.to_onnx import input_names_of
from edgekit.provenance import module_command

RESULTS = Path(__file__).resolve().parent / "results"


def batches(order: list[int], batch_size: int) -> list[list[int]]:
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def padded_length(lengths: np.ndarray, order: list[int], batch_size: int) -> float:
    """Mean over an epoch's batches of the longest window in each (what a step is cut to)."""
    return float(np.mean([lengths[b].max() for b in batches(order, batch_size)]))


def recipe_windows(recipe: Recipe) -> tuple[LoadedQA, QADataset, np.ndarray]:
    """The recipe's student (seeded as training seeds it), its training windows and their real lengths."""
    torch.manual_seed(recipe.training.seed)
    teacher = load_qa(recipe.teacher.model) if recipe.student.init == "teacher-layers" else None
    student = build_student(recipe, teacher)
    del teacher
    with tempfile.TemporaryDirectory() as tmp:
        _, features = training_windows(recipe, student, Path(tmp) / "tokenizer.json")
    return student, QADataset(features, input_names_of(student), None), features.attention_mask.sum(axis=1)


def train_step(model: torch.nn.Module, data: QADataset, lr: float) -> Callable[..., float]:
    """A timed training step (forward, backward, AdamW) on one batch, optionally under bf16 autocast as
    ``training.bf16`` runs it on the CPU."""
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr)

    def step(batch: list[int], bf16: bool = False) -> float:
        inputs = collate([data[i] for i in batch])
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(**inputs).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        return time.perf_counter() - t

    return step


def quantile_batches(order: list[int], lengths: np.ndarray, batch_size: int, steps: int) -> list[list[int]]:
    """``steps`` of an order's batches at evenly spaced quantiles of batch length. Step time grows faster than
    linearly with a batch's length, so their mean estimates the epoch's mean step far more steadily than
    batches picked at random positions would."""
    ranked = sorted(batches(order, batch_size), key=lambda b: lengths[b].max())
    return [ranked[int((j + 0.5) * len(ranked) / steps)] for j in range(steps)]


def interleaved_times(
    variants: dict[str, tuple[list[list[int]], Callable[[list[int]], float]]], repeats: int
) -> dict[str, list[list[float]]]:
    """Each variant's step on each of its batches, ``repeats`` times, interleaved (a, b, a, b, ...) so that
    machine noise falls on all of them, after one warm-up step each on its longest batch."""
    for picked, step in variants.values():
        step(picked[-1])
    n = len(next(iter(variants.values()))[0])
    times: dict[str, list[list[float]]] = {k: [[] for _ in range(n)] for k in variants}
    for _ in tqdm(range(repeats), desc="repeats"):
        for j in range(n):
            for k, (picked, step) in variants.items():
                times[k][j].append(step(picked[j]))
    return times


def mean_step(times: list[list[float]]) -> float:
    """The mean over timed batches of each one's median time: an epoch's mean step, estimated."""
    return statistics.mean(statistics.median(r) for r in times)


def step_timing_args(doc: str | None, steps: int, result_name: str) -> argparse.ArgumentParser:
    """The command line of a benchmark that times a recipe's training steps."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", type=Path, required=True, help="distillation recipe (student, data, batch size)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="recipe override (repeatable)")
    p.add_argument("--steps", type=int, default=steps, help="batches timed per variant (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="times each batch is timed (default: %(default)s)")
    p.add_argument("--out", type=Path, default=None, help=f"JSON result (default: results/{result_name}-<name>.json)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = step_timing_args(__doc__, 10, "batching").parse_args(argv)

    recipe = load_recipe(args.recipe, args.set)
    tr = recipe.training
    student, data, lengths = recipe_windows(recipe)
    bs = tr.batch_size * tr.grad_accum
    orders = {
        "random": torch.randperm(len(lengths), generator=torch.Generator().manual_seed(tr.seed)).tolist(),
        "grouped": list(EpochLengthGroupedSampler(bs, lengths.tolist(), tr.seed)),
    }
    step = train_step(student.model, data, tr.learning_rate)
    picked = {k: quantile_batches(o, lengths, bs, args.steps) for k, o in orders.items()}
    times = interleaved_times({k: (b, step) for k, b in picked.items()}, args.repeats)

    step_s = {k: mean_step(v) for k, v in times.items()}
    result: dict[str, Any] = {
        "recipe": recipe.name,
        "student_params": student.params,
        "n_windows": len(lengths),
        "batch_size": bs,
        "max_seq_len": recipe.data.max_seq_len,
        "mean_window_len": float(lengths.mean()),
        "mean_padded_len": {k: padded_length(lengths, o, bs) for k, o in orders.items()},
        "timed_batches": args.steps,
        "repeats": args.repeats,
        "mean_step_s": step_s,  # mean over the timed batches of each one's median time
        "epoch_s_estimate": {k: v * -(-len(lengths) // bs) for k, v in step_s.items()},
        "timed_batch_len": {k: [int(lengths[b].max()) for b in v] for k, v in picked.items()},
        "step_s_all": times,
        "grouped_vs_random_step_time": step_s["grouped"] / step_s["random"],
        "threads": torch.get_num_threads(),
        "device": device.describe(),
        "command": module_command("benchmarks.batching", argv),
    }
    out = args.out or RESULTS / f"batching-{recipe.name}.json"
    write_json(out, result)
    pad = result["mean_padded_len"]
    print(
        f"{recipe.name}: padded length {pad['random']:.0f} -> {pad['grouped']:.0f} tokens a window; mean step "
        f"{step_s['random']:.2f} s -> {step_s['grouped']:.2f} s (x{result['grouped_vs_random_step_time']:.2f}); {out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
