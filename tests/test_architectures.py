"""Any transformers QA checkpoint: the architecture matrix, tokenizers of other kinds, hub names.

The matrix is ``benchmarks.architectures`` run live: every cell must end as the committed
``benchmarks/results/architectures.json`` says (ok or the same documented refusal), never in an
exception.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.architectures import FORMATS, RESULT, matrix
from edgekit.bundle import load_bundle
from edgekit.export.models import load_qa
from edgekit.export.tiny import ARCHITECTURES, tiny_checkpoint
from edgekit.export.to_onnx import onnx_bundle

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_every_architecture_goes_through_every_format_as_the_results_file_says() -> None:
    tflite = importlib.util.find_spec("litert_torch") is not None
    live = matrix(list(ARCHITECTURES), tflite=tflite, progress=False)
    failed = {f"{t} {k}": c.detail for t, row in live.items() for k, c in row.items() if c.status == "failed"}
    assert not failed
    committed = json.loads(RESULT.read_text())["rows"]
    assert set(committed) == set(live) == set(ARCHITECTURES)
    for model_type, row in live.items():
        for fmt in FORMATS:
            want = committed[model_type]["cells"][fmt]["status"]
            if not tflite and fmt.startswith("tflite"):
                continue  # this machine has no converter: the committed cells stand for one that has
            assert row[fmt].status == want, (model_type, fmt, row[fmt].detail)


def _with_tokenizer_of(model_type: str, tokenizer_type: str, tmp: Path) -> Path:
    """A ``model_type`` checkpoint saved with a ``tokenizer_type`` tokenizer (as users sometimes ship them)."""
    from transformers import AutoTokenizer

    model_dir = tiny_checkpoint(model_type, tmp / model_type)
    other = AutoTokenizer.from_pretrained(tiny_checkpoint(tokenizer_type, tmp / tokenizer_type))
    for f in model_dir.glob("*"):
        if "token" in f.name or f.name in ("vocab.txt", "vocab.json", "merges.txt", "spm.model"):
            f.unlink()
    other.save_pretrained(model_dir)
    return model_dir


@pytest.mark.parametrize("model_type", ["distilbert", "mpnet"])
def test_a_bert_tokenizer_serves_a_model_that_takes_no_token_types(model_type: str, tmp_path: Path) -> None:
    """The BERT tokenizer makes token_type_ids; DistilBERT and MPNet have no such input: it is not fed."""
    qa = load_qa(str(_with_tokenizer_of(model_type, "bert", tmp_path)))
    assert "token_type_ids" in qa.tokenizer.model_input_names
    bundle = onnx_bundle(qa, tmp_path / "bundle", f"{model_type}-bert-tok", 128, 32)
    assert load_bundle(bundle.path).manifest.input_names == ["input_ids", "attention_mask"]


def _cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgekit.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        cwd=cwd,
    )


def test_hub_names_load_through_the_same_path_as_directories(tmp_path: Path) -> None:
    """A hub name resolves through the Hugging Face cache: here a cache holding a tiny checkpoint, offline."""
    cache = tmp_path / "hub"
    repo = cache / "models--edgekit-test--tiny-electra-squad"
    revision = "0" * 40
    tiny_checkpoint("electra", repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    env = {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    done = _cli("export", "onnx", "edgekit-test/tiny-electra-squad", str(tmp_path / "b"), "--validate-n", "2", env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    manifest = load_bundle(tmp_path / "b").manifest
    assert manifest.source["model"] == "edgekit-test/tiny-electra-squad" and manifest.source["model_type"] == "electra"
    missing = _cli("export", "onnx", "edgekit-test/not-there", str(tmp_path / "c"), env=env)
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
    assert "edgekit-test/not-there: expected a transformers QA model directory or hub name" in missing.stderr


@pytest.mark.slow
def test_a_student_of_another_architecture_and_tokenizer_learns_from_the_teacher(tmp_path: Path) -> None:
    """A tiny RoBERTa (byte-level BPE) student distilled from the MiniLM (BERT WordPiece) teacher: the
    teacher's logits reach it through the character alignment of the two tokenizations."""
    from edgekit.export.distill import run_distill
    from edgekit.export.recipes import RECIPES_DIR, load_recipe

    student = tiny_checkpoint("roberta", tmp_path / "student")
    recipe = load_recipe(
        RECIPES_DIR / "tiny-test.toml",
        [
            f"output_dir={json.dumps(str(tmp_path / 'runs'))}",
            'teacher.model="packaged:all-MiniLM-L6-v2"',
            'student.init="pretrained"',
            f"student.model={json.dumps(str(student))}",
            "student.layers=[]",
            "data.train_limit=6",
            "data.max_seq_len=96",
            "data.doc_stride=32",
            "training.batch_size=32",
            "training.learning_rate=1e-3",
            "training.warmup_ratio=0.0",
            "training.max_steps=8",
            "training.logging_steps=1",
        ],
    )
    result = run_distill(recipe, evaluate=True, argv=["test"])
    assert result is not None and result["steps"] == 8 and result["n_questions"] == 8
    log = [e for e in json.loads((recipe.out / "training_log.json").read_text()) if "loss" in e]
    assert log[-1]["loss"] < log[0]["loss"] and all("loss_soft" in e for e in log)
    # every RoBERTa window got the BERT teacher's logits, aligned by characters
    import numpy as np

    (cache,) = (tmp_path / "runs" / "cache").iterdir()
    mask = np.load(cache / "mask.npy")
    assert mask.shape[0] == result["n_train_features"] and mask.any(axis=1).all()
    manifest = load_bundle(recipe.out / "bundle-fp32-onnx").manifest
    assert manifest.source["model_type"] == "roberta" and manifest.input_names == ["input_ids", "attention_mask"]


def test_the_architectures_page_is_the_results_file() -> None:
    from benchmarks.architectures import DOC, markdown

    assert DOC.read_text() == markdown(json.loads(RESULT.read_text())), "run python -m benchmarks.architectures"
