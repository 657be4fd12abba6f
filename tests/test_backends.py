"""Runtimes for one bundle: OpenVINO against ONNX Runtime, and ``--backend auto`` choosing between them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgekit.backends import RuntimeOptions, open_backend
from edgekit.errors import EdgekitError
from edgekit.features import batch_inputs
from edgekit.squad import load_squad

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("openvino")


def test_openvino_f32_gives_onnx_runtimes_logits(minilm_bundle, dev_path) -> None:
    ort_backend = open_backend(minilm_bundle, RuntimeOptions(threads=2))
    ov_backend = open_backend(minilm_bundle, RuntimeOptions(threads=2, backend="openvino"))
    assert ov_backend.name == "openvino"
    tok, m = minilm_bundle.tokenizer(), minilm_bundle.manifest
    for ex in load_squad(dev_path)[:8]:
        feeds = batch_inputs(tok.windows(ex.question, ex.context), m.input_names, m.pad_id)
        for a, b in zip(ort_backend(feeds), ov_backend(feeds), strict=True):
            np.testing.assert_allclose(a, b, atol=1e-3)


def test_openvino_pads_windows_to_its_length_step_and_cuts_only_per_token_outputs(
    minilm_bundle, tiny_classifier_bundle
) -> None:
    """OpenVINO sees windows padded to its length step; a QA window's logits come back at its own length, a
    classifier's one row per text whole."""
    from edgekit.backends.openvino import LENGTH_STEP, OpenVinoBackend

    qa, text = minilm_bundle.manifest, tiny_classifier_bundle.manifest
    qa_feeds = batch_inputs(minilm_bundle.tokenizer().windows("who?", "nobody " * 40), qa.input_names, qa.pad_id)
    text_feeds = tiny_classifier_bundle.tokenizer().feeds("a film that moves " * 5, text.input_names)
    for bundle, feeds in ((minilm_bundle, qa_feeds), (tiny_classifier_bundle, text_feeds)):
        assert feeds["input_ids"].shape[1] % LENGTH_STEP != 0
        ov_backend = OpenVinoBackend(bundle, RuntimeOptions(threads=2))
        assert ov_backend.length_step == LENGTH_STEP
        ort_backend = open_backend(bundle, RuntimeOptions(threads=2))
        for a, b in zip(ort_backend(feeds), ov_backend(feeds), strict=True):
            np.testing.assert_allclose(a, b, atol=1e-3)


def test_openvino_bf16_runs_only_where_the_cpu_has_bfloat16(minilm_bundle) -> None:
    from edgekit.backends.openvino import cpu_has_bf16

    if cpu_has_bf16():
        assert open_backend(minilm_bundle, RuntimeOptions(backend="openvino-bf16")).name == "openvino-bf16"
    else:
        with pytest.raises(EdgekitError, match="needs a CPU with bfloat16"):
            open_backend(minilm_bundle, RuntimeOptions(backend="openvino-bf16"))


def _run(bundle: Path, dev: Path, out: Path, cache: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "edgekit.cli", "run", str(bundle), "--dataset", str(dev), "--out", str(out)]
    cmd += ["--limit", "40", "--threads", "2", "--no-progress", *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(cache)}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.slow
def test_auto_measures_every_runtime_once_and_remembers_the_choice(minilm_bundle, dev_path, tmp_path) -> None:
    first = _run(minilm_bundle.path, dev_path, tmp_path / "a", tmp_path / "cache", "--backend", "auto")
    assert first.returncode == 0, first.stderr[-2000:]
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    choice = metrics["backend_choice"]
    assert metrics["backend"] == choice["backend"]
    tried = choice["candidates"]
    assert {"onnxruntime", "openvino", "openvino-bf16"} == set(tried)
    assert tried["onnxruntime"]["same_answers_as_onnxruntime"] == 1.0
    chosen = tried[choice["backend"]]
    assert chosen["same_answers_as_onnxruntime"] >= choice["agreement_needed"]
    measured = [t for t in tried.values() if "p50_ms" in t and t["same_answers_as_onnxruntime"] >= 0.95]
    assert chosen["p50_ms"] == min(t["p50_ms"] for t in measured)  # the fastest of those that agree
    # a second run on this machine takes the remembered choice without measuring again
    again = _run(minilm_bundle.path, dev_path, tmp_path / "b", tmp_path / "cache", "--backend", "auto")
    assert again.returncode == 0, again.stderr[-2000:]
    second = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert second["backend"] == metrics["backend"] and "remembered_in" in second["backend_choice"]


def test_a_backend_for_another_format_is_one_line(minilm_bundle, dev_path, tmp_path) -> None:
    done = _run(minilm_bundle.path, dev_path, tmp_path / "x", tmp_path / "cache", "--backend", "litert")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "backend litert does not run onnx models" in done.stderr


def test_the_runner_times_its_stages_and_the_profile_reports_them(tiny_bundle, dev_path, tmp_path) -> None:
    import time

    from benchmarks.stages import main as stages
    from edgekit.runner import QAModel

    qa = QAModel.load(tiny_bundle.path, RuntimeOptions(threads=1))
    ex = load_squad(dev_path)[0]
    t0 = time.perf_counter()
    qa.answer(ex.question, ex.context)
    total = (time.perf_counter() - t0) * 1000.0
    stages_ms = (qa.last_tokenize_ms, qa.last_model_ms, qa.last_decode_ms)
    assert all(t > 0 for t in stages_ms) and sum(stages_ms) <= total
    assert qa.last_tokens == sum(len(w) for w in qa.tokenizer.windows(ex.question, ex.context))

    out = tmp_path / "stages.json"
    assert (
        stages([str(tiny_bundle.path), "--dataset", str(dev_path), "--n", "4", "--threads", "1", "--out", str(out)])
        == 0
    )
    rows = json.loads(out.read_text())["rows"]
    assert {r["backend"] for r in rows} >= {"onnxruntime", "openvino"} and all(r["questions"] == 4 for r in rows)
    assert all(abs(sum(r["share_of_time"].values()) - 1) < 1e-3 for r in rows)


def test_the_remembered_choice_is_read_as_untrusted(tmp_path) -> None:
    """A FIFO at the cache's name is not waited on; a malformed file is forgotten, not obeyed."""
    from edgekit.backends.choose import _remembered

    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    assert _remembered(fifo) == {}  # returns at once (a plain open would block until a writer came)
    for content in (b"[1, 2]", b'{"k": NaN}', b"{" * 100_000, b"\xff\xfe"):
        (tmp_path / "bad.json").write_bytes(content)
        assert _remembered(tmp_path / "bad.json") == {}


@pytest.mark.parametrize(
    ("record", "ok"),
    [
        ({"backend": "openvino", "candidates": {"openvino": {"same_answers_as_onnxruntime": 0.97}}}, True),
        ({"backend": "openvino", "candidates": {"openvino": {"same_answers_as_onnxruntime": 0.5}}}, False),
        ({"backend": "openvino", "candidates": {}}, False),
        ({"backend": "openvino"}, False),
        ({"backend": "litert", "candidates": {"litert": {"same_answers_as_onnxruntime": 1.0}}}, False),
        ({"backend": "openvino", "candidates": {"openvino": {"same_answers_as_onnxruntime": True}}}, False),
        ({"backend": "no-such", "candidates": {"no-such": {"same_answers_as_onnxruntime": 1.0}}}, False),
        ([], False),
    ],
)
def test_a_remembered_choice_must_meet_the_agreement_rule_for_the_bundles_format(record, ok) -> None:
    from edgekit.backends.choose import _valid_choice

    assert _valid_choice(record, "onnx") is ok
