"""Bundles: written with hashes, verified on load, refused when tampered or inconsistent."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edgekit.backends import RuntimeOptions, open_backend
from edgekit.bundle import MANIFEST, load_bundle
from edgekit.errors import BundleError, EdgekitError


@pytest.fixture
def bundle_copy(tmp_path: Path, minilm_bundle) -> Path:
    dst = tmp_path / "b"
    shutil.copytree(minilm_bundle.path, dst)
    return dst


def _edit_manifest(path: Path, **changes) -> None:
    m = json.loads((path / MANIFEST).read_text())
    m.update(changes)
    (path / MANIFEST).write_text(json.dumps(m))


def test_written_bundle_verifies_and_describes_itself(minilm_bundle) -> None:
    b = load_bundle(minilm_bundle.path)
    m = b.manifest
    assert (m.model_format, m.precision, m.layers, m.hidden_size) == ("onnx", "fp32", 6, 384)
    assert m.input_names == ["input_ids", "token_type_ids", "attention_mask"]
    assert 22_000_000 < m.params < 23_000_000
    assert set(m.files) == {"model.onnx", "tokenizer.json"}
    assert m.source["fresh_qa_head"] is True
    assert 80 < b.size_mb < 100


def test_flipped_byte_is_refused(bundle_copy: Path) -> None:
    model = bundle_copy / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256"):
        load_bundle(bundle_copy)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: (p / "tokenizer.json").unlink(), "it is missing"),
        (lambda p: (p / "notes.txt").write_text("x"), "no files besides"),
        (lambda p: (p / MANIFEST).unlink(), r"manifest \(file missing\)"),
        (lambda p: (p / MANIFEST).write_text("{not json"), "valid JSON"),
        (lambda p: _edit_manifest(p, format_version=99), "format_version"),
        (lambda p: _edit_manifest(p, model_format="pt"), "model_format"),
        (lambda p: _edit_manifest(p, max_seq_len="384"), "field 'max_seq_len'"),
        (lambda p: _edit_manifest(p, doc_stride=500), "doc_stride"),
        (lambda p: _edit_manifest(p, surprise=1), "field 'surprise'"),
        (lambda p: _edit_manifest(p, model_file="../model.onnx"), "plain file name"),
        (lambda p: _edit_manifest(p, vocab_size=100), "vocabulary"),
        (lambda p: (p / "tokenizer.json").write_text("{}"), "size"),
    ],
    ids=[
        "missing file",
        "extra file",
        "no manifest",
        "manifest not json",
        "format version",
        "model format",
        "field type",
        "stride",
        "unknown field",
        "path escape",
        "tokenizer vs vocab",
        "replaced tokenizer",
    ],
)
def test_damaged_bundles_are_refused(bundle_copy: Path, damage, message: str) -> None:
    damage(bundle_copy)
    with pytest.raises(BundleError, match=message) as err:
        load_bundle(bundle_copy)
    assert str(bundle_copy) in str(err.value)


def test_model_inputs_must_match_manifest(bundle_copy: Path) -> None:
    _edit_manifest(bundle_copy, input_names=["input_ids", "attention_mask"])
    with pytest.raises(BundleError, match="the model's inputs"):
        open_backend(load_bundle(bundle_copy), RuntimeOptions())


def test_threads_must_be_positive() -> None:
    with pytest.raises(EdgekitError, match="threads=0"):
        RuntimeOptions(threads=0)


def _edit_tokenizer(path: Path, edit) -> None:
    """Change tokenizer.json with ``edit`` and record its new hash and size, as a forger would."""
    from edgekit.bundle import sha256_file

    tok_file = path / "tokenizer.json"
    obj = json.loads(tok_file.read_text())
    edit(obj)
    tok_file.write_text(json.dumps(obj))
    m = json.loads((path / MANIFEST).read_text())
    m["files"]["tokenizer.json"].update(sha256=sha256_file(tok_file), size=tok_file.stat().st_size)
    (path / MANIFEST).write_text(json.dumps(m))


def _move_an_id_beyond_the_embedding(obj: dict) -> None:
    vocab = obj["model"]["vocab"]
    vocab["paris"] = len(vocab) + 100  # as many entries as before; one id past the last row


def _drop_the_unknown_token(obj: dict) -> None:
    del obj["model"]["vocab"]["[UNK]"]  # loads; fails on the first character it cannot piece


@pytest.mark.parametrize(
    ("edit", "place"),
    [(_move_an_id_beyond_the_embedding, "vocabulary"), (_drop_the_unknown_token, "encoding")],
)
def test_a_tokenizer_that_would_fail_midway_is_refused_at_load(bundle_copy: Path, edit, place: str) -> None:
    """A tokenizer must give only ids of the model's embedding on every input, not only have the right size."""
    _edit_tokenizer(bundle_copy, edit)
    with pytest.raises(BundleError, match=place) as err:
        load_bundle(bundle_copy)
    assert str(bundle_copy / "tokenizer.json") in str(err.value)


def test_a_long_question_after_others_is_refused_not_crashed(minilm_bundle) -> None:
    """Truncation is set per call: a question too long for a window, asked after others, is the task's own
    refusal, not the tokenizers library's error about the truncation the previous call left behind."""
    from edgekit.errors import InputError

    tok = minilm_bundle.tokenizer()
    assert tok.windows("Where is Paris?", "Paris is in France.")
    with pytest.raises(InputError, match="a question that leaves room for the context"):
        tok.windows("why " * 2 * minilm_bundle.manifest.max_seq_len, "Paris is in France.")


def test_the_tokenizer_verify_built_is_the_one_the_model_gets(minilm_bundle) -> None:
    """One tokenizer per loaded bundle: a second would hold the vocabulary twice over in a device's memory."""
    from edgekit.backends import RuntimeOptions
    from edgekit.tasks.qa import QAModel

    loaded = load_bundle(minilm_bundle.path)
    assert loaded.tokenizer() is loaded.tokenizer()
    model = QAModel.load(minilm_bundle.path, RuntimeOptions(threads=1))
    assert model.tokenizer is model.bundle.tokenizer()
    model.answer("Where is Paris?", "Paris is in France. " * 100)  # windows: truncation set for the pair
    long = " ".join(["word"] * 2 * minilm_bundle.manifest.max_seq_len)
    assert (
        len(model.bundle.tokenizer().tokenizer.encode(long, add_special_tokens=False).ids)
        == 2 * minilm_bundle.manifest.max_seq_len
    )
