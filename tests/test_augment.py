"""Question copies for distillation: contexts and gold spans stay, question and answer words stay, the
output is a SQuAD file the loader takes, made the same from the same seed, and distillation gives it a
teacher-logits cache of its own while reusing the original questions' cache."""

from __future__ import annotations

import json

from edgekit.cli import main
from edgekit.export.augment import _WORD, QUESTION_WORDS
from edgekit.export.distill import run_distill
from edgekit.export.recipes import RECIPES_DIR, load_recipe
from edgekit.squad import load_squad


def test_copies_keep_contexts_spans_and_question_words(tmp_path, tiny_bundle, train_path) -> None:
    out = tmp_path / "aug"
    args = ["export", "augment-questions", str(tiny_bundle.path), str(out), "--train", str(train_path)]
    assert main([*args, "--questions", "300", "--copies", "2", "--seed", "1"]) == 0
    copies = load_squad(out / "questions.json")
    record = json.loads((out / "augment.json").read_text())
    assert record["written"] == len(copies) > 400 and record["questions"] == 300 and record["copies"] == 2
    originals = {ex.id: ex for ex in load_squad(train_path)}
    replaced = 0
    for c in copies:
        qid, k = c.id.rsplit("-aug", 1)
        ex = originals[qid]
        assert k in ("1", "2") and c.question.split() != ex.question.split()
        assert (c.context, c.answers, c.title) == (ex.context, ex.answers, ex.title)
        kept = {w.lower() for w in _WORD.findall(ex.question)} & (
            QUESTION_WORDS | {w.lower() for a in ex.answer_texts for w in _WORD.findall(a)}
        )
        assert kept <= {w.lower() for w in _WORD.findall(c.question)}, (ex.question, c.question)
        replaced += bool(
            {w.lower() for w in _WORD.findall(c.question)} - {w.lower() for w in _WORD.findall(ex.question)}
        )
    assert replaced > len(copies) // 4  # words are replaced, not only dropped
    first = (out / "questions.json").read_bytes()
    assert main([*args, "--questions", "300", "--copies", "2", "--seed", "1"]) == 0  # its own output: replaced
    assert (out / "questions.json").read_bytes() == first  # the same seed, the same copies
    assert main([*args, "--questions", "300", "--copies", "2", "--seed", "2"]) == 0
    assert (out / "questions.json").read_bytes() != first
    # a directory holding an augment.json beside files of its own is not this command's to replace
    last = (out / "questions.json").read_bytes()
    (out / "result.json").write_text("{}")
    assert main([*args, "--questions", "10"]) == 2
    assert (out / "result.json").read_text() == "{}" and (out / "questions.json").read_bytes() == last


def test_distillation_adds_extra_training_files_with_their_own_cache(tmp_path, tiny_bundle, train_path) -> None:
    aug = tmp_path / "aug"
    assert main(["export", "augment-questions", str(tiny_bundle.path), str(aug), "--train", str(train_path)]) == 0
    base = [
        f"output_dir={json.dumps(str(tmp_path))}",
        'teacher.model="packaged:all-MiniLM-L6-v2"',
        "student.layers=[0]",
        "data.train_limit=5",
        "data.max_seq_len=96",
        "data.doc_stride=32",
        "training.max_steps=1",
        "training.batch_size=4",
    ]
    alone = run_distill(load_recipe(RECIPES_DIR / "tiny-test.toml", [*base, 'name="alone"']), evaluate=False)
    caches = sorted((tmp_path / "cache").iterdir())
    assert len(caches) == 1
    made = (caches[0] / "progress.json").stat().st_mtime_ns
    extra = [*base, 'name="with-copies"', f"data.extra_train=[{json.dumps(str(aug / 'questions.json'))}]"]
    both = run_distill(load_recipe(RECIPES_DIR / "tiny-test.toml", extra), evaluate=False)
    after = sorted((tmp_path / "cache").iterdir())
    assert len(after) == 2 and caches[0] in after
    assert (caches[0] / "progress.json").stat().st_mtime_ns == made  # reused, not computed again
    added = json.loads((next(c for c in after if c != caches[0]) / "progress.json").read_text())["done"]
    assert both["n_train_questions"] == 10 and both["n_train_features"] == alone["n_train_features"] + added


def test_text_copies_keep_their_label_column_and_differ_from_their_source(tmp_path, tiny_bundle, sst2_dir) -> None:
    from edgekit.tasks.classification import load_texts

    out = tmp_path / "aug"
    args = ["export", "augment-texts", str(tiny_bundle.path), str(out), "--train", str(sst2_dir / "dev.tsv")]
    assert main([*args, "--texts", "200", "--copies", "2", "--seed", "1"]) == 0
    copies = load_texts(out / "texts.tsv")
    record = json.loads((out / "augment.json").read_text())
    assert record["written"] == len(copies) > 200 and record["questions"] == 200
    sources = {tuple(ex.text.split()): ex.label for ex in load_texts(sst2_dir / "dev.tsv")}
    assert all(tuple(c.text.split()) not in sources for c in copies)  # every copy is a new input
    assert {c.label for c in copies} == {"0", "1"}
    first = (out / "texts.tsv").read_bytes()
    assert main([*args, "--texts", "200", "--copies", "2", "--seed", "1"]) == 0
    assert (out / "texts.tsv").read_bytes() == first
    assert main([*args, "--p-delete", "0", "--p-replace", "0"]) == 2  # chances that change nothing
