"""The architecture matrix: which transformers QA model types go through every edgekit format.

For each model type of ``export.tiny.ARCHITECTURES`` (the encoders users bring: BERT, DistilBERT,
RoBERTa, XLM-R, ELECTRA, ALBERT, DeBERTa-v2/v3, MobileBERT, MPNet), a tiny random checkpoint with a
tokenizer of its own kind is written to a directory, as a user's would be, and taken through
ONNX fp32 (validated against PyTorch), dynamic INT8 ONNX, TFLite fp32 and int8 (litert-torch,
ai-edge-quantizer), each bundle then answering questions through the device runner. A cell is
``ok`` (with its largest logit difference from PyTorch and the share of answers equal to
PyTorch's), ``refused`` (edgekit's one-line refusal, which the docs list) or ``failed`` (any other
exception: a bug; the test suite fails on it). The models are random, so the numbers show the
conversion is faithful, not what a trained model scores.

    python -m benchmarks.architectures [--types bert deberta-v2] [--no-tflite]
        -> benchmarks/results/architectures.json and docs/architectures.md
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.batching import RESULTS
from edgekit import device
from edgekit.atomic import write_json, write_text
from edgekit.bundle import Bundle
from edgekit.errors import EdgekitError
from edgekit.export.models import load_qa
from edgekit.export.tiny import ARCHITECTURES, TRAIN_EXCERPT, tiny_checkpoint
from edgekit.provenance import module_command
from edgekit.runner import RunConfig, run
from edgekit.squad import load_squad

ROOT = Path(__file__).resolve().parents[1]
RESULT = RESULTS / "architectures.json"
DOC = ROOT / "docs" / "architectures.md"
QUESTIONS = ROOT / "edgekit" / "data" / "squad-sample.json"
FORMATS = ("onnx fp32", "onnx int8", "tflite fp32", "tflite int8")
MAX_SEQ_LEN, DOC_STRIDE = 128, 32


@dataclass(frozen=True)
class Cell:
    """One model type through one format."""

    status: str  # ok | refused | failed | skipped
    detail: str
    seconds: float = 0.0


def _attempt(step: Callable[[], str]) -> Cell:
    t0 = time.perf_counter()
    try:
        detail = step()
        status = "ok"
    except EdgekitError as exc:
        detail, status = " ".join(str(exc).split()), "refused"
    except Exception as exc:  # a bug: kept with its place, so the matrix shows it and the test fails
        where = traceback.extract_tb(exc.__traceback__)[-1]
        detail, status = f"{type(exc).__name__}: {exc} ({Path(where.filename).name}:{where.lineno})", "failed"
    return Cell(status, detail[:400], round(time.perf_counter() - t0, 1))


def row(model_type: str, work: Path, n_questions: int = 4, tflite: bool = True) -> dict[str, Cell]:
    """Every format for one model type; a format whose source failed is skipped."""
    from edgekit.export.quantize import quantize_dynamic_bundle
    from edgekit.export.to_onnx import onnx_bundle, validate

    examples = load_squad(QUESTIONS)[:n_questions]
    state: dict[str, Any] = {}
    cells: dict[str, Cell] = {}

    def checked(bundle: Bundle) -> str:
        v = validate(state["qa"], bundle, examples, atol=float("inf"))
        m = run(bundle.path, QUESTIONS, work / "runs" / bundle.path.name, RunConfig(limit=n_questions, warmup=0))
        return (
            f"largest logit difference {v.max_abs_diff:.1g}, {round(100 * v.answer_agreement)}% of answers as "
            f"PyTorch's; {m['n_questions']} questions run"
        )

    def onnx32() -> str:
        state["qa"] = load_qa(str(tiny_checkpoint(model_type, work / "checkpoint")))
        state["onnx"] = onnx_bundle(
            state["qa"], work / "onnx-fp32", f"tiny-{model_type}-fp32-onnx", MAX_SEQ_LEN, DOC_STRIDE
        )
        return checked(state["onnx"])

    def onnx8() -> str:
        return checked(quantize_dynamic_bundle(state["onnx"], work / "onnx-int8", f"tiny-{model_type}-int8-onnx"))

    def tflite_both() -> str:
        from edgekit.export.to_tflite import tflite_bundles

        state["tflite"] = tflite_bundles(state["qa"], work, f"tiny-{model_type}", MAX_SEQ_LEN, DOC_STRIDE)
        return checked(state["tflite"][0])

    cells["onnx fp32"] = _attempt(onnx32)
    ok = cells["onnx fp32"].status == "ok"
    cells["onnx int8"] = _attempt(onnx8) if ok else Cell("skipped", "no fp32 ONNX bundle")
    if not tflite:
        cells["tflite fp32"] = cells["tflite int8"] = Cell("skipped", "--no-tflite")
    elif "qa" not in state:
        cells["tflite fp32"] = cells["tflite int8"] = Cell("skipped", "the checkpoint did not load")
    else:
        cells["tflite fp32"] = _attempt(tflite_both)
        done = cells["tflite fp32"].status == "ok"
        cells["tflite int8"] = (
            _attempt(lambda: checked(state["tflite"][1])) if done else Cell("skipped", "no fp32 TFLite conversion")
        )
    return cells


def matrix(types: list[str], tflite: bool = True, progress: bool = True) -> dict[str, dict[str, Cell]]:
    """The whole matrix, each model type in a scratch directory of its own."""
    out = {}
    with tempfile.TemporaryDirectory(prefix="edgekit-architectures-") as tmp:
        for model_type in types:
            out[model_type] = row(model_type, Path(tmp) / model_type, tflite=tflite)
            if progress:
                print(f"{model_type}: " + ", ".join(f"{k} {c.status}" for k, c in out[model_type].items()))
    return out


def _cell(c: dict[str, Any]) -> str:
    """A cell of the table: ``ok`` with the logit difference and the answers kept, or the refusal."""
    if c["status"] != "ok":
        return f"{c['status']}: {c['detail']}".replace("|", "\\|")
    m = re.match(r"largest logit difference (\S+), (\d+)% of answers", c["detail"])
    return f"ok · {m[1]} · {m[2]}%" if m else "ok"


def markdown(result: dict[str, Any]) -> str:
    """The table of ``architectures.json``: one row per model type, one column per format."""
    lines = [
        "# Architectures",
        "",
        "Which transformers QA model types edgekit takes through each format. Generated by "
        f"`python -m benchmarks.architectures` into `benchmarks/results/architectures.json` ({result['device']['cpu']}); "
        "`tests/test_architectures.py` runs the same matrix and fails if a cell differs from this file or ends in "
        "an exception. Each model is a tiny random checkpoint (2 layers, width 32, seeded) with a tokenizer of its "
        "own kind, saved to a directory as a user's would be. A cell: the bundle exported, its logits and answers "
        "compared with PyTorch on "
        f"{result['n_questions']} questions, then run by the device runner on them. `ok · 9e-08 · 100%`: the largest "
        "logit difference from PyTorch and the share of answers equal to PyTorch's; `refused`: edgekit's one-line "
        "refusal.",
        "",
        "| model type | tokenizer | " + " | ".join(FORMATS) + " |",
        "|---|---|" + "---|" * len(FORMATS),
    ]
    for model_type, r in result["rows"].items():
        cells = [_cell(c) for c in r["cells"].values()]
        lines.append(f"| {model_type} | {r['tokenizer']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Inputs: a bundle feeds the model the inputs its exported graph really has, decided from the model "
        "(Optimum's ONNX configuration for the model type where it has one, else the signature of `forward`): "
        "DeBERTa-v3 (`type_vocab_size = 0`), DistilBERT, RoBERTa and MPNet take no `token_type_ids` even when "
        "their tokenizer makes them. A random model's best spans are nearly tied, so a logit difference of 1e-4 can "
        "change an answer (the share of answers is a check of the runner's path, not of the precision).",
        "",
    ]
    return "\n".join(lines)


def tokenizer_kind(model_type: str) -> str:
    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        return type(AutoTokenizer.from_pretrained(tiny_checkpoint(model_type, Path(tmp)))).__name__


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.architectures",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--types", nargs="+", choices=sorted(ARCHITECTURES), default=list(ARCHITECTURES))
    p.add_argument("--no-tflite", action="store_true", help="ONNX only (the TFLite converter is the slow part)")
    p.add_argument("--out", type=Path, default=RESULT, help="result file (default: %(default)s)")
    p.add_argument("--doc", type=Path, default=DOC, help="the table as Markdown (default: %(default)s)")
    args = p.parse_args(argv)
    tflite = not args.no_tflite and importlib.util.find_spec("litert_torch") is not None
    cells = matrix(args.types, tflite)
    result = {
        "n_questions": 4,
        "max_seq_len": MAX_SEQ_LEN,
        "questions": str(QUESTIONS.relative_to(ROOT)),
        "tokenizer_training_text": str(TRAIN_EXCERPT.relative_to(ROOT)),
        "rows": {
            t: {"tokenizer": tokenizer_kind(t), "cells": {k: asdict(c) for k, c in r.items()}} for t, r in cells.items()
        },
        "device": device.describe(),
        "command": module_command("benchmarks.architectures", argv),
    }
    write_json(args.out, result)
    write_text(args.doc, markdown(result))
    failed = [f"{t} {k}" for t, r in cells.items() for k, c in r.items() if c.status == "failed"]
    print(f"wrote {args.out} and {args.doc}" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
