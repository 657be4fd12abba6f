"""Extractive QA (SQuAD v1.1) on the device: windows over the context, the best span, the official EM/F1."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.backends import Backend, RuntimeOptions, check_finite, open_backend
from edgekit.bundle import Bundle, Manifest, load_bundle
from edgekit.decode import DEFAULT_N_BEST, Span, best_span
from edgekit.errors import BundleError, EdgekitError, InputError
from edgekit.features import QATokenizer, Window, batch_inputs, check_window_settings
from edgekit.metric import evaluate
from edgekit.result import Examples, Percent
from edgekit.squad import MAX_CONTEXT_CHARS, Example, load_squad
from edgekit.timing import Stopwatch

# Windows go to the runtime one per call. Batching them saves nothing on a CPU and costs both ways: a batch
# is padded to its longest window, and its activations (attention grows with windows x length^2) set the
# peak memory (docs/runner.md, "Windows", has what was measured).


@dataclass
class QAModel:
    """A bundle made ready to answer: tokenizer, runtime session and decoding settings."""

    bundle: Bundle
    tokenizer: QATokenizer
    backend: Backend
    n_best: int = DEFAULT_N_BEST
    # the last call's stages (to separate runner overhead from the model; benchmarks.stages), windows, tokens
    last_tokenize_ms: float = 0.0
    last_model_ms: float = 0.0
    last_decode_ms: float = 0.0
    last_windows: int = 0
    last_tokens: int = 0
    # the last question's windows and their start and end logits (edgekit.api scores its answer from them)
    last_outputs: tuple[list[Window], list[np.ndarray], list[np.ndarray]] = ([], [], [])

    @classmethod
    def load(
        cls, bundle_path: str | Path, options: RuntimeOptions | None = None, n_best: int = DEFAULT_N_BEST
    ) -> QAModel:
        options = options or RuntimeOptions()
        bundle = load_bundle(bundle_path)
        if bundle.manifest.task != QA.name:
            raise BundleError(
                bundle.path / "manifest.json", "field 'task'", f"an {QA.name} bundle, got {bundle.manifest.task!r}"
            )
        return cls(bundle, bundle.tokenizer(), open_backend(bundle, options), n_best)

    def answer(self, question: str, context: str) -> Span:
        """Tokenize into windows, run them one at a time, decode the best span."""
        m = self.bundle.manifest
        if len(context) > MAX_CONTEXT_CHARS:
            raise InputError(None, "context", f"at most {MAX_CONTEXT_CHARS:,} characters, got {len(context):,}")
        tokenize, model, decode = Stopwatch(), Stopwatch(), Stopwatch()
        with tokenize.time():
            windows = self.tokenizer.windows(question, context)
        start: list[np.ndarray] = []
        end: list[np.ndarray] = []
        with model.time():
            for w in windows:
                feeds = batch_inputs([w], m.input_names, m.pad_id, self.backend.fixed_seq_len)
                s, e = check_finite(self.bundle, self.backend(feeds))
                start.append(s[0])
                end.append(e[0])
        with decode.time():
            span = best_span(context, windows, start, end, self.n_best, m.max_answer_len)
        self.last_tokenize_ms, self.last_model_ms, self.last_decode_ms = tokenize.ms, model.ms, decode.ms
        self.last_windows, self.last_tokens = len(windows), sum(len(w) for w in windows)
        self.last_outputs = (windows, start, end)
        return span

    def predict(self, example: Example) -> dict[str, Any]:
        span = self.answer(example.question, example.context)
        return {
            "answer": span.text,
            "start_char": span.start_char,
            "confidence": round(span.confidence, 6),
            "windows": self.last_windows,
        }


@dataclass(frozen=True)
class QAScores:
    """The scores a QA run's metrics.json holds (checked when it is read back)."""

    exact_match: Percent
    f1: Percent
    n_questions: Examples


class QATask:
    """SQuAD v1.1: a question and its context in, a span of the context out; EM/F1 by the official rules."""

    name = "extractive-qa"
    scores = QAScores
    headline = "f1"
    example_noun = "questions"
    record_fields: Mapping[str, type | tuple[type, ...]] = {
        "answer": str,
        "start_char": int,
        "confidence": (int, float),
        "windows": int,
    }

    def check_manifest(self, m: Manifest, path: Path) -> None:
        if len(m.output_names) != 2:
            raise BundleError(path, "field 'output_names'", "two outputs: start and end logits")
        if m.labels:
            raise BundleError(path, "field 'labels'", "no labels for an extractive-QA bundle")
        if m.max_answer_len < 1:
            raise BundleError(
                path, "field 'max_answer_len'", f"an answer length of at least 1 token, got {m.max_answer_len!r}"
            )
        try:
            check_window_settings(m.max_seq_len, m.doc_stride)
        except EdgekitError as exc:
            raise BundleError(
                path, "fields 'max_seq_len'/'doc_stride'", f"settings that fit together ({exc})"
            ) from None

    def probe_outputs(self, m: Manifest, seq_len: int) -> list[tuple[int, ...]]:
        return [(1, seq_len), (1, seq_len)]

    def load_examples(self, path: Path, split: str | None, m: Manifest, gold: bool = True) -> list[Example]:
        if split:
            raise InputError(path, f"split {split!r}", "no split for a SQuAD file (one file is one split)")
        if path.suffix.lower() in (".parquet", ".csv", ".tsv", ".jsonl"):
            raise InputError(
                path, "file name", "a SQuAD v1.1 JSON file (other formats: edgekit export dataset on a workstation)"
            )
        return load_squad(path, keep_answers=gold)

    def load_model(self, bundle_path: str | Path, options: RuntimeOptions, n_best: int) -> QAModel:
        return QAModel.load(bundle_path, options, n_best)

    def identity(self, m: Manifest, n_best: int) -> dict[str, Any]:
        return {
            "max_seq_len": m.max_seq_len,
            "doc_stride": m.doc_stride,
            "max_answer_len": m.max_answer_len,
            "n_best": n_best,
        }

    def check_record(self, record: Mapping[str, Any], m: Manifest, example: Example | None) -> None:
        start, answer = record["start_char"], record["answer"]
        if not answer and (start != 0 or record["confidence"] != 0):
            raise ValueError("start_char 0 and confidence 0 with an empty answer (no span found)")
        if example is not None and example.context[start : start + len(answer)] != answer:
            raise ValueError(f"an answer that its context holds at start_char {start}")

    def prediction(self, record: Mapping[str, Any]) -> str:
        return record["answer"]

    def score(self, examples: Sequence[Example], predictions: Mapping[str, Any], m: Manifest) -> dict[str, Any]:
        s = evaluate(examples, predictions)
        return {"exact_match": s.exact_match, "f1": s.f1, "n_questions": s.total, "n_answered": s.answered}

    def summary(self, metrics: Mapping[str, Any]) -> str:
        return f"EM {metrics['exact_match']:.2f}  F1 {metrics['f1']:.2f}  on {metrics['n_questions']} questions"


QA = QATask()
