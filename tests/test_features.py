"""Windows and offsets: gold spans survive tokenization; long inputs make many windows."""

from __future__ import annotations

import itertools

import pytest

from edgekit.errors import EdgekitError
from edgekit.export.models import packaged_minilm_path
from edgekit.features import QATokenizer, batch_inputs, char_to_token_span
from edgekit.squad import load_squad
from tests.conftest import TEACHER_DIR

TOKENIZERS = {
    "mpnet": TEACHER_DIR / "tokenizer.json",
    "minilm": packaged_minilm_path() / "tokenizer.json",
}


@pytest.mark.parametrize("name", sorted(TOKENIZERS))
def test_gold_spans_survive_tokenization_on_train_subset(name: str, train_path) -> None:
    """Every gold answer: chars -> tokens in some window -> text cut from the context again."""
    tok = QATokenizer.from_file(TOKENIZERS[name])
    examples = load_squad(train_path)
    exact = 0
    for ex in examples:
        ans = ex.answers[0]
        end = ans.start + len(ans.text)
        for w in tok.windows(ex.question, ex.context):
            span = char_to_token_span(w, ans.start, end)
            if span is not None:
                s, e = span
                text = ex.context[w.context_offsets[s][0] : w.context_offsets[e][1]]
                exact += text.strip() == ans.text.strip()
                break
    rate = exact / len(examples)
    print(f"{name}: {exact}/{len(examples)} gold spans recovered exactly ({100 * rate:.2f}%)")
    assert rate >= 0.99


def test_long_context_makes_overlapping_windows() -> None:
    tok = QATokenizer.from_file(TOKENIZERS["minilm"], max_seq_len=64, doc_stride=16)
    context = " ".join(f"word{i}" for i in range(400))
    windows = tok.windows("which word?", context)
    assert len(windows) > 5
    assert all(len(w) <= 64 for w in windows)
    for a, b in itertools.pairwise(windows):
        a_ctx = [o for o in a.context_offsets if o is not None]
        b_ctx = [o for o in b.context_offsets if o is not None]
        assert a_ctx[-16:] == b_ctx[:16]  # consecutive windows share doc_stride tokens
    last = [o for o in windows[-1].context_offsets if o is not None]
    assert last[-1][1] == len(context)  # the whole context is covered


def test_question_longer_than_half_the_window_still_windows() -> None:
    tok = QATokenizer.from_file(TOKENIZERS["mpnet"], max_seq_len=64, doc_stride=32)
    question = "what " * 40 + "is it?"
    windows = tok.windows(question, "a short context " * 30)
    assert len(windows) >= 2 and all(len(w) <= 64 for w in windows)


def test_question_longer_than_the_window_is_refused() -> None:
    tok = QATokenizer.from_file(TOKENIZERS["mpnet"], max_seq_len=32, doc_stride=8)
    with pytest.raises(EdgekitError, match="leaves room for the context in max_seq_len"):
        tok.windows("why " * 40, "context")


@pytest.mark.parametrize(("seq", "stride"), [(384, 384), (384, 500), (384, -1), (4, 1)])
def test_bad_window_settings(seq: int, stride: int) -> None:
    with pytest.raises(EdgekitError, match="expected"):
        QATokenizer.from_file(TOKENIZERS["minilm"], seq, stride)


def test_unicode_offsets_point_into_the_original_context() -> None:
    tok = QATokenizer.from_file(TOKENIZERS["mpnet"])
    context = "Café 東京 👩‍👩‍👧 naïve e\u0301clair costs 5€."
    (w,) = tok.windows("what?", context)
    for off in w.context_offsets:
        if off is not None:
            assert 0 <= off[0] < off[1] <= len(context)
            assert context[off[0] : off[1]].strip()


def test_batch_inputs_pads_and_names_feeds() -> None:
    tok = QATokenizer.from_file(TOKENIZERS["minilm"], max_seq_len=32, doc_stride=8)
    windows = tok.windows("q?", "one two three " * 20)
    feeds = batch_inputs(windows, ["input_ids", "attention_mask", "token_type_ids"], pad_id=0, pad_to=32)
    assert feeds["input_ids"].shape == (len(windows), 32)
    assert feeds["attention_mask"].sum() == sum(len(w) for w in windows)
    with pytest.raises(EdgekitError, match="model input 'pixel_values'"):
        batch_inputs(windows, ["pixel_values"], pad_id=0)
