"""Put a trained student bundle in ``models/`` with its model card, every figure read from results files.

    python -m benchmarks.ship BUNDLE --run RUN_DIR --training RESULT.json \\
        --made-by "edgekit distill ..." --made-by "edgekit export int8 ..." [--teacher-run DIR]

``BUNDLE`` is verified and copied to ``models/<name>/`` (a bundle holds only its own files), and
``models/<name>.md`` is written beside it: what the bundle is, the teacher it was distilled from,
the training recipe and the commands that made it (``--made-by``, in order), and the full-dev
EM/F1, latency and memory of ``RUN_DIR`` (an ``edgekit run`` of this very bundle: its model file's
sha256 must match), with the F1 kept against the teacher's own full-dev run.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

from edgekit.atomic import write_text
from edgekit.bundle import MANIFEST, load_bundle
from edgekit.destination import BUNDLE, replacing
from edgekit.errors import EdgekitError
from edgekit.jsonfile import read_json
from edgekit.provenance import module_command, portable

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
TEACHER_RUN = ROOT / "benchmarks" / "results" / "teacher-mpnet-fp32-onnx"
MAX_MB = 50.0
SQUAD_TRAIN_QUESTIONS = 87_599  # the official train-v1.1.json


def _command(cmd: Any) -> str:
    return cmd if isinstance(cmd, str) else " ".join(portable(cmd, ROOT))


def _made_by(made_by: list[str], run: str, metrics: dict, results: str, argv) -> list[str]:
    """A card's "Made by" section: the commands in order, the run its figures come from, this card's command."""
    return [
        "## Made by",
        "",
        "```bash",
        *made_by,
        "```",
        "",
        f"{run} run: `{_command(metrics['command'])}`; its results: `{results}`.",
        f"This card and the copy: `{_command(argv)}`.",
        "",
    ]


def _quantization(q: dict) -> str:
    """A manifest's dynamic int8 settings in words."""
    return (
        f"{q['method']} int8 ({q['weight_type']}, {'per channel' if q['per_channel'] else 'per tensor'}, "
        f"{'7' if q['reduce_range'] else '8'}-bit weights)"
    )


def card(
    name: str, manifest: dict, metrics: dict, results: str, training: dict, teacher: dict, made_by: list[str], argv
) -> str:
    """The model card's Markdown; ``results`` names the committed metrics file its figures come from."""
    b, dev = metrics["bundle"], metrics["device"]
    lat, recipe = metrics["latency_ms"], training["recipe"]
    src = manifest["source"]
    pruning = src.get("vocab_pruning")
    q = src.get("quantization", {})
    vocab = f"{manifest['vocab_size']:,} word pieces"
    if pruning:
        corpus = ", ".join(c["file"] for c in pruning["corpus"])
        vocab += (
            f" (pruned from {pruning['of']:,}: the special, added and single-character pieces, then the most "
            f"frequent in {corpus} mixed with wordfreq's {pruning['english_words']:,} most frequent English words)"
        )
    quant = _quantization(q) if q else "fp32"
    if q:
        quant += f", word embedding {q.get('embedding_bits', 8)}-bit"
        if groups := q.get("float_activations"):
            quant += f", float activations into {', '.join(groups)} (their weights int8)"
    kept = metrics["f1"] / teacher["f1"]
    student = recipe["student"]
    base = (
        f"`{student['model']}`" + (" (all-MiniLM-L6-v2, Apache-2.0)" if "MiniLM" in student["model"] else "")
        if student["init"] == "pretrained"
        else f"the teacher's layers {student['layers']} (all-mpnet-base-v2 fine-tuned, Apache-2.0)"
    )
    if student.get("weights"):  # a student trained further from a bundle (export/from_bundle.py)
        base = f"those of the bundle `{student['weights']}`, dequantized where int8, a student that started from {base}"
    lines = [
        f"# {name}",
        "",
        f"An extractive question-answering student for SQuAD-style questions, {b['size_mb']:.1f} MB as an edgekit "
        f"bundle ({manifest['model_format']}, {quant}). Distilled from the MPNet-base teacher "
        f"`mpnet-base-squad` ({teacher['bundle']['model_size_mb']:.0f} MB as fp32 ONNX)."
        + (
            f" Its manifest, and so the results tables, name it `{manifest['name']}`."
            if manifest["name"] != name
            else ""
        ),
        "",
        "| | |",
        "|---|---|",
        f"| full SQuAD v1.1 dev ({metrics['n_questions']:,} questions, official scoring) | "
        f"**EM {metrics['exact_match']:.2f}, F1 {metrics['f1']:.2f}** |",
        f"| teacher on the same questions, same runner | EM {teacher['exact_match']:.2f}, F1 {teacher['f1']:.2f} "
        f"(F1 kept: **{100 * kept:.1f}%**) |",
        f"| size | {b['size_mb']:.1f} MB bundle, {b['model_size_mb']:.1f} MB model |",
        f"| model | {manifest['source'].get('model_type', '?')}, {manifest['layers']} layers, hidden "
        f"{manifest['hidden_size']}, {manifest['params']:,} parameters, {vocab} |",
        f"| windows | {manifest['max_seq_len']} tokens, doc stride {manifest['doc_stride']} |",
        f"| training | {training['method']}; {training['steps']} steps on {training['n_train_questions']:,} "
        f"questions ({training['n_train_features']:,} windows) of `train-v1.1-subset.json`, "
        f"{recipe['training']['epochs']:g} epochs, batch {recipe['training']['batch_size']}, "
        f"lr {recipe['training']['learning_rate']:g}, max length {recipe['data']['max_seq_len']}"
        f"{', bf16 autocast' if recipe['training'].get('bf16') else ''}, seed {recipe['training']['seed']} |",
        f"| latency in the full-dev run | p50 {lat['p50']:.1f} ms, p90 {lat['p90']:.1f} ms per question "
        f"({metrics['threads'] or 'default'} threads, {dev['cpu']}, {dev['arch']}) |",
        "",
        *_made_by(made_by, "Full-dev", metrics, results, argv),
        "## Use",
        "",
        "```bash",
        f"edgekit run models/{name} --dataset $EDGEKIT_DATA_DIR/squad/dev-v1.1.json --out runs/{name}-dev",
        "```",
        "",
        f"Initial weights: {base}. Training and evaluation data: SQuAD v1.1 (CC BY-SA 4.0). Trained on "
        f"{training['n_train_questions']:,} of SQuAD v1.1's {SQUAD_TRAIN_QUESTIONS:,} training questions "
        f"({training['n_train_questions'] / SQUAD_TRAIN_QUESTIONS:.1%}), as the teacher was.",
        "",
    ]
    return "\n".join(lines)


def classification_card(
    name: str, manifest: dict, metrics: dict, results: str, training: dict, teacher: dict, made_by: list[str], argv
) -> str:
    """The model card of a text classifier or a tagger: the same facts as :func:`card`, its task's scores."""
    b, dev, lat, recipe = metrics["bundle"], metrics["device"], metrics["latency_ms"], training["recipe"]
    q = manifest["source"].get("quantization", {})
    quant = _quantization(q) if q else "fp32"
    tagger = manifest["task"] == "token-classification"
    clinc = "in_scope_accuracy" in metrics
    headline = "f1" if tagger else "in_scope_accuracy" if clinc else "accuracy"
    noun = "sentence" if tagger else "text"
    data = recipe["data"]
    split = f" (split {metrics['dataset']['split']})" if metrics["dataset"].get("split") else ""
    scores = f"accuracy {metrics['accuracy']:.2f}, macro-F1 {metrics['macro_f1']:.2f}" if not tagger else ""
    t_scores = f"accuracy {teacher['accuracy']:.2f}, macro-F1 {teacher['macro_f1']:.2f}" if not tagger else ""
    if tagger:
        scores, t_scores = (
            f"entity F1 {m['f1']:.2f} (P {m['precision']:.2f}, R {m['recall']:.2f}), surface-form F1 {m['surface_f1']:.2f}"
            for m in (metrics, teacher)
        )
    if clinc:
        scores += (
            f", in-scope accuracy {metrics['in_scope_accuracy']:.2f}, out-of-scope recall {metrics['oos_recall']:.2f}"
        )
        t_scores += (
            f", in-scope accuracy {teacher['in_scope_accuracy']:.2f}, out-of-scope recall {teacher['oos_recall']:.2f}"
        )
    dataset = Path(metrics["dataset"]["path"]).name
    kinds = sorted({t.split("-", 1)[1] for t in manifest["labels"] if t != "O"})
    what = (
        f"A named-entity tagger over {len(manifest['labels'])} IOB2 tags ({len(kinds)} entity types: {', '.join(kinds)})"
        if tagger
        else f"A text classifier over {len(manifest['labels'])} labels"
    )
    lines = [
        f"# {name}",
        "",
        f"{what}, {b['size_mb']:.1f} MB as an edgekit bundle "
        f"({manifest['model_format']}, {quant}). Distilled from the edgekit-made teacher "
        f"`{teacher['bundle']['name']}` ({teacher['bundle']['model_size_mb']:.0f} MB as fp32 ONNX)."
        + (f" Its manifest names it `{manifest['name']}`." if manifest["name"] != name else ""),
        "",
        "| | |",
        "|---|---|",
        f"| `{dataset}`{split}, {metrics['n_examples']:,} {noun}s | **{scores}** |",
        f"| teacher on the same {noun}s, same runner | {t_scores} (kept: "
        f"**{100 * metrics[headline] / teacher[headline]:.1f}%** of its {'entity F1' if tagger else headline.replace('_', ' ')}) |",
        f"| size | {b['size_mb']:.1f} MB bundle, {b['model_size_mb']:.1f} MB model |",
        f"| model | {manifest['source'].get('model_type', '?')}, {manifest['layers']} layers, hidden "
        f"{manifest['hidden_size']}, {manifest['params']:,} parameters, {manifest['vocab_size']:,} word pieces; "
        + (
            f"sentences cut into windows of {manifest['max_seq_len']} tokens |"
            if tagger
            else f"texts cut to {manifest['max_seq_len']} tokens |"
        ),
        f"| training | {training['method']}; {training['steps']} steps on {training['n_train_examples']:,} {noun}s of "
        f"`{Path(data['train']).name}`{' split ' + data['train_split'] if data.get('train_split') else ''}"
        + (
            f" and {copies:,} teacher-labelled copies (`data.extra_train`)"
            if (copies := training["n_train_features"] - training["n_train_examples"]) > 0
            else ""
        )
        + f", {recipe['training']['epochs']:g} epoch{'' if recipe['training']['epochs'] == 1 else 's'}, "
        f"batch {recipe['training']['batch_size']}, "
        f"lr {recipe['training']['learning_rate']:g}{', bf16 autocast' if recipe['training'].get('bf16') else ''}, "
        f"seed {recipe['training']['seed']}"
        + (f"; resumed at step {training['resumed_from_step']}" if training.get("resumed_from_step") else "")
        + " |",
        f"| latency in that run | p50 {lat['p50']:.2f} ms, p90 {lat['p90']:.2f} ms per {noun} "
        f"({metrics['threads'] or 'default'} threads, {dev['cpu']}, {dev['arch']}), peak RSS {metrics['peak_rss_mb']:.0f} MB |",
        "",
        *_made_by(made_by, "Full-set", metrics, results, argv),
        "## Use",
        "",
        "```bash",
        f"edgekit run models/{name} --dataset {Path(data['dev']).parent / dataset}"
        f"{' --split ' + metrics['dataset']['split'] if split else ''} "
        f"--out runs/{name}-dev",
        "```",
        "",
        f"{'Tags' if tagger else 'Labels'}, in logit order: "
        + ", ".join(f"`{x}`" for x in manifest["labels"][:12])
        + (f", ... ({len(manifest['labels'])} in all)" if len(manifest["labels"]) > 12 else "")
        + ".",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", type=Path, help="the bundle to ship")
    p.add_argument(
        "--run",
        type=Path,
        required=True,
        help="full-dev edgekit run of this bundle, committed under benchmarks/results",
    )
    p.add_argument("--training", type=Path, required=True, help="result.json of the distillation run")
    p.add_argument("--made-by", action="append", required=True, help="a command that made the bundle (in order)")
    p.add_argument("--teacher-run", type=Path, default=TEACHER_RUN, help="the teacher's full-dev run")
    p.add_argument("--name", default=None, help="name under models/ (default: the bundle's)")
    args = p.parse_args(argv)

    bundle = load_bundle(args.bundle)
    metrics = read_json(args.run / "metrics.json", "metrics")
    teacher = read_json(args.teacher_run / "metrics.json", "metrics")
    training = read_json(args.training, "distillation result")
    manifest = read_json(bundle.path / MANIFEST, "manifest")
    identity = read_json(args.run / "run.json", "run identity")
    if identity.get("model_sha256") != bundle.manifest.files[bundle.manifest.model_file].sha256:
        raise EdgekitError(f"{args.run / 'run.json'}: a run of another model file, not {args.bundle}")
    count = "n_questions" if bundle.manifest.task == "extractive-qa" else "n_examples"
    if metrics[count] != teacher[count]:
        raise EdgekitError(f"{args.run}: {metrics[count]} examples; expected as many as the teacher's run")
    if bundle.size_mb > MAX_MB:
        raise EdgekitError(f"{args.bundle}: {bundle.size_mb:.1f} MB; a shipped student is at most {MAX_MB:.0f} MB")
    run = args.run.resolve()
    if not run.is_relative_to(ROOT / "benchmarks" / "results"):
        raise EdgekitError(f"{args.run}: expected a run committed under benchmarks/results/, which the card cites")
    results = str((run / "metrics.json").relative_to(ROOT))
    name = args.name or bundle.manifest.name
    with replacing(MODELS / name, BUNDLE, (bundle.path,)) as tmp:
        for f in [MANIFEST, *bundle.manifest.files]:
            shutil.copyfile(bundle.path / f, tmp / f)
    load_bundle(MODELS / name)
    argv_rec = module_command("benchmarks.ship", argv)
    make = card if bundle.manifest.task == "extractive-qa" else classification_card
    text = make(name, manifest, metrics, results, training, teacher, args.made_by, argv_rec)
    write_text(MODELS / f"{name}.md", text)
    print(f"wrote {MODELS / name} ({bundle.size_mb:.1f} MB) and {MODELS / name}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
