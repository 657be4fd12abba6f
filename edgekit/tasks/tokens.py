"""Token classification (named entities) on the device: words to sub-word windows, a tag per word, entity F1.

A sentence arrives as words (a CoNLL file's first column, ``edgekit.entities.read_conll``). The bundle's
tokenizer encodes them as pre-split words (``is_pretokenized``), so each sub-word knows its word whatever
the tokenizer's kind (WordPiece, byte-level BPE, SentencePiece). A word's tag is read from its **first**
sub-word, as it was taught (``edgekit.export.tasks.tokens``: the other sub-words carry no label); a word the
tokenizer makes nothing of (only characters its normalizer drops) is tagged ``O``.

A sentence longer than ``max_seq_len`` tokens is cut into consecutive windows of whole words, each word in
exactly one window; a single word longer than a window keeps its first ``max_seq_len`` tokens, which hold the
sub-word its tag is read from. Scores: ``edgekit.entities`` (the CoNLL rule, per type, WNUT's surface forms).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.backends import Backend, RuntimeOptions, check_finite, open_backend
from edgekit.bundle import Bundle, Manifest, load_bundle
from edgekit.entities import OUTSIDE, Sentence, read_conll, score_entities, split_tag
from edgekit.errors import BundleError, InputError
from edgekit.features import TruncatingTokenizer, row_feeds
from edgekit.result import Examples, Percent
from edgekit.squad import resolve_data_path
from edgekit.timing import Stopwatch

TASK = "token-classification"
MAX_WORD_CHARS = 1_000  # one word; longer is no word of a sentence
MAX_WORDS = 5_000  # one sentence


@dataclass(frozen=True)
class WordWindow:
    """One window of a sentence: its token ids and, for each word that starts in it, where its first sub-word is."""

    ids: list[int]
    heads: list[tuple[int, int]]  # (position in the window, index of the word in the sentence)

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class WordTokenizer(TruncatingTokenizer):
    """Pre-split words, cut into windows of at most ``max_seq_len`` tokens (special tokens included)."""

    def windows(self, words: Sequence[str]) -> list[WordWindow]:
        """The sentence's windows, in order; every word that makes a token has its head in exactly one."""
        out: list[WordWindow] = []
        start = 0
        while start < len(words):
            enc = self.tokenizer.encode(list(words[start:]), is_pretokenized=True)
            heads, previous = [], None
            for pos, w in enumerate(enc.word_ids):
                if w is not None and w != previous:
                    heads.append((pos, start + w))
                previous = w
            if not heads:  # nothing left makes a token
                break
            out.append(WordWindow(list(enc.ids), heads))
            start = heads[-1][1] + 1
        return out

    def feeds(self, window: WordWindow, input_names: Sequence[str], pad_to: int | None = None) -> dict[str, np.ndarray]:
        """The model's inputs for one window, [1, n]; ``pad_to`` pads to a fixed length (TFLite)."""
        return row_feeds(window.ids, input_names, pad_to)


def load_sentences(path: str | Path, labels: Sequence[str] | None = None) -> list[Sentence]:
    """A CoNLL-style file (``word<TAB>tag`` lines; ``packaged:`` names resolved) with sentences a device can
    hold; tags outside ``labels`` (when given) refused with their line."""
    path = resolve_data_path(str(path), Path(path))
    if path.suffix.lower() in (".json", ".tsv", ".csv", ".parquet", ".jsonl"):
        raise InputError(
            path,
            "file name",
            "a CoNLL-style file of word<TAB>tag lines (other formats: edgekit export dataset on a workstation)",
        )
    return read_conll(path, labels, MAX_WORDS, MAX_WORD_CHARS)


def tag_set(sentences: Sequence[Sentence]) -> list[str]:
    """The tags of a training set: ``O`` first, then ``B-X``/``I-X`` pairs by type (each type gets both, so
    the model may predict an ``I-`` its training data happened not to show)."""
    kinds = sorted({split_tag(t)[1] for s in sentences for t in s.tags} - {""})
    return [OUTSIDE, *(f"{p}-{k}" for k in kinds for p in ("B", "I"))]


def check_tag_names(labels: Sequence[str]) -> None:
    """ValueError unless ``labels`` are IOB2 tags, ``O`` among them."""
    for tag in labels:
        split_tag(tag)
    if OUTSIDE not in labels:
        raise ValueError(f"{OUTSIDE!r} among the tags")


@dataclass
class Tagger:
    """A token-classification bundle made ready: tokenizer, runtime, the tag names in logit order."""

    bundle: Bundle
    tokenizer: WordTokenizer
    backend: Backend
    last_model_ms: float = 0.0
    last_windows: int = 0

    @classmethod
    def load(cls, bundle_path: str | Path, options: RuntimeOptions | None = None) -> Tagger:
        bundle = load_bundle(bundle_path)
        if bundle.manifest.task != TASK:
            raise BundleError(
                bundle.path / "manifest.json", "field 'task'", f"a {TASK} bundle, got {bundle.manifest.task!r}"
            )
        return cls(bundle, bundle.tokenizer(), open_backend(bundle, options or RuntimeOptions()))

    @property
    def labels(self) -> list[str]:
        return self.bundle.manifest.labels

    def word_logits(self, words: Sequence[str]) -> np.ndarray:
        """[words, tags] logits, each word's from its first sub-word; a word without tokens gets zeros."""
        m = self.bundle.manifest
        out = np.zeros((len(words), len(m.labels)), dtype=np.float32)
        watch = Stopwatch()
        windows = self.tokenizer.windows(words)
        with watch.time():
            for w in windows:
                (logits,) = check_finite(
                    self.bundle, self.backend(self.tokenizer.feeds(w, m.input_names, self.backend.fixed_seq_len))
                )
                for pos, word in w.heads:
                    out[word] = logits[0, pos]
        self.last_model_ms, self.last_windows = watch.ms, len(windows)
        return out

    def tag(self, words: Sequence[str]) -> list[str]:
        """One tag per word: the best of its first sub-word's logits (``O`` for a word without tokens)."""
        logits = self.word_logits(words)
        best = logits.argmax(axis=-1)
        empty = ~logits.any(axis=-1)
        return [OUTSIDE if e else self.labels[int(b)] for b, e in zip(best, empty, strict=True)]

    def predict(self, example: Sentence) -> dict[str, Any]:
        return {"tags": self.tag(example.words), "windows": self.last_windows}


def _check_tags(tags: list[Any], m: Manifest, example: Sentence | None) -> None:
    """Raise ``ValueError`` unless ``tags`` are the bundle's, one per word of ``example`` (when known)."""
    if not tags:
        raise ValueError("a tag per word, got none")
    known = set(m.labels)
    bad = [t for t in tags if not isinstance(t, str) or t not in known]
    if bad:
        raise ValueError(f"tags of the bundle's, got {bad[0]!r}")
    if example is not None and len(tags) != len(example.words):
        raise ValueError(f"a tag per word of sentence {example.id} ({len(example.words)}), got {len(tags)}")


@dataclass(frozen=True)
class TagScores:
    """The scores a tagger run's metrics.json holds (checked when it is read back)."""

    f1: Percent
    precision: Percent
    recall: Percent
    surface_f1: Percent
    n_examples: Examples


class TokenTask:
    """Words in, one IOB2 tag per word out; entity precision/recall/F1 (CoNLL) and WNUT's surface-form F1."""

    name = TASK
    scores = TagScores
    headline = "f1"
    example_noun = "sentences"
    record_fields: Mapping[str, type | tuple[type, ...]] = {"tags": list, "windows": int}

    def check_manifest(self, m: Manifest, path: Path) -> None:
        if len(m.output_names) != 1:
            raise BundleError(path, "field 'output_names'", "one output: the per-token tag logits")
        labels = m.labels
        if len(set(labels)) != len(labels) or not all(isinstance(x, str) for x in labels):
            raise BundleError(path, "field 'labels'", "each tag name once")
        try:
            check_tag_names(labels)
        except ValueError as exc:
            raise BundleError(path, "field 'labels'", f"IOB2 tags (O, B-TYPE, I-TYPE), {exc}") from None
        if m.max_seq_len < 3:
            raise BundleError(path, "field 'max_seq_len'", f"at least 3 tokens, got {m.max_seq_len}")

    def probe_outputs(self, m: Manifest, seq_len: int) -> list[tuple[int, ...]]:
        return [(1, seq_len, len(m.labels))]

    def load_examples(self, path: Path, split: str | None, m: Manifest, gold: bool = True) -> list[Sentence]:
        # gold kept either way: a tag per word, as small as the words
        if split:
            raise InputError(path, f"split {split!r}", "no split for a CoNLL file (one file is one split)")
        return load_sentences(path, m.labels)

    def load_model(self, bundle_path: str | Path, options: RuntimeOptions, n_best: int) -> Tagger:
        return Tagger.load(bundle_path, options)

    def identity(self, m: Manifest, n_best: int) -> dict[str, Any]:
        return {"max_seq_len": m.max_seq_len, "labels": list(m.labels)}

    def check_record(self, record: Mapping[str, Any], m: Manifest, example: Sentence | None) -> None:
        tags = record["tags"]
        _check_tags(tags, m, example)
        if record["windows"] == 0 and any(t != OUTSIDE for t in tags):
            raise ValueError("only O tags for a sentence of no window (none of its words makes a token)")

    def prediction(self, record: Mapping[str, Any]) -> list[str]:
        return record["tags"]

    def score(self, examples: Sequence[Sentence], predictions: Mapping[str, Any], m: Manifest) -> dict[str, Any]:
        answered = [s for s in examples if s.id in predictions]
        if not answered:
            raise InputError(None, "dataset", "at least one sentence to score")
        for s in answered:  # predictions come from a log or a caller: as untrusted as any file
            try:
                if not isinstance(predictions[s.id], list):
                    raise ValueError("a list of tags")
                _check_tags(predictions[s.id], m, s)
            except ValueError as exc:
                raise InputError(None, f"predictions of sentence {s.id}", str(exc)) from None
        scores = score_entities(
            [s.tags for s in answered], [predictions[s.id] for s in answered], [s.words for s in answered]
        )
        surface = scores.pop("surface")
        return {
            **scores,
            "surface_f1": surface["f1"],
            "surface": surface,
            "n_sentences": len(answered),
            "n_examples": len(examples),
            "n_answered": len(answered),
        }

    def summary(self, metrics: Mapping[str, Any]) -> str:
        return (
            f"entity F1 {metrics['f1']:.2f}  P {metrics['precision']:.2f}  R {metrics['recall']:.2f}  "
            f"surface F1 {metrics['surface_f1']:.2f}  on {metrics['n_examples']} sentences"
        )


TOKENS = TokenTask()
