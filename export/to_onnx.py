"""PyTorch model (QA, text or token classification) -> ONNX edge bundle, validated against PyTorch on real examples.

Follows Optimum's exporter pattern (convert, then validate outputs within atol)
with ``torch.onnx.export`` (TorchScript-based exporter, opset 17, dynamic batch
and sequence axes): it handles every transformers encoder, and ONNX Runtime runs
its graph faster than the dynamo exporter's (docs/export.md).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer

from edgekit.backends import RuntimeOptions, open_backend
from edgekit.bundle import Bundle, Manifest, bundle_scratch, fill_bundle, load_bundle
from edgekit.decode import best_span
from edgekit.errors import EdgekitError, InputError
from edgekit.export.models import LoadedQA
from edgekit.features import DEFAULT_DOC_STRIDE, DEFAULT_MAX_SEQ_LEN, QATokenizer, batch_inputs
from edgekit.squad import Example

OUTPUT_NAMES = ["start_logits", "end_logits"]
CLASSIFIER_OUTPUTS = ["logits"]
# the logits of a batch (QA: start and end of windows), from whatever the artifact is checked against
Reference = Callable[[dict[str, np.ndarray]], tuple[np.ndarray, ...]]
DEFAULT_ATOL = 1e-3


class _LogitsOnly(torch.nn.Module):
    """Wraps a HF model so the graph takes inputs positionally and returns its logits as plain tensors
    (QA: start and end; a classifier: one)."""

    def __init__(self, model: torch.nn.Module, input_names: list[str], output_names: list[str]) -> None:
        super().__init__()
        self.model = model
        self.input_names = input_names
        self.output_names = output_names

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(**dict(zip(self.input_names, inputs, strict=True)))
        return tuple(getattr(out, name) for name in self.output_names)


def output_names_of(qa: LoadedQA) -> list[str]:
    """The graph's outputs: start/end logits of a QA model, the logits of a classifier or tagger."""
    return list(CLASSIFIER_OUTPUTS if labels_of(qa) else OUTPUT_NAMES)


# the model class's suffix -> the manifest's task and Optimum's name of it
HEADS = {
    "ForQuestionAnswering": ("extractive-qa", "question-answering"),
    "ForSequenceClassification": ("text-classification", "text-classification"),
    "ForTokenClassification": ("token-classification", "token-classification"),
}


def task_of(qa: LoadedQA) -> str:
    """The manifest task of the model's head (``edgekit.tasks``)."""
    name = type(qa.model).__name__
    return next((task for suffix, (task, _) in HEADS.items() if name.endswith(suffix)), "extractive-qa")


def labels_of(qa: LoadedQA) -> list[str]:
    """A classifier's label names (a tagger's tags) in logit order (its config's id2label); empty for QA."""
    if task_of(qa) == "extractive-qa":
        return []
    id2label = qa.model.config.id2label
    return [str(id2label[i]) for i in range(len(id2label))]


MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _optimum_inputs(config: Any, task: str = "question-answering") -> set[str] | None:
    """The inputs Optimum's ONNX configuration for this model type declares (None: it has none).

    Optimum knows per architecture what the model reads: e.g. DeBERTa-v2/v3 with ``type_vocab_size = 0``
    ignores token types, so its graph would have no such input."""
    try:
        import optimum.exporters.onnx.model_configs  # noqa: F401  (registers the configurations)
        from optimum.exporters.tasks import TasksManager

        make = TasksManager.get_exporter_config_constructor(
            exporter="onnx", model_type=config.model_type, task=task, library_name="transformers"
        )
        return set(make(config).inputs)
    except (ImportError, KeyError, ValueError):
        return None


def check_tokenizer(qa: LoadedQA) -> None:
    """Refuse, in one line, a tokenizer that cannot serve the model: ids beyond its embedding, or a pair
    encoding without special tokens of its own (a template naming tokens its vocabulary lacks turns them
    all into the unknown token)."""
    tok, vocab_size = qa.tokenizer, int(qa.model.config.vocab_size)
    if len(tok) > vocab_size:
        raise EdgekitError(
            f"{qa.source}: the tokenizer has {len(tok)} tokens but the model's embedding has {vocab_size} rows; "
            "expected the tokenizer the model was trained with"
        )
    enc = tok.backend_tokenizer.encode("Where?", "Here.")
    specials = [i for i, special in zip(enc.ids, enc.special_tokens_mask, strict=True) if special]
    if not specials or (tok.unk_token_id is not None and tok.unk_token_id in specials):
        said = "adds no special tokens" if not specials else f"marks them with its unknown token {tok.unk_token!r}"
        raise EdgekitError(
            f"{qa.source}: between question and context the tokenizer {said}; expected a tokenizer whose "
            "special tokens ([CLS]/[SEP], <s>/</s>) are in its vocabulary"
        )


def check_positions(qa: LoadedQA, max_seq_len: int, place: str = "--max-seq-len") -> None:
    """Refuse a window longer than the model can read, before anything is exported: one forward pass of
    ``max_seq_len`` tokens (a model's position table is sized ``max_position_embeddings``, less an offset for
    RoBERTa-style models, so trying it is the exact test). The bundle's own load check would refuse it later."""
    ids = torch.full((1, max_seq_len), int(qa.tokenizer.pad_token_id or 0), dtype=torch.long)
    try:
        with torch.no_grad():
            qa.model.eval()(input_ids=ids, attention_mask=torch.ones_like(ids))
    except (IndexError, RuntimeError, ValueError):
        limit = getattr(qa.model.config, "max_position_embeddings", "?")
        raise InputError(qa.source, f"{place} {max_seq_len}", f"a window the model's {limit} positions hold") from None


def input_names_of(qa: LoadedQA) -> list[str]:
    """The inputs to feed the model, in the tokenizer's order: those the tokenizer makes that the model reads.

    What the model reads comes from Optimum's configuration for its type, or else from the signature of
    its ``forward``; a tokenizer's ``token_type_ids`` are dropped for a model that takes none (DistilBERT,
    RoBERTa, MPNet, DeBERTa-v3), so a tokenizer of another kind than the model still serves it."""
    check_tokenizer(qa)
    config = qa.model.config
    task = next(optimum for t, optimum in HEADS.values() if t == task_of(qa))
    takes = _optimum_inputs(config, task) or set(inspect.signature(qa.model.forward).parameters)
    if not {"input_ids", "attention_mask"} <= takes:
        raise EdgekitError(
            f"{qa.source}: model type {config.model_type!r} takes {sorted(takes & set(MODEL_INPUTS))}; "
            "expected a model taking input_ids and attention_mask"
        )
    if getattr(config, "type_vocab_size", None) == 0:
        takes = takes - {"token_type_ids"}
    names = [n for n in qa.tokenizer.model_input_names if n in MODEL_INPUTS and n in takes]
    return names if {"input_ids", "attention_mask"} <= set(names) else ["input_ids", "attention_mask"]


def graph_inputs(model_file: str | Path) -> list[str]:
    """The inputs an exported graph really has (the exporter drops an input the model never reads)."""
    import onnx

    graph = onnx.load(str(model_file), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}
    return [i.name for i in graph.input if i.name not in initializers]


def export_onnx(qa: LoadedQA, out_path: str | Path, opset: int = 17) -> list[str]:
    """Write the model as ONNX with dynamic (batch, sequence) axes; returns the graph's input names."""
    names, outputs = input_names_of(qa), output_names_of(qa)
    dummy = tuple(torch.ones((1, 16), dtype=torch.long) for _ in names)
    axes = {n: {0: "batch", 1: "sequence"} for n in [*names, *outputs]}
    if task_of(qa) == "text-classification":
        axes["logits"] = {0: "batch"}
    # eval() on the wrapper too: the exporter restores the wrapper's mode afterwards, and a
    # fresh Module is in training mode, which would leave dropout on in the wrapped model.
    wrapper = _LogitsOnly(qa.model, names, outputs).eval()
    with torch.no_grad():
        torch.onnx.export(
            wrapper,
            dummy,
            str(out_path),
            input_names=names,
            output_names=outputs,
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False,
        )
    return graph_inputs(out_path)


def save_tokenizer_json(qa: LoadedQA, out_path: str | Path) -> None:
    """The fast tokenizer as a plain tokenizer.json, without padding or truncation baked in.

    A tagger reads pre-split words: a byte-level BPE's words then get the leading-space mark (``Ġ``) they
    carry inside running text, as transformers' ``add_prefix_space=True`` gives them (without it every word
    would look like the start of a text, which the model rarely saw)."""
    backend = qa.tokenizer.backend_tokenizer
    backend.no_padding()
    backend.no_truncation()
    if task_of(qa) == "token-classification":
        spec = json.loads(backend.to_str())
        pre = spec.get("pre_tokenizer") or {}
        for step in pre.get("pretokenizers", [pre]):
            if step.get("type") == "ByteLevel":
                step["add_prefix_space"] = True
        backend = Tokenizer.from_str(json.dumps(spec))
    backend.save(str(out_path))


@dataclass(frozen=True)
class Validation:
    """How far an exported artifact is from the PyTorch model on real questions."""

    n_questions: int
    n_windows: int
    max_abs_diff: float
    answer_agreement: float
    atol: float

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= self.atol

    def require_ok(self, path: str | Path) -> None:
        """Refuse the artifact at ``path`` whose logits are further from PyTorch's than ``atol``."""
        if not self.ok:
            raise EdgekitError(f"{path}: logits differ from PyTorch by {self.max_abs_diff:.3g} > atol {self.atol}")


def validate(qa: LoadedQA, bundle: Bundle, examples: list[Any], atol: float = DEFAULT_ATOL) -> Validation:
    """Compare the bundle's logits and answers (a classifier's labels) with PyTorch's on ``examples``."""
    qa.model.eval()
    outputs = output_names_of(qa)

    def reference(feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
        with torch.no_grad():
            ref = qa.model(**{k: torch.from_numpy(v) for k, v in feeds.items()})
        return tuple(getattr(ref, name).numpy() for name in outputs)

    task = task_of(qa)
    if task == "text-classification":
        return compare_texts(reference, bundle, examples, atol)
    if task == "token-classification":
        return compare_tags(reference, bundle, examples, atol)
    return compare(reference, bundle, examples, atol)


def compare_texts(reference: Reference, bundle: Bundle, examples: list[Any], atol: float = DEFAULT_ATOL) -> Validation:
    """A classification bundle's logits and labels against ``reference``'s on ``examples`` (texts), one at a time."""
    if not examples:
        raise EdgekitError("validation needs at least one example")
    backend = open_backend(bundle, RuntimeOptions())
    tok, m = bundle.tokenizer(), bundle.manifest
    max_diff, agree = 0.0, 0
    for ex in examples:
        feeds = tok.feeds(ex.text, m.input_names, backend.fixed_seq_len)
        (got,), (want,) = backend(feeds), reference(feeds)
        max_diff = max(max_diff, float(np.abs(got - want).max()))
        agree += int(np.argmax(got)) == int(np.argmax(want))
    return Validation(len(examples), len(examples), max_diff, agree / len(examples), atol)


def compare_tags(reference: Reference, bundle: Bundle, examples: list[Any], atol: float = DEFAULT_ATOL) -> Validation:
    """A tagger bundle's logits (on real tokens) and word tags against ``reference``'s on ``examples``
    (sentences), one window at a time; a sentence agrees when every word's tag does."""
    if not examples:
        raise EdgekitError("validation needs at least one example")
    backend = open_backend(bundle, RuntimeOptions())
    tok, m = bundle.tokenizer(), bundle.manifest
    max_diff, agree, n_windows = 0.0, 0, 0
    for ex in examples:
        same = True
        for w in tok.windows(ex.words):
            feeds = tok.feeds(w, m.input_names, backend.fixed_seq_len)
            (got,), (want,) = backend(feeds), reference(feeds)
            n = len(w)
            max_diff = max(max_diff, float(np.abs(got[0, :n] - want[0, :n]).max()))
            heads = [pos for pos, _ in w.heads]
            same &= bool((got[0, heads].argmax(-1) == want[0, heads].argmax(-1)).all())
            n_windows += 1
        agree += same
    return Validation(len(examples), n_windows, max_diff, agree / len(examples), atol)


def compare(reference: Reference, bundle: Bundle, examples: list[Example], atol: float = DEFAULT_ATOL) -> Validation:
    """Compare the bundle's logits and answers with ``reference``'s on ``examples``.

    Logits are compared on real (unpadded) positions; answers are decoded with
    the same decoder from both and compared as text.
    """
    if not examples:
        raise EdgekitError("validation needs at least one question")
    backend = open_backend(bundle, RuntimeOptions())
    tok = bundle.tokenizer()
    m = bundle.manifest
    max_diff, agree, n_windows = 0.0, 0, 0
    for ex in examples:
        windows = tok.windows(ex.question, ex.context)
        feeds = batch_inputs(windows, m.input_names, m.pad_id, backend.fixed_seq_len)
        got, want = backend(feeds), reference(feeds)
        mask = feeds["attention_mask"].astype(bool)
        for g, w in zip(got, want, strict=True):
            max_diff = max(max_diff, float(np.abs(g - w)[mask].max()))
        spans = [best_span(ex.context, windows, s, e, max_answer_len=m.max_answer_len) for s, e in (got, want)]
        agree += spans[0].text == spans[1].text
        n_windows += len(windows)
    return Validation(len(examples), n_windows, max_diff, agree / len(examples), atol)


def manifest_for(
    qa: LoadedQA,
    name: str,
    model_format: str,
    precision: str,
    input_names: list[str],
    max_seq_len: int,
    doc_stride: int,
    exporter: str,
    source: dict | None = None,
) -> Manifest:
    """The manifest of a bundle exported from ``qa`` (every format and precision fills it the same way)."""
    cfg, labels, task = qa.model.config, labels_of(qa), task_of(qa)
    head = {"fresh_head": qa.fresh_head} if labels else {"fresh_qa_head": qa.fresh_head}
    return Manifest(
        name=name,
        model_file=f"model.{model_format}",
        model_format=model_format,
        precision=precision,
        input_names=input_names,
        output_names=output_names_of(qa),
        pad_id=int(qa.tokenizer.pad_token_id or 0),
        max_seq_len=max_seq_len,
        doc_stride=doc_stride,
        params=qa.params,
        layers=int(cfg.num_hidden_layers),
        hidden_size=int(cfg.hidden_size),
        vocab_size=int(cfg.vocab_size),
        labels=labels,
        task=task,
        source={
            "model": qa.source,
            "model_type": cfg.model_type,
            **head,
            "exporter": exporter,
            **(source or {}),
        },
    )


def onnx_bundle(
    qa: LoadedQA,
    out_dir: str | Path,
    name: str,
    max_seq_len: int = DEFAULT_MAX_SEQ_LEN,
    doc_stride: int = DEFAULT_DOC_STRIDE,
    opset: int = 17,
    source: dict | None = None,
) -> Bundle:
    """Export ``qa`` to an fp32 ONNX bundle in ``out_dir``; ``source`` adds provenance fields."""
    check_positions(qa, max_seq_len)
    with bundle_scratch(out_dir, qa.local_files) as tmp:
        model_file, tok_file = tmp / "model.onnx", tmp / "tokenizer.json"
        names = export_onnx(qa, model_file, opset)
        save_tokenizer_json(qa, tok_file)
        if not labels_of(qa):
            QATokenizer.from_file(tok_file, max_seq_len, doc_stride)  # refuse bad settings before writing
        exporter = f"torch.onnx (torch {torch.__version__}, opset {opset})"
        manifest = manifest_for(qa, name, "onnx", "fp32", names, max_seq_len, doc_stride, exporter, source)
        fill_bundle(tmp, model_file, tok_file, manifest, out_dir)
    return load_bundle(out_dir)
