"""ONNX export: validated against PyTorch, including padded multi-window batches."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from edgekit.backends import RuntimeOptions, open_backend
from edgekit.export.models import load_qa
from edgekit.export.to_onnx import validate
from edgekit.features import QATokenizer, batch_inputs
from tests.conftest import TEACHER_DIR


def _long_examples(dev_examples, bundle, k: int = 3):
    tok: QATokenizer = bundle.tokenizer()
    return [ex for ex in dev_examples[:2000] if len(tok.windows(ex.question, ex.context)) > 1][:k]


def test_onnx_matches_pytorch_on_multi_window_questions(minilm_qa, minilm_bundle, dev_examples) -> None:
    examples = dev_examples[:4] + _long_examples(dev_examples, minilm_bundle)
    v = validate(minilm_qa, minilm_bundle, examples)
    assert v.n_windows > v.n_questions  # padded batches of several windows were compared
    assert v.ok and v.max_abs_diff < 1e-4
    assert v.answer_agreement == 1.0


def test_validation_catches_a_model_that_drifted(minilm_bundle, dev_examples) -> None:
    from edgekit.export.models import PACKAGED_MINILM

    drifted = load_qa(PACKAGED_MINILM)
    with torch.no_grad():
        drifted.model.qa_outputs.bias.add_(0.01)
    v = validate(drifted, minilm_bundle, dev_examples[:2])
    assert not v.ok and v.max_abs_diff > 5e-3


def test_encoder_gets_fresh_head_and_qa_checkpoint_does_not(minilm_qa) -> None:
    assert minilm_qa.fresh_head
    teacher = load_qa(str(TEACHER_DIR))
    assert not teacher.fresh_head
    assert teacher.model.dtype == torch.float32
    assert teacher.model.config.num_hidden_layers == 12
    # 109.5M in the model card counts the pooler, which a QA model does not have (768*768+768)
    assert teacher.params + 768 * 768 + 768 == 109_487_234 or 108_500_000 < teacher.params < 109_500_000


def test_int8_bundle_round_trip(tmp_path, minilm_qa, minilm_bundle, dev_examples) -> None:
    from edgekit.bundle import load_bundle
    from edgekit.export.quantize import quantize_dynamic_bundle

    q = quantize_dynamic_bundle(minilm_bundle, tmp_path / "int8")
    again = load_bundle(q.path)
    assert again.manifest.precision == "int8" and again.manifest.input_names == minilm_bundle.manifest.input_names
    assert q.manifest.source["quantized_from"] == minilm_bundle.manifest.files["model.onnx"].sha256
    assert q.model_size_mb < 0.3 * minilm_bundle.model_size_mb
    v = validate(minilm_qa, q, dev_examples[:6], atol=1.0)
    assert 0 < v.max_abs_diff < 1.0  # quantized: close to, but not equal to, PyTorch fp32


def test_fused_bundle_matches_and_quantizes(tmp_path, minilm_qa, minilm_bundle, dev_examples) -> None:
    """ORT's transformer optimizer fuses every layer's attention; the int8 form of the fused graph runs."""
    import onnx

    from edgekit.export.fuse import fuse_bundle
    from edgekit.export.quantize import quantize_dynamic_bundle

    fused, v = fuse_bundle(minilm_bundle, tmp_path / "fused", dev_examples[:3])
    assert v.ok and v.answer_agreement == 1.0
    assert fused.manifest.source["fusion"]["fused"]["Attention"] == 6  # one per MiniLM layer
    assert fused.manifest.source["fused_from"] == minilm_bundle.manifest.files["model.onnx"].sha256
    assert validate(minilm_qa, fused, dev_examples[:3]).ok
    q = quantize_dynamic_bundle(fused, tmp_path / "fused-int8")
    ops = {n.op_type for n in onnx.load(q.model_path).graph.node}
    assert "QAttention" in ops
    assert 0 < validate(minilm_qa, q, dev_examples[:3], atol=1.0).max_abs_diff < 1.0


def test_fusing_refuses_int8_and_leaves_nothing_on_a_failed_check(tmp_path, minilm_bundle, dev_examples) -> None:
    from edgekit.errors import EdgekitError
    from edgekit.export.fuse import fuse_bundle
    from edgekit.export.quantize import quantize_dynamic_bundle

    q = quantize_dynamic_bundle(minilm_bundle, tmp_path / "int8")
    with pytest.raises(EdgekitError, match="expected an fp32 ONNX bundle to fuse"):
        fuse_bundle(q, tmp_path / "x", dev_examples[:1])
    with pytest.raises(EdgekitError, match="fused graph differs"):
        fuse_bundle(minilm_bundle, tmp_path / "strict", dev_examples[:2], atol=0.0)
    assert not (tmp_path / "strict").exists()


def test_static_int8_with_calibration_reader(tmp_path, minilm_qa, minilm_bundle, train_path) -> None:
    from edgekit.export.quantize import StaticInt8, WindowReader, quantize_static_bundle
    from edgekit.squad import load_squad

    reader = WindowReader(minilm_bundle, load_squad(train_path)[:8], max_windows=8)
    assert reader.n == 8
    settings = StaticInt8(calibration="percentile", calibration_data="8 windows of train")
    q = quantize_static_bundle(minilm_bundle, tmp_path / "static", reader, settings=settings)
    assert q.manifest.source["quantization"] == settings.record()
    assert settings.record()["method"].endswith("percentile calibration")
    assert q.model_size_mb < 0.4 * minilm_bundle.model_size_mb
    v = validate(minilm_qa, q, load_squad(train_path)[:3], atol=5.0)
    assert v.max_abs_diff > 0


def test_nncf_int8_is_a_qdq_graph_openvino_runs(tmp_path, minilm_qa, minilm_bundle, train_path, dev_path) -> None:
    """NNCF's static int8 on unpadded training windows: a QDQ graph a quarter of the size, close to PyTorch,
    answered through the runner by ONNX Runtime and by OpenVINO alike."""
    import onnx

    from edgekit.backends import RuntimeOptions
    from edgekit.export import quantize
    from edgekit.export.cli import STATIC_METHODS
    from edgekit.export.quantize import StaticInt8, WindowReader, quantize_static_bundle
    from edgekit.runner import RunConfig, run
    from edgekit.squad import load_squad

    assert STATIC_METHODS == list(quantize.STATIC_METHODS)  # the CLI's spelling, kept free of ONNX Runtime
    settings = StaticInt8(calibration="nncf", calibration_data="8 windows of train")
    assert not settings.padded
    reader = WindowReader(minilm_bundle, load_squad(train_path)[:8], max_windows=8, padded=settings.padded)
    assert len({f["input_ids"].shape[1] for f in reader.feeds}) > 1  # real lengths, no padding
    q = quantize_static_bundle(minilm_bundle, tmp_path / "nncf", reader, settings=settings)
    record = q.manifest.source["quantization"]
    assert record == settings.record() and record["method"].startswith("NNCF ")
    assert q.model_size_mb < 0.4 * minilm_bundle.model_size_mb
    ops = {n.op_type for n in onnx.load(str(q.model_path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    v = validate(minilm_qa, q, load_squad(train_path)[:3], atol=5.0)
    assert v.ok and v.max_abs_diff > 0
    for backend in ("onnxruntime", "openvino"):
        m = run(
            q.path,
            dev_path,
            tmp_path / backend,
            RunConfig(limit=4, progress=False, runtime=RuntimeOptions(backend=backend)),
        )
        assert m["backend"] == backend and m["n_answered"] == 4


def test_tflite_fp32_and_int8_bundles(tmp_path, minilm_qa, dev_examples, dev_path) -> None:
    """litert-torch conversion at fixed lengths (a signature each), ai-edge-quantizer int8, run by the LiteRT
    backend at the shortest length that holds each window."""
    from edgekit.export.models import PACKAGED_MINILM
    from edgekit.export.to_tflite import tflite_bundles
    from edgekit.runner import RunConfig, run

    qa = load_qa(PACKAGED_MINILM)  # its own copy: conversion switches attention to eager
    fp32, int8 = tflite_bundles(qa, tmp_path, "minilm", max_seq_len=128, doc_stride=64)
    assert (fp32.manifest.model_format, fp32.manifest.precision, int8.manifest.precision) == ("tflite", "fp32", "int8")
    assert int8.model_size_mb < 0.3 * fp32.model_size_mb
    examples = dev_examples[:6]
    v32 = validate(minilm_qa, fp32, examples)
    assert v32.ok and v32.answer_agreement == 1.0 and v32.n_windows > v32.n_questions
    v8 = validate(minilm_qa, int8, examples, atol=1.0)
    assert 0 < v8.max_abs_diff < 1.0
    m = run(int8.path, dev_path, tmp_path / "run", RunConfig(limit=5, progress=False))
    assert m["backend"] in ("ai_edge_litert", "tflite_runtime") and m["n_answered"] == 5
    assert fp32.manifest.source["tflite_lengths"] == int8.manifest.source["tflite_lengths"] == [64, 128]

    # a short window runs at 64 tokens, with the logits it has when padded to 128
    backend = open_backend(fp32, RuntimeOptions(threads=1))
    assert backend.lengths == [64, 128] and backend.fixed_seq_len is None
    w = fp32.tokenizer().windows("Who?", "Ada wrote the first program.")[0]
    m32 = fp32.manifest
    short = backend(batch_inputs([w], m32.input_names, m32.pad_id))
    padded = backend(batch_inputs([w], m32.input_names, m32.pad_id, 128))
    assert short[0].shape == (1, len(w)) and padded[0].shape == (1, 128)
    np.testing.assert_allclose(short[0], padded[0][:, : len(w)], atol=1e-4)
    np.testing.assert_allclose(short[1], padded[1][:, : len(w)], atol=1e-4)


def test_reference_sizes_from_configs() -> None:
    from benchmarks.compress import reference_rows

    rows = {r["name"].split(" ")[0]: r for r in reference_rows(TEACHER_DIR)}
    # bert-base-uncased has 109,482,240 parameters with its pooler; a QA model has no pooler
    # (768*768 + 768) but a 768 -> 2 head (1,538): 108,893,186
    assert rows["BERT-base"]["params"] == 109_482_240 - 768 * 768 - 768 + 1538
    assert 1300 < rows["BERT-large"]["size_mb"] < 1400
    assert rows["teacher"]["size_mb"] == pytest.approx(435.6, abs=0.1)


def test_size_rows_take_the_largest_run_and_compare_on_the_same_questions(tmp_path, dev_path) -> None:
    """ΔF1 vs fp32 uses the fp32 run on as many questions as the artifact's own largest run."""
    from benchmarks.compress import artifact_rows
    from edgekit.atomic import write_json
    from edgekit.export.pipeline import how_made
    from edgekit.export.quantize import quantize_dynamic_bundle
    from edgekit.export.tiny import tiny_qa
    from edgekit.export.to_onnx import onnx_bundle
    from edgekit.runner import RunConfig, run

    # the summary's plain fp32 ONNX row is found by its name's suffix
    fp32 = onnx_bundle(tiny_qa(), tmp_path / "fp32", "tiny-fp32-onnx", max_seq_len=128, doc_stride=64)
    int8 = quantize_dynamic_bundle(fp32, tmp_path / "int8", "tiny-int8-onnx")
    runs, rows = [], []
    for b in (fp32, int8):
        for n in (4, 12):
            runs.append(tmp_path / f"{b.manifest.name}-{n}")
            run(b.path, dev_path, runs[-1], RunConfig(limit=n, progress=False))
        rows.append(
            {
                "name": b.manifest.name,
                "format": "onnx",
                "precision": b.manifest.precision,
                "params": b.manifest.params,
                "size_mb": b.model_size_mb,
                "max_abs_diff": 0.0,
                "answer_agreement": 1.0,
                "exact_match": 0.0,
                "f1": 0.0,
                "n_questions": 2,
                "path": str(b.path),
                "how": how_made(b.manifest.source),
            }
        )
    write_json(tmp_path / "summary.json", {"rows": rows})
    out = {r["name"]: r for r in artifact_rows([tmp_path / "summary.json"], runs)}
    i8 = out["tiny-int8-onnx"]
    assert i8["n_questions"] == 12 and i8["how"] == "onnxruntime dynamic, 7-bit weights"
    f1 = [json.loads((r / "metrics.json").read_text())["f1"] for r in runs]
    want = f1[3] - f1[1]
    assert i8["f1_vs_fp32_onnx"] == pytest.approx(want)
    assert out["tiny-fp32-onnx"]["f1_vs_fp32_onnx"] == 0.0


def test_an_older_summarys_int8_row_gets_the_weight_width_its_run_recorded() -> None:
    """Bundles made before 7-bit became the default say only "onnxruntime dynamic"; their run's manifest knows."""
    from benchmarks.compress import _with_weight_bits

    def run(reduce_range: bool) -> dict:
        return {"bundle": {"source": {"quantization": {"reduce_range": reduce_range}}}}

    assert _with_weight_bits("onnxruntime dynamic", run(False)) == "onnxruntime dynamic, 8-bit weights"
    assert _with_weight_bits("onnxruntime dynamic", run(True)) == "onnxruntime dynamic, 7-bit weights"
    assert _with_weight_bits("onnxruntime dynamic, quint8 weights", run(False)) == "onnxruntime dynamic, quint8 weights"
    assert _with_weight_bits("onnxruntime dynamic", {"exact_match": 1.0}) == "onnxruntime dynamic"  # a quick check
    assert _with_weight_bits(None, run(True)) is None  # fp32


def test_int8_keeps_named_nodes_in_fp32(tmp_path, minilm_bundle) -> None:
    import onnx

    from edgekit.cli import main

    head = "/model/qa_outputs/MatMul"
    assert main(["export", "int8", str(minilm_bundle.path), str(tmp_path / "q"), "--keep-fp32", head]) == 0
    nodes = {n.name: n.op_type for n in onnx.load(str(tmp_path / "q" / "model.onnx")).graph.node}
    assert nodes[head] == "MatMul"  # left in fp32
    assert sum(op == "MatMulInteger" for op in nodes.values()) >= 36  # the encoder's weights are int8
    manifest = json.loads((tmp_path / "q" / "manifest.json").read_text())
    assert manifest["source"]["quantization"]["nodes_to_exclude"] == [head]


def test_float_activations_keep_int8_weights_and_undo_activation_rounding(
    tmp_path, minilm_qa, minilm_bundle, dev_examples
) -> None:
    import onnx

    from edgekit.bundle import load_bundle
    from edgekit.cli import main
    from edgekit.export.quantize import matmul_groups, quantize_dynamic_bundle

    q = quantize_dynamic_bundle(minilm_bundle, tmp_path / "int8")
    groups = matmul_groups(onnx.load(str(q.model_path)).graph)
    assert len(groups["output/dense"]) == 6 and len(groups["layer.0"]) == 6 and groups["qa_outputs"]
    roles = [g for g in groups if not g.startswith("layer.")]
    args = ["export", "float-activations", str(q.path), str(tmp_path / "fa")]
    assert main(args + [a for r in roles for a in ("--group", r)]) == 0
    fa = load_bundle(tmp_path / "fa")
    assert fa.manifest.source["quantization"]["float_activations"] == roles
    fa_ops = sorted(n.op_type for n in onnx.load(str(fa.model_path)).graph.node)
    assert "MatMulInteger" not in fa_ops and "DynamicQuantizeLinear" not in fa_ops
    assert abs(fa.model_size_mb - q.model_size_mb) < 0.01 * q.model_size_mb  # the weights are still int8
    # only the weights are rounded now: closer to PyTorch fp32 than the int8 bundle
    int8_diff = validate(minilm_qa, q, dev_examples[:6], atol=10.0).max_abs_diff
    assert validate(minilm_qa, fa, dev_examples[:6], atol=10.0).max_abs_diff < 0.75 * int8_diff

    assert main(["export", "float-activations", str(q.path), str(tmp_path / "one"), "--group", "layer.2"]) == 0
    ops = [n.op_type for n in onnx.load(str(tmp_path / "one" / "model.onnx")).graph.node]
    assert ops.count("MatMulInteger") == sum(map(len, (groups[r] for r in roles))) - 6

    # "all": every product, the same graph as every role named
    assert main(["export", "float-activations", str(q.path), str(tmp_path / "all"), "--group", "all"]) == 0
    every = load_bundle(tmp_path / "all")
    assert every.manifest.source["quantization"]["float_activations"] == ["all"]
    assert sorted(n.op_type for n in onnx.load(str(every.model_path)).graph.node) == fa_ops


def test_float_activations_refuse_an_unknown_group_and_an_fp32_bundle(tmp_path, minilm_bundle, capsys) -> None:
    from edgekit.cli import main
    from edgekit.export.quantize import quantize_dynamic_bundle

    q = quantize_dynamic_bundle(minilm_bundle, tmp_path / "int8")
    assert main(["export", "float-activations", str(q.path), str(tmp_path / "bad"), "--group", "ffn"]) == 2
    err = capsys.readouterr().err
    assert "no MatMul group ffn; expected one of" in err and "output/dense" in err
    assert main(["export", "float-activations", str(minilm_bundle.path), str(tmp_path / "bad"), "--group", "x"]) == 2
    assert "expected a dynamic int8 ONNX bundle" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_int8_sensitivity_ranks_groups_against_rounded_weights(tmp_path, tiny_bundle, train_path) -> None:
    from edgekit.cli import main
    from edgekit.export.quantize import quantize_dynamic_bundle

    q = quantize_dynamic_bundle(tiny_bundle, tmp_path / "int8")
    out = tmp_path / "results"
    args = [str(q.path), str(out), "--dataset", str(train_path), "--windows", "4", "--threads", "1"]
    assert main(["export", "int8-sensitivity", *args]) == 0
    result = json.loads((out / "sensitivity.json").read_text())
    assert result["command"][:3] == ["edgekit", "export", "int8-sensitivity"]
    rows = {r["variant"]: r for r in result["variants"]}
    assert result["windows"] == 4 and rows["int8"]["float_groups"] == []
    assert {"float layer.0", "float layer.1", "float qa_outputs"} <= rows.keys()
    assert all(r["kl"] >= 0 and 0 <= r["same_argmax"] <= 1 for r in rows.values())
    assert rows["int8"]["kl"] > 0  # the reference really rounds less than the bundle
    ranked = result["roles_by_harm"]
    assert "qa_outputs" in ranked and not any(g.startswith("layer.") for g in ranked)


def test_int4_bundle_through_the_cli(tmp_path, minilm_qa, minilm_bundle, dev_examples) -> None:
    import onnx

    from edgekit.bundle import load_bundle
    from edgekit.cli import main

    assert main(["export", "int4", str(minilm_bundle.path), str(tmp_path / "q4")]) == 0
    q = load_bundle(tmp_path / "q4")
    assert q.manifest.precision == "int4" and q.manifest.name == f"{minilm_bundle.manifest.name}-int4"
    assert q.manifest.source["quantization"]["block_size"] == 32
    ops = [n.op_type for n in onnx.load(str(q.model_path)).graph.node]
    assert ops.count("MatMulNBits") >= 36 and "GatherBlockQuantized" in ops  # encoder weights and word embeddings
    # 4 bits and a scale per 32 weights: well under the int8 form's ~25% of fp32
    assert q.model_size_mb < 0.2 * minilm_bundle.model_size_mb
    v = validate(minilm_qa, q, dev_examples[:6], atol=2.0)
    assert 0 < v.max_abs_diff < 2.0


def test_int4_refuses_a_bad_block_size(tmp_path, minilm_bundle, capsys) -> None:
    from edgekit.cli import main

    assert main(["export", "int4", str(minilm_bundle.path), str(tmp_path / "bad"), "--block-size", "24"]) == 2
    assert "block size 24: expected a power of two" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
