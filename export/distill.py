"""Task-specific distillation of a teacher into a student, with transformers' Trainer.

The recipe's ``task`` picks the data, the head and the logit loss: extractive QA (below),
text classification (``export.tasks.classification``: one logit row per text, no windows) or
token classification (``export.tasks.tokens``: a tag per word, on its first sub-word);
the Trainer, checkpoints, resume, intermediate-layer terms and the evaluation through the
device path are the same for all.

``run_distill(recipe)``:
1. loads the teacher (and exports it once to an ONNX bundle, the fast runtime
   for its logits) and builds the student (pretrained encoder or teacher layers);
2. windows the training data with the student's tokenizer (the same code the
   device runs) and labels gold spans;
3. fills or reuses the teacher-logits cache (aligned to student positions);
4. trains with ``Trainer`` (checkpoints every ``save_steps``, resume, progress) on the
   loss of ``export.losses``;
5. saves the student (safetensors, config, tokenizer) and the training log, and
   evaluates it through the device path: ONNX bundle -> edgekit runner -> official
   scorer, writing ``result.json``.

With ``loss.alpha = 1`` no teacher is used: that is plain fine-tuning, for
teachers brought as bare encoders and for the no-KD baselines.

Under ``torchrun``/``accelerate launch`` the Trainer's own DDP trains on every process.
The recipe's ``training.batch_size`` is the global batch, split evenly over the processes,
so one recipe trains the same way on 1 or N. Process 0 alone writes: it claims the output
directory, exports the teacher bundle and fills the logits cache while the others wait at
a barrier, then reads what it wrote (so ``output_dir`` must be one directory every node
sees). Logging, checkpoints and the evaluation are process 0's too.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
from transformers import PrinterCallback, ProgressCallback, Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_pt_utils import LengthGroupedSampler

from edgekit import device
from edgekit.atomic import write_json
from edgekit.bundle import Bundle, load_bundle, name_from, sha256_file
from edgekit.cli import Parser
from edgekit.destination import RUN, TRAINING, check_destination, claim, replacing
from edgekit.errors import EdgekitError, InputError
from edgekit.export.from_bundle import load_bundle_weights
from edgekit.export.losses import attention_mse, hidden_mse, pkd_cls, qa_kd_loss
from edgekit.export.models import LoadedQA, load_model
from edgekit.export.recipes import LossSpec, Recipe, add_recipe_arguments, checkpoint_settings, load_recipe
from edgekit.export.students import from_teacher_layers
from edgekit.export.tasks import classification as cls
from edgekit.export.tasks import tokens as tagging
from edgekit.export.teacher_cache import CacheKey, TeacherLogits, teacher_logits
from edgekit.export.to_onnx import check_positions, input_names_of, onnx_bundle, save_tokenizer_json, validate
from edgekit.export.train_features import TrainFeatures, build_train_features, concat_features
from edgekit.features import QATokenizer
from edgekit.jsonfile import READ_BACK_BYTES, Range, from_json, read_json
from edgekit.provenance import module_command
from edgekit.runner import RunConfig, run
from edgekit.squad import Example, load_squad


class FeatureDataset(torch.utils.data.Dataset):
    """Training features (and, for KD, the teacher's logits) as tensors: the model's inputs here, the task's
    targets in :meth:`targets`; ``f.attention_mask`` gives the lengths the Trainer's length grouping reads."""

    def __init__(self, features: Any, input_names: list[str], teacher: Any | None) -> None:
        self.f, self.names, self.t = features, input_names, teacher

    def __len__(self) -> int:
        return len(self.f)

    def __getitem__(self, j: int) -> dict[str, torch.Tensor]:
        arrays = {
            "input_ids": self.f.input_ids,
            "attention_mask": self.f.attention_mask,
            "token_type_ids": self.f.token_type_ids,
        }
        return {**{n: torch.from_numpy(arrays[n][j]) for n in self.names}, **self.targets(j)}

    def targets(self, j: int) -> dict[str, torch.Tensor]:
        raise NotImplementedError


class QADataset(FeatureDataset):
    """Windows with their gold start/end positions and, for KD, the teacher's aligned start/end logits."""

    def targets(self, j: int) -> dict[str, torch.Tensor]:
        item = {"start_positions": torch.tensor(self.f.start_positions[j])}
        item["end_positions"] = torch.tensor(self.f.end_positions[j])
        if self.t is not None:
            item["teacher_start"] = torch.from_numpy(np.array(self.t.start[j]))
            item["teacher_end"] = torch.from_numpy(np.array(self.t.end[j]))
            item["teacher_mask"] = torch.from_numpy(np.array(self.t.mask[j]))
        return item


class TextDataset(FeatureDataset):
    """Texts with their gold label index and, for KD, the teacher's logits over the labels."""

    def targets(self, j: int) -> dict[str, torch.Tensor]:
        item = {"labels": torch.tensor(self.f.labels[j])}
        if self.t is not None:
            item["teacher_logits"] = torch.from_numpy(np.array(self.t[j]))
        return item


class TagDataset(FeatureDataset):
    """Windows of tagged sentences: the tag index on each word's first sub-word and, for KD, the teacher's
    logits for that word there (-100 and zeros elsewhere)."""

    def targets(self, j: int) -> dict[str, torch.Tensor]:
        item = {"token_labels": torch.from_numpy(self.f.labels[j])}
        if self.t is not None:
            item["teacher_token_logits"] = torch.from_numpy(self.t[j])
        return item


# the tensors with one value per token position: the model's inputs, QA's aligned teacher logits and a
# tagger's labels and teacher logits (a classifier's teacher logits are one row per text, as wide as its labels)
PER_POSITION = frozenset(
    {
        "input_ids",
        "attention_mask",
        "token_type_ids",
        "teacher_start",
        "teacher_end",
        "teacher_mask",
        "token_labels",
        "teacher_token_logits",
    }
)


def collate(batch: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack, then cut every per-position tensor to the longest real window in the batch (less padding to train on)."""
    out = {k: torch.stack([b[k] for b in batch]) for k in batch[0]}
    length = int(out["attention_mask"].sum(dim=1).max())
    return {k: v[:, :length] if k in PER_POSITION else v for k, v in out.items()}


class EpochLengthGroupedSampler(LengthGroupedSampler):
    """transformers' length grouping with its generator reseeded by ``set_epoch`` (the Trainer calls it
    before each epoch): a resumed run then skips exactly the batches it trained on, in the same order."""

    def __init__(self, batch_size: int, lengths: list[int], seed: int) -> None:
        super().__init__(batch_size, lengths=lengths, generator=torch.Generator())
        self.seed = seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.generator.manual_seed(self.seed + epoch)


class DistillModule(torch.nn.Module):
    """The student plus FitNets projections (only when student and teacher widths differ)."""

    def __init__(self, student: torch.nn.Module, teacher_width: int | None, n_proj: int) -> None:
        super().__init__()
        self.student = student
        width = student.config.hidden_size
        self.proj = torch.nn.ModuleList(
            torch.nn.Linear(width, teacher_width) for _ in range(n_proj if teacher_width not in (None, width) else 0)
        )

    def forward(self, **inputs: torch.Tensor):
        return self.student(**inputs)


# the task's objective over the model's logits: (outputs, batch, alpha, T) -> the total "loss" and its parts
LogitLoss = Callable[[Any, dict[str, torch.Tensor], float, float], dict[str, torch.Tensor]]


def qa_logit_loss(out: Any, inputs: dict[str, torch.Tensor], alpha: float, temperature: float) -> dict:
    """Extractive QA's objective over start and end logits (export.losses.qa_kd_loss)."""
    return qa_kd_loss(
        out.start_logits,
        out.end_logits,
        inputs["start_positions"],
        inputs["end_positions"],
        inputs["attention_mask"],
        inputs.get("teacher_start"),
        inputs.get("teacher_end"),
        inputs.get("teacher_mask"),
        alpha,
        temperature,
    )


class DistillTrainer(Trainer):
    """Trainer whose loss is ``export.losses``: hard + soft logits, optional intermediate terms."""

    def __init__(
        self,
        *args,
        loss_spec: LossSpec,
        teacher_model: torch.nn.Module | None,
        layer_map: list[int],
        input_names: list[str],
        logit_loss: LogitLoss | None = None,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.logit_loss = logit_loss or qa_logit_loss
        self.loss_spec, self.teacher_model, self.layer_map, self.input_names = (
            loss_spec,
            teacher_model,
            layer_map,
            input_names,
        )
        self._parts: dict[str, list[float]] = {}

    def _get_train_sampler(self, train_dataset=None):
        if not self.args.group_by_length:
            return super()._get_train_sampler(train_dataset)
        dataset = self.train_dataset if train_dataset is None else train_dataset
        lengths = dataset.f.attention_mask.sum(axis=1).tolist()
        # grouped by the global batch: every process draws the same order, and accelerate deals its
        # consecutive per-process slices out, so N processes train on the batches one process would
        batch = self.args.train_batch_size * self.args.gradient_accumulation_steps * self.args.world_size
        return EpochLengthGroupedSampler(batch, lengths, self.args.seed)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        spec = self.loss_spec
        feeds = {n: inputs[n] for n in self.input_names}
        need_inter = spec.uses_intermediate and self.teacher_model is not None
        out = model(
            **feeds, output_hidden_states=need_inter, output_attentions=need_inter and spec.attention_weight > 0
        )
        parts = self.logit_loss(out, inputs, spec.alpha, spec.temperature)
        loss = parts["loss"]
        if need_inter:
            loss = loss + self._intermediate(model, out, feeds, parts)
        for k, v in parts.items():
            if k != "loss":
                self._parts.setdefault(k, []).append(float(v.detach()))
        return (loss, out) if return_outputs else loss

    def _intermediate(self, model, out, feeds, parts) -> torch.Tensor:
        spec, mask = self.loss_spec, feeds["attention_mask"]
        with torch.no_grad():
            t = self.teacher_model(**feeds, output_hidden_states=True, output_attentions=spec.attention_weight > 0)
        module = model.module if hasattr(model, "module") else model
        proj = list(module.proj) or [None] * len(self.layer_map)
        s_h = [out.hidden_states[j + 1] for j in range(len(self.layer_map))]
        t_h = [t.hidden_states[i + 1] for i in self.layer_map]
        total = torch.zeros((), device=mask.device)
        if spec.hidden_weight > 0:
            h = torch.stack([hidden_mse(s, tt, mask, p) for s, tt, p in zip(s_h, t_h, proj, strict=True)]).mean()
            parts["hidden"], total = h.detach(), total + spec.hidden_weight * h
        if spec.attention_weight > 0:
            a = torch.stack(
                [attention_mse(out.attentions[j], t.attentions[i], mask) for j, i in enumerate(self.layer_map)]
            ).mean()
            parts["attention"], total = a.detach(), total + spec.attention_weight * a
        if spec.pkd_weight > 0:
            p = pkd_cls(s_h, t_h, proj[0] if module.proj else None)
            parts["pkd"], total = p.detach(), total + spec.pkd_weight * p
        return total

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        # every process logs at the same steps; the parts are averaged over them, like the Trainer's loss
        for k, vals in self._parts.items():
            if vals:
                mean = torch.tensor(sum(vals) / len(vals), device=self.args.device)
                logs[f"loss_{k}"] = round(float(self.accelerator.reduce(mean, "mean")), 5)
        self._parts = {}
        super().log(logs, *args, **kwargs)


class LossOnTheBar(ProgressCallback):
    """The Trainer's progress bar with the latest loss on it, whatever the log level. Transformers' own prints every
    log entry as a raw dict (above its bar, or alone when its level hides the bar); the entries are in
    ``training_log.json`` and the checkpoints' ``trainer_state.json``."""

    def on_log(
        self, args: TrainingArguments, state: Any, control: Any, logs: dict | None = None, **kwargs: Any
    ) -> None:
        if state.is_world_process_zero and self.training_bar is not None and logs and "loss" in logs:
            self.training_bar.set_postfix(loss=f"{logs['loss']:.4f}", refresh=False)


class StoppedAtDeadline(Exception):
    """Training reached its deadline before its last step: a checkpoint of that step is saved, and the same recipe
    run again resumes from it. No student is written."""

    def __init__(self, step: int, of: int) -> None:
        super().__init__(f"stopped at step {step} of {of} by the time budget; run again to resume")
        self.step, self.of = step, of


class StopAt(TrainerCallback):
    """Ends training, with a checkpoint, after the first step that finishes past ``deadline`` (time.time())."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def on_step_end(self, args: TrainingArguments, state: Any, control: Any, **kwargs: Any) -> None:
        if time.time() > self.deadline and state.global_step < state.max_steps:
            control.should_save = control.should_training_stop = True


def _written_by_process_0(path: Path, what: str) -> EdgekitError:
    """A file process 0 wrote before the barrier that another process cannot read."""
    return EdgekitError(
        f"{path}: {what}, written by process 0, is not there for this process: output_dir must be one "
        "directory that every process of the run sees (a shared file system on every node)"
    )


def _teacher_bundle(teacher: LoadedQA, recipe: Recipe, write: bool) -> Bundle:
    """The teacher's fp32 ONNX bundle, exported once and reused while it verifies (a classifier's: while it was
    made from the teacher's current weights, since edgekit trains those teachers itself)."""
    model = Path(recipe.teacher.model.rstrip("/"))
    # a run's model directory is named 'model': the run's name says which teacher it is
    name = name_from(model.parent.name if model.name == "model" else model.name) + "-fp32-onnx"
    path = Path(recipe.output_dir) / "teachers" / name
    weights = model / "model.safetensors"
    source = {"weights_sha256": sha256_file(weights)} if recipe.task != "qa" and weights.is_file() else {}
    try:
        bundle = load_bundle(path)
        if all(bundle.manifest.source.get(k) == v for k, v in source.items()):
            return bundle
        if not write:
            raise EdgekitError(f"{path}: made from other teacher weights")
    except EdgekitError:
        if not write:
            raise _written_by_process_0(path, "the teacher's ONNX bundle") from None
    bundle = onnx_bundle(teacher, path, name, recipe.data.max_seq_len, recipe.data.doc_stride, source=source)
    validate(teacher, bundle, dev_examples(recipe)[:4]).require_ok(path)
    return bundle


# a labelled task's workstation half: its reader, labels, loss (extractive QA's is this module's own)
LABELLED = {"classification": cls, "tokens": tagging}


def dev_examples(recipe: Recipe) -> list[Any]:
    """The recipe's dev examples: SQuAD questions, texts of a classification set, or tagged sentences."""
    if recipe.task in LABELLED:
        return LABELLED[recipe.task].read_split(recipe.data.dev, recipe.data.dev_split)
    return load_squad(recipe.data.dev_path())


def train_texts(recipe: Recipe) -> list[Any]:
    """A labelled recipe's training texts (or sentences), the first ``data.train_limit`` when set."""
    examples = LABELLED[recipe.task].read_split(recipe.data.train, recipe.data.train_split)
    return examples[: recipe.data.train_limit] if recipe.data.train_limit else examples


def dev_file(recipe: Recipe) -> Path:
    return cls.dataset_path(recipe.data.dev) if recipe.task in LABELLED else recipe.data.dev_path()


def recipe_labels(recipe: Recipe) -> list[str] | None:
    """A labelled recipe's labels (its own list, or its training data's); None for QA."""
    if recipe.task not in LABELLED:
        return None
    return LABELLED[recipe.task].recipe_labels(recipe, train_texts(recipe))


def recipe_model(
    recipe: Recipe, name: str, labels: list[str] | None, seed: int = 0, dropout: float | None = None
) -> LoadedQA:
    """``name`` loaded with the head of the recipe's task (a tagger's: one label per token)."""
    return load_model(name, seed, dropout, labels, per_token=recipe.task == "tokens")


def load_teacher(recipe: Recipe, labels: list[str] | None) -> LoadedQA:
    """The recipe's teacher; a classifier or tagger must bring its own head for the recipe's labels."""
    teacher = recipe_model(recipe, recipe.teacher.model, labels)
    if labels is not None and teacher.fresh_head:
        raise EdgekitError(
            f"{recipe.teacher.model}: no classifier head trained on the recipe's {len(labels)} labels; expected a "
            "teacher fine-tuned on them (a recipe with loss.alpha = 1 makes one)"
        )
    return teacher


def build_student(recipe: Recipe, teacher: LoadedQA | None, labels: list[str] | None = None) -> LoadedQA:
    dropout = None if recipe.training.dropout == -1 else recipe.training.dropout
    if recipe.student.init == "teacher-layers":
        if teacher is None:
            raise EdgekitError("student.init = 'teacher-layers' needs the teacher")
        student = from_teacher_layers(teacher, recipe.student.layers, dropout)
    else:
        student = recipe_model(recipe, recipe.student.model, labels, recipe.training.seed, dropout)
    return load_bundle_weights(student, recipe.student.weights) if recipe.student.weights else student


def training_parts(
    recipe: Recipe, student: LoadedQA, tok_file: Path, write: bool = True
) -> list[tuple[Path, list[Example], TrainFeatures]]:
    """Each training file's questions, windowed and labelled with the student's tokenizer (written to
    ``tok_file`` unless ``write`` is false: the same tokenizer.json the device will run)."""
    if write:
        save_tokenizer_json(student, tok_file)
    elif not tok_file.is_file():
        raise _written_by_process_0(tok_file, "the student's tokenizer")
    tok = QATokenizer.from_file(tok_file, recipe.data.max_seq_len, recipe.data.doc_stride)
    pad_id = int(student.tokenizer.pad_token_id or 0)
    parts = []
    for path in recipe.data.train_paths():
        examples = load_squad(path)
        if recipe.data.train_limit:
            examples = examples[: recipe.data.train_limit]
        parts.append((path, examples, build_train_features(examples, tok, pad_id, progress=write)))
    return parts


def joined(parts: list[tuple[Path, list[Example], TrainFeatures]]) -> tuple[list[Example], TrainFeatures]:
    """The training files' examples and features as one set, in file order."""
    examples = [ex for _, exs, _ in parts for ex in exs]
    return examples, concat_features([f for *_, f in parts], [len(exs) for _, exs, _ in parts])


def training_windows(
    recipe: Recipe, student: LoadedQA, tok_file: Path, write: bool = True
) -> tuple[list[Example], TrainFeatures]:
    """Every training file's questions and windows as one set (see :func:`training_parts`)."""
    return joined(training_parts(recipe, student, tok_file, write))


def cached_teacher_logits(
    recipe: Recipe,
    teacher: LoadedQA,
    parts: list[tuple[Path, list[Example], TrainFeatures]],
    tok_file: Path,
    write: bool = True,
) -> TeacherLogits:
    """The teacher's logits for every training window, from one cache per training file (filled first when
    ``write``), joined in file order."""
    t_bundle = _teacher_bundle(teacher, recipe, write)
    threads = recipe.training.threads or None
    teacher_sha256 = t_bundle.manifest.files[t_bundle.manifest.model_file].sha256
    tokenizer_sha256 = sha256_file(tok_file)
    found = []
    for train_path, examples, features in parts:
        key = CacheKey(
            teacher_sha256=teacher_sha256,
            student_tokenizer_sha256=tokenizer_sha256,
            max_seq_len=recipe.data.max_seq_len,
            doc_stride=recipe.data.doc_stride,
            data_sha256=hashlib.sha256(sha256_file(train_path).encode() + str(len(examples)).encode()).hexdigest(),
            n_features=len(features),
        )
        cache = Path(recipe.output_dir) / "cache" / f"teacher-logits-{key.digest()}"
        try:
            found.append(teacher_logits(cache, key, t_bundle, examples, features, threads=threads, write=write))
        except FileNotFoundError:
            raise _written_by_process_0(cache, "the teacher-logits cache") from None
    if len(found) == 1:
        return found[0]  # memory-mapped, as the cache holds it
    return TeacherLogits(*(np.concatenate([getattr(t, f) for t in found]) for f in ("start", "end", "mask")))


def method_name(recipe: Recipe) -> str:
    r, loss = recipe, recipe.loss
    init = f"teacher layers {r.student.layers}" if r.student.init == "teacher-layers" else r.student.model
    if r.student.weights:
        init += f", weights of {Path(r.student.weights).name}"
    if not loss.uses_teacher_logits and not loss.uses_intermediate:
        return f"fine-tune (no KD), init {init}"
    extra = [
        f"{k} x{getattr(loss, k + '_weight')}"
        for k in ("hidden", "attention", "pkd")
        if getattr(loss, k + "_weight") > 0
    ]
    return (
        f"KD T={loss.temperature:g} alpha={loss.alpha:g}"
        + (f" + {', '.join(extra)}" if extra else "")
        + f", init {init}"
    )


# Process 0 fills the teacher-logits cache while the others wait at a barrier: hours on a CPU for a large
# training set, so the wait may be long (torch's default timeout would end it after 30 minutes).
DDP_TIMEOUT = timedelta(hours=24)


def world_size() -> int:
    """The number of training processes a launcher (torchrun, accelerate launch) started; 1 without one."""
    raw = os.environ.get("WORLD_SIZE", "1")
    if not raw.isdigit() or int(raw) < 1:
        raise InputError(None, f"environment variable WORLD_SIZE={raw!r}", "a positive number of processes")
    return int(raw)


class _TrainingArguments(TrainingArguments):
    """accelerate names the device of a multi-process CPU run ``cpu:0``; the Trainer loads the optimizer
    state of a checkpoint with ``map_location=args.device`` (and weights_only=True), and torch cannot map
    storages to that name. The CPU is called ``cpu`` here."""

    @property
    def device(self) -> torch.device:
        device = super().device
        return torch.device("cpu") if device.type == "cpu" else device


def training_arguments(recipe: Recipe, ckpt_dir: Path, uses_all_parameters: bool = True) -> TrainingArguments:
    """The Trainer's arguments for the recipe; under a launcher, building them joins the process group.

    ``training.batch_size`` is the global batch: each of N processes takes 1/N of it."""
    tr, n = recipe.training, world_size()
    if tr.batch_size % n:
        raise InputError(
            None,
            "key 'training.batch_size'",
            f"a global batch that {n} processes can split evenly, got {tr.batch_size}",
        )
    return _TrainingArguments(
        output_dir=str(ckpt_dir),
        num_train_epochs=tr.epochs,
        max_steps=tr.max_steps,
        per_device_train_batch_size=tr.batch_size // n,
        gradient_accumulation_steps=tr.grad_accum,
        learning_rate=tr.learning_rate,
        weight_decay=tr.weight_decay,
        warmup_ratio=tr.warmup_ratio,
        lr_scheduler_type="linear",
        max_grad_norm=1.0,
        logging_steps=tr.logging_steps,
        save_steps=tr.save_steps,
        save_total_limit=tr.save_total_limit,
        seed=tr.seed,
        bf16=tr.bf16,
        # Without CUDA, transformers accepts bf16 (CPU autocast; faster than fp32 with AVX512-BF16/AMX:
        # docs/results.md, "Training time: length-grouped batches and bf16") and DDP over gloo only when told
        # the run is on the CPU. Otherwise it is left to choose (a Mac's MPS).
        use_cpu=not torch.cuda.is_available() and (tr.bf16 or n > 1 or not torch.backends.mps.is_available()),
        group_by_length=tr.group_by_length,
        report_to=[],
        remove_unused_columns=False,
        dataloader_pin_memory=False,
        dataloader_num_workers=0,
        save_safetensors=True,
        label_names={"classification": ["labels"], "tokens": ["token_labels"]}.get(
            recipe.task, ["start_positions", "end_positions"]
        ),
        ddp_timeout=int(DDP_TIMEOUT.total_seconds()),
        ddp_find_unused_parameters=not uses_all_parameters,
    )


def last_checkpoint(ckpt_dir: Path) -> str | None:
    """The newest complete checkpoint. The Trainer writes ``trainer_state.json`` last, so a run killed
    while saving leaves a directory without it, which ``get_last_checkpoint`` would pick and fail on."""
    done = [
        d
        for d in (ckpt_dir.glob("checkpoint-*") if ckpt_dir.is_dir() else [])
        if d.name.removeprefix("checkpoint-").isdigit() and (d / "trainer_state.json").is_file()
    ]
    return str(max(done, key=lambda d: int(d.name.removeprefix("checkpoint-")))) if done else None


def run_distill(
    recipe: Recipe, evaluate: bool = True, argv: list[str] | None = None, deadline: float | None = None
) -> dict[str, Any] | None:
    """Train the recipe's student (resuming if checkpoints exist) and evaluate it; returns result.json
    (None on the processes other than 0 of a multi-process run). Past ``deadline`` (time.time()), training
    stops at a checkpoint and raises :class:`StoppedAtDeadline`."""
    t0 = time.time()
    out = check_destination(recipe.out, TRAINING, recipe.inputs())
    ckpt_dir = out / "checkpoints"
    spec, tr = recipe.loss, recipe.training
    # PKD uses the first projection only, and DDP must be told of parameters without gradients
    uses_all = not (spec.uses_intermediate and spec.hidden_weight == 0 and spec.pkd_weight > 0)
    args = training_arguments(recipe, ckpt_dir, uses_all)
    main = args.process_index == 0
    if tr.threads > 0:
        torch.set_num_threads(tr.threads)
    if main and tr.bf16 and args.device.type == "cpu" and not device.bf16_features():
        print(
            f"warning: training.bf16 on a CPU without bfloat16 instructions ({', '.join(device.BF16_FEATURES)}): "
            "autocast emulates them and a step takes many times longer than in fp32; "
            "--set training.bf16=false trains in fp32",
            file=sys.stderr,
        )
    last = last_checkpoint(ckpt_dir)
    needs_teacher = spec.uses_teacher_logits or spec.uses_intermediate or recipe.student.init == "teacher-layers"
    labelled = recipe.task in LABELLED
    with args.main_process_first(local=False, desc="the run's directory, student tokenizer and teacher logits"):
        if main:
            claim(recipe.out, TRAINING, recipe.inputs())
            _check_resumable(recipe, out / "checkpoint-settings.json", resuming=last is not None)
        labels = None
        if labelled:
            examples = train_texts(recipe)
            labels = LABELLED[recipe.task].recipe_labels(recipe, examples)
        teacher = load_teacher(recipe, labels) if needs_teacher else None
        student = build_student(recipe, teacher, labels)
        # windows the student cannot read are refused now, not after the teacher's logits are computed
        check_positions(student, recipe.data.max_seq_len, "data.max_seq_len")
        if recipe.data.bundle_len != recipe.data.max_seq_len:  # 0 (the default) means max_seq_len: checked above
            check_positions(student, recipe.data.bundle_len, "data.bundle_max_seq_len")
        tok_file = out / "student-tokenizer.json"
        t_cache = time.time()
        if recipe.task == "tokens":
            features, logits = _token_data(recipe, teacher, student, examples, labels, tok_file, main)
        elif labelled:
            extra = [cls.load_texts(path) for path in recipe.data.train_paths()[1:]]
            features, logits = _classification_data(recipe, teacher, student, examples, extra, labels, tok_file, main)
        else:
            parts = training_parts(recipe, student, tok_file, write=main)
            examples, features = joined(parts)
            t_cache = time.time()
            logits = cached_teacher_logits(recipe, teacher, parts, tok_file, main) if spec.uses_teacher_logits else None
    cache_s = time.time() - t_cache  # process 0: filling it (or finding it full) and the others reading it
    # An epoch's last, partial batch is dropped (a different one each epoch, the order being reshuffled):
    # with N processes accelerate would fill it up with repeated windows, so 1 and N would train on other
    # batches. Kept when the data holds less than one batch.
    args.dataloader_drop_last = len(features) >= tr.batch_size * tr.grad_accum
    names = input_names_of(student)

    layer_map = spec.layer_map or recipe.student.layers
    teacher_model = None
    if spec.uses_intermediate:
        if student.tokenizer.get_vocab() != teacher.tokenizer.get_vocab():
            raise EdgekitError("intermediate-layer losses need the student to share the teacher's tokenizer")
        if len(layer_map) != student.model.config.num_hidden_layers:
            raise EdgekitError(f"loss.layer_map {layer_map}: expected one teacher layer per student layer")
        teacher_model = teacher.model.eval().to(args.device)
    module = DistillModule(
        student.model.train(),
        teacher.model.config.hidden_size if teacher else None,
        len(layer_map) if spec.uses_intermediate else 0,
    )
    trainer = DistillTrainer(
        model=module,
        args=args,
        train_dataset={"classification": TextDataset, "tokens": TagDataset}.get(recipe.task, QADataset)(
            features, names, logits
        ),
        data_collator=collate,
        loss_spec=spec,
        teacher_model=teacher_model,
        layer_map=layer_map,
        input_names=names,
        logit_loss=LABELLED[recipe.task].logit_loss if labelled else qa_logit_loss,
    )
    for printer in (PrinterCallback, ProgressCallback):  # the Trainer adds one: raw log dicts, or a bar with them
        trainer.remove_callback(printer)
    trainer.add_callback(LossOnTheBar)
    if deadline is not None:
        trainer.add_callback(StopAt(deadline))
    if last and main:
        print(f"resuming from {last}", file=sys.stderr)
    trainer.train(resume_from_checkpoint=last)
    if deadline is not None and trainer.state.global_step < trainer.state.max_steps:
        raise StoppedAtDeadline(trainer.state.global_step, trainer.state.max_steps)
    if not main:
        return None

    resumed = int(Path(last).name.split("-")[-1]) if last else 0
    result: dict[str, Any] = {
        "n_train_features": len(features),
        ("n_train_examples" if labelled else "n_train_questions"): len(examples),
        "steps": trainer.state.global_step,
        "resumed_from_step": resumed,
        "processes": args.world_size,
        "teacher_logits_s": round(cache_s, 1),
        "train_wall_s": round(time.time() - t0, 1),
        "train_s_per_step": _seconds_per_step(trainer.state.log_history, trainer.state.global_step - resumed),
        # the machine the run trained on: a step's cost is a fact about it, not about the recipe
        "device": device.describe(),
    }
    write_json(out / "training_log.json", trainer.state.log_history)
    student.model.to("cpu")  # saved and exported from the CPU, wherever it trained
    return _save_student(student, recipe, result, evaluate, argv, t0)


def _classification_data(
    recipe: Recipe,
    teacher: LoadedQA | None,
    student: LoadedQA,
    examples: list[Any],
    extra: list[list[Any]],
    labels: list[str],
    tok_file: Path,
    write: bool,
) -> tuple[cls.TextFeatures, np.ndarray | None]:
    """The training texts tokenized as the device will (the student's tokenizer.json, written to ``tok_file``
    unless ``write`` is false) and, for KD, the teacher's logits for each. ``extra`` holds the texts of each
    ``data.extra_train`` file: the teacher alone teaches them (augmented copies, whose labels a change of
    words may have turned), so they need KD."""
    if write:
        save_tokenizer_json(student, tok_file)
    elif not tok_file.is_file():
        raise _written_by_process_0(tok_file, "the student's tokenizer")
    from edgekit.tasks.classification import TextTokenizer

    tok = TextTokenizer.from_file(tok_file, recipe.data.max_seq_len)
    texts = [*examples, *(ex for part in extra for ex in part)]
    features = cls.build_text_features(texts, tok, labels, int(student.tokenizer.pad_token_id or 0), len(examples))
    if not recipe.loss.uses_teacher_logits:
        return features, None
    t_bundle = _teacher_bundle(teacher, recipe, write)
    cache_root = Path(recipe.output_dir) / "cache"
    paths = recipe.data.train_paths()
    splits = [recipe.data.train_split] + [""] * len(extra)
    try:
        logits = np.concatenate(
            [
                cls.teacher_logits(
                    cache_root,
                    t_bundle,
                    path,
                    split,
                    part,
                    labels,
                    threads=recipe.training.threads or None,
                    write=write,
                )
                for path, split, part in zip(paths, splits, [examples, *extra], strict=True)
            ]
        )
    except FileNotFoundError:
        raise _written_by_process_0(cache_root, "the teacher-logits cache") from None
    return features, logits


def _token_data(
    recipe: Recipe,
    teacher: LoadedQA | None,
    student: LoadedQA,
    sentences: list[Any],
    labels: list[str],
    tok_file: Path,
    write: bool,
) -> tuple[tagging.TokenFeatures, np.ndarray | None]:
    """The training sentences windowed as the device will (the student's tokenizer.json, written to ``tok_file``
    unless ``write`` is false), labelled at first sub-words and, for KD, the teacher's per-word logits there.
    The teacher alone tags the sentences of each ``data.extra_train`` file (its first ``data.train_limit``)."""
    if write:
        save_tokenizer_json(student, tok_file)
    elif not tok_file.is_file():
        raise _written_by_process_0(tok_file, "the student's tokenizer")
    from edgekit.tasks.tokens import WordTokenizer

    tok = WordTokenizer.from_file(tok_file, recipe.data.max_seq_len)
    paths = recipe.data.train_paths()
    parts = [sentences, *(tagging.read_unlabelled(p, recipe.data.train_limit) for p in paths[1:])]
    everything = [s for part in parts for s in part]
    pad_id = int(student.tokenizer.pad_token_id or 0)
    features = tagging.build_token_features(everything, tok, labels, pad_id, len(sentences))
    if not recipe.loss.uses_teacher_logits:
        return features, None
    t_bundle = _teacher_bundle(teacher, recipe, write)
    cache, threads = Path(recipe.output_dir) / "cache", recipe.training.threads or None
    try:
        words = [
            tagging.teacher_word_logits(cache, t_bundle, path, part, labels, threads, write)
            for path, part in zip(paths, parts, strict=True)
        ]
    except FileNotFoundError:
        raise _written_by_process_0(cache, "the teacher-logits cache") from None
    return features, tagging.place_word_logits(features, np.concatenate(words))


def _seconds_per_step(log: list[dict[str, Any]], steps_run: int) -> float | None:
    """Trainer's own train_runtime over the steps this process ran (a resumed run's earlier steps ran
    elsewhere, maybe on another machine); None where the log lacks it."""
    runtime = next((e["train_runtime"] for e in reversed(log) if "train_runtime" in e), None)
    return round(runtime / steps_run, 3) if runtime is not None and steps_run > 0 else None


def _check_resumable(recipe: Recipe, path: Path, resuming: bool) -> None:
    """Refuse to resume checkpoints made with other settings (another loss, data, batching...); record
    the settings of a new run. Runs started before this file existed resume unchecked; a setting added to
    recipes after a run started counts as having had its default there."""
    settings = checkpoint_settings(recipe)
    if resuming and path.is_file():
        found = read_json(path, "checkpoint settings", READ_BACK_BYTES, read_back=True)
        if not isinstance(found, dict):
            raise InputError(path, "top level", "a JSON object of the settings the checkpoints were made with")
        saved = {**checkpoint_settings(Recipe()), **found}
        changed = sorted(k for k in saved.keys() | settings.keys() if saved.get(k) != settings.get(k))
        if changed:
            diffs = ", ".join(f"{k}: {saved.get(k)!r} -> {settings.get(k)!r}" for k in changed)
            raise InputError(
                path,
                f"fields {changed}",
                f"the settings its checkpoints were trained with ({diffs}); "
                f"give the run another name, or delete {path.parent / 'checkpoints'} to start over",
            )
    write_json(path, settings)


def _save_student(
    student: LoadedQA, recipe: Recipe, result: dict[str, Any], evaluate: bool, argv: list[str] | None, t0: float
) -> dict[str, Any]:
    """Write the student (safetensors, config, tokenizer), evaluate it, and write result.json."""
    out = recipe.out
    model_dir = out / "model"
    student.model.eval()
    student.model.save_pretrained(model_dir, safe_serialization=True)
    student.tokenizer.save_pretrained(model_dir)
    result = {
        "name": recipe.name,
        "params": student.params,
        "layers": student.model.config.num_hidden_layers,
        "hidden_size": student.model.config.hidden_size,
        "method": method_name(recipe),
        **result,
        "recipe": asdict(recipe),
        "command": argv if argv is not None else sys.argv,
        "model_dir": str(model_dir),
    }
    if evaluate:
        result.update(evaluate_student(student, recipe, out))
    result["wall_s"] = round(time.time() - t0, 1)
    write_json(out / "result.json", result)
    return result


@dataclass(frozen=True)
class TrainerProgress:
    """The fields of a Trainer checkpoint's ``trainer_state.json`` a student made from it records."""

    global_step: Annotated[int, Range(0, 1e12)]
    epoch: Annotated[float, Range(0, 1e9)]


def student_from_checkpoint(
    recipe: Recipe, checkpoint: Path, evaluate: bool = True, argv: list[str] | None = None
) -> dict[str, Any]:
    """The recipe's student as saved in a training checkpoint, written and evaluated like a finished run.

    For looking at a long run while it goes on (or one cut short): the checkpoint's
    ``student.*`` weights must fill the recipe's student exactly.
    """
    from safetensors.torch import load_file

    t0 = time.time()
    weights_file = checkpoint / "model.safetensors"
    if not weights_file.is_file():
        raise InputError(weights_file, "checkpoint", "a Trainer checkpoint directory with model.safetensors")
    labels = recipe_labels(recipe)
    teacher = load_teacher(recipe, labels) if recipe.student.init == "teacher-layers" else None
    student = build_student(recipe, teacher, labels)
    state = {k.removeprefix("student."): v for k, v in load_file(weights_file).items() if k.startswith("student.")}
    missing, unexpected = student.model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise InputError(weights_file, f"missing {missing[:3]}, unexpected {unexpected[:3]}", "the recipe's student")
    state_file = checkpoint / "trainer_state.json"
    progress = from_json(TrainerProgress, read_json(state_file, "trainer state", READ_BACK_BYTES), state_file)
    claim(recipe.out, TRAINING, [*recipe.inputs(), checkpoint])
    result = {"steps": progress.global_step, "epoch": progress.epoch, "from_checkpoint": str(checkpoint)}
    return _save_student(student, recipe, result, evaluate, argv, t0)


def evaluate_saved(recipe: Recipe, argv: list[str] | None = None) -> dict[str, Any]:
    """Score the student an earlier ``--no-eval`` run wrote to the recipe's output, updating its result.json."""
    t0 = time.time()
    result = read_json(recipe.out / "result.json", "distill result", READ_BACK_BYTES, read_back=True)
    if not isinstance(result, dict):
        raise InputError(recipe.out / "result.json", "top level", "a JSON object, as edgekit distill writes it")
    result.update(
        evaluate_student(recipe_model(recipe, str(recipe.out / "model"), recipe_labels(recipe)), recipe, recipe.out)
    )
    result["eval_wall_s"] = round(time.time() - t0, 1)
    result["eval_command"] = argv if argv is not None else sys.argv
    write_json(recipe.out / "result.json", result)
    return result


def student_bundle(student: LoadedQA, recipe: Recipe, out: Path) -> Bundle:
    """The student as ``out/bundle-fp32-onnx``, checked against PyTorch on the first 8 dev examples."""
    bundle = onnx_bundle(
        student, out / "bundle-fp32-onnx", f"{recipe.name}-fp32-onnx", recipe.data.bundle_len, recipe.data.doc_stride
    )
    validate(student, bundle, dev_examples(recipe)[:8]).require_ok(bundle.path)
    return bundle


def evaluate_student(student: LoadedQA, recipe: Recipe, out: Path) -> dict[str, Any]:
    """Dev scores through the device path: fp32 ONNX bundle -> edgekit runner -> the task's scorer
    (QA: the official EM/F1; classification: accuracy, macro-F1; tagging: entity F1)."""
    dev = dev_file(recipe)
    bundle = student_bundle(student, recipe, out)
    threads = recipe.training.threads or None
    from edgekit.backends import RuntimeOptions

    # a fresh evaluation each time: the student changed since any earlier one (a run trained on)
    with replacing(out / "eval-dev", RUN, [bundle.path, dev]) as tmp:
        m = run(
            bundle.path,
            dev,
            tmp,
            RunConfig(
                limit=recipe.data.dev_limit or None,
                runtime=RuntimeOptions(threads=threads),
                split=recipe.data.dev_split or None,
            ),
            argv=["edgekit", "distill", "(evaluation)"],
        )
    if recipe.task == "classification":
        scores = {k: m[k] for k in ("accuracy", "macro_f1", "n_examples", "in_scope_accuracy", "oos_recall") if k in m}
    elif recipe.task == "tokens":
        scores = {k: m[k] for k in ("f1", "precision", "recall", "surface_f1", "n_examples")}
    else:
        scores = {"exact_match": m["exact_match"], "f1": m["f1"], "n_questions": m["n_questions"]}
    return {
        **scores,
        "eval_max_seq_len": recipe.data.bundle_len,
        "eval_metrics": str(out / "eval-dev" / "metrics.json"),
    }


def main_args(args: argparse.Namespace, argv: list[str]) -> int:
    recipe = load_recipe(args.recipe, args.overrides)
    if args.eval_only:
        result = evaluate_saved(recipe, argv)
    elif args.from_checkpoint:
        result = student_from_checkpoint(recipe, args.from_checkpoint, evaluate=not args.no_eval, argv=argv)
    else:
        result = run_distill(recipe, evaluate=not args.no_eval, argv=argv)
        if result is None:  # another process than 0 of a multi-process run: process 0 reports
            return 0
    if "surface_f1" in result:
        score = f"entity F1 {result['f1']:.2f} surface F1 {result['surface_f1']:.2f} on {result['n_examples']} dev sentences"
    elif "f1" in result:
        score = f"EM {result['exact_match']:.2f} F1 {result['f1']:.2f} on {result['n_questions']} dev questions"
    elif "accuracy" in result:
        score = f"accuracy {result['accuracy']:.2f} macro-F1 {result['macro_f1']:.2f} on {result['n_examples']} dev examples"
    else:
        score = "not evaluated"
    print(f"{recipe.name}: {result['method']}: {score}; wrote {recipe.out / 'result.json'}")
    return 0


def add_distill_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``edgekit distill`` and ``python -m edgekit.export.distill`` (one definition for both)."""
    add_recipe_arguments(p)
    p.add_argument("--no-eval", action="store_true", help="skip the dev evaluation after training")
    p.add_argument(
        "--from-checkpoint",
        type=Path,
        default=None,
        metavar="DIR",
        help="no training: write and evaluate the student saved in this Trainer checkpoint (e.g. of a run still going)",
    )
    p.add_argument(
        "--eval-only",
        action="store_true",
        help="no training: evaluate the student the recipe's output already holds (written with --no-eval)",
    )


def main(argv: list[str] | None = None) -> int:
    p = Parser(
        prog="python -m edgekit.export.distill",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_distill_arguments(p)
    argv = sys.argv[1:] if argv is None else argv
    return main_args(p.parse_args(argv), module_command("edgekit.export.distill", argv))


if __name__ == "__main__":
    sys.exit(main())
