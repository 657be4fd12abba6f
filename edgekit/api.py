"""The Python API for apps: ``edgekit.load(bundle)`` returns the bundle's task as a callable pipeline.

Each pipeline takes and returns what transformers' ``pipeline`` for that task does, so an app on a device swaps
``pipeline("question-answering", ...)`` for ``edgekit.load(...)`` and keeps its code, without torch:

- extractive QA: ``qa(question=..., context=...)`` (or ``qa({"question": ..., "context": ...})``) ->
  ``{"score", "start", "end", "answer"}``; lists give a list, one string beside a list is used for every item.
  ``score`` is transformers' too: the start probability times the end probability, each a softmax over the
  [CLS] and context tokens of the window the answer is in. A context of one window gets transformers' answer; over
  several windows the runner's rule picks it (the best start + end logits over all windows, where transformers
  compares probabilities normalized per window), so a long context's answer can differ.
- text classification: ``clf("text")`` -> ``[{"label", "score"}]``, a list of texts one dict per text (the best
  label); ``top_k=None`` gives every label, best first (a list per text).
- token classification: ``ner("text")`` -> ``[{"entity_group", "score", "word", "start", "end"}]``, as
  ``aggregation_strategy="first"`` gives them: each word takes the tag of its first sub-word (score: that tag's
  probability there), words are grouped as transformers groups them (a ``B-`` or another type starts a group) and
  ``O`` groups are left out; ``score`` is the group's mean. Words are the tokenizer's own (its pre-tokenizer's
  splits of the text); transformers' fallback that joins an unknown-token word to the word before it is not copied.

The answers are the runner's: the same windows, decoding and runtimes as ``edgekit run``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.backends import RuntimeOptions, open_backend
from edgekit.bundle import load_bundle
from edgekit.errors import EdgekitError
from edgekit.tasks.classification import TASK as CLASSIFICATION
from edgekit.tasks.classification import TextClassifier, softmax
from edgekit.tasks.qa import QA, QAModel
from edgekit.tasks.tokens import TASK as TOKENS
from edgekit.tasks.tokens import Tagger


def _texts(value: Any, name: str) -> list[str]:
    """``value`` as a list of strings (a string is a list of one); anything else one line naming ``name``."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, Sequence) or not items or not all(isinstance(t, str) for t in items):
        raise EdgekitError(f"{name}: expected a string or a non-empty list of strings, got {ascii(value)[:40]}")
    return list(items)


class QuestionAnswering:
    """An extractive-QA bundle called as transformers' question-answering pipeline."""

    def __init__(self, model: QAModel) -> None:
        self.model = model

    def __call__(
        self,
        inputs: Mapping[str, str] | Sequence[Mapping[str, str]] | None = None,
        question: str | Sequence[str] | None = None,
        context: str | Sequence[str] | None = None,
        top_k: int = 1,
    ) -> dict[str, Any] | list:
        if top_k != 1:
            raise EdgekitError(f"top_k={top_k}: expected 1 (edgekit answers with the best span)")
        if inputs is not None:  # transformers' dict form, one or a list
            items = [inputs] if isinstance(inputs, Mapping) else list(inputs)
            if not all(isinstance(i, Mapping) and {"question", "context"} <= set(i) for i in items):
                raise EdgekitError("inputs: expected {'question': ..., 'context': ...} or a list of them")
            answers = [self._one(i["question"], i["context"]) for i in items]
            return answers[0] if isinstance(inputs, Mapping) else answers
        one = isinstance(question, str) and isinstance(context, str)
        questions, contexts = _texts(question, "question"), _texts(context, "context")
        if len(questions) == 1 and len(contexts) > 1:
            questions *= len(contexts)
        if len(contexts) == 1 and len(questions) > 1:
            contexts *= len(questions)
        if len(questions) != len(contexts):
            raise EdgekitError(f"{len(questions)} questions and {len(contexts)} contexts: expected as many of each")
        answers = [self._one(q, c) for q, c in zip(questions, contexts, strict=True)]
        return answers[0] if one else answers

    def _one(self, question: str, context: str) -> dict[str, Any]:
        for name, text in (("question", question), ("context", context)):
            if not isinstance(text, str) or not text.strip():
                raise EdgekitError(f"{name}: expected non-empty text, got {ascii(text)[:40]}")
        span = self.model.answer(question, context)
        score = 0.0
        if span.window >= 0:
            windows, starts, ends = self.model.last_outputs
            ctx = np.array([o is not None for o in windows[span.window].context_offsets])
            ctx[0] = True  # the [CLS] token: transformers keeps it in the softmax (a null answer's place)
            n = len(ctx)
            p_start = np.zeros(n)
            p_end = np.zeros(n)
            p_start[ctx] = softmax(np.asarray(starts[span.window][:n], dtype=np.float64)[ctx])
            p_end[ctx] = softmax(np.asarray(ends[span.window][:n], dtype=np.float64)[ctx])
            score = float(p_start[span.start_token] * p_end[span.end_token])
        return {"score": score, "start": span.start_char, "end": span.end_char, "answer": span.text}


class TextClassification:
    """A text-classification bundle called as transformers' text-classification pipeline."""

    def __init__(self, model: TextClassifier) -> None:
        self.model = model

    def __call__(self, inputs: str | Sequence[str], top_k: int | None = 1) -> list:
        if top_k is not None and top_k < 1:
            raise EdgekitError(f"top_k={top_k}: expected a positive count, or None for every label")
        texts = _texts(inputs, "inputs")
        out = [self._one(t, top_k) for t in texts]
        # transformers: one text and top_k=1 give [dict]; a list gives one dict per text, or a list per text
        if top_k == 1:
            return [o[0] for o in out]
        return out[0] if isinstance(inputs, str) else out

    def _one(self, text: str, top_k: int | None) -> list[dict[str, Any]]:
        p = self.model.probabilities(text)
        order = np.argsort(-p, kind="stable")[: top_k or len(p)]
        return [{"label": self.model.labels[i], "score": float(p[i])} for i in order]


class TokenClassification:
    """A token-classification bundle called as transformers' token-classification pipeline with
    ``aggregation_strategy="first"``."""

    def __init__(self, model: Tagger) -> None:
        self.model = model
        # the text's own words: the bundle's tokenizer over the whole text, without the windows' truncation
        self.words_of = type(model.tokenizer.tokenizer).from_str(model.tokenizer.tokenizer.to_str())
        self.words_of.no_truncation()

    def __call__(self, inputs: str | Sequence[str]) -> list:
        texts = _texts(inputs, "inputs")
        out = [self._one(t) for t in texts]
        return out[0] if isinstance(inputs, str) else out

    def _one(self, text: str) -> list[dict[str, Any]]:
        enc = self.words_of.encode(text, add_special_tokens=False)
        spans: dict[int, list[int]] = {}  # word -> its tokens
        for i, w in enumerate(enc.word_ids):
            if w is not None:
                spans.setdefault(w, []).append(i)
        words = [toks for _, toks in sorted(spans.items())]
        if not words:
            return []
        logits = self.model.word_logits([text[enc.offsets[t[0]][0] : enc.offsets[t[-1]][1]] for t in words])
        probs = softmax(logits)
        groups: list[tuple[str, list[int]]] = []  # (type, word indexes)
        for i, p in enumerate(probs):
            tag = self.model.labels[int(p.argmax())]
            prefix, kind = ("I", "O") if tag == "O" else tag.split("-", 1)
            if groups and groups[-1][0] == kind and prefix == "I":
                groups[-1][1].append(i)
            else:
                groups.append((kind, [i]))
        decoder = self.words_of.decoder
        out = []
        for kind, members in groups:
            if kind == "O":
                continue
            tokens = [enc.tokens[t] for w in members for t in words[w]]
            out.append(
                {
                    "entity_group": kind,
                    "score": float(np.mean([probs[w].max() for w in members])),
                    "word": decoder.decode(tokens) if decoder is not None else " ".join(tokens),
                    "start": enc.offsets[words[members[0]][0]][0],
                    "end": enc.offsets[words[members[-1]][-1]][1],
                }
            )
        return out


def load(
    bundle: str | Path, threads: int | None = None, backend: str | None = None, low_memory: bool = False
) -> QuestionAnswering | TextClassification | TokenClassification:
    """The bundle's task as a pipeline. ``backend``: None (the format's own runtime) or a runtime by name
    (``onnxruntime``, ``openvino``, ``openvino-bf16``, ``litert``); ``auto`` is the runner's, which picks by
    running a dataset (``edgekit run --backend auto``)."""
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)):
        raise EdgekitError(f"threads={threads!r}: expected a whole number of threads, or None")
    if backend == "auto":
        raise EdgekitError("backend 'auto': expected a runtime by name; edgekit run --backend auto shows the pick")
    options = RuntimeOptions(threads=threads, low_memory=low_memory, backend=backend)
    loaded = load_bundle(bundle)
    task = loaded.manifest.task
    if task == QA.name:
        return QuestionAnswering(QAModel(loaded, loaded.tokenizer(), open_backend(loaded, options)))
    if task == CLASSIFICATION:
        return TextClassification(TextClassifier(loaded, loaded.tokenizer(), open_backend(loaded, options)))
    if task == TOKENS:
        return TokenClassification(Tagger(loaded, loaded.tokenizer(), open_backend(loaded, options)))
    raise EdgekitError(f"{bundle}: a {task} bundle; edgekit.load knows {QA.name}, {CLASSIFICATION} and {TOKENS}")
