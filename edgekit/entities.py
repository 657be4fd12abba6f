"""Named entities on the device: CoNLL-style tagged sentences and entity-level scores, without heavy dependencies.

Reading: one ``token<TAB>TAG`` line per word (the word first, the tag last: CoNLL-2003's middle columns are
skipped; a line without a tab splits at spaces), a blank line between sentences (``-DOCSTART-`` lines skipped), tags ``O`` or ``B-TYPE`` / ``I-TYPE`` (IOB2). A gold file must be well formed: an ``I-`` tag
continues an entity of its own type, never starts one.

Scoring, the CoNLL rule: an entity is a ``B-TYPE`` word and the ``I-TYPE`` words after it (strict IOB2, as
``seqeval``'s ``mode="strict"``: a predicted ``I-`` that continues nothing is no entity), and it counts when its
words and type are exactly the gold one's. Precision, recall and F1 per type and over all entities (micro).
WNUT-17's surface-form scores count unique ``(words, type)`` forms instead: the gold forms, the predicted forms,
and the forms of the exactly right predictions (its official ``wnuteval.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.errors import InputError
from edgekit.jsonfile import read_text

OUTSIDE = "O"


@dataclass(frozen=True, slots=True)
class Sentence:
    """A sentence's words and their gold tags (one per word)."""

    id: str
    words: tuple[str, ...]
    tags: tuple[str, ...]


@dataclass(frozen=True)
class Entity:
    """Words ``start`` to ``end`` (exclusive) of sentence ``sentence``, of ``type``."""

    sentence: int
    start: int
    end: int
    type: str


def split_tag(tag: str) -> tuple[str, str]:
    """``("B", "person")`` of ``B-person``; ``("O", "")`` of ``O``; ValueError for anything else."""
    if tag == OUTSIDE:
        return OUTSIDE, ""
    prefix, sep, kind = tag.partition("-")
    if not sep or prefix not in ("B", "I") or not kind or kind != kind.strip():
        raise ValueError(tag)
    return prefix, kind


def entities_of(tags: Sequence[str], sentence: int = 0) -> list[Entity]:
    """The entities of one tag sequence under strict IOB2: each ``B-X`` with the ``I-X`` words after it."""
    out: list[Entity] = []
    start, kind = -1, ""
    for i, tag in enumerate([*tags, OUTSIDE]):
        prefix, k = split_tag(tag)
        if prefix == "I" and start >= 0 and k == kind:
            continue
        if start >= 0:
            out.append(Entity(sentence, start, i, kind))
        start, kind = (i, k) if prefix == "B" else (-1, "")
    return out


def check_tags(tags: Sequence[str], path: str | Path, first_line: int) -> None:
    """Refuse a gold tag sequence that is not IOB2: an ``I-X`` not after ``B-X`` or ``I-X``."""
    previous = ""
    for i, tag in enumerate(tags):
        prefix, kind = split_tag(tag)
        if prefix == "I" and previous != kind:
            after = f"after {tags[i - 1]}" if i else "at the start of a sentence"
            raise InputError(path, f"line {first_line + i}", f"B-{kind} before I-{kind} (IOB2), got I-{kind} {after}")
        previous = kind


def read_conll(
    path: str | Path, labels: Sequence[str] | None = None, max_words: int = 0, max_word_chars: int = 0
) -> list[Sentence]:
    """A CoNLL-style file's sentences (see the module docstring); tags outside ``labels`` (when given), sentences
    of over ``max_words`` words and words of over ``max_word_chars`` characters (when not 0) refused by line."""
    path = Path(path)
    known = set(labels) if labels is not None else None
    sentences: list[Sentence] = []
    words: list[str] = []
    tags: list[str] = []
    first = 1

    def close(n: int) -> None:
        if words:
            if max_words and len(words) > max_words:
                raise InputError(path, f"lines {first}-{n - 1}", f"a sentence of at most {max_words:,} words")
            check_tags(tags, path, first)
            sentences.append(Sentence(f"sent-{len(sentences)}", tuple(words), tuple(tags)))
        words.clear()
        tags.clear()

    lines = read_text(path, "CoNLL").split("\n")
    for n, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            close(n)
            first = n + 1
            continue
        if line.startswith("-DOCSTART-"):  # CoNLL-2003's document marker: no word of any sentence
            continue
        cols = line.split("\t") if "\t" in line else line.split()
        word, tag = cols[0].strip(), cols[-1].strip()
        if len(cols) < 2 or not word or not tag:
            raise InputError(path, f"line {n}", f"a word and its tag separated by a tab, got {ascii(line)[:60]}")
        try:
            split_tag(tag)
        except ValueError:
            raise InputError(path, f"line {n}", f"a tag O, B-TYPE or I-TYPE, got {ascii(tag)[:40]}") from None
        if known is not None and tag not in known:
            raise InputError(path, f"line {n}", f"one of the bundle's tags, got {ascii(tag)[:40]}")
        if max_word_chars and len(word) > max_word_chars:
            raise InputError(path, f"line {n}", f"a word of at most {max_word_chars:,} characters")
        words.append(word)
        tags.append(tag)
    close(len(lines) + 1)
    if not sentences:
        raise InputError(path, "file", "at least one tagged sentence (word<TAB>tag lines)")
    return sentences


def _prf(correct: int, predicted: int, gold: int) -> dict[str, float | int]:
    p = correct / predicted if predicted else 0.0
    r = correct / gold if gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": 100 * p, "recall": 100 * r, "f1": 100 * f, "support": gold}


def score_entities(
    gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]], words: Sequence[Sequence[str]] | None = None
) -> dict[str, Any]:
    """Entity precision/recall/F1 (percent) over all sentences and per type; with ``words``, WNUT's surface-form
    scores too. ``gold[i]`` and ``predicted[i]`` tag sentence ``i`` word by word."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold and {len(predicted)} predicted sentences")
    g: set[Entity] = set()
    p: set[Entity] = set()
    for i, (gt, pt) in enumerate(zip(gold, predicted, strict=True)):
        if len(gt) != len(pt):
            raise ValueError(f"sentence {i}: {len(gt)} gold and {len(pt)} predicted tags")
        g.update(entities_of(gt, i))
        p.update(entities_of(pt, i))
    right = g & p
    out: dict[str, Any] = {**_prf(len(right), len(p), len(g)), "per_type": {}}
    for kind in sorted({e.type for e in g | p}):
        out["per_type"][kind] = _prf(
            sum(e.type == kind for e in right), sum(e.type == kind for e in p), sum(e.type == kind for e in g)
        )
    if words is not None:
        out["surface"] = _surface(g, p, right, words)
    return out


def _surface(g: Iterable[Entity], p: Iterable[Entity], right: Iterable[Entity], words: Sequence[Sequence[str]]):
    def forms(es: Iterable[Entity]) -> set[tuple[tuple[str, ...], str]]:
        return {(tuple(words[e.sentence][e.start : e.end]), e.type) for e in es}

    gold_forms, predicted_forms, right_forms = forms(g), forms(p), forms(right)
    return _prf(len(right_forms), len(predicted_forms), len(gold_forms))
