"""The size of each distillation term at step 0, to weigh intermediate-layer terms against the logit loss.

The hidden-state MSE, the attention-map MSE and the PKD distance live on very different scales (for a
teacher-layer MPNet student: about 0.1, 0.001 and 1, against a logit loss of about 3), so one weight for
all would let one term drown the others. This runs the recipe's student (as built for training, before
any step) and its teacher on ``--batches`` random batches of training windows under bf16 autocast, as
training runs them (QA windows or a classifier's texts), and writes each term's mean and the weight that makes it equal the logit loss::

    python -m benchmarks.kd_scales --recipe export/recipes/experiments/mpnet-l3-kd-logits.toml --layer-map 3 7 11

The teacher's logits come from its forward here, not from the cache: the student shares its tokenizer
(intermediate terms require that), so they are the cache's up to rounding.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgekit import device
from edgekit.atomic import write_json
from edgekit.export.distill import (
    QADataset,
    TextDataset,
    build_student,
    collate,
    load_teacher,
    train_texts,
    training_windows,
)
from edgekit.export.losses import attention_mse, hidden_mse, pkd_cls, qa_kd_loss
from edgekit.export.models import LoadedQA, load_qa
from edgekit.export.recipes import Recipe, load_recipe
from edgekit.export.tasks import classification as cls
from edgekit.export.to_onnx import input_names_of, save_tokenizer_json
from edgekit.provenance import module_command
from edgekit.tasks.classification import TextTokenizer

RESULTS = Path(__file__).resolve().parent / "results"


def _training_batches(recipe: Recipe, tmp: Path) -> tuple[LoadedQA, LoadedQA, torch.utils.data.Dataset, Callable]:
    """Teacher, student (as built for training), the training set as distill feeds it, and the task's logit
    loss taking (student output, batch, teacher output)."""
    spec = recipe.loss
    if recipe.task == "classification":
        examples = train_texts(recipe)
        labels = cls.recipe_labels(recipe, examples)
        teacher = load_teacher(recipe, labels)
        student = build_student(recipe, teacher, labels)
        save_tokenizer_json(student, tmp / "tokenizer.json")
        tok = TextTokenizer.from_file(tmp / "tokenizer.json", recipe.data.max_seq_len)
        features = cls.build_text_features(examples, tok, labels, int(student.tokenizer.pad_token_id or 0))
        data = TextDataset(features, input_names_of(student), None)

        def logit_loss(s: Any, b: dict[str, torch.Tensor], t: Any) -> torch.Tensor:
            return cls.logit_loss(s, {**b, "teacher_logits": t.logits}, spec.alpha, spec.temperature)["loss"]

        return teacher, student, data, logit_loss
    teacher = load_qa(recipe.teacher.model)
    student = build_student(recipe, teacher)
    _, windows = training_windows(recipe, student, tmp / "tokenizer.json", write=True)

    def qa_loss(s: Any, b: dict[str, torch.Tensor], t: Any) -> torch.Tensor:
        mask = b["attention_mask"]
        return qa_kd_loss(
            s.start_logits,
            s.end_logits,
            b["start_positions"],
            b["end_positions"],
            mask,
            t.start_logits,
            t.end_logits,
            mask.bool(),
            spec.alpha,
            spec.temperature,
        )["loss"]

    return teacher, student, QADataset(windows, input_names_of(student), None), qa_loss


def term_sizes(recipe: Recipe, layer_map: list[int], batches: int, batch_size: int, seed: int = 0) -> dict[str, float]:
    """Mean over random batches of the logit loss and of each intermediate term, at step 0."""
    torch.manual_seed(recipe.training.seed)
    with tempfile.TemporaryDirectory() as tmp:
        teacher, student, data, logit_loss = _training_batches(recipe, Path(tmp))
    names = input_names_of(student)
    rng = np.random.default_rng(seed)
    sizes: dict[str, list[float]] = {"logits": [], "hidden": [], "attention": [], "pkd": []}
    for _ in range(batches):
        b = collate([data[int(j)] for j in rng.choice(len(data), batch_size, replace=False)])
        feeds, mask = {n: b[n] for n in names}, b["attention_mask"]
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            s = student.model(**feeds, output_hidden_states=True, output_attentions=True)
            t = teacher.model(**feeds, output_hidden_states=True, output_attentions=True)
        s_h = [s.hidden_states[j + 1] for j in range(len(layer_map))]
        t_h = [t.hidden_states[i + 1] for i in layer_map]
        sizes["logits"].append(float(logit_loss(s, b, t)))
        sizes["hidden"].append(
            float(torch.stack([hidden_mse(a, c, mask) for a, c in zip(s_h, t_h, strict=True)]).mean())
        )
        att = [attention_mse(s.attentions[j], t.attentions[i], mask) for j, i in enumerate(layer_map)]
        sizes["attention"].append(float(torch.stack(att).mean()))
        sizes["pkd"].append(float(pkd_cls(s_h, t_h)))
    return {k: float(np.mean(v)) for k, v in sizes.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", type=Path, required=True, help="distillation recipe (teacher, student, data)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="recipe override (repeatable)")
    p.add_argument("--layer-map", type=int, nargs="+", required=True, help="teacher layer per student layer")
    p.add_argument("--batches", type=int, default=4, help="random batches averaged (default: %(default)s)")
    p.add_argument("--out", type=Path, default=RESULTS / "kd-scales.json", help="JSON result (default: %(default)s)")
    a = p.parse_args(argv)
    recipe = load_recipe(a.recipe, a.set)
    torch.set_num_threads(recipe.training.threads or torch.get_num_threads())
    sizes = term_sizes(recipe, a.layer_map, a.batches, recipe.training.batch_size)
    write_json(
        a.out,
        {
            "command": module_command("benchmarks.kd_scales", argv),
            "device": device.describe(),
            "recipe": recipe.name,
            "student_layers": recipe.student.layers,
            "layer_map": a.layer_map,
            "batches": a.batches,
            "batch_size": recipe.training.batch_size,
            "term_at_step_0": {k: round(v, 6) for k, v in sizes.items()},
            "weight_equal_to_logit_loss": {
                k: round(sizes["logits"] / v, 3) for k, v in sizes.items() if k != "logits" and v > 0
            },
        },
    )
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
