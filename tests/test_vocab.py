"""Vocabulary pruning: the kept pieces keep their embedding rows, every word still tokenizes, the record travels."""

from __future__ import annotations

import json
from pathlib import Path

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


def test_the_vocabulary_curve_measures_each_form_against_the_full_vocabulary_and_resumes(
    tmp_path, tiny_bundle, capsys
) -> None:
    out = tmp_path / "curve"
    base = ["export", "vocab-curve", str(tiny_bundle.path), str(out), "--keep", "3000"]
    flags = ["--embedding-bits", "8", "4", "--corpus", "packaged:train", "--english-words", "1000"]
    flags += ["--dataset", "packaged:dev", "--limit", "6", "--threads", "1"]
    assert main([*base, *flags]) == 0
    doc = json.loads((out / "vocab-curve.json").read_text())
    rows = doc["rows"]
    assert [(r["keep"], r["embedding_bits"]) for r in rows] == [(30522, 8), (30522, 4), (3000, 8), (3000, 4)]
    assert rows[0]["delta_f1"] == 0.0 and rows[0]["mb_saved"] == 0.0 and doc["headline"] == "f1"
    for r in rows:  # each row is a run of the bundle it names, on the examples asked for
        bundle = load_bundle(r["bundle_path"])
        assert bundle.manifest.files[bundle.manifest.model_file].sha256 == r["model_sha256"]
        metrics = json.loads((Path(r["run"]) / "metrics.json").read_text())
        assert metrics["n_questions"] == 6 and metrics["f1"] == r["f1"]
        assert r["delta_f1"] == pytest.approx(r["f1"] - rows[0]["f1"])
    assert rows[2]["int8_model_mb"] < rows[0]["int8_model_mb"] and rows[2]["dev_tokens_covered"] < 1.0
    assert doc["command"][:3] == ["edgekit", "export", "vocab-curve"]
    assert (out / "vocab-curve.md").read_text().count("\n| ") == 5  # the head and four rows
    assert (out / "vocab-curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # run again: every bundle is reused, not rebuilt
    made = {r["bundle_path"]: (Path(r["bundle_path"]) / "manifest.json").stat().st_mtime_ns for r in rows}
    assert main([*base, *flags]) == 0
    assert made == {p: (Path(p) / "manifest.json").stat().st_mtime_ns for p in made}
    # other settings in the same directory are refused, and what is there stays
    settings = (out / "curve-settings.json").read_bytes()
    capsys.readouterr()
    assert main([*base, *flags[:-6], "--english-words", "500", *flags[-6:]]) == 2
    err = capsys.readouterr().err
    assert "curve-settings.json" in err and len(err.strip().splitlines()) == 1
    assert (out / "curve-settings.json").read_bytes() == settings


def test_a_curve_that_cannot_be_made_is_refused_before_its_directory(tmp_path, tiny_bundle, capsys) -> None:
    out = tmp_path / "curve"
    assert main(["export", "vocab-curve", str(tiny_bundle.path), str(out), "--keep", "3000", "50000"]) == 2
    assert "--keep 50000: expected fewer than" in capsys.readouterr().err
    assert main(["export", "int8", str(tiny_bundle.path), str(tmp_path / "int8")]) == 0
    capsys.readouterr()
    assert main(["export", "vocab-curve", str(tmp_path / "int8"), str(out), "--keep", "3000"]) == 2
    assert "an fp32 ONNX bundle" in capsys.readouterr().err and not out.exists()


def test_a_classifiers_vocabulary_curve_needs_its_own_corpus(
    tmp_path, tiny_classifier_bundle, sst2_dir, capsys
) -> None:
    out = tmp_path / "curve"
    base = ["export", "vocab-curve", str(tiny_classifier_bundle.path), str(out), "--keep", "3000"]
    assert main(base) == 2
    assert "--corpus" in capsys.readouterr().err and not out.exists()
    train = tmp_path / "train.tsv"
    train.write_text("".join((sst2_dir / "train.tsv").read_text().splitlines(keepends=True)[:300]))
    dev = tmp_path / "dev.tsv"
    dev.write_text("".join((sst2_dir / "dev.tsv").read_text().splitlines(keepends=True)[:9]))
    flags = ["--corpus", str(train), "--english-words", "1000", "--dataset", str(dev), "--threads", "1"]
    assert main([*base, *flags]) == 0
    doc = json.loads((out / "vocab-curve.json").read_text())
    assert doc["headline"] == "accuracy" and [r["keep"] for r in doc["rows"]] == [30522, 3000]
    assert all(r["n_questions"] == 8 for r in doc["rows"]) and doc["rows"][1]["delta_accuracy"] == pytest.approx(
        doc["rows"][1]["accuracy"] - doc["rows"][0]["accuracy"]
    )
