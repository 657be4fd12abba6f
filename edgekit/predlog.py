"""``predictions.jsonl``: the append-only log that makes a killed run resumable.

One JSON object per answered question, written and flushed as soon as it is
known. On resume the log is read back; a torn last line (the process died while
writing it) is cut off and reported, never silently dropped or counted twice; a
bad line anywhere else or a repeated id is an error, because it means the file
was edited or two runs wrote into it.
"""

from __future__ import annotations

import io
import json
import math
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

from edgekit.atomic import open_in_place
from edgekit.errors import InputError
from edgekit.jsonfile import loads


def read_log(
    path: str | Path, repair: bool = True, fields: Mapping[str, type | tuple[type, ...]] | None = None
) -> list[dict[str, Any]]:
    """Records of a predictions log, in order (see :func:`iter_log`)."""
    return list(iter_log(path, repair, fields))


def iter_log(
    path: str | Path, repair: bool = True, fields: Mapping[str, type | tuple[type, ...]] | None = None
) -> Iterator[dict[str, Any]]:
    """Records of a predictions log, in order, one line read at a time (a device's run keeps only what it
    takes from each); a torn final line is truncated away once the iteration reaches it. ``fields``: what each
    record must hold (the runner's and its task's fields); by default those of an extractive-QA run."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    seen: set[str] = set()
    pos = 0
    line = b""
    with open_in_place(path, "rb") as fh:
        for i, line in enumerate(fh):
            if not line.strip():
                pos += len(line)
                continue
            try:
                rec = loads(line, path, f"line {i + 1}")
                check_record(rec, fields)
            except (ValueError, InputError) as exc:
                if repair and not fh.read().strip():  # nothing but blank lines after it: an interrupted write
                    print(
                        f"{path}: line {i + 1} is incomplete (interrupted write); truncating it and "
                        "answering that question again",
                        file=sys.stderr,
                    )
                    with open_in_place(path, "r+b") as out:
                        out.truncate(pos)
                    return
                said = exc.expected if isinstance(exc, InputError) else str(exc)
                raise InputError(path, f"line {i + 1}", f"one JSON prediction record per line ({said})") from None
            if rec["id"] in seen:
                raise InputError(path, f"line {i + 1} (id {rec['id']})", "each question id once")
            seen.add(rec["id"])
            pos += len(line)
            yield rec
    if line and not line.endswith(b"\n"):
        # a complete record without its newline: keep it, and end the line for the next append
        with open_in_place(path, "ab") as out:
            out.write(b"\n")


# What the runner writes for each example (edgekit.runner) whatever the task: every field, of its type, finite
COMMON_FIELDS: dict[str, type | tuple[type, ...]] = {
    "id": str,
    "latency_ms": (int, float),
    "model_ms": (int, float),
    "peak_rss_mb": (int, float),
}
# ... and, with an extractive-QA bundle, its task's (edgekit.tasks.qa)
RECORD_FIELDS: dict[str, type | tuple[type, ...]] = {
    **COMMON_FIELDS,
    "answer": str,
    "start_char": int,
    "confidence": (int, float),
    "windows": int,
}


def check_record(rec: Any, fields: Mapping[str, type | tuple[type, ...]] | None = None) -> None:
    """Raise ``ValueError`` unless ``rec`` is a prediction record as the runner writes it."""
    if not isinstance(rec, dict):
        raise ValueError("not a JSON object")
    for key, kind in (RECORD_FIELDS if fields is None else fields).items():
        value = rec.get(key)
        if isinstance(value, bool) or not isinstance(value, kind):
            raise ValueError(f"field {key!r} missing or not a {getattr(kind, '__name__', 'number')}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"field {key!r} not finite")


def open_log(path: str | Path) -> TextIO:
    """Open the log for appending (never through a link); call :func:`append` for each record."""
    return io.TextIOWrapper(open_in_place(path, "ab"), encoding="utf-8")


def append(fh: TextIO, record: dict[str, Any]) -> None:
    """Write one record as a single line and push it to the OS (survives SIGKILL)."""
    fh.write(json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n")  # strict JSON: no NaN or Infinity
    fh.flush()
    os.fsync(fh.fileno())
