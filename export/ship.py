"""Ship a trained bundle: a verified copy in a models directory and, beside it, its model card.

The card holds no hand-typed figure: what the bundle is comes from its manifest, how it was trained
from the distillation's ``result.json``, and every score and latency from an ``edgekit run`` of this
very model file (its ``run.json`` names the model's sha256) and the teacher's run on the same examples.
What no results file can say (licences, where the data came from) is given as ``--note``.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

from edgekit.atomic import write_text
from edgekit.bundle import MANIFEST, load_bundle
from edgekit.cli import train_default
from edgekit.destination import BUNDLE, replacing
from edgekit.errors import InputError
from edgekit.jsonfile import READ_BACK_BYTES, Range, from_json, read_json
from edgekit.provenance import portable
from edgekit.result import read_metrics
from edgekit.tasks import get_task


def _made_by(made_by: Sequence[str], results: str, metrics: dict, count: str, argv: Sequence[str]) -> list[str]:
    """A card's "Made by" section: the commands in order, the results its figures come from, this card's command."""
    return [
        "## Made by",
        "",
        "```bash",
        *made_by,
        "```",
        "",
        f"Its figures: `{results}`, an `edgekit run` of this model file on {metrics[count]:,} examples.",
        f"This card and the copy: `{shlex.join(argv)}`.",
        "",
    ]


def _quantization(q: dict) -> str:
    """A manifest's dynamic int8 settings in words."""
    return (
        f"{q['method']} int8 ({q['weight_type']}, {'per channel' if q['per_channel'] else 'per tensor'}, "
        f"{'7' if q['reduce_range'] else '8'}-bit weights)"
    )


def _schedule(training: dict) -> str:
    """How long the recipe trained: its epochs, or the step count that stopped it first."""
    if training["max_steps"] > 0:
        return f"stopped at step {training['max_steps']} (max_steps)"
    epochs = training["epochs"]
    return f"{epochs:g} epoch{'' if epochs == 1 else 's'}"


def _initial_weights(student: dict) -> str:
    """Where the student's weights started, as its recipe says."""
    base = f"`{student['model']}`" if student["init"] == "pretrained" else f"the teacher's layers {student['layers']}"
    if student.get("weights"):  # a student trained further from a bundle (export/from_bundle.py)
        base = f"those of the bundle `{student['weights']}`, dequantized where int8, a student that started from {base}"
    return base


def qa_card(name: str, manifest: dict, metrics: dict, training: dict, teacher: dict) -> list[str]:
    """The head and table of an extractive QA student's card."""
    b, dev, lat, recipe = metrics["bundle"], metrics["device"], metrics["latency_ms"], training["recipe"]
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
    train = Path(recipe["data"]["train"] or train_default()).name
    return [
        f"# {name}",
        "",
        f"An extractive question-answering student, {b['size_mb']:.1f} MB as an edgekit bundle "
        f"({manifest['model_format']}, {quant}). Distilled from the teacher `{teacher['bundle']['name']}` "
        f"({teacher['bundle']['model_size_mb']:.0f} MB as its model file)."
        + (
            f" Its manifest, and so the results tables, name it `{manifest['name']}`."
            if manifest["name"] != name
            else ""
        ),
        "",
        "| | |",
        "|---|---|",
        f"| `{Path(metrics['dataset']['path']).name}` ({metrics['n_questions']:,} questions, official scoring) | "
        f"**EM {metrics['exact_match']:.2f}, F1 {metrics['f1']:.2f}** |",
        f"| teacher on the same questions, same runner | EM {teacher['exact_match']:.2f}, F1 {teacher['f1']:.2f} "
        f"(F1 kept: **{100 * metrics['f1'] / teacher['f1']:.1f}%**) |",
        f"| size | {b['size_mb']:.1f} MB bundle, {b['model_size_mb']:.1f} MB model |",
        f"| model | {src.get('model_type', '?')}, {manifest['layers']} layers, hidden "
        f"{manifest['hidden_size']}, {manifest['params']:,} parameters, {vocab} |",
        f"| windows | {manifest['max_seq_len']} tokens, doc stride {manifest['doc_stride']} |",
        f"| training | {training['method']}; {training['steps']} steps on {training['n_train_questions']:,} "
        f"questions ({training['n_train_features']:,} windows) of `{train}`, "
        f"{_schedule(recipe['training'])}, batch {recipe['training']['batch_size']}, "
        f"lr {recipe['training']['learning_rate']:g}, max length {recipe['data']['max_seq_len']}"
        f"{', bf16 autocast' if recipe['training'].get('bf16') else ''}, seed {recipe['training']['seed']} |",
        f"| latency in that run | p50 {lat['p50']:.1f} ms, p90 {lat['p90']:.1f} ms per question "
        f"({metrics.get('threads') or 'default'} threads, {dev.get('cpu', '?')}, {dev.get('arch', '?')}) |",
        "",
    ]


def classifier_card(name: str, manifest: dict, metrics: dict, training: dict, teacher: dict) -> list[str]:
    """The head and table of a text classifier's or a tagger's card: the same facts as :func:`qa_card`."""
    b, dev, lat, recipe = metrics["bundle"], metrics["device"], metrics["latency_ms"], training["recipe"]
    q = manifest["source"].get("quantization", {})
    quant = _quantization(q) if q else "fp32"
    tagger = manifest["task"] == "token-classification"
    clinc = "in_scope_accuracy" in metrics
    headline = "f1" if tagger else "in_scope_accuracy" if clinc else "accuracy"
    noun = "sentence" if tagger else "text"
    data = recipe["data"]
    split = f" (split {metrics['dataset']['split']})" if metrics["dataset"].get("split") else ""
    if tagger:
        scores, t_scores = (
            f"entity F1 {m['f1']:.2f} (P {m['precision']:.2f}, R {m['recall']:.2f}), surface-form F1 {m['surface_f1']:.2f}"
            for m in (metrics, teacher)
        )
    else:
        scores, t_scores = (f"accuracy {m['accuracy']:.2f}, macro-F1 {m['macro_f1']:.2f}" for m in (metrics, teacher))
    if clinc:
        scores, t_scores = (
            s + f", in-scope accuracy {m['in_scope_accuracy']:.2f}, out-of-scope recall {m['oos_recall']:.2f}"
            for s, m in ((scores, metrics), (t_scores, teacher))
        )
    what = f"A text classifier over {len(manifest['labels'])} labels"
    if tagger:
        kinds = sorted({t.split("-", 1)[-1] for t in manifest["labels"] if t != "O"})
        what = f"A named-entity tagger over {len(manifest['labels'])} IOB2 tags ({len(kinds)} entity types: {', '.join(kinds)})"
    copies = training["n_train_features"] - training["n_train_examples"]
    return [
        f"# {name}",
        "",
        f"{what}, {b['size_mb']:.1f} MB as an edgekit bundle ({manifest['model_format']}, {quant}). Distilled "
        f"from the teacher `{teacher['bundle']['name']}` ({teacher['bundle']['model_size_mb']:.0f} MB as its model file)."
        + (f" Its manifest names it `{manifest['name']}`." if manifest["name"] != name else ""),
        "",
        "| | |",
        "|---|---|",
        f"| `{Path(metrics['dataset']['path']).name}`{split}, {metrics['n_examples']:,} {noun}s | **{scores}** |",
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
        + (f" and {copies:,} teacher-labelled copies (`data.extra_train`)" if copies > 0 else "")
        + f", {_schedule(recipe['training'])}, batch {recipe['training']['batch_size']}, "
        f"lr {recipe['training']['learning_rate']:g}{', bf16 autocast' if recipe['training'].get('bf16') else ''}, "
        f"seed {recipe['training']['seed']}"
        + (f"; resumed at step {training['resumed_from_step']}" if training.get("resumed_from_step") else "")
        + " |",
        f"| latency in that run | p50 {lat['p50']:.2f} ms, p90 {lat['p90']:.2f} ms per {noun} "
        f"({metrics.get('threads') or 'default'} threads, {dev.get('cpu', '?')}, {dev.get('arch', '?')}), peak RSS {metrics['peak_rss_mb']:.0f} MB |",
        "",
    ]


def card(
    where: str,
    name: str,
    manifest: dict,
    metrics: dict,
    results: str,
    training: dict,
    teacher: dict,
    made_by: list[str],
    notes: Sequence[str],
    argv: Sequence[str],
) -> str:
    """A model card's Markdown; ``where`` is the bundle's path and ``results`` the metrics file its figures come
    from, both as a reader in the working directory finds them."""
    qa = manifest["task"] == "extractive-qa"
    head = (qa_card if qa else classifier_card)(name, manifest, metrics, training, teacher)
    dataset = metrics["dataset"]
    split = f" --split {dataset['split']}" if dataset.get("split") else ""
    labels = manifest.get("labels") or []
    tail = (
        [f"Initial weights: {_initial_weights(training['recipe']['student'])}."]
        if qa
        else [
            f"{'Tags' if manifest['task'] == 'token-classification' else 'Labels'}, in logit order: "
            + ", ".join(f"`{x}`" for x in labels[:12])
            + (f", ... ({len(labels)} in all)" if len(labels) > 12 else "")
            + "."
        ]
    )
    return "\n".join(
        [
            *head,
            *_made_by(made_by, results, metrics, "n_questions" if qa else "n_examples", argv),
            "## Use",
            "",
            "```bash",
            f"edgekit run {where} --dataset /path/to/{Path(dataset['path']).name}{split} --out runs/{name}-eval",
            "```",
            "",
            *tail,
            "",
            *(f"{n}\n" for n in notes),
        ]
    )


def ship(
    bundle_path: Path,
    out_dir: Path,
    run: Path,
    training_path: Path,
    teacher_run: Path,
    made_by: list[str],
    notes: Sequence[str] = (),
    name: str | None = None,
    argv: Sequence[str] = (),
) -> tuple[Path, Path]:
    """Copy the verified bundle to ``out_dir/NAME`` and write ``out_dir/NAME.md``; every check comes first.

    ``run`` must be an edgekit run of this very model file, and ``teacher_run`` one of the teacher on as many
    examples, so that "kept" compares like with like. A bundle already at its destination is carded again in
    place (its files are left as they are). Returns the bundle's and the card's paths.
    """
    if name is not None and (name in ("", ".", "..") or "/" in name or os.sep in name or not name.isprintable()):
        raise InputError(None, f"--name {name!r}", "a plain file name: the bundle's folder in OUT")
    for cmd in made_by:
        if not cmd.strip() or not cmd.isprintable() or "`" in cmd:
            raise InputError(None, f"--made-by {cmd!r}", "a command on one line, without backticks")
    bundle = load_bundle(bundle_path)
    task = bundle.manifest.task
    sha = bundle.manifest.files[bundle.manifest.model_file].sha256
    metrics = read_metrics(run / "metrics.json")
    teacher = read_metrics(teacher_run / "metrics.json")
    training = _training_record(training_path)
    manifest = read_json(bundle.path / MANIFEST, "manifest")
    if _run_identity(run).get("model_sha256") != sha:
        raise InputError(run / "run.json", "model_sha256", f"a run of {bundle_path}'s model file, not of another")
    if teacher["bundle"].get("model_sha256") == sha:
        raise InputError(teacher_run / "metrics.json", "bundle", "a run of the teacher, not of the student itself")
    count = "n_questions" if task == "extractive-qa" else "n_examples"
    headline = get_task(task).headline
    if (teacher.get("task", "extractive-qa"), teacher.get(count), _file_name(teacher)) != (
        task,
        metrics.get(count),
        _file_name(metrics),
    ):
        raise InputError(
            teacher_run / "metrics.json",
            "dataset",
            f"a run of the teacher ({task}) on the student's dataset file and {count}",
        )
    if not teacher.get(headline):
        raise InputError(teacher_run / "metrics.json", f"field '{headline}'", "a teacher scoring above 0")
    data = training["recipe"]["data"]
    if (data["bundle_max_seq_len"] or data["max_seq_len"]) != bundle.manifest.max_seq_len:
        raise InputError(
            training_path,
            "recipe.data",
            f"the training of this bundle ({bundle.manifest.max_seq_len}-token windows), not of another",
        )
    if metrics["bundle"].get("size_mb") is None:
        raise InputError(run / "metrics.json", "field 'bundle.size_mb'", "the bundle's size, as edgekit run records it")
    if _file_name(metrics) is None:
        raise InputError(run / "metrics.json", "field 'dataset.path'", "the dataset's path, as edgekit run records it")
    name = bundle.manifest.name if name is None else name
    dest, card_path = out_dir / name, out_dir / f"{name}.md"
    if (card_path.exists() or card_path.is_symlink()) and not _is_card_of(card_path, name):
        raise InputError(card_path, "file", f"a model card of {name} to replace, or no file; it is left alone")
    root = Path.cwd()
    results = os.path.relpath((run / "metrics.json").resolve(), root)
    where = os.path.relpath(dest.resolve(), root)
    text = card(where, name, manifest, metrics, results, training, teacher, made_by, notes, portable(argv, root))
    if dest.resolve() != bundle.path.resolve():
        with replacing(dest, BUNDLE, (bundle.path,)) as tmp:
            for f in [MANIFEST, *bundle.manifest.files]:
                shutil.copyfile(bundle.path / f, tmp / f)
        load_bundle(dest)
    write_text(card_path, text)
    return dest, card_path


@dataclass(frozen=True)
class TrainingRecord:
    """The fields of an ``edgekit distill`` ``result.json`` a card reads (its recipe is checked as a recipe file)."""

    method: str
    steps: Annotated[int, Range(0, 1e12)]
    n_train_features: Annotated[int, Range(0, 1e12)]
    recipe: dict[str, Any]
    n_train_questions: Annotated[int, Range(0, 1e12)] | None = None  # QA
    n_train_examples: Annotated[int, Range(0, 1e12)] | None = None  # classification, tagging
    resumed_from_step: Annotated[int, Range(0, 1e12)] | None = None


def _file_name(metrics: dict[str, Any]) -> str | None:
    """The name of the dataset file a run read (a teacher's run and its student's are on the same one)."""
    dataset = metrics.get("dataset")
    path = dataset.get("path") if isinstance(dataset, dict) else None
    return Path(path).name if isinstance(path, str) else None


def _run_identity(run: Path) -> dict[str, Any]:
    """A run directory's ``run.json`` (the model, tokenizer and dataset hashes a run is resumed against), read back."""
    identity = read_json(run / "run.json", "run.json", READ_BACK_BYTES, read_back=True)
    if not isinstance(identity, dict):
        raise InputError(run / "run.json", "top level", "a JSON object, as edgekit run writes it")
    return identity


def _training_record(path: Path) -> dict[str, Any]:
    """``result.json`` of the distillation, read as untrusted and checked; its recipe as the typed recipe gives it."""
    from edgekit.export.recipes import recipe_from_table

    raw = read_json(path, "distill result.json", READ_BACK_BYTES, read_back=True)
    record = from_json(TrainingRecord, raw, path)
    recipe = recipe_from_table(record.recipe, path, "recipe")
    count = "n_train_questions" if recipe.task == "qa" else "n_train_examples"
    if getattr(record, count) is None:
        raise InputError(path, f"field '{count}'", f"the training count of a {recipe.task} distillation")
    return {**asdict(record), "recipe": asdict(recipe)}


def _is_card_of(path: Path, name: str) -> bool:
    """Whether ``path`` is a plain file that starts as this module writes ``name``'s card (so it may be replaced)."""
    if path.is_symlink() or not path.is_file():
        return False
    with open(path, "rb") as f:
        return f.read(len(name) + 3) == f"# {name}\n".encode()


def add_arguments(p: Any) -> None:
    """``edgekit export ship``'s arguments."""
    p.add_argument("bundle", type=Path, help="the bundle to ship")
    p.add_argument("out", type=Path, help="models directory: the bundle goes to OUT/NAME, its card to OUT/NAME.md")
    p.add_argument("--run", type=Path, required=True, help="an edgekit run directory of this very bundle's model")
    p.add_argument("--training", type=Path, required=True, help="result.json of the edgekit distill that trained it")
    p.add_argument(
        "--teacher-run", type=Path, required=True, help="an edgekit run directory of the teacher on the same examples"
    )
    p.add_argument(
        "--made-by", action="append", required=True, help="a command that made the bundle (repeatable, in order)"
    )
    p.add_argument(
        "--note",
        action="append",
        default=[],
        help="a paragraph for what no results file says, e.g. the licences of the weights and data (repeatable)",
    )
    p.add_argument("--name", default=None, help="name in OUT (default: the bundle's)")
