"""Distillation under the real launcher: ``torchrun`` with 2 CPU processes (DDP over gloo).

What a multi-process run must do and one process cannot show: one writer for the teacher-logits
cache, one log and one result, and a run killed by the launcher resuming from the checkpoint its
processes wrote, on the batches the uninterrupted run trained on.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from benchmarks.ddp import launcher
from edgekit.errors import InputError
from edgekit.export.recipes import RECIPES_DIR, load_recipe

ROOT = Path(__file__).resolve().parents[1]
COMPUTING = "teacher logits: computing"


def tiny(out: Path, name: str) -> list[str]:
    """The tiny recipe on the packaged MiniLM (teacher and a 2-layer student from its layers): 12 steps."""
    sets = [
        f"output_dir={json.dumps(str(out))}",
        f"name={json.dumps(name)}",
        'teacher.model="packaged:all-MiniLM-L6-v2"',
        "student.layers=[0, 5]",
        "data.train_limit=6",
        "data.max_seq_len=96",
        "data.doc_stride=32",
        "training.batch_size=16",
        "training.learning_rate=3e-4",
        "training.warmup_ratio=0.0",
        "training.max_steps=12",
        "training.save_steps=3",
        "training.logging_steps=1",
        "training.group_by_length=true",
    ]
    return ["--recipe", str(RECIPES_DIR / "tiny-test.toml"), *(a for s in sets for a in ("--set", s))]


def torchrun(args: list[str]) -> list[str]:
    return [*launcher(), "--standalone", "--nproc-per-node", "2", "-m", "edgekit.export.distill", *args]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false"}


def launch(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(torchrun(args), cwd=cwd, env=env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def losses(run_dir: Path) -> dict[int, float]:
    log = json.loads((run_dir / "training_log.json").read_text())
    steps = [e["step"] for e in log if "loss" in e]
    assert steps == sorted(set(steps)), steps  # each step logged once, by one process
    return {e["step"]: e["loss"] for e in log if "loss" in e}


@pytest.mark.slow
def test_two_processes_share_one_cache_and_resume_after_a_kill(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    whole = launch(tiny(out, "whole"), tmp_path)
    assert whole.stderr.count(COMPUTING) == 1  # process 0 filled the cache; process 1 only read it
    assert whole.stdout.count("wrote ") == 1  # one report line, from process 0
    result = json.loads((out / "whole" / "result.json").read_text())
    assert (result["processes"], result["steps"], result["n_questions"]) == (2, 12, 8)
    curve = losses(out / "whole")
    assert list(curve) == list(range(1, 13))
    assert curve[12] < 0.8 * curve[1]
    (cache,) = (out / "cache").iterdir()
    n = result["n_train_features"]
    assert json.loads((cache / "progress.json").read_text()) == {"done": n, "of": n}
    cache_mtimes = {f.name: f.stat().st_mtime_ns for f in cache.iterdir()}

    # the saved student loads in a fresh process and answers through the device runner
    bundle = out / "whole" / "bundle-fp32-onnx"
    answered = subprocess.run(
        [sys.executable, "-m", "edgekit.cli", "run", str(bundle), "--limit", "3", "--out", str(tmp_path / "r")],
        cwd=tmp_path,
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert answered.returncode == 0, answered.stderr[-2000:]
    assert len(json.loads((tmp_path / "r" / "predictions.json").read_text())) == 3

    # the same run killed once it has a checkpoint, then resumed
    killed = subprocess.Popen(
        torchrun(tiny(out, "killed")),
        cwd=tmp_path,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    first = out / "killed" / "checkpoints" / "checkpoint-3" / "trainer_state.json"
    deadline = time.monotonic() + 300
    while not first.is_file() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    # as a machine failure would: the launcher and its workers (each in a session of its own) at once
    group = [psutil.Process(killed.pid), *psutil.Process(killed.pid).children(recursive=True)]
    assert len(group) >= 3
    for p in group:
        p.send_signal(signal.SIGKILL)
    psutil.wait_procs(group, timeout=60)
    killed.wait(timeout=60)
    assert first.is_file() and not (out / "killed" / "result.json").exists()

    resumed = launch(tiny(out, "killed"), tmp_path)
    assert "resuming from" in resumed.stderr and COMPUTING not in resumed.stderr  # the cache is reused as is
    again = json.loads((out / "killed" / "result.json").read_text())
    assert again["steps"] == 12 and again["resumed_from_step"] in (3, 6, 9)
    after = losses(out / "killed")
    assert list(after) == list(range(1, 13))
    # the resumed steps are the uninterrupted run's: same batches, same restored random state
    assert all(after[s] == pytest.approx(curve[s], rel=1e-4) for s in after)
    assert {f.name: f.stat().st_mtime_ns for f in cache.iterdir()} == cache_mtimes


def test_the_global_batch_must_split_over_the_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgekit.export.distill import training_arguments

    monkeypatch.setenv("WORLD_SIZE", "3")
    recipe = load_recipe(RECIPES_DIR / "tiny-test.toml")  # batch_size 8
    with pytest.raises(InputError, match=r"training\.batch_size.*3 processes can split evenly, got 8"):
        training_arguments(recipe, tmp_path / "checkpoints")
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(InputError, match="WORLD_SIZE"):
        training_arguments(recipe, tmp_path / "checkpoints")


def test_resume_skips_a_checkpoint_cut_short_while_being_written(tmp_path: Path) -> None:
    from edgekit.export.distill import last_checkpoint

    assert last_checkpoint(tmp_path / "none") is None
    for step, complete in ((3, True), (6, True), (9, False), (12, False)):
        d = tmp_path / f"checkpoint-{step}"
        d.mkdir()
        (d / "model.safetensors").write_bytes(b"")
        if complete:
            (d / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-x").mkdir()
    assert last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-6")


def test_dropout_off_makes_training_steps_repeatable(minilm_qa) -> None:
    """``training.dropout = 0``: what lets 1 and N processes agree step by step (benchmarks.ddp)."""
    import torch

    from edgekit.export.students import from_teacher_layers

    ids = torch.randint(1000, 2000, (2, 24))

    def twice(dropout: float | None) -> tuple[torch.Tensor, torch.Tensor]:
        model = from_teacher_layers(minilm_qa, [0, 5], dropout).model.train()
        return model(input_ids=ids).start_logits, model(input_ids=ids).start_logits

    a, b = twice(0.0)
    assert torch.equal(a, b)
    a, b = twice(None)  # the checkpoint's own dropout (0.1): two passes differ
    assert not torch.equal(a, b)


@pytest.mark.slow
def test_accelerate_launch_runs_the_same_recipe_on_two_processes(tmp_path: Path) -> None:
    """``accelerate launch --multi_gpu`` starts the same DDP (on a CPU-only machine, over gloo)."""
    accelerate = Path(sys.executable).with_name("accelerate")
    cmd = [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1"]
    cmd += ["--mixed_precision", "no", "--dynamo_backend", "no", "-m", "edgekit.export.distill"]
    cmd += [*tiny(tmp_path / "runs", "acc"), "--set", "training.max_steps=2", "--no-eval"]
    done = subprocess.run(cmd, cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count(COMPUTING) == 1 and done.stdout.count("wrote ") == 1
    result = json.loads((tmp_path / "runs" / "acc" / "result.json").read_text())
    assert (result["processes"], result["steps"]) == (2, 2)
