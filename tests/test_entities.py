"""Entity-level scores on the device (edgekit/entities.py): equal to seqeval's strict IOB2 scores on generated
and real tag sequences, WNUT-17's surface forms, and the CoNLL reader's one-line refusals."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from edgekit.entities import entities_of, read_conll, score_entities
from edgekit.errors import InputError

seqeval = pytest.importorskip("seqeval.metrics")
from seqeval.scheme import IOB2  # noqa: E402

TYPES = ["corporation", "creative-work", "group", "location", "person", "product"]
TAGS = ["O", *(f"{p}-{t}" for t in TYPES for p in "BI")]


def _seqeval(gold: list[list[str]], pred: list[list[str]]) -> dict:
    kw = {"mode": "strict", "scheme": IOB2, "zero_division": 0}
    report = seqeval.classification_report(gold, pred, output_dict=True, **kw)
    return {
        "precision": 100 * seqeval.precision_score(gold, pred, **kw),
        "recall": 100 * seqeval.recall_score(gold, pred, **kw),
        "f1": 100 * seqeval.f1_score(gold, pred, **kw),
        "per_type": {k: v for k, v in report.items() if not k.endswith(" avg")},
    }


def _assert_equal(gold: list[list[str]], pred: list[list[str]]) -> None:
    mine, ref = score_entities(gold, pred), _seqeval(gold, pred)
    for k in ("precision", "recall", "f1"):
        assert mine[k] == pytest.approx(ref[k], abs=1e-9), (k, gold, pred)
    for kind, row in ref["per_type"].items():  # seqeval lists the gold types; a type only predicted scores 0
        got = mine["per_type"][kind]
        assert got["f1"] == pytest.approx(100 * row["f1-score"], abs=1e-9)
        assert got["precision"] == pytest.approx(100 * row["precision"], abs=1e-9)
        assert got["recall"] == pytest.approx(100 * row["recall"], abs=1e-9)
        assert got["support"] == row["support"]


def _noisy(tags: list[str], rng: random.Random) -> list[str]:
    """A prediction near ``tags``: some tags replaced by any tag, invalid IOB2 sequences included."""
    return [rng.choice(TAGS) if rng.random() < 0.25 else t for t in tags]


def _valid(n: int, rng: random.Random) -> list[str]:
    out, kind = [], ""
    for _ in range(n):
        r = rng.random()
        if r < 0.55:
            out.append("O")
            kind = ""
        elif r < 0.8 or not kind:
            kind = rng.choice(TYPES)
            out.append(f"B-{kind}")
        else:
            out.append(f"I-{kind}")
    return out


def test_equal_to_seqeval_strict_on_1000_generated_prediction_sets() -> None:
    rng = random.Random(0)
    for _ in range(1000):
        gold = [_valid(rng.randint(1, 12), rng) for _ in range(rng.randint(1, 6))]
        pred = [_noisy(g, rng) if rng.random() < 0.8 else [rng.choice(TAGS) for _ in g] for g in gold]
        _assert_equal(gold, pred)


def test_equal_to_seqeval_on_the_real_wnut_files(wnut_dir: Path) -> None:
    dev = read_conll(wnut_dir / "emerging.dev.conll")
    test = read_conll(wnut_dir / "emerging.test.annotated")
    rng = random.Random(1)
    for gold in (dev, test):
        tags = [list(s.tags) for s in gold]
        _assert_equal(tags, tags)
        _assert_equal(tags, [_noisy(t, rng) for t in tags])
    assert len(dev) == 1009 and len(test) == 1287


def test_strict_iob2_entities() -> None:
    assert entities_of(["B-person", "I-person", "O", "I-person", "B-group", "I-person"]) == [
        entities_of(["B-person", "I-person"])[0],
        *entities_of(["O", "O", "O", "O", "B-group"]),
    ]


def test_surface_forms_count_unique_forms_of_right_predictions() -> None:
    words = [["Paris", "is", "big"], ["Paris", "again"], ["Rome", "x"]]
    gold = [["B-location", "O", "O"], ["B-location", "O"], ["B-location", "O"]]
    pred = [["B-location", "O", "O"], ["O", "O"], ["B-person", "O"]]
    s = score_entities(gold, pred, words)
    assert s["f1"] == pytest.approx(100 * 2 * (1 / 2) * (1 / 3) / (1 / 2 + 1 / 3))
    # forms: gold {Paris/location, Rome/location}; predicted {Paris/location, Rome/person}; right {Paris/location}
    assert s["surface"]["precision"] == pytest.approx(50) and s["surface"]["recall"] == pytest.approx(50)


@pytest.mark.parametrize(
    ("text", "where", "expected"),
    [
        ("Paris\tB-location\nis\n", "line 2", "a word and its tag"),
        ("Paris\tB-place\n", "line 1", "one of the bundle's tags"),
        ("Paris\tX-location\n", "line 1", "a tag O, B-TYPE or I-TYPE"),
        ("a\tO\nParis\tI-location\n", "line 2", "B-location before I-location"),
        ("\n\n\n", "file", "at least one tagged sentence"),
        ('{"data": []}\n', "line 1", "a tag O, B-TYPE or I-TYPE"),  # a file of another shape
    ],
)
def test_bad_conll_is_one_line_naming_the_place(tmp_path: Path, text: str, where: str, expected: str) -> None:
    path = tmp_path / "bad.conll"
    path.write_text(text)
    with pytest.raises(InputError, match=expected) as info:
        read_conll(path, labels=TAGS)
    assert f"{path}: {where}:" in str(info.value)


def test_equal_to_seqeval_on_the_teachers_real_output(wnut_dir: Path) -> None:
    """The WNUT-17 teacher's own test-set predictions (committed by benchmarks.classification) score the same
    under seqeval as the runner's metrics.json says they do."""
    run = Path(__file__).resolve().parents[1] / "benchmarks/results/classification/wnut17/mpnet-wnut17-ft-fp32-onnx"
    predictions = json.loads((run / "predictions.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    gold = read_conll(wnut_dir / "emerging.test.annotated")
    tags = [list(s.tags) for s in gold]
    predicted = [predictions[s.id] for s in gold]
    _assert_equal(tags, predicted)
    assert score_entities(tags, predicted)["f1"] == pytest.approx(metrics["f1"])
    assert sum(t != "O" for p in predicted for t in p) > 500  # a real tagger's output, not all O
