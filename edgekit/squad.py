"""SQuAD v1.1 loader: the official JSON in, validated examples out.

The official layout is ``{"version": "1.1", "data": [{"title", "paragraphs":
[{"context", "qas": [{"id", "question", "answers": [{"text", "answer_start"}]}]}]}]}``.
Every problem is reported with the file, the article/paragraph/question position
(and the question id once known), the field and what was expected, because a
user debugging a 5 MB JSON file cannot do anything with a bare ``KeyError``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.errors import InputError
from edgekit.jsonfile import iter_members

# One question's context, in characters: a million (about 250k tokens) bounds the tokenizer's own buffers; the
# model sees windows in bounded chunks whatever the length (docs/results.md, "Long contexts: memory per
# question", measures a context of this length).
MAX_CONTEXT_CHARS = 1_000_000

SUPPORTED_VERSIONS = ("1.1",)
DATA_DIR_ENV = "EDGEKIT_SQUAD_DIR"


@dataclass(frozen=True, slots=True)
class Answer:
    """A gold answer: its text and its character offset in the context."""

    text: str
    start: int


@dataclass(frozen=True, slots=True)
class Example:
    """One SQuAD question with its paragraph and gold answers."""

    id: str
    title: str
    context: str
    question: str
    answers: tuple[Answer, ...]

    @property
    def answer_texts(self) -> list[str]:
        return [a.text for a in self.answers]


def default_data_dir() -> Path:
    """Where the SQuAD files live: ``$EDGEKIT_SQUAD_DIR``, else ``$EDGEKIT_DATA_DIR/squad`` (the folder of every
    dataset, as the recipes name it), else ``squad`` in the working directory."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env)
    return Path(os.environ.get("EDGEKIT_DATA_DIR", ".")) / "squad"


PACKAGED = ("dev", "train", "clinc150")  # the excerpts edgekit/data/ ships (NOTICE.md says whence)


def sample_path(split: str = "dev") -> Path:
    """A small attributed excerpt shipped inside the package (see data/NOTICE.md): SQuAD's ``dev`` and ``train``,
    and ``clinc150`` (CLINC150's layout, every split)."""
    data = Path(__file__).with_name("data")
    if split == "clinc150":
        return data / "clinc150-sample.json"
    return data / ("squad-sample.json" if split == "dev" else f"squad-{split}-sample.json")


def resolve_data_path(value: str, default: Path) -> Path:
    """A dataset path from a setting: ``packaged:dev`` / ``packaged:train`` / ``packaged:clinc150`` for the shipped
    excerpts, environment variables expanded, empty for ``default``."""
    if not value:
        return default
    if value.startswith("packaged:"):
        name = value.removeprefix("packaged:")
        if name not in PACKAGED:
            raise InputError(
                value, "dataset", f"one of the shipped excerpts: {', '.join(f'packaged:{n}' for n in PACKAGED)}"
            )
        return sample_path(name)
    if value.startswith("hf:"):  # read by the datasets library, which the device side does without
        raise InputError(value, "dataset", "a file here; edgekit export dataset SOURCE OUT writes one on a workstation")
    return Path(os.path.expandvars(value))


def _field(obj: Any, key: str, kind: type, path: Path, where: str) -> Any:
    if not isinstance(obj, dict):
        raise InputError(path, where, "a JSON object")
    if key not in obj:
        raise InputError(path, f"{where}: field '{key}'", f"a {kind.__name__} (field missing)")
    value = obj[key]
    if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
        raise InputError(path, f"{where}: field '{key}'", f"a {kind.__name__}, got {type(value).__name__}")
    if kind is str:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:  # JSON may escape half of a surrogate pair ("\ud800"): not text
            raise InputError(
                path, f"{where}: field '{key}'", f"Unicode text, got a lone surrogate escape at character {exc.start}"
            ) from None
    return value


def _check_version(version: Any, path: Path) -> None:
    if version not in SUPPORTED_VERSIONS:
        raise InputError(path, "field 'version'", f"SQuAD version 1.1, got {version!r}")


def parse_squad(obj: Any, path: str | Path = "<memory>", require_answers: bool = True) -> list[Example]:
    """Validate a parsed SQuAD v1.1 object and return its examples in file order.

    ``require_answers=False`` accepts questions without gold answers (inference on
    unlabeled data); answers that are present are always checked against the context.
    """
    path = Path(path)
    if not isinstance(obj, dict):
        raise InputError(path, "top level", "a JSON object with 'version' and 'data'")
    _check_version(obj.get("version", "1.1"), path)

    def members() -> Iterator[tuple[str, int | None, Any]]:  # as iter_members gives a file's
        for name, value in obj.items():
            if name == "data" and isinstance(value, list) and value:
                yield from (("data", i, article) for i, article in enumerate(value))
            else:
                yield name, None, value

    return _examples(members(), path, require_answers)


def _examples(
    members: Iterable[tuple[str, int | None, Any]], path: Path, require_answers: bool, keep_answers: bool = True
) -> list[Example]:
    """The examples of a SQuAD object given member by member, ``data`` article by article
    (:func:`edgekit.jsonfile.iter_members`'s form); without their gold answers, once checked, unless
    ``keep_answers``."""
    examples: list[Example] = []
    seen: dict[str, str] = {}
    data = False
    for name, a_i, value in members:
        if name == "version":
            _check_version(value, path)
        elif name == "data":
            data = True
            if a_i is not None:
                examples += _parse_article(value, a_i, path, seen, require_answers, keep_answers)
            elif not isinstance(value, list):
                raise InputError(path, "top level: field 'data'", f"a list, got {type(value).__name__}")
    if not data:
        raise InputError(path, "top level: field 'data'", "a list (field missing)")
    if not examples:
        raise InputError(path, "field 'data'", "at least one question")
    return examples


def _parse_article(
    article: Any, a_i: int, path: Path, seen: dict[str, str], require_answers: bool, keep_answers: bool = True
) -> list[Example]:
    """The examples of ``data[a_i]``; ``seen``: the ids so far and where they were (each id once per file)."""
    examples: list[Example] = []
    where_a = f"data[{a_i}]"
    title = _field(article, "title", str, path, where_a)
    for p_i, para in enumerate(_field(article, "paragraphs", list, path, where_a)):
        where_p = f"{where_a}.paragraphs[{p_i}]"
        context = _field(para, "context", str, path, where_p)
        if not context.strip():
            raise InputError(path, f"{where_p}: field 'context'", "non-empty text")
        if len(context) > MAX_CONTEXT_CHARS:
            raise InputError(
                path,
                f"{where_p}: field 'context'",
                f"a context of at most {MAX_CONTEXT_CHARS:,} characters (edgekit's bound on one "
                f"question's work and memory), got {len(context):,}",
            )
        for q_i, qa in enumerate(_field(para, "qas", list, path, where_p)):
            where_q = f"{where_p}.qas[{q_i}]"
            qid = _field(qa, "id", str, path, where_q)
            if not qid.strip():
                raise InputError(path, f"{where_q}: field 'id'", "a non-empty id")
            where_q = f"{where_q} (id {qid})"
            if qid in seen:
                raise InputError(path, f"{where_q}: field 'id'", f"a unique id (also at {seen[qid]})")
            seen[qid] = where_q
            if qa.get("is_impossible"):
                raise InputError(path, f"{where_q}: field 'is_impossible'", "SQuAD v1.1 (every question answerable)")
            question = _field(qa, "question", str, path, where_q)
            if not question.strip():
                raise InputError(path, f"{where_q}: field 'question'", "non-empty text")
            answers = _parse_answers(qa, context, path, where_q, require_answers)
            examples.append(Example(qid, title, context, question, answers if keep_answers else ()))
    return examples


def _parse_answers(qa: dict, context: str, path: Path, where: str, require_answers: bool) -> tuple[Answer, ...]:
    if "answers" not in qa and not require_answers:
        return ()
    raw = _field(qa, "answers", list, path, where)
    if not raw and require_answers:
        raise InputError(path, f"{where}: field 'answers'", "at least one gold answer")
    answers = []
    for i, ans in enumerate(raw):
        where_a = f"{where}.answers[{i}]"
        text = _field(ans, "text", str, path, where_a)
        start = _field(ans, "answer_start", int, path, where_a)
        if not 0 <= start <= len(context) - len(text):
            raise InputError(
                path,
                f"{where_a}: field 'answer_start'",
                f"an offset in 0..{len(context) - len(text)} for this context, got {start}",
            )
        if context[start : start + len(text)] != text:
            found = context[start : start + len(text)]
            raise InputError(
                path,
                f"{where_a}: field 'answer_start'",
                f"the offset of {text!r} in the context, but the context there reads {found!r}",
            )
        answers.append(Answer(text, start))
    return tuple(answers)


def load_squad(path: str | Path, require_answers: bool = True, keep_answers: bool = True) -> list[Example]:
    """Read and validate a SQuAD v1.1 JSON file (``packaged:dev``, ``packaged:train``: the shipped excerpts);
    ``keep_answers`` False: every answer checked, none kept (``answers`` empty), for a caller that only asks."""
    path = resolve_data_path(str(path), Path(path))
    # article by article: the file is never one parsed tree (docs/runner.md, "Memory")
    return _examples(iter_members(path, "SQuAD JSON", stream="data"), path, require_answers, keep_answers)


def squad_json(examples: Iterable[Example]) -> dict[str, Any]:
    """SQuAD v1.1 JSON of ``examples`` in their order, one paragraph each (:func:`parse_squad` reads it back
    to the same examples, in that order)."""
    return {
        "version": "1.1",
        "data": [
            {
                "title": ex.title,
                "paragraphs": [
                    {
                        "context": ex.context,
                        "qas": [
                            {
                                "id": ex.id,
                                "question": ex.question,
                                "answers": [{"text": a.text, "answer_start": a.start} for a in ex.answers],
                            }
                        ],
                    }
                ],
            }
            for ex in examples
        ],
    }
