"""Question + context -> model windows, with the Rust ``tokenizers`` library only.

A context longer than the model is cut into windows of ``max_seq_len`` tokens
that overlap by ``doc_stride`` context tokens (the Hugging Face ``run_qa``
meaning of stride). Each window keeps, for every token, its character span in
the *original* context, so a decoded answer is cut from the context text itself
and never re-assembled from word pieces.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import numpy as np
from tokenizers import Tokenizer

from edgekit.errors import EdgekitError, InputError

DEFAULT_MAX_SEQ_LEN = 384
DEFAULT_DOC_STRIDE = 128


@dataclass(frozen=True)
class Window:
    """One model input window of one question.

    ``context_offsets[i]`` is the (start, end) character span of token ``i`` in
    the context, or None for question, special and padding tokens: only tokens
    with a span can start or end an answer.
    """

    input_ids: np.ndarray
    type_ids: np.ndarray
    context_offsets: tuple[tuple[int, int] | None, ...]

    def __len__(self) -> int:
        return len(self.input_ids)


def load_tokenizer(path: str | Path) -> Tokenizer:
    """A ``tokenizer.json`` loaded, or one line naming it. The Rust side raises a bare ``Exception`` for a file
    it rejects and a ``PanicException`` (a ``BaseException``) where it panics on one it half accepts."""
    try:
        return Tokenizer.from_file(str(path))
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        said = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise InputError(path, "file", f"a tokenizers tokenizer.json ({said})") from None


@dataclass
class TruncatingTokenizer:
    """A ``tokenizers.Tokenizer`` that cuts what it encodes to ``max_seq_len`` tokens (special tokens included):
    the common part of a classifier's and a tagger's tokenizer. Truncation is set on this object's own copy, once,
    to the bundle's length: every caller of ``Bundle.tokenizer`` shares it and asks for that length."""

    tokenizer: Tokenizer
    max_seq_len: int

    def __post_init__(self) -> None:
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_seq_len)

    @classmethod
    def from_file(cls, path: str | Path, max_seq_len: int) -> Self:
        return cls(load_tokenizer(path), max_seq_len)

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size(with_added_tokens=True)


def row_feeds(ids: Sequence[int], input_names: Sequence[str], pad_to: int | None = None) -> dict[str, np.ndarray]:
    """The model's inputs for one row of token ids, [1, n] (one text, or one window of a sentence); ``pad_to``
    pads to a fixed length (TFLite)."""
    n = len(ids)
    width = pad_to or n
    row = np.zeros((1, width), dtype=np.int64)
    row[0, :n] = ids
    mask = np.zeros((1, width), dtype=np.int64)
    mask[0, :n] = 1
    by_name = {"input_ids": row, "attention_mask": mask, "token_type_ids": np.zeros((1, width), dtype=np.int64)}
    return {name: by_name[name] for name in input_names}


@dataclass
class QATokenizer:
    """A ``tokenizers.Tokenizer`` set up for question/context pairs."""

    tokenizer: Tokenizer
    max_seq_len: int = DEFAULT_MAX_SEQ_LEN
    doc_stride: int = DEFAULT_DOC_STRIDE

    def __post_init__(self) -> None:
        check_window_settings(self.max_seq_len, self.doc_stride)
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self._specials = (
            self.tokenizer.post_processor.num_special_tokens_to_add(True)
            if self.tokenizer.post_processor is not None
            else 0
        )

    @classmethod
    def from_file(
        cls, path: str | Path, max_seq_len: int = DEFAULT_MAX_SEQ_LEN, doc_stride: int = DEFAULT_DOC_STRIDE
    ) -> QATokenizer:
        return cls(load_tokenizer(path), max_seq_len, doc_stride)

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    def windows(self, question: str, context: str) -> list[Window]:
        """Tokenize one question against its context into overlapping windows."""
        question = question.lstrip()  # leading blanks only waste the window (as run_qa does)
        self.tokenizer.no_truncation()  # set per call below: a question is counted whole, whatever came before
        n_question = len(self.tokenizer.encode(question, add_special_tokens=False).ids)
        room = self.max_seq_len - self._specials - n_question
        if room < 1:
            raise InputError(
                None,
                "question",
                f"a question that leaves room for the context in max_seq_len={self.max_seq_len} "
                f"(this one has {n_question} tokens); use a bundle with a longer max_seq_len or shorten it",
            )
        # A question longer than max_seq_len - doc_stride leaves fewer context tokens
        # than the stride; overlap by half the room instead of failing.
        stride = min(self.doc_stride, room // 2)
        self.tokenizer.enable_truncation(self.max_seq_len, stride=stride, strategy="only_second")
        try:
            enc = self.tokenizer.encode(question, context)
        finally:  # a bundle hands this tokenizer to every caller (Bundle.tokenizer): others encode whole texts
            self.tokenizer.no_truncation()
        return [_window(e) for e in [enc, *enc.overflowing]]


def _window(enc) -> Window:
    seq = enc.sequence_ids
    # the context's tokens (sequence 1) are one run between the question's and the last separator, so they are
    # cut out by slicing (C speed) instead of tested one by one (docs/runner.md, "Windows", has the saving)
    if 1 in seq:
        first, stop = seq.index(1), len(seq) - seq[::-1].index(1)
        offsets = (None,) * first + tuple(enc.offsets[first:stop]) + (None,) * (len(seq) - stop)
    else:
        offsets = (None,) * len(seq)
    return Window(
        input_ids=np.asarray(enc.ids, dtype=np.int64),
        type_ids=np.asarray(enc.type_ids, dtype=np.int64),
        context_offsets=offsets,
    )


def check_window_settings(max_seq_len: int, doc_stride: int) -> None:
    """Refuse settings that cannot make windows."""
    if max_seq_len < 8:
        raise EdgekitError(f"max_seq_len={max_seq_len}: expected at least 8 tokens")
    if not 0 <= doc_stride < max_seq_len:
        raise EdgekitError(f"doc_stride={doc_stride}: expected 0 <= doc_stride < max_seq_len ({max_seq_len})")


def batch_inputs(
    windows: list[Window], input_names: list[str], pad_id: int, pad_to: int | None = None
) -> dict[str, np.ndarray]:
    """Pad windows to one length and build the model feeds by input name.

    ``pad_to`` fixes the length (TFLite models have a static shape); by default
    the batch is padded to its longest window only, which is faster for ONNX.
    """
    length = pad_to or max(len(w) for w in windows)
    n = len(windows)
    ids = np.full((n, length), pad_id, dtype=np.int64)
    types = np.zeros((n, length), dtype=np.int64)
    mask = np.zeros((n, length), dtype=np.int64)
    for i, w in enumerate(windows):
        ids[i, : len(w)] = w.input_ids
        types[i, : len(w)] = w.type_ids
        mask[i, : len(w)] = 1
    by_name = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    try:
        return {name: by_name[name] for name in input_names}
    except KeyError as exc:
        raise EdgekitError(f"model input {exc.args[0]!r}: expected one of {sorted(by_name)}") from None


def char_to_token_span(window: Window, start_char: int, end_char: int) -> tuple[int, int] | None:
    """The token span of window ``window`` that covers context characters [start, end).

    None when the answer is not wholly inside this window. Used to label training
    features and to check that gold spans survive tokenization.
    """
    offs = window.context_offsets
    ctx = [i for i, o in enumerate(offs) if o is not None]
    if not ctx or offs[ctx[0]][0] > start_char or offs[ctx[-1]][1] < end_char:
        return None
    start_tok = next(i for i in ctx if offs[i][1] > start_char)
    end_tok = next(i for i in reversed(ctx) if offs[i][0] < end_char)
    return (start_tok, end_tok) if start_tok <= end_tok else None
