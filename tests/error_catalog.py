"""Every refusal a user can meet, each run through the real ``edgekit`` command line.

One table drives both the test (``tests/test_errors.py``: exit code 2, one line, no
traceback, the file and the expected words in the message) and the documentation
(``docs/errors.md``, regenerated with ``python -m tests.error_catalog`` from the
messages the cases really produce, so the page cannot drift from the code).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import shutil
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import benchmarks  # noqa: F401  (run as a module too: the workspace's data and models, as the tests find them)

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "errors.md"

VALID = {
    "version": "1.1",
    "data": [
        {
            "title": "T",
            "paragraphs": [
                {
                    "context": "Paris is in France.",
                    "qas": [
                        {
                            "id": "q1",
                            "question": "Where is Paris?",
                            "answers": [{"text": "France", "answer_start": 12}],
                        },
                        {
                            "id": "q2",
                            "question": "What is in France?",
                            "answers": [{"text": "Paris", "answer_start": 0}],
                        },
                    ],
                }
            ],
        }
    ],
}


@dataclass(frozen=True)
class Env:
    """Where a case may put its files, and the valid things it can damage."""

    work: Path
    bundle: Path  # a valid fp32 ONNX bundle
    classifier: Path  # a valid fp32 ONNX text-classification bundle, labels "0" and "1"
    tagger: Path  # a valid fp32 ONNX token-classification bundle, tags O and B-/I-location, B-/I-person

    def dataset(self, name: str, edit: Callable[[dict], None] | None = None) -> Path:
        obj = copy.deepcopy(VALID)
        if edit:
            edit(obj)
        path = self.work / name
        path.write_text(json.dumps(obj))
        return path

    def raw(self, name: str, content: bytes) -> Path:
        path = self.work / name
        path.write_bytes(content)
        return path

    def bundle_copy(self, name: str, damage: Callable[[Path], None]) -> Path:
        path = self.work / name
        shutil.copytree(self.bundle, path)
        damage(path)
        return path

    def run(self, dataset: Path, *extra: str, bundle: Path | None = None) -> list[str]:
        out = self.work / f"out-{dataset.stem}-{len(extra)}"
        return ["run", str(bundle or self.bundle), "--dataset", str(dataset), "--out", str(out), *extra]


def _texts(env: Env, name: str, content: str | bytes, *extra: str) -> list[str]:
    """``edgekit run`` of the classifier on a dataset file of ``content``."""
    data = env.raw(name, content if isinstance(content, bytes) else content.encode())
    return env.run(data, *extra, bundle=env.classifier)


def _tags(env: Env, name: str, content: str) -> list[str]:
    """``edgekit run`` of the tagger on a CoNLL file of ``content``."""
    return env.run(env.raw(name, content.encode()), bundle=env.tagger)


def _qa(obj: dict) -> dict:
    return obj["data"][0]["paragraphs"][0]["qas"][0]


def _manifest(**changes) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        m = json.loads((path / "manifest.json").read_text())
        m.update(changes)
        (path / "manifest.json").write_text(json.dumps(m))

    return damage


def _copy(src: Path, dest: Path, damage: Callable[[Path], None]) -> Path:
    shutil.copytree(src, dest)
    damage(dest)
    return dest


def _flip_byte(path: Path) -> None:
    model = path / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))


def _resume_other_dataset(env: Env) -> list[str]:
    first = env.dataset("first.json")
    out = env.work / "resumed"
    from edgekit.cli import main

    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        main(["run", str(env.bundle), "--dataset", str(first), "--out", str(out), "--no-progress"])
    other = env.dataset("second.json", lambda o: _qa(o).update(question="Where is it?"))
    return ["run", str(env.bundle), "--dataset", str(other), "--out", str(out)]


def _checkpoint(env: Env, model_type: str, **config: object) -> Path:
    """A tiny checkpoint of ``model_type`` whose config is then changed by ``config``."""
    from edgekit.export.tiny import tiny_checkpoint

    out = tiny_checkpoint(model_type, env.work / f"ckpt-{model_type}")
    settings = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**settings, **config}))
    if config:  # weights of the changed shapes, as a checkpoint of that config would hold
        from transformers import AutoConfig, AutoModelForQuestionAnswering

        AutoModelForQuestionAnswering.from_config(AutoConfig.from_pretrained(out)).save_pretrained(out)
    return out


def _template_without_its_tokens(env: Env) -> Path:
    """A checkpoint whose tokenizer's template names [CLS]/[SEP], tokens its vocabulary lacks."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    out = _checkpoint(env, "bert")
    for f in out.glob("*token*"):
        f.unlink()
    (out / "vocab.txt").unlink()
    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "[PAD]": 1, "where": 2, "here": 3}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 0), ("[SEP]", 0)]
    )
    tok.save(str(out / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "[UNK]", "pad_token": "[PAD]"}
    (out / "tokenizer_config.json").write_text(json.dumps({**config, "cls_token": "[CLS]", "sep_token": "[SEP]"}))
    return out


def _recipe_with(key: str, value: str) -> str:
    section, name = key.split(".")
    return f'name = "bad"\n[{section}]\n{name} = {value}\n'


def _recipe(env: Env, text: str) -> list[str]:
    path = env.work / "recipe.toml"
    path.write_text(text)
    return ["distill", "--recipe", str(path), "--no-eval"]


def _resume_other_recipe(env: Env) -> list[str]:
    """A run's checkpoints and settings as ``edgekit distill`` leaves them, resumed with another learning rate."""
    from edgekit.atomic import write_json
    from edgekit.export.recipes import checkpoint_settings, load_recipe

    argv = _recipe(env, f'name = "r"\noutput_dir = "{env.work}"\n[training]\nlearning_rate = 3e-5\n')
    first = load_recipe(argv[2], ["training.learning_rate=1e-4"])
    (first.out / "checkpoints" / "checkpoint-100").mkdir(parents=True)
    (first.out / "checkpoints" / "checkpoint-100" / "trainer_state.json").write_text("{}")  # a complete one
    write_json(first.out / "checkpoint-settings.json", checkpoint_settings(first))
    return argv


def _files(files: object) -> Callable[[Path], None]:
    """Replace the manifest's ``files`` with ``files``."""
    return _manifest(files=files)


def _entry_named(name: str) -> Callable[[Path], None]:
    """List the tokenizer under another name (a path that leads out of the bundle, or an absolute one)."""

    def damage(path: Path) -> None:
        m = json.loads((path / "manifest.json").read_text())
        m["files"][name] = m["files"].pop("tokenizer.json")
        m["tokenizer_file"] = "tokenizer.json"
        (path / "manifest.json").write_text(json.dumps(m))

    return damage


def _symlink_out(path: Path) -> None:
    """The tokenizer replaced by a link to a copy outside the bundle (same bytes, so only the link is wrong)."""
    outside = path.with_name(path.name + "-outside-tokenizer.json")
    shutil.copyfile(path / "tokenizer.json", outside)
    (path / "tokenizer.json").unlink()
    (path / "tokenizer.json").symlink_to(outside)


def _manifest_link(path: Path) -> None:
    outside = path.with_name(path.name + "-outside-manifest.json")
    shutil.copyfile(path / "manifest.json", outside)
    (path / "manifest.json").unlink()
    (path / "manifest.json").symlink_to(outside)


def _vocab_beyond_embedding(path: Path) -> None:
    m = json.loads((path / "manifest.json").read_text())
    m["vocab_size"] += 1000  # the tokenizer still fits; the model's embedding does not have these rows
    (path / "manifest.json").write_text(json.dumps(m))


def _occupied(env: Env, name: str) -> Path:
    """A directory holding someone else's file: no command may write there."""
    d = env.work / name
    d.mkdir(exist_ok=True)
    (d / "thesis.tex").write_text("years of work")
    return d


def _finished_run(env: Env, name: str, *extra: str) -> list[str]:
    """A run finished in ``out-<name>``; returns its command line, to resume with changes."""
    from edgekit.cli import main

    argv = ["run", str(env.bundle), "--dataset", str(env.dataset(f"{name}.json")), "--out", str(env.work / name)]
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        main([*argv, "--no-progress", *extra])
    return argv


def _log_without_run_json(env: Env) -> list[str]:
    argv = _finished_run(env, "orphan")
    (env.work / "orphan" / "run.json").unlink()
    return argv


def _foreign_run_json(env: Env) -> list[str]:
    argv = _finished_run(env, "foreign")
    (env.work / "foreign" / "run.json").write_text('{"tool": "mlflow"}')
    return argv


def _edited_log(env: Env, name: str, edit: Callable[[dict], None]) -> list[str]:
    """A finished run whose first prediction record was edited, to resume."""
    argv = _finished_run(env, name)
    log = env.work / name / "predictions.jsonl"
    first, *rest = log.read_text().splitlines(keepends=True)
    record = json.loads(first)
    edit(record)
    log.write_text(json.dumps(record) + "\n" + "".join(rest))
    return argv


def _beside_marker(env: Env, name: str, marker: str) -> Path:
    """A directory of someone else's files that holds a file named as an edgekit output's marker."""
    d = _occupied(env, name)
    (d / marker).write_text('{"name": "my web app"}')
    return d


def _metrics_file(env: Env, name: str, edit: Callable[[dict], None]) -> str:
    """A run's metrics.json, edited, for ``edgekit report``."""
    _finished_run(env, f"rep-{name}")
    m = json.loads((env.work / f"rep-{name}" / "metrics.json").read_text())
    edit(m)
    path = env.work / f"{name}-metrics.json"
    path.write_text(json.dumps(m))
    return str(path)


def _fleet(env: Env, name: str, status: str = "finished", results: str | None = None) -> Path:
    """A fleet deploy's directory with one device's finished run in it, its fleet.json edited."""
    from edgekit.device_runners.deploy import target_dir_name

    fleet, target = env.work / name, "ssh://pi@pi5"
    fleet.mkdir()
    run_dir = Path(_finished_run(env, f"{name}-run")[-1])
    shutil.copytree(run_dir, fleet / target_dir_name(target))
    device = {"target": target, "results": results or target_dir_name(target), "ok": True, "error": None}
    record = {"bundle": "b", "targets": [target], "status": status, "devices": [device]}
    (fleet / "fleet.json").write_text(json.dumps(record))
    return fleet


def _written(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _fifo(env: Env) -> Path:
    path = env.work / "fifo.json"
    if not path.exists():
        os.mkfifo(path)
    return path


def _deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _surrogate(env: Env) -> Path:
    path = env.work / "surrogate.json"
    path.write_text(json.dumps(VALID).replace("Where is Paris?", "Where is \\ud800 Paris?"))
    return path


def _deploy(env: Env, *args: str, target: str = "ssh://127.0.0.1:9", bundle: Path | None = None) -> list[str]:
    """A deploy that must be refused before any connection (port 9 is never contacted)."""
    ds = str(env.dataset("dep.json"))
    return ["deploy", target, str(bundle or env.bundle), "--dataset", ds, *args]


def _long_question(obj: dict) -> None:
    _qa(obj)["question"] = "why " * 200 + "?"


def _no_run_flags(missing: Path) -> list[str]:
    """``export ship``'s required flags, each naming ``missing``, a folder that is not there."""
    return ["--run", str(missing), "--training", str(missing / "result.json"), "--teacher-run", str(missing),
            "--made-by", "edgekit export onnx ..."]  # fmt: skip


def _with_file(folder: Path) -> Path:
    """``folder`` holding a file no edgekit command wrote."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "notes.txt").write_text("mine\n")
    return folder


@dataclass(frozen=True)
class Case:
    group: str
    what: str
    make: Callable[[Env], list[str]]
    expect: str  # words the message must contain


CASES: list[Case] = [
    # classification datasets (TSV as GLUE's SST-2, CLINC150's JSON)
    Case(
        "classification data",
        "TSV without the label column",
        lambda e: _texts(e, "c1.tsv", "sentence\tscore\ngood\t1\n"),
        "'label'",
    ),
    Case(
        "classification data",
        "a row short of a column",
        lambda e: _texts(e, "c2.tsv", "sentence\tlabel\ngood\t1\nbad\n"),
        "line 3",
    ),
    Case("classification data", "an empty text", lambda e: _texts(e, "c3.tsv", "sentence\tlabel\n \t1\n"), "non-empty"),
    Case(
        "classification data",
        "a label outside the bundle's labels",
        lambda e: _texts(e, "c4.tsv", "sentence\tlabel\ngood\t1\nso-so\tneutral\n"),
        "one of the model's labels",
    ),
    Case(
        "classification data",
        "a CLINC150 file of another shape",
        lambda e: _texts(e, "c5.json", json.dumps({"test": [["hi", "greeting", "extra"]]})),
        "[utterance, intent] pair",
    ),
    Case(
        "classification data",
        "a split the file does not have",
        lambda e: _texts(e, "c6.json", json.dumps({"train": [["hi", "1"]]}), "--split", "val"),
        "one of the file's splits",
    ),
    Case(
        "classification data",
        "a format the device does not read",
        lambda e: _texts(e, "c7.csv", "sentence,label\ngood,1\n"),
        "a classification dataset",
    ),
    # token-classification datasets (CoNLL-style, as WNUT-17)
    Case("tagged data", "a line with no tag", lambda e: _tags(e, "t1.conll", "Paris\tB-location\nis\n"), "line 2"),
    Case("tagged data", "a tag the bundle lacks", lambda e: _tags(e, "t2.conll", "Paris\tB-city\n"), "bundle's tags"),
    Case(
        "tagged data",
        "an I- tag after O",
        lambda e: _tags(e, "t3.conll", "in\tO\nParis\tI-location\n"),
        "B-location before I-location",
    ),
    Case("tagged data", "no sentence at all", lambda e: _tags(e, "t4.conll", "\n\n"), "at least one tagged sentence"),
    Case(
        "tagged data",
        "a file of another shape",
        lambda e: _tags(e, "t5.conll", json.dumps({"data": [{"tokens": ["Paris"]}]})),
        "a tag O, B-TYPE or I-TYPE",
    ),
    Case("tagged data", "a format the device does not read", lambda e: _tags(e, "t6.json", "{}"), "CoNLL-style"),
    Case(
        "bundle",
        "classifier labels that do not fit the model's outputs",
        lambda e: ["verify", str(_copy(e.classifier, e.work / "cb1", _manifest(labels=["0", "1", "2"])))],
        "outputs",
    ),
    # datasets
    Case("dataset", "not JSON", lambda e: e.run(e.raw("a.json", b'{"version": "1.1", "data": [')), "valid JSON"),
    Case("dataset", "not UTF-8", lambda e: e.run(e.raw("b.json", b'{"data": "\xff\xfe"}')), "UTF-8 text"),
    Case("dataset", "empty file", lambda e: e.run(e.raw("c.json", b"")), "valid JSON"),
    Case(
        "dataset",
        "SQuAD 2.0 file",
        lambda e: e.run(e.dataset("d.json", lambda o: o.update(version="v2.0"))),
        "version 1.1",
    ),
    Case("dataset", "no questions", lambda e: e.run(e.dataset("e.json", lambda o: o.update(data=[]))), "at least one"),
    Case(
        "dataset",
        "missing question",
        lambda e: e.run(e.dataset("f.json", lambda o: _qa(o).pop("question"))),
        "field 'question'",
    ),
    Case(
        "dataset",
        "empty context",
        lambda e: e.run(e.dataset("g.json", lambda o: o["data"][0]["paragraphs"][0].update(context=" "))),
        "non-empty text",
    ),
    Case(
        "dataset",
        "answer_start out of range",
        lambda e: e.run(e.dataset("h.json", lambda o: _qa(o)["answers"][0].update(answer_start=99))),
        "an offset in 0..13",
    ),
    Case(
        "dataset",
        "answer text not at answer_start",
        lambda e: e.run(e.dataset("i.json", lambda o: _qa(o)["answers"][0].update(answer_start=0))),
        "context there reads",
    ),
    Case(
        "dataset",
        "missing answers",
        lambda e: e.run(e.dataset("j.json", lambda o: _qa(o).pop("answers"))),
        "field 'answers'",
    ),
    Case(
        "dataset",
        "duplicate question id",
        lambda e: e.run(e.dataset("k.json", lambda o: o["data"][0]["paragraphs"][0]["qas"][1].update(id="q1"))),
        "a unique id",
    ),
    Case("dataset", "file missing", lambda e: e.run(e.work / "nope.json"), "an existing SQuAD JSON file"),
    Case(
        "dataset",
        "question longer than the model's window",
        lambda e: e.run(e.dataset("l.json", _long_question)),
        "question",
    ),
    # predictions
    Case(
        "predictions",
        "another task's predictions",
        lambda e: [
            "score",
            "--dataset",
            str(e.dataset("m2.json")),
            "--predictions",
            str(e.raw("p4.json", b'{"line-2": "1"}')),
        ],
        "which has none of them",
    ),
    Case(
        "predictions",
        "scored against a TSV dataset",
        lambda e: [
            "score",
            "--dataset",
            str(e.raw("d.tsv", b"sentence\tlabel\nok\t1\n")),
            "--predictions",
            str(e.raw("p3.json", b"{}")),
        ],
        "a SQuAD v1.1 JSON file",
    ),
    Case(
        "predictions",
        "not an id -> string map",
        lambda e: ["score", "--dataset", str(e.dataset("m.json")), "--predictions", str(e.raw("p.json", b"[1, 2]"))],
        "question id",
    ),
    Case(
        "predictions",
        "an answer that is not a string",
        lambda e: [
            "score",
            "--dataset",
            str(e.dataset("n.json")),
            "--predictions",
            str(e.raw("p2.json", b'{"q1": 3}')),
        ],
        "q1",
    ),
    # bundles
    Case(
        "bundle",
        "missing file",
        lambda e: e.run(e.dataset("o.json"), bundle=e.bundle_copy("b1", lambda p: (p / "tokenizer.json").unlink())),
        "missing",
    ),
    Case(
        "bundle",
        "extra file",
        lambda e: e.run(e.dataset("o.json"), bundle=e.bundle_copy("b2", lambda p: (p / "notes.txt").write_text("x"))),
        "no files besides",
    ),
    Case(
        "bundle",
        "model file altered (hash mismatch)",
        lambda e: e.run(e.dataset("o.json"), bundle=e.bundle_copy("b3", _flip_byte)),
        "sha256",
    ),
    Case(
        "bundle",
        "newer format version",
        lambda e: e.run(e.dataset("o.json"), bundle=e.bundle_copy("b4", _manifest(format_version=99))),
        "format_version",
    ),
    Case(
        "bundle",
        "manifest not JSON",
        lambda e: e.run(
            e.dataset("o.json"), bundle=e.bundle_copy("b5", lambda p: (p / "manifest.json").write_text("{"))
        ),
        "valid JSON",
    ),
    Case(
        "bundle",
        "model inputs differ from the manifest",
        lambda e: e.run(
            e.dataset("o.json"), bundle=e.bundle_copy("b6", _manifest(input_names=["input_ids", "attention_mask"]))
        ),
        "inputs",
    ),
    Case(
        "bundle",
        "tokenizer does not fit the model's vocabulary",
        lambda e: e.run(e.dataset("o.json"), bundle=e.bundle_copy("b7", _manifest(vocab_size=100))),
        "vocabulary",
    ),
    Case(
        "bundle",
        "doc_stride not below max_seq_len",
        lambda e: e.run(e.dataset("o.json"), bundle=e.bundle_copy("b8", _manifest(doc_stride=500))),
        "doc_stride",
    ),
    # destinations: no command writes over what it did not make
    Case(
        "destination",
        "export int8 into a directory holding other files",
        lambda e: ["export", "int8", str(e.bundle), str(_occupied(e, "occ1"))],
        "it holds other files",
    ),
    Case(
        "destination",
        "export int8 into the parent of its source",
        lambda e: ["export", "int8", str(e.bundle), str(e.bundle.parent)],
        "apart from the input",
    ),
    Case(
        "destination",
        "export int4 onto its source",
        lambda e: ["export", "int4", str(e.bundle), str(e.bundle)],
        "apart from the input",
    ),
    Case(
        "destination",
        "run --out a directory holding other files",
        lambda e: [*e.run(e.dataset("d1.json"))[:4], "--out", str(_occupied(e, "occ2"))],
        "it holds other files",
    ),
    Case(
        "destination",
        "run --out inside the bundle",
        lambda e: [*e.run(e.dataset("d2.json"))[:4], "--out", str(e.bundle / "results")],
        "apart from the input",
    ),
    Case(
        "destination",
        "report --out a directory holding other files",
        lambda e: ["report", _finished_run(e, "rep-dest")[-1], "--out", str(_occupied(e, "occ3"))],
        "it holds other files",
    ),
    Case(
        "destination",
        "report --out a directory of other files with a report.json",
        lambda e: ["report", _finished_run(e, "rep-dest2")[-1], "--out", str(_beside_marker(e, "occ7", "report.json"))],
        "without one (not made by edgekit, or by an earlier version)",
    ),
    Case(
        "destination",
        "export int8 into a directory of other files with a manifest.json",
        lambda e: ["export", "int8", str(e.bundle), str(_beside_marker(e, "occ8", "manifest.json"))],
        "this one it did not write or it changed since",
    ),
    Case(
        "destination",
        "deploy --out a directory holding other files",
        lambda e: _deploy(e, "--out", str(_occupied(e, "occ4"))),
        "it holds other files",
    ),
    Case(
        "destination",
        "distill into a directory holding other files",
        lambda e: _recipe(e, f'name = "occ5"\noutput_dir = "{_occupied(e, "occ5").parent}"\n'),
        "it holds other files",
    ),
    Case(
        "destination",
        "demo --out a directory holding other files",
        lambda e: ["demo", "--out", str(_occupied(e, "occ6"))],
        "it holds other files",
    ),
    # bundles are untrusted input
    Case(
        "bundle",
        "file name leading out of the bundle",
        lambda e: e.run(e.dataset("o.json"), bundle=e.bundle_copy("u1", _entry_named("../../../../etc/hostname"))),
        "a plain file name inside the bundle",
    ),
    Case(
        "bundle",
        "absolute file name",
        lambda e: ["verify", str(e.bundle_copy("u2", _entry_named("/etc/hostname")))],
        "a plain file name inside the bundle",
    ),
    Case(
        "bundle",
        "file that is a link out of the bundle",
        lambda e: ["verify", str(e.bundle_copy("u3", _symlink_out))],
        "a regular file inside the bundle",
    ),
    Case(
        "bundle",
        "manifest that is a link",
        lambda e: ["verify", str(e.bundle_copy("u4", _manifest_link))],
        "not a link",
    ),
    Case(
        "bundle",
        "'files' not an object",
        lambda e: e.run(e.dataset("o.json"), bundle=e.bundle_copy("u5", _files([]))),
        "field 'files': expected a dict, got list",
    ),
    Case(
        "bundle",
        "'files' entry of the wrong shape",
        lambda e: ["verify", str(e.bundle_copy("u6", _files({"model.onnx": 5, "tokenizer.json": 6})))],
        "an object",
    ),
    Case(
        "bundle",
        "max_seq_len beyond the model's position table",
        lambda e: ["verify", str(e.bundle_copy("u7", _manifest(max_seq_len=1024)))],
        "field 'max_seq_len' (1024): expected at most the length of the model's position table",
    ),
    Case(
        "bundle",
        "vocabulary beyond the model's embedding",
        lambda e: e.run(e.dataset("o.json"), bundle=e.bundle_copy("u8", _vocab_beyond_embedding)),
        "field 'vocab_size' (31522): expected at most the rows of the model's word embedding",
    ),
    Case(
        "bundle",
        "pad_id outside the vocabulary",
        lambda e: ["verify", str(e.bundle_copy("u9", _manifest(pad_id=10**6)))],
        "field 'pad_id'",
    ),
    Case(
        "bundle",
        "max_answer_len 0",
        lambda e: e.run(e.dataset("o.json"), bundle=e.bundle_copy("u10", _manifest(max_answer_len=0))),
        "field 'max_answer_len'",
    ),
    Case(
        "bundle",
        "deploy of a bundle with a link out",
        lambda e: [*_deploy(e, bundle=e.bundle_copy("u11", _symlink_out)), "--out", str(e.work / "dep-u11")],
        "a regular file inside the bundle",
    ),
    Case(
        "bundle",
        "deploy of a bundle whose window the model cannot take",
        lambda e: [
            *_deploy(e, bundle=e.bundle_copy("u13", _manifest(max_seq_len=1024))),
            "--out",
            str(e.work / "dep-u13"),
        ],
        "expected at most the length of the model's position table",
    ),
    Case(
        "bundle",
        "export int8 of a bundle with a name leading out",
        lambda e: ["export", "int8", str(e.bundle_copy("u12", _entry_named("../x.json"))), str(e.work / "q-u12")],
        "a plain file name inside the bundle",
    ),
    # run settings and outputs
    Case("run", "threads <= 0", lambda e: e.run(e.dataset("q.json"), "--threads", "0"), "a whole number from 1"),
    Case("run", "limit <= 0", lambda e: e.run(e.dataset("q.json"), "--limit", "0"), "a whole number from 1"),
    Case(
        "run",
        "a runtime for another model format (--backend litert, ONNX bundle)",
        lambda e: e.run(e.dataset("q.json"), "--backend", "litert"),
        "does not run onnx models",
    ),
    Case(
        "run",
        "resuming with another --backend",
        lambda e: [*_finished_run(e, "r-b"), "--backend", "openvino"],
        "backend",
    ),
    Case(
        "run",
        "output directory under a file",
        lambda e: [
            *e.run(e.dataset("r.json"))[:4],
            "--out",
            str(e.raw("blocker", b"") / "sub"),
        ],
        "is a file",
    ),
    Case("run", "resuming with another dataset", _resume_other_dataset, "dataset_sha256"),
    Case("run", "resuming with other --threads", lambda e: [*_finished_run(e, "r-t"), "--threads", "1"], "threads"),
    Case("run", "resuming with --low-memory", lambda e: [*_finished_run(e, "r-lm"), "--low-memory"], "low_memory"),
    Case("run", "resuming with another --warmup", lambda e: [*_finished_run(e, "r-w"), "--warmup", "0"], "warmup"),
    Case("run", "resuming with another --n-best", lambda e: [*_finished_run(e, "r-n"), "--n-best", "5"], "n_best"),
    Case("run", "a prediction log without its run.json", _log_without_run_json, "not adopted"),
    Case("run", "another program's run.json", _foreign_run_json, "the settings of an edgekit run"),
    Case(
        "run",
        "a logged latency below 0",
        lambda e: _edited_log(e, "neg", lambda r: r.update(latency_ms=-5)),
        "line 1: expected a prediction record as the runner writes it (field 'latency_ms' from 0",
    ),
    Case(
        "run",
        "a logged answer its context does not hold",
        lambda e: _edited_log(e, "ans", lambda r: r.update(answer="nowhere in it", start_char=0)),
        "an answer that its context holds at start_char 0",
    ),
    Case("run", "--n-best 0", lambda e: e.run(e.dataset("nb.json"), "--n-best", "0"), "from 1 to 1,000"),
    Case("run", "a datasets name on the device side", lambda e: e.run(Path("hf:squad")), "edgekit export dataset"),
    Case(
        "dataset",
        "export dataset of tagged sentences to a .json name",
        lambda e: [
            "export",
            "dataset",
            str(e.raw("t.jsonl", b'{"tokens": ["Paris"], "ner_tags": ["B-location"]}\n')),
            str(e.work / "tagged.json"),
            "--task",
            "tokens",
        ],
        "expected a .conll file",
    ),
    # values no program should trust
    Case("dataset", "lone surrogate escape", lambda e: e.run(_surrogate(e)), "lone surrogate"),
    Case("dataset", "JSON nested 100,000 deep", lambda e: e.run(e.raw("deep.json", _deep(100_000))), "nested"),
    Case(
        "dataset",
        "context over the size bound",
        lambda e: e.run(
            e.dataset(
                "huge.json", lambda o: o["data"][0]["paragraphs"][0].update(context="Paris is in France." * 60_000)
            )
        ),
        "at most 1,000,000 characters",
    ),
    Case(
        "predictions",
        "JSON nested 100,000 deep",
        lambda e: [
            "score",
            "--dataset",
            str(e.dataset("pn.json")),
            "--predictions",
            str(e.raw("pd.json", _deep(100_000))),
        ],
        "nested",
    ),
    Case(
        "report",
        "a metrics value of the wrong type",
        lambda e: [
            "report",
            _metrics_file(e, "wt", lambda m: m["latency_ms"].update(p50="fast")),
            "--out",
            str(e.work / "rep-o1"),
        ],
        "field 'latency_ms.p50'",
    ),
    Case(
        "report",
        "a NaN in metrics",
        lambda e: [
            "report",
            _metrics_file(e, "nan", lambda m: m.update(f1=float("nan"))),
            "--out",
            str(e.work / "rep-o2"),
        ],
        "NaN and Infinity are not JSON",
    ),
    Case(
        "report",
        "an unknown --baseline",
        lambda e: ["report", _finished_run(e, "rep-b")[-1], "--baseline", "bert-huge", "--out", str(e.work / "rep-o3")],
        "the name of a bundle in the inputs",
    ),
    # found by a hostile user's round
    Case(
        "dataset",
        "an integer of 5,000 digits",
        lambda e: e.run(e.raw("big.json", b'{"version": "1.1", "data": [' + b"9" * 5000 + b"]}")),
        "within edgekit's limits",
    ),
    Case("dataset", "a pipe, not a file", lambda e: e.run(_fifo(e)), "not a device or a pipe"),
    Case(
        "predictions",
        "a path through a file",
        lambda e: ["score", "--dataset", str(e.dataset("pp.json")), "--predictions", str(e.dataset("pf.json") / "x")],
        "a readable predictions JSON file",
    ),
    Case(
        "run",
        "an output name longer than the system allows",
        lambda e: [*e.run(e.dataset("ln.json"))[:4], "--out", str(e.work / ("x" * 300))],
        "File name too long",
    ),
    Case("run", "--threads 100000", lambda e: e.run(e.dataset("th.json"), "--threads", "100000"), "from 1 to 10,000"),
    Case(
        "bundle",
        "a name with a newline and a terminal escape",
        lambda e: ["verify", str(e.bundle_copy("u14", _manifest(name="x\nedgekit: error: \x1b[31mfake")))],
        "field 'name'",
    ),
    Case(
        "bundle",
        "a name that climbs out of a path",
        lambda e: [*_deploy(e, bundle=e.bundle_copy("u15", _manifest(name="../../etc"))), "--out", str(e.work / "d15")],
        "field 'name'",
    ),
    Case(
        "report",
        "an F1 of 400 digits",
        lambda e: ["report", _metrics_file(e, "big", lambda m: m.update(f1=10**400)), "--out", str(e.work / "rep-o4")],
        "a finite number",
    ),
    Case(
        "report",
        "metrics whose median is above their maximum",
        lambda e: [
            "report",
            _metrics_file(e, "ord", lambda m: m["latency_ms"].update(p50=m["latency_ms"]["max"] + 1)),
            "--out",
            str(e.work / "rep-o5"),
        ],
        "percentiles in order",
    ),
    Case(
        "report",
        "a fleet deploy that did not finish",
        lambda e: ["report", str(_fleet(e, "fl1", status="running")), "--out", str(e.work / "rep-o6")],
        "a finished fleet deploy",
    ),
    Case(
        "report",
        "a fleet naming a results directory outside it",
        lambda e: ["report", str(_fleet(e, "fl2", results="../elsewhere")), "--out", str(e.work / "rep-o7")],
        "with the results directory deploy names",
    ),
    Case("run", "--warmup nan", lambda e: e.run(e.dataset("wn.json"), "--warmup", "nan"), "a whole number from 0"),
    Case(
        "export",
        "augment-questions with a negative seed",
        lambda e: ["export", "augment-questions", str(e.bundle), str(e.work / "aq-s"), "--seed", "-1"],
        "from 0 to 4,294,967,295",
    ),
    Case(
        "export",
        "int4 block size beyond 1024",
        lambda e: ["export", "int4", str(e.bundle), str(e.work / "q4"), "--block-size", str(2**40)],
        "from 16 to 1,024",
    ),
    Case(
        "export",
        "checkpoint in an architecture directory that does not exist",
        lambda e: ["export", "checkpoint", str(e.bundle), str(e.work / "ck1"), "--architecture", str(e.work / "no")],
        "no such directory",
    ),
    Case(
        "destination",
        "export checkpoint into a directory holding other files",
        lambda e: ["export", "checkpoint", str(e.bundle), str(_occupied(e, "occ-ck"))],
        "it holds other files",
    ),
    Case(
        "export",
        "float-activations on an fp32 bundle",
        lambda e: ["export", "float-activations", str(e.bundle), str(e.work / "fa1"), "--group", "output/dense"],
        "expected a dynamic int8 ONNX bundle",
    ),
    Case(
        "export",
        "prune-vocab to fewer pieces than every word needs",
        lambda e: ["export", "prune-vocab", str(e.bundle), str(e.work / "pv1"), "--keep", "10"],
        "the special, added and single-character pieces",
    ),
    Case(
        "export",
        "prune-vocab keeping the whole vocabulary",
        lambda e: ["export", "prune-vocab", str(e.bundle), str(e.work / "pv2"), "--keep", "999999"],
        "expected fewer than the",
    ),
    Case(
        "export",
        "vocab-curve into a directory holding other files",
        lambda e: ["export", "vocab-curve", str(e.bundle), str(_with_file(e.work / "vc1")), "--keep", "5000"],
        "an edgekit vocabulary curve",
    ),
    Case(
        "export",
        "ship with a --run that is no run directory",
        lambda e: ["export", "ship", str(e.bundle), str(e.work / "models"), *_no_run_flags(e.work / "no-run")],
        "metrics.json",
    ),
    Case(
        "export",
        "augment-questions with chances that add up to more than 1",
        lambda e: [
            "export",
            "augment-questions",
            str(e.bundle),
            str(e.work / "aug1"),
            "--p-delete",
            "0.6",
            "--p-replace",
            "0.6",
        ],
        "whose sum is above 0 and at most 1",
    ),
    Case(
        "export",
        "augment-texts of a TSV without the label column",
        lambda e: [
            *["export", "augment-texts", str(e.bundle), str(e.work / "aug2")],
            *["--train", str(e.raw("t.tsv", b"sentence\tscore\ngood\t1\n"))],
        ],
        "'label'",
    ),
    Case(
        "export",
        "fuse a classifier checked on SQuAD questions",
        lambda e: [
            "export",
            "fuse",
            str(e.classifier),
            str(e.work / "f1"),
            "--validate-dataset",
            str(e.dataset("q.json")),
        ],
        "a JSON object of splits",
    ),
    Case(
        "export",
        "static int8 with a 4-bit word embedding",
        lambda e: ["export", "int8", str(e.bundle), str(e.work / "qe4"), "--static", "minmax", "--embedding-bits", "4"],
        "expected dynamic quantization",
    ),
    Case(
        "export",
        "NNCF int8 with one scale per tensor",
        lambda e: ["export", "int8", str(e.bundle), str(e.work / "qn"), "--static", "nncf", "--per-tensor"],
        "expected ONNX Runtime's static quantization",
    ),
    Case(
        "export",
        "static int8 with 0 calibration windows",
        lambda e: [
            *["export", "int8", str(e.bundle), str(e.work / "qs"), "--static", "minmax"],
            *["--calibration-data", str(e.dataset("cal.json")), "--calibration-windows", "0"],
        ],
        "argument --calibration-windows: expected a whole number from 1",
    ),
    Case(
        "export",
        "onnx of a model that does not exist",
        lambda e: ["export", "onnx", str(e.work / "no-such-model"), str(e.work / "o1"), "--validate-n", "0"],
        "expected a transformers QA model directory or hub name",
    ),
    Case(
        "export",
        "onnx of a checkpoint whose tokenizer has more tokens than its embedding",
        lambda e: ["export", "onnx", str(_checkpoint(e, "bert", vocab_size=1000)), str(e.work / "o2")],
        "expected the tokenizer the model was trained with",
    ),
    Case(
        "export",
        "onnx with windows longer than the model's positions",
        lambda e: ["export", "onnx", str(_checkpoint(e, "bert")), str(e.work / "o4"), "--max-seq-len", "600"],
        "--max-seq-len 600: expected a window the model's 512 positions hold",
    ),
    Case(
        "export",
        "onnx of a checkpoint whose tokenizer template names tokens its vocabulary lacks",
        lambda e: ["export", "onnx", str(_template_without_its_tokens(e)), str(e.work / "o3")],
        "expected a tokenizer whose special tokens",
    ),
    Case("deploy", "--limit 0", lambda e: [*_deploy(e, "--limit", "0"), "--out", str(e.work / "d-l")], "from 1 to"),
    Case(
        "deploy",
        "a targets file with no target",
        lambda e: [
            *["deploy", str(e.bundle), "--targets-file", str(e.raw("none.txt", b"# nobody\n"))],
            *["--dataset", str(e.dataset("tf.json")), "--out", str(e.work / "d-tf")],
        ],
        "expected a TARGET or a --targets-file with at least one",
    ),
    Case(
        "deploy",
        "a fleet with --jobs 0",
        lambda e: [
            *["deploy", "ssh://127.0.0.1:9", *_deploy(e, "--jobs", "0", target="ssh://127.0.0.1:10")[1:]],
            *["--out", str(e.work / "d-j")],
        ],
        "argument --jobs: expected a whole number from 1",
    ),
    Case(
        "deploy",
        "an ssh key that does not exist",
        lambda e: [*_deploy(e, "-i", str(e.work / "no-key")), "--out", str(e.work / "d-i")],
        "an existing ssh private key file",
    ),
    # recipes
    Case("recipe", "unknown key", lambda e: _recipe(e, 'name = "x"\n[training]\nepochz = 2\n'), "epochz"),
    Case("recipe", "wrong type", lambda e: _recipe(e, 'name = "x"\n[training]\nepochs = "two"\n'), "epochs"),
    Case("recipe", "not TOML", lambda e: _recipe(e, "name = \n"), "valid TOML"),
    Case("recipe", "resuming checkpoints with other settings", _resume_other_recipe, "training.learning_rate"),
    Case(
        "recipe",
        "a classifier's extra training texts without a teacher (loss.alpha = 1)",
        lambda e: _recipe(
            e,
            'name = "x"\ntask = "classification"\n[data]\ntrain = "a.tsv"\ndev = "b.tsv"\nextra_train = ["c.tsv"]\n'
            "[loss]\nalpha = 1.0\n",
        ),
        "data.extra_train",
    ),
    *[
        Case("recipe", f"{key} = {value}", lambda e, k=key, v=value: _recipe(e, _recipe_with(k, v)), key)
        for key, value in (
            ("loss.temperature", "nan"),
            ("loss.temperature", "0.0"),
            ("loss.alpha", "inf"),
            ("training.epochs", "-1.0"),
            ("training.epochs", "0.0"),
            ("training.learning_rate", "-1e-4"),
            ("training.learning_rate", "inf"),
            ("training.batch_size", "0"),
            ("training.save_steps", "0"),
            ("training.dropout", "1.0"),
            ("data.max_seq_len", "-384"),
            ("data.max_seq_len", "4096"),
        )
    ],
    Case(
        "recipe",
        "not UTF-8",
        lambda e: ["distill", "--recipe", str(e.raw("r.toml", b"name = '\xff'\n")), "--no-eval"],
        "UTF-8",
    ),
    Case(
        "recipe",
        "student weights from a bundle of another architecture",
        lambda e: _recipe(
            e,
            f'name = "w"\noutput_dir = "{e.work / "w"}"\n[student]\nweights = "{e.bundle}"\n[loss]\nalpha = 1.0\n',
        ),
        "a bundle of the student's architecture",
    ),
    # deploy
    Case(
        "deploy",
        "target that is neither ssh:// nor adb",
        lambda e: ["deploy", "pi@raspberrypi", str(e.bundle), "--dataset", str(e.dataset("s.json")), "--out", "x"],
        "expected ssh://",
    ),
    *[
        Case(
            "deploy",
            f"target {target!r}",
            lambda e, t=target: [*_deploy(e, target=t), "--out", str(e.work / "dep-t")],
            words,
        )
        for target, words in (
            ("ssh://-V", "expected ssh://"),
            ("ssh://-oProxyCommand=touch@host", "user name"),
            ("ssh://pi@-oProxyCommand=x", "expected ssh://"),
            ("ssh://pi@host:0", "port"),
            ("ssh://pi@host:99999", "port"),
            ("ssh://pi@ho st", "expected ssh://"),
            ("adb:-s", "adb serial"),
        )
    ],
    Case(
        "deploy",
        "--user that is an option",
        lambda e: [*_deploy(e, "--user=-oX=y"), "--out", str(e.work / "dep-u")],
        "user name",
    ),
    Case(
        "fit",
        "students of two tasks",
        lambda e: [
            *["fit", str(e.bundle), str(e.classifier), "--eval", str(e.dataset("fit1.json"))],
            *["--max-mb", "25", "--out", str(e.work / "fit1")],
        ],
        "bundles of one task",
    ),
    Case(
        "fit",
        "resuming into a fit of other settings",
        lambda e: [
            *["fit", str(e.bundle), "--eval", str(e.dataset("fit2.json")), "--max-mb", "25"],
            *["--out", str(_written(e.work / "fit2" / "fit.json", '{"settings": {"seed": 9}}').parent)],
        ],
        "the same evaluation set, seed, device and starting students",
    ),
    Case(
        "fit",
        "a share of the teacher's score without a teacher",
        lambda e: [
            *["fit", str(e.bundle), "--eval", str(e.dataset("fit4.json")), "--max-mb", "25"],
            *["--min-share", "0.9", "--out", str(e.work / "fit4")],
        ],
        "a --teacher bundle",
    ),
    Case(
        "fit",
        "a time budget that is not a duration",
        lambda e: [
            *["fit", str(e.bundle), "--eval", str(e.dataset("fit3.json")), "--max-mb", "25"],
            *["--time-budget", "forever", "--out", str(e.work / "fit3")],
        ],
        "a positive duration",
    ),
    Case(
        "fit",
        "a checkpoint without a trained head",
        lambda e: [
            *["fit", _bare_encoder(e), "--eval", str(e.dataset("fit5.json")), "--max-mb", "25"],
            *["--out", str(e.work / "fit5")],
        ],
        "a trained model of one of edgekit's tasks",
    ),
    Case(
        "export",
        "TFLite window lengths above the longest",
        lambda e: [
            *["export", "tflite", "packaged:all-MiniLM-L6-v2", str(e.work / "tfl1"), "--max-seq-len", "128"],
            *["--doc-stride", "64", "--lengths", "64", "256"],
        ],
        "window lengths up to --max-seq-len",
    ),
]


def _bare_encoder(e: Env) -> str:
    """A checkpoint of a tiny bare encoder (no task head) with the packaged MiniLM's tokenizer."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from edgekit.export.models import PACKAGED_MINILM, resolve
    from edgekit.export.tiny import SMALL

    d = e.work / "bare-encoder"
    tokenizer = AutoTokenizer.from_pretrained(resolve(PACKAGED_MINILM))
    BertModel(BertConfig(vocab_size=tokenizer.vocab_size, max_position_embeddings=512, **SMALL)).save_pretrained(d)
    tokenizer.save_pretrained(d)
    return str(d)


def run_case(case: Case, env: Env) -> tuple[int, str]:
    """Run one case through ``edgekit.cli.main``; returns (exit code, stderr)."""
    from edgekit.cli import main

    argv = case.make(env)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        # JAX, imported in this test process by the TFLite tests (never by `edgekit run`), warns when a runtime
        # forks (OpenVINO loading its plugin): a fact of the shared process, not a message of the command
        warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's refusal of a flag's value
            code = exc.code if isinstance(exc.code, int) else 2
    return code, err.getvalue()


def document(results: list[tuple[Case, str]], work: Path) -> str:
    lines = [
        "# What edgekit refuses, and what it says",
        "",
        "Every row is a real run of the `edgekit` command on a damaged input (`tests/error_catalog.py`;",
        "regenerate with `python -m tests.error_catalog`). Each exits with status 2 and prints one line,",
        "no traceback (`edgekit --debug ...` shows it). `<tmp>` stands for the case's directory.",
        "",
        "| input | case | message |",
        "|---|---|---|",
    ]
    for case, message in results:
        text = message.strip().replace(str(work), "<tmp>").replace("|", "\\|")
        lines.append(f"| {case.group} | {case.what} | `{text}` |")
    return "\n".join(lines) + "\n"


def build(work: Path) -> list[tuple[Case, str]]:
    from edgekit.export.tiny import tiny_classifier, tiny_qa
    from edgekit.export.to_onnx import onnx_bundle

    bundle = onnx_bundle(tiny_qa(), work / "tiny", "tiny-random-bert", max_seq_len=64, doc_stride=32)
    classifier = onnx_bundle(tiny_classifier(["0", "1"]), work / "tiny-cls", "tiny-cls", max_seq_len=64, doc_stride=0)
    tags = ["O", "B-location", "I-location", "B-person", "I-person"]
    tagger = onnx_bundle(
        tiny_classifier(tags, per_token=True), work / "tiny-tag", "tiny-tag", max_seq_len=64, doc_stride=0
    )
    env = Env(work, bundle.path, classifier.path, tagger.path)
    results = []
    for case in CASES:
        code, err = run_case(case, env)
        if code != 2:
            raise SystemExit(f"{case.what}: exit {code}, expected 2:\n{err}")
        results.append((case, err))
    return results


def main() -> int:
    import tempfile

    from edgekit.atomic import write_text

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_text(DOC, document(build(work), work))
    print(f"wrote {DOC}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
