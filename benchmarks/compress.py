"""The size report: every shipped artifact beside the models it replaces.

Rows:
- reference fp32 sizes of BERT-base and BERT-large, computed from their configs
  (parameter count x 4 bytes; the models are built on torch's meta device, no weights);
- the teacher's fp32 size, from its own config;
- each artifact of one or more ``export-summary.json`` files (``edgekit export --recipe``):
  format, precision, params, file size, max |Δlogit| vs fp32 PyTorch, answer agreement,
  and EM/F1 from the largest ``edgekit run`` of that bundle given with ``--runs`` (otherwise
  the quick check's), with the F1 change vs the fp32 ONNX bundle on the same questions.

    python -m benchmarks.compress runs/distill/minilm-l6-kd/export-summary.json \\
        [--runs runs/fulldev/minilm-l6-kd-int8-onnx ...] [--teacher DIR]

Writes ``benchmarks/results/compress.json`` and ``compress.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForQuestionAnswering, BertConfig

from edgekit.atomic import write_json, write_text
from edgekit.jsonfile import read_json
from edgekit.provenance import module_command

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
# the published shapes of bert-base-uncased and bert-large-uncased
BERT = {
    "BERT-base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    "BERT-large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
}


def params_of(config) -> int:
    """Parameters of a QA model with this config, counted without allocating weights."""
    with torch.device("meta"):
        model = AutoModelForQuestionAnswering.from_config(config)
    return sum(p.numel() for p in model.parameters())


def reference_rows(teacher: Path) -> list[dict[str, Any]]:
    rows = []
    for name, shape in BERT.items():
        cfg = BertConfig(vocab_size=30522, **shape)
        n = params_of(cfg)
        rows.append(
            {
                "name": f"{name} (reference, QA head)",
                "kind": "reference",
                "format": "pytorch",
                "precision": "fp32",
                "params": n,
                "layers": cfg.num_hidden_layers,
                "size_mb": n * 4 / 1e6,
            }
        )
    if (teacher / "config.json").exists():
        cfg = AutoConfig.from_pretrained(teacher)
        n = params_of(cfg)
        rows.append(
            {
                "name": f"teacher {teacher.name}",
                "kind": "teacher",
                "format": "pytorch",
                "precision": "fp32",
                "params": n,
                "layers": cfg.num_hidden_layers,
                "size_mb": n * 4 / 1e6,
            }
        )
    return rows


def _runs_by_bundle(runs: list[Path]) -> dict[str, dict[int, dict[str, Any]]]:
    """``edgekit run`` metrics by bundle name, then by number of questions answered."""
    out: dict[str, dict[int, dict[str, Any]]] = {}
    for d in runs:
        m = read_json(d / "metrics.json", "metrics")
        out.setdefault(m["bundle"]["name"], {})[m["n_questions"]] = m
    return out


def _with_weight_bits(how: str | None, metrics: dict[str, Any]) -> str | None:
    """Dynamic int8's weight width where the run's manifest records it and ``how`` does not say it: 7-bit
    (``reduce_range``) became the default after some bundles were made with 8, under the same name."""
    q = metrics.get("bundle", {}).get("source", {}).get("quantization", {})
    if how is None or "reduce_range" not in q or "weights" in how:
        return how
    return f"{how}, {7 if q['reduce_range'] else 8}-bit weights"


def artifact_rows(summaries: list[Path], runs: list[Path]) -> list[dict[str, Any]]:
    """One row per exported artifact: its quick check, or its largest given run, and its F1 drop vs fp32 ONNX.

    The drop is taken against the plain fp32 ONNX bundle of the same summary scored on the
    same number of questions (the runner takes the first N), so rows scored on a subset
    still compare like with like.
    """
    by_bundle = _runs_by_bundle(runs)
    rows = []
    for s in summaries:
        summary = read_json(s, "export summary")["rows"]
        fp32 = next((r["name"] for r in summary if r["format"] == "onnx" and r["name"].endswith("-fp32-onnx")), None)
        for r in summary:
            scored = by_bundle.get(r["name"], {})
            n = max(scored, default=r["n_questions"])
            m = scored.get(n, r)
            ref = by_bundle.get(fp32, {}).get(n) if fp32 else None
            rows.append(
                {
                    "name": r["name"],
                    "kind": "artifact",
                    "format": r["format"],
                    "precision": r["precision"],
                    "params": r["params"],
                    "size_mb": r["size_mb"],
                    "max_abs_diff": r["max_abs_diff"],
                    "answer_agreement": r["answer_agreement"],
                    "exact_match": m["exact_match"],
                    "f1": m["f1"],
                    "n_questions": n,
                    "f1_vs_fp32_onnx": m["f1"] - ref["f1"] if ref else None,
                    "how": _with_weight_bits(r.get("how"), m),
                    "path": r["path"],
                }
            )
    return rows


def _fmt(row: dict[str, Any], key: str, spec: str) -> str:
    return format(row[key], spec) if row.get(key) is not None else "-"


def markdown(rows: list[dict[str, Any]]) -> str:
    out = [
        "| model | format | precision | how | params | size MB | max abs Δlogit | same answer | EM | F1 | ΔF1 vs fp32 "
        "| dev questions |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        agree = f"{100 * r['answer_agreement']:.0f}%" if r.get("answer_agreement") is not None else "-"
        out.append(
            f"| {r['name']} | {r['format']} | {r['precision']} | {r.get('how') or '-'} "
            f"| {r['params'] / 1e6:.1f}M | {r['size_mb']:.1f} | {_fmt(r, 'max_abs_diff', '.2g')} | {agree} "
            f"| {_fmt(r, 'exact_match', '.2f')} | {_fmt(r, 'f1', '.2f')} | {_fmt(r, 'f1_vs_fp32_onnx', '+.2f')} "
            f"| {r.get('n_questions', '-')} |"
        )
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("summaries", nargs="*", type=Path, help="export-summary.json files")
    p.add_argument(
        "--runs",
        nargs="*",
        type=Path,
        default=[],
        help="edgekit run directories of these bundles (full dev, or the first N questions); a bundle's largest "
        "run gives its EM/F1, and the fp32 ONNX run on as many questions its ΔF1",
    )
    p.add_argument("--teacher", type=Path, default=ROOT.parent / "shared" / "models" / "mpnet-base-squad")
    p.add_argument("--out", type=Path, default=RESULTS / "compress.json")
    args = p.parse_args(argv)
    rows = reference_rows(args.teacher) + artifact_rows(args.summaries, args.runs)
    write_json(
        args.out,
        {"rows": rows, "command": module_command("benchmarks.compress", argv)},
    )
    table = markdown(rows)
    write_text(args.out.with_suffix(".md"), table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
