"""Vocabulary pruning: the kept pieces keep their embedding rows, every word still tokenizes, the record travels."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgekit.backends import RuntimeOptions, open_backend
from edgekit.bundle import load_bundle
from edgekit.cli import main
from edgekit.features import batch_inputs


def _logits(bundle, question: str, context: str):
    m = bundle.manifest
    windows = bundle.tokenizer().windows(question, context)
    return windows, open_backend(bundle, RuntimeOptions(threads=1))(batch_inputs(windows, m.input_names, m.pad_id))


def _kept_only_text(pruned) -> str:
    """Words the pruned vocabulary holds whole: their tokenization cannot change."""
    vocab = json.loads(pruned.tokenizer_path.read_text())["model"]["vocab"]
    words = [w for w in ("the", "city", "river", "year", "king", "war", "music", "was", "in", "of") if w in vocab]
    assert len(words) >= 6
    return " ".join(words)


def _check_pruned(src, pruned, keep: int, dev_examples) -> None:
    assert pruned.manifest.vocab_size == keep and pruned.manifest.params < src.manifest.params
    record = pruned.manifest.source["vocab_pruning"]
    assert record["kept"] == keep and record["of"] == src.manifest.vocab_size
    assert record["corpus"][0]["file"] == "train-v1.1-subset.json" and record["english_words"] > 0
    assert pruned.manifest.pad_id == src.manifest.pad_id
    # text made of kept pieces: the same windows under new ids, and the same logits to the last bit
    text = _kept_only_text(pruned)
    (w_src,), (s0, e0) = _logits(src, "what year was it?", text)
    (w_new,), (s1, e1) = _logits(pruned, "what year was it?", text)
    assert len(w_src.input_ids) == len(w_new.input_ids) and list(w_src.input_ids) != list(w_new.input_ids)
    np.testing.assert_array_equal(s0, s1)
    np.testing.assert_array_equal(e0, e1)
    # every word of dev questions still tokenizes: no more unknown tokens than the full vocabulary gives
    full, cut = src.tokenizer(), pruned.tokenizer()
    unk_full = full.tokenizer.token_to_id(full.tokenizer.model.unk_token)
    unk_cut = cut.tokenizer.token_to_id(cut.tokenizer.model.unk_token)
    for ex in dev_examples[:200]:
        assert full.tokenizer.encode(ex.question).ids.count(unk_full) == cut.tokenizer.encode(ex.question).ids.count(
            unk_cut
        ), ex.question


def test_pruned_bert_bundle_through_the_cli_and_int8(tmp_path, tiny_bundle, dev_examples) -> None:
    out = tmp_path / "pruned"
    assert main(["export", "prune-vocab", str(tiny_bundle.path), str(out), "--keep", "5000"]) == 0
    pruned = load_bundle(out)
    assert pruned.manifest.name == f"{tiny_bundle.manifest.name}-vocab5000"
    _check_pruned(tiny_bundle, pruned, 5000, dev_examples)
    assert main(["export", "int8", str(out), str(tmp_path / "int8")]) == 0
    q = load_bundle(tmp_path / "int8")
    assert q.manifest.source["vocab_pruning"] == pruned.manifest.source["vocab_pruning"]
    assert q.manifest.vocab_size == 5000


def test_pruned_mpnet_keeps_its_pad_id_and_position_ids(tmp_path, dev_examples) -> None:
    """MPNet's graph compares input_ids with the pad id to number positions: the pad id must not move."""
    from edgekit.export.models import load_qa
    from edgekit.export.tiny import tiny_checkpoint
    from edgekit.export.to_onnx import onnx_bundle
    from edgekit.export.vocab import prune_bundle
    from edgekit.squad import default_data_dir, load_squad

    src = onnx_bundle(
        load_qa(str(tiny_checkpoint("mpnet", tmp_path / "ckpt"))), tmp_path / "mpnet", "tiny-mpnet", 64, 32
    )
    train = default_data_dir() / "train-v1.1-subset.json"
    pruned = prune_bundle(src, tmp_path / "pruned", "tiny-mpnet-cut", 6000, load_squad(train)[:300], [train])
    _check_pruned(src, pruned, 6000, dev_examples)


def test_prune_refusals_leave_nothing(tmp_path, tiny_bundle, capsys) -> None:
    from edgekit.export.models import load_qa
    from edgekit.export.tiny import tiny_checkpoint
    from edgekit.export.to_onnx import onnx_bundle

    assert main(["export", "prune-vocab", str(tiny_bundle.path), str(tmp_path / "a"), "--keep", "50"]) == 2
    assert "expected at least" in capsys.readouterr().err
    roberta = onnx_bundle(load_qa(str(tiny_checkpoint("roberta", tmp_path / "r"))), tmp_path / "rb", "rb", 64, 32)
    assert main(["export", "prune-vocab", str(roberta.path), str(tmp_path / "b"), "--keep", "500"]) == 2
    err = capsys.readouterr().err.strip()
    assert "tokenizer.json" in err and "WordPiece" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.parametrize("keep", [30522, 100000])
def test_keeping_everything_is_refused(tmp_path, tiny_bundle, keep, capsys) -> None:
    assert main(["export", "prune-vocab", str(tiny_bundle.path), str(tmp_path / "c"), "--keep", str(keep)]) == 2
    assert "expected fewer than the 30522 pieces" in capsys.readouterr().err


def test_int8_with_a_4_bit_word_embedding(tmp_path, tiny_bundle, dev_examples) -> None:
    """Only the word-embedding Gather becomes 4-bit blocks; the encoder stays int8 and the answers stay close."""
    import onnx

    assert main(["export", "int8", str(tiny_bundle.path), str(tmp_path / "e8")]) == 0
    assert main(["export", "int8", str(tiny_bundle.path), str(tmp_path / "e4"), "--embedding-bits", "4"]) == 0
    e8, e4 = load_bundle(tmp_path / "e8"), load_bundle(tmp_path / "e4")
    assert e4.manifest.source["quantization"]["embedding_bits"] == 4 and e4.manifest.precision == "int8"
    nodes = onnx.load(str(e4.model_path)).graph.node
    blocked = [n for n in nodes if n.op_type == "GatherBlockQuantized"]
    assert [n.input[1] for n in blocked] == ["input_ids"]
    assert sum(n.op_type == "MatMulInteger" for n in nodes) >= 12
    # a 32-wide table: 4 bits plus a scale per 32 weights against a byte each
    assert e4.model_size_mb < 0.8 * e8.model_size_mb
    ex = dev_examples[0]
    _, (s8, _) = _logits(e8, ex.question, ex.context)
    _, (s4, _) = _logits(e4, ex.question, ex.context)
    assert 0 < np.abs(s8 - s4).max() < 0.5


def test_embedding_bits_need_dynamic_quantization(tmp_path, tiny_bundle, capsys) -> None:
    args = ["export", "int8", str(tiny_bundle.path), str(tmp_path / "s"), "--embedding-bits", "4", "--static", "minmax"]
    assert main(args) == 2
    assert "expected dynamic quantization" in capsys.readouterr().err and not (tmp_path / "s").exists()
