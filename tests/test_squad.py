"""The SQuAD loader: the real files load; every malformed input gets a precise error."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from error_catalog import VALID  # the one small valid SQuAD file the tests damage

from edgekit.errors import InputError
from edgekit.squad import load_squad, parse_squad, sample_path


def test_real_files_load(dev_path: Path, train_path: Path) -> None:
    dev = load_squad(dev_path)
    assert len(dev) == 10570 and len({e.id for e in dev}) == 10570
    assert dev[0].title == "Super_Bowl_50"
    assert len(load_squad(train_path)) == 11877
    assert len(load_squad(sample_path())) == 105


def test_valid_example_fields() -> None:
    ex = parse_squad(VALID)[0]
    assert (ex.id, ex.question, ex.answers[0].text, ex.answers[0].start) == ("q1", "Where is Paris?", "France", 12)


def _mutate(path: str, value):
    obj = copy.deepcopy(VALID)
    keys = path.split("/")
    target = obj
    for k in keys[:-1]:
        target = target[int(k)] if k.isdigit() else target[k]
    last = keys[-1]
    if value is DELETE:
        del target[int(last) if last.isdigit() else last]
    else:
        target[int(last) if last.isdigit() else last] = value
    return obj


DELETE = object()
Q = "data/0/paragraphs/0/qas/0"

BAD = [
    ("top level not an object", [1, 2], "top level"),
    ("SQuAD 2.0 version", _mutate("version", "v2.0"), "version 1.1"),
    ("data missing", _mutate("data", DELETE), "field 'data'"),
    ("data not a list", _mutate("data", {}), "field 'data'"),
    ("empty dataset", _mutate("data", []), "at least one question"),
    ("title missing", _mutate("data/0/title", DELETE), "data[0]: field 'title'"),
    ("context missing", _mutate("data/0/paragraphs/0/context", DELETE), "paragraphs[0]: field 'context'"),
    ("context empty", _mutate("data/0/paragraphs/0/context", "  "), "non-empty text"),
    ("question missing", _mutate(f"{Q}/question", DELETE), "qas[0] (id q1): field 'question'"),
    ("question empty", _mutate(f"{Q}/question", ""), "qas[0] (id q1): field 'question'"),
    ("id not a string", _mutate(f"{Q}/id", 7), "field 'id'"),
    ("duplicate id", _mutate("data/0/paragraphs/0/qas/1/id", "q1"), "a unique id"),
    ("answers missing", _mutate(f"{Q}/answers", DELETE), "field 'answers'"),
    ("answers empty", _mutate(f"{Q}/answers", []), "at least one gold answer"),
    ("answer_start not int", _mutate(f"{Q}/answers/0/answer_start", "12"), "answer_start"),
    ("answer_start bool", _mutate(f"{Q}/answers/0/answer_start", True), "answer_start"),
    ("answer_start out of range", _mutate(f"{Q}/answers/0/answer_start", 99), "an offset in 0..13"),
    ("answer_start wrong place", _mutate(f"{Q}/answers/0/answer_start", 0), "context there reads 'Paris '"),
    ("answer text missing", _mutate(f"{Q}/answers/0/text", DELETE), "field 'text'"),
    ("SQuAD 2.0 unanswerable", _mutate(f"{Q}/is_impossible", True), "is_impossible"),
]


@pytest.mark.parametrize(("case", "obj", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_structure_names_the_place(tmp_path: Path, case: str, obj, message: str) -> None:
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(obj))
    with pytest.raises(InputError) as err:
        load_squad(f)
    assert str(f) in str(err.value)
    assert message in str(err.value)
    assert "expected" in str(err.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"version": "1.1", "data": [', "valid JSON"),
        (b"", "valid JSON"),
        (b'{"data": "\xff\xfe"}', "UTF-8 text"),
    ],
    ids=["truncated", "empty file", "not utf-8"],
)
def test_unreadable_files(tmp_path: Path, content: bytes, message: str) -> None:
    f = tmp_path / "bad.json"
    f.write_bytes(content)
    with pytest.raises(InputError, match=message):
        load_squad(f)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="an existing SQuAD JSON file"):
        load_squad(tmp_path / "nope.json")


def test_whitespace_gold_answer_is_valid() -> None:
    obj = _mutate(f"{Q}/answers", [{"text": " ", "answer_start": 5}])
    assert parse_squad(obj)[0].answers[0].text == " "


def test_answers_checked_when_not_kept(tmp_path: Path) -> None:
    """The runner holds a dataset without its gold answers while the model runs: they are still checked."""
    path = tmp_path / "dev.json"
    path.write_text(json.dumps(VALID))
    full, inputs = load_squad(path), load_squad(path, keep_answers=False)
    assert [(e.id, e.context, e.question) for e in inputs] == [(e.id, e.context, e.question) for e in full]
    assert all(e.answers == () for e in inputs) and all(e.answers for e in full)
    path.write_text(json.dumps(_mutate("data/0/paragraphs/0/qas/0/answers/0/answer_start", 3)))
    with pytest.raises(InputError, match="answer_start"):
        load_squad(path, keep_answers=False)
