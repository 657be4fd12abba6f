"""The offline demo behind ``make demo``: the whole chain on what the package ships, for two tasks.

Recipe ``export/recipes/demo.toml`` (extractive QA): the packaged all-MiniLM-L6-v2 encoder,
fine-tuned on the shipped 734-question train excerpt -> ONNX fp32 and INT8 (and
TFLite fp32/int8 when the ``tflite`` extra is installed) -> each bundle validated
against PyTorch and run by the device runner on the shipped 105-question dev
excerpt -> a size/accuracy table. Recipe ``export/recipes/demo-intents.toml`` (text
classification): the same encoder fine-tuned on the shipped CLINC150 excerpt (ten
intents and out-of-scope queries), the same chain, checked on the excerpt's test split.
No network, no files outside the project.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from edgekit.atomic import write_text
from edgekit.errors import EdgekitError
from edgekit.export.pipeline import export_all, markdown, run_fresh
from edgekit.export.recipes import RECIPES_DIR, load_recipe
from edgekit.jsonfile import read_json
from edgekit.squad import sample_path
from edgekit.text import md_table

DEMO_RECIPE = RECIPES_DIR / "demo.toml"
INTENTS_RECIPE = RECIPES_DIR / "demo-intents.toml"
MODELS = Path(__file__).resolve().parents[1] / "models"


def shipped_students(out: Path, threads: int | None = None) -> list[str]:
    """The trained students in ``models/`` answering the same 105 dev questions: the summary's second table."""
    bundles = sorted(p for p in MODELS.glob("*/manifest.json")) if MODELS.is_dir() else []
    # the QA students: a classifier shipped there has no packaged excerpt of its own data to answer
    bundles = [p for p in bundles if read_json(p, "manifest").get("task", "extractive-qa") == "extractive-qa"]
    if not bundles:
        return []
    lines = [
        "## The shipped students",
        "",
        "Distilled from the MPNet teacher on the full training subset (44 articles), as `models/` ships them; "
        "the same 105 dev questions, the same runner. Full-dev figures and the commands that made them: each "
        "model card.",
        "",
    ]
    body = []
    for manifest in bundles:
        bundle = manifest.parent
        extra = ["--threads", str(threads)] if threads else []
        m = run_fresh(bundle, sample_path("dev"), out / bundle.name, 105, extra)
        body.append(
            [
                bundle.name,
                f"{m['bundle']['size_mb']:.1f}",
                f"{m['exact_match']:.1f}",
                f"{m['f1']:.1f}",
                f"{m['latency_ms']['p50']:.1f}",
                f"{m['peak_rss_mb']:.0f}",
                f"`models/{bundle.name}.md`",
            ]
        )
    head = ["student", "bundle MB", "EM", "F1", "p50 ms", "peak RSS MB", "model card"]
    return [*lines, *md_table(head, body), ""]


def run_demo(out: Path, threads: int | None = None) -> Path:
    """Run the demo into ``out``; returns the path of the Markdown summary."""
    if threads is not None and threads <= 0:
        raise EdgekitError(f"threads={threads}: expected a positive thread count")
    out = Path(os.path.abspath(out))  # "." or ".." name a directory too (and are refused as the working directory)
    overrides = [f'output_dir="{out.parent}"', f'name="{out.name}"']
    if threads:
        overrides.append(f"training.threads={threads}")
    recipe = load_recipe(DEMO_RECIPE, overrides)
    rows = export_all(recipe, check_questions=105)
    intents = load_recipe(
        INTENTS_RECIPE,
        [f'output_dir="{out}"', 'name="intents"', *overrides[2:]],  # beside the QA chain's files
    )
    intent_rows = export_all(intents, check_questions=240)
    # the Trainer's checkpoints (weights and optimizer state, most of the demo's disk) served only to resume
    # training; the students' weights are in model/ and their bundles are built. They are this demo's own.
    for r in (recipe, intents):
        shutil.rmtree(r.out / "checkpoints", ignore_errors=True)
    summary = "\n".join(
        [
            "# edgekit demo",
            "",
            "all-MiniLM-L6-v2 (packaged) fine-tuned on 734 shipped SQuAD train questions, exported, quantized and "
            "run by the edgekit runner (a process of its own per bundle) on the 105 shipped dev questions. A small, "
            "quick run: its EM/F1 show the chain "
            "works, not what distillation on the full data reaches (see the README's results).",
            "",
            markdown(rows),
            *[f"- `{r.path}`" for r in rows],
            "",
            "## Text classification",
            "",
            "The same encoder fine-tuned on the shipped CLINC150 excerpt (500 queries of ten intents and 100 "
            "out-of-scope ones), the same chain, run on the excerpt's 240 test queries (200 in scope, 40 out of "
            "scope): intent detection with an out-of-scope class.",
            "",
            markdown(intent_rows),
            *[f"- `{r.path}`" for r in intent_rows],
            "",
            *shipped_students(recipe.out / "shipped", threads),
        ]
    )
    path = recipe.out / "summary.md"
    write_text(path, summary)
    print(summary)
    return path
