"""Typed distillation recipes: TOML files under ``export/recipes/`` plus CLI overrides.

The package ships two kinds: presets (``export/recipes/*.toml``: the demo, the test recipe, a student and a
teacher per task), the recipes to start from; and experiments (``export/recipes/experiments/*.toml``), the
recipes behind docs/results.md (baselines, schedules, loss terms, further training), kept so that a run
can be repeated. ``--recipe NAME`` finds either by name; the names are unique over both.

A recipe has five tables, each a dataclass below: ``[teacher]``, ``[student]``,
``[data]``, ``[loss]``, ``[training]``, plus top-level ``name``, ``output_dir`` and
``task`` (``qa``, the default, ``classification`` or ``tokens``). Unknown keys and wrong types are refused with the file and the
key named. ``--set training.epochs=1`` style overrides are parsed as TOML values.
Data paths may use environment variables (``$EDGEKIT_SQUAD_DIR``) or name the
shipped excerpts (``packaged:train``, ``packaged:dev``); empty means the default
SQuAD directory.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import tomllib
import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

from edgekit.cli import train_default
from edgekit.errors import InputError
from edgekit.squad import default_data_dir, resolve_data_path
from edgekit.tasks import RECIPE_NAMES

# the loss mix a recipe gets when it names none (the KD workflow's defaults)
DEFAULT_TEMPERATURE = 2.0
DEFAULT_ALPHA = 0.5

RECIPES_DIR = Path(__file__).with_name("recipes")  # the presets
EXPERIMENTS_DIR = RECIPES_DIR / "experiments"  # the recipes behind docs/results.md


@dataclass
class TeacherSpec:
    model: str = "$EDGEKIT_MODELS_DIR/mpnet-base-squad"


@dataclass
class StudentSpec:
    """``init = "pretrained"`` loads ``model`` (any encoder or QA checkpoint, or
    ``packaged:all-MiniLM-L6-v2``); ``init = "teacher-layers"`` copies the teacher's
    ``layers`` (DistilBERT-style when they are every other layer). ``weights``, an edgekit ONNX
    bundle of the same architecture and vocabulary (e.g. a student in ``models/``), replaces the
    initial weights with the bundle's, so a shipped student can be trained further."""

    init: str = "pretrained"
    model: str = "packaged:all-MiniLM-L6-v2"
    layers: list[int] = field(default_factory=list)
    weights: str = ""


@dataclass
class DataSpec:
    train: str = ""
    # More files to train on: SQuAD question copies from `edgekit export augment-questions`, a classifier's text
    # copies from `edgekit export augment-texts` (taught by the teacher alone); each gets its own teacher-logits
    # cache, so adding one reuses the logits of the others.
    extra_train: list[str] = field(default_factory=list)
    dev: str = ""
    max_seq_len: int = 384  # training windows
    doc_stride: int = 128
    # Window length of the bundles and so of the dev evaluation; 0: max_seq_len. Training on short windows
    # saves CPU time; answering on longer ones splits fewer contexts (see README, "Distillation").
    bundle_max_seq_len: int = 0
    train_limit: int = 0  # 0: every training question; else the first N of each training file
    dev_limit: int = 0  # 0: the full dev set
    # classification: the label names in logit order (empty: those of the training data, sorted), and the
    # splits of files that hold several (CLINC150's JSON: train, val, test)
    labels: list[str] = field(default_factory=list)
    train_split: str = ""
    dev_split: str = ""
    # Data the datasets library reads (hf:NAME[:CONFIG], .jsonl, .csv, .parquet; see export/hfdata.py) is written
    # once to a local file of the device's format, which the recipe then names; columns maps the task's column
    # names to the data's (text, label; id, question, context, answers) where they differ.
    columns: dict[str, str] = field(default_factory=dict)

    @property
    def bundle_len(self) -> int:
        return self.bundle_max_seq_len or self.max_seq_len

    def train_path(self) -> Path:
        return resolve_data_path(self.train, train_default())

    def train_paths(self) -> list[Path]:
        """Every training file: ``train`` first, then ``extra_train`` in order."""
        return [self.train_path(), *(resolve_data_path(p, Path(p)) for p in self.extra_train)]

    def dev_path(self) -> Path:
        return resolve_data_path(self.dev, default_data_dir() / "dev-v1.1.json")


@dataclass
class LossSpec:
    """alpha weighs the hard (gold) loss; 1 - alpha the soft (teacher) loss. alpha = 1 is plain
    fine-tuning, no teacher needed. Intermediate terms need a student built from teacher layers."""

    alpha: float = DEFAULT_ALPHA
    temperature: float = DEFAULT_TEMPERATURE
    hidden_weight: float = 0.0
    attention_weight: float = 0.0
    pkd_weight: float = 0.0
    layer_map: list[int] = field(default_factory=list)  # teacher layer matched by each student layer

    @property
    def uses_teacher_logits(self) -> bool:
        return self.alpha < 1.0

    @property
    def uses_intermediate(self) -> bool:
        return self.hidden_weight > 0 or self.attention_weight > 0 or self.pkd_weight > 0


@dataclass
class TrainingSpec:
    epochs: float = 2.0
    max_steps: int = -1
    batch_size: int = 16
    grad_accum: int = 1
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    seed: int = 0
    save_steps: int = 100
    save_total_limit: int = 2
    logging_steps: int = 10
    bf16: bool = False
    threads: int = 0  # 0: torch's default
    # The student's dropout probabilities (every one its config names); -1: the checkpoint's own. 0 makes a
    # run deterministic, e.g. to compare 1 and N processes step by step (benchmarks.ddp).
    dropout: float = -1.0
    # Batches of windows of similar length (transformers' length grouping, reseeded per epoch), each cut to its
    # longest window: less padding to train on (docs/results.md, "Training time: length-grouped batches and
    # bf16"). Off by default: runs made before it existed used random batches.
    group_by_length: bool = False


TASKS = tuple(RECIPE_NAMES)  # a recipe's task names, each a task of edgekit.tasks


@dataclass
class Recipe:
    name: str = "student"
    output_dir: str = "runs/distill"
    task: str = "qa"
    teacher: TeacherSpec = field(default_factory=TeacherSpec)
    student: StudentSpec = field(default_factory=StudentSpec)
    data: DataSpec = field(default_factory=DataSpec)
    loss: LossSpec = field(default_factory=LossSpec)
    training: TrainingSpec = field(default_factory=TrainingSpec)

    @property
    def out(self) -> Path:
        return Path(os.path.expandvars(self.output_dir)) / self.name

    def inputs(self) -> list[Path]:
        """The local files and directories the recipe reads: its output may be none of them, nor hold one."""
        models = [
            Path(m) for m in (self.teacher.model, self.student.model, self.student.weights) if m and Path(m).exists()
        ]
        return [*models, *self.data.train_paths(), self.data.dev_path()]


# What may change when a run resumes: where it is written, how long it trains, how often it saves or
# logs, threads, and the dev evaluation. Any other change would make the resumed run another experiment
# than its checkpoints.
RESUMABLE = frozenset(
    {
        "name",
        "output_dir",
        "data.dev",
        "data.dev_limit",
        "data.dev_split",
        "data.bundle_max_seq_len",
        "training.epochs",
        "training.max_steps",
        "training.save_steps",
        "training.save_total_limit",
        "training.logging_steps",
        "training.threads",
    }
)


def checkpoint_settings(recipe: Recipe) -> dict[str, Any]:
    """The recipe's settings its checkpoints depend on, as dotted keys (``loss.alpha``: 0.5, ...)."""
    flat: dict[str, Any] = {}
    for top, value in asdict(recipe).items():
        if isinstance(value, dict):
            flat.update({f"{top}.{k}": v for k, v in value.items()})
        else:
            flat[top] = value
    return {k: v for k, v in flat.items() if k not in RESUMABLE}


def _coerce(value: Any, kind: Any, path: Path | None, place: str) -> Any:
    if typing.get_origin(kind) is dict:
        key_kind, item = typing.get_args(kind)
        if not isinstance(value, dict):
            raise InputError(path, f"key '{place}'", f"a table, got {type(value).__name__}")
        return {_coerce(k, key_kind, path, place): _coerce(v, item, path, f"{place}.{k}") for k, v in value.items()}
    if typing.get_origin(kind) is list:
        (item,) = typing.get_args(kind)
        if not isinstance(value, list):
            raise InputError(path, f"key '{place}'", f"a list, got {type(value).__name__}")
        return [_coerce(v, item, path, f"{place}[{i}]") for i, v in enumerate(value)]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InputError(path, f"key '{place}'", f"a {kind.__name__}, got {type(value).__name__} {value!r}")
    if kind is float and not math.isfinite(value):
        raise InputError(path, f"key '{place}'", f"a finite number, got {value!r}")
    return value


def _build(cls: type, table: Any, path: Path | None, where: str) -> Any:
    if not isinstance(table, dict):
        raise InputError(path, where or "top level", "a table")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(table) - known)
    if unknown:
        place = f"{where}.{unknown[0]}" if where else unknown[0]
        raise InputError(path, f"key '{place}'", f"one of {sorted(known)}")
    kwargs = {}
    for name, value in table.items():
        kind = hints[name]
        place = f"{where}.{name}" if where else name
        if isinstance(kind, type) and is_dataclass(kind):
            kwargs[name] = _build(kind, value, path, place)
        else:
            kwargs[name] = _coerce(value, kind, path, place)
    return cls(**kwargs)


def _parse_override(item: str) -> tuple[list[str], Any]:
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise InputError(None, f"--set {item}", "KEY=VALUE, e.g. training.epochs=1")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare string
    return key.strip().split("."), value


def preset_names() -> list[str]:
    """The presets' names (``export/recipes/*.toml``), sorted."""
    return sorted(p.stem for p in RECIPES_DIR.glob("*.toml"))


def experiment_names() -> list[str]:
    """The experiments' names (``export/recipes/experiments/*.toml``), sorted."""
    return sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.toml"))


def shipped_recipes() -> str:
    """Every shipped recipe by kind, for refusals and help texts: ``presets: ...; experiments (...): ...``."""
    return f"presets: {', '.join(preset_names())}; experiments (the recipes behind edgekit's published results): " + (
        ", ".join(experiment_names())
    )


def named_recipe(value: str | Path) -> Path:
    """``value`` as a path, or the shipped recipe of that name when it is a bare name (no directory part, not
    even ``./``) that no file answers to: a preset first, then an experiment."""
    path = Path(value)
    if path.exists() or "/" in str(value) or os.sep in str(value):
        return path
    file = path.name if path.suffix == ".toml" else f"{path.name}.toml"
    for shipped in (RECIPES_DIR / file, EXPERIMENTS_DIR / file):
        if shipped.is_file():
            return shipped
    return path


def load_recipe(path: str | Path | None = None, overrides: list[str] | None = None) -> Recipe:
    """Read a recipe TOML (or start from the defaults) and apply ``KEY=VALUE`` overrides. A bare name that
    is no file here (``demo``, ``minilm-l6-kd``, ``minilm-l6-kd-e4``) is one of the recipes the package ships:
    a preset, else an experiment."""
    table: dict[str, Any] = {}
    if path is not None:
        path = named_recipe(path)
        try:
            table = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(
                path, "file", f"an existing recipe TOML file, or a shipped one by name ({shipped_recipes()})"
            ) from None
        except IsADirectoryError:
            raise InputError(path, "file", "a recipe TOML file, not a directory") from None
        except UnicodeDecodeError as exc:
            raise InputError(path, f"byte {exc.start}", "UTF-8 text") from None
        except tomllib.TOMLDecodeError as exc:
            raise InputError(path, "syntax", f"valid TOML ({exc})") from None
    for item in overrides or []:
        keys, value = _parse_override(item)
        node = table
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise InputError(None, f"--set {item}", f"'{k}' to be a table")
        node[keys[-1]] = value
    return _local_data(recipe_from_table(table, path))


def recipe_from_table(table: Any, path: Path | None, where: str = "") -> Recipe:
    """A recipe given as a table (a TOML file's, or one a ``result.json`` recorded at ``where``), typed and checked
    as a recipe file is."""
    recipe = _build(Recipe, table, path, where)
    _validate(recipe, path)
    return recipe


def _local_data(recipe: Recipe) -> Recipe:
    """The recipe with each datasets source (``export/hfdata.py``) replaced by the local file it is written to:
    every step after this reads, hashes and resumes against that file as against one named by hand."""
    from edgekit.export import hfdata
    from edgekit.tasks import task_of_recipe

    d = recipe.data
    if not any(hfdata.is_datasets_source(v, d.columns) for v in (d.train, d.dev, *d.extra_train) if v):
        return recipe
    task = task_of_recipe(recipe.task)
    train_split, dev_split = d.train_split or "train", d.dev_split or "validation"
    data = replace(
        d,
        train=hfdata.local_path(d.train, task, train_split, d.columns),
        extra_train=[hfdata.local_path(v, task, "train", d.columns) for v in d.extra_train],
        dev=hfdata.local_path(d.dev, task, dev_split, d.columns),
    )
    if task == "token-classification":  # the written CoNLL file is the split
        data = replace(data, train_split="", dev_split="")
    if task == "text-classification":  # the written file holds the split under its name (SQuAD, CoNLL: no splits)
        data = replace(
            data,
            train_split=train_split if data.train != d.train else d.train_split,
            dev_split=dev_split if data.dev != d.dev else d.dev_split,
        )
    return replace(recipe, data=data)


# (key, test, what is expected): numbers a run cannot train or resume with, refused before anything starts
_BOUNDS: tuple[tuple[str, typing.Callable[[Any], bool], str], ...] = (
    ("loss.alpha", lambda v: 0.0 <= v <= 1.0, "a weight in [0, 1]"),
    ("loss.temperature", lambda v: v > 0, "a positive temperature"),
    ("loss.hidden_weight", lambda v: v >= 0, "a weight of 0 or more"),
    ("loss.attention_weight", lambda v: v >= 0, "a weight of 0 or more"),
    ("loss.pkd_weight", lambda v: v >= 0, "a weight of 0 or more"),
    ("training.epochs", lambda v: v > 0, "a positive number of epochs"),
    ("training.max_steps", lambda v: v == -1 or v > 0, "-1 (train for 'epochs') or a positive number of steps"),
    ("training.batch_size", lambda v: v > 0, "a positive batch size"),
    ("training.grad_accum", lambda v: v > 0, "a positive number of accumulation steps"),
    ("training.learning_rate", lambda v: v > 0, "a positive learning rate"),
    ("training.weight_decay", lambda v: v >= 0, "a weight decay of 0 or more"),
    ("training.warmup_ratio", lambda v: 0.0 <= v < 1.0, "a share of the steps in [0, 1)"),
    ("training.save_steps", lambda v: v > 0, "a positive number of steps between checkpoints"),
    ("training.save_total_limit", lambda v: v > 0, "a positive number of checkpoints to keep"),
    ("training.logging_steps", lambda v: v > 0, "a positive number of steps between log lines"),
    ("training.threads", lambda v: v >= 0, "0 (torch's default) or a positive number of threads"),
    ("training.dropout", lambda v: v == -1 or 0 <= v < 1, "-1 (the model's own) or a probability in [0, 1)"),
    ("data.max_seq_len", lambda v: v > 0, "a positive window length"),
    ("data.doc_stride", lambda v: v > 0, "a positive stride"),
    ("data.bundle_max_seq_len", lambda v: v >= 0, "0 (the training length) or a positive window length"),
    ("data.train_limit", lambda v: v >= 0, "0 (all) or a positive number of questions per training file"),
    ("data.dev_limit", lambda v: v >= 0, "0 (all) or a positive number of questions"),
)


def _validate(r: Recipe, path: Path | None) -> None:
    if r.task not in TASKS:
        raise InputError(path, "key 'task'", f"one of {list(TASKS)}, got {r.task!r}")
    if r.task == "classification":
        for key in ("train", "dev"):
            if not getattr(r.data, key):
                raise InputError(path, f"key 'data.{key}'", "a classification dataset (.tsv, or CLINC150 .json)")
        if len(set(r.data.labels)) != len(r.data.labels) or not all(x.strip() == x and x for x in r.data.labels):
            raise InputError(path, "key 'data.labels'", "distinct, non-empty label names")
        if r.data.extra_train and not r.loss.uses_teacher_logits:
            raise InputError(
                path, "key 'data.extra_train'", "loss.alpha below 1 (the teacher alone labels extra texts)"
            )
    elif r.task == "tokens":
        for key in ("train", "dev"):
            if not getattr(r.data, key):
                raise InputError(path, f"key 'data.{key}'", "a CoNLL-style file of word<TAB>tag lines")
        if len(set(r.data.labels)) != len(r.data.labels):
            raise InputError(path, "key 'data.labels'", "distinct tag names")
        if r.data.extra_train and not r.loss.uses_teacher_logits:
            raise InputError(
                path, "key 'data.extra_train'", "loss.alpha below 1 (the teacher alone tags extra sentences)"
            )
        from edgekit.export.hfdata import is_datasets_source

        for key in ("train", "dev"):  # a CoNLL file is one split; a datasets source names its own
            if getattr(r.data, f"{key}_split") and not is_datasets_source(getattr(r.data, key), r.data.columns):
                raise InputError(path, f"key 'data.{key}_split'", "no split for a CoNLL file (one file is one split)")
    elif r.data.labels or r.data.train_split or r.data.dev_split:
        raise InputError(path, "key 'data.labels'/'data.*_split'", "no labels or splits for task 'qa'")
    if r.student.init not in ("pretrained", "teacher-layers"):
        raise InputError(path, "key 'student.init'", f"'pretrained' or 'teacher-layers', got {r.student.init!r}")
    if r.student.init == "teacher-layers" and not r.student.layers:
        raise InputError(path, "key 'student.layers'", "the teacher layer indices to keep")
    for key, ok, expected in _BOUNDS:
        section, name = key.split(".")
        value = getattr(getattr(r, section), name)
        if not ok(value):
            raise InputError(path, f"key '{key}'", f"{expected}, got {value!r}")
    if any(i < 0 for i in [*r.student.layers, *r.loss.layer_map]):
        raise InputError(path, "key 'student.layers'/'loss.layer_map'", "layer indices of 0 or more")
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,100}", r.name):  # it names a directory and its bundles
        raise InputError(path, "key 'name'", f"a name of letters, digits, '.', '_', '-', got {r.name!r}")
    if not r.output_dir.strip() or "\x00" in r.output_dir:
        raise InputError(path, "key 'output_dir'", "a non-empty path")


def add_recipe_arguments(p: argparse.ArgumentParser, omitted: str = "the built-in defaults") -> None:
    """--recipe and --set, shared by every command that reads a recipe; ``omitted`` says what no --recipe means."""
    p.add_argument(
        "--recipe",
        default=None,  # a string: "./demo" names a file, "demo" may name a shipped recipe
        help=f"recipe TOML, or the name of a shipped one: a preset (e.g. minilm-l6-kd) or an experiment (e.g. "
        f"minilm-l6-kd-e4); if omitted: {omitted}",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe value, e.g. --set training.epochs=1 (repeatable)",
    )
