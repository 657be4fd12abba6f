"""The official SQuAD v1.1 rules, on hand-made cases and the full dev set."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgekit.errors import InputError
from edgekit.metric import evaluate, exact_match_score, f1_score, load_predictions, normalize_answer
from edgekit.squad import Answer, Example


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("The Denver Broncos!", "denver broncos"),
        ("  an  apple, a pear  ", "apple pear"),
        ("theater", "theater"),  # articles only as whole words
        ("A.B.C.", "abc"),
        ("Ü-Bahn café", "übahn café"),  # non-ASCII letters kept, ASCII '-' dropped
        ("“quoted”", "“quoted”"),  # typographic quotes are not string.punctuation
        ("", ""),
        ("   ", ""),
        ("the", ""),
        ("The The", ""),
    ],
)
def test_normalize_answer(raw: str, normalized: str) -> None:
    assert normalize_answer(raw) == normalized


def test_exact_match_and_f1_by_hand() -> None:
    assert exact_match_score("the Broncos", "Broncos.") == 1.0
    assert exact_match_score("Denver Broncos", "Broncos") == 0.0
    # pred tokens {denver, broncos}, gold {broncos}: P = 1/2, R = 1, F1 = 2/3
    assert f1_score("Denver Broncos", "Broncos") == pytest.approx(2 / 3)
    # multisets: pred "a a b" -> [a? no: 'a' is an article] use other words
    assert f1_score("x x y", "x y y") == pytest.approx(2 / 3)
    assert f1_score("", "Broncos") == 0.0
    assert f1_score("the", "a") == 0.0  # both normalise to empty: no common token


def _ex(qid: str, *golds: str) -> Example:
    context = " ".join(golds) + " filler"
    starts, pos = [], 0
    for g in golds:
        starts.append(Answer(g, pos))
        pos += len(g) + 1
    return Example(qid, "t", context, "q?", tuple(starts))


def test_evaluate_max_over_golds_and_missing_ids() -> None:
    examples = [_ex("a", "Denver Broncos", "Broncos"), _ex("b", "1990"), _ex("c", "blue")]
    score = evaluate(examples, {"a": "Broncos", "b": "in 1990", "zzz": "stray"})
    # a: EM 1, F1 1; b: EM 0, F1 2/3; c: missing, counts as 0
    assert score.exact_match == pytest.approx(100 / 3)
    assert score.f1 == pytest.approx(100 * (1 + 2 / 3) / 3)
    assert score.total == 3 and score.answered == 2
    assert score.unanswered == ["c"] and score.unknown == ["zzz"]


def test_full_dev_sanity(dev_examples) -> None:
    golds = {ex.id: ex.answers[-1].text for ex in dev_examples}
    score = evaluate(dev_examples, golds)
    assert score.total == 10570
    assert score.exact_match == 100.0
    # Official quirk, kept: one dev question's last gold answer is ".", which normalises to
    # the empty string: an exact match of itself, but with no token in common, so F1 0.
    empty = [qid for qid, text in golds.items() if normalize_answer(text) == ""]
    assert empty == ["57340d124776f419006617bf"]
    assert score.f1 == pytest.approx(100 * 10569 / 10570)
    empty = evaluate(dev_examples, {})
    assert empty.exact_match == 0.0 and empty.f1 == 0.0 and len(empty.unanswered) == 10570
    # half the questions answered with gold, half missing: exactly 50%
    half = {ex.id: golds[ex.id] for i, ex in enumerate(dev_examples) if i % 2 == 0}
    assert evaluate(dev_examples, half).exact_match == pytest.approx(100 * 5285 / 10570)


def test_score_cli_prints_official_json(tmp_path, dev_path, dev_examples) -> None:
    preds = {ex.id: ex.answers[0].text for ex in dev_examples[:100]}
    preds["not-a-dev-id"] = "x"
    pred_file = tmp_path / "pred.json"
    pred_file.write_text(json.dumps(preds))
    score = [sys.executable, "-m", "edgekit.cli", "score", "--dataset", str(dev_path), "--predictions", str(pred_file)]
    proc = subprocess.run(score, capture_output=True, text=True, check=True)
    out = json.loads(proc.stdout)
    assert set(out) == {"exact_match", "f1"}
    assert out["exact_match"] == pytest.approx(100 * 100 / 10570)  # the official rule: unanswered scores 0
    lines = proc.stderr.splitlines()
    assert len(lines) == 2, proc.stderr  # one summary line each, not a line per unanswered question
    assert "10,470 of 10,570 questions unanswered" in lines[0] and "not-a-dev-id" in lines[1]
    answered = subprocess.run([*score, "--answered-only"], capture_output=True, text=True, check=True)
    assert json.loads(answered.stdout)["exact_match"] == pytest.approx(100.0)
    assert "scored only the 100 answered questions" in answered.stderr


def test_predictions_file_must_map_ids_to_strings(tmp_path) -> None:
    bad = tmp_path / "p.json"
    bad.write_text(json.dumps(["a", "b"]))
    with pytest.raises(InputError, match="mapping question id to answer text"):
        load_predictions(bad)
    bad.write_text(json.dumps({"id1": 3}))
    with pytest.raises(InputError, match="id id1"):
        load_predictions(bad)


words = st.lists(st.sampled_from(["a", "b", "x", "the", "an", " ", ".", ",", "!", "-", "é", "The"]), max_size=12).map(
    "".join
)


@given(words, st.lists(words, min_size=1, max_size=4))
def test_em_never_exceeds_f1_and_gold_order_is_irrelevant(pred: str, golds: list[str]) -> None:
    ex = _ex("q", *golds)
    rev = _ex("q", *reversed(golds))
    a, b = evaluate([ex], {"q": pred}), evaluate([rev], {"q": pred})
    assert a.exact_match <= a.f1 + 1e-9 or normalize_answer(pred) == ""
    assert (a.exact_match, a.f1) == (b.exact_match, b.f1)
