"""The ``edgekit`` command: thin argparse wrappers over library functions.

User errors (:class:`EdgekitError`) print one line and exit 2; ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from edgekit import __version__
from edgekit.errors import EdgekitError
from edgekit.squad import default_data_dir


def _dev_default() -> Path:
    return default_data_dir() / "dev-v1.1.json"


def cmd_score(args: argparse.Namespace) -> int:
    from edgekit.metric import evaluate, load_predictions
    from edgekit.squad import load_squad

    score = evaluate(load_squad(args.dataset), load_predictions(args.predictions))
    for qid in score.unanswered:
        print(f"Unanswered question {qid} will receive score 0.", file=sys.stderr)
    for qid in score.unknown:
        print(f"Prediction for unknown question id {qid} ignored.", file=sys.stderr)
    print(json.dumps(score.as_official()))
    return 0


def _runtime_options(args: argparse.Namespace):
    from edgekit.backends import RuntimeOptions

    return RuntimeOptions(threads=args.threads, low_memory=args.low_memory)


def cmd_run(args: argparse.Namespace) -> int:
    from edgekit.runner import RunConfig, run

    config = RunConfig(
        limit=args.limit,
        warmup=args.warmup,
        n_best=args.n_best,
        runtime=_runtime_options(args),
        progress=not args.no_progress,
    )
    m = run(args.bundle, args.dataset, args.out, config, argv=args.command_line)
    lat = m["latency_ms"]
    print(
        f"{m['bundle']['name']}: EM {m['exact_match']:.2f}  F1 {m['f1']:.2f}  on {m['n_questions']} questions | "
        f"p50 {lat['p50']:.1f} ms  p90 {lat['p90']:.1f} ms  {m['throughput_qps']:.2f} q/s | "
        f"cold start {m['cold_start_ms']:.0f} ms | peak RSS {m['peak_rss_mb']:.0f} MB"
    )
    print(f"wrote {Path(args.out) / 'metrics.json'}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from edgekit.bundle import load_bundle

    bundle = load_bundle(args.bundle)
    print(json.dumps(bundle.summary(), indent=2))
    print(f"{args.bundle}: OK, {len(bundle.manifest.files)} files verified")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    if args.recipe is None:
        raise EdgekitError("edgekit export: give a STEP (onnx, fuse, int8) or --recipe RECIPE for the whole chain")
    from export.pipeline import Variants, export_all, markdown
    from export.recipes import load_recipe

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
    from edgekit.squad import load_squad
    from export.models import load_qa
    from export.to_onnx import onnx_bundle, validate

    qa = load_qa(args.model)
    if qa.fresh_head:
        print(
            f"note: {args.model} has no QA head; exporting with a freshly initialised one (answers are untrained)",
            file=sys.stderr,
        )
    name = args.name or Path(args.out).name
    bundle = onnx_bundle(qa, args.out, name, args.max_seq_len, args.doc_stride, args.opset)
    print(f"wrote {bundle.path} ({bundle.size_mb:.1f} MB)")
    if args.validate_n > 0:
        examples = load_squad(args.validate_dataset)[: args.validate_n]
        v = validate(qa, bundle, examples, args.atol)
        print(
            f"validation on {v.n_questions} questions ({v.n_windows} windows): max |Δlogit| {v.max_abs_diff:.2e} "
            f"(atol {v.atol:.0e}), same answer {100 * v.answer_agreement:.1f}%"
        )
        if not v.ok:
            raise EdgekitError(
                f"{bundle.path}: ONNX logits differ from PyTorch by {v.max_abs_diff:.3g} > atol {v.atol}"
            )
    return 0


def cmd_export_int8(args: argparse.Namespace) -> int:
    from edgekit.bundle import load_bundle
    from export import quantize

    src = load_bundle(args.bundle)
    per_channel = not args.per_tensor
    if args.static is None:
        settings = quantize.DynamicInt8(
            weight_type=args.weight_type,
            per_channel=per_channel,
            reduce_range=not args.full_range,
            nodes_to_exclude=tuple(args.keep_fp32),
        )
        out = quantize.quantize_dynamic_bundle(src, args.out, args.name, settings)
    else:
        from edgekit.squad import load_squad

        reader = quantize.WindowReader(src, load_squad(args.calibration_data), args.calibration_windows)
        static = quantize.StaticInt8(
            calibration=args.static,
            calibration_data=quantize.windows_of(reader.n, Path(args.calibration_data)),
            per_channel=per_channel,
            nodes_to_exclude=tuple(args.keep_fp32),
        )
        out = quantize.quantize_static_bundle(src, args.out, reader, args.name, static)
    print(f"wrote {out.path}: {out.model_size_mb:.1f} MB model (fp32 {src.model_size_mb:.1f} MB)")
    return 0


def cmd_export_int4(args: argparse.Namespace) -> int:
    from edgekit.bundle import load_bundle
    from export import quantize

    src = load_bundle(args.bundle)
    settings = quantize.Int4Weights(block_size=args.block_size, embeddings=not args.keep_embeddings)
    out = quantize.quantize_int4_bundle(src, args.out, args.name, settings)
    print(f"wrote {out.path}: {out.model_size_mb:.1f} MB model (fp32 {src.model_size_mb:.1f} MB)")
    return 0


def cmd_export_fuse(args: argparse.Namespace) -> int:
    from edgekit.bundle import load_bundle
    from edgekit.squad import load_squad
    from export.fuse import fuse_bundle

    src = load_bundle(args.bundle)
    examples = load_squad(args.validate_dataset)[: args.validate_n]
    out, v = fuse_bundle(src, args.out, examples, args.name, args.atol)
    fused = ", ".join(f"{k} {n}" for k, n in out.manifest.source["fusion"]["fused"].items()) or "nothing"
    print(f"wrote {out.path}: fused {fused}")
    print(
        f"checked on {v.n_questions} questions: max |Δlogit| {v.max_abs_diff:.2e}, same answer {100 * v.answer_agreement:.0f}%"
    )
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    from export.distill import main_args

    return main_args(args, args.command_line)


def add_recipe_arguments(p: argparse.ArgumentParser) -> None:
    """--recipe and --set, shared by every command that reads a recipe."""
    p.add_argument("--recipe", type=Path, default=None, help="recipe TOML (export/recipes/*.toml); defaults if omitted")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe value, e.g. --set training.epochs=1 (repeatable)",
    )


def _add_bundle_step_io(e: argparse.ArgumentParser, suffix: str) -> None:
    """The source bundle, output directory and name of an export step that turns one fp32 ONNX bundle into another."""
    e.add_argument("bundle", type=Path, help="fp32 ONNX bundle")
    e.add_argument("out", type=Path, help="bundle directory to write")
    e.add_argument("--name", default=None, help=f"bundle name (default: source name + '{suffix}')")


def _add_check_args(e: argparse.ArgumentParser, against: str, skippable: bool = False) -> None:
    """How an export step checks its output's logits against what it was made from (same flags for every step)."""
    skip = "0: skip; " if skippable else ""
    e.add_argument("--atol", type=float, default=1e-3, help=f"max |Δlogit| vs {against} (default: %(default)s)")
    e.add_argument("--validate-dataset", type=Path, default=_dev_default(), help="questions for the check")
    e.add_argument("--validate-n", type=int, default=8, help=f"questions to check on ({skip}default: %(default)s)")


def add_distill_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``edgekit distill`` and ``python -m export.distill`` (one definition for both)."""
    add_recipe_arguments(p)
    p.add_argument("--no-eval", action="store_true", help="skip the dev evaluation after training")
    p.add_argument(
        "--from-checkpoint",
        type=Path,
        default=None,
        metavar="DIR",
        help="no training: write and evaluate the student saved in this Trainer checkpoint (e.g. of a run still going)",
    )
    p.add_argument(
        "--eval-only",
        action="store_true",
        help="no training: evaluate the student the recipe's output already holds (written with --no-eval)",
    )


def cmd_deploy(args: argparse.Namespace) -> int:
    from device_runners.deploy import DeployConfig, deploy, target_for

    target = target_for(args.target, args.identity, args.ssh_option, args.user)
    config = DeployConfig(
        limit=args.limit,
        threads=args.threads,
        low_memory=args.low_memory,
        warmup=args.warmup,
        remote_dir=args.remote_dir,
        remote_python=args.remote_python,
        fresh=args.fresh,
    )
    report = deploy(target, args.bundle, args.dataset, args.out, config)
    print(f"{report.target}: pushed {len(report.pushed)} files, skipped {len(report.skipped)}; results in {args.out}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from edgekit.report import screenshot, write_report

    report = write_report(args.results, args.out, args.baseline, command=args.command_line)
    print(f"{len(report['rows'])} rows from {len(report['devices'])} devices -> {args.out}/report.{{md,html,json}}")
    if args.screenshot:
        print(f"screenshot: {screenshot(args.out / 'report.html', args.out / 'report-screenshot.png')}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from export.demo import run_demo

    run_demo(Path(args.out), threads=args.threads)
    return 0


def _add_runtime_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (default: runtime's choice)")
    p.add_argument("--low-memory", action="store_true", help="turn the runtime's memory arena off (smaller peak RSS)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgekit", description="Distill, export and measure extractive-QA models for edge devices."
    )
    parser.add_argument("--version", action="version", version=f"edgekit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "score",
        help="official SQuAD v1.1 EM/F1 of a predictions file",
        description="Score predictions (JSON id -> answer) exactly as the official evaluate-v1.1.py does.",
    )
    p.add_argument("--dataset", type=Path, default=_dev_default(), help="SQuAD v1.1 JSON (default: %(default)s)")
    p.add_argument("--predictions", type=Path, required=True, help="predictions JSON: {question id: answer text}")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser(
        "run",
        help="answer SQuAD questions with a bundle; write predictions and metrics",
        description="Run a bundle on a SQuAD file and measure EM/F1, latency, throughput and memory. "
        "Re-running with the same --out resumes an interrupted run.",
    )
    p.add_argument("bundle", type=Path, help="edge bundle directory")
    p.add_argument(
        "--dataset",
        type=Path,
        default=_dev_default(),
        help="SQuAD v1.1 JSON (default: %(default)s; set EDGEKIT_SQUAD_DIR to move it)",
    )
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--limit", type=int, default=None, help="only the first N questions")
    p.add_argument("--warmup", type=int, default=3, help="untimed warm-up runs before measuring (default: 3)")
    p.add_argument("--n-best", type=int, default=20, help="start/end candidates per window (default: 20)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_runtime_args(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "verify",
        help="check a bundle's files against its manifest",
        description="Verify every file hash and the manifest of an edge bundle.",
    )
    p.add_argument("bundle", type=Path)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser(
        "export",
        help="convert a model to an edge bundle (needs the export extra)",
        description="Workstation export: with --recipe, the whole chain (distill -> ONNX -> INT8 -> TFLite -> "
        "bundles -> quick dev check -> summary table), skipping steps whose outputs are valid; or one STEP.",
    )
    add_recipe_arguments(p)
    p.add_argument("--check-questions", type=int, default=100, help="dev questions for the quick check (default: 100)")
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
        choices=["minmax", "entropy", "percentile"],
        help="also a static (QDQ) int8 ONNX bundle calibrated this way on training windows (repeatable)",
    )
    p.set_defaults(func=cmd_export)
    esub = p.add_subparsers(dest="export_command", required=False, metavar="STEP")
    e = esub.add_parser(
        "onnx",
        help="transformers QA model -> fp32 ONNX bundle, validated against PyTorch",
        description="Export a local transformers QA checkpoint, a hub name, or "
        "'packaged:all-MiniLM-L6-v2' to an fp32 ONNX bundle.",
    )
    e.add_argument("model", help="model directory, hub name, or packaged:all-MiniLM-L6-v2")
    e.add_argument("out", type=Path, help="bundle directory to write")
    e.add_argument("--name", default=None, help="bundle name (default: the directory name)")
    e.add_argument("--max-seq-len", type=int, default=384)
    e.add_argument("--doc-stride", type=int, default=128, help="context tokens shared by consecutive windows")
    e.add_argument("--opset", type=int, default=17)
    _add_check_args(e, "PyTorch", skippable=True)
    e.set_defaults(func=cmd_export_onnx)

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
        "int8",
        help="fp32 ONNX bundle -> INT8 ONNX bundle (ONNX Runtime quantization)",
        description="Quantize an fp32 ONNX bundle to int8: dynamic (weights int8; the default, fastest and "
        "most accurate here) or static with calibration on real training windows.",
    )
    _add_bundle_step_io(e, "-int8")
    e.add_argument("--weight-type", choices=["qint8", "quint8"], default="qint8")
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
        "--static",
        choices=["minmax", "entropy", "percentile"],
        default=None,
        help="static (QDQ) quantization with this calibration instead of dynamic",
    )
    e.add_argument(
        "--calibration-data",
        type=Path,
        default=default_data_dir() / "train-v1.1-subset.json",
        help="SQuAD JSON whose windows calibrate static quantization (default: %(default)s)",
    )
    e.add_argument("--calibration-windows", type=int, default=64, help="windows to calibrate on (default: 64)")
    e.set_defaults(func=cmd_export_int8)

    e = esub.add_parser(
        "int4",
        help="fp32 ONNX bundle -> 4-bit-weight ONNX bundle (ONNX Runtime MatMulNBits)",
        description="Quantize an fp32 ONNX bundle's MatMul weights and word embeddings to 4 bits in blocks, one "
        "fp32 scale per block: for students whose int8 form is over a size budget.",
    )
    _add_bundle_step_io(e, "-int4")
    e.add_argument("--block-size", type=int, default=32, help="weights per scale (power of two; default: 32)")
    e.add_argument("--keep-embeddings", action="store_true", help="leave the embedding tables in fp32")
    e.set_defaults(func=cmd_export_int4)

    p = sub.add_parser(
        "distill",
        help="distill (or fine-tune) a student from a recipe (needs the export extra)",
        description="Train a student with task-specific KD from a teacher, as a recipe says; "
        "re-running resumes from the last checkpoint. See export/recipes/.",
    )
    add_distill_arguments(p)
    p.set_defaults(func=cmd_distill)

    p = sub.add_parser(
        "deploy",
        help="push a bundle to a Raspberry Pi or phone, run it there, pull the results",
        description="Copy the runner, a bundle and a SQuAD file to a device over ssh (or adb + Termux sshd), "
        "skipping files already there; run `edgekit run` on the device, streaming its progress; copy "
        "predictions and metrics.json back. Deploying again with the same arguments resumes an interrupted run.",
    )
    p.add_argument("target", help="ssh://[user@]host[:port], adb or adb:SERIAL (forwards to Termux sshd on 8022)")
    p.add_argument("bundle", type=Path, help="edge bundle directory")
    p.add_argument("--dataset", type=Path, default=_dev_default(), help="SQuAD v1.1 JSON (default: %(default)s)")
    p.add_argument("--out", type=Path, required=True, help="local directory for the results")
    p.add_argument("--limit", type=int, default=None, help="only the first N questions")
    p.add_argument("--warmup", type=int, default=3)
    from device_runners.deploy import DEFAULT_REMOTE_DIR, DEFAULT_REMOTE_PYTHON

    p.add_argument(
        "--remote-dir", default=DEFAULT_REMOTE_DIR, help="working directory on the device (default: %(default)s)"
    )
    p.add_argument(
        "--remote-python",
        default=DEFAULT_REMOTE_PYTHON,
        help="Python on the device with the runner's packages (default: %(default)s, made by the setup scripts)",
    )
    p.add_argument("--user", default=None, help="login name when the target has none (adb: Termux's user)")
    p.add_argument("-i", "--identity", type=Path, default=None, help="ssh private key")
    p.add_argument("--ssh-option", action="append", default=[], metavar="OPT", help="extra ssh -o option (repeatable)")
    p.add_argument("--fresh", action="store_true", help="discard an earlier remote run of the same settings")
    _add_runtime_args(p)
    p.set_defaults(func=cmd_deploy)

    p = sub.add_parser(
        "report",
        help="teacher-vs-students table and plots from metrics.json files (any bundles, any devices)",
        description="Merge runner metrics.json files (or run directories) from any bundles and devices, plus an "
        "optional compress.json for reference sizes, into report.md, a self-contained report.html, report.json and "
        "PNG plots (sizes, F1 vs latency with the Pareto front, latency distribution per device).",
    )
    p.add_argument("results", nargs="+", type=Path, help="metrics.json files, run directories, or compress.json")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--baseline", default=None, help="bundle name for speedups (default: the largest model per device)")
    p.add_argument("--screenshot", action="store_true", help="also render report.html in headless Chromium to a PNG")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "demo",
        help="the offline demo: packaged weights and data through the whole export chain",
        description="Fine-tune the packaged MiniLM on the shipped train excerpt, export ONNX fp32/int8 (and TFLite "
        "with the tflite extra), check every bundle on the shipped dev excerpt, print the table. Offline.",
    )
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="output directory (default: %(default)s)")
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # what results files record: a line that reruns anywhere, not this machine's path to the script
    args.command_line = ["edgekit", *(sys.argv[1:] if argv is None else argv)]
    try:
        return args.func(args)
    except EdgekitError as exc:
        if args.debug:
            raise
        print(f"edgekit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("edgekit: interrupted; re-run the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
