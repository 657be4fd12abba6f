"""The ``edgekit`` command: thin argparse wrappers over library functions.

This module is shipped to devices, so it defines only the device commands (``run``,
``score``, ``verify``) and imports nothing of the workstation side. The workstation
commands (``export``, ``distill``, ``demo``, ``report``, ``deploy``) are named in
:data:`WORKSTATION_COMMANDS` by module path: their module is imported only when one of
them is chosen, so building this parser on a Raspberry Pi never reaches torch,
transformers or matplotlib, and a device install that lacks them says so in one line.

User errors (:class:`EdgekitError`) print one line and exit 2 (3 when a device could not
be reached or its run failed: :class:`~edgekit.errors.DeviceError`); ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from edgekit import __version__
from edgekit.errors import EdgekitError, InputError, Terminated
from edgekit.squad import default_data_dir
from edgekit.text import one_line


class Parser(argparse.ArgumentParser):
    """argparse whose refusal is one line, as every other refusal is (argparse prints the usage first)."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("edgekit").strip()  # 'export int8' of 'edgekit export int8'
        where = f"{command}: " if command else ""
        self.exit(2, f"edgekit: error: {where}{one_line(message, limit=2000)} (see {self.prog} --help)\n")


def whole(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from ``low`` to ``high``. Every number a command takes has bounds, so
    a value that makes no sense (0 threads, -1 copies, 10^20 windows) is refused before any work."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected a whole number from {low:,} to {high:,}, got {text!a}")
        return value

    parse.bounds = (low, high)  # type: ignore[attr-defined]  (read by the tests of every flag)
    return parse


def real(low: float, high: float) -> Callable[[str], float]:
    """An argparse type: a finite number from ``low`` to ``high`` (NaN and infinity are refused: NaN passes
    every comparison a check would make)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and low <= value <= high):
            raise argparse.ArgumentTypeError(f"expected a number from {low:g} to {high:g}, got {text!a}")
        return value

    parse.bounds = (low, high)  # type: ignore[attr-defined]
    return parse


MAX_EXAMPLES = 10**9  # any --limit, sample or window count: more than any dataset holds


@dataclass(frozen=True)
class Command:
    """A workstation command: ``target`` (``module:function``) adds its full sub-parser when it is chosen;
    ``extra``: the install extra that brings what it needs."""

    target: str
    help: str
    extra: str = "export"


DEVICE_COMMANDS = ("run", "score", "verify")
WORKSTATION_COMMANDS: dict[str, Command] = {
    "export": Command(
        "edgekit.export.cli:add_export",
        "model -> edge bundle and its steps: onnx, int8, int4, fuse, prune-vocab, vocab-curve, int8-sensitivity, "
        "float-activations, augment-questions/-texts, dataset, ship (workstation: export extra)",
    ),
    "distill": Command(
        "edgekit.export.cli:add_distill", "distill (or fine-tune) a student from a recipe (workstation: export extra)"
    ),
    "deploy": Command(
        "edgekit.device_runners.cli:add_deploy",
        "push a bundle to a Raspberry Pi or phone, run it there, pull the results",
    ),
    "fit": Command(
        "edgekit.export.cli:add_fit",
        "the most accurate student form within a size and latency budget, measured on the device (export extra)",
    ),
    "report": Command(
        "edgekit.export.cli:add_report",
        "teacher-vs-students table and plots from metrics.json files (any devices; report extra)",
        "report",
    ),
    "demo": Command(
        "edgekit.export.cli:add_demo", "the offline demo: packaged weights and data through the whole chain"
    ),
}


def dev_default() -> Path:
    """The SQuAD dev file commands read when ``--dataset`` is not given."""
    return default_data_dir() / "dev-v1.1.json"


def train_default() -> Path:
    """The SQuAD training file workstation commands read when none is named (recipes, calibration, pruning)."""
    return default_data_dir() / "train-v1.1-subset.json"


def add_runtime_args(p: argparse.ArgumentParser) -> None:
    """How the runtime runs the model: the same flags for ``run`` here and ``deploy`` on a device."""
    p.add_argument(
        "--threads", type=whole(1, 10_000), default=None, help="intra-op threads (default: runtime's choice)"
    )
    p.add_argument(
        "--low-memory",
        action="store_true",
        help="turn the runtime's memory arena off: buffers are allocated per call and freed after it (whether the "
        "peak falls depends on the C library's allocator: docs/runner.md, 'Memory')",
    )
    p.add_argument(
        "--no-spin",
        dest="spin",
        action="store_false",
        help="ONNX Runtime's threads sleep between calls instead of spinning: for cores shared with other work",
    )
    p.add_argument(
        "--backend",
        choices=["auto", "onnxruntime", "openvino", "openvino-bf16", "litert"],
        default=None,
        help="runtime for the bundle (default: ONNX Runtime for ONNX, LiteRT for TFLite); openvino computes in f32, "
        "openvino-bf16 in bfloat16 (needs the openvino package, and for bf16 a CPU with AVX512-BF16 or AMX); auto: "
        "the fastest here whose answers on the first questions equal the default runtime's (measured once, remembered)",
    )


OWN_SCORES = " (score applies SQuAD's official rule; a classifier's or tagger's edgekit run scores itself)"


def cmd_score(args: argparse.Namespace) -> int:
    from edgekit.metric import evaluate, load_predictions
    from edgekit.squad import load_squad

    if args.dataset.suffix.lower() in (".tsv", ".csv", ".conll", ".txt", ".jsonl", ".parquet"):
        raise InputError(args.dataset, "file name", f"a SQuAD v1.1 JSON file{OWN_SCORES}")
    examples = load_squad(args.dataset)
    predictions = load_predictions(args.predictions)
    if predictions and not any(ex.id in predictions for ex in examples):
        raise InputError(
            args.predictions, "ids", f"predictions for questions of {args.dataset}, which has none of them{OWN_SCORES}"
        )
    if args.answered_only:
        examples = [ex for ex in examples if ex.id in predictions]
    score = evaluate(examples, predictions)
    if args.answered_only:
        print(f"scored only the {score.total:,} answered questions of {args.dataset}", file=sys.stderr)
    elif score.unanswered:
        print(
            f"{len(score.unanswered):,} of {score.total:,} questions unanswered, each scored 0 as the official "
            f"script does (first: {score.unanswered[0]!r}); --answered-only scores the answered ones alone",
            file=sys.stderr,
        )
    if score.unknown:
        print(
            f"{len(score.unknown):,} predictions for ids not in the dataset ignored (first: {score.unknown[0]!r})",
            file=sys.stderr,
        )
    print(json.dumps(score.as_official()))
    return 0


def _default_dataset(bundle: Path) -> Path:
    """The dataset ``run`` reads without ``--dataset``: SQuAD's dev set for QA; a classifier has none."""
    from edgekit.bundle import load_bundle

    task = load_bundle(bundle, verify=False).manifest.task
    if task != "extractive-qa":
        raise InputError(None, "--dataset", f"the dataset to run a {task} bundle on (no default for its task)")
    path = dev_default()
    if not path.is_file():
        raise InputError(
            path,
            "file",
            "SQuAD's dev-v1.1.json: give --dataset FILE (packaged:dev: the shipped excerpt), or set "
            "EDGEKIT_DATA_DIR to the folder holding squad/",
        )
    return path


def cmd_run(args: argparse.Namespace) -> int:
    from edgekit import device
    from edgekit.backends import RuntimeOptions
    from edgekit.runner import RunConfig, run
    from edgekit.tasks import get_task

    config = RunConfig(
        limit=args.limit,
        warmup=args.warmup,
        n_best=args.n_best,
        runtime=RuntimeOptions(threads=args.threads, low_memory=args.low_memory, spin=args.spin, backend=args.backend),
        progress=not args.no_progress,
        run_id=args.run_id,
        split=args.split,
    )
    device.keep_large_allocations_mapped()  # this process is the run's own: its peak memory is what it measures
    m = run(args.bundle, args.dataset or _default_dataset(args.bundle), args.out, config, argv=args.command_line)
    lat = m["latency_ms"]
    print(
        f"{m['bundle']['name']}: {get_task(m['task']).summary(m)} | "
        f"p50 {lat['p50']:.1f} ms  p90 {lat['p90']:.1f} ms  {m['throughput_qps']:.2f}/s | "
        f"cold start {m['cold_start_ms']:.0f} ms | peak RSS {m['peak_rss_mb']:.0f} MB"
    )
    print(f"wrote {Path(args.out) / 'metrics.json'}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from edgekit.backends import RuntimeOptions, open_backend
    from edgekit.bundle import load_bundle

    bundle = load_bundle(args.bundle)
    open_backend(bundle, RuntimeOptions())  # the manifest checked against the model itself, not just the hashes
    print(json.dumps(bundle.summary(), indent=2))
    print(f"{args.bundle}: OK, {len(bundle.manifest.files)} files and the model against the manifest verified")
    return 0


def _add_workstation(name: str, sub: argparse._SubParsersAction) -> None:
    """Import the module of workstation command ``name`` and add its sub-parser (which may import more)."""
    module, _, func = WORKSTATION_COMMANDS[name].target.partition(":")
    try:
        getattr(importlib.import_module(module), func)(sub)
    except ModuleNotFoundError as exc:
        error = _not_installed(name, exc)
        if error is None:
            raise
        raise error from None


def _not_installed(name: str, exc: ModuleNotFoundError) -> EdgekitError | None:
    """The one line for workstation command ``name`` on an install without its extra: its own module absent, or
    a third-party package it imports; None when an edgekit module is missing (a broken install, a real fault)."""
    missing = (exc.name or "").partition(".")[0]
    if not missing or (missing == "edgekit" and not WORKSTATION_COMMANDS[name].target.startswith(exc.name or "")):
        return None
    extra = WORKSTATION_COMMANDS[name].extra
    what = "is not part of this install" if missing == "edgekit" else f"needs {missing}, which this install lacks"
    return EdgekitError(
        f"edgekit {name}: a workstation command that {what} (the device side has {', '.join(DEVICE_COMMANDS)}); "
        f"on a workstation: pip install 'edgekit-kd[{extra}]', or pip install -e '.[{extra}]' in a checkout"
    )


def build_parser(chosen: str | None = None) -> argparse.ArgumentParser:
    """The full parser for the device commands; a workstation command gets its own only when ``chosen``."""
    parser = Parser(
        prog="edgekit",
        description="Distill, export and measure transformer models (extractive QA, text and token classification) "
        "for edge devices.",
        epilog="In Python, edgekit.load(BUNDLE) gives a bundle's task as a pipeline called like transformers' "
        "(README, 'Python API').",
    )
    parser.add_argument("--version", action="version", version=f"edgekit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "score",
        help="official SQuAD v1.1 EM/F1 of a predictions file",
        description="Score predictions (JSON id -> answer) exactly as the official evaluate-v1.1.py does.",
    )
    p.add_argument("--dataset", type=Path, default=dev_default(), help="SQuAD v1.1 JSON (default: %(default)s)")
    p.add_argument("--predictions", type=Path, required=True, help="predictions JSON: {question id: answer text}")
    p.add_argument(
        "--answered-only",
        action="store_true",
        help="score only the questions the predictions answer (e.g. a --limit run), not the whole dataset",
    )
    p.set_defaults(func=cmd_score)

    p = sub.add_parser(
        "run",
        help="run a bundle over a dataset of its task; write predictions and metrics",
        description="Run a bundle over a dataset of its task and measure its scores (QA: SQuAD EM/F1; text "
        "classification: accuracy, macro-F1, and CLINC150's in-scope accuracy and out-of-scope recall; token "
        "classification: entity precision/recall/F1 per type and WNUT-17's surface-form F1), latency, "
        "throughput and memory. Re-running with the same --out resumes an interrupted run.",
    )
    p.add_argument("bundle", type=Path, help="edge bundle directory")
    p.add_argument(
        "--dataset",
        type=Path,
        default=None,
        help="the task's dataset: QA a SQuAD v1.1 JSON (default: $EDGEKIT_DATA_DIR/squad/dev-v1.1.json, or "
        "$EDGEKIT_SQUAD_DIR/dev-v1.1.json; packaged:dev, the shipped excerpt); classification (no default) a TSV "
        "with sentence/text and label columns (GLUE's SST-2) or CLINC150's data_full.json (packaged:clinc150); "
        "token classification (no default) a CoNLL-style file of word<TAB>tag lines (WNUT-17); other formats: edgekit export dataset on a workstation",
    )
    p.add_argument(
        "--split",
        default=None,
        help="the split of a file holding several (CLINC150 JSON: train, val, test; default test)",
    )
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--limit", type=whole(1, MAX_EXAMPLES), default=None, help="only the first N questions (examples)")
    p.add_argument(
        "--warmup", type=whole(0, 10_000), default=3, help="untimed warm-up runs before measuring (default: 3)"
    )
    p.add_argument("--n-best", type=whole(1, 1000), default=20, help="start/end candidates per window (default: 20)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--run-id", default=None, help="a name recorded in metrics.json as run_id (deploy ties pulled results to it)"
    )
    add_runtime_args(p)
    p.set_defaults(func=cmd_run, resumes=True)

    p = sub.add_parser(
        "verify",
        help="check a bundle's files and model against its manifest",
        description="Verify an edge bundle: the manifest's schema, every file (regular files inside the bundle, "
        "sizes, sha256), and the manifest's promises against the model (inputs, outputs, window length, "
        "vocabulary) by loading it and running one window.",
    )
    p.add_argument("bundle", type=Path, help="edge bundle directory (holds manifest.json)")
    p.set_defaults(func=cmd_verify)

    for name, command in WORKSTATION_COMMANDS.items():
        if name == chosen:
            _add_workstation(name, sub)
        else:
            sub.add_parser(name, help=command.help)  # listed in --help; its module loads when it is chosen
    return parser


def _chosen_command(argv: Sequence[str]) -> str | None:
    """The sub-command named on the line: the first word that is not an option (top-level options take no value)."""
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser(_chosen_command(argv))
    except EdgekitError as exc:  # a workstation command on a device install
        _error(exc)
        return 2
    args = parser.parse_args(argv)
    # what results files record: a line that reruns anywhere, not this machine's path to the script
    args.command_line = ["edgekit", *argv]
    # SIGTERM raises Terminated (signals reach the main thread only): a kill cleans up as Ctrl-C does
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if main_thread else None
    try:
        return args.func(args)
    except EdgekitError as exc:
        if args.debug:
            raise
        _error(exc)
        return exc.exit_code
    except OSError as exc:  # a path the system refused (too long, a link loop, a directory for a file, ...)
        if args.debug:
            raise
        # a failed write() names no file (disk full, quota): then the destination the user gave
        named = exc.filename or getattr(args, "out", None)
        where = f"{named}: " if named else ""
        _error(f"{where}expected a usable path ({exc.strerror or exc})")
        return 2
    except ModuleNotFoundError as exc:  # a workstation command's package, imported when it runs
        if args.debug or args.command not in WORKSTATION_COMMANDS:
            raise
        error = _not_installed(args.command, exc)
        if error is None:
            raise
        _error(error)
        return 2
    except KeyboardInterrupt as exc:
        # only a command whose output grows and resumes says so; a one-shot one kept its earlier output, if any
        hint = "; re-run the same command to resume" if getattr(args, "resumes", False) else ""
        print(f"edgekit: interrupted{hint}", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _error(message: object) -> None:
    """The one line a refusal prints: text from files, devices and libraries inside it cannot add lines or
    move the terminal's cursor (control characters are shown escaped)."""
    print(f"edgekit: error: {one_line(message, limit=2000)}", file=sys.stderr)


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


if __name__ == "__main__":
    sys.exit(main())
