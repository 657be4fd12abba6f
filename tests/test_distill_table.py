"""The distillation benchmarks: the table's derived answers (F1 share of the teacher, KD-vs-FT pairs),
and the batching measurement."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np

from benchmarks import distill_table
from edgekit.export.recipes import RECIPES_DIR

COMMITTED = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "students"


def _result(
    tmp_path: Path, name: str, alpha: float, f1: float, em: float, steps: int = 400, eval_len: int = 0, **training
) -> Path:
    """A result.json shaped like ``edgekit distill`` writes (a committed one, renamed and re-scored)."""
    r = json.loads((COMMITTED / "minilm-l6-ft-step400" / "result.json").read_text())
    r = copy.deepcopy(r)
    r.update(name=name, f1=f1, exact_match=em, steps=steps)
    if eval_len:  # scored on other windows than it trained on (data.bundle_max_seq_len)
        r["eval_max_seq_len"] = eval_len
    r["recipe"]["loss"]["alpha"] = alpha
    r["recipe"]["training"].update(training)
    d = tmp_path / name
    d.mkdir()
    (d / "result.json").write_text(json.dumps(r))
    return d


def test_pairs_only_students_trained_alike(tmp_path: Path) -> None:
    runs = [
        _result(tmp_path, "kd", 0.5, 63.0, 50.0),
        _result(tmp_path, "ft", 1.0, 60.0, 47.0),
        _result(tmp_path, "kd-later", 0.5, 70.0, 58.0, steps=1100),  # no FT at this step
        _result(tmp_path, "ft-other-lr", 1.0, 61.0, 48.0, steps=1100, learning_rate=3e-5),  # not alike
        _result(tmp_path, "kd-grouped", 0.5, 64.0, 51.0, group_by_length=True),  # other batches than "ft"
        _result(tmp_path, "kd-384", 0.5, 66.0, 53.0, eval_len=384),  # scored on longer windows than "ft"
        _result(tmp_path, "kd-500", 0.5, 65.0, 52.0, steps=500),  # its only partner trained in bf16
        _result(tmp_path, "ft-500-bf16", 1.0, 61.5, 49.0, steps=500, bf16=True),
        _result(tmp_path, "ft-bf16", 1.0, 59.5, 47.5, bf16=True),  # "ft" in bf16: a precision pair, not KD's partner
    ]
    out = tmp_path / "distill.json"
    teacher = {"exact_match": 73.0, "f1": 80.0, "n_questions": 10570, "command": ["x"]}
    teacher["bundle"] = {"params": 1, "layers": 12, "hidden_size": 768, "max_seq_len": 384}
    teacher_path = tmp_path / "teacher.json"
    teacher_path.write_text(json.dumps(teacher))
    assert distill_table.main([*map(str, runs), "--teacher", str(teacher_path), "--out", str(out)]) == 0
    got = json.loads(out.read_text())
    assert [(p["kd"], p["ft"], p["same_precision"]) for p in got["kd_vs_ft"]] == [
        ("kd", "ft", True),
        ("kd-500", "ft-500-bf16", False),
    ]
    pair = got["kd_vs_ft"][0]
    assert abs(pair["delta_f1"] - 3.0) < 1e-9 and abs(pair["delta_exact_match"] - 3.0) < 1e-9 and pair["kd_better"]
    shares = {r["name"]: r["f1_vs_teacher"] for r in got["records"]}
    assert shares["kd"] == 63.0 / 80.0 and shares["kd-later"] == 70.0 / 80.0
    table = out.with_suffix(".md").read_text()
    assert "| kd | ft | fp32 / fp32 | 400 | 10570 | +3.00 | +3.00 |" in table
    assert "| kd-500 | ft-500-bf16 | fp32 / bf16 | 500 | 10570 | +3.00 | +3.50 |" in table
    assert "400 steps, length-grouped batches" in table and "500 steps, bf16 autocast" in table
    assert [(p["bf16"], p["fp32"], p["delta_f1"]) for p in got["bf16_vs_fp32"]] == [("ft-bf16", "ft", -0.5)]
    assert "| ft-bf16 | ft | 400 | 10570 | +0.50 | -0.50 |" in table
    assert "| 256 / 384 | 10570 | 53.00 | 66.00 |" in table and "| 256 | 10570 | 50.00 | 63.00 |" in table


def test_intermediate_terms_pair_with_logit_kd_trained_alike(tmp_path: Path) -> None:
    def with_terms(d: Path, layer_map: list[int], **weights: float) -> Path:
        r = json.loads((d / "result.json").read_text())
        r["recipe"]["loss"].update(layer_map=layer_map, **{f"{k}_weight": w for k, w in weights.items()})
        (d / "result.json").write_text(json.dumps(r))
        return d

    runs = [
        _result(tmp_path, "logits", 0.5, 60.0, 48.0, bf16=True),
        with_terms(_result(tmp_path, "hidden", 0.5, 62.5, 50.0, bf16=True), [3, 7, 11], hidden=25.0),
        with_terms(_result(tmp_path, "pkd", 0.5, 59.0, 47.0, bf16=True), [3, 7, 11], pkd=3.5),
        with_terms(_result(tmp_path, "pkd-fp32", 0.5, 59.0, 47.0), [3, 7, 11], pkd=3.5),  # no fp32 logit-only run
        with_terms(_result(tmp_path, "hidden-ft", 1.0, 58.0, 46.0, bf16=True), [3, 7, 11], hidden=25.0),  # no KD
    ]
    # the Trainer's log: the last tenth of 400 steps is steps 361..400; the summary entry has no "loss"
    log = [{"loss": 9.0, "loss_hard": 9.0, "step": 360}, {"loss": 3.0, "loss_hard": 2.0, "step": 370}]
    log += [{"loss": 2.0, "loss_hard": 1.0, "loss_hidden": 0.5, "step": 400}, {"train_runtime": 80.0, "step": 400}]
    (runs[1] / "training_log.json").write_text(json.dumps(log))
    out = tmp_path / "distill.json"
    assert distill_table.main([*map(str, runs), "--teacher", str(tmp_path / "none.json"), "--out", str(out)]) == 0
    got = json.loads(out.read_text())
    assert got["records"][1]["training"]["late_losses"] == {"loss_hard": 1.5, "loss_hidden": 0.5}
    pairs = got["intermediate_vs_logits"]
    assert [(p["variant"], p["logits_only"], p["terms"], p["delta_f1"]) for p in pairs] == [
        ("hidden", "logits", {"hidden": 25.0}, 2.5),
        ("pkd", "logits", {"pkd": 3.5}, -1.0),
    ]
    table = out.with_suffix(".md").read_text()
    assert "| hidden | logits | hidden x25 | [3, 7, 11] | 400 | 0 | 10570 | 1.50 / n/a | +2.00 | +2.50 |" in table
    assert "hidden x25 +2.50; pkd x3.5 -1.00; 1 of 2 runs beat logit KD only (hidden)." in table
    assert "the spread between seeds was not measured" in table and got["seed_repeats"] == []


def test_a_second_seed_measures_the_noise_a_term_must_clear(tmp_path: Path) -> None:
    def hidden(d: Path) -> Path:
        r = json.loads((d / "result.json").read_text())
        r["recipe"]["loss"].update(layer_map=[3, 7, 11], hidden_weight=2.5)
        (d / "result.json").write_text(json.dumps(r))
        return d

    runs = [
        _result(tmp_path, "logits", 0.5, 60.0, 48.0),
        _result(tmp_path, "logits-seed1", 0.5, 61.2, 49.0, seed=1),
        _result(tmp_path, "logits-lr", 0.5, 55.0, 44.0, seed=1, learning_rate=3e-5),  # another schedule: no repeat
        hidden(_result(tmp_path, "hidden", 0.5, 60.8, 48.5)),
        hidden(_result(tmp_path, "hidden-seed1", 0.5, 60.9, 48.6, seed=1)),
    ]
    out = tmp_path / "distill.json"
    assert distill_table.main([*map(str, runs), "--teacher", str(tmp_path / "none.json"), "--out", str(out)]) == 0
    got = json.loads(out.read_text())
    assert [(r["runs"], r["seeds"]) for r in got["seed_repeats"]] == [
        (["logits", "logits-seed1"], [0, 1]),
        (["hidden", "hidden-seed1"], [0, 1]),
    ]
    assert abs(got["seed_repeats"][0]["spread_f1"] - 1.2) < 1e-9
    assert [(p["variant"], p["logits_only"], p["seed"]) for p in got["intermediate_vs_logits"]] == [
        ("hidden", "logits", 0),
        ("hidden-seed1", "logits-seed1", 1),
    ]
    table = out.with_suffix(".md").read_text()
    assert "hidden x2.5 (seed 0) +0.80, x2.5 (seed 1) -0.30; 1 of 2 runs beat logit KD only (hidden)." in table
    assert "a single run's F1 moves by up to 1.20" in table
    assert "| logits, logits-seed1 | 0, 1 | 48.00 / 49.00 | 60.00 / 61.20 | 1.20 |" in table


def _tiny_timing_argv(out: Path) -> list[str]:
    """A step-timing benchmark's command line on a 2-layer MiniLM and a dozen short windows."""
    tiny = ['teacher.model="packaged:all-MiniLM-L6-v2"', "student.layers=[0, 5]", "data.train_limit=12"]
    tiny += ["data.max_seq_len=96", "data.doc_stride=32", "training.batch_size=4"]
    argv = ["--recipe", str(RECIPES_DIR / "tiny-test.toml"), "--steps", "2", "--repeats", "1", "--out", str(out)]
    return [*argv, *(a for t in tiny for a in ("--set", t))]


def test_batching_benchmark_measures_both_orders(tmp_path: Path) -> None:
    from benchmarks import batching

    lengths = np.array([10, 50, 20, 40])
    assert batching.padded_length(lengths, [0, 1, 2, 3], 2) == 45.0  # batches (10, 50), (20, 40)
    assert batching.padded_length(lengths, [1, 3, 2, 0], 2) == 35.0  # grouped: (50, 40), (20, 10)

    out = tmp_path / "batching.json"
    assert batching.main(_tiny_timing_argv(out)) == 0
    got = json.loads(out.read_text())
    pad = got["mean_padded_len"]
    assert pad["grouped"] <= pad["random"] <= 96 and got["n_windows"] >= 12
    assert all(len(got["step_s_all"][k]) == 2 and got["mean_step_s"][k] > 0 for k in ("random", "grouped"))
    assert got["command"][:3] == ["python", "-m", "benchmarks.batching"]


def test_precision_benchmark_times_both(tmp_path: Path) -> None:
    from benchmarks import train_precision

    out = tmp_path / "precision.json"
    assert train_precision.main(_tiny_timing_argv(out)) == 0
    got = json.loads(out.read_text())
    assert all(len(got["step_s_all"][k]) == 2 and got["mean_step_s"][k] > 0 for k in ("fp32", "bf16"))
    assert got["bf16_vs_fp32_step_time"] == got["mean_step_s"]["bf16"] / got["mean_step_s"]["fp32"]
    assert got["command"][:3] == ["python", "-m", "benchmarks.train_precision"]


def test_kd_cost_times_each_recipe_through_the_training_command(tmp_path: Path) -> None:
    from benchmarks import kd_cost

    tiny = (RECIPES_DIR / "tiny-test.toml").read_text()
    hidden = tmp_path / "tiny-hidden.toml"
    hidden.write_text(tiny.replace("[loss]\n", "[loss]\nhidden_weight = 1.0\nlayer_map = [2, 5]\n"))
    out = tmp_path / "kd-cost.json"
    sets = ['teacher.model="packaged:all-MiniLM-L6-v2"', "student.layers=[0, 5]", "data.max_seq_len=96"]
    sets += ["data.doc_stride=32", "training.batch_size=4"]
    argv = [str(RECIPES_DIR / "tiny-test.toml"), str(hidden), "--steps", "2", "--train-limit", "6", "--out", str(out)]
    assert kd_cost.main([*argv, *(a for s in sets for a in ("--set", s))]) == 0
    base, inter = json.loads(out.read_text())["rows"]
    assert base["steps"] == inter["steps"] == 2 and base["x_baseline"] == 1.0
    assert "loss_hidden" in inter["loss_terms"] and "loss_hidden" not in base["loss_terms"]
    assert inter["s_per_step"] > 0 and inter["epoch_min"] > 0
