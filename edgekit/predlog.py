"""``predictions.jsonl``: the append-only log that makes a killed run resumable.

One JSON object per answered question, written and flushed as soon as it is
known. On resume the log is read back; a torn last line (the process died while
writing it, so the file ends before the line's newline) is cut off and reported, never silently dropped or counted twice; a
bad line anywhere else or a repeated id is an error, because it means the file
was edited or two runs wrote into it. A record is checked as the runner wrote it:
each field of its type and range, and what the task checks against the bundle and
the example (a label of the bundle's, a tag per word), so that nothing a resumed
run adopts could not have come from the model.
"""

from __future__ import annotations

import io
import json
import math
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

from edgekit.atomic import open_in_place
from edgekit.errors import InputError
from edgekit.jsonfile import loads

Fields = Mapping[str, type | tuple[type, ...]]


def read_log(
    path: str | Path,
    repair: bool = True,
    fields: Fields | None = None,
    check: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Records of a predictions log, in order (see :func:`iter_log`)."""
    return list(iter_log(path, repair, fields, check))


def iter_log(
    path: str | Path,
    repair: bool = True,
    fields: Fields | None = None,
    check: Callable[[dict[str, Any]], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """Records of a predictions log, in order, one line read at a time (a device's run keeps only what it
    takes from each); a torn final line (one that is not JSON) is truncated away once the iteration reaches it.
    ``fields``: what each record must hold (the runner's and its task's fields); by default those of an
    extractive-QA run. ``check``: the task's own check of a record, raising ``ValueError``."""
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
            except (ValueError, InputError) as exc:
                if repair and not line.endswith(b"\n"):  # the file's end without its newline: an interrupted write
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
            try:
                check_record(rec, fields)
                if check is not None:
                    check(rec)
            except ValueError as exc:
                raise InputError(
                    path, f"line {i + 1}", f"a prediction record as the runner writes it ({exc})"
                ) from None
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


# the range of each numeric field the runner writes (an hour per example at most, a probability, ...)
BOUNDS: dict[str, tuple[float, float]] = {
    "latency_ms": (0.0, 3.6e6),
    "model_ms": (0.0, 3.6e6),
    "peak_rss_mb": (0.0, 1e7),
    "confidence": (0.0, 1.0),
    "windows": (0, 10**9),  # 0: a sentence none of whose words makes a token
    "start_char": (0, 10**9),
}


def check_record(rec: Any, fields: Fields | None = None) -> None:
    """Raise ``ValueError`` unless ``rec`` is a prediction record as the runner writes it."""
    if not isinstance(rec, dict):
        raise ValueError("not a JSON object")
    fields = RECORD_FIELDS if fields is None else fields
    for key, kind in fields.items():
        value = rec.get(key)
        if isinstance(value, bool) or not isinstance(value, kind):
            raise ValueError(f"field {key!r} missing or not a {getattr(kind, '__name__', 'number')}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"field {key!r} not finite")
        low, high = BOUNDS.get(key, (-math.inf, math.inf))
        if isinstance(value, int | float) and not low <= value <= high:
            raise ValueError(f"field {key!r} from {low:g} to {high:g}, got {value!r}")
    if {"model_ms", "latency_ms"} <= fields.keys() and rec["model_ms"] > rec["latency_ms"]:
        raise ValueError("field 'model_ms' at most 'latency_ms' (the model call is part of it)")


def open_log(path: str | Path) -> TextIO:
    """Open the log for appending (never through a link); call :func:`append` for each record."""
    return io.TextIOWrapper(open_in_place(path, "ab"), encoding="utf-8")


def append(fh: TextIO, record: dict[str, Any]) -> None:
    """Write one record as a single line and push it to the OS (survives SIGKILL)."""
    fh.write(json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n")  # strict JSON: no NaN or Infinity
    fh.flush()
    os.fsync(fh.fileno())
