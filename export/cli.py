"""The workstation commands of ``edgekit``: ``export``, ``distill``, ``report`` and ``demo``.

``edgekit.cli`` (the device side) names these ``add_*`` functions in its registry and
imports this module only when one of them is chosen, so a device never needs it.
Each function adds one sub-parser; heavy libraries load inside the command functions.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from edgekit.cli import MAX_EXAMPLES, dev_default, real, train_default, whole
from edgekit.destination import BUNDLE, check_destination
from edgekit.errors import EdgekitError, InputError
from edgekit.export.recipes import add_recipe_arguments, shipped_recipes

# export.quantize.STATIC_METHODS, spelled here so that --help needs no ONNX Runtime
STATIC_METHODS = ["minmax", "entropy", "percentile", "nncf"]


def quiet_third_party() -> None:
    """Silence what the libraries edgekit drives say that a user cannot act on; edgekit's own lines stay.

    Called when a workstation command's parser is built, before torch or transformers load: tracer and exporter
    deprecation warnings, torch's and torchao's import-time logs, transformers' weight notes (edgekit
    prints its own note for a fresh QA head), ONNX Runtime's and the LiteRT converter's C++ logs.
    """
    import logging
    import os
    import warnings

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TORCH_LOGS", "-torch")  # torch configures its loggers itself when it loads: errors only
    warnings.filterwarnings(
        "ignore", module=r"(torch|transformers|onnxruntime|onnx|optimum|litert_torch|ai_edge_\w+|jax)"
    )
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    # ONNX Runtime's quantizer and the LiteRT converter warn on the root logger; edgekit itself prints
    logging.getLogger().setLevel(logging.ERROR)
    for name in ("torch", "torchao", "transformers", "absl", "onnxruntime", "jax"):
        logging.getLogger(name).setLevel(logging.ERROR)


def cmd_export(args: argparse.Namespace) -> int:
    if args.recipe is None:
        raise EdgekitError(
            f"edgekit export: give a STEP ({', '.join(args.steps)}) or --recipe RECIPE for the whole chain"
        )
    from edgekit.export.pipeline import Variants, export_all, markdown
    from edgekit.export.recipes import load_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    variants = Variants(
        tflite=not args.no_tflite, fuse=args.fuse, dynamic=tuple(args.dynamic), static=tuple(args.static)
    )
    rows = export_all(recipe, args.check_questions, variants)
    print(markdown(rows))
    for r in rows:
        print(f"bundle: {r.path}")
    print(f"summary: {recipe.out / 'export-summary.md'}")
    return 0


def cmd_export_onnx(args: argparse.Namespace) -> int:
    from edgekit.export.to_onnx import onnx_bundle

    check_destination(args.out, BUNDLE, [args.model] if Path(args.model).exists() else [])
    qa = _loaded(args.model, args)
    examples = _validation_inputs(qa, args)
    bundle = onnx_bundle(qa, args.out, args.name or Path(args.out).name, args.max_seq_len, args.doc_stride, args.opset)
    print(f"wrote {bundle.path} ({bundle.size_mb:.1f} MB)")
    _validated(qa, bundle, examples, args.atol, required=True)
    return 0


def _loaded(model: str, args: argparse.Namespace) -> Any:
    """A transformers model of one of edgekit's tasks, with a note on stderr where its QA head is fresh; a QA
    model's window settings are checked before anything is converted (its manifest would refuse them after)."""
    from edgekit.export.models import load_trained
    from edgekit.export.to_onnx import task_of

    qa = load_trained(model)
    if qa.fresh_head:
        print(
            f"note: {model} has no QA head; exporting with a freshly initialised one (answers are untrained)",
            file=sys.stderr,
        )
    if task_of(qa) == "extractive-qa" and args.doc_stride >= args.max_seq_len:
        raise InputError(
            None, f"--doc-stride {args.doc_stride}", f"fewer tokens than --max-seq-len ({args.max_seq_len})"
        )
    return qa


def _unit(task: str) -> str:
    return {"extractive-qa": "questions", "text-classification": "texts"}.get(task, "sentences")


def _validation_inputs(qa: Any, args: argparse.Namespace) -> list[Any]:
    """The first ``--validate-n`` inputs of the model's task, read (or refused) before anything is converted."""
    from edgekit.export.to_onnx import labels_of, task_of

    if args.validate_n <= 0:
        return []
    task = task_of(qa)
    examples = _task_inputs(
        task, labels_of(qa), args.validate_dataset, "--validate-dataset", dev_default(), _unit(task)
    )
    return examples[: args.validate_n]


def _validated(qa: Any, bundle: Any, examples: list[Any], atol: float, required: bool) -> None:
    """Check ``bundle``'s logits against PyTorch's on ``examples`` (none: no check) and say so; a ``required``
    check (an fp32 form) refuses a bundle whose logits differ by more than ``atol``."""
    from edgekit.export.to_onnx import validate

    if not examples:
        return
    what = _unit(bundle.manifest.task)
    v = validate(qa, bundle, examples, atol)
    print(
        f"validation of {bundle.path.name} on {v.n_questions} {what} ({v.n_windows} windows): max |Δlogit| "
        f"{v.max_abs_diff:.2e} (atol {v.atol:.0e}), same answer {100 * v.answer_agreement:.1f}%"
    )
    if required:
        v.require_ok(bundle.path)


def cmd_export_tflite(args: argparse.Namespace) -> int:
    from edgekit.export.to_tflite import signature_lengths, tflite_bundles

    name = args.name or re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(args.model).name)
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", name):
        raise InputError(
            None, f"--name {name!a}", "a plain name of letters, digits, '_', '.' or '-': the bundles' start"
        )
    outs = [args.out / f"{name}-{p}-tflite" for p in ("fp32", "int8")[: 1 + (not args.no_int8)]]
    for out in outs:
        check_destination(out, BUNDLE, [args.model] if Path(args.model).exists() else [])
    lengths = sorted({*args.lengths, args.max_seq_len}) if args.lengths else signature_lengths(args.max_seq_len)
    if lengths[-1] != args.max_seq_len:
        raise InputError(None, "--lengths", f"window lengths up to --max-seq-len ({args.max_seq_len}), got {lengths}")
    qa = _loaded(args.model, args)
    examples = _validation_inputs(qa, args)
    for bundle in tflite_bundles(
        qa, args.out, name, args.max_seq_len, args.doc_stride, not args.no_int8, None, lengths
    ):
        print(f"wrote {bundle.path} ({bundle.size_mb:.1f} MB)")
        _validated(qa, bundle, examples, args.atol, bundle.manifest.precision == "fp32")
    return 0


def cmd_export_int8(args: argparse.Namespace) -> int:
    from edgekit.bundle import load_bundle
    from edgekit.export import quantize

    check_destination(args.out, BUNDLE, [args.bundle])
    src = load_bundle(args.bundle)
    per_channel = not args.per_tensor
    if args.static is None:
        settings = quantize.DynamicInt8(
            weight_type=args.weight_type,
            per_channel=per_channel,
            reduce_range=not args.full_range,
            nodes_to_exclude=tuple(args.keep_fp32),
            embedding_bits=args.embedding_bits,
        )
        out = quantize.quantize_dynamic_bundle(src, args.out, args.name, settings)
    else:
        if args.embedding_bits != 8:
            raise EdgekitError("--embedding-bits 4: expected dynamic quantization (no --static)")
        if args.static == "nncf" and args.per_tensor:
            raise EdgekitError("--per-tensor: expected ONNX Runtime's static quantization (NNCF chooses its scales)")
        inputs = _task_inputs(
            src.manifest.task, src.manifest.labels, args.calibration_data, "--calibration-data", train_default(),
            "training texts", split="train",
        )  # fmt: skip
        static = quantize.StaticInt8(
            calibration=args.static, per_channel=per_channel, nodes_to_exclude=tuple(args.keep_fp32)
        )
        reader = quantize.WindowReader(src, inputs, args.calibration_windows, padded=static.padded)
        static = replace(static, calibration_data=quantize.windows_of(reader.n, Path(args.calibration_data)))
        out = quantize.quantize_static_bundle(src, args.out, reader, args.name, static)
    print(f"wrote {out.path}: {out.model_size_mb:.1f} MB model (fp32 {src.model_size_mb:.1f} MB)")
    return 0


def _task_inputs(
    task: str, labels: Sequence[str], path: Path, flag: str, squad_default: Path, what: str, split: str | None = None
) -> list[Any]:
    """The inputs of ``task`` (a tagger's: with ``labels``) that ``flag`` names: SQuAD questions, or a
    classifier's texts (a TSV, or CLINC150's ``split``), or a datasets source (``hf:NAME``, .jsonl, .csv,
    .parquet: its ``split``, default train). The flag's SQuAD default, or a file of another kind, is refused for
    a classifier or a tagger."""
    from edgekit.export import hfdata

    if hfdata.is_datasets_source(path):
        split = split or "train"
        path = hfdata.materialize(str(path), task, split)
    if task == "token-classification":
        from edgekit.tasks.tokens import load_sentences

        if path == squad_default:
            raise InputError(path, flag, f"a tagger's {what} (a CoNLL-style word<TAB>tag file)")
        return load_sentences(path, labels)
    if task != "text-classification":
        from edgekit.squad import load_squad

        return load_squad(path)
    from edgekit.tasks.classification import load_texts

    if path == squad_default or path.suffix.lower() not in (".tsv", ".json"):
        raise InputError(path, flag, f"a classifier's {what} (.tsv, or CLINC150 .json)")
    return load_texts(path, split if path.suffix.lower() == ".json" else None)


def cmd_export_int4(args: argparse.Namespace) -> int:
    from edgekit.bundle import load_bundle
    from edgekit.export import quantize

    check_destination(args.out, BUNDLE, [args.bundle])
    src = load_bundle(args.bundle)
    settings = quantize.Int4Weights(block_size=args.block_size, embeddings=not args.keep_embeddings)
    out = quantize.quantize_int4_bundle(src, args.out, args.name, settings)
    print(f"wrote {out.path}: {out.model_size_mb:.1f} MB model (fp32 {src.model_size_mb:.1f} MB)")
    return 0


def cmd_export_float_activations(args: argparse.Namespace) -> int:
    from edgekit.bundle import load_bundle
    from edgekit.export import quantize

    check_destination(args.out, BUNDLE, [args.bundle])
    src = load_bundle(args.bundle)
    out = quantize.float_activations_bundle(src, args.out, args.group, args.name)
    print(f"wrote {out.path}: float activations into {', '.join(args.group)}; {out.model_size_mb:.1f} MB model")
    return 0


def cmd_export_int8_sensitivity(args: argparse.Namespace) -> int:
    from edgekit.atomic import write_json
    from edgekit.bundle import load_bundle
    from edgekit.destination import SENSITIVITY, replacing
    from edgekit.export.sensitivity import int8_sensitivity
    from edgekit.squad import load_squad

    src = load_bundle(args.bundle)
    if src.manifest.task != "extractive-qa":
        raise InputError(args.bundle, "manifest task", f"an extractive-qa bundle, got a {src.manifest.task} one")
    examples = load_squad(args.dataset)
    with replacing(args.out, SENSITIVITY, [args.bundle, args.dataset]) as tmp:
        result = int8_sensitivity(src, examples, args.windows, args.threads, lambda s: print(s, flush=True), tmp)
        result |= {"dataset": str(args.dataset), "command": args.command_line}
        write_json(tmp / "sensitivity.json", result)
    print(f"wrote {args.out / 'sensitivity.json'}: roles by harm {', '.join(result['roles_by_harm'])}")
    return 0


def cmd_export_ship(args: argparse.Namespace) -> int:
    from edgekit.export.ship import ship

    dest, card = ship(
        args.bundle,
        args.out,
        args.run,
        args.training,
        args.teacher_run,
        args.made_by,
        args.note,
        args.name,
        args.command_line,
    )
    print(f"wrote {dest} and its card {card}")
    return 0


def cmd_export_dataset(args: argparse.Namespace) -> int:
    from edgekit.atomic import write_bytes
    from edgekit.export.hfdata import materialize, parse_columns
    from edgekit.tasks import task_of_recipe

    if args.out.exists() or args.out.is_symlink():
        raise InputError(args.out, "output file", "a new file; this one exists and is left alone")
    wanted = ".conll" if args.task == "tokens" else ".json"
    if args.out.suffix.lower() != wanted:
        raise InputError(
            args.out, "file name", f"a {wanted} file: a {args.task} dataset is written as the device reads it"
        )
    local = materialize(args.source, task_of_recipe(args.task), args.split, parse_columns(args.columns))
    write_bytes(args.out, local.read_bytes())
    print(f"wrote {args.out}: split {args.split!r} of {args.source} as the device reads it")
    return 0


def cmd_export_fuse(args: argparse.Namespace) -> int:
    from edgekit.bundle import load_bundle
    from edgekit.export.fuse import fuse_bundle

    check_destination(args.out, BUNDLE, [args.bundle])
    src = load_bundle(args.bundle)
    examples = _task_inputs(
        src.manifest.task, src.manifest.labels, args.validate_dataset, "--validate-dataset", dev_default(),
        "texts to check on",
    )  # fmt: skip
    unit = _unit(src.manifest.task)
    out, v = fuse_bundle(src, args.out, examples[: args.validate_n], args.name, args.atol)
    fused = ", ".join(f"{k} {n}" for k, n in out.manifest.source["fusion"]["fused"].items()) or "nothing"
    print(f"wrote {out.path}: fused {fused}")
    print(
        f"checked on {v.n_questions} {unit}: max |Δlogit| {v.max_abs_diff:.2e}, same answer {100 * v.answer_agreement:.0f}%"
    )
    return 0


def cmd_export_checkpoint(args: argparse.Namespace) -> int:
    from edgekit.export.from_bundle import save_checkpoint

    out = save_checkpoint(args.bundle, args.out, args.architecture)
    print(f"wrote {out}: the weights of {args.bundle} as a transformers checkpoint (fp32)")
    return 0


def cmd_export_prune_vocab(args: argparse.Namespace) -> int:
    from edgekit.bundle import load_bundle
    from edgekit.export.vocab import prune_bundle

    check_destination(args.out, BUNDLE, [args.bundle])
    src = load_bundle(args.bundle)
    corpus, examples = _vocab_corpus(src, args)
    name = args.name or f"{src.manifest.name}-vocab{args.keep}"
    out = prune_bundle(src, args.out, name, args.keep, examples, corpus, args.english_words)
    print(
        f"wrote {out.path}: {out.manifest.vocab_size} of {src.manifest.vocab_size} pieces, "
        f"{out.model_size_mb:.1f} MB model (was {src.model_size_mb:.1f} MB)"
    )
    return 0


def _local_input(path: Path, task: str, split: str | None) -> Path:
    """A file a flag names, as a local file: a ``packaged:`` excerpt's path, or a datasets source written out (the
    runs, hashes and records then name that file)."""
    from edgekit.export import hfdata
    from edgekit.squad import resolve_data_path

    if hfdata.is_datasets_source(path):
        return hfdata.materialize(str(path), task, split or "train")
    return resolve_data_path(str(path), path)


def _vocab_corpus(src: Any, args: argparse.Namespace) -> tuple[list[Path], list[Any]]:
    """The files ``--corpus`` names (a QA bundle's default: the SQuAD training subset) and their examples, which
    rank a vocabulary's pieces (``prune-vocab``, ``vocab-curve``)."""
    task = src.manifest.task
    if task == "text-classification":
        from edgekit.tasks.classification import load_texts

        if not args.corpus:
            raise EdgekitError("--corpus: a classifier's vocabulary is ranked on its own training data; name it")
        files = [_local_input(f, task, args.corpus_split) for f in args.corpus]
        split = args.corpus_split
        return files, [ex for f in files for ex in load_texts(f, split if f.suffix.lower() == ".json" else None)]
    from edgekit.squad import load_squad

    files = [_local_input(f, task, None) for f in args.corpus or [train_default()]]
    return files, [ex for f in files for ex in load_squad(f)]


def cmd_export_vocab_curve(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from edgekit.atomic import write_json, write_text
    from edgekit.bundle import load_bundle, sha256_file
    from edgekit.destination import VOCAB_CURVE, claim, locked
    from edgekit.export.hfdata import is_datasets_source
    from edgekit.export.vocab import CurveSettings, check_keep, curve_markdown, curve_plot, vocab_curve
    from edgekit.jsonfile import read_json

    src = load_bundle(args.bundle)
    m = src.manifest
    if m.task == "token-classification":
        raise InputError(args.bundle, "manifest task", "a QA or text-classification bundle (a tagger is not pruned)")
    if m.model_format != "onnx" or m.precision != "fp32":
        raise InputError(args.bundle, "manifest", f"an fp32 ONNX bundle (the curve quantizes it), got {m.precision}")
    tok_json = read_json(src.tokenizer_path, "tokenizer")
    for keep in args.keep:
        check_keep(tok_json, keep, src.tokenizer_path)
    corpus_files, corpus = _vocab_corpus(src, args)
    dataset = _local_input(args.dataset, m.task, args.split)
    split = None if is_datasets_source(args.dataset) else args.split  # a written split is the whole file
    dev = _task_inputs(m.task, m.labels, dataset, "--dataset", dev_default(), "evaluation set", split)
    settings = CurveSettings(
        tuple(args.keep), tuple(args.embedding_bits), args.english_words, args.limit, args.threads, split
    )
    identity = {
        "source_sha256": src.manifest.files[src.manifest.model_file].sha256,
        "corpus_sha256": [sha256_file(f) for f in corpus_files],
        "english_words": args.english_words,
    }
    out = claim(args.out, VOCAB_CURVE, [args.bundle])
    with locked(out):
        marker = out / "curve-settings.json"
        if marker.exists() or marker.is_symlink():
            before = read_json(marker, "curve settings", read_back=True)
            if not isinstance(before, dict) or before.get("identity") != identity:
                raise InputError(marker, "identity", "the same source bundle, corpus and English words to resume")
        write_json(marker, {"identity": identity, "settings": asdict(settings)})
        doc = vocab_curve(src, out, settings, corpus, corpus_files, dataset, dev, lambda s: print(s, flush=True))
        doc["command"] = args.command_line
        write_json(out / "vocab-curve.json", doc)
        write_text(out / "vocab-curve.md", curve_markdown(doc))
        curve_plot(doc, out / "vocab-curve.png")
    print(f"wrote {out / 'vocab-curve.json'}, vocab-curve.md and vocab-curve.png")
    return 0


def cmd_export_augment_questions(args: argparse.Namespace) -> int:
    from edgekit.export.augment import augment_questions

    path, done = augment_questions(
        args.train,
        args.neighbours_from,
        args.out,
        **_augment_settings(args, "question"),
    )
    print(f"wrote {path}: {done.written} question copies (name it in a recipe's data.extra_train)")
    return 0


def cmd_export_augment_texts(args: argparse.Namespace) -> int:
    from edgekit.export.augment import augment_texts

    path, done = augment_texts(
        args.train,
        args.split,
        args.neighbours_from,
        args.out,
        **_augment_settings(args, "text"),
    )
    print(f"wrote {path}: {done.written} text copies (name it in a classification recipe's data.extra_train)")
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    from edgekit.export.distill import main_args

    return main_args(args, args.command_line)


def cmd_report(args: argparse.Namespace) -> int:
    from edgekit.export.report import write_report

    report = write_report(
        args.results, args.out, args.baseline, command=args.command_line, budgets=args.budget, shot=args.screenshot
    )
    rows, devices = len(report["rows"]), len(report["devices"])
    print(
        f"{rows} row{'s' * (rows != 1)} from {devices} device{'s' * (devices != 1)} -> {args.out}/report.{{md,html,json}}"
    )
    if args.screenshot:
        print(f"screenshot: {args.out / 'report-screenshot.png'}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from edgekit.export.demo import run_demo

    run_demo(Path(args.out), threads=args.threads)
    return 0


def _add_bundle_step_io(e: argparse.ArgumentParser, suffix: str) -> None:
    """The source bundle, output directory and name of an export step that turns one fp32 ONNX bundle into another."""
    e.add_argument("bundle", type=Path, help="fp32 ONNX bundle")
    e.add_argument("out", type=Path, help="bundle directory to write")
    e.add_argument("--name", default=None, help=f"bundle name (default: source name + '{suffix}')")


def _add_corpus_flags(e: argparse.ArgumentParser) -> None:
    """The flags that choose the text a vocabulary is ranked on (``prune-vocab``, ``vocab-curve``)."""
    e.add_argument(
        "--corpus",
        type=Path,
        action="append",
        default=None,
        help="training text that ranks the pieces (repeatable): a QA bundle's SQuAD JSON (default: the training "
        "subset), a classifier's dataset (a TSV, or CLINC150 JSON's --corpus-split)",
    )
    e.add_argument(
        "--corpus-split",
        default="train",
        help="the split of a classification corpus file holding several (CLINC150; default: %(default)s)",
    )
    e.add_argument(
        "--english-words",
        type=whole(0, 10_000_000),
        default=100_000,
        help="wordfreq's most frequent English words mixed in, half the weight (0: training text only; "
        "default: %(default)s)",
    )


def _add_augment_flags(e: argparse.ArgumentParser, unit: str) -> None:
    """The copying flags ``augment-questions`` and ``augment-texts`` share; ``unit`` names what is copied."""
    e.add_argument(
        f"--{unit}s", type=whole(0, MAX_EXAMPLES), default=0, help=f"{unit}s to copy, a seeded sample (0: all; default)"
    )
    e.add_argument("--copies", type=whole(1, 1000), default=1, help=f"copies per {unit} (default: 1)")
    e.add_argument("--p-delete", type=real(0.0, 1.0), default=0.1, help="chance a word is dropped (default: 0.1)")
    e.add_argument("--p-replace", type=real(0.0, 1.0), default=0.2, help="chance a word is replaced (default: 0.2)")
    e.add_argument(
        "--neighbours", type=whole(1, 1000), default=5, help="replacements to choose from per word (default: 5)"
    )
    e.add_argument("--seed", type=whole(0, 2**32 - 1), default=0, help="random seed (default: 0)")


def _augment_settings(args: argparse.Namespace, unit: str) -> dict[str, Any]:
    """The :class:`export.augment.Augmentation` settings the flags of :func:`_add_augment_flags` give."""
    keys = ("copies", "p_delete", "p_replace", "neighbours", "seed")
    return {"questions": getattr(args, f"{unit}s"), **{k: getattr(args, k) for k in keys}}


def _add_check_args(e: argparse.ArgumentParser, against: str, skippable: bool = False) -> None:
    """How an export step checks its output's logits against what it was made from (same flags for every step)."""
    skip = "0: skip; " if skippable else ""
    e.add_argument(
        "--atol", type=real(0.0, 1e6), default=1e-3, help=f"max |Δlogit| vs {against} (default: %(default)s)"
    )
    e.add_argument(
        "--validate-dataset",
        type=Path,
        default=dev_default(),
        help="inputs for the check: SQuAD questions (default: the dev set), a classifier's .tsv or CLINC150 .json",
    )
    e.add_argument(
        "--validate-n",
        type=whole(0, MAX_EXAMPLES),
        default=8,
        help=f"questions to check on ({skip}default: %(default)s)",
    )


def _add_model_args(e: argparse.ArgumentParser, out: str, name: str, max_seq_len: str) -> None:
    """What a conversion from a transformers model reads: the model, where to write, names and window settings."""
    e.add_argument("model", help="model directory, hub name, or packaged:all-MiniLM-L6-v2")
    e.add_argument("out", type=Path, help=out)
    e.add_argument("--name", default=None, help=name)
    e.add_argument("--max-seq-len", type=whole(8, 65_536), default=384, help=f"{max_seq_len} (default: %(default)s)")
    e.add_argument(
        "--doc-stride", type=whole(1, 65_536), default=128, help="context tokens shared by consecutive windows"
    )


def add_export(sub: argparse._SubParsersAction) -> None:
    quiet_third_party()  # chosen from the command line: before torch and transformers load
    p = sub.add_parser(
        "export",
        help="convert a model to an edge bundle (needs the export extra)",
        description="Workstation export: with --recipe, the whole chain (distill -> ONNX -> INT8 -> TFLite -> "
        "bundles -> quick dev check -> summary table), skipping steps whose outputs are valid; or one STEP.",
    )
    add_recipe_arguments(p, omitted="give a STEP instead")
    p.add_argument(
        "--check-questions",
        type=whole(1, MAX_EXAMPLES),
        default=100,
        help="dev questions for the quick check (default: 100)",
    )
    p.add_argument("--no-tflite", action="store_true", help="skip the TFLite bundles")
    p.add_argument(
        "--fuse", action="store_true", help="also fused ONNX bundles (fp32 and int8) from ONNX Runtime's optimizer"
    )
    p.add_argument(
        "--dynamic",
        action="append",
        default=[],
        choices=["quint8", "full-range"],
        help="also this dynamic int8 form: quint8 weights, or 8-bit weights (repeatable)",
    )
    p.add_argument(
        "--static",
        action="append",
        default=[],
        choices=STATIC_METHODS,
        help="also a static (QDQ) int8 ONNX bundle calibrated this way on training windows (repeatable; nncf: "
        "NNCF's quantizer, for OpenVINO)",
    )
    p.set_defaults(func=cmd_export, resumes=True)  # a recipe skips the steps it finished
    esub = p.add_subparsers(dest="export_command", required=False, metavar="STEP")
    e = esub.add_parser(
        "onnx",
        help="transformers model (QA, text or token classifier) -> fp32 ONNX bundle, validated against PyTorch",
        description="Export a local transformers checkpoint, a hub name, or 'packaged:all-MiniLM-L6-v2' to an fp32 "
        "ONNX bundle with the head its config names (a QA head, freshly initialised for a bare encoder; a text or "
        "token classifier over its id2label).",
    )
    _add_model_args(
        e,
        "bundle directory to write",
        "bundle name (default: the directory name)",
        "tokens per window, fixed in the graph",
    )
    e.add_argument(
        "--opset",
        type=int,
        default=17,
        choices=range(14, 21),
        metavar="{14..20}",
        help="ONNX opset of the exported graph (default: %(default)s)",
    )
    _add_check_args(e, "PyTorch", skippable=True)
    e.set_defaults(func=cmd_export_onnx)

    e = esub.add_parser(
        "tflite",
        help="transformers model -> fp32 and int8 TFLite bundles, a signature per window length (tflite extra)",
        description="Convert a local transformers checkpoint, a hub name, or 'packaged:all-MiniLM-L6-v2' with "
        "litert-torch to OUT/NAME-fp32-tflite, one signature per window length (the device pads a window to the "
        "shortest that holds it), and quantize that with ai-edge-quantizer's dynamic-range int8 recipe to "
        "OUT/NAME-int8-tflite; the fp32 bundle's logits are checked against PyTorch, the int8 one's reported.",
    )
    _add_model_args(
        e,
        "directory to write the bundles into",
        "the bundles' names begin with this (default: the model's name)",
        "longest window, in tokens",
    )
    e.add_argument(
        "--lengths",
        type=whole(8, 65_536),
        nargs="+",
        default=None,
        help="window lengths to give a signature (--max-seq-len is always one; default: 64 128 256 below it)",
    )
    e.add_argument("--no-int8", action="store_true", help="the fp32 bundle only")
    _add_check_args(e, "PyTorch", skippable=True)
    e.set_defaults(func=cmd_export_tflite)

    e = esub.add_parser(
        "fuse",
        help="fp32 ONNX bundle -> fused fp32 ONNX bundle (ONNX Runtime transformer optimizer)",
        description="Rewrite attention, layer norm and GELU subgraphs into ONNX Runtime's fused operators; "
        "checked against the source bundle's logits. Quantize the result with 'edgekit export int8'.",
    )
    _add_bundle_step_io(e, "-fused")
    _add_check_args(e, "the source bundle")
    e.set_defaults(func=cmd_export_fuse)

    e = esub.add_parser(
        "checkpoint",
        help="ONNX bundle -> transformers checkpoint of its weights (int8 ones dequantized)",
        description="Write a transformers checkpoint (safetensors, config, tokenizer) holding an fp32 or int8 ONNX "
        "bundle's weights, int8 ones dequantized: to run a shipped model with other tools (the transformers "
        "pipeline, Optimum) or train it further. The architecture is the model the bundle was exported from.",
    )
    e.add_argument("bundle", type=Path, help="fp32 or dynamic int8 ONNX bundle (not fused, full vocabulary)")
    e.add_argument("out", type=Path, help="checkpoint directory to write")
    e.add_argument(
        "--architecture",
        default=None,
        help="the model the bundle was exported from (default: its manifest's source.model), e.g. "
        "packaged:all-MiniLM-L6-v2",
    )
    e.set_defaults(func=cmd_export_checkpoint)

    e = esub.add_parser(
        "int8",
        help="fp32 ONNX bundle -> INT8 ONNX bundle (ONNX Runtime quantization)",
        description="Quantize an fp32 ONNX bundle to int8: dynamic (weights int8; the default, fastest and "
        "most accurate here) or static with calibration on real training windows.",
    )
    _add_bundle_step_io(e, "-int8")
    e.add_argument("--weight-type", choices=["qint8", "quint8"], default="qint8", help="weight integer type")
    e.add_argument("--per-tensor", action="store_true", help="one scale per tensor instead of per channel")
    e.add_argument(
        "--full-range",
        action="store_true",
        help="8-bit weights (dynamic only; default 7-bit): for ARM and VNNI CPUs only, x86 CPUs without VNNI "
        "saturate int16 sums with them",
    )
    e.add_argument(
        "--keep-fp32",
        action="append",
        default=[],
        metavar="NODE",
        help="ONNX node name to leave in fp32 (repeatable), e.g. /model/qa_outputs/MatMul",
    )
    e.add_argument(
        "--embedding-bits",
        type=int,
        choices=[8, 4],
        default=8,
        help="4: the word embedding in 4-bit blocks (the encoder stays int8), for a size budget (default: 8)",
    )
    e.add_argument(
        "--static",
        choices=STATIC_METHODS,
        default=None,
        help="static (QDQ) quantization instead of dynamic: ONNX Runtime's with this calibration, or nncf: "
        "NNCF's quantizer for transformers (SmoothQuant, bias correction), whose graph OpenVINO runs in int8 "
        "(edgekit run --backend openvino)",
    )
    e.add_argument(
        "--calibration-data",
        type=Path,
        default=train_default(),
        help="training inputs that calibrate static quantization: SQuAD JSON (default: %(default)s), or for a "
        "classifier its TSV or CLINC150 JSON (the train split); or a datasets source (hf:NAME, .jsonl, .csv, "
        ".parquet: its train split)",
    )
    e.add_argument(
        "--calibration-windows", type=whole(1, 1_000_000), default=64, help="windows to calibrate on (default: 64)"
    )
    e.set_defaults(func=cmd_export_int8)

    e = esub.add_parser(
        "float-activations",
        help="dynamic INT8 ONNX bundle -> the same with unrounded activations into chosen MatMuls",
        description="Keep the int8 weights (the file keeps its size) and feed the chosen MatMul groups float "
        "activations instead of per-call int8 ones: for the products whose rounding costs the answers "
        "(edgekit export int8-sensitivity ranks them). A group is a role in every layer, e.g. "
        "output/dense, or a layer, e.g. layer.3, or all (int8 weights only: nothing rounds activations, so "
        "8-bit weights, --full-range, are safe on any CPU); an unknown group lists the bundle's groups.",
    )
    e.add_argument("bundle", type=Path, help="dynamic int8 ONNX bundle")
    e.add_argument("out", type=Path, help="bundle directory to write")
    e.add_argument("--name", default=None, help="bundle name (default: source name + '-float-act')")
    e.add_argument(
        "--group",
        action="append",
        required=True,
        metavar="GROUP",
        help="MatMul group to give float activations (repeatable)",
    )
    e.set_defaults(func=cmd_export_float_activations)

    e = esub.add_parser(
        "dataset",
        help="a datasets name or json/jsonl/csv/tsv/parquet file -> one split as the device reads it",
        description="Read one split of a Hugging Face datasets source (hf:NAME or hf:NAME:CONFIG: downloaded by the "
        "datasets library, or with HF_HUB_OFFLINE=1 read from its local cache) or a local "
        ".json/.jsonl/.csv/.tsv/.parquet file through the datasets library, map its columns to the task's, check the "
        "rows as the device would, and write them as the device reads them: SQuAD v1.1 JSON for QA, a JSON of "
        "[text, label] pairs under the split's name for classification, CoNLL word<TAB>tag lines for tokens (edgekit "
        "run --dataset OUT). The datasets "
        "library keeps its own cache, and edgekit a copy under $EDGEKIT_CACHE/datasets (~/.cache/edgekit). Recipes "
        "(data.train, data.dev, data.columns) and --calibration-data take such sources directly.",
    )
    e.add_argument("source", help="hf:NAME[:CONFIG], or a local .json/.jsonl/.csv/.tsv/.parquet file")
    e.add_argument("out", type=Path, help="file to write (a new one): .json, or .conll for --task tokens")
    e.add_argument("--task", choices=["qa", "classification", "tokens"], required=True, help="the task the data is for")
    e.add_argument(
        "--split",
        default="train",
        help="split to read; a local file is one split, written under this name (default: %(default)s)",
    )
    e.add_argument(
        "--columns",
        action="append",
        metavar="TASK_COLUMN=DATA_COLUMN",
        help="where the data's column names differ: text=sentence, label=..., or id/question/context/answers "
        "(repeatable or comma-separated)",
    )
    e.set_defaults(func=cmd_export_dataset)

    e = esub.add_parser(
        "int8-sensitivity",
        help="dynamic INT8 QA bundle -> which MatMul groups' rounded activations cost the answers",
        description="Measure, on training windows, how far each MatMul group's rounded activations move the "
        "start/end distributions from a reference that rounds weights only, alone and cumulatively (most harmful "
        "first); writes sensitivity.json. edgekit export float-activations then keeps the harmful groups in float.",
    )
    from edgekit.export import sensitivity

    sensitivity.add_arguments(e)
    e.add_argument("out", type=Path, help="directory to write sensitivity.json into")
    e.set_defaults(func=cmd_export_int8_sensitivity)

    e = esub.add_parser(
        "vocab-curve",
        help="fp32 ONNX bundle -> score and size of its int8 form at each vocabulary size",
        description="For each --keep size: prune the vocabulary (as prune-vocab does), quantize to dynamic int8 "
        "(as int8 does, at each --embedding-bits width) and run the task's evaluation set in a process of its "
        "own; the full vocabulary's int8 form is the baseline, in the same run. Writes vocab-curve.json, .md and "
        ".png in OUT, with the bundles and runs it made; a stopped curve resumes from them.",
    )
    e.add_argument("bundle", type=Path, help="fp32 ONNX bundle of a trained QA student or text classifier")
    e.add_argument("out", type=Path, help="directory for the curve, its bundles and runs")
    e.add_argument("--keep", type=whole(1, 10_000_000), nargs="+", required=True, help="vocabulary sizes to measure")
    e.add_argument(
        "--embedding-bits",
        type=int,
        nargs="+",
        choices=[8, 4],
        default=[8],
        help="word-embedding widths to measure (default: 8)",
    )
    _add_corpus_flags(e)
    e.add_argument(
        "--dataset",
        type=Path,
        default=dev_default(),
        help="evaluation set: SQuAD JSON (default: the dev set), a classifier's .tsv or CLINC150 .json",
    )
    e.add_argument("--split", default=None, help="the evaluation file's split, for a file holding several (CLINC150)")
    e.add_argument("--limit", type=whole(1, MAX_EXAMPLES), default=None, help="first N examples (default: all)")
    e.add_argument("--threads", type=whole(1, 1024), default=None, help="runner threads (default: the runtime's)")
    e.set_defaults(func=cmd_export_vocab_curve)

    e = esub.add_parser(
        "ship",
        help="trained bundle -> a verified copy in a models directory with its model card",
        description="Copy a verified bundle to OUT/NAME and write OUT/NAME.md, its model card: what the bundle is "
        "(its manifest), how it was trained (the distill result.json), its scores and latency from an edgekit run "
        "of this very model file beside the teacher's run on the same examples, and the commands that made it. "
        "A bundle already in OUT is carded again in place.",
    )
    from edgekit.export import ship

    ship.add_arguments(e)
    e.set_defaults(func=cmd_export_ship)

    e = esub.add_parser(
        "prune-vocab",
        help="fp32 ONNX bundle -> the same with a smaller WordPiece vocabulary and embedding table",
        description="Keep the special, added and single-character pieces (so every word still tokenizes) and "
        "the pieces most frequent in training text mixed with general English (wordfreq), never evaluation "
        "text; the embedding rows and tokenizer.json are renumbered together. Quantize the result afterwards.",
    )
    _add_bundle_step_io(e, "-vocabKEEP")
    e.add_argument("--keep", type=whole(1, 10_000_000), required=True, help="pieces to keep in all")
    _add_corpus_flags(e)
    e.set_defaults(func=cmd_export_prune_vocab)

    e = esub.add_parser(
        "augment-questions",
        help="SQuAD training file -> copies of its questions with words dropped or replaced, for the teacher to label",
        description="Write OUT/questions.json (SQuAD v1.1: the copies alone, contexts and gold spans unchanged) and "
        "OUT/augment.json (how). Each word of a copy is dropped (--p-delete) or replaced by a near word in a "
        "bundle's word-embedding table (--p-replace); question words and answer words stay. Name the file in a "
        "recipe's data.extra_train: distillation adds the teacher's answers to these inputs to its training data.",
    )
    e.add_argument("neighbours_from", type=Path, help="ONNX bundle whose word embeddings rank replacements")
    e.add_argument("out", type=Path, help="directory to write")
    e.add_argument(
        "--train",
        type=Path,
        default=train_default(),
        help="SQuAD JSON of the questions to copy (default: the training subset)",
    )
    _add_augment_flags(e, "question")
    e.set_defaults(func=cmd_export_augment_questions)

    e = esub.add_parser(
        "augment-texts",
        help="classification dataset -> copies of its texts with words dropped or replaced, for the teacher to label",
        description="Write OUT/texts.tsv (the copies alone: sentence and the source text's label) and OUT/augment.json "
        "(how). Each word of a copy is dropped (--p-delete) or replaced by a near word in a bundle's word-embedding "
        "table (--p-replace). Name the file in a classification recipe's data.extra_train: distillation teaches the "
        "copies with the teacher's logits alone (a replaced word can change the label), as TinyBERT's augmentation.",
    )
    e.add_argument("neighbours_from", type=Path, help="ONNX bundle whose word embeddings rank replacements")
    e.add_argument("out", type=Path, help="directory to write")
    e.add_argument("--train", type=Path, required=True, help="the texts to copy: a .tsv, or CLINC150's .json")
    e.add_argument("--split", default=None, help="the split of a file that holds several (CLINC150: train, val, test)")
    _add_augment_flags(e, "text")
    e.set_defaults(func=cmd_export_augment_texts)

    e = esub.add_parser(
        "int4",
        help="fp32 ONNX bundle -> 4-bit-weight ONNX bundle (ONNX Runtime MatMulNBits)",
        description="Quantize an fp32 ONNX bundle's MatMul weights and word embeddings to 4 bits in blocks, one "
        "fp32 scale per block: for students whose int8 form is over a size budget.",
    )
    _add_bundle_step_io(e, "-int4")
    e.add_argument(
        "--block-size", type=whole(16, 1024), default=32, help="weights per scale (power of two; default: 32)"
    )
    e.add_argument("--keep-embeddings", action="store_true", help="leave the embedding tables in fp32")
    e.set_defaults(func=cmd_export_int4)
    for name, step in esub.choices.items():  # one step makes its output whole; the vocabulary curve grows
        step.set_defaults(resumes=name == "vocab-curve")
    p.set_defaults(steps=list(esub.choices))  # named in the error when neither a step nor --recipe is given


def add_distill(sub: argparse._SubParsersAction) -> None:
    quiet_third_party()  # chosen from the command line: before torch and transformers load
    from edgekit.export.distill import add_distill_arguments

    p = sub.add_parser(
        "distill",
        help="distill (or fine-tune) a student from a recipe (needs the export extra)",
        description="Train a student with task-specific KD from a teacher, as a recipe says; "
        "re-running resumes from the last checkpoint. Shipped recipes (--recipe NAME), " + shipped_recipes() + ".",
    )
    add_distill_arguments(p)
    p.set_defaults(func=cmd_distill, resumes=True)


def add_report(sub: argparse._SubParsersAction) -> None:
    quiet_third_party()  # chosen from the command line: before torch and transformers load
    p = sub.add_parser(
        "report",
        help="teacher-vs-students table and plots from metrics.json files (any bundles, any devices)",
        description="Merge runner metrics.json files (or run directories) from any bundles and devices, plus an "
        "optional compress.json for reference sizes, into report.md, a self-contained report.html, report.json and "
        "PNG plots (sizes, score vs latency and score vs size with their Pareto fronts, latency distribution per "
        "device); with --budget, the most accurate form within each model-size budget.",
    )
    p.add_argument("results", nargs="+", type=Path, help="metrics.json files, run directories, or compress.json")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument(
        "--baseline",
        default=None,
        help="bundle name the speedups are against (default: the largest model file on each device)",
    )
    p.add_argument(
        "--budget",
        type=real(0.001, 1e6),
        action="append",
        default=[],
        metavar="MB",
        help="a model-size budget in MB (repeatable): the report names the most accurate form within it, per "
        "device, and draws it on the score-vs-size plot",
    )
    p.add_argument("--screenshot", action="store_true", help="also render report.html in headless Chromium to a PNG")
    p.set_defaults(func=cmd_report)


def cmd_fit(args: argparse.Namespace) -> int:
    from edgekit.bundle import load_bundle
    from edgekit.export.fit import Budget, Device, FitSettings, VocabSource, fit, is_checkpoint, parse_duration

    if args.device != "local":
        from edgekit.device_runners.deploy import parse_target

        parse_target(args.device)  # a bad target is refused before any bundle is built
    if not args.students and not args.train_recipes:
        raise EdgekitError("expected starting students, --train-recipes, or both")
    vocab = None
    if args.vocab_keep:
        bundles = [s for s in args.students if not is_checkpoint(str(s))]
        if not bundles:
            raise EdgekitError("--vocab-keep: expected a starting bundle whose task picks the corpus's reader")
        split = args.corpus_split if any(f.suffix.lower() == ".json" for f in args.corpus or []) else None
        files, examples = _vocab_corpus(load_bundle(bundles[0]), args)
        vocab = VocabSource(tuple(files), tuple(examples), args.english_words, split)
    settings = FitSettings(
        starts=tuple(str(s) for s in args.students),
        eval=str(args.eval),
        budget=Budget(args.max_mb, args.max_p50_ms, args.min_score, args.min_share),
        device=args.device,
        backends=tuple(args.backends) if args.backends else None,
        threads=tuple(args.threads) if args.threads else (None,),
        rungs=tuple(args.rungs),
        seed=args.seed,
        split=args.split,
        exhaustive=args.exhaustive,
        teacher=str(args.teacher) if args.teacher else None,
        vocab_keep=tuple(args.vocab_keep),
        train_recipes=tuple(args.train_recipes),
    )
    device = Device(
        args.device, args.identity, tuple(args.ssh_option), args.user, args.remote_dir, args.remote_python, args.warmup
    )
    budget_s = parse_duration(args.time_budget) if args.time_budget else None
    doc = fit(settings, args.out, device, budget_s, args.command_line, vocab=vocab)
    cost = doc["cost"]
    said = doc["chosen"] or f"none meets every bound; nearest {doc['nearest']} ({', '.join(doc['missing'])})"
    print(
        f"chosen: {said}; measured on all: {cost['measured_on_all']} of {cost['within_size']} candidates within "
        f"the size bound -> {args.out}/fit.md"
    )
    return 0


def add_fit(sub: argparse._SubParsersAction) -> None:
    from edgekit.device_runners.cli import add_device_args

    quiet_third_party()  # chosen from the command line: before torch and transformers load
    p = sub.add_parser(
        "fit",
        help="the most accurate student form that fits a size and latency budget, measured on the device",
        description="Search the post-training forms of the given student bundles and checkpoints (of an fp32 one: "
        "int8 with 7/8-bit weights, with 4-bit embeddings, int4, and with --vocab-keep its pruned vocabularies; of an "
        "int8 one: float activations), runtimes and thread counts for the most accurate one within --max-mb, "
        "--max-p50-ms and the score floors, measured by the runner on the device on growing samples of --eval (the "
        "--teacher too, on the same examples); candidates are dropped only when a paired bootstrap shows with 95% "
        "confidence that they cannot win. Writes fit.json (every candidate and measurement, the commands), fit.md, "
        "fit.png and report/; run again into the same --out to resume, or with another budget, more students, "
        "runtimes or threads to reuse what it measured on the same device.",
    )
    p.add_argument(
        "students",
        nargs="*",
        type=Path,
        help="starting bundles (edgekit export onnx, models/...) and transformers checkpoints (directories with a "
        "config.json), the latter exported into OUT/exported (fp32 ONNX; fp32 and int8 TFLite with the tflite "
        "extra) and searched after the bundles",
    )
    p.add_argument(
        "--train-recipes",
        nargs="+",
        default=[],
        help="distillation recipes (files or shipped names) to train into OUT/trained within --time-budget, each "
        "student then a start after the given ones (a run cut short resumes from its checkpoint on the next fit)",
    )
    p.add_argument("--eval", type=Path, required=True, help="the task's evaluation set, as edgekit run reads it")
    p.add_argument("--split", default=None, help="the split of a file holding several (CLINC150 JSON)")
    p.add_argument("--max-mb", type=real(0.1, 1e6), required=True, help="bound on the model file size in MB")
    p.add_argument("--max-p50-ms", type=real(0.001, 3.6e6), default=None, help="bound on the median latency")
    p.add_argument("--min-score", type=real(0.0, 100.0), default=None, help="floor on the task's headline score")
    p.add_argument(
        "--teacher", type=Path, default=None, help="the teacher's bundle: measured on the same examples, the reference"
    )
    p.add_argument(
        "--min-share",
        type=real(0.0, 2.0),
        default=None,
        help="floor on the score as a share of the --teacher's on the same examples (0.9: 90%%)",
    )
    p.add_argument(
        "--vocab-keep",
        type=whole(1, 10_000_000),
        nargs="+",
        default=[],
        help="vocabulary sizes to prune an fp32 student to, each then int8 with 8- and 4-bit embeddings",
    )
    _add_corpus_flags(p)
    p.add_argument("--device", default="local", help="local (this machine), ssh://[user@]host[:port] or adb[:SERIAL]")
    add_device_args(p)
    p.add_argument(
        "--backends", nargs="+", default=None, help="runtimes to try (default: every one of each bundle's format)"
    )
    p.add_argument(
        "--threads",
        type=whole(1, 10_000),
        nargs="+",
        default=None,
        help="thread counts to try (default: the runtime's)",
    )
    p.add_argument(
        "--rungs",
        type=whole(1, MAX_EXAMPLES),
        nargs="+",
        default=[200, 1000],
        help="examples of the growing samples before the whole set (default: %(default)s)",
    )
    p.add_argument("--seed", type=whole(0, 2**32 - 1), default=0, help="seed of the evaluation order (default: 0)")
    p.add_argument("--warmup", type=whole(0, 10_000), default=3, help="untimed warm-up runs per measurement")
    p.add_argument(
        "--time-budget",
        default=None,
        help="training stops at a checkpoint, and no measurement starts, after this long (600s, 45m, 3h)",
    )
    p.add_argument("--exhaustive", action="store_true", help="measure every candidate within the size on all")
    p.add_argument("--out", type=Path, required=True, help="output directory (resumed when it holds this fit)")
    p.set_defaults(func=cmd_fit, resumes=True)


def add_demo(sub: argparse._SubParsersAction) -> None:
    quiet_third_party()  # chosen from the command line: before torch and transformers load
    p = sub.add_parser(
        "demo",
        help="the offline demo: packaged weights and data through the whole export chain",
        description="Fine-tune the packaged MiniLM on the shipped train excerpt, export ONNX fp32/int8 (and TFLite "
        "with the tflite extra), check every bundle on the shipped dev excerpt, print the table. Offline.",
    )
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="output directory (default: %(default)s)")
    p.add_argument(
        "--threads", type=whole(1, 10_000), default=None, help="threads for training and the runner (default: all)"
    )
    p.set_defaults(func=cmd_demo, resumes=True)
