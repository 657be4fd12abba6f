"""The workstation half of token classification: tagged sentences to training windows, the teacher's per-word
logits, the per-token loss.

Labels are aligned as the device reads them (``edgekit.tasks.tokens.WordTokenizer``): a word's tag sits on its
first sub-word; the other sub-words, special tokens and padding carry ``IGNORE_INDEX`` and take no part in
either loss. Teacher and student may tokenize differently (MPNet's WordPiece, a byte-level BPE student): the
teacher's logits are kept **per word** (read at its own first sub-words) and placed on the student's first
sub-words, so nothing needs aligning beyond the words the data already gives. The cache
(``teacher_cache.cached_array``) holds them beside the key they are valid for.
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
from edgekit.entities import Sentence
from edgekit.errors import InputError
from edgekit.export.losses import IGNORE_INDEX, token_kd_loss
from edgekit.export.tasks.classification import dataset_path
from edgekit.export.teacher_cache import cached_array, check_teacher_labels
from edgekit.jsonfile import read_text
from edgekit.tasks.tokens import (
    MAX_WORD_CHARS,
    MAX_WORDS,
    Tagger,
    WordTokenizer,
    check_tag_names,
    load_sentences,
    tag_set,
)

CACHE_FORMAT = 1
TEACHER_ONLY = -1  # the label of a word only the teacher tags (an extra, unlabelled sentence): soft loss alone


def read_split(value: str, split: str = "") -> list[Sentence]:
    if split:
        raise InputError(dataset_path(value), f"split {split!r}", "no split for a CoNLL file (one file is one split)")
    return load_sentences(dataset_path(value))


def read_unlabelled(path: Path, limit: int = 0) -> list[Sentence]:
    """Sentences for the teacher alone to tag (``data.extra_train``), the first ``limit`` when set: a ``.txt``
    file (one text per line), a classification ``.tsv`` (its texts) or a CoNLL file (its tags unused); a text's
    words are split at whitespace."""
    suffix = path.suffix.lower()
    if suffix not in (".txt", ".tsv"):
        return load_sentences(path)[: limit or None]
    if suffix == ".tsv":
        from edgekit.tasks.classification import read_tsv

        texts = [(ex.id, ex.text) for ex in read_tsv(path)]
    else:
        texts = [(f"line-{n}", t) for n, t in enumerate(read_text(path, "text").split("\n"), 1) if t.strip()]
    sentences = []
    for sid, text in texts[: limit or None]:
        words = tuple(text.split())
        if len(words) > MAX_WORDS or any(len(w) > MAX_WORD_CHARS for w in words):
            raise InputError(path, sid, f"at most {MAX_WORDS:,} words of at most {MAX_WORD_CHARS:,} characters")
        sentences.append(Sentence(sid, words, ("O",) * len(words)))
    if not sentences:
        raise InputError(path, "file", "at least one text")
    return sentences


def recipe_labels(recipe: Any, train: list[Sentence]) -> list[str]:
    """The recipe's tags, or the training data's (``O``, then B-/I- per type); every training tag among them."""
    path = dataset_path(recipe.data.train)
    labels = list(recipe.data.labels) or tag_set(train)
    try:
        check_tag_names(labels)
    except ValueError as exc:
        raise InputError(path, "labels", f"IOB2 tags (O, B-TYPE, I-TYPE) with {exc}") from None
    known = set(labels)
    for s in train:
        bad = next((t for t in s.tags if t not in known), None)
        if bad is not None:
            raise InputError(
                path, f"sentence {s.id} tag {bad!r}", f"one of the recipe's tags ({', '.join(labels[:6])}...)"
            )
    return labels


@dataclass
class TokenFeatures:
    """One row per window, padded to the longest; ``labels`` [N, L] the tag index on each word's first sub-word
    (``TEACHER_ONLY`` where only the teacher tags it), ``IGNORE_INDEX`` elsewhere; ``words`` [N, L] the index of that word among all the data's words, -1 elsewhere."""

    input_ids: np.ndarray
    token_type_ids: np.ndarray
    attention_mask: np.ndarray
    labels: np.ndarray
    words: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


def build_token_features(
    sentences: list[Sentence], tok: WordTokenizer, labels: list[str], pad_id: int, gold: int | None = None
) -> TokenFeatures:
    """Each sentence's windows as the device makes them, labelled at the first sub-word of each word. Only the
    first ``gold`` sentences (all when None) keep their tags; the others' words are ``TEACHER_ONLY``."""
    index = {name: i for i, name in enumerate(labels)}
    gold = len(sentences) if gold is None else gold
    rows: list[tuple[list[int], list[tuple[int, int]], int]] = []  # ids, heads, offset of the sentence's words
    offset = 0
    for s in sentences:
        rows += [(w.ids, w.heads, offset) for w in tok.windows(s.words)]
        offset += len(s.words)
    tags = [index[t] if i < gold else TEACHER_ONLY for i, s in enumerate(sentences) for t in s.tags]
    length = max(len(ids) for ids, _, _ in rows)
    n = len(rows)
    ids = np.full((n, length), pad_id, dtype=np.int64)
    mask = np.zeros((n, length), dtype=np.int64)
    y = np.full((n, length), IGNORE_INDEX, dtype=np.int64)
    words = np.full((n, length), -1, dtype=np.int64)
    for r, (row_ids, heads, off) in enumerate(rows):
        ids[r, : len(row_ids)] = row_ids
        mask[r, : len(row_ids)] = 1
        for pos, word in heads:
            words[r, pos] = off + word
            y[r, pos] = tags[off + word]
    return TokenFeatures(ids, np.zeros_like(ids), mask, y, words)


def place_word_logits(features: TokenFeatures, word_logits: np.ndarray) -> np.ndarray:
    """[N, L, tags]: each word's teacher logits on the student's first sub-word of that word, zeros elsewhere."""
    out = np.zeros((*features.words.shape, word_logits.shape[1]), dtype=np.float32)
    at = features.words >= 0
    out[at] = word_logits[features.words[at]]
    return out


def logit_loss(out: Any, inputs: dict[str, torch.Tensor], alpha: float, temperature: float) -> dict[str, torch.Tensor]:
    return token_kd_loss(out.logits, inputs["token_labels"], inputs.get("teacher_token_logits"), alpha, temperature)


@dataclass(frozen=True)
class WordLogitsKey:
    """What a cache of a tagger teacher's per-word logits is valid for."""

    teacher_sha256: str
    data_sha256: str
    n_sentences: int
    n_words: int
    labels: list[str]
    max_seq_len: int
    format: int = CACHE_FORMAT


def teacher_word_logits(
    cache_root: Path,
    teacher: Bundle,
    train_path: Path,
    sentences: list[Sentence],
    labels: list[str],
    threads: int | None = None,
    write: bool = True,
) -> np.ndarray:
    """The teacher bundle's logits for every word of the training sentences, [words, tags], each read at the
    word's first sub-word in the teacher's own tokenization; from the cache (filled first when ``write``)."""
    m = teacher.manifest
    check_teacher_labels(teacher, labels, "tags")
    n_words = sum(len(s.words) for s in sentences)
    key = WordLogitsKey(
        m.files[m.model_file].sha256, sha256_file(train_path), len(sentences), n_words, labels, m.max_seq_len
    )

    def fill(cache: Path) -> np.ndarray:
        backend = open_backend(teacher, RuntimeOptions(threads=threads))
        tagger = Tagger(teacher, WordTokenizer.from_file(teacher.tokenizer_path, m.max_seq_len), backend)
        print(f"teacher logits: {len(sentences):,} sentences into {cache}", file=sys.stderr)
        return np.concatenate(
            [tagger.word_logits(s.words) for s in tqdm(sentences, desc="teacher logits", unit="sent")]
        )

    return cached_array(cache_root, "teacher-logits-tokens", key, (n_words, len(labels)), fill, write)
