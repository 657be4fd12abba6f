"""BERTScore F1 of a run's answers against the gold answers (max over golds), a measure some QA distillation papers report beside EM/F1.

Uses the ``bert-score`` package with a *local* model (no hub here), so the number
depends on which model scored it: ``bertscore.json`` records the model and layer.
The default is the packaged all-MiniLM-L6-v2 (layer 6), not BERTScore's usual
roberta-large, so compare BERTScores only between rows scored by the same model.
Writes ``RUN_DIR/bertscore.json``; ``edgekit report`` shows it in the table.

    python -m benchmarks.bertscore RUN_DIR... [--model DIR] [--layer 6]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edgekit.atomic import write_json
from edgekit.squad import load_squad


def score_run(run_dir: Path, scorer, model_name: str, layer: int) -> dict:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    predictions = json.loads((run_dir / "predictions.json").read_text())
    examples = [ex for ex in load_squad(Path(metrics["dataset"]["path"])) if ex.id in predictions]
    cands = [predictions[ex.id] for ex in examples]
    refs = [[a.text for a in ex.answers] for ex in examples]
    p, r, f = scorer.score(cands, refs, batch_size=64)
    result = {
        "f1": float(f.mean()),
        "precision": float(p.mean()),
        "recall": float(r.mean()),
        "n_questions": len(examples),
        "model": model_name,
        "layer": layer,
        "idf": False,
        "rescaled_with_baseline": False,
        "notes": "bert-score, multi-reference (max over gold answers); raw cosine scores, not baseline-rescaled",
    }
    write_json(run_dir / "bertscore.json", result)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, help="edgekit run directories (metrics.json + predictions.json)")
    p.add_argument("--model", default="packaged:all-MiniLM-L6-v2", help="local model dir (default: %(default)s)")
    p.add_argument("--layer", type=int, default=6, help="which hidden layer's embeddings (default: %(default)s)")
    args = p.parse_args(argv)

    from bert_score import BERTScorer

    from edgekit.export.models import resolve

    scorer = BERTScorer(model_type=resolve(args.model), num_layers=args.layer, lang="en", device="cpu")
    for run_dir in args.runs:
        r = score_run(run_dir, scorer, args.model, args.layer)
        print(
            f"{run_dir}: BERTScore F1 {100 * r['f1']:.2f} on {r['n_questions']} questions ({args.model}, layer {args.layer})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
