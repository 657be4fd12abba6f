"""Reproduce the teacher's model-card EM/F1 through edgekit's own pipeline.

Exports ``../shared/models/mpnet-base-squad`` to an fp32 ONNX bundle (validated
against PyTorch), runs it on the full SQuAD v1.1 dev set with the edgekit runner
and writes ``benchmarks/results/teacher-mpnet-fp32-onnx/metrics.json``, with the
model card's figures and the difference beside them. About an hour on 2 cores;
re-running resumes where an interrupted run stopped.

    python -m benchmarks.teacher_fulldev [--teacher DIR] [--dataset DEV.json] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edgekit.atomic import write_json
from edgekit.backends import RuntimeOptions
from edgekit.bundle import load_bundle
from edgekit.errors import EdgekitError
from edgekit.provenance import module_command
from edgekit.runner import RunConfig, run
from edgekit.squad import default_data_dir, load_squad

ROOT = Path(__file__).resolve().parents[1]
MODEL_CARD = {"exact_match": 73.31, "f1": 83.11}  # ../shared/models/mpnet-base-squad/MODEL_CARD.md


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", type=Path, default=ROOT.parent / "shared" / "models" / "mpnet-base-squad")
    p.add_argument("--dataset", type=Path, default=default_data_dir() / "dev-v1.1.json")
    p.add_argument("--bundle", type=Path, default=ROOT / "runs" / "bundles" / "mpnet-base-squad-fp32-onnx")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "teacher-fulldev", help="resumable run directory")
    p.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "teacher-mpnet-fp32-onnx")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--limit", type=int, default=None)
    args = p.parse_args(argv)

    try:
        load_bundle(args.bundle)
        print(f"reusing verified bundle {args.bundle}")
    except EdgekitError:
        from edgekit.export.models import load_qa
        from edgekit.export.to_onnx import onnx_bundle, validate

        qa = load_qa(str(args.teacher))
        bundle = onnx_bundle(qa, args.bundle, "mpnet-base-squad-fp32-onnx")
        v = validate(qa, bundle, load_squad(args.dataset)[:16])
        print(f"exported {bundle.path}: max |Δlogit| {v.max_abs_diff:.2e}, same answer {100 * v.answer_agreement:.0f}%")
        if not v.ok:
            raise SystemExit("ONNX export does not match PyTorch") from None

    config = RunConfig(limit=args.limit, runtime=RuntimeOptions(threads=args.threads))
    metrics = run(
        args.bundle,
        args.dataset,
        args.work,
        config,
        argv=module_command("benchmarks.teacher_fulldev", argv),
    )
    metrics["model_card"] = {
        **MODEL_CARD,
        "delta_em": metrics["exact_match"] - MODEL_CARD["exact_match"],
        "delta_f1": metrics["f1"] - MODEL_CARD["f1"],
    }
    args.results.mkdir(parents=True, exist_ok=True)
    write_json(args.results / "metrics.json", metrics)
    print(
        json.dumps(
            {k: metrics[k] for k in ("exact_match", "f1", "n_questions")} | {"model_card": metrics["model_card"]}
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
