"""edgekit export ship: a verified copy of a bundle and a model card whose every figure comes from results files."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import pytest

from edgekit.bundle import load_bundle
from edgekit.cli import main
from edgekit.squad import sample_path

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks" / "results" / "students" / "minilm-l6-kd-e4" / "result.json"  # an edgekit distill's


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_bundle) -> dict[str, Path]:
    """An int8 form of the tiny bundle, and runs of it and of its fp32 source (the "teacher") on the dev excerpt."""
    work = tmp_path_factory.mktemp("ship")
    int8 = work / "tiny-int8"
    assert main(["export", "int8", str(tiny_bundle.path), str(int8), "--name", "tiny-int8"]) == 0
    record = json.loads(RESULT.read_text())
    record["recipe"]["data"]["max_seq_len"] = tiny_bundle.manifest.max_seq_len  # as if it had trained this one
    (work / "result.json").write_text(json.dumps(record))
    out = {"int8": int8, "training": work / "result.json"}
    for key, bundle in (("student_run", int8), ("teacher_run", tiny_bundle.path)):
        out[key] = work / key
        flags = ["--dataset", str(sample_path("dev")), "--out", str(out[key]), "--threads", "1", "--no-progress"]
        assert main(["run", str(bundle), *flags]) == 0
    return out


def _ship(runs: dict[str, Path], out: Path, run: Path | None = None, *extra: str) -> int:
    return main(
        [
            "export",
            "ship",
            str(runs["int8"]),
            str(out),
            "--run",
            str(run or runs["student_run"]),
            "--training",
            str(runs["training"]),
            "--teacher-run",
            str(runs["teacher_run"]),
            "--made-by",
            "edgekit distill --recipe minilm-l6-kd",
            "--made-by",
            "edgekit export int8 A B",
            "--note",
            "Licences: the weights' and the data's.",
            *extra,
        ]
    )


def test_a_shipped_bundle_is_a_verified_copy_with_a_card_from_its_results(tmp_path, runs, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert _ship(runs, Path("models")) == 0
    copy = load_bundle(tmp_path / "models" / "tiny-int8")
    assert copy.manifest == load_bundle(runs["int8"]).manifest
    card = (tmp_path / "models" / "tiny-int8.md").read_text()
    m = json.loads((runs["student_run"] / "metrics.json").read_text())
    t = json.loads((runs["teacher_run"] / "metrics.json").read_text())
    assert card.startswith("# tiny-int8\n")
    assert f"**EM {m['exact_match']:.2f}, F1 {m['f1']:.2f}**" in card
    assert f"EM {t['exact_match']:.2f}, F1 {t['f1']:.2f}" in card
    assert f"{m['bundle']['size_mb']:.1f} MB bundle" in card and f"p50 {m['latency_ms']['p50']:.1f} ms" in card
    made = card.split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    assert made == ["edgekit distill --recipe minilm-l6-kd", "edgekit export int8 A B"]
    assert card.rstrip().endswith("Licences: the weights' and the data's.")
    # the card names its own command, which a shell splits back into what was run
    line = next(x for x in card.splitlines() if x.startswith("This card and the copy: "))
    argv = shlex.split(line.removeprefix("This card and the copy: `").removesuffix("`."))
    assert argv[:3] == ["edgekit", "export", "ship"] and "edgekit export int8 A B" in argv
    # the shipped copy carded again in place: its files stay as they are, the card is written anew
    before = (tmp_path / "models" / "tiny-int8" / "manifest.json").stat().st_mtime_ns
    (tmp_path / "models" / "tiny-int8.md").write_text("# tiny-int8\nan older card\n")
    assert main([*argv[1:3], "models/tiny-int8", *argv[4:]]) == 0
    assert (tmp_path / "models" / "tiny-int8" / "manifest.json").stat().st_mtime_ns == before
    again = (tmp_path / "models" / "tiny-int8.md").read_text().splitlines()
    assert [x for x in again if x.startswith("This card")] != [line]  # its own command, from the copy
    assert [x for x in again if not x.startswith("This card")] == [x for x in card.splitlines() if x != line]


def test_ship_refuses_figures_that_are_not_this_models_and_writes_nothing(tmp_path, runs, capsys) -> None:
    out = tmp_path / "models"
    assert _ship(runs, out, runs["teacher_run"]) == 2  # a run of another model file
    err = capsys.readouterr().err.strip()
    assert "run.json" in err and "model_sha256" in err and len(err.splitlines()) == 1
    assert not out.exists()
    out.mkdir()
    (out / "tiny-int8.md").write_text("my notes\n")  # a file ship did not write is never replaced
    assert _ship(runs, out) == 2
    assert "tiny-int8.md" in capsys.readouterr().err
    assert (out / "tiny-int8.md").read_text() == "my notes\n" and not (out / "tiny-int8").exists()


@pytest.mark.parametrize(
    ("training", "expect"),
    [
        ("[1, 2]", "a JSON object"),
        ('{"method": "KD", "steps": 1, "n_train_features": 1, "recipe": {"student": {"init": "x"}}}', "student.init"),
        ('{"method": "KD", "steps": -1, "n_train_features": 1, "recipe": {}}', "steps"),
        ('{"method": "KD", "steps": 1, "n_train_features": 1, "recipe": {"nonsense": 1}}', "recipe.nonsense"),
        ('{"method": "KD", "steps": 1, "n_train_features": 1, "recipe": {}}', "n_train_questions"),
    ],
)
def test_ship_reads_the_training_record_as_untrusted(tmp_path, runs, capsys, training: str, expect: str) -> None:
    bad = tmp_path / "result.json"
    bad.write_text(training)
    argv = ["export", "ship", str(runs["int8"]), str(tmp_path / "models"), "--run", str(runs["student_run"])]
    argv += ["--training", str(bad), "--teacher-run", str(runs["teacher_run"]), "--made-by", "x"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert str(bad) in err and expect in err and len(err.splitlines()) == 1
    assert not (tmp_path / "models").exists()


@pytest.mark.parametrize("name", ["../out", "a/b", ".."])
def test_ship_takes_a_plain_name(tmp_path, runs, capsys, name: str) -> None:
    assert _ship(runs, tmp_path / "models", None, "--name", name) == 2
    assert "--name" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_ship_refuses_a_teacher_run_that_is_not_the_teachers_on_the_same_file(tmp_path, runs, capsys) -> None:
    assert _ship(runs, tmp_path / "m1", None, "--teacher-run", str(runs["student_run"])) == 2  # the student's own
    assert "not of the student itself" in capsys.readouterr().err
    other = tmp_path / "other-run"
    shutil.copytree(runs["teacher_run"], other)
    metrics = json.loads((other / "metrics.json").read_text())
    metrics["dataset"]["path"] = "/elsewhere/dev-v1.1.json"  # as many questions, from another file
    (other / "metrics.json").write_text(json.dumps(metrics))
    assert _ship(runs, tmp_path / "m2", None, "--teacher-run", str(other)) == 2
    assert "dataset file" in capsys.readouterr().err
    assert not (tmp_path / "m1").exists() and not (tmp_path / "m2").exists()


def test_ship_never_writes_through_a_link_or_a_broken_command(tmp_path, runs, capsys) -> None:
    out = tmp_path / "models"
    out.mkdir()
    victim = tmp_path / "victim"
    shutil.copytree(runs["int8"], victim)
    (out / "tiny-int8").symlink_to(victim)  # a link where the copy goes: the bundle it names is not replaced
    assert _ship(runs, out) == 2
    assert "not a link" in capsys.readouterr().err
    assert load_bundle(victim).manifest.name == "tiny-int8" and sorted(p.name for p in out.iterdir()) == ["tiny-int8"]
    assert _ship(runs, tmp_path / "m3", None, "--made-by", "a\n```\nb") == 2
    assert "--made-by" in capsys.readouterr().err and not (tmp_path / "m3").exists()
