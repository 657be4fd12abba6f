"""`edgekit deploy` against a real sshd on loopback and the real adb binary.

The "device" here is this machine reached through ssh: the same commands, quoting,
transfers and resume logic a Raspberry Pi or Termux phone gets. The remote
directory has spaces and quotes in its name, so any quoting slip breaks the test.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from device_tools import free_port, require

from edgekit.device_runners.deploy import DeployConfig, SshTarget, _join, deploy, parse_target, remote_path
from edgekit.errors import DeviceError, EdgekitError
from edgekit.predlog import read_log
from edgekit.runner import RunConfig, run

AWKWARD = 'dir with space\'s "quotes" $HOME `x`'


def _cwd(p: psutil.Process) -> Path | None:
    try:
        return Path(p.cwd())
    except (psutil.Error, OSError):
        return None


def _config(tmp_path: Path, **kw) -> DeployConfig:
    return DeployConfig(remote_dir=str(tmp_path / "device" / AWKWARD), remote_python=sys.executable, warmup=0, **kw)


def test_parse_target() -> None:
    assert parse_target("ssh://pi@raspberrypi.local:2222") == SshTarget("raspberrypi.local", "pi", 2222)
    assert parse_target("ssh://10.0.0.7") == SshTarget("10.0.0.7")
    assert parse_target("ssh://u@[fe80::1]:22") == SshTarget("fe80::1", "u", 22)
    assert parse_target("ssh://pi@pi5:22/home/pi/edgekit") == SshTarget("pi5", "pi", 22, remote_dir="/home/pi/edgekit")
    assert parse_target("ssh://pi@pi5/") == SshTarget("pi5", "pi")
    assert parse_target("adb") == ("adb", None)
    assert parse_target("adb:R58M123") == ("adb", "R58M123")
    with pytest.raises(EdgekitError, match="expected ssh://"):
        parse_target("pi@raspberrypi")


def test_remote_quoting_survives_a_real_shell() -> None:
    """Every argument comes back from sh exactly as given; `~/` still expands to the remote home."""
    args = ["a b", "it's", '"q"', "$(touch /tmp/pwned)", "`id`", "semi;colon", "new\nline"]
    out = subprocess.run(["sh", "-c", "printf '%s\\0' " + _join(args)], capture_output=True, text=True, check=True)
    assert out.stdout.split("\0")[:-1] == args
    home = subprocess.run(["sh", "-c", "printf %s " + remote_path("~/x y")], capture_output=True, text=True)
    assert home.stdout == os.path.expanduser("~/x y")


@pytest.mark.slow
def test_deploy_over_ssh_matches_local_run_and_skips_present_files(sshd, minilm_bundle, dev_path, tmp_path) -> None:
    local = run(minilm_bundle.path, dev_path, tmp_path / "local", RunConfig(limit=6, warmup=0, progress=False))
    config = _config(tmp_path, limit=6)
    first = deploy(sshd, minilm_bundle.path, dev_path, tmp_path / "pulled", config)
    assert any(p.startswith("bundles/") for p in first.pushed) and "code/edgekit/runner.py" in first.pushed
    pulled = tmp_path / "pulled"
    assert json.loads((pulled / "predictions.json").read_text()) == json.loads(
        (tmp_path / "local" / "predictions.json").read_text()
    )
    metrics = json.loads((pulled / "metrics.json").read_text())
    assert metrics["exact_match"] == local["exact_match"] and metrics["n_questions"] == 6
    assert (tmp_path / "device" / AWKWARD / first.remote_run_dir.split(AWKWARD + "/")[1]).is_dir()

    second = deploy(sshd, minilm_bundle.path, dev_path, tmp_path / "pulled2", config)
    assert second.pushed == [] and len(second.skipped) == len(first.pushed)
    assert json.loads((tmp_path / "pulled2" / "metrics.json").read_text())["resumed_from"] == 6


def test_deploy_runs_the_device_side_runtime_asked_for(sshd, minilm_bundle, dev_path, tmp_path) -> None:
    """--backend travels to the device's runner (here OpenVINO, where the device has it); a runtime that does
    not run the bundle's format is refused before anything travels."""
    pytest.importorskip("openvino")
    deploy(sshd, minilm_bundle.path, dev_path, tmp_path / "ov", _config(tmp_path, limit=3, backend="openvino"))
    assert json.loads((tmp_path / "ov" / "metrics.json").read_text())["backend"] == "openvino"
    with pytest.raises(EdgekitError, match="backend litert does not run onnx models"):
        deploy(sshd, minilm_bundle.path, dev_path, tmp_path / "lr", _config(tmp_path, limit=3, backend="litert"))
    assert not (tmp_path / "lr").exists()


@pytest.mark.slow
def test_deploy_resumes_after_the_remote_runner_is_killed(sshd, minilm_bundle, dev_path, tmp_path) -> None:
    n = 60
    device_dir = tmp_path / "device" / AWKWARD
    key = sshd.identity
    argv = [sys.executable, "-m", "edgekit.cli", "deploy", f"ssh://{sshd.user}@127.0.0.1:{sshd.port}"]
    argv += [str(minilm_bundle.path), "--dataset", str(dev_path), "--out", str(tmp_path / "pulled")]
    argv += ["--limit", str(n), "--warmup", "0", "--remote-dir", str(device_dir), "--remote-python", sys.executable]
    argv += ["-i", str(key), "--ssh-option", sshd.options[0]]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and time.monotonic() < deadline and proc.poll() is None:
        logs = list(device_dir.glob("runs/*/predictions.jsonl"))
        if logs and len(read_log(logs[0], repair=False)) >= 5:
            for p in psutil.process_iter(["cmdline"]):
                cmd = p.info["cmdline"] or []
                # this test's remote runner only: it runs in the device directory (other runs may share the host)
                if "edgekit.cli" in cmd and "run" in cmd and p.pid != proc.pid and _cwd(p) == device_dir:
                    os.kill(p.pid, signal.SIGKILL)
                    killed = p.pid
        time.sleep(0.02)
    _, err = proc.communicate(timeout=60)
    assert killed is not None, f"runner finished before it could be killed: {err}"
    assert proc.returncode == 3 and "resume" in err  # 3: the device's run did not finish (not a user error)
    before = len(read_log(logs[0]))
    assert 5 <= before < n

    result = subprocess.run(argv, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "pulled" / "metrics.json").read_text())
    assert metrics["resumed_from"] >= before and metrics["n_questions"] == n
    ids = [r["id"] for r in read_log(tmp_path / "pulled" / "predictions.jsonl")]
    assert len(ids) == len(set(ids)) == n
    local = run(minilm_bundle.path, dev_path, tmp_path / "local", RunConfig(limit=n, warmup=0, progress=False))
    assert json.loads((tmp_path / "pulled" / "predictions.json").read_text()) == json.loads(
        (tmp_path / "local" / "predictions.json").read_text()
    )
    assert metrics["f1"] == local["f1"]


def test_deploy_refuses_a_bundle_that_does_not_verify(sshd, minilm_bundle, dev_path, tmp_path) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(minilm_bundle.path, broken)
    with open(broken / "tokenizer.json", "a") as fh:
        fh.write(" ")
    with pytest.raises(EdgekitError, match=r"tokenizer\.json"):
        deploy(sshd, broken, dev_path, tmp_path / "out", _config(tmp_path, limit=1))
    assert not (tmp_path / "device").exists()  # nothing was sent


def test_unreachable_host_is_a_clear_error(minilm_bundle, dev_path, tmp_path) -> None:
    require("ssh", "openssh-client")
    target = SshTarget("127.0.0.1", "nobody", free_port(), options=("ConnectTimeout=5",))
    with pytest.raises(DeviceError, match=r"ssh://nobody@127.0.0.1:\d+: ssh failed: .*refused"):
        deploy(target, minilm_bundle.path, dev_path, tmp_path / "out", _config(tmp_path, limit=1))


def test_adb_with_no_device_attached_is_a_clear_error(tmp_path, minilm_bundle, dev_path) -> None:
    adb = require("adb", "adb")
    env = {**os.environ, "ANDROID_ADB_SERVER_PORT": str(free_port()), "HOME": str(tmp_path)}
    argv = [sys.executable, "-m", "edgekit.cli", "deploy", "adb:emulator-5554", str(minilm_bundle.path)]
    argv += ["--dataset", str(dev_path), "--out", str(tmp_path / "out")]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    finally:
        subprocess.run([adb, "kill-server"], env=env, capture_output=True)
    assert result.returncode == 3  # the device is not there: DeviceError, not bad input
    assert "adb could not reach device emulator-5554" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_fleet_deploys_in_parallel_and_a_failing_device_does_not_stop_the_others(
    sshd, tiny_bundle, dev_path, tmp_path
):
    """Two real sshd on loopback, one target nobody answers and a phone adb cannot find: two results, the
    failures reported each on its own line, exit 3."""
    from device_tools import loopback_sshd

    from edgekit.export.report import write_report

    with loopback_sshd(tmp_path / "sshd2") as second:
        # one key for the fleet: the second device also accepts the first's client key
        (tmp_path / "sshd2" / "authorized_keys").write_text(Path(f"{sshd.identity}.pub").read_text())
        targets = tmp_path / "fleet.txt"
        # both "devices" are this machine: each gets its own working directory in its target (ssh://host/DIR)
        second_spec = f"ssh://{second.user}@127.0.0.1:{second.port}{tmp_path}/device two"
        targets.write_text(
            f"# two devices, one that is off, a phone not plugged in\n{second_spec}\nadb:NO-SUCH-PHONE\n"
        )
        argv = [sys.executable, "-m", "edgekit.cli", "deploy", f"ssh://{sshd.user}@127.0.0.1:{sshd.port}"]
        argv += [f"ssh://{sshd.user}@127.0.0.1:{free_port()}", str(tiny_bundle.path), "--targets-file", str(targets)]
        argv += ["--dataset", str(dev_path), "--out", str(tmp_path / "fleet"), "--limit", "3", "--warmup", "0"]
        argv += ["--remote-dir", str(tmp_path / "devices"), "--remote-python", sys.executable, "-i", str(sshd.identity)]
        argv += ["--ssh-option", sshd.options[0], "--ssh-option", "ConnectTimeout=5"]
        adb = require("adb", "adb")
        env = {**os.environ, "ANDROID_ADB_SERVER_PORT": str(free_port()), "HOME": str(tmp_path)}  # adb of its own
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)
        finally:
            subprocess.run([adb, "kill-server"], env=env, capture_output=True)
    assert proc.returncode == 3, proc.stderr  # a device failed: DeviceError's exit status
    lines = proc.stdout.splitlines()
    assert len(lines) == 5 and lines[-1].startswith("2 of 4 devices finished"), proc.stdout
    ok = [line for line in lines[:4] if " F1 " in line]
    failed = [line for line in lines[:4] if "FAILED (exit 3)" in line and "ssh failed" in line]
    phone = [line for line in lines[:4] if "FAILED (exit 3)" in line and "NO-SUCH-PHONE" in line]
    assert len(ok) == 2 and len(failed) == 1 and len(phone) == 1, proc.stdout
    runs = sorted((tmp_path / "fleet").glob("*/metrics.json"))
    assert len(runs) == 2 and all(json.loads(p.read_text())["n_questions"] == 3 for p in runs)
    fleet = json.loads((tmp_path / "fleet" / "fleet.json").read_text())
    assert fleet["status"] == "finished" and [d["ok"] for d in fleet["devices"]].count(True) == 2
    report = write_report([tmp_path / "fleet"], tmp_path / "report")  # the fleet's directory merges its devices
    assert len(report["rows"]) == 2


def test_no_spin_reaches_the_devices_session_and_names_its_run(sshd, tiny_bundle, dev_path, tmp_path) -> None:
    report = deploy(sshd, tiny_bundle.path, dev_path, tmp_path / "ns", _config(tmp_path, limit=2, spin=False))
    assert report.remote_run_dir.endswith("-nospin")
    assert json.loads((tmp_path / "ns" / "metrics.json").read_text())["spin"] is False


LATENCY = {"n": 2, "mean": 5.0, "p50": 9.0, "p90": 6.0, "p99": 6.0, "min": 4.0, "max": 6.0}
ABSURD = {
    "run_id": "RUN_ID",
    "task": "extractive-qa",
    "exact_match": 50.0,
    "f1": 60.0,
    "n_questions": 2,
    "latency_ms": LATENCY,
    "peak_rss_mb": 100.0,
    "throughput_qps": 200.0,
    "backend": "litert",
    "bundle": {"name": "b", "format": "onnx", "precision": "fp32", "model_size_mb": 1.0, "params": 1, "layers": 1},
}
# consistent in itself, but of another model: what the run id alone could not tell apart
FORGED = {**ABSURD, "latency_ms": {**LATENCY, "p50": 5.0}, "backend": "onnxruntime"}
FORGED["bundle"] = {**ABSURD["bundle"], "model_sha256": "0" * 64}

HOSTILE_RUNNERS = {
    # a device whose Python is not the runner: it exits 0 having run nothing
    "exits 0 without running": "exit 0",
    # this run's id on a metrics.json whose fields are not a runner's
    "writes bad metrics": 'mkdir -p "$out" && printf \'{"run_id": "%s", "f1": "high"}\' "$id" > "$out/metrics.json"',
    # valid JSON but a prediction file far larger than any run writes
    "sends a huge file": 'mkdir -p "$out" && head -c 3000000 /dev/zero > "$out/predictions.json"',
    # every field of a runner's metrics, of its type, but a median above the maximum and a TFLite-only runtime
    "writes metrics that contradict themselves": f'mkdir -p "$out" && echo {shlex.quote(json.dumps(ABSURD))} '
    '| sed "s/RUN_ID/$id/" > "$out/metrics.json"',
    "writes a run of another model": f'mkdir -p "$out" && echo {shlex.quote(json.dumps(FORGED))} '
    '| sed "s/RUN_ID/$id/" > "$out/metrics.json"',
    # NaN, and nesting deeper than any reader should recurse into
    "writes NaN": 'mkdir -p "$out" && printf \'{"run_id": "%s", "f1": NaN}\' "$id" > "$out/metrics.json"',
    "writes deep nesting": 'mkdir -p "$out" && python3 -c "print(\'[\' * 100000)" > "$out/metrics.json"',
    # a link where the metrics should be: the pull takes plain files only
    "links metrics.json elsewhere": 'mkdir -p "$out" && ln -sf /etc/hostname "$out/metrics.json"',
}


SAID = {  # what the one line says, where the device sent a metrics.json of this run's id
    "writes metrics that contradict themselves": "percentiles in order",
    "writes a run of another model": "the deployed model's",
    "writes NaN": "NaN",
    "writes deep nesting": "nested at most",
    "writes bad metrics": "latency_ms",
}


@pytest.mark.parametrize("behaviour", sorted(HOSTILE_RUNNERS))
def test_a_hostile_device_fails_the_deploy_in_one_line_and_passes_nothing_off(
    sshd, tiny_bundle, dev_path, tmp_path, monkeypatch, behaviour
) -> None:
    """The device's reply is untrusted: each of these is a DeviceError, deploy.json says failed, nothing the
    device sent back is kept as this run's metrics, and an earlier deploy's results in ``--out`` are moved to
    ``previous/``, so nothing beside the failed deploy.json looks like its results."""
    import edgekit.device_runners.deploy as deploy_module

    monkeypatch.setattr(deploy_module, "MAX_RESULT_BYTES", 1 << 20)
    out = tmp_path / "pulled"
    out.mkdir()
    earlier = {"deploy.json": '{"status": "finished"}', "metrics.json": '{"f1": 99.0}', "predictions.json": "{}"}
    for name, text in earlier.items():
        (out / name).write_text(text)
    runner = tmp_path / "hostile-python"
    runner.write_text(
        "#!/bin/sh\n"
        'while [ $# -gt 0 ]; do case "$1" in --out) out="$2";; --run-id) id="$2";; esac; shift; done\n'
        f"{HOSTILE_RUNNERS[behaviour]}\n"
    )
    runner.chmod(0o755)
    config = DeployConfig(remote_dir=str(tmp_path / "device"), remote_python=str(runner), warmup=0, limit=2)
    with pytest.raises(DeviceError) as err:
        deploy(sshd, tiny_bundle.path, dev_path, out, config)
    assert "\n" not in str(err.value) and SAID.get(behaviour, "") in str(err.value)
    assert json.loads((out / "deploy.json").read_text())["status"].startswith("failed: ")
    assert not (out / "metrics.json").exists() and not (out / "predictions.json").exists()
    assert (out / "previous" / "metrics.json").read_text() == earlier["metrics.json"]
