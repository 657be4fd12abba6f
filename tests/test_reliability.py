"""Never lose a user's data, never trust a file: each class of fault, over every command it applies to.

The one-line refusals themselves are in the error catalog (``tests/error_catalog.py``, run by
``tests/test_errors.py``); here is what a refusal must also guarantee, and what must still work:

1. destinations: no writing command touches the working directory, a directory of someone
   else's files, or its own source, and the files there are byte for byte as before; an earlier
   output of the same kind is replaced whole, and only when every file in it is one edgekit wrote;
3. run directories: two runs into one directory cannot both write (an OS lock); a larger
   ``--limit`` still resumes;
4. deploy: results of an earlier run are never pulled back as this run's;
5. memory: a question's windows reach the model in bounded chunks, and the bound on context
   length is a clear refusal;
6. a dataset path that is not UTF-8 still gives valid JSON results.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from edgekit.cli import main
from edgekit.destination import LOCK_FILE
from edgekit.runner import QAModel, RunConfig, run

SENTINEL = "years of work"


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` (not following links) and its sha256."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, dev_examples) -> Path:
    """Three real dev questions as a small SQuAD file."""
    from error_catalog import VALID

    path = tmp_path_factory.mktemp("data") / "three.json"
    obj = json.loads(json.dumps(VALID))
    qas = obj["data"][0]["paragraphs"][0]["qas"]
    qas.append({"id": "q3", "question": "Is Paris in France?", "answers": [{"text": "France", "answer_start": 12}]})
    path.write_text(json.dumps(obj))
    return path


@pytest.fixture(scope="module")
def a_run(tmp_path_factory, tiny_bundle, dataset) -> Path:
    out = tmp_path_factory.mktemp("runs") / "tiny"
    run(tiny_bundle.path, dataset, out, RunConfig(warmup=0, progress=False))
    return out


# every command that writes a directory, as (name, argv for OUT); each refuses before its expensive work
def writers(bundle: Path, dataset: Path, run_dir: Path, work: Path) -> dict[str, Callable[[str], list[str]]]:
    recipe = work / "recipe.toml"

    def distill(out: str) -> list[str]:
        path = Path(os.path.abspath(out))
        recipe.write_text(f'name = "{path.name}"\noutput_dir = "{path.parent}"\n')
        return ["distill", "--recipe", str(recipe), "--no-eval"]

    return {
        "export onnx": lambda out: ["export", "onnx", "packaged:all-MiniLM-L6-v2", out, "--validate-n", "0"],
        "export int8": lambda out: ["export", "int8", str(bundle), out],
        "export int4": lambda out: ["export", "int4", str(bundle), out],
        "export fuse": lambda out: ["export", "fuse", str(bundle), out, "--validate-dataset", str(dataset)],
        "export augment-questions": lambda out: [
            "export",
            "augment-questions",
            str(bundle),
            out,
            "--train",
            str(dataset),
        ],
        "run": lambda out: ["run", str(bundle), "--dataset", str(dataset), "--out", out, "--no-progress"],
        "report": lambda out: ["report", str(run_dir), "--out", out],
        "deploy": lambda out: ["deploy", "ssh://127.0.0.1:9", str(bundle), "--dataset", str(dataset), "--out", out],
        "distill": distill,
        "demo": lambda out: ["demo", "--out", out],
    }


WRITERS = [
    "export onnx",
    "export int8",
    "export int4",
    "export fuse",
    "export augment-questions",
    "run",
    "report",
    "deploy",
    "distill",
    "demo",
]


@pytest.mark.parametrize("where", ["the working directory", "its parent", "a directory of other files", "under a file"])
@pytest.mark.parametrize("command", WRITERS)
def test_no_command_writes_over_what_it_did_not_make(
    command, where, tiny_bundle, dataset, a_run, tmp_path, monkeypatch, capsys
) -> None:
    home = tmp_path / "home"
    cwd = home / "project"
    cwd.mkdir(parents=True)
    (cwd / "thesis.tex").write_text(SENTINEL)
    (home / "notes.txt").write_text(SENTINEL)
    monkeypatch.chdir(cwd)
    out = {
        "the working directory": ".",
        "its parent": "..",
        "a directory of other files": str(cwd),
        "under a file": str(cwd / "thesis.tex" / "out"),  # refused before anything loads, not when it is made
    }[where]
    argv = writers(tiny_bundle.path, dataset, a_run, tmp_path)[command](out)
    before = snapshot(tmp_path)  # the recipe file the distill case writes is the test's, not the command's
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "output directory" in err, err
    assert snapshot(tmp_path) == before


def test_an_interrupted_command_says_resume_only_where_it_resumes(
    tiny_bundle, dataset, tmp_path, monkeypatch, capsys
) -> None:
    import edgekit.cli
    import edgekit.export.cli

    def interrupted(args) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(edgekit.cli, "cmd_run", interrupted)
    monkeypatch.setattr(edgekit.export.cli, "cmd_export_int8", interrupted)
    assert main(["run", str(tiny_bundle.path), "--dataset", str(dataset), "--out", str(tmp_path / "run")]) == 130
    assert capsys.readouterr().err == "edgekit: interrupted; re-run the same command to resume\n"
    assert main(["export", "int8", str(tiny_bundle.path), str(tmp_path / "int8")]) == 130
    assert capsys.readouterr().err == "edgekit: interrupted\n"


def test_the_sweep_refuses_too(tiny_bundle, dataset, tmp_path) -> None:
    from edgekit.device_runners.desktop.sweep import main as sweep

    (tmp_path / "thesis.tex").write_text(SENTINEL)
    before = snapshot(tmp_path)
    assert sweep([str(tiny_bundle.path), "--dataset", str(dataset), "--out", str(tmp_path), "--threads", "1"]) == 2
    assert snapshot(tmp_path) == before


def test_a_source_is_never_a_destination(tiny_bundle, tmp_path, capsys) -> None:
    """The bundle a step reads, its parent and a place inside it are refused, and the bundle still verifies."""
    before = snapshot(tiny_bundle.path.parent)
    for out in (tiny_bundle.path, tiny_bundle.path.parent, tiny_bundle.path / "int8"):
        assert main(["export", "int8", str(tiny_bundle.path), str(out)]) == 2
        assert "apart from the input" in capsys.readouterr().err
    assert snapshot(tiny_bundle.path.parent) == before
    assert main(["verify", str(tiny_bundle.path)]) == 0


def test_making_a_bundle_never_writes_into_its_source(tiny_bundle, dataset, tmp_path) -> None:
    """ONNX Runtime's quantizers and optimizer write scratch files beside the model they read: never the source's."""
    before, touched = snapshot(tiny_bundle.path), tiny_bundle.path.stat().st_mtime_ns
    for step, extra in (("int8", []), ("int8", ["--static", "minmax", "--calibration-data", str(dataset)])):
        out = tmp_path / f"{step}-{len(extra)}"
        assert main(["export", step, str(tiny_bundle.path), str(out), *extra]) == 0
    assert main(["export", "int4", str(tiny_bundle.path), str(tmp_path / "int4")]) == 0
    assert main(["export", "fuse", str(tiny_bundle.path), str(tmp_path / "fused"), "--validate-n", "2"]) == 0
    # a scratch file made and deleted again still changes the directory's mtime
    assert tiny_bundle.path.stat().st_mtime_ns == touched
    assert snapshot(tiny_bundle.path) == before and sorted(p.name for p in tiny_bundle.path.iterdir()) == sorted(
        ["manifest.json", "model.onnx", "tokenizer.json"]
    )


def test_a_link_planted_as_the_lock_is_refused_and_its_target_kept(tiny_bundle, dataset, tmp_path, capsys) -> None:
    precious = tmp_path / "precious.txt"
    precious.write_text(SENTINEL)
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_FILE).symlink_to(precious)
    assert main(["run", str(tiny_bundle.path), "--dataset", str(dataset), "--out", str(out), "--no-progress"]) == 2
    assert "holds other files" in capsys.readouterr().err  # a link is not edgekit's lock: the directory is not empty
    assert precious.read_text() == SENTINEL


def test_an_earlier_output_of_the_same_kind_is_replaced_whole(tiny_bundle, a_run, tmp_path) -> None:
    """Same command, same destination: the new bundle (or report) takes the old one's place, nothing stale stays."""
    out = tmp_path / "int8"
    assert main(["export", "int8", str(tiny_bundle.path), str(out)]) == 0
    first = snapshot(out)
    assert main(["export", "int8", str(tiny_bundle.path), str(out), "--full-range"]) == 0
    assert snapshot(out).keys() == first.keys() and snapshot(out) != first
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary sibling left behind
    rep = tmp_path / "report"
    assert main(["report", str(a_run), "--out", str(rep)]) == 0
    (rep / "sizes.png").unlink()
    assert main(["report", str(a_run), "--out", str(rep)]) == 0
    assert (rep / "sizes.png").is_file()


CHANGES = [
    "a file added",
    "a file edited",
    "a foreign directory with the marker",
    "an empty folder added",
    "a file listed without its hash",
]


@pytest.mark.parametrize(
    ("command", "change"),
    [
        *((c, ch) for c in ("report", "export int8") for ch in CHANGES),
        (
            "report",
            "the record gone",
        ),  # an output of an earlier edgekit, or of none (a bundle's manifest is its record)
    ],
)
def test_an_output_replaced_whole_keeps_a_file_edgekit_did_not_write(
    command, change, tiny_bundle, dataset, a_run, tmp_path, capsys
) -> None:
    """An output made whole and swapped in replaces an earlier one only when every file in it is one edgekit wrote
    there, unchanged (a bundle's manifest lists them, other outputs their record): a user's notes beside a report,
    an edited page, or a directory of someone else's that merely holds a manifest.json, keep every byte."""
    out = tmp_path / "out"
    argv = writers(tiny_bundle.path, dataset, a_run, tmp_path)[command](str(out))
    marker = "report.json" if command == "report" else "manifest.json"
    if change == "a foreign directory with the marker":
        out.mkdir()
        (out / marker).write_text('{"name": "my web app"}')
        (out / "sub").mkdir()
        (out / "sub" / "data.csv").write_text(SENTINEL)
    else:
        assert main(argv) == 0
        if change == "an empty folder added":
            (out / "mine" / "sub").mkdir(parents=True)
        elif change == "a file listed without its hash":  # a record or manifest that vouches for a user's file
            listing = out / ("manifest.json" if command != "report" else ".edgekit-files.json")
            obj = json.loads(listing.read_text())
            (obj["files"] if command != "report" else obj)["notes.md"] = {} if command != "report" else None
            listing.write_text(json.dumps(obj))
            (out / "notes.md").write_text(SENTINEL)
        elif change == "the record gone":
            (out / ".edgekit-files.json").unlink()
        else:
            (out / ("notes.md" if change == "a file added" else marker)).write_text(SENTINEL)
    before = snapshot(out)
    dirs = sorted(p for p in out.rglob("*") if p.is_dir())
    capsys.readouterr()
    assert main(argv) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "left alone" in line and ("did not write or it changed since" in line or "without one" in line), line
    assert snapshot(out) == before and sorted(p for p in out.rglob("*") if p.is_dir()) == dirs
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary sibling left behind


def test_an_interrupt_between_the_swaps_renames_leaves_the_earlier_output(tmp_path, monkeypatch) -> None:
    """Replacing an output is two renames (the old one aside, the new one in): a Ctrl-C between them puts the old
    one back, so the destination holds the earlier output or the new one, never neither."""
    import edgekit.destination as destination

    out = tmp_path / "bundle"
    out.mkdir()
    (out / "manifest.json").write_text('{"files": {}, "was": "old"}')
    renames: list[tuple[str, str]] = []
    real_rename = os.rename

    def interrupted_second_rename(src, dst) -> None:
        renames.append((str(src), str(dst)))
        if len(renames) == 2:  # the new output's rename into place
            raise KeyboardInterrupt
        real_rename(src, dst)

    monkeypatch.setattr(destination.os, "rename", interrupted_second_rename)
    with pytest.raises(KeyboardInterrupt), destination.replacing(out, destination.BUNDLE) as tmp:
        (tmp / "manifest.json").write_text("new")
    monkeypatch.undo()
    assert (out / "manifest.json").read_text() == '{"files": {}, "was": "old"}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # neither the new copy nor the old one aside


def test_two_runs_into_one_directory_cannot_both_write(minilm_bundle, dev_path, tmp_path) -> None:
    """The second ``edgekit run`` is refused while the first holds the lock; the first finishes and resumes cleanly."""
    out = tmp_path / "shared"
    argv = [sys.executable, "-m", "edgekit.cli", "run", str(minilm_bundle.path), "--dataset", str(dev_path)]
    argv += ["--out", str(out), "--limit", "40", "--no-progress", "--threads", "1"]
    first = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "predictions.jsonl").exists() and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.01)
    second = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    _, first_err = first.communicate(timeout=300)
    assert first.returncode == 0, first_err
    assert second.returncode == 2 and f"process {first.pid} is" in second.stderr, second.stderr
    assert second.stderr.count("\n") == 1
    again = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    ids = [json.loads(line)["id"] for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 40


def test_a_larger_limit_resumes(tiny_bundle, dev_path, tmp_path) -> None:
    out = tmp_path / "grow"
    run(tiny_bundle.path, dev_path, out, RunConfig(limit=3, warmup=0, progress=False))
    m = run(tiny_bundle.path, dev_path, out, RunConfig(limit=5, warmup=0, progress=False))
    assert m["resumed_from"] == 3 and m["n_questions"] == 5


@pytest.mark.slow
def test_deploy_never_passes_off_an_earlier_runs_results(sshd, tiny_bundle, dev_path, tmp_path) -> None:
    """A deploy whose remote run fails pulls no metrics: the earlier run's, still on the device, stay there."""
    from edgekit.device_runners.deploy import DeployConfig, deploy
    from edgekit.errors import DeviceError

    device = tmp_path / "device"
    ok = DeployConfig(limit=3, warmup=0, remote_dir=str(device), remote_python=sys.executable)
    deploy(sshd, tiny_bundle.path, dev_path, tmp_path / "first", ok)
    assert json.loads((tmp_path / "first" / "metrics.json").read_text())["n_questions"] == 3
    broken = DeployConfig(limit=3, warmup=0, remote_dir=str(device), remote_python=str(tmp_path / "no-python"))
    with pytest.raises(DeviceError, match="the runner stopped with exit 127"):
        deploy(sshd, tiny_bundle.path, dev_path, tmp_path / "second", broken)
    second = tmp_path / "second"
    assert not (second / "metrics.json").exists() and not (second / "predictions.json").exists()
    record = json.loads((second / "deploy.json").read_text())
    assert record["status"].startswith("failed: ") and record["remote_exit"] == 127
    assert list(device.glob("runs/*/metrics.json"))  # the device's earlier results are where they were


def test_windows_reach_the_model_one_per_call(tiny_bundle) -> None:
    """A long context is many windows, but a runtime call never gets more than one: activations stay bounded."""
    qa = QAModel.load(tiny_bundle.path)
    calls: list[int] = []
    real = qa.backend

    class Counting:  # the real backend, observed
        name, fixed_seq_len = real.name, real.fixed_seq_len

        def __call__(self, feeds):
            calls.append(next(iter(feeds.values())).shape[0])
            return real(feeds)

    qa.backend = Counting()
    context = " ".join(f"Paris is the capital of France number {i}." for i in range(2000))  # ~90 KB
    qa.answer("What is the capital of France?", context)
    assert qa.last_windows > 10 and calls == [1] * qa.last_windows  # one window a call, however long the context


def test_a_dataset_path_that_is_not_utf8_still_gives_valid_results(tiny_bundle, dataset, tmp_path) -> None:
    """Linux file names are bytes: one that is not UTF-8 is recorded as an escape, and the JSON stays valid."""
    odd = Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9.json"))
    odd.write_bytes(dataset.read_bytes())
    out = tmp_path / "out"
    m = run(tiny_bundle.path, odd, out, RunConfig(warmup=0, progress=False))
    assert m["n_questions"] == 3
    text = (out / "metrics.json").read_bytes().decode("utf-8")  # valid UTF-8, valid JSON
    assert json.loads(text)["dataset"]["path"] == str(odd)


def _signals_as_a_shell_gives_them() -> None:
    """A child inherits the test session's SIGINT disposition and signal mask, which libraries loaded by earlier
    tests may have changed (ignored or blocked, a Python child never raises KeyboardInterrupt); a user's shell
    starts it with the defaults."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


@pytest.mark.parametrize("signum", [2, 15, 9], ids=["SIGINT", "SIGTERM", "SIGKILL"])
def test_a_killed_export_leaves_no_partial_output_nor_temporary_copy(minilm_bundle, tmp_path, signum) -> None:
    """``kill`` (SIGTERM) cleans up as Ctrl-C (SIGINT) does: no half bundle, no temporary model copy left. The
    quantizer's copy of the model lives in the partial directory beside the output, never in ``$TMPDIR``, so
    even SIGKILL, which nothing can clean up after, leaves only that partial directory, where a user sees it."""
    import signal

    out, scratch = tmp_path / "out", tmp_path / "tmp"
    scratch.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgekit.cli", "export", "int8", str(minilm_bundle.path), str(out)],
        env={**os.environ, "TMPDIR": str(scratch)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_signals_as_a_shell_gives_them,
    )
    deadline = time.time() + 120
    while not list(tmp_path.glob(".out.*.partial/.scratch/source.onnx")) and proc.poll() is None:
        assert time.time() < deadline
        time.sleep(0.05)  # until the quantizer's copy of the model exists
    assert proc.poll() is None, "the export ended before it could be stopped"
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    # ONNX Runtime writes its session id to $TMPDIR/.ses at import (docs/runner.md); edgekit puts nothing there
    assert not out.exists() and [p.name for p in scratch.iterdir()] in ([], [".ses"])
    if signum == signal.SIGKILL:
        [partial] = [p for p in tmp_path.iterdir() if p != scratch]
        assert partial.name.startswith(".out.") and partial.name.endswith(".partial")
        return
    assert proc.returncode == (130 if signum == signal.SIGINT else 143), err
    assert "interrupted" in err and "Traceback" not in err
    assert sorted(tmp_path.iterdir()) == [scratch]


@pytest.mark.parametrize("name", ["predictions.jsonl", "predictions.json", "metrics.json", "run.json"])
def test_a_link_planted_in_a_run_directory_is_never_followed(tiny_bundle, dataset, tmp_path, name, capsys) -> None:
    """A resumed run meets a link where it reads, repairs, appends or replaces a file: the file the link points
    to, outside ``--out``, keeps every byte (the run refuses in one line, or replaces the link itself)."""
    out, victim = tmp_path / "run", tmp_path / "victim.txt"
    assert main(["run", str(tiny_bundle.path), "--dataset", str(dataset), "--out", str(out), "--limit", "1"]) == 0
    # the run's own records and a torn last line: what a resumed run would cut back and append to
    before = (out / "predictions.jsonl").read_text() + '{"id": "tor'
    victim.write_text(before)
    (out / name).unlink()
    (out / name).symlink_to(victim)
    capsys.readouterr()
    rc = main(["run", str(tiny_bundle.path), "--dataset", str(dataset), "--out", str(out), "--limit", "2"])
    assert victim.read_text() == before
    if rc == 0:
        assert not (out / name).is_symlink()
    else:
        [line] = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and line.startswith(f"edgekit: error: {out}") and "expected" in line


@pytest.mark.parametrize(
    "command", ["export int8", "export int4", "export fuse", "export augment-questions", "run", "report", "deploy"]
)
def test_links_planted_in_an_earlier_output_are_never_followed(
    command, tiny_bundle, dataset, a_run, tmp_path, capsys, request
) -> None:
    """Every file a command wrote, replaced by a link to a file elsewhere, then the command again into the same
    ``--out``: each file linked to keeps its bytes and is not written (its mtime is unchanged), whether the
    command refuses, replaces its output whole, or replaces a link with a file."""
    out = tmp_path / "out"
    argv = writers(tiny_bundle.path, dataset, a_run, tmp_path)[command](str(out))
    if command == "deploy":  # to a real device: this machine over the loopback sshd, with the pulled results
        sshd = request.getfixturevalue("sshd")
        argv[1] = f"ssh://{sshd.user}@127.0.0.1:{sshd.port}"
        argv += ["--remote-dir", str(tmp_path / "device"), "--remote-python", sys.executable, "-i", str(sshd.identity)]
        argv += ["--ssh-option", sshd.options[0], "--warmup", "0"]
    main(argv)
    files = sorted(p for p in out.rglob("*") if p.is_file() and not p.is_symlink())
    assert files, f"{command} wrote nothing into {out}"
    victims = {}
    for i, path in enumerate(files):
        victim = tmp_path / f"victim-{i}"
        shutil.copyfile(path, victim)
        victims[victim] = (victim.read_bytes(), victim.stat().st_mtime_ns)
        path.unlink()
        path.symlink_to(victim)
    main(argv)
    capsys.readouterr()
    assert {v: (v.read_bytes(), v.stat().st_mtime_ns) for v in victims} == victims
