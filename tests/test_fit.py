"""``edgekit fit`` end to end: the search picks what measuring every candidate fully picks, while measuring
fewer fully; a killed fit resumes to the same answer; a device over loopback ssh runs the candidates.

The space: the shipped QA student (int8, and its two float-activations forms) and a tiny random model in all its
forms (fp32, int8 7- and 8-bit, int4), on ONNX Runtime with one thread, over the packaged dev excerpt."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgekit.cli import main
from edgekit.jsonfile import read_json

SHIPPED = Path(__file__).resolve().parents[1] / "models" / "minilm-l6-kd-e4-int8-onnx"


def _argv(tiny_bundle, out: Path, *extra: str) -> list[str]:
    return [
        "fit",
        str(SHIPPED),
        str(tiny_bundle.path),
        "--eval",
        "packaged:dev",
        "--max-mb",
        "25",
        "--max-p50-ms",
        "2000",
        "--backends",
        "onnxruntime",
        "--threads",
        "1",
        "--rungs",
        "30",
        "--warmup",
        "0",
        "--out",
        str(out),
        *extra,
    ]


@pytest.fixture(scope="module")
def search_out(tiny_bundle, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fit") / "search"
    assert main(_argv(tiny_bundle, out)) == 0
    return out


@pytest.fixture(scope="module")
def searched(search_out) -> dict:
    return read_json(search_out / "fit.json")


def test_the_search_picks_what_measuring_every_candidate_picks(searched, tiny_bundle, tmp_path) -> None:
    assert main(_argv(tiny_bundle, tmp_path / "all", "--exhaustive")) == 0
    brute = read_json(tmp_path / "all" / "fit.json")
    assert searched["chosen"] and searched["chosen"] == brute["chosen"]
    assert searched["chosen"].startswith("s0-")  # the trained student, not the random one
    cost, brute_cost = searched["cost"], brute["cost"]
    assert brute_cost["measured_on_all"] == brute_cost["within_size"] == 7
    # the random model's forms score far below the student on the first 30 questions: never measured on all
    assert cost["measured_on_all"] < cost["within_size"] and cost["examples_answered"] < brute_cost["examples_answered"]
    dropped = [c for c in searched["candidates"] if c["status"].startswith("dropped after 30")]
    assert dropped and all(c["candidate"]["start"] == str(tiny_bundle.path) for c in dropped)


def test_the_answer_comes_with_its_evidence(searched, search_out) -> None:
    chosen = next(c for c in searched["candidates"] if c["candidate"]["id"] == searched["chosen"])
    full = chosen["measurements"][-1]
    lo, hi = full["score_ci"]
    assert lo <= full["score"] <= hi and full["n"] == chosen["measurements"][-1]["n"] > 30
    metrics = read_json(search_out / full["run_dir"] / "metrics.json")
    assert metrics["f1"] == pytest.approx(full["score"], abs=0.01)  # the runner's figure, on the device
    assert searched["chosen"] in searched["pareto"]
    run = searched["commands"][-1]
    built = chosen["candidate"]["form"] != "as-is"
    assert run[:2] == ["edgekit", "run"] and "--threads" in run
    assert Path(run[2]) == (search_out / chosen["bundle"] if built else SHIPPED)
    if built:  # the command that makes the form from the start, into the bundle the run measures
        make = searched["commands"][0]
        assert make[:2] == ["edgekit", "export"] and make[3:5] == [str(SHIPPED), run[2]]
    assert (search_out / "fit.md").read_text().count("(chosen)") == 1
    assert (search_out / "fit.png").stat().st_size > 0 and (search_out / "report" / "report.json").is_file()


def test_a_killed_fit_resumes_to_the_same_answer(searched, tiny_bundle, tmp_path) -> None:
    out = tmp_path / "killed"
    argv = [sys.executable, "-m", "edgekit.cli", *_argv(tiny_bundle, out)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not list(out.glob("runs/*/predictions.jsonl")) and proc.poll() is None:
        assert time.time() < deadline
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert main(_argv(tiny_bundle, out)) == 0
    resumed = read_json(out / "fit.json")
    assert resumed["chosen"] == searched["chosen"] and resumed["status"] == "finished"


def test_a_fit_with_another_budget_reuses_every_measurement(searched, search_out, tiny_bundle, capsys) -> None:
    """Into the same --out: nothing is answered again; settings other than the budget must match."""
    logs = {p: p.read_bytes() for p in search_out.glob("runs/*/predictions.jsonl")}
    assert main([*_argv(tiny_bundle, search_out), "--max-p50-ms", "5000"]) == 0
    assert {p: p.read_bytes() for p in logs} == logs
    assert read_json(search_out / "fit.json")["chosen"] == searched["chosen"]
    before = (search_out / "fit.json").read_bytes()
    assert main([*_argv(tiny_bundle, search_out), "--seed", "1"]) == 2
    assert "the same settings" in capsys.readouterr().err and (search_out / "fit.json").read_bytes() == before


@pytest.mark.slow
def test_a_fit_runs_its_candidates_on_a_device_over_ssh(sshd, tiny_bundle, tmp_path) -> None:
    """The plumbing through a real sshd on loopback (deploy per candidate and rung); times are this machine's."""
    out = tmp_path / "remote"
    argv = ["fit", str(tiny_bundle.path), "--eval", "packaged:dev", "--max-mb", "25", "--backends", "onnxruntime"]
    argv += [
        "--rungs",
        "20",
        "--warmup",
        "0",
        "--out",
        str(out),
        "--device",
        f"ssh://{sshd.user}@127.0.0.1:{sshd.port}",
    ]
    argv += ["-i", str(sshd.identity), "--ssh-option", sshd.options[0], "--remote-python", sys.executable]
    argv += ["--remote-dir", str(tmp_path / "device")]
    assert main(argv) == 0
    doc = json.loads((out / "fit.json").read_text())
    measured = [c for c in doc["candidates"] if c["measurements"]]
    assert len(measured) == 4 and doc["chosen"]
    for c in measured:
        deploy = json.loads((out / c["measurements"][-1]["run_dir"] / "deploy.json").read_text())
        assert deploy["status"] == "finished" and deploy["target"].startswith("ssh://")
