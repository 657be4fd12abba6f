"""The official SQuAD v1.1 metric (evaluate-v1.1.py), exactly.

Normalisation: lower-case, strip ASCII punctuation, drop the articles a/an/the,
collapse whitespace. EM and F1 take the max over the gold answers; F1 is over
token multisets. A question with no prediction scores 0 and still counts in the
total. Scores are percentages, as the official script prints them. The runner and
``edgekit score`` both call :func:`evaluate`, so there is one scorer.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from edgekit.errors import InputError
from edgekit.jsonfile import read_json
from edgekit.squad import Example

_PUNCT = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(s: str) -> str:
    """Lower-case, remove punctuation, articles and extra whitespace (official order)."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def exact_match_score(prediction: str, ground_truth: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(ground_truth))


def f1_score(prediction: str, ground_truth: str) -> float:
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(ground_truth).split()
    num_same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(pred_tokens)
    recall = num_same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def max_over_ground_truths(metric, prediction: str, ground_truths: Iterable[str]) -> float:
    return max(metric(prediction, gt) for gt in ground_truths)


@dataclass(frozen=True)
class Score:
    """EM/F1 in percent over ``total`` questions, with the ids that did not line up."""

    exact_match: float
    f1: float
    total: int
    answered: int
    unanswered: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)

    def as_official(self) -> dict[str, float]:
        """The dict the official script prints."""
        return {"exact_match": self.exact_match, "f1": self.f1}


def evaluate(examples: Iterable[Example], predictions: Mapping[str, str]) -> Score:
    """Score ``predictions`` (id -> answer text) against every example's gold answers."""
    em = f1 = 0.0
    total = 0
    unanswered: list[str] = []
    ids: set[str] = set()
    for ex in examples:
        total += 1
        ids.add(ex.id)
        if ex.id not in predictions:
            unanswered.append(ex.id)
            continue
        golds = ex.answer_texts
        if not golds:
            raise InputError(None, f"question {ex.id}", "gold answers to score against")
        pred = predictions[ex.id]
        em += max_over_ground_truths(exact_match_score, pred, golds)
        f1 += max_over_ground_truths(f1_score, pred, golds)
    if total == 0:
        raise InputError(None, "dataset", "at least one question to score")
    unknown = sorted(k for k in predictions if k not in ids)
    return Score(
        exact_match=100.0 * em / total,
        f1=100.0 * f1 / total,
        total=total,
        answered=total - len(unanswered),
        unanswered=unanswered,
        unknown=unknown,
    )


def load_predictions(path: str | Path) -> dict[str, str]:
    """Read an official predictions file: a JSON object mapping question id to answer text."""
    obj = read_json(path, "predictions JSON")
    if not isinstance(obj, dict):
        raise InputError(
            path, "top level", f"a JSON object mapping question id to answer text, got {type(obj).__name__}"
        )
    for key, value in obj.items():
        if not isinstance(value, str):
            raise InputError(path, f"id {key}", f"an answer string, got {type(value).__name__}")
    return obj
