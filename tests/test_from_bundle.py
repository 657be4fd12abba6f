"""A student's weights read back from a bundle (export/from_bundle.py): exact from fp32, the rounded
weights from int8, and a refusal for any bundle whose tensors or vocabulary are not the student's."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from conftest import TEACHER_DIR
from transformers import BertConfig, BertForQuestionAnswering

from edgekit.errors import InputError
from edgekit.export.from_bundle import load_bundle_weights, onnx_weights
from edgekit.export.models import LoadedQA, load_trained
from edgekit.export.quantize import quantize_dynamic_bundle, quantize_int4_bundle
from edgekit.export.tiny import SMALL, tiny_classifier, tiny_qa
from edgekit.export.to_onnx import onnx_bundle


@pytest.fixture(scope="module")
def tiny_fp32(tmp_path_factory):
    return onnx_bundle(
        tiny_qa(seed=0), tmp_path_factory.mktemp("fb") / "fp32", "tiny-fp32", max_seq_len=64, doc_stride=32
    )


def _state(qa: LoadedQA) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in qa.model.state_dict().items()}


def test_fp32_bundle_gives_back_every_weight_exactly(tiny_fp32) -> None:
    want = _state(tiny_qa(seed=0))
    other = tiny_qa(seed=1)
    assert any(not np.array_equal(want[k], v) for k, v in _state(other).items())
    got = load_bundle_weights(other, tiny_fp32.path)
    assert not got.fresh_head and "tiny-fp32" in got.source
    state = _state(got)
    assert state.keys() == want.keys()
    for k in want:
        np.testing.assert_array_equal(state[k], want[k], err_msg=k)


def test_int8_bundle_gives_back_the_rounded_weights(tiny_fp32, tmp_path) -> None:
    """Each linear weight within half a quantization step of the float one; the rest as exported."""
    int8 = quantize_dynamic_bundle(tiny_fp32, tmp_path / "int8", "tiny-int8")
    want = _state(tiny_qa(seed=0))
    state = _state(load_bundle_weights(tiny_qa(seed=1), int8.path))
    linear = [k for k in want if k.endswith(".weight") and want[k].ndim == 2 and "embeddings" not in k]
    assert len(linear) == 2 * 6 + 1  # q, k, v, attention output, intermediate, output per layer; the QA head
    for k in want:
        w, got = want[k], state[k]
        if k in linear:  # per output channel, 7-bit: step = max|w| / 63
            step = np.abs(w).max(axis=1, keepdims=True) / 63
            assert np.all(np.abs(got - w) <= step / 2 + 1e-6), k
            assert not np.array_equal(got, w), k  # the int8 values, not a float copy
        elif "embeddings" in k and k.endswith(".weight"):  # one 8-bit scale for the table
            assert np.abs(got - w).max() <= (w.max() - w.min()) / 255 / 2 + 1e-6, k
        else:
            np.testing.assert_array_equal(got, w, err_msg=k)


def test_float_activations_keep_the_int8_weights(tiny_fp32, tmp_path) -> None:
    """A bundle from ``export float-activations`` (int8 weights dequantized in the graph) reads back alike."""
    from edgekit.export.quantize import float_activations_bundle

    int8 = quantize_dynamic_bundle(tiny_fp32, tmp_path / "int8", "tiny-int8")
    mixed = float_activations_bundle(int8, tmp_path / "mixed", ["output/dense", "intermediate/dense"])
    want = _state(load_bundle_weights(tiny_qa(seed=1), int8.path))
    got = _state(load_bundle_weights(tiny_qa(seed=1), mixed.path))
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=0, atol=1e-7, err_msg=k)


def test_a_student_of_another_shape_is_refused_before_anything_is_loaded(tiny_fp32) -> None:
    tok = tiny_qa().tokenizer
    wider = BertForQuestionAnswering(BertConfig(vocab_size=tok.vocab_size, **{**SMALL, "hidden_size": 64})).eval()
    before = {k: v.clone() for k, v in wider.state_dict().items()}
    with pytest.raises(InputError, match=r"model\.onnx: tensor bert\.embeddings.*expected shape \(\d+, 64\)"):
        load_bundle_weights(LoadedQA(wider, tok, "wider", fresh_head=True), tiny_fp32.path)
    assert all(torch.equal(before[k], v) for k, v in wider.state_dict().items())


def test_another_vocabulary_is_refused(tiny_fp32) -> None:
    if not TEACHER_DIR.is_dir():
        pytest.skip(f"the teacher's tokenizer is not at {TEACHER_DIR}")
    with pytest.raises(InputError, match=r"tokenizer\.json: vocabulary: expected the word pieces and ids of the model"):
        load_bundle_weights(tiny_qa(str(TEACHER_DIR)), tiny_fp32.path)


def test_a_4bit_bundle_is_refused(tiny_fp32, tmp_path) -> None:
    int4 = quantize_int4_bundle(tiny_fp32, tmp_path / "int4", "tiny-int4")
    with pytest.raises(InputError, match=r"model\.onnx: operators \['GatherBlockQuantized', 'MatMulNBits'\]"):
        load_bundle_weights(tiny_qa(), int4.path)


def test_a_recipe_names_the_bundle_its_student_starts_from(tiny_fp32, tmp_path) -> None:
    """``student.weights`` in a recipe: the built student carries the bundle's weights and the method says so."""
    from edgekit.export.distill import build_student, method_name
    from edgekit.export.recipes import load_recipe

    model_dir = tmp_path / "tiny-model"
    tiny_qa(seed=1).model.save_pretrained(model_dir)
    tiny_qa().tokenizer.save_pretrained(model_dir)
    recipe_file = tmp_path / "r.toml"
    recipe_file.write_text(f'name = "t"\n[student]\nmodel = "{model_dir}"\nweights = "{tiny_fp32.path}"\n')
    recipe = load_recipe(recipe_file)
    assert tiny_fp32.path in recipe.inputs()
    student = build_student(recipe, None)
    want = _state(tiny_qa(seed=0))
    assert all(np.array_equal(v, want[k]) for k, v in _state(student).items())
    assert method_name(recipe).endswith(f"init {model_dir}, weights of fp32")


def test_checkpoint_of_an_int8_bundle_quantizes_back_to_the_same_model(tiny_fp32, tmp_path, capsys) -> None:
    """``edgekit export checkpoint``: a transformers checkpoint of the int8 bundle's (dequantized) weights, whose
    own export and dynamic int8 give the bundle's model file back byte for byte, so a peer tool handed the
    checkpoint starts from the very model the bundle ships."""
    from transformers import AutoModelForQuestionAnswering

    from edgekit.cli import main

    int8 = quantize_dynamic_bundle(tiny_fp32, tmp_path / "int8", "tiny-int8")
    arch = tmp_path / "arch"
    tiny_qa(seed=1).model.save_pretrained(arch)
    tiny_qa().tokenizer.save_pretrained(arch)
    out = tmp_path / "ckpt"
    assert main(["export", "checkpoint", str(int8.path), str(out), "--architecture", str(arch)]) == 0
    assert "transformers checkpoint" in capsys.readouterr().out
    record = json.loads((out / "edgekit-checkpoint.json").read_text())
    assert record["bundle"] == "tiny-int8" and record["model_sha256"] == int8.manifest.files["model.onnx"].sha256
    want = _state(load_bundle_weights(tiny_qa(seed=2), int8.path))
    got = AutoModelForQuestionAnswering.from_pretrained(out).state_dict()
    assert got.keys() == want.keys() and all(np.array_equal(got[k].numpy(), want[k]) for k in want)

    again = onnx_bundle(load_trained(str(out)), tmp_path / "fp32", "tiny-fp32", max_seq_len=64, doc_stride=32)
    requantized = quantize_dynamic_bundle(again, tmp_path / "int8-again", "tiny-int8")
    assert (requantized.path / "model.onnx").read_bytes() == int8.model_path.read_bytes()

    # a second run replaces its own output; a directory it did not write is left alone
    assert main(["export", "checkpoint", str(int8.path), str(out), "--architecture", str(arch)]) == 0
    before = sorted(p.name for p in arch.iterdir())
    assert main(["export", "checkpoint", str(int8.path), str(arch), "--architecture", str(arch)]) == 2
    assert sorted(p.name for p in arch.iterdir()) == before


def test_checkpoint_needs_the_architecture_the_bundle_came_from(tiny_fp32, tmp_path, capsys) -> None:
    """The tiny bundle names no loadable model (``tiny-random-bert``), and a checkpoint of another shape is no
    architecture for it: each is one line, exit 2, nothing written."""
    from edgekit.cli import main

    assert main(["export", "checkpoint", str(tiny_fp32.path), str(tmp_path / "a")]) == 2
    assert "tiny-random-bert" in capsys.readouterr().err
    assert (
        main(["export", "checkpoint", str(tiny_fp32.path), str(tmp_path / "b"), "--architecture", str(TEACHER_DIR)])
        == 2
    )
    assert "tokenizer.json: vocabulary" in capsys.readouterr().err  # MPNet's word pieces, not MiniLM's
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.parametrize("per_token", [False, True], ids=["text-classifier", "tagger"])
def test_a_classifier_head_is_read_back(tmp_path, per_token) -> None:
    """A classifier's head adds its bias straight into the graph's ``logits`` output: known by its node's name."""
    labels = ["O", "B-x", "I-x"] if per_token else ["neg", "pos"]
    bundle = onnx_bundle(
        tiny_classifier(labels, seed=0, per_token=per_token), tmp_path / "b", "b", max_seq_len=64, doc_stride=0
    )
    want = _state(tiny_classifier(labels, seed=0, per_token=per_token))
    got = _state(load_bundle_weights(tiny_classifier(labels, seed=1, per_token=per_token), bundle.path))
    assert got.keys() == want.keys() and all(np.array_equal(got[k], want[k]) for k in want)


def test_graphs_that_are_not_the_architectures_own_are_refused(tiny_fp32, tmp_path) -> None:
    """Fused operators and quantized activations (a static int8 graph, its SmoothQuant scales folded into the
    weights) would give other weights than the bundle answers with: refused, naming the operator."""
    import onnx

    for op, kind in (("Attention", "fused graphs"), ("QuantizeLinear", r"static \(QDQ\) int8 forms")):
        model = onnx.load(str(tiny_fp32.model_path))
        model.graph.node.append(onnx.helper.make_node(op, ["input_ids"], [f"{op}_out"], name=op))
        path = tmp_path / f"{op}.onnx"
        onnx.save(model, str(path))
        with pytest.raises(InputError, match=rf"operators \['{op}'\]: expected .*\({kind} are not read back"):
            onnx_weights(path)


def test_checkpoint_asks_for_the_architecture_of_a_run_not_kept(tiny_fp32, tmp_path, capsys) -> None:
    """A student's manifest names the training run it came from, which other machines do not have; and the
    checkpoint may not be written inside the architecture's own directory."""
    from edgekit.cli import main

    bundle = tmp_path / "b"
    shutil.copytree(tiny_fp32.path, bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["source"]["model"] = "runs/distill/gone/model"
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    assert main(["export", "checkpoint", str(bundle), str(tmp_path / "ck")]) == 2
    err = capsys.readouterr().err
    assert "source.model" in err and "--architecture" in err and len(err.strip().splitlines()) == 1
    arch = tmp_path / "arch"
    tiny_qa(seed=1).model.save_pretrained(arch)
    tiny_qa().tokenizer.save_pretrained(arch)
    assert main(["export", "checkpoint", str(bundle), str(arch / "sub"), "--architecture", str(arch)]) == 2
    assert not (arch / "sub").exists() and not (tmp_path / "ck").exists()
