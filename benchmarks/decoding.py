"""One answer from several windows: edgekit's decoding rule against the transformers QA pipeline's, same logits.

A context longer than a bundle's window is read in overlapping windows, and the best span may come from any
of them. edgekit compares candidates across windows by their raw start + end logits (as the SQuAD fine-tuning
scripts do) and takes spans of up to the bundle's ``max_answer_len`` tokens (30); transformers'
``pipeline("question-answering")`` first normalizes each window's start and end logits over that window's
context tokens (a softmax each) and takes spans of up to 15 tokens. With one window the two rules differ only
in that length. This runs a bundle over the dev set once, keeps every window's logits, and decodes them by
each rule and each half of it (:data:`RULES`), so the F1 difference between the runner and the pipeline on the
same weights (the peer tables) is taken apart from the model's.

    python -m benchmarks.decoding BUNDLE... [--n N]  -> benchmarks/results/decoding.json
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.batching import RESULTS
from benchmarks.speed import pick_questions
from edgekit import device
from edgekit.atomic import write_json
from edgekit.backends import RuntimeOptions
from edgekit.decode import DEFAULT_N_BEST, best_span
from edgekit.features import Window
from edgekit.metric import evaluate
from edgekit.provenance import module_command
from edgekit.runner import QAModel
from edgekit.squad import default_data_dir, load_squad
from edgekit.text import md_table

PIPELINE_MAX_ANSWER_LEN = 15  # transformers' QuestionAnsweringPipeline default
# rule -> (each window's logits normalized over its context tokens, longest answer; None: the bundle's)
RULES: dict[str, tuple[bool, int | None]] = {
    "edgekit": (False, None),
    "edgekit, answers up to 15 tokens": (False, PIPELINE_MAX_ANSWER_LEN),
    "edgekit, each window normalized": (True, None),
    "transformers pipeline": (True, PIPELINE_MAX_ANSWER_LEN),
}


def normalized(window: Window, logits: np.ndarray) -> np.ndarray:
    """``logits`` minus their log-sum-exp over the window's context tokens: the log of the softmax the pipeline
    takes over them (other positions keep values the decoder never reads)."""
    ctx = np.flatnonzero([o is not None for o in window.context_offsets])
    x = np.asarray(logits[: len(window)], dtype=np.float64)
    if ctx.size == 0:
        return x
    top = x[ctx].max()
    return x - (top + np.log(np.exp(x[ctx] - top).sum()))


def decode(
    context: str,
    windows: Sequence[Window],
    start: Sequence[np.ndarray],
    end: Sequence[np.ndarray],
    rule: tuple[bool, int | None],
    max_answer_len: int,
) -> str:
    """The answer ``rule`` picks from one question's windows and logits."""
    norm, longest = rule
    if norm:
        start = [normalized(w, s) for w, s in zip(windows, start, strict=True)]
        end = [normalized(w, e) for w, e in zip(windows, end, strict=True)]
    return best_span(context, windows, start, end, DEFAULT_N_BEST, longest or max_answer_len).text


def measure(bundle: Path, dataset: Path, n: int | None, threads: int) -> list[dict[str, Any]]:
    """Every rule's EM/F1 over the questions, and over those whose context takes more than one window."""
    from tqdm import tqdm

    examples = pick_questions(dataset, n) if n else load_squad(dataset)
    qa = QAModel.load(bundle, RuntimeOptions(threads=threads))
    longest = qa.bundle.manifest.max_answer_len
    answers: dict[str, dict[str, str]] = {name: {} for name in RULES}
    multi = []
    for ex in tqdm(examples, desc=qa.bundle.manifest.name, mininterval=5):
        qa.answer(ex.question, ex.context)
        windows, start, end = qa.last_outputs
        if len(windows) > 1:
            multi.append(ex)
        for name, rule in RULES.items():
            answers[name][ex.id] = decode(ex.context, windows, start, end, rule, longest)
    rows = []
    for name, got in answers.items():
        every, several = evaluate(examples, got), evaluate(multi, {ex.id: got[ex.id] for ex in multi})
        rows.append(
            {
                "bundle": qa.bundle.manifest.name,
                "rule": name,
                "window_normalized": RULES[name][0],
                "max_answer_len": RULES[name][1] or longest,
                "questions": len(examples),
                "exact_match": every.exact_match,
                "f1": every.f1,
                "multi_window_questions": len(multi),
                "multi_window_exact_match": several.exact_match,
                "multi_window_f1": several.f1,
            }
        )
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    head = [
        "bundle",
        "rule",
        "windows normalized",
        "longest answer",
        "EM",
        "F1",
        "several windows: questions",
        "EM",
        "F1",
    ]
    body = [
        [
            r["bundle"],
            r["rule"],
            "yes" if r["window_normalized"] else "no",
            r["max_answer_len"],
            f"{r['exact_match']:.2f}",
            f"{r['f1']:.2f}",
            f"{r['multi_window_questions']:,}",
            f"{r['multi_window_exact_match']:.2f}",
            f"{r['multi_window_f1']:.2f}",
        ]
        for r in rows
    ]
    return "\n".join(md_table(head, body)) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.decoding", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("bundles", nargs="+", type=Path, help="QA bundle directories")
    p.add_argument("--dataset", type=Path, default=default_data_dir() / "dev-v1.1.json")
    p.add_argument("--n", type=int, default=None, help="questions spread over the set (default: all)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=RESULTS / "decoding.json", help="result file (default: %(default)s)")
    args = p.parse_args(argv)
    rows = [r for b in args.bundles for r in measure(b, args.dataset, args.n, args.threads)]
    write_json(
        args.out,
        {
            "rows": rows,
            "settings": {"n": args.n, "dataset": str(args.dataset), "n_best": DEFAULT_N_BEST},
            "device": device.describe(),
            "command": module_command("benchmarks.decoding", argv),
        },
    )
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
