"""Token classification: word windows and first-sub-word alignment against transformers' ``word_ids``, the
per-token KD loss, a tagger bundle through validation, the runner, int8 and TFLite, and the recipe chain."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import WNUT_TAGS as TAGS
from conftest import chain_forms

from edgekit.bundle import load_bundle
from edgekit.entities import read_conll
from edgekit.errors import InputError
from edgekit.runner import RunConfig, run
from edgekit.tasks.tokens import WordTokenizer, load_sentences, tag_set


def test_the_wnut_tag_set_is_o_then_b_and_i_per_type(wnut_dir: Path) -> None:
    assert tag_set(read_conll(wnut_dir / "wnut17train.conll")) == TAGS


@pytest.mark.parametrize("max_seq_len", [3, 8, 16, 128])
def test_every_word_has_its_head_in_exactly_one_window(wnut_dir: Path, max_seq_len: int) -> None:
    from edgekit.export.models import packaged_minilm_path

    tok = WordTokenizer.from_file(packaged_minilm_path() / "tokenizer.json", max_seq_len)
    for s in read_conll(wnut_dir / "emerging.dev.conll")[:300]:
        windows = tok.windows(s.words)
        heads = [word for w in windows for _, word in w.heads]
        assert heads == list(range(len(s.words)))  # WNUT's words all make a token with this vocabulary
        assert all(len(w) <= max_seq_len for w in windows)
        for w in windows:
            positions = [pos for pos, _ in w.heads]
            assert positions == sorted(set(positions)) and 0 < positions[0]  # [CLS] first


def _hf_heads(hf_tok, words: list[str]) -> list[tuple[int, int]]:
    """(position, word) of each word's first sub-word, by transformers' own ``word_ids``."""
    ids = hf_tok(words, is_split_into_words=True).word_ids()
    return [(pos, w) for pos, w in enumerate(ids) if w is not None and (pos == 0 or ids[pos - 1] != w)]


@pytest.mark.parametrize("model_type", ["bert", "roberta", "xlm-roberta", "mpnet", "albert"])
def test_first_sub_words_equal_transformers_word_ids(model_type: str, wnut_dir: Path, tmp_path: Path) -> None:
    """WordPiece, byte-level BPE and SentencePiece: the device's windows (from the bundle's tokenizer.json) put
    each word's head where transformers' fast tokenizer, given pre-split words, says the word starts."""
    from transformers import AutoTokenizer

    from edgekit.export.models import LoadedQA
    from edgekit.export.tiny import ARCHITECTURES, tiny_classifier
    from edgekit.export.to_onnx import save_tokenizer_json

    hf = ARCHITECTURES[model_type][1](tmp_path)
    hf.save_pretrained(tmp_path / "tok")
    # byte-level BPE takes pre-split words only with add_prefix_space (transformers refuses them otherwise)
    hf = AutoTokenizer.from_pretrained(
        tmp_path / "tok", **({"add_prefix_space": True} if model_type == "roberta" else {})
    )
    tagger = LoadedQA(tiny_classifier(TAGS, per_token=True).model, hf, model_type, True)
    save_tokenizer_json(tagger, tmp_path / "tokenizer.json")
    tok = WordTokenizer.from_file(tmp_path / "tokenizer.json", 512)
    n = 0
    for s in read_conll(wnut_dir / "emerging.dev.conll")[:200]:
        (window,) = tok.windows(s.words)
        assert window.heads == _hf_heads(hf, list(s.words)), s.words
        assert window.ids == hf(list(s.words), is_split_into_words=True)["input_ids"]
        n += len(window.heads)
    assert n > 2000


def test_token_loss_is_ce_and_t2_kl_over_first_sub_words_only() -> None:
    from edgekit.export.losses import IGNORE_INDEX, token_kd_loss

    g = torch.Generator().manual_seed(0)
    logits, teacher = torch.randn(2, 5, 4, generator=g), torch.randn(2, 5, 4, generator=g)
    labels = torch.tensor(
        [[IGNORE_INDEX, 1, IGNORE_INDEX, 3, IGNORE_INDEX], [IGNORE_INDEX, 0, 2, IGNORE_INDEX, IGNORE_INDEX]]
    )
    known = labels != IGNORE_INDEX
    t = 3.0
    out = token_kd_loss(logits, labels, teacher, alpha=0.25, temperature=t)
    assert out["hard"] == pytest.approx(F.cross_entropy(logits.reshape(-1, 4), labels.reshape(-1)).item(), rel=1e-6)

    def t2_kl(at: torch.Tensor) -> float:
        """T² · KL(teacher_T || student_T) averaged over the positions ``at``, by torch's own kl_div."""
        s, q = F.log_softmax(logits[at] / t, -1), F.log_softmax(teacher[at] / t, -1)
        return t * t * F.kl_div(s, q, reduction="batchmean", log_target=True).item()

    assert out["soft"] == pytest.approx(t2_kl(known), rel=1e-5)
    assert out["loss"] == pytest.approx(0.25 * out["hard"].item() + 0.75 * out["soft"].item(), rel=1e-6)
    # what an unlabelled position holds changes nothing
    changed = logits.clone()
    changed[~known] = 100.0
    assert token_kd_loss(changed, labels, teacher, 0.25, t)["loss"] == pytest.approx(out["loss"].item(), rel=1e-6)
    assert token_kd_loss(logits, labels, logits, 0.0, t)["loss"].item() == pytest.approx(0.0, abs=1e-6)
    assert set(token_kd_loss(logits, labels, teacher, 1.0, t)) == {"loss", "hard"}
    # a word only the teacher tags (-1): in the soft term, not the hard one
    extra = labels.clone()
    extra[0, 2] = -1
    both = extra != IGNORE_INDEX
    with_extra = token_kd_loss(logits, extra, teacher, 0.25, t)
    assert with_extra["hard"] == pytest.approx(out["hard"].item(), rel=1e-6)
    assert with_extra["soft"] == pytest.approx(t2_kl(both), rel=1e-5)


def test_a_tagger_bundle_records_its_tags_and_validates_against_pytorch(tiny_tagger_bundle, wnut_excerpt) -> None:
    from edgekit.export.tiny import tiny_classifier
    from edgekit.export.to_onnx import validate

    m = tiny_tagger_bundle.manifest
    assert m.task == "token-classification" and m.labels == TAGS and m.output_names == ["logits"]
    v = validate(tiny_classifier(TAGS, per_token=True), tiny_tagger_bundle, load_sentences(wnut_excerpt))
    assert v.ok and v.answer_agreement == 1.0 and v.n_windows > v.n_questions  # 32 tokens: long tweets split


def test_the_runner_tags_each_word_from_its_first_sub_word_and_scores_entities(
    tiny_tagger_bundle, wnut_excerpt, tmp_path: Path
) -> None:
    """The runner's tags equal PyTorch's argmax at transformers' first sub-words; its scores, the scorer's."""
    from transformers import PreTrainedTokenizerFast

    from edgekit.entities import score_entities
    from edgekit.export.tiny import tiny_classifier

    m = run(tiny_tagger_bundle.path, wnut_excerpt, tmp_path / "r", RunConfig(warmup=0, progress=False))
    sentences = load_sentences(wnut_excerpt)
    predictions = json.loads((tmp_path / "r" / "predictions.json").read_text())
    assert m["task"] == "token-classification" and m["n_examples"] == len(sentences) == 24
    gold = [s.tags for s in sentences]
    want = score_entities(gold, [predictions[s.id] for s in sentences], [s.words for s in sentences])
    assert m["f1"] == want["f1"] and m["surface_f1"] == want["surface"]["f1"] and m["per_type"] == want["per_type"]

    model = tiny_classifier(TAGS, per_token=True).model
    hf = PreTrainedTokenizerFast(tokenizer_file=str(tiny_tagger_bundle.tokenizer_path))
    for s in sentences:
        enc = hf(list(s.words), is_split_into_words=True, return_tensors="pt")
        if enc["input_ids"].shape[1] > 32:
            continue  # several windows: the runner's own cut (tested above)
        with torch.no_grad():
            logits = model(**enc).logits[0]
        heads = _hf_heads(hf, list(s.words))
        assert predictions[s.id] == [TAGS[int(logits[pos].argmax())] for pos, _ in heads]


@pytest.mark.parametrize(("edit", "said"), [("drop", "a tag per word of sentence sent-1"), ("B-city", "got 'B-city'")])
def test_a_resumed_run_refuses_logged_tags_that_do_not_fit_their_sentence(
    tiny_tagger_bundle, wnut_excerpt, tmp_path: Path, edit: str, said: str
) -> None:
    """Tags read back from the prediction log are checked against the bundle and the sentence when the log is
    read, naming its line, before any sentence is run again."""
    out = tmp_path / "r"
    run(tiny_tagger_bundle.path, wnut_excerpt, out, RunConfig(limit=3, warmup=0, progress=False))
    log = out / "predictions.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    record = json.loads(lines[1])
    record["tags"] = record["tags"][:-1] if edit == "drop" else [*record["tags"][:-1], edit]
    lines[1] = json.dumps(record) + "\n"
    log.write_text("".join(lines))
    with pytest.raises(InputError, match=rf"predictions.jsonl: line 2: .*{said}"):
        run(tiny_tagger_bundle.path, wnut_excerpt, out, RunConfig(limit=6, warmup=0, progress=False))
    assert log.read_text() == "".join(lines)


def test_a_tag_the_bundle_lacks_is_refused_in_one_line_and_exits_2(tiny_tagger_bundle, tmp_path: Path) -> None:
    data = tmp_path / "x.conll"
    data.write_text("Paris\tB-city\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgekit.cli",
            "run",
            str(tiny_tagger_bundle.path),
            "--dataset",
            str(data),
            "--out",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert f"{data}: line 1:" in proc.stderr and "one of the bundle's tags" in proc.stderr
    assert not (tmp_path / "r").exists()


def test_a_report_of_a_tagger_and_a_qa_run_has_a_table_each(
    tiny_tagger_bundle, tiny_bundle, wnut_excerpt, dev_path, tmp_path
) -> None:
    from edgekit.export.report import build_rows, read_inputs, task_tables

    run(tiny_tagger_bundle.path, wnut_excerpt, tmp_path / "tag", RunConfig(warmup=0, progress=False))
    run(tiny_bundle.path, dev_path, tmp_path / "qa", RunConfig(limit=4, warmup=0, progress=False))
    rows = build_rows(read_inputs([tmp_path / "tag", tmp_path / "qa"])[0])
    heads = {task: head for task, head, _ in task_tables(rows)}
    head = heads["token-classification"]
    assert "surface F1" in head and "F1" in head and "EM" not in head and "accuracy" not in head
    assert "surface F1" not in heads["extractive-qa"]
    tagger = next(r for r in rows if r.task == "token-classification")
    assert tagger.score_name == "entity F1" and tagger.surface_f1 is not None and tagger.n_questions == 24
    assert tagger.dataset == wnut_excerpt.name and head[2] == "data"  # rows over different files say so
    _, _, body = next(t for t in task_tables(rows) if t[0] == "token-classification")
    assert all(len(cell.partition(".")[2]) <= 2 for cell in body[0][head.index("surface F1")].split())


def test_predictions_read_back_that_do_not_fit_the_sentences_are_refused(
    tiny_tagger_bundle, wnut_excerpt, tmp_path
) -> None:
    from edgekit.tasks.tokens import TOKENS

    sentences = load_sentences(wnut_excerpt)
    good = {s.id: ["O"] * len(s.words) for s in sentences}
    assert TOKENS.score(sentences, good, tiny_tagger_bundle.manifest)["f1"] == 0.0
    for bad in (["O"], [None] * len(sentences[0].words), ["B-city"] * len(sentences[0].words)):
        with pytest.raises(InputError, match="predictions of sentence"):
            TOKENS.score(sentences, {**good, sentences[0].id: bad}, tiny_tagger_bundle.manifest)


def test_int8_and_tflite_taggers_keep_the_tags_and_agree(tiny_tagger_bundle, wnut_excerpt, tmp_path: Path) -> None:
    from edgekit.export.quantize import WindowReader, quantize_dynamic_bundle, quantize_static_bundle
    from edgekit.export.tiny import tiny_classifier
    from edgekit.export.to_onnx import validate

    int8 = quantize_dynamic_bundle(tiny_tagger_bundle, tmp_path / "int8", "tiny-tagger-int8")
    assert int8.manifest.labels == TAGS and int8.manifest.task == "token-classification"
    m = run(int8.path, wnut_excerpt, tmp_path / "r8", RunConfig(warmup=0, progress=False))
    assert m["n_examples"] == 24 and 0.0 <= m["f1"] <= 100.0
    # static QDQ, calibrated on the windows of tagged sentences
    reader = WindowReader(tiny_tagger_bundle, load_sentences(wnut_excerpt), 16)
    assert reader.n == 16 and all(f["input_ids"].shape == (1, 32) for f in reader.feeds)
    static = quantize_static_bundle(tiny_tagger_bundle, tmp_path / "static", reader, "tiny-tagger-static")
    assert run(static.path, wnut_excerpt, tmp_path / "rs", RunConfig(warmup=0, progress=False))["n_examples"] == 24
    if importlib.util.find_spec("litert_torch") is None:
        pytest.skip("litert-torch is not installed")
    from edgekit.export.to_tflite import tflite_bundles

    tagger = tiny_classifier(TAGS, per_token=True)
    t32, _ = tflite_bundles(tagger, tmp_path / "tfl", "tiny-tagger", 32, 0)
    v = validate(tagger, t32, load_sentences(wnut_excerpt))
    assert v.ok and v.answer_agreement == 1.0
    fp = run(tiny_tagger_bundle.path, wnut_excerpt, tmp_path / "r32", RunConfig(warmup=0, progress=False))
    tf = run(t32.path, wnut_excerpt, tmp_path / "rtf", RunConfig(warmup=0, progress=False))
    assert json.loads((tmp_path / "rtf" / "predictions.json").read_text()) == json.loads(
        (tmp_path / "r32" / "predictions.json").read_text()
    )
    assert tf["f1"] == fp["f1"]


@pytest.fixture(scope="module")
def tiny_tagger_teacher(tmp_path_factory) -> Path:
    """A tiny tagger checkpoint as a user brings one: config, safetensors weights, fast tokenizer."""
    from edgekit.export.tiny import tiny_classifier

    out = tmp_path_factory.mktemp("teacher") / "tiny-tagger-teacher"
    t = tiny_classifier(TAGS, seed=1, per_token=True)
    t.model.save_pretrained(out)
    t.tokenizer.save_pretrained(out)
    return out


def test_kd_chain_trains_a_tagger_and_ships_checked_bundles(
    tiny_tagger_teacher: Path, wnut_dir: Path, wnut_excerpt: Path, tmp_path: Path
) -> None:
    """A teacher-layer student distilled on per-word teacher logits, over the gold sentences and texts only the
    teacher tags, exported to every format, each checked."""
    from edgekit.export.pipeline import export_all
    from edgekit.export.recipes import load_recipe

    extra = tmp_path / "extra.txt"
    extra.write_text("paris is lovely in spring\n\nwe watched star wars with anna\n")
    recipe_file = tmp_path / "r.toml"
    recipe_file.write_text(
        f"""
name = "tiny-tag-kd"
output_dir = {json.dumps(str(tmp_path / "runs"))}
task = "tokens"
[teacher]
model = {json.dumps(str(tiny_tagger_teacher))}
[student]
init = "teacher-layers"
layers = [1]
[data]
train = {json.dumps(str(wnut_dir / "wnut17train.conll"))}
dev = {json.dumps(str(wnut_excerpt))}
extra_train = [{json.dumps(str(extra))}]
max_seq_len = 48
train_limit = 40
[loss]
alpha = 0.5
temperature = 2.0
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
    assert result["steps"] == 3 and result["method"].startswith("KD T=2 alpha=0.5")
    assert result["n_train_examples"] == 40 and result["n_train_features"] >= 42
    shapes = sorted(np.load(f).shape for f in (recipe.out.parent / "cache").glob("teacher-logits-tokens-*/logits.npy"))
    words = sum(len(s.words) for s in read_conll(wnut_dir / "wnut17train.conll")[:40])
    assert shapes == sorted([(words, len(TAGS)), (5 + 6, len(TAGS))])  # one cache per training file
    log = json.loads((recipe.out / "training_log.json").read_text())
    assert any("loss_soft" in e for e in log)
    assert {(r.format, r.precision) for r in rows} == chain_forms()
    for r in rows:
        assert r.n_questions == 12 and r.f1 is not None and r.surface_f1 is not None and r.accuracy is None
        if r.precision == "fp32":
            assert r.max_abs_diff < 1e-3 and r.answer_agreement == 1.0
        assert load_bundle(r.path).manifest.labels == TAGS
    assert "| entity F1 | surface F1 |" in (recipe.out / "export-summary.md").read_text()


@pytest.mark.parametrize(
    ("overrides", "where"),
    [
        (['data.train="a.conll"'], "key 'data.dev'"),
        (
            ['data.train="a.conll"', 'data.dev="b.conll"', 'data.extra_train=["c.txt"]', "loss.alpha=1"],
            "data.extra_train",
        ),
        (['data.train="a.conll"', 'data.dev="b.conll"', 'data.labels=["O", "O"]'], "data.labels"),
    ],
)
def test_tagger_recipe_settings_are_checked_before_anything_runs(overrides: list[str], where: str) -> None:
    from edgekit.export.recipes import load_recipe

    with pytest.raises(InputError, match=where.replace(".", r"\.")):
        load_recipe(None, ['task="tokens"', *overrides])


def test_export_onnx_keeps_a_checkpoints_tagger_head(tiny_tagger_teacher: Path, wnut_excerpt: Path, tmp_path) -> None:
    """``edgekit export onnx`` on a token-classification checkpoint writes a tagger bundle over its id2label,
    checked on the sentences named; without them it refuses SQuAD's default in one line."""
    from edgekit.cli import main

    out = tmp_path / "b"
    args = ["export", "onnx", str(tiny_tagger_teacher), str(out), "--max-seq-len", "64"]
    assert main([*args, "--validate-dataset", str(wnut_excerpt), "--validate-n", "8"]) == 0
    m = load_bundle(out).manifest
    assert m.task == "token-classification" and m.labels == TAGS and m.source["fresh_head"] is False
    assert main([*args[:3], str(tmp_path / "c"), "--max-seq-len", "64"]) == 2


def test_sentences_for_the_teacher_alone_come_from_text_tsv_or_conll(
    sst2_dir: Path, wnut_excerpt: Path, tmp_path
) -> None:
    from edgekit.export.tasks.tokens import read_unlabelled

    txt = tmp_path / "t.txt"
    txt.write_text("paris is lovely\n\n  we saw  star wars \n")
    assert [s.words for s in read_unlabelled(txt)] == [("paris", "is", "lovely"), ("we", "saw", "star", "wars")]
    tsv = read_unlabelled(sst2_dir / "train.tsv", limit=5)
    assert len(tsv) == 5 and all(s.words and s.id.startswith("line-") for s in tsv)
    assert len(read_unlabelled(wnut_excerpt, limit=3)) == 3
    (tmp_path / "empty.txt").write_text("\n \n")
    with pytest.raises(InputError, match="at least one text"):
        read_unlabelled(tmp_path / "empty.txt")


def test_exporting_a_tagger_without_its_sentences_to_check_on_is_refused_before_anything_is_written(
    wnut_excerpt, tmp_path: Path, capsys
) -> None:
    """The check's default inputs are SQuAD questions: a tagger needs its own, and learns so before the export,
    not after a bundle it cannot check was written."""
    from edgekit.cli import main
    from edgekit.export.tiny import tiny_classifier

    tagger = tiny_classifier(TAGS, per_token=True)
    checkpoint, out = tmp_path / "checkpoint", tmp_path / "bundle"
    tagger.model.save_pretrained(checkpoint)
    tagger.tokenizer.save_pretrained(checkpoint)
    capsys.readouterr()  # transformers' notes on making the tiny model
    argv = ["export", "onnx", str(checkpoint), str(out), "--max-seq-len", "32"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--validate-dataset" in err and "CoNLL" in err, err
    assert not out.exists()
    assert main([*argv, "--validate-dataset", str(wnut_excerpt)]) == 0
    assert "validation of bundle on" in capsys.readouterr().out


def test_the_pipelines_entities_become_one_tag_per_word_for_the_same_scoring() -> None:
    """benchmarks.classification scores transformers' token-classification pipeline by edgekit's rule: its
    entities (character spans in the words joined by spaces) become IOB2 tags, one per word."""
    from benchmarks.classification import word_tags

    words = ["Snow", "in", "New", "York", "and", "Paris", "Paris", "today"]
    groups = [  # "New York", then two entities of one type side by side
        {"entity_group": "location", "start": 8, "end": 16},
        {"entity_group": "location", "start": 21, "end": 26},
        {"entity_group": "location", "start": 27, "end": 32},
    ]
    tags = word_tags(words, groups)
    assert tags == ["O", "O", "B-location", "I-location", "O", "B-location", "B-location", "O"]
    assert word_tags(words, []) == ["O"] * len(words)


def test_a_conll_file_with_a_byte_order_mark_keeps_its_first_word_whole(tmp_path: Path) -> None:
    path = tmp_path / "x.conll"
    path.write_bytes("\ufeffParis\tB-location\nis\tO\n".encode())
    [sentence] = read_conll(path)
    assert sentence.words == ("Paris", "is")


def test_an_overlong_sentence_or_word_is_refused_naming_its_lines(tmp_path: Path) -> None:
    from edgekit.tasks.tokens import MAX_WORD_CHARS

    path = tmp_path / "x.conll"
    path.write_text(f"a\tO\n\nb\tO\n{'w' * (MAX_WORD_CHARS + 1)}\tO\n")
    with pytest.raises(InputError, match=r"x.conll: line 4: expected a word of at most"):
        load_sentences(path)
    path.write_text("a\tO\n\n" + "b\tO\n" * 6000)
    with pytest.raises(InputError, match=r"x.conll: lines 3-6002: expected a sentence of at most 5,000 words"):
        load_sentences(path)
