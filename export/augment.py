"""Question augmentation for distillation: new (question, context) pairs for the teacher to label.

The training subset holds about 8,000 questions. A student distilled on them stops improving after
a few epochs while its training loss keeps falling: it runs out of inputs, not capacity. For the
soft loss any input the teacher answers is a lesson, whether or not a person wrote it, so copies of
the training questions with some words changed give the student new inputs with the teacher's
answer distribution on them (the masking and replacement of Tang et al., 2019, "Distilling
task-specific knowledge from BERT into simple neural networks", and TinyBERT's augmentation). Each
word of a question copy is, independently,

* dropped with probability ``p_delete``, or
* replaced with probability ``p_replace`` by one of its ``neighbours`` nearest words by cosine in a
  bundle's word-embedding table (whole-word pieces that are common English words, from wordfreq,
  not function words: those are only dropped), keeping its capitalisation.

Question words (who, what, when, ...) and words of the gold answer are never changed, and the
contexts are not touched, so each copy keeps its gold span for the hard loss. The output is a
SQuAD v1.1 file of the copies alone (ids ``ID-augK``), for a recipe's ``data.extra_train``: it gets
its own teacher-logits cache, and the original questions' cache is reused.

A classifier's training texts are copied the same way (:func:`augment_texts`, every word may change) into a
TSV. Its label column repeats the source text's label for a reader's sake only: a replaced word can turn a
sentence's sentiment, so distillation teaches the copies with the teacher's logits alone.
"""

from __future__ import annotations

import random
import re
import string
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from edgekit.atomic import write_json
from edgekit.bundle import Bundle, load_bundle, sha256_file
from edgekit.destination import OutputKind, check_destination, replacing
from edgekit.errors import InputError
from edgekit.export.vocab import _wordpiece, english_frequencies, word_embedding_node
from edgekit.jsonfile import read_json
from edgekit.squad import load_squad

AUGMENTED = OutputKind("edgekit augmented questions", ("augment.json",), swapped=True)
QUESTION_WORDS = frozenset("who whom whose what which when where why how many much did does do is are was were".split())
FUNCTION_WORDS = 100  # English's most frequent words (the, of, in, ...): dropped at times, never replaced or used
_WORD = re.compile(r"[^\W\d_]+")  # a run of letters, any alphabet
SENTENCE_END = "?.!"


@dataclass(frozen=True)
class Augmentation:
    """How the copies were made, written next to them as ``augment.json``."""

    source: str  # the SQuAD file the questions came from
    source_sha256: str
    neighbours_from: str  # the bundle whose word embeddings rank replacements
    neighbours_sha256: str  # its model file
    questions: int  # questions (or texts) copied, a seeded sample (0: all)
    copies: int  # copies per question (or text)
    p_delete: float
    p_replace: float
    neighbours: int
    seed: int
    written: int = 0  # copies that differ from their question and were kept


def neighbour_table(bundle: Bundle, words: set[str], k: int, english_words: int = 30_000) -> dict[str, list[str]]:
    """For each of ``words`` that is one whole-word piece of ``bundle``'s vocabulary, its ``k`` nearest
    common English words by cosine of their embedding rows."""
    vocab = _wordpiece(read_json(bundle.tokenizer_path, "tokenizer"), bundle.tokenizer_path)
    model = onnx.load(str(bundle.model_path))
    name = word_embedding_node(model, bundle.model_path).input[0]
    table = numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == name)).astype(np.float32)
    table /= np.linalg.norm(table, axis=1, keepdims=True) + 1e-8
    ranked = [w for w in english_frequencies(english_words) if w.isalpha() and w.islower() and len(w) > 1]
    function_words = set(ranked[:FUNCTION_WORDS])
    cand = sorted(w for w in ranked[FUNCTION_WORDS:] if w in vocab)
    cand_rows = table[[vocab[w] for w in cand]]
    asked = sorted(w for w in words if w in vocab and w not in function_words)
    out: dict[str, list[str]] = {}
    for lo in range(0, len(asked), 1024):
        chunk = asked[lo : lo + 1024]
        sims = table[[vocab[w] for w in chunk]] @ cand_rows.T
        for w, row in zip(chunk, sims, strict=True):
            best = [cand[j] for j in np.argsort(-row)[: k + 1] if cand[j] != w][:k]
            out[w] = best
    return out


def perturb(
    question: str, keep: set[str], table: dict[str, list[str]], p_delete: float, p_replace: float, rng: random.Random
) -> str:
    """One copy of ``question``: words dropped or replaced by neighbours. Only a token that is one word
    between punctuation changes ("10th", "U.S." and "Beyonce's" stay whole), never one in ``keep`` (lower
    case) or a question word; a dropped word leaves only a sentence's closing mark behind."""
    words = []
    for token in question.split():
        core = token.strip(string.punctuation + "“”‘’")
        low = core.lower()
        if not _WORD.fullmatch(core) or low in keep or low in QUESTION_WORDS:
            words.append(token)
            continue
        r = rng.random()
        if r < p_delete:
            if words and token[-1] in SENTENCE_END:
                words[-1] += token[-1]  # "... in Paris?" loses "Paris", keeps "?"
            continue
        if r < p_delete + p_replace and table.get(low):
            new = rng.choice(table[low])
            start = token.index(core)
            token = token[:start] + (new.capitalize() if core[0].isupper() else new) + token[start + len(core) :]
        words.append(token)
    return " ".join(words)


def _record(train: Path, bundle: Bundle, settings: dict[str, Any]) -> Augmentation:
    return Augmentation(
        source=train.name,
        source_sha256=sha256_file(train),
        neighbours_from=bundle.manifest.name,
        neighbours_sha256=bundle.manifest.files[bundle.manifest.model_file].sha256,
        **settings,
    )


def _sample(n: int, k: int, rng: random.Random) -> list[int]:
    """``k`` of ``n`` indices in order, a seeded sample (all when ``k`` is 0 or at least ``n``)."""
    return sorted(rng.sample(range(n), k)) if 0 < k < n else list(range(n))


def augment_questions(train: Path, neighbours_from: Path, out: Path, **settings: Any) -> tuple[Path, Augmentation]:
    """Write ``out/questions.json`` (the copies, SQuAD v1.1) and ``out/augment.json``; returns the first and
    the record. ``settings`` are the :class:`Augmentation` fields a user chooses (questions to seed)."""
    check_settings(**settings)  # the cheap refusals first: flags, destination, the training file, then the bundle
    check_destination(out, AUGMENTED, [train, neighbours_from])
    load_squad(train)  # every problem in the file is reported with its place before anything is built
    bundle = load_bundle(neighbours_from)
    spec = _record(train, bundle, settings)
    data = read_json(train, "SQuAD JSON")
    qas = [(p, qa) for art in data["data"] for p in art["paragraphs"] for qa in p["qas"]]
    rng = random.Random(spec.seed)
    chosen = _sample(len(qas), spec.questions, rng)
    words = {w.lower() for i in chosen for w in _WORD.findall(qas[i][1]["question"])}
    table = neighbour_table(bundle, words, spec.neighbours)
    copies: dict[int, list[dict[str, Any]]] = {}
    for i in chosen:
        p, qa = qas[i]
        keep = {w.lower() for a in qa["answers"] for w in _WORD.findall(a["text"])}
        seen = {tuple(qa["question"].split())}
        for k in range(1, spec.copies + 1):
            q = perturb(qa["question"], keep, table, spec.p_delete, spec.p_replace, rng)
            if _WORD.search(q) and tuple(q.split()) not in seen:  # new words, not new spaces or a repeat
                seen.add(tuple(q.split()))
                copies.setdefault(id(p), []).append({**qa, "id": f"{qa['id']}-aug{k}", "question": q})
    written = sum(len(v) for v in copies.values())
    if written == 0:
        raise InputError(
            train, f"--p-delete {spec.p_delete} --p-replace {spec.p_replace}", "chances that change some question"
        )
    articles = []
    for art in data["data"]:
        paragraphs = [{"context": p["context"], "qas": copies[id(p)]} for p in art["paragraphs"] if id(p) in copies]
        if paragraphs:
            articles.append({"title": art["title"], "paragraphs": paragraphs})
    spec = Augmentation(**{**asdict(spec), "written": written})
    with replacing(out, AUGMENTED, [train, neighbours_from]) as tmp:
        write_json(tmp / "questions.json", {"version": "1.1", "data": articles})
        write_json(tmp / "augment.json", asdict(spec))
    return out / "questions.json", spec


def augment_texts(
    train: Path, split: str | None, neighbours_from: Path, out: Path, **settings: Any
) -> tuple[Path, Augmentation]:
    """Write ``out/texts.tsv`` (copies of a classification dataset's texts, ``sentence`` and the source's
    ``label``) and ``out/augment.json``; returns the first and the record."""
    from edgekit.tasks.classification import load_texts

    check_settings(**settings)
    check_destination(out, AUGMENTED, [train, neighbours_from])
    examples = load_texts(train, split)
    bundle = load_bundle(neighbours_from)
    spec = _record(train, bundle, settings)
    rng = random.Random(spec.seed)
    chosen = _sample(len(examples), spec.questions, rng)
    table = neighbour_table(
        bundle, {w.lower() for i in chosen for w in _WORD.findall(examples[i].text)}, spec.neighbours
    )
    rows = []
    for i in chosen:
        ex = examples[i]
        seen = {tuple(ex.text.split())}
        for _ in range(spec.copies):
            text = perturb(ex.text, set(), table, spec.p_delete, spec.p_replace, rng)
            if _WORD.search(text) and tuple(text.split()) not in seen:
                seen.add(tuple(text.split()))
                rows.append(f"{text}\t{ex.label}\n")
    if not rows:
        raise InputError(
            train, f"--p-delete {spec.p_delete} --p-replace {spec.p_replace}", "chances that change some text"
        )
    spec = Augmentation(**{**asdict(spec), "written": len(rows)})
    with replacing(out, AUGMENTED, [train, neighbours_from]) as tmp:
        (tmp / "texts.tsv").write_text("sentence\tlabel\n" + "".join(rows), encoding="utf-8")
        write_json(tmp / "augment.json", asdict(spec))
    return out / "texts.tsv", spec


def check_settings(questions: int, copies: int, p_delete: float, p_replace: float, neighbours: int, **_: Any) -> None:
    """Refuse settings out of range, one line naming the flag (before any input is read)."""
    checks = (
        (f"--questions {questions}", questions >= 0, "0 (all) or a positive number of questions"),
        (f"--copies {copies}", copies >= 1, "1 or more copies per question"),
        (f"--neighbours {neighbours}", neighbours >= 1, "1 or more replacements per word"),
        (
            f"--p-delete {p_delete} --p-replace {p_replace}",
            0 <= p_delete and 0 <= p_replace and 0 < p_delete + p_replace <= 1,
            "chances of 0 or more whose sum is above 0 and at most 1",
        ),
    )
    for flag, ok, expected in checks:
        if not ok:
            raise InputError(None, flag, expected)
