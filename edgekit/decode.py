"""Span decoding: start/end logits of every window -> one answer cut from the context.

For each window the ``n_best`` highest start and end logits among *context*
tokens are paired; a pair is valid when end >= start and the span is at most
``max_answer_len`` tokens. The best valid pair over all windows wins (score =
start logit + end logit), its text is cut from the original context by
character offsets, and its confidence is its softmax share among all valid
n-best candidates (as Hugging Face's ``run_qa`` post-processing reports it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgekit.features import Window

DEFAULT_N_BEST = 20
DEFAULT_MAX_ANSWER_LEN = 30


@dataclass(frozen=True)
class Span:
    """A decoded answer: ``context[start_char:end_char] == text``."""

    text: str
    start_char: int
    end_char: int
    score: float
    confidence: float
    window: int
    start_token: int = -1  # the span's first and last token in its window
    end_token: int = -1


def best_span(
    context: str,
    windows: Sequence[Window],
    start_logits: Sequence[np.ndarray],
    end_logits: Sequence[np.ndarray],
    n_best: int = DEFAULT_N_BEST,
    max_answer_len: int = DEFAULT_MAX_ANSWER_LEN,
) -> Span:
    """Pick the best answer span over all windows of one question.

    ``start_logits[i]`` may be longer than window ``i`` (padding); extra positions
    are ignored. A question whose windows hold no context token gets an empty
    answer with confidence 0.
    """
    cand_scores: list[np.ndarray] = []
    best: tuple[float, int, int, int] | None = None
    for w_i, (win, s_log, e_log) in enumerate(zip(windows, start_logits, end_logits, strict=True)):
        ctx = np.flatnonzero([o is not None for o in win.context_offsets])
        if ctx.size == 0:
            continue
        s = np.asarray(s_log, dtype=np.float64)[ctx]
        e = np.asarray(e_log, dtype=np.float64)[ctx]
        k = min(n_best, ctx.size)
        si = np.argsort(-s, kind="stable")[:k]
        ei = np.argsort(-e, kind="stable")[:k]
        # positions in ``ctx`` are consecutive tokens, so lengths are index differences
        length = ctx[ei][None, :] - ctx[si][:, None] + 1
        valid = (length >= 1) & (length <= max_answer_len)
        if not valid.any():
            continue
        scores = s[si][:, None] + e[ei][None, :]
        cand_scores.append(scores[valid])
        flat = np.where(valid, scores, -np.inf).argmax()
        a, b = np.unravel_index(flat, scores.shape)
        if best is None or scores[a, b] > best[0]:
            best = (float(scores[a, b]), w_i, int(ctx[si[a]]), int(ctx[ei[b]]))
    if best is None:
        return Span("", 0, 0, float("-inf"), 0.0, -1)
    score, w_i, start_tok, end_tok = best
    all_scores = np.concatenate(cand_scores)
    confidence = float(1.0 / np.exp(all_scores - score).sum())
    offs = windows[w_i].context_offsets
    start_char, end_char = offs[start_tok][0], offs[end_tok][1]
    return Span(context[start_char:end_char], start_char, end_char, score, confidence, w_i, start_tok, end_tok)
