"""Distillation pipeline: recipes, cross-tokenizer alignment, the logits cache, training and resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgekit.bundle import load_bundle
from edgekit.errors import InputError
from edgekit.export.align import teacher_window
from edgekit.export.distill import run_distill
from edgekit.export.models import packaged_minilm_path
from edgekit.export.recipes import (
    EXPERIMENTS_DIR,
    RECIPES_DIR,
    experiment_names,
    load_recipe,
    named_recipe,
    preset_names,
)
from edgekit.export.teacher_cache import CacheKey, teacher_logits
from edgekit.export.train_features import build_train_features
from edgekit.features import QATokenizer
from edgekit.squad import load_squad
from tests.conftest import TEACHER_DIR


def test_every_shipped_recipe_loads() -> None:
    presets = sorted(RECIPES_DIR.glob("*.toml"))
    experiments = sorted(EXPERIMENTS_DIR.glob("*.toml"))
    assert {"demo", "minilm-l6-kd", "mpnet-l6-kd", "tiny-test"} <= {p.stem for p in presets}
    assert {"minilm-l6-ft", "mpnet-l3-kd", "minilm-l6-kd-e4"} <= {p.stem for p in experiments}
    for p in [*presets, *experiments]:
        r = load_recipe(p)
        assert r.name == p.stem
        assert (r.loss.alpha < 1) == ("-kd" in p.stem or p.stem.endswith("test"))


def test_presets_and_experiments_have_distinct_names_and_load_by_name(tmp_path: Path, monkeypatch) -> None:
    """A bare name finds a preset, else an experiment: one name in both folders would hide the experiment."""
    presets, experiments = preset_names(), experiment_names()
    assert presets and experiments
    assert not set(presets) & set(experiments)
    assert named_recipe("minilm-l6-kd") == RECIPES_DIR / "minilm-l6-kd.toml"
    assert named_recipe("minilm-l6-kd-e4.toml") == EXPERIMENTS_DIR / "minilm-l6-kd-e4.toml"
    assert load_recipe("mpnet-l3-kd-logits").name == "mpnet-l3-kd-logits"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").write_text('name = "mine"\n')  # a file of that name here comes first
    assert load_recipe("demo").name == "mine"
    with pytest.raises(InputError, match=r"presets: demo, .*; experiments .*minilm-l6-kd-e4"):
        load_recipe("no-such-recipe")


def test_overrides_and_bad_recipes(tmp_path: Path) -> None:
    r = load_recipe(RECIPES_DIR / "tiny-test.toml", ["training.max_steps=3", "loss.alpha=1", "name=x-y"])
    assert (r.training.max_steps, r.loss.alpha, r.name) == (3, 1.0, "x-y")
    bad = tmp_path / "r.toml"
    cases = [
        ("[training]\nepochz = 2\n", "key 'training.epochz'"),
        ("[training]\nepochs = 'two'\n", "key 'training.epochs'"),
        ("[student]\nlayers = [1, 'a']\n", "key 'student.layers[1]'"),
        ("[loss]\nalpha = 1.5\n", "key 'loss.alpha'"),
        ("[student]\ninit = 'teacher-layers'\n", "key 'student.layers'"),
        ("surprise = 1\n", "key 'surprise'"),
        ("[training\n", "valid TOML"),
    ]
    for text, message in cases:
        bad.write_text(text)
        with pytest.raises(InputError, match=message.replace("[", r"\[")) as err:
            load_recipe(bad)
        assert str(bad) in str(err.value)


def test_cross_tokenizer_alignment_by_characters(train_path) -> None:
    """MiniLM (BERT: [CLS] q [SEP] c [SEP]) vs MPNet (<s> q </s></s> c </s>): other ids, same pieces."""
    student = QATokenizer.from_file(packaged_minilm_path() / "tokenizer.json", 128, 64)
    teacher = QATokenizer.from_file(TEACHER_DIR / "tokenizer.json", 512, 128)
    aligned = total = 0
    for ex in load_squad(train_path)[:40]:
        for w in student.windows(ex.question, ex.context):
            tw, index = teacher_window(w, ex.question, ex.context, teacher)
            assert index[0] == 0
            for i, o in enumerate(w.context_offsets):
                if o is None:
                    continue
                total += 1
                if index[i] >= 0:
                    aligned += 1
                    t_off = tw.context_offsets[index[i]]
                    c0 = next(x for x in w.context_offsets if x is not None)[0]
                    assert (t_off[0] + c0, t_off[1] + c0) == o  # same characters
            # BERT and MPNet ids differ for the same piece: not a hard-coded shift
            assert not np.array_equal(w.input_ids[1:5], tw.input_ids[1:5])
    assert aligned / total >= 0.99


def test_logits_cache_is_reused_and_refused_when_keys_differ(tmp_path, minilm_bundle, train_path) -> None:
    examples = load_squad(train_path)[:6]
    tok = QATokenizer.from_file(TEACHER_DIR / "tokenizer.json", 96, 32)  # student tokenizer: MPNet's
    feats = build_train_features(examples, tok, pad_id=1, progress=False)
    key = CacheKey("t", "s", 96, 32, "d", len(feats))
    first = teacher_logits(tmp_path, key, minilm_bundle, examples, feats, progress=False)
    assert first.start.shape == (len(feats), 96) and first.mask.any(axis=1).all()
    mtime = (tmp_path / "start.npy").stat().st_mtime_ns
    again = teacher_logits(tmp_path, key, minilm_bundle, examples, feats, progress=False)
    assert (tmp_path / "start.npy").stat().st_mtime_ns == mtime  # loaded, not recomputed
    np.testing.assert_array_equal(first.start, again.start)
    with pytest.raises(InputError, match="max_seq_len"):
        teacher_logits(tmp_path, CacheKey("t", "s", 128, 32, "d", len(feats)), minilm_bundle, examples, feats)


def test_interrupted_cache_resumes(tmp_path, minilm_bundle, train_path) -> None:
    examples = load_squad(train_path)[:6]
    feats = build_train_features(examples, QATokenizer.from_file(TEACHER_DIR / "tokenizer.json", 96, 32), 1, False)
    key = CacheKey("t", "s", 96, 32, "d", len(feats))
    whole = teacher_logits(tmp_path / "a", key, minilm_bundle, examples, feats, progress=False)
    part = tmp_path / "b"
    teacher_logits(part, key, minilm_bundle, examples, feats, progress=False)
    (part / "progress.json").write_text(json.dumps({"done": 8}))  # as if killed after the first batch
    start = np.load(part / "start.npy", mmap_mode="r+")
    start[8:] = 0
    start.flush()
    resumed = teacher_logits(part, key, minilm_bundle, examples, feats, progress=False)
    np.testing.assert_allclose(resumed.start, whole.start, atol=1e-5)


def test_length_grouped_batches_are_seeded_per_epoch() -> None:
    from benchmarks.batching import padded_length
    from edgekit.export.distill import EpochLengthGroupedSampler

    lengths = np.random.default_rng(0).integers(40, 257, size=2000).tolist()
    sampler = EpochLengthGroupedSampler(16, lengths, seed=3)
    first = list(sampler)
    assert sorted(first) == list(range(2000))  # every window once
    sampler.set_epoch(1)
    second = list(sampler)
    sampler.set_epoch(0)
    assert list(sampler) == first != second  # a resumed epoch replays its order; the next epoch reshuffles
    shuffled = np.random.default_rng(1).permutation(2000).tolist()
    arr = np.asarray(lengths)
    assert padded_length(arr, first, 16) < 0.8 * padded_length(arr, shuffled, 16)


def test_tiny_distillation_learns_and_resumes(tmp_path) -> None:
    base = [
        f"output_dir={json.dumps(str(tmp_path))}",
        'teacher.model="packaged:all-MiniLM-L6-v2"',  # any QA checkpoint; the small one keeps CI fast
        "student.layers=[0, 5]",
        "data.train_limit=6",
        "data.max_seq_len=96",
        "data.doc_stride=32",
        "training.batch_size=32",
        "training.learning_rate=3e-4",
        "training.warmup_ratio=0.0",
        "training.save_steps=4",
        "training.logging_steps=1",
        "training.group_by_length=true",
    ]
    first = run_distill(
        load_recipe(RECIPES_DIR / "tiny-test.toml", [*base, "training.max_steps=4"]), evaluate=False, argv=["test"]
    )
    assert first["steps"] == 4
    out = tmp_path / "tiny-test"
    assert (out / "checkpoints" / "checkpoint-4").is_dir()
    # a setting recipes gained after a run started (here: dropped from its record) resumes at its default
    saved = json.loads((out / "checkpoint-settings.json").read_text())
    del saved["loss.hidden_weight"]
    (out / "checkpoint-settings.json").write_text(json.dumps(saved))
    longer = [*base, "training.max_steps=10", "data.bundle_max_seq_len=128"]  # evaluated on longer windows
    second = run_distill(load_recipe(RECIPES_DIR / "tiny-test.toml", longer), evaluate=True, argv=["test"])
    assert second["steps"] == 10 and second["resumed_from_step"] == 4
    assert second["eval_max_seq_len"] == 128 == load_bundle(out / "bundle-fp32-onnx").manifest.max_seq_len
    with pytest.raises(InputError, match=r"checkpoint-settings\.json.*training\.learning_rate.*0\.0003 -> 0\.0001"):
        run_distill(load_recipe(RECIPES_DIR / "tiny-test.toml", [*base, "training.learning_rate=1e-4"]))
    log = json.loads((out / "training_log.json").read_text())
    steps = [e["step"] for e in log if "loss" in e]
    assert steps == list(range(1, 11))  # steps 1-4 from the first run, 5-10 continued, none twice
    losses = [e["loss"] for e in log if "loss" in e]
    assert losses[-1] < losses[0]  # the same batch every step: the loss must go down
    assert "loss_soft" in log[0] and "loss_hard" in log[0]
    runtime = next(e["train_runtime"] for e in reversed(log) if "train_runtime" in e)
    assert second["train_s_per_step"] == round(runtime / 6, 3)  # the 6 steps this call ran, not the first 4
    assert second["device"]["arch"] and "cores_logical" in second["device"]
    assert (out / "model" / "model.safetensors").is_file() and (out / "model" / "tokenizer.json").is_file()
    assert second["n_questions"] == 8 and 0 <= second["f1"] <= 100
    assert json.loads((out / "result.json").read_text())["method"].startswith("KD T=2 alpha=0.5")

    # the student as saved in a checkpoint, written like a finished run under another name
    import torch
    from safetensors.torch import load_file

    from edgekit.export.distill import student_from_checkpoint

    snap = load_recipe(RECIPES_DIR / "tiny-test.toml", [*longer, 'name="tiny-snapshot"'])
    last = out / "checkpoints" / "checkpoint-10"
    at10 = student_from_checkpoint(snap, last, evaluate=False, argv=["test"])
    assert at10["steps"] == 10 and at10["from_checkpoint"] == str(last)
    ckpt = load_file(last / "model.safetensors")
    saved = load_file(tmp_path / "tiny-snapshot" / "model" / "model.safetensors")
    final = load_file(out / "model" / "model.safetensors")
    assert saved.keys() == final.keys() == {k.removeprefix("student.") for k in ckpt if k.startswith("student.")}
    assert all(torch.equal(saved[k], ckpt[f"student.{k}"]) and torch.equal(saved[k], final[k]) for k in saved)
    with pytest.raises(InputError, match=r"model\.safetensors"):
        student_from_checkpoint(snap, tmp_path / "nowhere", evaluate=False)

    # written without evaluation, scored later in place: the same EM/F1 as the finished run's
    from edgekit.export.distill import evaluate_saved

    scored = evaluate_saved(snap, argv=["test", "--eval-only"])
    assert (scored["steps"], scored["n_questions"], scored["f1"]) == (10, 8, second["f1"])
    assert json.loads((tmp_path / "tiny-snapshot" / "result.json").read_text())["eval_command"][-1] == "--eval-only"
    with pytest.raises(InputError, match=r"result\.json"):
        evaluate_saved(load_recipe(RECIPES_DIR / "tiny-test.toml", [*base, 'name="never-trained"']))


def test_bf16_training_runs_under_cpu_autocast(tmp_path, capsys) -> None:
    """``training.bf16`` on a machine without CUDA trains under CPU autocast: the student's Linear layers
    compute in bfloat16 while its saved weights stay fp32. Where the CPU has no bfloat16 instructions the
    run says that autocast is emulated (a step many times slower than fp32), and only there."""
    import torch

    from edgekit import device

    dtypes: set[torch.dtype] = set()

    def hook(module: torch.nn.Module, args: object, output: object) -> None:
        if isinstance(module, torch.nn.Linear) and module.training and isinstance(output, torch.Tensor):
            dtypes.add(output.dtype)

    overrides = [
        f"output_dir={json.dumps(str(tmp_path))}",
        'teacher.model="packaged:all-MiniLM-L6-v2"',
        "student.layers=[0, 5]",
        "loss.alpha=1",
        "data.train_limit=4",
        "data.max_seq_len=96",
        "data.doc_stride=32",
        "training.max_steps=2",
        "training.bf16=true",
    ]
    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    try:
        result = run_distill(load_recipe(RECIPES_DIR / "tiny-test.toml", overrides), evaluate=False, argv=["test"])
    finally:
        handle.remove()
    assert result["steps"] == 2
    if not torch.cuda.is_available():
        assert dtypes == {torch.bfloat16}
        assert ("without bfloat16 instructions" in capsys.readouterr().err) == (not device.bf16_features())
    from safetensors.torch import load_file

    weights = load_file(tmp_path / "tiny-test" / "model" / "model.safetensors")
    assert {w.dtype for w in weights.values()} == {torch.float32}
