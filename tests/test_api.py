"""``edgekit.load``: a bundle called as transformers' pipeline for its task, with the same answers."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from transformers import pipeline

import edgekit
from edgekit.errors import EdgekitError
from edgekit.squad import load_squad, sample_path

ROOT = Path(__file__).resolve().parents[1]


def _one_window_questions(n: int) -> list:
    """Dev-excerpt questions whose context fits one 384-token window (transformers scores windows apart)."""
    return [ex for ex in load_squad(sample_path("dev")) if len(ex.context) < 900][:n]


def test_qa_answers_equal_the_transformers_pipeline_on_the_exported_model(minilm_qa, minilm_bundle) -> None:
    examples = _one_window_questions(8)
    hf = pipeline("question-answering", model=minilm_qa.model, tokenizer=minilm_qa.tokenizer, device="cpu")
    m = minilm_bundle.manifest
    qa = edgekit.load(minilm_bundle.path, threads=1)
    mine = qa(question=[ex.question for ex in examples], context=[ex.context for ex in examples])
    for ex, got in zip(examples, mine, strict=True):
        want = hf(
            question=ex.question,
            context=ex.context,
            max_answer_len=m.max_answer_len,
            max_seq_len=m.max_seq_len,
            doc_stride=m.doc_stride,
        )
        assert (got["answer"], got["start"], got["end"]) == (want["answer"], want["start"], want["end"]), ex.id
        assert got["score"] == pytest.approx(want["score"], rel=1e-3, abs=1e-6)
    one = qa(question=examples[0].question, context=examples[0].context)
    assert one == mine[0] and set(one) == {"score", "start", "end", "answer"}


def test_classifier_labels_and_scores_equal_the_transformers_pipeline(tiny_classifier_bundle) -> None:
    from edgekit.export.tiny import tiny_classifier

    torch_model = tiny_classifier(["0", "1"])  # seeded: the model the bundle was exported from
    hf = pipeline("text-classification", model=torch_model.model, tokenizer=torch_model.tokenizer, device="cpu")
    texts = ["a gripping, funny film", "dull and far too long", "it is a movie", "x"]
    clf = edgekit.load(tiny_classifier_bundle.path)
    got, want = clf(texts), hf(texts)
    assert [g["label"] for g in got] == [w["label"] for w in want]
    assert np.allclose([g["score"] for g in got], [w["score"] for w in want], atol=1e-5)
    every = clf(texts[0], top_k=None)
    assert [e["label"] for e in every] == [w["label"] for w in hf(texts[0], top_k=None)]
    assert sum(e["score"] for e in every) == pytest.approx(1.0)
    assert clf(texts[0]) == [got[0]]


def test_tagger_entities_equal_the_transformers_pipeline_first_strategy(tiny_tagger_bundle, wnut_dir) -> None:
    """Entity groups, offsets, words and scores as ``pipeline("token-classification", aggregation_strategy="first")``
    gives them, on WNUT-17 sentences written as text (a random tiny tagger: many groups of every kind)."""
    from conftest import WNUT_TAGS

    from edgekit.entities import read_conll
    from edgekit.export.tiny import tiny_classifier

    torch_model = tiny_classifier(WNUT_TAGS, per_token=True)  # seeded: the model the bundle was exported from
    hf = pipeline(
        "token-classification", model=torch_model.model, tokenizer=torch_model.tokenizer,
        aggregation_strategy="first", device="cpu",
    )  # fmt: skip
    ner = edgekit.load(tiny_tagger_bundle.path)
    texts = [" ".join(s.words) for s in read_conll(wnut_dir / "emerging.dev.conll")[:200]]
    texts = [t for t in texts if t.isascii() and len(torch_model.tokenizer(t)["input_ids"]) <= 32][:60]
    assert len(texts) >= 40
    got, want = ner(texts), hf(texts)
    groups = 0
    for text, g, w in zip(texts, got, want, strict=True):
        assert [(e["entity_group"], e["start"], e["end"], e["word"]) for e in g] == [
            (e["entity_group"], e["start"], e["end"], e["word"]) for e in w
        ], text
        assert np.allclose([e["score"] for e in g], [float(e["score"]) for e in w], atol=1e-4)
        groups += len(g)
    assert groups > 50
    assert ner(texts[0]) == got[0]


def test_bad_calls_are_refused_in_one_line(minilm_bundle, tiny_classifier_bundle) -> None:
    qa = edgekit.load(minilm_bundle.path)
    with pytest.raises(EdgekitError, match="as many of each"):
        qa(question=["a", "b", "c"], context=["c", "d"])
    for bad in (
        {"question": None, "context": "c"},
        {"question": "q", "context": " "},
        {"question": [1], "context": "c"},
    ):
        with pytest.raises(EdgekitError, match=r"question|context"):
            qa(**bad)
    with pytest.raises(EdgekitError, match="top_k=3"):
        qa(question="q", context="c", top_k=3)
    clf = edgekit.load(tiny_classifier_bundle.path)
    for bad_call in (lambda: clf("x", top_k=0), lambda: clf(None), lambda: clf([1, 2])):
        with pytest.raises(EdgekitError):
            bad_call()
    with pytest.raises(EdgekitError, match="backend 'auto'"):
        edgekit.load(minilm_bundle.path, backend="auto")
    with pytest.raises(EdgekitError, match="threads='2'"):
        edgekit.load(minilm_bundle.path, threads="2")


def test_qa_takes_transformers_input_forms(minilm_bundle) -> None:
    """One string beside a list is used for every item, and the dict form answers as the keywords do."""
    qa = edgekit.load(minilm_bundle.path)
    ex = _one_window_questions(2)
    by_keywords = qa(question=[ex[0].question, ex[1].question], context=ex[0].context)
    assert by_keywords == [qa(question=q, context=ex[0].context) for q in (ex[0].question, ex[1].question)]
    assert qa({"question": ex[1].question, "context": ex[1].context}) == qa(
        question=ex[1].question, context=ex[1].context
    )


def test_import_edgekit_loads_no_runtime() -> None:
    code = "import sys, edgekit; print(sorted(m for m in ('onnxruntime', 'numpy', 'tokenizers') if m in sys.modules))"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"
    )


def _readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    block = text.split("<!-- api-example -->\n```python\n", 1)[1]
    return block.split("```", 1)[0]


def _transformers_pipeline_on(bundle: Path, task: str, tmp: Path) -> Any:
    """transformers' pipeline over the bundle's own ONNX file (Optimum's ORT model) and its tokenizer.json."""
    from optimum.onnxruntime import (
        ORTModelForQuestionAnswering,
        ORTModelForSequenceClassification,
        ORTModelForTokenClassification,
    )
    from transformers import AutoConfig, PreTrainedTokenizerFast

    from edgekit.bundle import load_bundle
    from edgekit.export.models import packaged_minilm_path

    m = load_bundle(bundle).manifest
    tmp.mkdir()
    (tmp / "model.onnx").symlink_to((bundle / m.model_file).resolve())
    config = AutoConfig.from_pretrained(packaged_minilm_path())  # the students' architecture, BERT 6x384
    if task == "question-answering":
        config.architectures, ort = ["BertForQuestionAnswering"], ORTModelForQuestionAnswering
    else:
        config.architectures, ort = ["BertForSequenceClassification"], ORTModelForSequenceClassification
        if task == "token-classification":
            config.architectures, ort = ["BertForTokenClassification"], ORTModelForTokenClassification
        config.id2label = dict(enumerate(m.labels))
        config.label2id = {name: i for i, name in enumerate(m.labels)}
    config.save_pretrained(tmp)
    specials = {"cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]", "unk_token": "[UNK]"}
    tok = PreTrainedTokenizerFast(tokenizer_file=str(bundle / m.tokenizer_file), **specials, mask_token="[MASK]")
    extra = {"aggregation_strategy": "first"} if task == "token-classification" else {}
    return pipeline(task, model=ort.from_pretrained(tmp, file_name="model.onnx"), tokenizer=tok, **extra)


def test_the_readme_example_runs_and_answers_as_transformers_pipeline(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", _readme_example()], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    qa_line, clf_line, ner_line = [
        ast.literal_eval(line) for line in done.stdout.splitlines() if line.startswith(("{", "["))
    ]
    code = _readme_example()
    question, context = (code.split(f'{k}="', 1)[1].split('"', 1)[0] for k in ("question", "context"))
    hf_qa = _transformers_pipeline_on(
        ROOT / "models" / "minilm-l6-kd-e4-int8-onnx", "question-answering", tmp_path / "q"
    )
    want = hf_qa(question=question, context=context, max_answer_len=30)
    assert (qa_line["answer"], qa_line["start"], qa_line["end"]) == (want["answer"], want["start"], want["end"])
    assert qa_line["score"] == pytest.approx(want["score"], rel=1e-4)
    assert f"'start': {want['start']}, 'end': {want['end']}, 'answer': '{want['answer']}'" in code  # its comment
    texts = ast.literal_eval(code.split("clf(", 1)[1].split(")", 1)[0])
    shipped = ROOT / "models" / "minilm-l6-sst2-kd-aug-v20000-int8-onnx-fused"
    hf_clf = _transformers_pipeline_on(shipped, "text-classification", tmp_path / "c")
    want_clf = hf_clf(texts)
    assert [g["label"] for g in clf_line] == [w["label"] for w in want_clf]
    assert np.allclose([g["score"] for g in clf_line], [w["score"] for w in want_clf], atol=1e-5)
    text = code.split('ner("', 1)[1].split('"', 1)[0]
    tagger = ROOT / code.split('ner = edgekit.load("', 1)[1].split('"', 1)[0]
    want_ner = _transformers_pipeline_on(tagger, "token-classification", tmp_path / "t")(text)
    assert [(e["entity_group"], e["start"], e["end"], e["word"]) for e in ner_line] == [
        (e["entity_group"], e["start"], e["end"], e["word"]) for e in want_ner
    ]
    assert np.allclose([e["score"] for e in ner_line], [float(e["score"]) for e in want_ner], atol=1e-4)
    assert ner_line, "the example's text names entities the shipped tagger finds"
