"""The workstation half of text classification: texts to training features, the teacher's logits, the loss,
the student's evaluation through the device path.

A classifier's teacher logits are one row per text, whatever either tokenizer makes of it, so the teacher
reads each text with its own tokenizer and nothing needs aligning (QA's logits are per position and do).
The cache (``teacher_cache.cached_array``) holds them beside the key they are valid for; a fill runs the
teacher batched by length.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from edgekit.backends import RuntimeOptions, open_backend
from edgekit.bundle import Bundle, sha256_file
from edgekit.errors import InputError
from edgekit.export.losses import IGNORE_INDEX, classification_kd_loss
from edgekit.export.teacher_cache import cached_array, check_teacher_labels
from edgekit.squad import resolve_data_path
from edgekit.tasks.classification import TextExample, TextTokenizer, check_labels, label_set, load_texts

CACHE_FORMAT = 1


def dataset_path(value: str) -> Path:
    """A recipe's data path (``$VARS`` expanded); classification has no default dataset."""
    return resolve_data_path(value, Path(value))


def read_split(value: str, split: str) -> list[TextExample]:
    return load_texts(dataset_path(value), split or None)


def recipe_labels(recipe: Any, train: list[TextExample]) -> list[str]:
    """The recipe's labels, or the training data's (sorted); every training label must be among them."""
    labels = list(recipe.data.labels) or label_set(train)
    check_labels(train, labels, dataset_path(recipe.data.train))
    if len(labels) < 2:
        raise InputError(dataset_path(recipe.data.train), "labels", f"two or more labels, got {labels}")
    return labels


@dataclass
class TextFeatures:
    """Token arrays of a training set, padded to the longest text (each batch is cut to its own longest)."""

    input_ids: np.ndarray  # [N, L] int64
    token_type_ids: np.ndarray
    attention_mask: np.ndarray
    labels: np.ndarray  # [N] int64, index into the label list

    def __len__(self) -> int:
        return len(self.labels)


def build_text_features(
    examples: list[TextExample], tok: TextTokenizer, labels: list[str], pad_id: int, gold: int | None = None
) -> TextFeatures:
    """Tokenize every text as the device does (``TextTokenizer``: truncated to max_seq_len tokens). Only the
    first ``gold`` texts (all when None) keep their label for the hard loss; the rest are the teacher's alone."""
    encodings = tok.tokenizer.encode_batch([ex.text for ex in examples])
    length = max(len(e.ids) for e in encodings)
    n = len(examples)
    ids = np.full((n, length), pad_id, dtype=np.int64)
    mask = np.zeros((n, length), dtype=np.int64)
    for i, e in enumerate(encodings):
        ids[i, : len(e.ids)] = e.ids
        mask[i, : len(e.ids)] = 1
    index = {name: i for i, name in enumerate(labels)}
    gold = n if gold is None else gold
    y = np.array([index[ex.label] for ex in examples[:gold]] + [IGNORE_INDEX] * (n - gold), dtype=np.int64)
    return TextFeatures(ids, np.zeros_like(ids), mask, y)


def logit_loss(out: Any, inputs: dict[str, torch.Tensor], alpha: float, temperature: float) -> dict[str, torch.Tensor]:
    return classification_kd_loss(out.logits, inputs["labels"], inputs.get("teacher_logits"), alpha, temperature)


@dataclass(frozen=True)
class LogitsKey:
    """What a cache of a classifier's teacher logits is valid for."""

    teacher_sha256: str
    data_sha256: str
    split: str
    n_examples: int
    labels: list[str]
    max_seq_len: int
    format: int = CACHE_FORMAT


def teacher_logits(
    cache_root: Path,
    teacher: Bundle,
    train_path: Path,
    split: str,
    examples: list[TextExample],
    labels: list[str],
    threads: int | None = None,
    write: bool = True,
    batch_size: int = 64,
) -> np.ndarray:
    """The teacher bundle's logits for every training text, [N, labels], from the cache (filled first when
    ``write``). The teacher must be a classifier over the same labels, in the same order."""
    m = teacher.manifest
    check_teacher_labels(teacher, labels)
    key = LogitsKey(m.files[m.model_file].sha256, sha256_file(train_path), split, len(examples), labels, m.max_seq_len)

    def fill(cache: Path) -> np.ndarray:
        backend = open_backend(teacher, RuntimeOptions(threads=threads))
        tok = TextTokenizer.from_file(teacher.tokenizer_path, m.max_seq_len)
        encodings = tok.tokenizer.encode_batch([ex.text for ex in examples])
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")  # batches of similar length
        logits = np.zeros((len(examples), len(labels)), dtype=np.float32)
        print(f"teacher logits: {len(examples):,} texts into {cache}", file=sys.stderr)
        for lo in tqdm(range(0, len(order), batch_size), desc="teacher logits", unit="batch"):
            rows = order[lo : lo + batch_size]
            width = max(len(encodings[i].ids) for i in rows)
            ids = np.full((len(rows), width), m.pad_id, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for k, i in enumerate(rows):
                ids[k, : len(encodings[i].ids)] = encodings[i].ids
                mask[k, : len(encodings[i].ids)] = 1
            by_name = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            (out,) = backend({n: by_name[n] for n in m.input_names})
            logits[rows] = out
        return logits

    return cached_array(cache_root, "teacher-logits-cls", key, (len(examples), len(labels)), fill, write)
