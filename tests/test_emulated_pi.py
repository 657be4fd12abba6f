"""The real runner on an emulated Raspberry Pi: arm64 Debian's Python under qemu user mode (Pi 5 CPU).

The emulated Python holds only the device's packages (``device_runners/requirements.txt``, as
aarch64 wheels) and nothing of this checkout: it runs the files ``edgekit deploy`` ships. The
deploy test goes the whole way a Pi is reached: ``edgekit deploy ssh://...`` to a real sshd on
loopback whose remote Python is that emulated interpreter.

The models are tiny (2 layers, hidden 32: a few MFLOPs per window) because emulated floating
point is far slower than the host (docs/runner.md, "The emulated Raspberry Pi"); what is checked is that the aarch64 builds of
onnxruntime, LiteRT, tokenizers and numpy give the host's answers through edgekit's own code.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from device_tools import require

from edgekit.bundle import load_bundle
from edgekit.device_runners.deploy import DeployConfig, deploy, stage_code
from edgekit.predlog import COMMON_FIELDS, read_log
from edgekit.runner import RunConfig, run
from edgekit.tasks.classification import CLASSIFICATION

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def emulated():
    require("qemu-aarch64-static", "qemu-user-static")
    from edgekit.device_runners.raspberry_pi.emulate import default_cache, emulated_python

    return emulated_python(default_cache())


@pytest.fixture(scope="module")
def tiny_bundles(tiny_bundle, tmp_path_factory) -> list[Path]:
    """The tiny model as the bundles a Pi runs: fp32 ONNX, default int8 ONNX, int8 TFLite, the size-budget
    form (pruned vocabulary, int8 layers over a 4-bit word embedding: ONNX Runtime's GatherBlockQuantized) and
    8-bit weights with float activations (DequantizeLinear before each MatMul)."""
    from edgekit.export.quantize import DynamicInt8, float_activations_bundle, quantize_dynamic_bundle
    from edgekit.export.tiny import tiny_qa
    from edgekit.export.to_tflite import tflite_bundles
    from edgekit.export.vocab import prune_bundle
    from edgekit.squad import default_data_dir, load_squad

    out = tmp_path_factory.mktemp("pi-bundles")
    int8 = quantize_dynamic_bundle(tiny_bundle, out / "tiny-int8", None, DynamicInt8())
    tflite = tflite_bundles(tiny_qa(), out, "tiny", max_seq_len=128, doc_stride=64)[1]
    train = default_data_dir() / "train-v1.1-subset.json"
    pruned = prune_bundle(tiny_bundle, out / "tiny-v5k", "tiny-v5k", 5000, load_squad(train)[:500], [train])
    small = quantize_dynamic_bundle(pruned, out / "tiny-v5k-int8-emb4", None, DynamicInt8(embedding_bits=4))
    full_range = quantize_dynamic_bundle(tiny_bundle, out / "tiny-int8-fr", None, DynamicInt8(reduce_range=False))
    weights_only = float_activations_bundle(full_range, out / "tiny-int8-weights", ["all"])
    return [tiny_bundle.path, int8.path, tflite.path, small.path, weights_only.path]


def assert_answers_like_the_host(arm_dir: Path, host_dir: Path, n: int) -> None:
    arm = json.loads((arm_dir / "metrics.json").read_text())
    host = json.loads((host_dir / "metrics.json").read_text())
    assert arm["device"]["arch"] == "aarch64" and "Raspberry Pi 5" in arm["device"]["cpu"]
    assert "asimddp" in arm["device"]["cpu_features"]  # the Pi 5's int8 dot product, recorded with the result
    assert "emulation" in arm["device"]["emulated"]
    assert arm["device"]["python_executable"].endswith("python3.11")
    arm_pred = json.loads((arm_dir / "predictions.json").read_text())
    assert len(arm_pred) == n and arm_pred == json.loads((host_dir / "predictions.json").read_text())
    assert (arm["exact_match"], arm["f1"]) == (host["exact_match"], host["f1"])
    # the scores behind the answers agree too, not just the argmax
    conf = {d: [(r["id"], r["confidence"]) for r in read_log(d / "predictions.jsonl")] for d in (arm_dir, host_dir)}
    assert conf[arm_dir] == conf[host_dir]


def test_emulated_arm64_runner_gives_the_hosts_answers(emulated, tiny_bundle, dev_path, tmp_path) -> None:
    n = 12
    run(tiny_bundle.path, dev_path, tmp_path / "host", RunConfig(limit=n, warmup=0, progress=False))
    args = ["run", str(tiny_bundle.path), "--dataset", str(dev_path)]
    args += ["--out", str(tmp_path / "arm64"), "--limit", str(n), "--warmup", "0", "--no-progress"]
    proc = emulated.edgekit(args, stage_code(tmp_path / "code"), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_answers_like_the_host(tmp_path / "arm64", tmp_path / "host", n)


def test_a_classification_bundle_answers_on_the_emulated_pi_as_on_the_host(
    emulated, sshd, tiny_classifier_bundle, sst2_dir, tmp_path
) -> None:
    """A text classifier's int8 bundle through ``edgekit deploy`` to the emulated Pi: its labels and confidences
    are the host's, and the dataset travels as a TSV the device's light reader reads."""
    from edgekit.export.quantize import quantize_dynamic_bundle

    n, data = 6, sst2_dir / "dev.tsv"
    int8 = quantize_dynamic_bundle(tiny_classifier_bundle, tmp_path / "tiny-cls-int8")
    launcher = emulated.write_launcher(tmp_path / "pi-python")
    config = DeployConfig(limit=n, warmup=0, remote_dir=str(tmp_path / "pi home"), remote_python=str(launcher))
    for bundle in (tiny_classifier_bundle.path, int8.path):
        host, pulled = tmp_path / "host" / bundle.name, tmp_path / "pulled" / bundle.name
        run(bundle, data, host, RunConfig(limit=n, warmup=0, progress=False))
        report = deploy(sshd, bundle, data, pulled, config)
        assert report.remote_exit == 0
        arm, here = (json.loads((d / "metrics.json").read_text()) for d in (pulled, host))
        assert arm["device"]["arch"] == "aarch64" and arm["task"] == "text-classification"
        assert json.loads((pulled / "predictions.json").read_text()) == json.loads(
            (host / "predictions.json").read_text()
        )
        assert (arm["accuracy"], arm["macro_f1"], arm["n_examples"]) == (here["accuracy"], here["macro_f1"], n)
        fields = {**COMMON_FIELDS, **CLASSIFICATION.record_fields}
        conf = [
            [(r["id"], r["confidence"]) for r in read_log(d / "predictions.jsonl", fields=fields)]
            for d in (pulled, host)
        ]
        assert conf[0] == conf[1]


def test_a_tagger_bundle_answers_on_the_emulated_pi_as_on_the_host(
    emulated, sshd, tiny_tagger_bundle, wnut_excerpt, tmp_path
) -> None:
    """A token-classification int8 bundle through ``edgekit deploy`` to the emulated Pi: every word's tag and the
    entity scores are the host's; the CoNLL file travels as it is and the device's reader reads it."""
    from edgekit.export.quantize import quantize_dynamic_bundle

    n = 8
    int8 = quantize_dynamic_bundle(tiny_tagger_bundle, tmp_path / "tiny-tag-int8")
    launcher = emulated.write_launcher(tmp_path / "pi-python")
    config = DeployConfig(limit=n, warmup=0, remote_dir=str(tmp_path / "pi home"), remote_python=str(launcher))
    host, pulled = tmp_path / "host", tmp_path / "pulled"
    run(int8.path, wnut_excerpt, host, RunConfig(limit=n, warmup=0, progress=False))
    report = deploy(sshd, int8.path, wnut_excerpt, pulled, config)
    assert report.remote_exit == 0
    arm, here = (json.loads((d / "metrics.json").read_text()) for d in (pulled, host))
    assert arm["device"]["arch"] == "aarch64" and arm["task"] == "token-classification"
    assert json.loads((pulled / "predictions.json").read_text()) == json.loads((host / "predictions.json").read_text())
    assert (arm["f1"], arm["surface_f1"], arm["n_examples"]) == (here["f1"], here["surface_f1"], n)


def test_deploy_over_ssh_to_an_emulated_pi(emulated, sshd, tiny_bundles, dev_path, tmp_path) -> None:
    """``edgekit deploy`` to a real sshd whose Python is the emulated Pi's: every bundle of ``tiny_bundles``."""
    n = 5
    launcher = emulated.write_launcher(tmp_path / "pi-python")
    config = DeployConfig(limit=n, warmup=0, remote_dir=str(tmp_path / "pi home"), remote_python=str(launcher))
    for bundle in tiny_bundles:
        host, pulled = tmp_path / "host" / bundle.name, tmp_path / "pulled" / bundle.name
        run(bundle, dev_path, host, RunConfig(limit=n, warmup=0, progress=False))
        report = deploy(sshd, bundle, dev_path, pulled, config)
        assert report.remote_exit == 0 and {"metrics.json", "predictions.json"} <= set(report.pulled)
        assert_answers_like_the_host(pulled, host, n)
        assert json.loads((pulled / "metrics.json").read_text())["bundle"]["name"] == load_bundle(bundle).manifest.name


def test_a_fit_against_the_emulated_pi(emulated, sshd, tiny_bundle, dev_examples, tmp_path) -> None:
    """``edgekit fit --device ssh://...`` whose remote Python is the emulated Pi's: every candidate built here runs
    there (one rung: the whole eight questions); the times are emulation time, so what is checked is the plumbing, not the choice."""
    from edgekit.cli import main
    from edgekit.squad import squad_json

    eval_file = tmp_path / "eight.json"
    eval_file.write_text(json.dumps(squad_json(dev_examples[:8])))
    launcher = emulated.write_launcher(tmp_path / "pi-python")
    out = tmp_path / "fit"
    argv = ["fit", str(tiny_bundle.path), "--eval", str(eval_file), "--max-mb", "25", "--backends", "onnxruntime"]
    argv += ["--rungs", "8", "--warmup", "0", "--out", str(out), "--device", f"ssh://{sshd.user}@127.0.0.1:{sshd.port}"]
    argv += ["-i", str(sshd.identity), "--ssh-option", sshd.options[0], "--remote-python", str(launcher)]
    argv += ["--remote-dir", str(tmp_path / "pi home")]
    assert main(argv) == 0
    doc = json.loads((out / "fit.json").read_text())
    assert doc["status"] == "finished" and doc["chosen"]
    for c in (c for c in doc["candidates"] if c["measurements"]):
        metrics = json.loads((out / c["measurements"][-1]["run_dir"] / "metrics.json").read_text())
        assert metrics["device"]["arch"] == "aarch64" and "emulation" in metrics["device"]["emulated"]
