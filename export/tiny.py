"""Tiny, seeded, untrained QA models: a few MFLOPs per window.

For the places where the model's quality is beside the point and its speed is
not: tests of the runner under emulation, the error catalog, smoke tests of a
new device, and the architecture matrix (``benchmarks.architectures``). They use
real tokenizers, so their bundles exercise the same windowing and decoding as
real ones.

``tiny_checkpoint(model_type, dir)`` writes what a user brings: a transformers
checkpoint directory (config, safetensors weights, a fast tokenizer of the
architecture's own kind), made offline. WordPiece kinds reuse the packaged MiniLM
vocabulary and MPNet the teacher's tokenizer; byte-level BPE (RoBERTa) and
SentencePiece (XLM-R, ALBERT, DeBERTa-v2) tokenizers are trained here on the
shipped training excerpt.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModelForQuestionAnswering,
    BertConfig,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
)

from edgekit.export.models import PACKAGED_MINILM, LoadedQA, load_qa, packaged_minilm_path, resolve

# the MPNet QA teacher, where the machine keeps it (tests set EDGEKIT_MODELS_DIR)
MPNET_TEACHER = "$EDGEKIT_MODELS_DIR/mpnet-base-squad"
TRAIN_EXCERPT = Path(__file__).resolve().parents[1] / "edgekit" / "data" / "squad-train-sample.json"
SMALL = {"num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64, "hidden_size": 32}


def tiny_qa(tokenizer_from: str = PACKAGED_MINILM, seed: int = 0) -> LoadedQA:
    """2 layers, hidden 32, 2 heads, seeded random weights, with ``tokenizer_from``'s tokenizer."""
    tokenizer = load_qa(tokenizer_from).tokenizer
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=tokenizer.vocab_size, max_position_embeddings=512, **SMALL)
    return LoadedQA(BertForQuestionAnswering(config).eval(), tokenizer, "tiny-random-bert", fresh_head=True)


def tiny_classifier(
    labels: list[str], tokenizer_from: str = PACKAGED_MINILM, seed: int = 0, per_token: bool = False
) -> LoadedQA:
    """A sequence classifier (``per_token``: a tagger) over ``labels`` of the same tiny shape as :func:`tiny_qa`,
    seeded random weights."""
    tokenizer = load_qa(tokenizer_from).tokenizer
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        max_position_embeddings=512,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
        **SMALL,
    )
    model = (BertForTokenClassification if per_token else BertForSequenceClassification)(config).eval()
    return LoadedQA(model, tokenizer, "tiny-random-bert-classifier", fresh_head=True)


def training_texts() -> Iterator[str]:
    """The contexts and questions of the shipped training excerpt: text to train tokenizers on."""
    data = json.loads(TRAIN_EXCERPT.read_text(encoding="utf-8"))["data"]
    for article in data:
        for para in article["paragraphs"]:
            yield para["context"]
            yield from (qa["question"] for qa in para["qas"])


def _wordpiece(cls_name: str) -> Callable[[Path], Any]:
    def make(tmp: Path) -> Any:
        import transformers

        return getattr(transformers, cls_name)(vocab_file=str(packaged_minilm_path() / "vocab.txt"))

    return make


def _mpnet(tmp: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve(MPNET_TEACHER))


def _byte_bpe(tmp: Path) -> Any:
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        training_texts(), vocab_size=2000, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    )
    bpe.save_model(str(tmp))
    return RobertaTokenizerFast(vocab_file=str(tmp / "vocab.json"), merges_file=str(tmp / "merges.txt"))


def _sentencepiece(cls_name: str, **trainer: Any) -> Callable[[Path], Any]:
    """A SentencePiece unigram model trained on the excerpt, with the special pieces ``cls_name`` expects,
    converted to the fast tokenizer by transformers' own converter (as for a real checkpoint)."""

    def make(tmp: Path) -> Any:
        import sentencepiece as spm
        import transformers

        text = tmp / "text.txt"
        text.write_text("\n".join(training_texts()), encoding="utf-8")
        spm.SentencePieceTrainer.train(
            input=str(text),
            model_prefix=str(tmp / "spm"),
            vocab_size=2000,
            model_type="unigram",
            minloglevel=2,
            **trainer,
        )
        return getattr(transformers, cls_name)(vocab_file=str(tmp / "spm.model"))

    return make


# model type -> (config settings beyond SMALL, tokenizer of its own kind); special token ids come from the tokenizer
ARCHITECTURES: dict[str, tuple[dict[str, Any], Callable[[Path], Any]]] = {
    "bert": ({}, _wordpiece("BertTokenizerFast")),
    "distilbert": ({"hidden_dim": 64}, _wordpiece("DistilBertTokenizerFast")),  # its config maps SMALL's names
    "roberta": ({"max_position_embeddings": 514}, _byte_bpe),
    "xlm-roberta": ({"max_position_embeddings": 514}, _sentencepiece("XLMRobertaTokenizerFast")),
    "electra": ({"embedding_size": 16}, _wordpiece("ElectraTokenizerFast")),
    "albert": (
        {"embedding_size": 16},
        _sentencepiece(
            "AlbertTokenizerFast",
            pad_id=0,
            unk_id=1,
            bos_id=-1,
            eos_id=-1,
            control_symbols=["[CLS]", "[SEP]", "[MASK]"],
        ),
    ),
    # the DeBERTa-v3 layout: relative positions, no absolute ones, no token types
    "deberta-v2": (
        {
            "relative_attention": True,
            "position_buckets": 256,
            "pos_att_type": ["p2c", "c2p"],
            "position_biased_input": False,
            "max_relative_positions": -1,
            "type_vocab_size": 0,
        },
        _sentencepiece(
            "DebertaV2TokenizerFast",
            pad_id=0,
            pad_piece="[PAD]",
            unk_id=3,
            unk_piece="[UNK]",
            bos_id=1,
            bos_piece="[CLS]",
            eos_id=2,
            eos_piece="[SEP]",
            user_defined_symbols=["[MASK]"],
        ),
    ),
    "mobilebert": (
        {"embedding_size": 16, "intra_bottleneck_size": 16, "true_hidden_size": 16, "num_feedforward_networks": 1},
        _wordpiece("MobileBertTokenizerFast"),
    ),
    "mpnet": ({"max_position_embeddings": 514}, _mpnet),
}


def tiny_checkpoint(model_type: str, out: Path, seed: int = 0) -> Path:
    """Write a tiny random QA checkpoint of ``model_type`` (config, weights, tokenizer) to ``out``."""
    settings, make_tokenizer = ARCHITECTURES[model_type]
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = make_tokenizer(Path(tmp))
    config = AutoConfig.for_model(model_type, vocab_size=len(tokenizer), **{**SMALL, **settings})
    for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
        token_id = getattr(tokenizer, name, None)
        if token_id is not None and hasattr(config, name):
            setattr(config, name, token_id)
    torch.manual_seed(seed)
    model = AutoModelForQuestionAnswering.from_config(config).eval()
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out
