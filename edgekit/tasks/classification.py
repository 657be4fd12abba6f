"""Text classification data and metrics on the device: light readers, the model call's input, the scores.

Two formats are read, each with its own light reader (no pandas, no ``datasets`` on a Pi):

- a **TSV** with a header naming a text column (``sentence`` or ``text``) and a ``label`` column, as GLUE's
  SST-2 ``train.tsv``/``dev.tsv``: one example per row, ids ``line-N`` (N the file's line number);
- **CLINC150's JSON** (``data_full.json`` and its siblings): one object of splits, each a list of
  ``[utterance, intent]`` pairs. Split ``test`` is ``test`` followed by ``oos_test`` (the out-of-scope
  queries, intent ``oos``), as the CLINC150 paper evaluates; ids ``test-N`` and ``oos_test-N``.

Scores: accuracy and macro-F1 (the unweighted mean of per-label F1 over every label in the gold or the
predicted labels, as scikit-learn's ``f1_score(average="macro")``); where the label set holds CLINC150's
``oos``, also its paper's **in-scope accuracy** (accuracy over the in-scope queries, a query predicted
``oos`` counting as wrong) and **out-of-scope recall** (the share of out-of-scope queries predicted ``oos``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.backends import Backend, RuntimeOptions, check_finite, open_backend
from edgekit.bundle import Bundle, Manifest, load_bundle
from edgekit.errors import BundleError, InputError
from edgekit.features import TruncatingTokenizer, row_feeds
from edgekit.jsonfile import read_json, read_text
from edgekit.result import Examples, Percent
from edgekit.squad import resolve_data_path
from edgekit.timing import Stopwatch

TASK = "text-classification"
OOS = "oos"
TEXT_COLUMNS = ("sentence", "text")
MAX_TEXT_CHARS = 100_000  # one example's text; a longer one is truncated to max_seq_len tokens anyway
CLINC_SPLITS = ("train", "val", "test")


@dataclass(frozen=True, slots=True)
class TextExample:
    """One text with its gold label name ('' when the data has none)."""

    id: str
    text: str
    label: str


def _check_text(text: str, path: Path, where: str) -> str:
    if not text.strip():
        raise InputError(path, where, "a non-empty text")
    if len(text) > MAX_TEXT_CHARS:
        raise InputError(path, where, f"a text of at most {MAX_TEXT_CHARS:,} characters, got {len(text):,}")
    return text


def read_tsv(path: str | Path) -> list[TextExample]:
    """A TSV with a header: a text column (``sentence`` or ``text``) and ``label``; every row complete."""
    path = Path(path)
    lines = read_text(path, "TSV").split("\n")
    while lines and not lines[-1].rstrip("\r"):  # the empty lines a file may end with
        lines.pop()
    if not lines:
        raise InputError(path, "line 1", f"a header naming a text column ({' or '.join(TEXT_COLUMNS)}) and 'label'")
    header = [c.strip() for c in lines[0].rstrip("\r").split("\t")]
    text_col = next((header.index(c) for c in TEXT_COLUMNS if c in header), None)
    if text_col is None or "label" not in header:
        raise InputError(
            path,
            "line 1 (header)",
            f"tab-separated column names with a text column ({' or '.join(TEXT_COLUMNS)}) and 'label', "
            f"got {header[:4]!r}",
        )
    label_col = header.index("label")
    examples = []
    for n, line in enumerate(lines[1:], start=2):
        cells = line.rstrip("\r").split("\t")
        if len(cells) != len(header):
            raise InputError(
                path, f"line {n}", f"{len(header)} tab-separated columns as the header has, got {len(cells)}"
            )
        text = _check_text(cells[text_col], path, f"line {n} column '{header[text_col]}'")
        label = cells[label_col].strip()
        if not label:
            raise InputError(path, f"line {n} column 'label'", "a label")
        examples.append(TextExample(f"line-{n}", text, label))
    if not examples:
        raise InputError(path, "line 2", "at least one example after the header")
    return examples


def read_clinc(path: str | Path, split: str | None = None) -> list[TextExample]:
    """CLINC150's JSON: the split's ``[utterance, intent]`` pairs, then those of ``oos_<split>`` when present.
    Without a split: ``test``, or the one split of a file that holds one (as ``edgekit.export.hfdata`` writes)."""
    path = Path(path)
    obj = read_json(path, "CLINC150 JSON")
    if not isinstance(obj, dict) or not (split in obj or any(k in obj for k in CLINC_SPLITS) or len(obj) == 1):
        raise InputError(path, "top level", f"a JSON object of splits ({', '.join(CLINC_SPLITS)}, oos_...)")
    if split is None:
        split = next(iter(obj)) if len(obj) == 1 else "test"
    if split not in obj:
        have = sorted(k for k in obj if not k.startswith("oos_"))
        raise InputError(path, f"split {split!r}", f"one of the file's splits {have}")
    examples = []
    for key in (split, f"oos_{split}"):
        pairs = obj.get(key, [])
        if not isinstance(pairs, list):
            raise InputError(path, f"field '{key}'", "a list of [utterance, intent] pairs")
        for i, pair in enumerate(pairs):
            where = f"field '{key}'[{i}]"
            if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, str) for v in pair)):
                raise InputError(path, where, "an [utterance, intent] pair of two strings")
            text, label = pair
            _check_text(text, path, f"{where} utterance")
            if not label.strip():
                raise InputError(path, f"{where} intent", "an intent name")
            examples.append(TextExample(f"{key}-{i}", text, label.strip()))
    if not examples:
        raise InputError(path, f"field '{split}'", "at least one [utterance, intent] pair")
    return examples


def load_texts(path: str | Path, split: str | None = None) -> list[TextExample]:
    """A classification dataset by its format: ``.tsv`` (no split), ``.json`` CLINC150 (split, default ``test``);
    ``packaged:clinc150`` is the shipped CLINC150 excerpt."""
    path = resolve_data_path(str(path), Path(path))
    suffix = path.suffix.lower()
    if suffix == ".tsv":
        if split:
            raise InputError(path, f"split {split!r}", "no split for a TSV file (one file is one split)")
        return read_tsv(path)
    if suffix == ".json":
        return read_clinc(path, split or None)
    raise InputError(
        path,
        "file name",
        "a classification dataset: .tsv (sentence/text and label columns) or CLINC150 .json (other formats: "
        "edgekit export dataset on a workstation writes one)",
    )


def label_set(examples: Sequence[TextExample]) -> list[str]:
    """The labels of a training set, sorted (numerically when every one is a number, as SST-2's 0/1)."""
    names = {ex.label for ex in examples}
    if all(n.lstrip("-").isdigit() for n in names):
        return sorted(names, key=int)
    return sorted(names)


def check_labels(examples: Sequence[TextExample], labels: Sequence[str], path: str | Path) -> None:
    """Every gold label is one the model knows; refused with the first example that is not."""
    known = set(labels)
    for ex in examples:
        if ex.label not in known:
            shown = ", ".join(list(labels)[:6]) + (", ..." if len(labels) > 6 else "")
            raise InputError(path, f"example {ex.id} label {ex.label!r}", f"one of the model's labels ({shown})")


@dataclass
class TextTokenizer(TruncatingTokenizer):
    """One text per input, cut to ``max_seq_len`` tokens (special tokens included)."""

    def feeds(self, text: str, input_names: Sequence[str], pad_to: int | None = None) -> dict[str, np.ndarray]:
        """The model's inputs for one text, [1, n]; ``pad_to`` pads to a fixed length (TFLite)."""
        return row_feeds(self.tokenizer.encode(text).ids, input_names, pad_to)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class ClassificationScore:
    """Scores of predictions against gold labels, in percent; the CLINC150 pair where the labels hold ``oos``.
    Also the schema of these fields in a metrics.json read back (``ClassificationTask.scores``)."""

    accuracy: Percent
    macro_f1: Percent
    n_examples: Examples
    in_scope_accuracy: Percent | None = None
    oos_recall: Percent | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def score(gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str] = ()) -> ClassificationScore:
    """Accuracy and macro-F1 (scikit-learn's definition); in-scope accuracy and out-of-scope recall when
    ``oos`` is among ``labels`` or the gold labels."""
    if len(gold) != len(predicted) or not gold:
        raise ValueError(f"{len(gold)} gold labels and {len(predicted)} predictions: expected as many, at least one")
    pairs = list(zip(gold, predicted, strict=True))
    correct = sum(g == p for g, p in pairs)
    tp = Counter(g for g, p in pairs if g == p)
    n_gold, n_pred = Counter(gold), Counter(predicted)
    f1s = []
    for label in set(n_gold) | set(n_pred):
        # F1 = 2TP / (2TP + FP + FN), 0 where a label is never right (scikit-learn's zero_division default)
        denom = n_gold[label] + n_pred[label]
        f1s.append(2 * tp[label] / denom if denom else 0.0)
    result = ClassificationScore(100.0 * correct / len(pairs), 100.0 * sum(f1s) / len(f1s), len(pairs))
    if OOS not in labels and OOS not in n_gold:
        return result
    in_scope = [(g, p) for g, p in pairs if g != OOS]
    out_scope = [p for g, p in pairs if g == OOS]
    return ClassificationScore(
        result.accuracy,
        result.macro_f1,
        result.n_examples,
        100.0 * sum(g == p for g, p in in_scope) / len(in_scope) if in_scope else 0.0,
        100.0 * sum(p == OOS for p in out_scope) / len(out_scope) if out_scope else 0.0,
    )


@dataclass
class TextClassifier:
    """A classification bundle made ready: tokenizer, runtime, the label names in logit order."""

    bundle: Bundle
    tokenizer: TextTokenizer
    backend: Backend
    last_model_ms: float = 0.0

    @classmethod
    def load(cls, bundle_path: str | Path, options: RuntimeOptions | None = None) -> TextClassifier:
        bundle = load_bundle(bundle_path)
        if bundle.manifest.task != TASK:
            raise BundleError(
                bundle.path / "manifest.json", "field 'task'", f"a {TASK} bundle, got {bundle.manifest.task!r}"
            )
        return cls(bundle, bundle.tokenizer(), open_backend(bundle, options or RuntimeOptions()))

    @property
    def labels(self) -> list[str]:
        return self.bundle.manifest.labels

    def probabilities(self, text: str) -> np.ndarray:
        """Softmax over the labels for one text (truncated to the bundle's max_seq_len tokens)."""
        m = self.bundle.manifest
        feeds = self.tokenizer.feeds(text, m.input_names, self.backend.fixed_seq_len)
        watch = Stopwatch()
        with watch.time():
            (logits,) = check_finite(self.bundle, self.backend(feeds))
        self.last_model_ms = watch.ms
        return softmax(logits[0])

    def predict(self, example: TextExample) -> dict[str, Any]:
        p = self.probabilities(example.text)
        best = int(np.argmax(p))
        return {"label": self.labels[best], "confidence": round(float(p[best]), 6)}


class ClassificationTask:
    """A text in, one of the bundle's labels out; accuracy and macro-F1 (and CLINC150's pair)."""

    name = TASK
    scores = ClassificationScore
    headline = "accuracy"
    example_noun = "examples"
    record_fields: Mapping[str, type | tuple[type, ...]] = {"label": str, "confidence": (int, float)}

    def check_manifest(self, m: Manifest, path: Path) -> None:
        if len(m.output_names) != 1:
            raise BundleError(path, "field 'output_names'", "one output: the label logits")
        labels = m.labels
        if len(labels) < 2 or not all(isinstance(x, str) and x.strip() and x == x.strip() for x in labels):
            raise BundleError(path, "field 'labels'", "two or more label names, each non-empty text")
        if len(set(labels)) != len(labels):
            dup = next(x for x in labels if labels.count(x) > 1)
            raise BundleError(path, "field 'labels'", f"each label name once, got {dup!r} twice")
        if m.max_seq_len < 2:
            raise BundleError(path, "field 'max_seq_len'", f"at least 2 tokens, got {m.max_seq_len}")

    def probe_outputs(self, m: Manifest, seq_len: int) -> list[tuple[int, ...]]:
        return [(1, len(m.labels))]

    def load_examples(self, path: Path, split: str | None, m: Manifest, gold: bool = True) -> list[TextExample]:
        # gold kept either way: one label per example
        examples = load_texts(path, split)
        check_labels(examples, m.labels, path)
        return examples

    def load_model(self, bundle_path: str | Path, options: RuntimeOptions, n_best: int) -> TextClassifier:
        return TextClassifier.load(bundle_path, options)

    def identity(self, m: Manifest, n_best: int) -> dict[str, Any]:
        return {"max_seq_len": m.max_seq_len, "labels": list(m.labels)}

    def check_record(self, record: Mapping[str, Any], m: Manifest, example: TextExample | None) -> None:
        if record["label"] not in m.labels:
            raise ValueError(f"a label of the bundle's, got {record['label']!r}")

    def prediction(self, record: Mapping[str, Any]) -> str:
        return record["label"]

    def score(self, examples: Sequence[TextExample], predictions: Mapping[str, Any], m: Manifest) -> dict[str, Any]:
        answered = [ex for ex in examples if ex.id in predictions]
        if not answered:
            raise InputError(None, "dataset", "at least one example to score")
        s = score([ex.label for ex in answered], [predictions[ex.id] for ex in answered], m.labels)
        return {**s.as_dict(), "n_answered": len(answered)}

    def summary(self, metrics: Mapping[str, Any]) -> str:
        line = f"accuracy {metrics['accuracy']:.2f}  macro-F1 {metrics['macro_f1']:.2f}"
        if "in_scope_accuracy" in metrics:
            line += f"  in-scope {metrics['in_scope_accuracy']:.2f}  oos recall {metrics['oos_recall']:.2f}"
        return f"{line}  on {metrics['n_examples']} examples"


CLASSIFICATION = ClassificationTask()
