"""Span decoding on hand-made logits and, as a property, on random ones."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from edgekit.decode import best_span
from edgekit.export.models import packaged_minilm_path
from edgekit.features import QATokenizer, Window

CONTEXT = "Denver Broncos beat Carolina Panthers"
#          0      7       15   20       29


def _window(n_question: int = 2) -> Window:
    offsets = [None] * (1 + n_question + 1) + [(0, 6), (7, 14), (15, 19), (20, 28), (29, 37)] + [None]
    n = len(offsets)
    return Window(np.arange(n), np.zeros(n, dtype=np.int64), tuple(offsets))


def _logits(n: int, hot: dict[int, float]) -> np.ndarray:
    a = np.zeros(n, dtype=np.float32)
    for i, v in hot.items():
        a[i] = v
    return a


def test_picks_best_valid_span_and_cuts_from_context() -> None:
    w = _window()
    n = len(w)
    # token 4 = "Denver", 5 = "Broncos"; strongest start on a question token (1) must be ignored
    span = best_span(CONTEXT, [w], [_logits(n, {1: 99, 4: 5})], [_logits(n, {1: 99, 5: 4})])
    assert span.text == "Denver Broncos" and (span.start_char, span.end_char) == (0, 14)
    assert 0 < span.confidence <= 1


def test_end_before_start_and_too_long_spans_are_invalid() -> None:
    w = _window()
    n = len(w)
    # best start "Panthers"(8), best end "Denver"(4): invalid; next best end "Panthers"
    span = best_span(CONTEXT, [w], [_logits(n, {8: 9})], [_logits(n, {4: 9, 8: 1})])
    assert span.text == "Panthers"
    # max_answer_len=2 forbids Denver..Carolina (4 tokens)
    span = best_span(CONTEXT, [w], [_logits(n, {4: 9})], [_logits(n, {7: 9, 5: 1})], max_answer_len=2)
    assert span.text == "Denver Broncos"


def test_best_span_over_several_windows() -> None:
    w = _window()
    n = len(w)
    weak = (_logits(n, {4: 1}), _logits(n, {4: 1}))
    strong = (_logits(n, {7: 8}), _logits(n, {8: 8}))
    span = best_span(CONTEXT, [w, w], [weak[0], strong[0]], [weak[1], strong[1]])
    assert span.text == "Carolina Panthers" and span.window == 1


def test_window_without_context_gives_empty_answer() -> None:
    w = Window(np.arange(3), np.zeros(3, dtype=np.int64), (None, None, None))
    span = best_span("ctx", [w], [np.zeros(3)], [np.zeros(3)])
    assert span.text == "" and span.confidence == 0.0


TOK = QATokenizer.from_file(packaged_minilm_path() / "tokenizer.json", max_seq_len=48, doc_stride=16)
contexts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), min_size=1, max_size=200)


@settings(max_examples=60)
@given(contexts, st.integers(0, 2**32 - 1), st.integers(1, 30))
def test_answer_is_always_the_context_at_its_offsets(context: str, seed: int, max_len: int) -> None:
    windows = TOK.windows("what is it?", context)
    rng = np.random.default_rng(seed)
    starts = [rng.normal(size=48).astype(np.float32) for _ in windows]
    ends = [rng.normal(size=48).astype(np.float32) for _ in windows]
    span = best_span(context, windows, starts, ends, max_answer_len=max_len)
    assert span.text == context[span.start_char : span.end_char]
    assert 0.0 <= span.confidence <= 1.0


@given(
    arrays(np.float32, 10, elements=st.floats(-50, 50, width=32)),
    arrays(np.float32, 10, elements=st.floats(-50, 50, width=32)),
)
def test_decoder_agrees_with_brute_force(s: np.ndarray, e: np.ndarray) -> None:
    w = _window()
    span = best_span(CONTEXT, [w], [s], [e], max_answer_len=3)
    ctx = [i for i, o in enumerate(w.context_offsets) if o is not None]
    best = max(float(s[i]) + float(e[j]) for i in ctx for j in ctx if 0 <= j - i < 3)
    assert span.score == np.float64(best) or abs(span.score - best) < 1e-4


def test_the_pipelines_rule_normalizes_each_window_before_windows_compete() -> None:
    """benchmarks.decoding's version of transformers' rule: on one window it picks what edgekit's picks (a
    window's normalization shifts all its logits alike); across windows a peaked window beats one whose logits
    are higher but flat, where raw sums choose the other way."""
    from benchmarks.decoding import RULES, decode

    w = _window()
    n = len(w)
    one = ([_logits(n, {4: 5, 7: 2})], [_logits(n, {5: 4, 8: 1})])
    assert decode(CONTEXT, [w], *one, RULES["edgekit"], 30) == "Denver Broncos"
    assert decode(CONTEXT, [w], *one, RULES["edgekit, each window normalized"], 30) == "Denver Broncos"
    flat_start, flat_end = np.full(n, 10.0, dtype=np.float32), np.full(n, 10.0, dtype=np.float32)
    flat_start[7] = flat_end[8] = 11.0  # "Carolina Panthers", barely above the rest of its window
    peaked_start, peaked_end = _logits(n, {4: 8}), _logits(n, {5: 8})  # "Denver Broncos", far above the rest
    windows, start, end = [w, w], [flat_start, peaked_start], [flat_end, peaked_end]
    assert decode(CONTEXT, windows, start, end, RULES["edgekit"], 30) == "Carolina Panthers"
    assert decode(CONTEXT, windows, start, end, RULES["transformers pipeline"], 30) == "Denver Broncos"
