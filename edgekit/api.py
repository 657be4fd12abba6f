"""The Python API for apps: ``edgekit.load(bundle)`` returns the bundle's task as a callable pipeline.

Each pipeline takes and returns what transformers' ``pipeline`` for that task does, so an app on a device swaps
``pipeline("question-answering", ...)`` for ``edgekit.load(...)`` and keeps its code, without torch:

- extractive QA: ``qa(question=..., context=...)`` -> ``{"score", "start", "end", "answer"}``; lists of questions
  and contexts give a list. ``score`` is transformers' too: the start probability times the end probability,
  each a softmax over the [CLS] and context tokens of the window the answer is in.
- text classification: ``clf("text")`` -> ``[{"label", "score"}]``, a list of texts one dict per text (the best
  label); ``top_k=None`` gives every label, best first (a list per text).

The answers are the runner's: the same windows, decoding and runtimes as ``edgekit run``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.backends import RuntimeOptions, open_backend
from edgekit.bundle import load_bundle
from edgekit.errors import EdgekitError
from edgekit.tasks.classification import TASK as CLASSIFICATION
from edgekit.tasks.classification import TextClassifier
from edgekit.tasks.qa import QA, QAModel


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


class QuestionAnswering:
    """An extractive-QA bundle called as transformers' question-answering pipeline."""

    def __init__(self, model: QAModel) -> None:
        self.model = model

    def __call__(self, question: str | Sequence[str], context: str | Sequence[str]) -> dict[str, Any] | list:
        if isinstance(question, str) != isinstance(context, str):
            raise EdgekitError("question and context: expected two strings or two lists of the same length")
        if isinstance(question, str):
            return self._one(question, str(context))
        if len(question) != len(context):
            raise EdgekitError(f"{len(question)} questions and {len(context)} contexts: expected as many of each")
        return [self._one(q, c) for q, c in zip(question, context, strict=True)]

    def _one(self, question: str, context: str) -> dict[str, Any]:
        span = self.model.answer(question, context)
        score = 0.0
        if span.window >= 0:
            windows, starts, ends = self.model.last_outputs
            ctx = np.array([o is not None for o in windows[span.window].context_offsets])
            ctx[0] = True  # the [CLS] token: transformers keeps it in the softmax (a null answer's place)
            n = len(ctx)
            p_start = np.zeros(n)
            p_end = np.zeros(n)
            p_start[ctx] = _softmax(np.asarray(starts[span.window][:n], dtype=np.float64)[ctx])
            p_end[ctx] = _softmax(np.asarray(ends[span.window][:n], dtype=np.float64)[ctx])
            score = float(p_start[span.start_token] * p_end[span.end_token])
        return {"score": score, "start": span.start_char, "end": span.end_char, "answer": span.text}


class TextClassification:
    """A text-classification bundle called as transformers' text-classification pipeline."""

    def __init__(self, model: TextClassifier) -> None:
        self.model = model

    def __call__(self, inputs: str | Sequence[str], top_k: int | None = 1) -> list:
        if top_k is not None and top_k < 1:
            raise EdgekitError(f"top_k={top_k}: expected a positive count, or None for every label")
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        out = [self._one(t, top_k) for t in texts]
        # transformers: one text and top_k=1 give [dict]; a list gives one dict per text, or a list per text
        if top_k == 1:
            return [o[0] for o in out]
        return out[0] if isinstance(inputs, str) else out

    def _one(self, text: str, top_k: int | None) -> list[dict[str, Any]]:
        p = self.model.probabilities(text)
        order = np.argsort(-p, kind="stable")[: top_k or len(p)]
        return [{"label": self.model.labels[i], "score": float(p[i])} for i in order]


def load(
    bundle: str | Path, threads: int | None = None, backend: str | None = None, low_memory: bool = False
) -> QuestionAnswering | TextClassification:
    """The bundle's task as a pipeline. ``backend``: None (the format's own runtime) or a runtime by name
    (``onnxruntime``, ``openvino``, ``openvino-bf16``, ``litert``); ``auto`` is the runner's, which picks by
    running a dataset (``edgekit run --backend auto``)."""
    if backend == "auto":
        raise EdgekitError("backend 'auto': expected a runtime by name; edgekit run --backend auto shows the pick")
    options = RuntimeOptions(threads=threads, low_memory=low_memory, backend=backend)
    loaded = load_bundle(bundle)
    task = loaded.manifest.task
    if task == QA.name:
        return QuestionAnswering(QAModel(loaded, loaded.tokenizer(), open_backend(loaded, options)))
    if task == CLASSIFICATION:
        return TextClassification(TextClassifier(loaded, loaded.tokenizer(), open_backend(loaded, options)))
    raise EdgekitError(f"{bundle}: a {task} bundle; edgekit.load knows {QA.name} and {CLASSIFICATION}")
