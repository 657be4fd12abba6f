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
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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


def _qa(obj: dict) -> dict:
    return obj["data"][0]["paragraphs"][0]["qas"][0]


def _manifest(**changes) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        m = json.loads((path / "manifest.json").read_text())
        m.update(changes)
        (path / "manifest.json").write_text(json.dumps(m))

    return damage


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


def _recipe(env: Env, text: str) -> list[str]:
    path = env.work / "recipe.toml"
    path.write_text(text)
    return ["distill", "--recipe", str(path), "--no-eval"]


def _resume_other_recipe(env: Env) -> list[str]:
    """A run's checkpoints and settings as ``edgekit distill`` leaves them, resumed with another learning rate."""
    from edgekit.atomic import write_json
    from export.recipes import checkpoint_settings, load_recipe

    argv = _recipe(env, f'name = "r"\noutput_dir = "{env.work}"\n[training]\nlearning_rate = 3e-5\n')
    first = load_recipe(argv[2], ["training.learning_rate=1e-4"])
    (first.out / "checkpoints" / "checkpoint-100").mkdir(parents=True)
    write_json(first.out / "checkpoint-settings.json", checkpoint_settings(first))
    return argv


def _long_question(obj: dict) -> None:
    _qa(obj)["question"] = "why " * 200 + "?"


@dataclass(frozen=True)
class Case:
    group: str
    what: str
    make: Callable[[Env], list[str]]
    expect: str  # words the message must contain


CASES: list[Case] = [
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
    # run settings and outputs
    Case("run", "threads <= 0", lambda e: e.run(e.dataset("q.json"), "--threads", "0"), "threads=0"),
    Case("run", "limit <= 0", lambda e: e.run(e.dataset("q.json"), "--limit", "0"), "limit=0"),
    Case(
        "run",
        "output directory not writable",
        lambda e: [
            *e.run(e.dataset("r.json"))[:4],
            "--out",
            str(e.raw("blocker", b"") / "sub"),
        ],
        "a writable directory",
    ),
    Case("run", "resuming with another dataset", _resume_other_dataset, "dataset_sha256"),
    # recipes
    Case("recipe", "unknown key", lambda e: _recipe(e, 'name = "x"\n[training]\nepochz = 2\n'), "epochz"),
    Case("recipe", "wrong type", lambda e: _recipe(e, 'name = "x"\n[training]\nepochs = "two"\n'), "epochs"),
    Case("recipe", "not TOML", lambda e: _recipe(e, "name = \n"), "valid TOML"),
    Case("recipe", "resuming checkpoints with other settings", _resume_other_recipe, "training.learning_rate"),
    # deploy
    Case(
        "deploy",
        "target that is neither ssh:// nor adb",
        lambda e: ["deploy", "pi@raspberrypi", str(e.bundle), "--dataset", str(e.dataset("s.json")), "--out", "x"],
        "expected ssh://",
    ),
]


def run_case(case: Case, env: Env) -> tuple[int, str]:
    """Run one case through ``edgekit.cli.main``; returns (exit code, stderr)."""
    from edgekit.cli import main

    argv = case.make(env)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
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
    from export.tiny import tiny_qa
    from export.to_onnx import onnx_bundle

    bundle = onnx_bundle(tiny_qa(), work / "tiny", "tiny-random-bert", max_seq_len=64, doc_stride=32)
    env = Env(work, bundle.path)
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
