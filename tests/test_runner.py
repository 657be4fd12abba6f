"""End to end: a real bundle answers real dev questions; killed runs resume exactly."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgekit import device, predlog
from edgekit.errors import InputError
from edgekit.runner import RunConfig, run

N = 50


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, minilm_bundle, dev_path):
    out = tmp_path_factory.mktemp("run")
    metrics = run(minilm_bundle.path, dev_path, out, RunConfig(limit=N, progress=False), argv=["test"])
    return out, metrics


def test_metrics_fields(full_run) -> None:
    out, m = full_run
    assert json.loads((out / "metrics.json").read_text()) == m
    assert m["n_questions"] == N and m["n_answered"] == N
    assert 0.0 <= m["exact_match"] <= m["f1"] <= 100.0
    for key in ("p50", "p90", "p99", "mean"):
        assert m["latency_ms"][key] > 0
    assert m["latency_ms"]["p50"] <= m["latency_ms"]["p90"] <= m["latency_ms"]["p99"]
    assert m["model_latency_ms"]["p50"] <= m["latency_ms"]["p50"]
    assert m["cold_start_ms"] > m["load_ms"] > 0
    assert m["throughput_qps"] == pytest.approx(1000 * N / (m["latency_ms"]["mean"] * N))
    # in this process the high-water mark is pytest's whole session's: the runner can only report it, not bound it
    assert 50 < m["peak_rss_mb"] <= round(device.peak_rss_mb(), 1)
    assert m["bundle"]["format"] == "onnx" and m["bundle"]["precision"] == "fp32"
    assert m["bundle"]["params"] > 0 and m["bundle"]["layers"] == 6 and m["bundle"]["size_mb"] > 1
    dev = m["device"]
    assert dev["cpu"] and dev["cores_logical"] >= 1 and dev["arch"] and dev["os"] and dev["memory_mb"] > 0
    assert "onnxruntime" in dev["runtimes"] and "tokenizers" in dev["runtimes"]
    assert m["warmup_runs"] == 3 and m["command"] == ["test"] and m["edgekit_version"]


def test_predictions_files_agree(full_run, dev_examples) -> None:
    out, _ = full_run
    preds = json.loads((out / "predictions.json").read_text())
    records = predlog.read_log(out / "predictions.jsonl")
    assert list(preds) == [ex.id for ex in dev_examples[:N]]
    assert {r["id"]: r["answer"] for r in records} == preds
    by_id = {ex.id: ex for ex in dev_examples}
    for r in records:
        ctx = by_id[r["id"]].context
        assert ctx[r["start_char"] : r["start_char"] + len(r["answer"])] == r["answer"]


def test_finished_run_is_not_redone(full_run, minilm_bundle, dev_path) -> None:
    out, first = full_run
    again = run(minilm_bundle.path, dev_path, out, RunConfig(limit=N, progress=False), argv=["test"])
    assert again["resumed_from"] == N
    assert len(predlog.read_log(out / "predictions.jsonl")) == N
    assert (again["exact_match"], again["f1"]) == (first["exact_match"], first["f1"])


def test_resume_refuses_another_dataset(full_run, minilm_bundle, tmp_path) -> None:
    out, _ = full_run
    other = tmp_path / "other.json"
    other.write_text(
        json.dumps(
            {
                "version": "1.1",
                "data": [
                    {
                        "title": "t",
                        "paragraphs": [
                            {
                                "context": "abc",
                                "qas": [{"id": "x", "question": "q?", "answers": [{"text": "abc", "answer_start": 0}]}],
                            }
                        ],
                    }
                ],
            }
        )
    )
    with pytest.raises(InputError, match="dataset_sha256"):
        run(minilm_bundle.path, other, out, RunConfig(progress=False))


@pytest.mark.parametrize("trial", range(10))
def test_killed_run_resumes_to_identical_predictions(trial, full_run, minilm_bundle, dev_path, tmp_path) -> None:
    """SIGKILL a real `edgekit run` process at a random point, run again, compare with the uninterrupted run.

    The kill lands after a random number of answered questions plus a random delay
    of up to 30 ms, so some trials hit a line being written (torn last line).
    """
    rng = random.Random(trial)
    ref_out, _ = full_run
    out = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "edgekit.cli",
        "run",
        str(minilm_bundle.path),
        "--dataset",
        str(dev_path),
        "--out",
        str(out),
        "--limit",
        str(N),
        "--no-progress",
        "--threads",
        "1",
    ]
    kill_after = rng.randint(1, N - 10)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = out / "predictions.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if log.exists() and log.read_bytes().count(b"\n") >= kill_after:
            break
        time.sleep(0.005)
    time.sleep(rng.uniform(0, 0.03))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(predlog.read_log(log))
    assert 0 < done < N, "the kill should land part-way through the run"
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    records = predlog.read_log(log)
    assert len(records) == N and len({r["id"] for r in records}) == N
    got = json.loads((out / "predictions.json").read_text())
    assert got == json.loads((ref_out / "predictions.json").read_text())
    assert json.loads((out / "metrics.json").read_text())["resumed_from"] == done


def rec(qid: str, **changes) -> str:
    """One log line as the runner writes it."""
    r = {"id": qid, "answer": "x", "start_char": 0, "confidence": 0.5, "latency_ms": 1.0, "model_ms": 0.5}
    return json.dumps({**r, "windows": 1, "peak_rss_mb": 100.0, **changes}) + "\n"


def test_torn_last_line_is_repaired(tmp_path: Path, capsys) -> None:
    log = tmp_path / "predictions.jsonl"
    log.write_text(rec("a") + rec("b") + '{"id": "c", "ans')
    assert [r["id"] for r in predlog.read_log(log)] == ["a", "b"]
    assert "line 3 is incomplete" in capsys.readouterr().err
    assert log.read_text() == rec("a") + rec("b")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (rec("a") + "not json\n" + rec("b"), "line 2"),
        (rec("a") + rec("a"), "each question id once"),
        (rec("a", model_ms=None) + rec("b"), "line 1.*'model_ms' missing"),
        (rec("a").replace("0.5", "NaN", 1) + rec("b"), "line 1"),
        (rec("a") + rec("b", latency_ms=-5), "line 2.*'latency_ms' from 0"),
        (rec("a", confidence=7.5) + rec("b"), "line 1.*'confidence' from 0 to 1"),
        (rec("a") + rec("b", windows=-3), "line 2.*'windows' from 0"),
        (rec("a") + rec("b", model_ms=None), "line 2.*'model_ms' missing"),  # a whole last line: not a torn one
        (rec("a") + '{"id": "b", GARBAGE}\n', "line 2: expected one JSON"),  # ends in its newline: not torn
        (rec("a", model_ms=3e6, latency_ms=0.001), "line 1.*'model_ms' at most 'latency_ms'"),
        (rec("a", answer="", start_char=99), "line 1.*start_char 0 and confidence 0 with an empty answer"),
    ],
    ids=[
        "corrupt middle line",
        "duplicate id",
        "a field missing",
        "NaN",
        "negative",
        "above 1",
        "no window",
        "last",
        "unparsed last",
        "model longer than all",
        "empty answer elsewhere",
    ],
)
def test_corrupt_log_is_an_error(tmp_path: Path, content: str, message: str) -> None:
    from edgekit.tasks.qa import QA

    log = tmp_path / "predictions.jsonl"
    log.write_text(content)
    with pytest.raises(InputError, match=message):
        predlog.read_log(log, check=lambda r: QA.check_record(r, None, None))
    assert log.read_text() == content


DISK_FULL_WRITER = """
import resource, signal, sys
from edgekit.atomic import write_json
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # exceeding the limit: the write fails with EFBIG, as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
try:
    write_json(sys.argv[1], {"big": "x" * 100_000})
except OSError as exc:
    print(exc.errno)
"""


def test_failed_write_leaves_the_old_file_whole(tmp_path: Path) -> None:
    """A write that fails part-way (file size limit: the same failed write(2) as a full disk) changes nothing."""
    import errno

    target = tmp_path / "metrics.json"
    target.write_text('{"old": true}\n')
    proc = subprocess.run([sys.executable, "-c", DISK_FULL_WRITER, str(target)], capture_output=True, text=True)
    assert proc.stdout.strip() == str(errno.EFBIG), proc.stderr
    assert json.loads(target.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temporary file left behind


def test_disk_full_keeps_old_file(tmp_path: Path) -> None:
    """A real full filesystem (a 64 KiB tmpfs, needs root): ENOSPC, old file intact, no temp file."""
    import errno

    from edgekit.atomic import write_json

    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount tmpfs here")
    try:
        target = mnt / "metrics.json"
        write_json(target, {"old": True})
        with pytest.raises(OSError) as err:
            write_json(target, {"big": "x" * 200_000})
        assert err.value.errno == errno.ENOSPC
        assert json.loads(target.read_text()) == {"old": True}
        assert [p.name for p in mnt.iterdir()] == ["metrics.json"]
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_no_spin_turns_onnx_runtimes_spinning_off_and_is_part_of_a_runs_identity(
    tiny_bundle, dev_path, tmp_path, capsys
):
    from edgekit.backends import RuntimeOptions, open_backend
    from edgekit.cli import main

    key = "session.intra_op.allow_spinning"
    assert (
        open_backend(tiny_bundle, RuntimeOptions(spin=False))
        .session.get_session_options()
        .get_session_config_entry(key)
        == "0"
    )
    argv = ["run", str(tiny_bundle.path), "--dataset", str(dev_path), "--out", str(tmp_path / "r"), "--limit", "2"]
    assert main([*argv, "--no-spin", "--no-progress"]) == 0
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["spin"] is False
    capsys.readouterr()
    assert main([*argv, "--no-progress"]) == 2  # resuming with spinning on would mix two measurements
    assert "fields ['spin']" in capsys.readouterr().err  # named, though the default leaves it out of run.json


def test_a_dataset_changed_during_the_run_is_not_scored(minilm_bundle, dev_path, tmp_path, monkeypatch) -> None:
    """The gold answers are read again to score, once the model is gone: from the file the run answered only."""
    import edgekit.runner as runner

    data = tmp_path / "dev.json"
    data.write_bytes(dev_path.read_bytes())
    answer_all = runner._predict_all

    def answer_then_edit(*args, **kwargs) -> None:
        answer_all(*args, **kwargs)
        data.write_bytes(data.read_bytes().replace(b'"Denver Broncos"', b'"Carolina Panthers"', 1))

    monkeypatch.setattr(runner, "_predict_all", answer_then_edit)
    out = tmp_path / "run"
    with pytest.raises(InputError, match="changed during the run") as err:
        run(minilm_bundle.path, data, out, RunConfig(limit=3, progress=False))
    assert str(data) in str(err.value)
    assert len(predlog.read_log(out / "predictions.jsonl")) == 3 and not (out / "metrics.json").exists()
