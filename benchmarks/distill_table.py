"""Collect distillation results into ``benchmarks/results/distill.json`` and a Markdown table.

Reads the teacher's full-dev metrics (from ``benchmarks.teacher_fulldev``) and every
student's ``result.json`` (written by ``edgekit distill``), one record per model:
name, params, layers, hidden size, method, EM, F1, dev questions, training
settings, wall time and the command that produced it.

    python -m benchmarks.distill_table RUN_DIR... [--teacher METRICS.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from edgekit.atomic import write_json, write_text
from edgekit.squad import read_json

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def teacher_record(metrics_path: Path) -> dict[str, Any]:
    m = read_json(metrics_path, "metrics")
    b = m["bundle"]
    return {
        "name": "teacher: mpnet-base-squad",
        "role": "teacher",
        "params": b["params"],
        "layers": b["layers"],
        "hidden_size": b["hidden_size"],
        "method": "fine-tuned teacher (MODEL_CARD.md)",
        "exact_match": m["exact_match"],
        "f1": m["f1"],
        "n_questions": m["n_questions"],
        "max_seq_len": b["max_seq_len"],
        "training": None,
        "wall_s": None,
        "command": " ".join(m["command"]),
        "source": str(metrics_path.relative_to(ROOT)),
    }


def student_record(result_path: Path) -> dict[str, Any]:
    r = read_json(result_path, "result")
    rec = r["recipe"]
    return {
        "name": r["name"],
        "role": "student",
        "params": r["params"],
        "layers": r["layers"],
        "hidden_size": r["hidden_size"],
        "method": r["method"],
        "exact_match": r.get("exact_match"),
        "f1": r.get("f1"),
        "n_questions": r.get("n_questions"),
        "max_seq_len": rec["data"]["max_seq_len"],
        "training": {
            **rec["training"],
            "loss": rec["loss"],
            "steps": r["steps"],
            "epoch": r.get("epoch"),
            "from_checkpoint": r.get("from_checkpoint"),  # a snapshot of a run still going or cut short
            "n_train_features": r.get("n_train_features"),
        },
        "wall_s": r.get("wall_s"),
        "command": " ".join(r["command"]),
        "eval_command": " ".join(r["eval_command"]) if "eval_command" in r else None,  # scored later (--eval-only)
        "source": str(result_path),
    }


def markdown(records: list[dict[str, Any]]) -> str:
    lines = [
        "| model | params | layers | hidden | method | trained | seq len | dev questions | EM | F1 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        em = f"{r['exact_match']:.2f}" if r["exact_match"] is not None else "n/a"
        f1 = f"{r['f1']:.2f}" if r["f1"] is not None else "n/a"
        t = r.get("training") or {}
        trained = "given" if not t else f"{t['steps']} steps"
        if t.get("from_checkpoint"):
            trained += f" (checkpoint at epoch {t['epoch']:.2f} of {t['epochs']:g})"
        lines.append(
            f"| {r['name']} | {r['params'] / 1e6:.1f}M | {r['layers']} | {r['hidden_size']} | {r['method']} "
            f"| {trained} | {r['max_seq_len']} | {r['n_questions']} | {em} | {f1} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="*", type=Path, help="distill output directories (each with result.json)")
    p.add_argument(
        "--teacher",
        type=Path,
        default=RESULTS / "teacher-mpnet-fp32-onnx" / "metrics.json",
        help="the teacher's full-dev metrics.json (default: %(default)s)",
    )
    p.add_argument("--out", type=Path, default=RESULTS / "distill.json", help="JSON to write (and .md beside it)")
    args = p.parse_args(argv)
    records = [teacher_record(args.teacher)] if args.teacher.exists() else []
    records += [student_record(d / "result.json") for d in args.runs]
    write_json(args.out, {"records": records})
    table = markdown(records)
    write_text(args.out.with_suffix(".md"), table)
    print(table)
    print(json.dumps({"wrote": [str(args.out), str(args.out.with_suffix(".md"))]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
