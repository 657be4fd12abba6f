"""Data the ecosystem's way, on the workstation: Hugging Face ``datasets`` names and local json/jsonl/csv/tsv/parquet
files, read through the ``datasets`` library and written once in the form the device reads.

A source is ``hf:NAME`` (a hub name, ``hf:NAME:CONFIG`` for a configuration; offline, what the local datasets
cache holds), or a local file read by its suffix (``.jsonl``, ``.csv``, ``.parquet``; ``.json`` and ``.tsv`` too
when columns are mapped). Columns are mapped by name where the data's differ from the task's:

- text classification: ``text`` and ``label`` (a ``ClassLabel`` column gives its names);
- extractive QA: ``id``, ``question``, ``context`` and ``answers`` (SQuAD's ``{"text": [...],
  "answer_start": [...]}``), as the hub's ``squad`` has them;
- token classification: ``tokens`` (a sentence's words) and ``ner_tags`` (one IOB2 tag per word; a sequence of
  ``ClassLabel`` gives its names), as the hub's ``wnut_17`` and ``conll2003`` have them.

The rows of one split become a file of the device's own format (SQuAD v1.1 JSON; a classifier's JSON of
``[text, label]`` pairs under the split's name, read as CLINC150's layout is; a tagger's CoNLL text) in
``$EDGEKIT_CACHE/datasets`` (default ``~/.cache/edgekit/datasets``), named by the source, split, columns and
the rows' content: every later command reads that file, hashes it for its caches and resumes against it, as
it would a file given by hand. The device never needs ``datasets``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edgekit.atomic import write_text
from edgekit.errors import EdgekitError, InputError

PREFIX = "hf:"
FILE_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".tsv": "csv", ".parquet": "parquet"}
DATASETS_SUFFIXES = (".jsonl", ".csv", ".parquet")  # read through datasets even without a column mapping
COLUMNS = {
    "text-classification": ("text", "label"),
    "extractive-qa": ("id", "question", "context", "answers"),
    "token-classification": ("tokens", "ner_tags"),
}


def is_datasets_source(value: str | Path, columns: Mapping[str, str] | None = None) -> bool:
    """Whether ``value`` is read through ``datasets``: a hub name, a suffix the device does not read, or any
    file with mapped columns."""
    value = str(value)
    if value.startswith(PREFIX):
        return True
    suffix = Path(value).suffix.lower()
    return suffix in DATASETS_SUFFIXES or (bool(columns) and suffix in FILE_BUILDERS)


def parse_columns(items: list[str] | None) -> dict[str, str]:
    """``--columns text=sentence`` items (repeatable, or comma-separated) as {task column: data column}."""
    out: dict[str, str] = {}
    for item in ",".join(items or []).split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise InputError(None, f"--columns {item}", "TASK_COLUMN=DATA_COLUMN, e.g. text=sentence")
        if key.strip() in out:
            raise InputError(None, f"--columns {item}", f"each task column once, got {key.strip()!r} twice")
        out[key.strip()] = value.strip()
    return out


HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


def hub_name(source: str) -> tuple[str, str | None]:
    """``hf:NAME`` or ``hf:NAME:CONFIG`` as (name, config); a name that is no hub id (a path, empty) refused."""
    name, _, config = source.removeprefix(PREFIX).partition(":")
    if not HUB_ID.fullmatch(name) or ".." in name or ":" in config:
        raise InputError(source, "dataset name", "hf:NAME or hf:NAME:CONFIG with a hub id (owner/name or name)")
    return name, config or None


def _cache_dir() -> Path:
    return Path(os.environ.get("EDGEKIT_CACHE", Path.home() / ".cache" / "edgekit")) / "datasets"


def _load(source: str, split: str) -> Any:
    """One split of ``source`` as a ``datasets.Dataset``; every failure one line naming the source."""
    try:
        import datasets
    except ModuleNotFoundError:
        raise EdgekitError(f"{source}: reading it needs the datasets library (pip install datasets)") from None
    datasets.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    try:
        if source.startswith(PREFIX):
            name, config = hub_name(source)
            return datasets.load_dataset(name, config, split=split)
        path = Path(source)
        if not path.is_file():
            raise InputError(path, "file", "an existing data file")
        builder = FILE_BUILDERS.get(path.suffix.lower())
        if builder is None:
            raise InputError(path, "file name", f"one of {', '.join(FILE_BUILDERS)}")
        extra = {"delimiter": "\t"} if path.suffix.lower() == ".tsv" else {}
        return datasets.load_dataset(builder, data_files={split: str(path)}, split=split, **extra)
    except EdgekitError:
        raise
    except Exception as exc:  # the library's own errors: a name not in the cache, a split it lacks, a bad file
        said = " ".join(str(exc).split())[:300]
        where = (
            f"; the local datasets cache is {datasets.config.HF_DATASETS_CACHE}" if source.startswith(PREFIX) else ""
        )
        raise InputError(source, f"split {split!r}", f"a dataset the datasets library reads ({said}{where})") from None


def _column(ds: Any, source: str, columns: Mapping[str, str], task_column: str) -> str:
    name = columns.get(task_column, task_column)
    if name not in ds.column_names:
        raise InputError(
            source,
            f"column {name!r}",
            f"a column for {task_column!r} (has {ds.column_names[:8]}; map with --columns or data.columns)",
        )
    return name


def _text(value: Any, source: str, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputError(source, where, f"non-empty text, got {ascii(value)[:60]}")
    return value


def _classification(ds: Any, source: str, split: str, columns: Mapping[str, str]) -> dict[str, Any]:
    text_col, label_col = (_column(ds, source, columns, c) for c in COLUMNS["text-classification"])
    feature = ds.features[label_col]
    names = getattr(feature, "names", None)  # a ClassLabel: integers in the rows, names in the feature
    pairs = []
    for i, row in enumerate(ds):
        label = row[label_col]
        label = names[label] if names is not None and isinstance(label, int) and 0 <= label < len(names) else label
        if isinstance(label, float) and label.is_integer():  # pandas reads a column with a gap as floats
            label = int(label)
        if label is None or isinstance(label, bool | float | list | dict) or not str(label).strip():
            raise InputError(
                source, f"row {i} column {label_col!r}", f"a label name or whole number, got {ascii(label)[:60]}"
            )
        pairs.append([_text(row[text_col], source, f"row {i} column {text_col!r}"), str(label).strip()])
    return {split: pairs}


def _qa(ds: Any, source: str, columns: Mapping[str, str]) -> dict[str, Any]:
    id_col, q_col, c_col, a_col = (_column(ds, source, columns, c) for c in COLUMNS["extractive-qa"])
    paragraphs: dict[str, list[dict[str, Any]]] = {}
    seen: set[str] = set()
    for i, row in enumerate(ds):
        answers, where = row[a_col], f"row {i} column {a_col!r}"
        if not (isinstance(answers, dict) and isinstance(answers.get("text"), list)):
            raise InputError(source, where, "SQuAD's {'text': [...], 'answer_start': [...]}")
        starts = answers.get("answer_start") or []
        if len(starts) != len(answers["text"]) or not starts:
            raise InputError(source, where, "one or more answers, as many answer_start values as texts")
        context = _text(row[c_col], source, f"row {i} column {c_col!r}")
        for text, start in zip(answers["text"], starts, strict=True):  # the device's own check, named by row
            if not isinstance(start, int) or not isinstance(text, str) or context[start : start + len(text)] != text:
                raise InputError(source, where, f"answer_start the offset of its text in the context, got {start!r}")
        qa_id = str(row[id_col])
        if qa_id in seen:
            raise InputError(source, f"row {i} column {id_col!r}", f"a unique id, got {qa_id!r} again")
        seen.add(qa_id)
        qa = {
            "id": qa_id,
            "question": _text(row[q_col], source, f"row {i} column {q_col!r}"),
            "answers": [{"text": t, "answer_start": s} for t, s in zip(answers["text"], starts, strict=True)],
        }
        paragraphs.setdefault(context, []).append(qa)
    data = [{"title": source, "paragraphs": [{"context": c, "qas": q} for c, q in paragraphs.items()]}]
    return {"version": "1.1", "data": data}


def _conll(ds: Any, source: str, columns: Mapping[str, str]) -> str:
    """The rows as CoNLL text (``word<TAB>tag``, a blank line after each sentence), each checked as the device's
    reader would, named by row."""
    from edgekit.entities import check_tags, split_tag
    from edgekit.tasks.tokens import MAX_WORD_CHARS, MAX_WORDS

    words_col, tags_col = (_column(ds, source, columns, c) for c in COLUMNS["token-classification"])
    names = getattr(getattr(ds.features[tags_col], "feature", None), "names", None)  # Sequence(ClassLabel)
    lines = []
    for i, row in enumerate(ds):
        words, tags, where = row[words_col], row[tags_col], f"row {i} column {tags_col!r}"
        if not isinstance(words, list) or not words or not isinstance(tags, list) or len(tags) != len(words):
            raise InputError(source, f"row {i}", f"a non-empty list of words and as many tags in {tags_col!r}")
        if len(words) > MAX_WORDS:
            raise InputError(source, f"row {i} column {words_col!r}", f"a sentence of at most {MAX_WORDS:,} words")
        if names is not None:
            tags = [names[t] if isinstance(t, int) and 0 <= t < len(names) else t for t in tags]
        for w, t in zip(words, tags, strict=True):
            if not isinstance(w, str) or not w.strip() or any(c in w for c in "\t\n\r\ufeff"):
                raise InputError(
                    source,
                    f"row {i} column {words_col!r}",
                    f"words of visible characters, without tabs, line breaks or byte-order marks, got {ascii(w)[:40]}",
                )
            if len(w.strip()) > MAX_WORD_CHARS:
                raise InputError(
                    source, f"row {i} column {words_col!r}", f"words of at most {MAX_WORD_CHARS:,} characters"
                )
            try:
                split_tag(t if isinstance(t, str) else "")
            except ValueError:
                raise InputError(source, where, f"tags O, B-TYPE or I-TYPE, got {ascii(t)[:40]}") from None
        try:
            check_tags(tags, source, 1)
        except InputError:
            raise InputError(source, where, "IOB2 tags (an I-X only after B-X or I-X)") from None
        lines += [f"{w.strip()}\t{t}" for w, t in zip(words, tags, strict=True)] + [""]
    return "\n".join(lines) + "\n"


def materialize(source: str, task: str, split: str, columns: Mapping[str, str] | None = None) -> Path:
    """``source``'s ``split`` as a file in the device's format for ``task`` (see the module docstring)."""
    columns = dict(columns or {})
    unknown = sorted(set(columns) - set(COLUMNS[task]))
    if unknown:
        raise InputError(None, f"columns {unknown}", f"columns of a {task} dataset: {', '.join(COLUMNS[task])}")
    ds = _load(source, split)
    if len(ds) == 0:
        raise InputError(source, f"split {split!r}", "at least one row")
    if task == "token-classification":
        text = _conll(ds, source, columns)
    else:
        obj = _classification(ds, source, split, columns) if task == "text-classification" else _qa(ds, source, columns)
        text = json.dumps(obj, ensure_ascii=False, allow_nan=False)
    key = json.dumps([source, task, split, sorted(columns.items()), hashlib.sha256(text.encode()).hexdigest()])
    stem = "".join(c if c.isalnum() or c in "-_." else "-" for c in f"{Path(source).name}-{split}")[:60]
    suffix = ".conll" if task == "token-classification" else ".json"
    out = _cache_dir() / f"{stem}-{hashlib.sha256(key.encode()).hexdigest()[:16]}{suffix}"
    # a cache is read back as untrusted: kept only when it is a plain file holding exactly these rows
    if out.is_symlink() or not out.is_file() or out.read_bytes() != text.encode():
        out.parent.mkdir(parents=True, exist_ok=True)
        write_text(out, text)
    return out


def local_path(value: str, task: str, split: str, columns: Mapping[str, str] | None = None) -> str:
    """``value`` itself, or the file :func:`materialize` writes when ``datasets`` reads it."""
    return str(materialize(value, task, split, columns)) if is_datasets_source(value, columns) else value
