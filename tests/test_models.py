"""The trained students shipped in models/: verified bundles within budget, cards that match their results files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekit.bundle import load_bundle
from edgekit.metric import evaluate
from edgekit.runner import QAModel
from edgekit.squad import load_squad, sample_path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
ALL = sorted(p.parent for p in MODELS.glob("*/manifest.json"))
TASK = {p: load_bundle(p, verify=False).manifest.task for p in ALL}
SHIPPED = [p for p in ALL if TASK[p] == "extractive-qa"]
CLASSIFIERS = [p for p in ALL if TASK[p] == "text-classification"]
TAGGERS = [p for p in ALL if TASK[p] == "token-classification"]


def test_at_most_four_students_one_per_task_and_budget() -> None:
    assert len(ALL) <= 4 and 1 <= len(SHIPPED) <= 2 and len(CLASSIFIERS) <= 1 and len(TAGGERS) <= 1, TASK
    for path in SHIPPED:
        assert load_bundle(path).size_mb <= 50.0
    for path in CLASSIFIERS + TAGGERS:
        assert load_bundle(path).size_mb <= 25.0


def _card_and_its_metrics(path: Path) -> tuple[str, dict]:
    """A shipped bundle's card, which names how it was made, and the metrics file it cites, a run of this very model."""
    bundle = load_bundle(path)
    text = (MODELS / f"{path.name}.md").read_text()
    assert "edgekit distill" in text and "python -m" not in text  # every command an installed edgekit command
    cited = [w.strip("`;.,") for w in text.split() if w.strip("`;.,").endswith("/metrics.json")]
    metrics = json.loads((ROOT / cited[0]).read_text())
    assert metrics["bundle"]["model_sha256"] == bundle.manifest.files[bundle.manifest.model_file].sha256
    return text, metrics


@pytest.mark.parametrize("path", CLASSIFIERS, ids=lambda p: p.name)
def test_a_classifiers_card_says_what_its_results_file_says_and_it_classifies(path: Path, sst2_dir: Path) -> None:
    from edgekit.tasks.classification import TextClassifier, read_tsv

    text, metrics = _card_and_its_metrics(path)
    assert f"accuracy {metrics['accuracy']:.2f}, macro-F1 {metrics['macro_f1']:.2f}" in text
    assert f"{metrics['bundle']['size_mb']:.1f} MB" in text
    if metrics["bundle"]["labels"] == ["0", "1"]:  # SST-2's: a trained student, far above chance on its dev rows
        model = TextClassifier.load(path)
        examples = read_tsv(sst2_dir / "dev.tsv")[:200]
        assert sum(model.predict(ex)["label"] == ex.label for ex in examples) > 160


@pytest.mark.parametrize("path", TAGGERS, ids=lambda p: p.name)
def test_a_taggers_card_says_what_its_results_file_says_and_it_tags(path: Path, wnut_dir: Path) -> None:
    from edgekit.entities import read_conll, score_entities
    from edgekit.tasks.tokens import Tagger

    text, metrics = _card_and_its_metrics(path)
    assert f"entity F1 {metrics['f1']:.2f} (P {metrics['precision']:.2f}, R {metrics['recall']:.2f})" in text
    assert f"surface-form F1 {metrics['surface_f1']:.2f}" in text and f"{metrics['bundle']['size_mb']:.1f} MB" in text
    tagger = Tagger.load(path)
    sentences = read_conll(wnut_dir / "emerging.dev.conll")[:300]
    predicted = [tagger.tag(s.words) for s in sentences]
    assert score_entities([s.tags for s in sentences], predicted)["f1"] > 30.0  # a trained tagger; untrained: ~0


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_the_card_names_its_commands_and_says_what_its_results_file_says(path: Path) -> None:
    text, metrics = _card_and_its_metrics(path)
    assert metrics["n_questions"] == 10570
    assert f"EM {metrics['exact_match']:.2f}, F1 {metrics['f1']:.2f}" in text
    assert f"{metrics['bundle']['size_mb']:.1f} MB" in text
    readme = (ROOT / "README.md").read_text()
    if path.name in readme:  # the README's results table shows the card's figures: they must be the file's too
        row = next(line for line in readme.splitlines() if f"`models/{path.name}`" in line)
        assert f"| {metrics['f1']:.2f} |" in row and f"| {metrics['bundle']['model_size_mb']:.1f} |" in row


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_a_shipped_student_answers_like_a_trained_one(path: Path) -> None:
    """On the shipped dev excerpt: a trained student scores far above an untrained QA head (under 10 F1)."""
    qa = QAModel.load(path)
    examples = load_squad(sample_path("dev"))
    predictions = {ex.id: qa.answer(ex.question, ex.context).text for ex in examples}
    assert evaluate(examples, predictions).f1 > 50.0


def test_the_readme_headline_names_every_shipped_student() -> None:
    from benchmarks.results_doc import classification_brief, headline, shipped_bundles

    assert sorted(shipped_bundles().values()) == ALL
    for path in SHIPPED:
        assert f"`models/{path.name}`" in headline()
    for path in CLASSIFIERS:
        assert f"`models/{path.name}`" in classification_brief()


def test_the_budget_times_a_shipped_copy_only_of_the_same_model(tmp_path: Path) -> None:
    """A run's own bundle directory is gone with its machine: the budget times the shipped bundle with the same
    model file instead, never one holding another model."""
    from benchmarks.budget import find_bundle
    from benchmarks.results_doc import shipped_bundles

    shipped = shipped_bundles()
    if len(shipped) < 2:
        pytest.skip("needs two shipped students: one's directory stands for a directory reused by another model")
    (sha, path), (_, other) = list(shipped.items())[:2]
    row = {"name": "x", "size_mb": 1.0}
    assert find_bundle(tmp_path / "gone", row, sha, shipped) == path
    assert find_bundle(other, row, sha, shipped) == path  # the recorded directory now holds another model
    assert find_bundle(path, row, sha, shipped) == path
    assert find_bundle(tmp_path / "gone", row, None, shipped) is None
    assert find_bundle(tmp_path / "gone", row, "0" * 64, shipped) is None
