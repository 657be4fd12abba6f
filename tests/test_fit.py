"""``edgekit fit`` end to end: the search picks what measuring every candidate fully picks, while measuring
fewer fully; a killed fit resumes to the same answer; a device over loopback ssh runs the candidates.

The space: the shipped QA student (int8, and its two float-activations forms) and a tiny random model in all its
forms (fp32, int8 7- and 8-bit, int8 with 4-bit embeddings, int4), on ONNX Runtime with one thread, over the packaged
dev excerpt."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import chain_forms

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
    assert brute_cost["measured_on_all"] == brute_cost["within_size"] == 8
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
    # its own process group, killed whole, as a lost machine or a closed terminal kills the fit and its runs
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while not list(out.glob("runs/*/predictions.jsonl")) and proc.poll() is None:
        assert time.time() < deadline
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
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
    assert "settings.seed" in capsys.readouterr().err and (search_out / "fit.json").read_bytes() == before


def test_students_in_another_order_are_refused(search_out, tiny_bundle, capsys) -> None:
    """Candidates are named by the students' places: an --out whose students moved would answer for others."""
    before = (search_out / "fit.json").read_bytes()
    argv = _argv(tiny_bundle, search_out)
    argv[1], argv[2] = argv[2], argv[1]
    assert main(argv) == 2
    assert "settings.starts_sha256" in capsys.readouterr().err and (search_out / "fit.json").read_bytes() == before


def test_a_teacher_added_later_is_measured_alone_and_sets_the_floor(
    searched, search_out, tiny_bundle, tmp_path
) -> None:
    """The same --out with a --teacher and --min-share: the candidates' logs are reused untouched, the teacher
    answers the same examples, and the answer must keep the share of the teacher's score on all of them."""
    out = tmp_path / "with-teacher"
    shutil.copytree(search_out, out)
    logs = {p.relative_to(out): p.read_bytes() for p in out.glob("runs/*/predictions.jsonl")}
    # the shipped student as its own teacher: its as-is form keeps exactly 100% of it
    assert main([*_argv(tiny_bundle, out), "--teacher", str(SHIPPED), "--min-share", "0.99"]) == 0
    doc = read_json(out / "fit.json")
    assert {p: (out / p).read_bytes() for p in logs} == logs
    teacher = doc["teacher"]
    assert teacher["status"] == "reference" and teacher["candidate"]["id"].startswith("teacher-minilm-l6-kd-e4")
    # measured on every rung the candidates were, and on all of it
    rung_ns = {m["n"] for c in doc["candidates"] for m in c["measurements"]}
    assert {m["n"] for m in teacher["measurements"]} == rung_ns
    full = teacher["measurements"][-1]["score"]
    chosen = next(c for c in doc["candidates"] if c["candidate"]["id"] == doc["chosen"])
    assert chosen["measurements"][-1]["score"] >= 0.99 * full
    for c in doc["candidates"]:
        m = c["measurements"][-1] if c["measurements"] else None
        if c["status"] == "measured on all" and m["score"] < 0.99 * full:
            assert c["candidate"]["id"] != doc["chosen"]
    assert "of teacher" in (out / "fit.md").read_text()
    report = read_json(out / "report" / "report.json")
    assert len(report["rows"]) == 1 + sum(c["status"] == "measured on all" for c in doc["candidates"])


def test_a_floor_no_candidate_can_reach_drops_them_early(tiny_bundle, tmp_path) -> None:
    """The random model against a trained teacher: below half its score with confidence after the first rung."""
    argv = ["fit", str(tiny_bundle.path), "--eval", "packaged:dev", "--max-mb", "25", "--backends", "onnxruntime"]
    argv += ["--threads", "1", "--rungs", "30", "--warmup", "0", "--out", str(tmp_path / "floor")]
    assert main([*argv, "--teacher", str(SHIPPED), "--min-share", "0.5"]) == 0
    doc = read_json(tmp_path / "floor" / "fit.json")
    assert doc["chosen"] is None and doc["cost"]["measured_on_all"] == 0
    assert all("below the floor" in c["status"] for c in doc["candidates"])
    assert [m["n"] for m in doc["teacher"]["measurements"]] == [30]


def test_min_share_needs_a_teacher(tiny_bundle, tmp_path, capsys) -> None:
    argv = ["fit", str(tiny_bundle.path), "--eval", "packaged:dev", "--max-mb", "25", "--min-share", "0.9"]
    assert main([*argv, "--out", str(tmp_path / "x")]) == 2
    assert "--min-share" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_pruned_vocabularies_are_built_once_and_their_commands_rebuild_them(tiny_bundle, tmp_path) -> None:
    """--vocab-keep adds a pruned vocabulary, then int8 with 8- and 4-bit embeddings, from one pruned bundle;
    the commands fit.json gives make the same model file."""
    out = tmp_path / "vocab"
    argv = ["fit", str(tiny_bundle.path), "--eval", "packaged:dev", "--max-mb", "25", "--backends", "onnxruntime"]
    argv += ["--threads", "1", "--rungs", "30", "--warmup", "0", "--out", str(out), "--vocab-keep", "4000"]
    assert main([*argv, "--corpus", "packaged:train", "--english-words", "0"]) == 0
    doc = read_json(out / "fit.json")
    forms = {c["candidate"]["form"]: c for c in doc["candidates"]}
    assert {"vocab4000-int8", "vocab4000-int8-emb4"} <= set(forms)
    assert sorted(p.name for p in (out / "bundles").iterdir() if "vocab" in p.name) == [
        "s0-tiny-random-bert-vocab4000",
        "s0-tiny-random-bert-vocab4000-int8",
        "s0-tiny-random-bert-vocab4000-int8-emb4",
    ]
    c = forms["vocab4000-int8-emb4"]
    prune, int8 = c["make"]
    assert prune[:3] == ["edgekit", "export", "prune-vocab"] and int8[:3] == ["edgekit", "export", "int8"]
    again = tmp_path / "again"
    assert main([*prune[1:3], prune[3], str(again / "pruned"), *prune[5:]]) == 0
    assert main([*int8[1:3], str(again / "pruned"), str(again / "int8"), *int8[5:]]) == 0
    built = read_json(out / c["bundle"] / "manifest.json")
    rebuilt = read_json(again / "int8" / "manifest.json")
    assert rebuilt["files"]["model.onnx"]["sha256"] == built["files"]["model.onnx"]["sha256"]
    assert built["vocab_size"] == 4000


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
    assert len(measured) == 5 and doc["chosen"]
    for c in measured:
        deploy = json.loads((out / c["measurements"][-1]["run_dir"] / "deploy.json").read_text())
        assert deploy["status"] == "finished" and deploy["target"].startswith("ssh://")


# a one-layer student of the packaged MiniLM, a few steps: a recipe that trains in seconds
RECIPE = """
name = "fit-tiny"
[teacher]
model = "packaged:all-MiniLM-L6-v2"
[student]
init = "teacher-layers"
layers = [0]
[data]
max_seq_len = 96
doc_stride = 32
train_limit = 5
dev_limit = 8
[training]
max_steps = 4
batch_size = 2
save_steps = 2
logging_steps = 1
"""


def test_training_past_its_deadline_stops_at_a_checkpoint_and_resumes(tmp_path) -> None:
    from edgekit.export.distill import StoppedAtDeadline, run_distill
    from edgekit.export.recipes import load_recipe

    (tmp_path / "r.toml").write_text(RECIPE)
    recipe = load_recipe(tmp_path / "r.toml", [f"output_dir={json.dumps(str(tmp_path / 'train'))}"])
    with pytest.raises(StoppedAtDeadline) as stopped:
        run_distill(recipe, evaluate=False, deadline=time.time())  # past after its first step
    assert (stopped.value.step, stopped.value.of) == (1, 4)
    assert (recipe.out / "checkpoints" / "checkpoint-1").is_dir() and not (recipe.out / "result.json").exists()
    result = run_distill(recipe, evaluate=False)
    assert result["resumed_from_step"] == 1 and result["steps"] == 4


def test_a_recipe_the_fit_trains_is_searched_after_the_given_students(tmp_path, tiny_bundle, capsys) -> None:
    (tmp_path / "fit-tiny.toml").write_text(RECIPE)
    out = tmp_path / "trained-fit"
    argv = ["fit", str(tiny_bundle.path), "--train-recipes", str(tmp_path / "fit-tiny.toml"), "--eval", "packaged:dev"]
    argv += ["--max-mb", "25", "--backends", "onnxruntime", "litert", "--threads", "1", "--rungs", "30"]
    argv += ["--warmup", "0", "--out", str(out)]
    # a budget spent before training could start: nothing is trained or measured, and fit.json says why
    assert main([*argv, "--time-budget", "0.001s"]) == 0
    assert "not trained, the time budget was spent" in capsys.readouterr().err
    spent = read_json(out / "fit.json")
    assert spent["status"].startswith("time budget") and not (out / "trained" / "fit-tiny" / "model").exists()
    assert main(argv) == 0
    doc = read_json(out / "fit.json")
    assert read_json(out / "trained" / "fit-tiny" / "result.json")["steps"] == 4
    # the student as `edgekit export --recipe` exports it: fp32 ONNX (and its forms), and fp32 and int8 TFLite
    forms = ["fp32-onnx"] + (["fp32-tflite", "int8-tflite"] if ("tflite", "int8") in chain_forms() else [])
    starts = {c["candidate"]["id"].split("-as-is-")[0] for c in doc["candidates"] if "-as-is-" in c["candidate"]["id"]}
    assert starts == {"s0-tiny-random-bert", *(f"s{i}-fit-tiny-{f}" for i, f in enumerate(forms, start=1))}
    assert len(doc["settings"]["starts_sha256"]) == 1 + len(forms)
    at = ["--recipe", str(tmp_path / "fit-tiny.toml"), "--set", f"output_dir={json.dumps(str(out / 'trained'))}"]
    for c in doc["candidates"]:
        if not c["candidate"]["id"].startswith("s0-"):
            assert c["make"][:2] == [["edgekit", "distill", *at], ["edgekit", "export", *at]]
            assert c["measurements"] or c["status"].startswith("over")
    tflite = [c for c in doc["candidates"] if c["candidate"]["backend"] == "litert"]
    assert tflite and all(c["measurements"][0]["n"] == 30 for c in tflite if not c["status"].startswith("over"))


@pytest.mark.parametrize("task", ["text-classification", "token-classification"])
def test_a_classifier_and_a_tagger_are_fitted_through_the_same_search(
    task, tiny_classifier_bundle, tiny_tagger_bundle, sst2_dir, wnut_excerpt, tmp_path
) -> None:
    """The search is task-generic: a text's 0/1 and a sentence's entity counts go through the same rungs and
    bootstrap, and the score each measurement records is the runner's own (checked as it is read)."""
    if task == "text-classification":
        bundle = tiny_classifier_bundle
        dataset = tmp_path / "sst2-60.tsv"  # GLUE SST-2 dev's first 60 rows (see the data's SOURCES.md)
        dataset.write_text("".join((sst2_dir / "dev.tsv").read_text(encoding="utf-8").splitlines(True)[:61]))
    else:
        bundle, dataset = tiny_tagger_bundle, wnut_excerpt
    out = tmp_path / "fit"
    argv = ["fit", str(bundle.path), "--eval", str(dataset), "--max-mb", "25", "--backends", "onnxruntime"]
    assert main([*argv, "--threads", "1", "--rungs", "12", "--warmup", "0", "--out", str(out)]) == 0
    doc = read_json(out / "fit.json")
    assert doc["status"] == "finished" and doc["chosen"]
    measured = [c for c in doc["candidates"] if c["measurements"]]
    assert len(measured) == 5 and all(c["measurements"][0]["n"] == 12 for c in measured)
    if task == "text-classification":  # every prefix of the order is stratified: the labels alternate
        rows = (out / "evaluation-order.tsv").read_text().splitlines()[1:5]
        assert len({r.rsplit("\t", 1)[1] for r in rows}) == 2


def test_a_checkpoint_is_exported_searched_and_its_commands_remake_it(tmp_path) -> None:
    """A transformers checkpoint given as a start is exported into OUT/exported (fp32 ONNX; fp32 and int8 TFLite
    with the tflite extra), each export searched as a start; a fit run again reuses the exports; and the command
    fit.json gives each one makes the same model file."""
    from edgekit.bundle import load_bundle
    from edgekit.export.tiny import tiny_qa

    qa, ckpt = tiny_qa(), tmp_path / "tiny-ckpt"
    qa.model.save_pretrained(ckpt)
    qa.tokenizer.save_pretrained(ckpt)
    out = tmp_path / "fit"
    argv = ["fit", str(ckpt), "--eval", "packaged:dev", "--max-mb", "25", "--backends", "onnxruntime", "litert"]
    argv += ["--threads", "1", "--rungs", "30", "--warmup", "0", "--out", str(out)]
    assert main(argv) == 0
    doc = read_json(out / "fit.json")
    forms = ["fp32-onnx"] + (["fp32-tflite", "int8-tflite"] if ("tflite", "int8") in chain_forms() else [])
    as_is = {
        c["candidate"]["id"].split("-as-is-")[0]: c for c in doc["candidates"] if "-as-is-" in c["candidate"]["id"]
    }
    assert set(as_is) == {f"s{i}-tiny-ckpt-{f}" for i, f in enumerate(forms)}
    assert all(c["measurements"] for c in as_is.values())
    exported = sorted((out / "exported" / "tiny-ckpt").iterdir())
    assert [p.name for p in exported] == sorted(f"tiny-ckpt-{f}" for f in forms)
    stamps = [(p / "manifest.json").stat().st_mtime_ns for p in exported]
    assert main(argv) == 0  # run again: the exports are reused, not made again
    assert [(p / "manifest.json").stat().st_mtime_ns for p in exported] == stamps
    assert read_json(out / "fit.json")["settings"]["starts_sha256"] == doc["settings"]["starts_sha256"]
    remade: dict[tuple[str, ...], Path] = {}
    for c in as_is.values():
        (command,) = c["make"]
        assert command[:4] == ["edgekit", "export", command[2], str(ckpt)]
        if tuple(command) not in remade:  # the TFLite command makes both TFLite bundles
            dest = tmp_path / f"again-{len(remade)}" / ("b" if command[2] == "onnx" else "")
            assert main([*command[1:4], str(dest), *command[5:]]) == 0
            remade[tuple(command)] = dest
        dest = remade[tuple(command)]
        made = load_bundle(out / c["bundle"]).manifest
        again = load_bundle(dest if command[2] == "onnx" else dest / Path(c["bundle"]).name).manifest
        assert again.files[again.model_file].sha256 == made.files[made.model_file].sha256
