"""The real runner on an emulated arm64 Debian userland (qemu user mode, Raspberry Pi 5 CPU).

The model is tiny (2 layers, hidden 32: a few MFLOPs per window) because emulated
floating point is hundreds of times slower than the host; what is checked is that
the aarch64 builds of onnxruntime, tokenizers and numpy give the host's answers
through edgekit's own code path.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from device_tools import require

pytestmark = pytest.mark.slow


def arm64_cache() -> Path:
    return Path(os.environ.get("EDGEKIT_ARM64_CACHE", Path.home() / ".cache" / "edgekit" / "arm64"))


@pytest.fixture(scope="module")
def emulated():
    require("qemu-aarch64-static", "qemu-user-static")
    from device_runners.raspberry_pi.emulate import emulated_python

    return emulated_python(arm64_cache())


def test_emulated_arm64_runner_gives_the_hosts_answers(emulated, tiny_bundle, dev_path, tmp_path) -> None:
    from edgekit.predlog import read_log
    from edgekit.runner import RunConfig, run

    n = 12
    host = run(tiny_bundle.path, dev_path, tmp_path / "host", RunConfig(limit=n, warmup=0, progress=False))
    args = ["run", str(tiny_bundle.path), "--dataset", str(dev_path)]
    args += ["--out", str(tmp_path / "arm64"), "--limit", str(n), "--warmup", "0", "--no-progress"]
    proc = emulated.edgekit(args, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]

    arm = json.loads((tmp_path / "arm64" / "metrics.json").read_text())
    assert arm["device"]["arch"] == "aarch64" and "Raspberry Pi 5" in arm["device"]["cpu"]
    assert "emulation" in arm["device"]["emulated"]
    assert arm["device"]["python_executable"].endswith("python3.11")
    host_pred = json.loads((tmp_path / "host" / "predictions.json").read_text())
    arm_pred = json.loads((tmp_path / "arm64" / "predictions.json").read_text())
    assert len(arm_pred) == n and arm_pred == host_pred
    assert (arm["exact_match"], arm["f1"]) == (host["exact_match"], host["f1"])
    # the scores behind the answers agree too, not just the argmax
    conf = {
        d: [(r["id"], r["confidence"]) for r in read_log(tmp_path / d / "predictions.jsonl")] for d in ("host", "arm64")
    }
    assert conf["arm64"] == conf["host"]
