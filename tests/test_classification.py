"""Text classification as a task: the light readers, the scores (equal to scikit-learn's), the bundle, the runner,
the recipe path (fine-tuning and KD into a student), and the refusals of bad input in the new formats."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import chain_forms
from hypothesis import given
from hypothesis import strategies as st

from edgekit.bundle import MANIFEST, load_bundle
from edgekit.errors import BundleError, InputError
from edgekit.runner import RunConfig, run
from edgekit.tasks.classification import OOS, check_labels, label_set, load_texts, read_clinc, read_tsv, score

ROOT = Path(__file__).resolve().parents[1]


def write_tsv(path: Path, rows: list[tuple[str, str]], header: str = "sentence\tlabel") -> Path:
    path.write_text(header + "\n" + "".join(f"{t}\t{y}\n" for t, y in rows), encoding="utf-8")
    return path


def edgekit(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgekit.cli", *args], capture_output=True, text=True, cwd=ROOT)


# ---------------------------------------------------------------- readers, on the real files


def test_sst2_files_read_whole(sst2_dir: Path) -> None:
    train, dev = read_tsv(sst2_dir / "train.tsv"), read_tsv(sst2_dir / "dev.tsv")
    assert (len(train), len(dev)) == (67_349, 872)
    assert label_set(train) == ["0", "1"] and sum(ex.label == "1" for ex in dev) == 444
    assert dev[0].id == "line-2" and dev[0].text.startswith("it 's a charming")


def test_clinc150_splits_hold_their_out_of_scope_queries(clinc_file: Path) -> None:
    test, val, train = (read_clinc(clinc_file, s) for s in ("test", "val", "train"))
    assert (len(test), len(val), len(train)) == (5_500, 3_100, 15_100)
    assert sum(ex.label == OOS for ex in test) == 1_000 and test[-1].id == "oos_test-999"
    assert len(label_set(train)) == 151 and OOS in label_set(train)
    assert load_texts(clinc_file) == test  # the default split is the one the paper reports


# ---------------------------------------------------------------- scores


@given(
    st.lists(st.tuples(st.sampled_from("abcde"), st.sampled_from("abcdef")), min_size=1, max_size=60),
)
def test_scores_equal_scikit_learns(pairs: list[tuple[str, str]]) -> None:
    from sklearn.metrics import accuracy_score, f1_score

    gold, pred = [g for g, _ in pairs], [p for _, p in pairs]
    s = score(gold, pred)
    assert s.accuracy == pytest.approx(100 * accuracy_score(gold, pred))
    assert s.macro_f1 == pytest.approx(100 * f1_score(gold, pred, average="macro", zero_division=0))
    assert s.in_scope_accuracy is None


def test_clinc150_in_scope_accuracy_and_out_of_scope_recall() -> None:
    gold = ["a", "a", "b", OOS, OOS, OOS, OOS]
    pred = ["a", OOS, "b", OOS, "a", OOS, "b"]
    s = score(gold, pred, ["a", "b", OOS])
    assert s.in_scope_accuracy == pytest.approx(100 * 2 / 3)  # a query predicted oos counts as wrong
    assert s.oos_recall == pytest.approx(100 * 2 / 4)
    assert s.accuracy == pytest.approx(100 * 4 / 7)


# ---------------------------------------------------------------- bad input: one line naming file and place


BAD_TSV = {
    "no label column": ("sentence\tscore\n", "line 1 (header)"),
    "a row short of a column": ("sentence\tlabel\ngood film\t1\nno label here\n", "line 3"),
    "an empty text": ("sentence\tlabel\ngood\t1\n \t0\n", "line 3 column 'sentence'"),
    "an empty label": ("text\tlabel\ngood\t\n", "line 2 column 'label'"),
    "only a header": ("sentence\tlabel\n", "line 2"),
    "not UTF-8": (b"sentence\tlabel\n\xff\t1\n", "byte 15"),
}


@pytest.mark.parametrize("case", sorted(BAD_TSV))
def test_a_bad_tsv_is_refused_with_file_and_place(tmp_path: Path, case: str) -> None:
    content, where = BAD_TSV[case]
    path = tmp_path / "data.tsv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(InputError) as exc:
        read_tsv(path)
    assert exc.value.path == str(path) and exc.value.where == where


BAD_CLINC = {
    "a list at the top": ([["hi", "greeting"]], "top level"),
    "a pair of three": ({"test": [["hi", "greeting", "x"]]}, "field 'test'[0]"),
    "a number for an intent": ({"test": [["hi", 3]]}, "field 'test'[0]"),
    "an empty utterance": ({"test": [["  ", "greeting"]]}, "field 'test'[0] utterance"),
    "an unknown split": ({"train": [["hi", "greeting"]]}, "split 'test'"),
    "a split of another shape": ({"test": {"hi": "greeting"}}, "field 'test'"),
}


@pytest.mark.parametrize("case", sorted(BAD_CLINC))
def test_a_clinc_file_of_another_shape_is_refused(tmp_path: Path, case: str) -> None:
    obj, where = BAD_CLINC[case]
    path = tmp_path / "data_full.json"
    path.write_text(json.dumps(obj))
    with pytest.raises(InputError) as exc:
        read_clinc(path, "test")
    assert exc.value.path == str(path) and exc.value.where == where


def test_a_label_outside_the_label_set_is_refused(tmp_path: Path) -> None:
    path = write_tsv(tmp_path / "d.tsv", [("fine", "1"), ("meh", "neutral")])
    with pytest.raises(InputError, match=r"example line-3 label 'neutral'.*one of the model's labels \(0, 1\)"):
        check_labels(read_tsv(path), ["0", "1"], path)


def test_the_runner_refuses_bad_data_in_one_line_and_exits_2(tiny_classifier_bundle, tmp_path: Path) -> None:
    data = write_tsv(tmp_path / "d.tsv", [("fine", "1"), ("meh", "2")])
    proc = edgekit("run", str(tiny_classifier_bundle.path), "--dataset", str(data), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert f"{data}: example line-3 label '2'" in proc.stderr
    wrong_format = tmp_path / "d.csv"
    wrong_format.write_text("sentence,label\nfine,1\n")
    proc = edgekit(
        "run", str(tiny_classifier_bundle.path), "--dataset", str(wrong_format), "--out", str(tmp_path / "o")
    )
    assert proc.returncode == 2 and "file name: expected a classification dataset" in proc.stderr
    proc = edgekit("run", str(tiny_classifier_bundle.path), "--dataset", str(data), "--split", "../x", "--out", "o2")
    assert proc.returncode == 2 and "expected a split name" in proc.stderr


# ---------------------------------------------------------------- bundle and runner


def test_a_classifier_bundle_records_task_and_labels(tiny_classifier_bundle) -> None:
    m = tiny_classifier_bundle.manifest
    assert (m.task, m.labels, m.output_names) == ("text-classification", ["0", "1"], ["logits"])
    saved = json.loads((tiny_classifier_bundle.path / MANIFEST).read_text())
    assert saved["task"] == "text-classification" and saved["labels"] == ["0", "1"]
    proc = edgekit("verify", str(tiny_classifier_bundle.path))
    assert proc.returncode == 0 and '"task": "text-classification"' in proc.stdout


def _edit_manifest(src: Path, dest: Path, **changes) -> Path:
    import shutil

    shutil.copytree(src, dest)
    m = json.loads((dest / MANIFEST).read_text())
    m.update(changes)
    (dest / MANIFEST).write_text(json.dumps(m))
    return dest


@pytest.mark.parametrize(
    ("changes", "where"),
    [
        ({"labels": ["0", "1", "2"]}, "outputs"),  # the model has two logits: checked against the model itself
        ({"labels": ["0", "0"]}, "field 'labels'"),
        ({"labels": ["0"]}, "field 'labels'"),
        ({"labels": [" 0", "1"]}, "field 'labels'"),
        ({"output_names": ["logits", "x"]}, "field 'output_names'"),
        ({"task": "speech"}, "field 'task'"),
    ],
)
def test_a_manifest_whose_labels_or_task_do_not_fit_is_refused(
    tiny_classifier_bundle, tmp_path: Path, changes, where
) -> None:
    from edgekit.backends import RuntimeOptions, open_backend

    path = _edit_manifest(tiny_classifier_bundle.path, tmp_path / "b", **changes)
    with pytest.raises(BundleError) as exc:
        open_backend(load_bundle(path), RuntimeOptions())
    assert exc.value.where == where


def test_a_qa_bundle_with_labels_is_refused(tiny_bundle, tmp_path: Path) -> None:
    path = _edit_manifest(tiny_bundle.path, tmp_path / "b", labels=["a", "b"])
    with pytest.raises(BundleError, match="no labels for an extractive-QA bundle"):
        load_bundle(path)


def test_run_scores_resumes_and_int8_keeps_the_labels(tiny_classifier_bundle, tmp_path: Path, sst2_dir) -> None:
    from edgekit.export.quantize import quantize_dynamic_bundle

    data = sst2_dir / "dev.tsv"
    out = tmp_path / "run"
    m = run(tiny_classifier_bundle.path, data, out, RunConfig(limit=40, warmup=0, progress=False))
    assert m["task"] == "text-classification" and m["n_examples"] == 40
    assert {"accuracy", "macro_f1", "latency_ms", "peak_rss_mb"} <= set(m) and "in_scope_accuracy" not in m
    predictions = json.loads((out / "predictions.json").read_text())
    assert len(predictions) == 40 and set(predictions.values()) <= {"0", "1"}
    examples = read_tsv(data)[:40]
    expected = score([ex.label for ex in examples], [predictions[ex.id] for ex in examples])
    assert m["accuracy"] == expected.accuracy and m["macro_f1"] == expected.macro_f1
    again = run(tiny_classifier_bundle.path, data, out, RunConfig(limit=40, warmup=0, progress=False))
    assert again["resumed_from"] == 40 and again["accuracy"] == m["accuracy"]

    int8 = quantize_dynamic_bundle(tiny_classifier_bundle, tmp_path / "int8")
    assert int8.manifest.labels == ["0", "1"] and int8.manifest.task == "text-classification"
    m8 = run(int8.path, data, tmp_path / "run8", RunConfig(limit=40, warmup=0, progress=False))
    assert m8["bundle"]["precision"] == "int8" and m8["bundle"]["labels"] == ["0", "1"]


def test_a_resumed_run_refuses_a_logged_label_the_bundle_lacks(
    tiny_classifier_bundle, tmp_path: Path, sst2_dir
) -> None:
    """A prediction log is read back as untrusted: a label the model cannot give is refused with its line, before
    the run adopts it as an answer."""
    data, out = sst2_dir / "dev.tsv", tmp_path / "run"
    run(tiny_classifier_bundle.path, data, out, RunConfig(limit=3, warmup=0, progress=False))
    log = out / "predictions.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    lines[1] = lines[1].replace(f'"label": "{json.loads(lines[1])["label"]}"', '"label": "7"')
    log.write_text("".join(lines))
    with pytest.raises(InputError, match=r"predictions.jsonl: line 2: .*a label of the bundle's, got '7'"):
        run(tiny_classifier_bundle.path, data, out, RunConfig(limit=5, warmup=0, progress=False))
    assert log.read_text() == "".join(lines)


def test_clinc_run_reports_in_scope_accuracy_and_oos_recall(tmp_path: Path) -> None:
    from edgekit.export.tiny import tiny_classifier
    from edgekit.export.to_onnx import onnx_bundle, validate

    labels = ["greeting", "weather", OOS]
    data = tmp_path / "data_full.json"
    data.write_text(
        json.dumps(
            {
                "test": [["hello there", "greeting"], ["will it rain", "weather"], ["hi", "greeting"]],
                "oos_test": [["what is the meaning of life", OOS]],
                "train": [["hey", "greeting"]],
            }
        )
    )
    qa = tiny_classifier(labels)
    bundle = onnx_bundle(qa, tmp_path / "b", "tiny-clinc", max_seq_len=32, doc_stride=0)
    v = validate(qa, bundle, load_texts(data, "test"))
    assert v.ok and v.answer_agreement == 1.0 and v.n_questions == 4
    m = run(bundle.path, data, tmp_path / "run", RunConfig(warmup=0, progress=False, split="test"))
    assert m["n_examples"] == 4 and {"in_scope_accuracy", "oos_recall"} <= set(m)
    assert m["dataset"]["split"] == "test"
    with pytest.raises(InputError, match=r"run\.json"):  # another split is another run
        run(bundle.path, data, tmp_path / "run", RunConfig(warmup=0, progress=False, split="train"))


# ---------------------------------------------------------------- the recipe path: teacher, KD student, chain


@pytest.fixture(scope="module")
def tiny_teacher_dir(tmp_path_factory) -> Path:
    """A tiny classifier checkpoint as a user brings one: config, safetensors weights, fast tokenizer."""
    from edgekit.export.tiny import tiny_classifier

    out = tmp_path_factory.mktemp("teacher") / "tiny-teacher"
    qa = tiny_classifier(["0", "1"], seed=1)
    qa.model.save_pretrained(out)
    qa.tokenizer.save_pretrained(out)
    return out


def test_kd_chain_trains_a_student_and_ships_checked_bundles(
    tiny_teacher_dir: Path, tiny_classifier_bundle, sst2_dir, tmp_path: Path, capsys
) -> None:
    """Teacher-layer student with a hidden-state term, trained on texts plus augmented copies (teacher only),
    exported to every format and each checked against PyTorch."""

    from edgekit.export.pipeline import export_all
    from edgekit.export.recipes import load_recipe

    aug = tmp_path / "aug"
    copy_args = ["--train", str(sst2_dir / "dev.tsv"), "--texts", "16"]
    assert edgekit("export", "augment-texts", str(tiny_classifier_bundle.path), str(aug), *copy_args).returncode == 0
    written = json.loads((aug / "augment.json").read_text())["written"]
    recipe_file = tmp_path / "r.toml"
    recipe_file.write_text(
        f"""
name = "tiny-cls-kd"
output_dir = {json.dumps(str(tmp_path / "runs"))}
task = "classification"
[teacher]
model = {json.dumps(str(tiny_teacher_dir))}
[student]
init = "teacher-layers"
layers = [1]
[data]
train = {json.dumps(str(sst2_dir / "train.tsv"))}
dev = {json.dumps(str(sst2_dir / "dev.tsv"))}
extra_train = [{json.dumps(str(aug / "texts.tsv"))}]
max_seq_len = 64
train_limit = 48
[loss]
alpha = 0.5
temperature = 4.0
hidden_weight = 0.1
[training]
max_steps = 3
batch_size = 8
save_steps = 2
logging_steps = 1
group_by_length = true
"""
    )
    recipe = load_recipe(recipe_file)
    rows = export_all(recipe, check_questions=12)
    result = json.loads((recipe.out / "result.json").read_text())
    assert result["steps"] == 3 and result["method"].startswith("KD T=4 alpha=0.5 + hidden x0.1")
    assert result["n_train_examples"] == 48 and result["n_train_features"] == 48 + written
    assert len(list((recipe.out.parent / "cache").glob("teacher-logits-cls-*"))) == 2  # one per training file
    log = json.loads((recipe.out / "training_log.json").read_text())
    assert any("loss_soft" in e and "loss_hidden" in e for e in log)
    said = capsys.readouterr()
    assert "{'loss'" not in said.out + said.err  # a bar with the loss on it, not raw log dicts
    assert {(r.format, r.precision) for r in rows} == chain_forms()
    for r in rows:
        assert r.n_questions == 12 and r.accuracy is not None and r.exact_match is None
        if r.precision == "fp32":  # ONNX and TFLite, each against PyTorch
            assert r.max_abs_diff < 1e-3 and r.answer_agreement == 1.0
    assert "| accuracy | macro-F1 |" in (recipe.out / "export-summary.md").read_text()
    for r in rows:
        assert load_bundle(r.path).manifest.labels == ["0", "1"]


def test_a_teacher_without_a_head_for_the_labels_is_refused(sst2_dir, tmp_path: Path) -> None:
    from edgekit.export.distill import run_distill
    from edgekit.export.recipes import load_recipe

    recipe = load_recipe(
        None,
        [
            'task="classification"',
            f"output_dir={json.dumps(str(tmp_path))}",
            'teacher.model="packaged:all-MiniLM-L6-v2"',
            f"data.train={json.dumps(str(sst2_dir / 'dev.tsv'))}",
            f"data.dev={json.dumps(str(sst2_dir / 'dev.tsv'))}",
        ],
    )
    with pytest.raises(Exception, match="no classifier head trained on the recipe's 2 labels"):
        run_distill(recipe)


@pytest.mark.parametrize(
    ("overrides", "where"),
    [
        (['task="speech"'], "key 'task'"),
        (['task="classification"'], "key 'data.train'"),
        (['task="classification"', 'data.train="a.tsv"', 'data.dev="b.tsv"', 'data.labels=["a", "a"]'], "data.labels"),
        (['data.labels=["a", "b"]'], "data.labels"),
        (
            [
                'task="classification"',
                'data.train="a.tsv"',
                'data.dev="b.tsv"',
                'data.extra_train=["c.tsv"]',
                "loss.alpha=1",
            ],
            "data.extra_train",
        ),
    ],
)
def test_classification_recipe_settings_are_checked_before_anything_runs(overrides, where) -> None:
    from edgekit.export.recipes import load_recipe

    with pytest.raises(InputError, match=where.replace(".", r"\.")):
        load_recipe(None, overrides)


def test_a_report_of_two_tasks_groups_by_task(
    tiny_bundle, tiny_classifier_bundle, dev_path, sst2_dir, tmp_path
) -> None:
    from edgekit.export.report import write_report

    run(tiny_bundle.path, dev_path, tmp_path / "qa", RunConfig(limit=4, warmup=0, progress=False))
    run(
        tiny_classifier_bundle.path,
        sst2_dir / "dev.tsv",
        tmp_path / "cls",
        RunConfig(limit=8, warmup=0, progress=False),
    )
    report = write_report([tmp_path / "qa", tmp_path / "cls"], tmp_path / "report")
    assert [r["task"] for r in report["rows"]] == ["extractive-qa", "text-classification"]
    md = (tmp_path / "report" / "report.md").read_text()
    assert "## extractive-qa" in md and "## text-classification" in md
    qa_table, cls_table = md.split("## text-classification")
    assert "| EM | F1 |" in qa_table and "accuracy" not in qa_table.split("## extractive-qa")[1]
    assert "| accuracy | macro-F1 |" in cls_table and "| EM |" not in cls_table
    assert "<h2>text-classification</h2>" in (tmp_path / "report" / "report.html").read_text()


def test_a_classifiers_vocabulary_is_pruned_on_its_training_texts(tiny_classifier_bundle, clinc_file, tmp_path) -> None:
    out = tmp_path / "v3k"
    args = ["export", "prune-vocab", str(tiny_classifier_bundle.path), str(out), "--keep", "3000"]
    proc = edgekit(*args, "--corpus", str(clinc_file), "--english-words", "0")
    assert proc.returncode == 0, proc.stderr
    pruned = load_bundle(out)
    assert pruned.manifest.vocab_size == 3000 and pruned.manifest.labels == ["0", "1"]
    corpus = pruned.manifest.source["vocab_pruning"]["corpus"]
    assert corpus == [{"file": "data_full.json", "sha256": corpus[0]["sha256"]}]
    assert edgekit("verify", str(out)).returncode == 0
    proc = edgekit(*args[:-1], "2000")  # no corpus: a classifier's is not guessed
    assert proc.returncode == 2 and "--corpus" in proc.stderr


def test_a_batch_keeps_every_label_of_the_teachers_logits_however_short_its_texts() -> None:
    """Per-position tensors are cut to the batch's longest text; a classifier's teacher logits are one row per text,
    as wide as the label set (151 for CLINC150), and stay whole."""
    import torch

    from edgekit.export.distill import collate

    row = {
        "input_ids": torch.tensor([101, 7592, 102, 0, 0, 0]),
        "attention_mask": torch.tensor([1, 1, 1, 0, 0, 0]),
        "labels": torch.tensor(4),
        "teacher_logits": torch.arange(151, dtype=torch.float32),
    }
    batch = collate([row, row])
    assert batch["input_ids"].shape == (2, 3) and batch["teacher_logits"].shape == (2, 151)


def test_a_classifier_is_fused_checked_on_texts_and_quantized(tiny_classifier_bundle, sst2_dir, tmp_path: Path) -> None:
    """ORT's fused graph for a classifier, checked against its source on the task's own texts."""
    import onnx

    from edgekit.export.quantize import quantize_dynamic_bundle

    fused = tmp_path / "fused"
    args = ["export", "fuse", str(tiny_classifier_bundle.path), str(fused)]
    refused = edgekit(*args)  # the default check set is SQuAD's: not a classifier's inputs
    assert refused.returncode == 2 and "--validate-dataset" in refused.stderr and not fused.exists()
    done = edgekit(*args, "--validate-dataset", str(sst2_dir / "dev.tsv"))
    assert done.returncode == 0, done.stderr
    assert "checked on 8 texts" in done.stdout and "Attention 2" in done.stdout
    bundle = load_bundle(fused)
    assert bundle.manifest.labels == ["0", "1"] and bundle.manifest.task == "text-classification"
    q = quantize_dynamic_bundle(bundle, tmp_path / "fused-int8")
    assert "QAttention" in {n.op_type for n in onnx.load(q.model_path).graph.node}
    assert q.manifest.labels == ["0", "1"]


def test_a_model_that_gives_nan_on_a_real_input_is_stopped_naming_the_input(
    tiny_classifier_bundle, sst2_dir, tmp_path: Path
) -> None:
    """The load probe feeds only the largest token id; a NaN embedding row of a word of the third example passes
    it. The run answers the first two, then stops in one line naming the model and the example; its log stays
    strict JSON."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    from edgekit.bundle import write_bundle
    from edgekit.export.vocab import word_embedding_node

    src = tiny_classifier_bundle
    model = onnx.load(str(src.model_path))
    name = word_embedding_node(model, src.model_path).input[0]
    init = next(t for t in model.graph.initializer if t.name == name)
    table = numpy_helper.to_array(init).copy()
    texts = [ex.text for ex in load_texts(sst2_dir / "dev.tsv")[:3]]
    ids = [set(src.tokenizer().tokenizer.encode(t).ids) for t in texts]
    table[min(ids[2] - ids[0] - ids[1])] = np.nan
    init.CopyFrom(numpy_helper.from_array(table, name))
    poisoned = tmp_path / "poisoned.onnx"
    onnx.save(model, str(poisoned))
    bundle = write_bundle(tmp_path / "nan-bundle", poisoned, src.tokenizer_path, src.manifest)
    assert edgekit("verify", str(bundle.path)).returncode == 0  # the probe cannot see it
    out = tmp_path / "run"
    r = edgekit("run", str(bundle.path), "--dataset", str(sst2_dir / "dev.tsv"), "--out", str(out), "--limit", "3")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    [line] = [x for x in r.stderr.splitlines() if x.startswith("edgekit: error")]
    assert str(bundle.model_path) in line and "on example id line-4" in line and "finite scores" in line
    rows = (out / "predictions.jsonl").read_text().splitlines()
    assert [json.loads(row, parse_constant=pytest.fail)["id"] for row in rows] == ["line-2", "line-3"]


@pytest.mark.parametrize("method", ["minmax", "nncf"])
def test_a_classifier_is_statically_quantized_on_its_training_texts(
    tiny_classifier_bundle, sst2_dir, tmp_path: Path, method: str
) -> None:
    """Static INT8 (ONNX Runtime's or NNCF's) calibrates on the task's own inputs; SQuAD's windows (the default)
    are refused for a classifier."""
    out = tmp_path / "static"
    args = ["export", "int8", str(tiny_classifier_bundle.path), str(out), "--static", method]
    refused = edgekit(*args)
    assert refused.returncode == 2 and "--calibration-data" in refused.stderr and not out.exists()
    done = edgekit(*args, "--calibration-data", str(sst2_dir / "train.tsv"), "--calibration-windows", "16")
    assert done.returncode == 0, done.stderr
    q = load_bundle(out)
    assert q.manifest.labels == ["0", "1"] and q.manifest.source["quantization"]["calibration_data"].startswith("16 ")
    run = edgekit("run", str(out), "--dataset", str(sst2_dir / "dev.tsv"), "--out", str(tmp_path / "r"), "--limit", "8")
    assert run.returncode == 0, run.stderr


def test_a_tsv_saved_with_a_byte_order_mark_and_blank_lines_at_its_end_reads_as_any_other(tmp_path: Path) -> None:
    """Spreadsheets and Windows editors start a UTF-8 file with a BOM and end it with blank lines: neither is data."""
    path = tmp_path / "dev.tsv"
    path.write_bytes(b"\xef\xbb\xbfsentence\tlabel\r\ngood film\t1\r\n\r\n\n")
    assert [(ex.text, ex.label) for ex in read_tsv(path)] == [("good film", "1")]
    path.write_bytes(b"sentence\tlabel\ngood film\t1\n\nbad film\t0\n")
    with pytest.raises(InputError, match="line 3"):  # a blank line inside the data still is one
        read_tsv(path)
