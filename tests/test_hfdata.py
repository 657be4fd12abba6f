"""Data the ecosystem's way (export/hfdata.py): local parquet/jsonl/csv/tsv files and a hub name from a local
datasets cache, offline, read through the datasets library into the files the device reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

datasets = pytest.importorskip("datasets")
pd = pytest.importorskip("pandas")

from edgekit.cli import main  # noqa: E402
from edgekit.errors import InputError  # noqa: E402
from edgekit.export.hfdata import materialize  # noqa: E402
from edgekit.squad import load_squad, sample_path  # noqa: E402
from edgekit.tasks.classification import load_texts  # noqa: E402

ROWS = {"sentence": ["a gripping, funny film", "dull\tand far too long", "it is a movie"], "label": [1, 0, 1]}


@pytest.fixture(autouse=True)
def offline_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every cache in the test's own folder, and no network."""
    monkeypatch.setenv("EDGEKIT_CACHE", str(tmp_path / "edgekit-cache"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    return tmp_path / "hf-datasets"


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl", ".csv", ".tsv"])
def test_a_local_file_with_mapped_columns_becomes_the_texts_the_device_reads(tmp_path: Path, suffix: str) -> None:
    frame = pd.DataFrame(ROWS)
    path = tmp_path / f"data{suffix}"
    if suffix == ".parquet":
        frame.to_parquet(path)
    elif suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        rows = ROWS if suffix == ".csv" else {**ROWS, "sentence": [s.replace("\t", " ") for s in ROWS["sentence"]]}
        pd.DataFrame(rows).to_csv(path, sep="," if suffix == ".csv" else "\t", index=False)
    local = materialize(str(path), "text-classification", "train", {"text": "sentence"})
    got = load_texts(local, "train")
    want = ROWS["sentence"] if suffix != ".tsv" else [s.replace("\t", " ") for s in ROWS["sentence"]]
    assert [(e.text, e.label) for e in got] == list(zip(want, ["1", "0", "1"], strict=True))
    assert load_texts(local) == got  # the file's one split is the default
    assert materialize(str(path), "text-classification", "train", {"text": "sentence"}) == local  # written once


def _cache_hub_dataset(cache: Path, name: str, frame, features, split: str) -> None:
    """What a download of hub dataset ``name`` leaves in the datasets cache (name/config/version/hash)."""
    from datasets.packaged_modules.parquet.parquet import Parquet

    src = cache.parent / f"{name}-{split}.parquet"
    frame.to_parquet(src)
    builder = Parquet(
        cache_dir=str(cache), dataset_name=name, config_name="default", data_files={split: str(src)},
        features=features, hash="0123456789abcdef",
    )  # fmt: skip
    builder.download_and_prepare()
    (config,) = [p for p in (cache / name).iterdir() if p.is_dir()]
    config.rename(cache / name / "default")


def test_a_hub_name_from_the_local_cache_keeps_its_label_names(offline_caches: Path, tmp_path: Path) -> None:
    features = datasets.Features(
        {"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])}
    )
    _cache_hub_dataset(offline_caches, "tiny_sst2", pd.DataFrame(ROWS), features, "validation")
    out = tmp_path / "dev.json"
    argv = ["export", "dataset", "hf:tiny_sst2", str(out), "--task", "classification", "--split", "validation"]
    assert main([*argv, "--columns", "text=sentence"]) == 0
    assert [(e.text, e.label) for e in load_texts(out, "validation")] == list(
        zip(ROWS["sentence"], ["pos", "neg", "pos"], strict=True)
    )
    assert main([*argv, "--columns", "text=sentence"]) == 2  # an existing file is left alone


def test_squad_rows_become_the_same_squad_questions(tmp_path: Path) -> None:
    examples = load_squad(sample_path("dev"))[:20]
    rows = [
        {
            "id": ex.id,
            "title": "t",
            "context": ex.context,
            "question": ex.question,
            "answers": {"text": [a.text for a in ex.answers], "answer_start": [a.start for a in ex.answers]},
        }
        for ex in examples
    ]
    path = tmp_path / "squad.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    got = load_squad(materialize(str(path), "extractive-qa", "validation"))
    assert [(e.id, e.question, e.context, e.answers) for e in got] == [
        (e.id, e.question, e.context, e.answers) for e in examples
    ]


def test_a_recipe_names_a_datasets_source_and_trains_on_its_file(tmp_path: Path) -> None:
    from edgekit.export.recipes import load_recipe

    pd.DataFrame(ROWS).to_parquet(tmp_path / "train.parquet")
    pd.DataFrame(ROWS).to_json(tmp_path / "dev.jsonl", orient="records", lines=True)
    recipe = load_recipe(
        None,
        [
            'task="classification"',
            f'data.train="{tmp_path / "train.parquet"}"',
            f'data.dev="{tmp_path / "dev.jsonl"}"',
            'data.columns={text = "sentence"}',
        ],
    )
    assert recipe.data.train.endswith(".json") and recipe.data.train_split == "train"
    assert recipe.data.dev_split == "validation"
    assert len(load_texts(recipe.data.dev, recipe.data.dev_split)) == 3


def test_bad_sources_are_one_line_naming_them(tmp_path: Path) -> None:
    pd.DataFrame(ROWS).to_parquet(tmp_path / "x.parquet")
    with pytest.raises(InputError, match=r"column .text..*map with --columns"):
        materialize(str(tmp_path / "x.parquet"), "text-classification", "train")
    with pytest.raises(InputError, match="columns of a text-classification dataset"):
        materialize(str(tmp_path / "x.parquet"), "text-classification", "train", {"txt": "sentence"})
    with pytest.raises(InputError, match="hf:no_such_dataset"):
        materialize("hf:no_such_dataset", "text-classification", "train")
    pd.DataFrame({"sentence": ["ok", ""], "label": [1, 0]}).to_parquet(tmp_path / "empty.parquet")
    with pytest.raises(InputError, match="row 1 column 'sentence'"):
        materialize(str(tmp_path / "empty.parquet"), "text-classification", "train", {"text": "sentence"})


def test_rows_the_device_would_refuse_are_refused_here_naming_the_row(tmp_path: Path) -> None:
    from edgekit.export.hfdata import parse_columns

    row = {"id": "a", "title": "t", "context": "Paris is big", "question": "what?"}
    bad_start = [{**row, "answers": {"text": ["Paris"], "answer_start": [3]}}]
    pd.DataFrame(bad_start).to_json(tmp_path / "s.jsonl", orient="records", lines=True)
    with pytest.raises(InputError, match=r"row 0 column 'answers'.*offset of its text"):
        materialize(str(tmp_path / "s.jsonl"), "extractive-qa", "train")
    twice = [{**row, "answers": {"text": ["Paris"], "answer_start": [0]}}] * 2
    pd.DataFrame(twice).to_json(tmp_path / "d.jsonl", orient="records", lines=True)
    with pytest.raises(InputError, match=r"row 1 column 'id'.*unique id"):
        materialize(str(tmp_path / "d.jsonl"), "extractive-qa", "train")
    (tmp_path / "gap.csv").write_text("sentence,label\ngood,1\nbad,\n")  # pandas reads the label column as floats
    with pytest.raises(InputError, match=r"row 1 column 'label'"):
        materialize(str(tmp_path / "gap.csv"), "text-classification", "train", {"text": "sentence"})
    (tmp_path / "ok.csv").write_text("sentence,label\ngood,1\nbad,0\n")
    assert load_texts(materialize(str(tmp_path / "ok.csv"), "text-classification", "train", {"text": "sentence"}))
    for name in ("hf:", "hf:../../etc/passwd", "hf:a:b:c"):
        with pytest.raises(InputError, match="hub id"):
            materialize(name, "text-classification", "train")
    with pytest.raises(InputError, match="each task column once"):
        parse_columns(["text=sentence,text=label"])


def test_wnut17_as_the_hub_has_it_becomes_the_same_tagged_sentences(
    offline_caches: Path, tmp_path: Path, wnut_dir
) -> None:
    """The hub's wnut_17 layout (words and ClassLabel tag ids per row) from the local cache: the CoNLL file
    written is read as the same sentences as WNUT-17's own test file."""
    from edgekit.entities import read_conll

    sentences = read_conll(wnut_dir / "emerging.test.annotated")[:50]
    names = [
        "O",
        *(f"{p}-{k}" for k in ("corporation", "creative-work", "group", "location", "person", "product") for p in "BI"),
    ]
    frame = pd.DataFrame(
        {
            "id": [str(i) for i in range(len(sentences))],
            "tokens": [list(s.words) for s in sentences],
            "ner_tags": [[names.index(t) for t in s.tags] for s in sentences],
        }
    )
    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "tokens": datasets.Sequence(datasets.Value("string")),
            "ner_tags": datasets.Sequence(datasets.ClassLabel(names=names)),
        }
    )
    _cache_hub_dataset(offline_caches, "wnut_17", frame, features, "test")
    out = tmp_path / "test.conll"
    assert main(["export", "dataset", "hf:wnut_17", str(out), "--task", "tokens", "--split", "test"]) == 0
    got = read_conll(out)
    assert [(s.words, s.tags) for s in got] == [(s.words, s.tags) for s in sentences]


def test_tagged_rows_the_device_would_refuse_are_refused_naming_the_row(tmp_path: Path) -> None:
    for rows, expected in (
        ({"tokens": [["Paris", "is"]], "ner_tags": [["B-location"]]}, "row 0: expected a non-empty list of words"),
        ({"tokens": [["Paris"]], "ner_tags": [["I-location"]]}, "row 0 column 'ner_tags': expected IOB2 tags"),
        ({"tokens": [["Par\tis"]], "ner_tags": [["O"]]}, "row 0 column 'tokens': expected words of visible"),
        ({"tokens": [["w" * 1001]], "ner_tags": [["O"]]}, "row 0 column 'tokens': expected words of at most 1,000"),
        ({"tokens": [["w"] * 5001], "ner_tags": [["O"] * 5001]}, "expected a sentence of at most 5,000 words"),
        ({"tokens": [["Paris"]], "ner_tags": [["X-city"]]}, "row 0 column 'ner_tags': expected tags O, B-TYPE"),
    ):
        path = tmp_path / "rows.jsonl"
        path.write_text(json.dumps({k: v[0] for k, v in rows.items()}) + "\n")
        with pytest.raises(InputError, match=expected):
            materialize(str(path), "token-classification", "train")
