"""A tiny, seeded, untrained BERT QA model: a few MFLOPs per window.

For the places where the model's quality is beside the point and its speed is
not: tests of the runner under emulation, the error catalog, smoke tests of a
new device. It uses a real tokenizer (the packaged MiniLM's by default), so its
bundles exercise the same windowing and decoding as real ones.
"""

from __future__ import annotations

import torch
from transformers import BertConfig, BertForQuestionAnswering

from export.models import PACKAGED_MINILM, LoadedQA, load_qa


def tiny_qa(tokenizer_from: str = PACKAGED_MINILM, seed: int = 0) -> LoadedQA:
    """2 layers, hidden 32, 2 heads, seeded random weights, with ``tokenizer_from``'s tokenizer."""
    tokenizer = load_qa(tokenizer_from).tokenizer
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    return LoadedQA(BertForQuestionAnswering(config).eval(), tokenizer, "tiny-random-bert", fresh_head=True)
