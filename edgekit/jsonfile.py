"""Every JSON file edgekit reads: one strict reader, and typed schemas for what it reads back.

A user's dataset and a file edgekit wrote earlier (a run's ``run.json``, a device's ``metrics.json``,
the ``--backend auto`` cache, a fleet's ``fleet.json``, a teacher-logit cache's key) are equally
untrusted, so they are read one way:

- at most ``max_bytes`` are read (a 50 GB file or ``/dev/zero`` under a JSON name is refused, not loaded);
- strict JSON: ``NaN`` and ``Infinity`` are refused, and so are integers of more digits than Python converts;
- nesting of at most :data:`MAX_DEPTH` levels, and text that is Unicode (no lone surrogate escapes);
- files edgekit wrote (``read_back=True``) are opened without following a link, and only if they are
  regular files: a FIFO there is not waited on (:func:`edgekit.atomic.open_in_place`);
- a dataset's large array can be read item by item (:func:`iter_members`), under the same checks.

What is read back is then checked against a typed schema: a dataclass whose annotations say each
field's type, with :class:`Range` bounds on numbers (:func:`from_json`). Every failure is one
:class:`~edgekit.errors.InputError` naming the file, the place in it and what was expected.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import types
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, BinaryIO, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from edgekit.atomic import open_in_place
from edgekit.errors import InputError

MAX_DEPTH = 64  # levels of arrays and objects; edgekit's own files use fewer than ten
MAX_BYTES = 1 << 30  # a user's dataset (SQuAD's train set is 40 MB)
READ_BACK_BYTES = 16 << 20  # a file edgekit wrote: metrics, run settings, caches' keys

T = TypeVar("T")


class NotJsonNumber(ValueError):
    """NaN or Infinity in a JSON text: Python's reader takes them, JSON has no such values."""


def reject_constant(name: str) -> Any:
    """``json.loads``' ``parse_constant`` hook: refuse NaN and Infinity, so no result can carry them on."""
    raise NotJsonNumber(name)


def read_bytes(path: str | Path, what: str, max_bytes: int = MAX_BYTES, read_back: bool = False) -> bytes:
    """A file's bytes, at most ``max_bytes`` of them; every failure an :class:`InputError` naming ``what`` it
    should be. ``read_back``: a file edgekit wrote, opened without following a link (see the module docstring)."""
    path = Path(path)
    try:
        if read_back:
            with open_in_place(path, "rb") as fh:
                data = _read_at_most(fh, max_bytes)
        else:
            if path.exists() and not path.is_dir() and not path.is_file():  # a FIFO or device never ends
                raise InputError(path, "file", f"a regular {what} file, not a device or a pipe")
            with open(path, "rb") as fh:
                data = _read_at_most(fh, max_bytes)
    except FileNotFoundError:
        raise InputError(path, "file", f"an existing {what} file") from None
    except IsADirectoryError:
        raise InputError(path, "file", f"a {what} file, not a directory") from None
    except OSError as exc:  # a path through a file, too long, a link loop, an unreadable device
        raise InputError(path, "file", f"a readable {what} file ({exc.strerror or exc})") from None
    if len(data) > max_bytes:
        raise InputError(path, "size", f"a {what} file of at most {max_bytes:,} bytes")
    return data


def _read_at_most(fh: BinaryIO, max_bytes: int) -> bytes:
    """Up to ``max_bytes + 1`` bytes of an open file, in one buffer of the file's own size: ``read(max_bytes + 1)``
    would ask the C heap for the whole bound first, more than a 512 MB device has."""
    size = os.fstat(fh.fileno()).st_size
    data = fh.read(min(size, max_bytes) + 1)
    if len(data) <= size:  # the end of the file, or a file over the bound
        return data
    chunks = [data]  # it grew after the size was read: on in chunks, to the bound
    total = len(data)
    while total <= max_bytes and (chunk := fh.read(min(1 << 20, max_bytes + 1 - total))):
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def read_text(path: str | Path, what: str, max_bytes: int = MAX_BYTES) -> str:
    """A file's UTF-8 text (see :func:`read_bytes`), without the byte-order mark some editors begin it with."""
    raw = read_bytes(path, what, max_bytes)
    skip = 3 if raw.startswith(b"\xef\xbb\xbf") else 0
    try:
        return raw[skip:].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(path, f"byte {exc.start + skip}", "UTF-8 text") from None


def loads(data: str | bytes, path: str | Path | None, where: str = "") -> Any:
    """Parse strict JSON text (one file's, or one line of a log: ``where`` says which), checked as the module
    docstring says."""
    at = f"{where} " if where else ""
    with _parsing(path, at):
        obj = json.loads(data, parse_constant=reject_constant)
    _check_tree(obj, path, where or "top level")
    return obj


@contextmanager
def _parsing(path: str | Path | None, at: str) -> Iterator[None]:
    """The parser's failures as one InputError each, named by their place."""
    try:
        yield
    except json.JSONDecodeError as exc:
        raise InputError(path, f"{at}line {exc.lineno} column {exc.colno}", f"valid JSON ({exc.msg})") from None
    except UnicodeDecodeError as exc:
        raise InputError(path, f"{at}byte {exc.start}", "UTF-8 text") from None
    except RecursionError:
        raise InputError(path, f"{at}nesting", f"JSON nested at most {MAX_DEPTH} levels deep") from None
    except NotJsonNumber as exc:
        raise InputError(path, f"{at}value {exc}", "valid JSON (NaN and Infinity are not JSON numbers)") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise InputError(path, f"{at}value", f"valid JSON within edgekit's limits ({exc})") from None


_SPACE = re.compile(r"[ \t\n\r]*")


def iter_members(
    path: str | Path, what: str, stream: str, max_bytes: int = MAX_BYTES
) -> Iterator[tuple[str, int | None, Any]]:
    """A JSON file's top-level object, member by member in file order, as ``(name, None, value)``; the array
    member ``stream`` item by item instead, as ``(stream, index, item)`` (empty: ``(stream, None, [])``), each
    parsed and checked as
    :func:`loads` checks a file. A large dataset is then never a whole parsed tree at once: its items are
    kept as the caller keeps them, and each one's parse garbage is reused by the next."""
    text = read_text(path, what, max_bytes)
    decoder = json.JSONDecoder(parse_constant=reject_constant)

    def space(pos: int) -> int:
        return _SPACE.match(text, pos).end()  # type: ignore[union-attr]  (matches the empty string too)

    def expect(pos: int, chars: str, msg: str) -> int:
        if pos >= len(text) or text[pos] not in chars:
            raise json.JSONDecodeError(msg, text, pos)
        return pos + 1

    def value(pos: int, member: str) -> tuple[Any, int]:
        obj, end = decoder.raw_decode(text, pos)
        _check_tree(obj, path, "top level", member)
        return obj, end

    with _parsing(path, ""):
        pos = space(0)
        if not text.startswith("{", pos):
            loads(text, path)  # not JSON at all is named as such; JSON of another shape is refused below
            raise InputError(path, "top level", f"a JSON object with a '{stream}' member")
        pos = space(pos + 1)
        if text.startswith("}", pos):
            pos += 1
        else:
            while True:
                expect(pos, '"', "Expecting property name enclosed in double quotes")
                name, pos = decoder.raw_decode(text, pos)
                pos = space(expect(space(pos), ":", "Expecting ':' delimiter"))
                if name == stream and text.startswith("[", pos):
                    pos = space(pos + 1)
                    i = 0
                    while not text.startswith("]", pos):
                        if i:
                            pos = space(expect(pos, ",", "Expecting ',' delimiter"))
                        item, pos = value(pos, f"{stream}[{i}]")
                        yield name, i, item
                        pos = space(pos)
                        i += 1
                    pos += 1
                    if not i:
                        yield name, None, []  # an empty array is still the member
                else:
                    member, pos = value(pos, name)
                    yield name, None, member
                pos = space(pos)
                if text.startswith("}", pos):
                    pos += 1
                    break
                pos = space(expect(pos, ",", "Expecting ',' delimiter"))
        if space(pos) != len(text):
            raise json.JSONDecodeError("Extra data", text, space(pos))


def _check_tree(obj: Any, path: str | Path | None, where: str, member: str = "") -> None:
    """Nesting depth and Unicode text over the whole value, iteratively (no recursion to exhaust); a problem is
    named by its place in the value (found by a second walk that keeps places, so a good file pays for none).
    ``member``: the value's own place in the file (``data[3]``), which the place of a problem starts with."""
    if _problem(obj, track=False) is None:
        return
    problem = _problem(obj, track=True)
    assert problem is not None
    kind, at, detail = problem
    if member:
        at = member + ("." if at and not at.startswith("[") else "") + at
        if kind == "depth":
            where = f"field '{member}'"
    place = where if not at else f"field '{at}'" if where == "top level" else f"{where}: field '{at}'"
    if kind == "depth":  # the place would be a list of indices as long as the nesting
        at_line = f"{where}: " if where != "top level" else ""
        raise InputError(path, f"{at_line}nesting", f"JSON nested at most {MAX_DEPTH} levels deep")
    raise InputError(path, place, f"Unicode text, got a lone surrogate escape at character {detail}")


def _problem(obj: Any, track: bool) -> tuple[str, str, int] | None:
    """The first value nested too deep or text that is not Unicode: (kind, its place if ``track``, detail)."""
    stack: list[tuple[Any, int, str]] = [(obj, 0, "")]
    while stack:
        value, depth, at = stack.pop()
        if isinstance(value, str):
            bad = _surrogate_at(value)
            if bad is not None:
                return "text", at, bad
        elif isinstance(value, dict | list):
            if depth >= MAX_DEPTH:
                return "depth", at, depth
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str) and (bad := _surrogate_at(key)) is not None:
                    return "text", at, bad
                if isinstance(item, str | dict | list):
                    inner = (f"{at}.{key}" if at else str(key)) if isinstance(key, str) else f"{at}[{key}]"
                    stack.append((item, depth + 1, inner if track else ""))
    return None


def _surrogate_at(text: str) -> int | None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # JSON may escape half of a surrogate pair ("\ud800"): not text
        return exc.start
    return None


def read_json(path: str | Path, what: str = "JSON", max_bytes: int = MAX_BYTES, read_back: bool = False) -> Any:
    """A JSON file, read and parsed strictly (see the module docstring)."""
    return loads(read_bytes(path, what, max_bytes, read_back), path)


# -- typed schemas ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Range:
    """Bounds of a number in a schema: ``Annotated[float, Range(0, 100)]``."""

    low: float
    high: float


def _place(at: str) -> str:
    return f"field '{at}'" if at else "top level"


def check_value(value: Any, hint: Any, path: str | Path | None, at: str = "") -> Any:
    """``value`` if it is of type ``hint`` (a schema annotation), else an :class:`InputError` naming field ``at``
    (dotted, as ``latency_ms.p50``); a dataclass hint returns the dataclass built from it."""
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return value
    if origin is Annotated:
        value = check_value(value, args[0], path, at)
        for bound in args[1:]:
            if isinstance(bound, Range) and not bound.low <= value <= bound.high:
                raise InputError(path, _place(at), f"a number from {bound.low:g} to {bound.high:g}, got {_show(value)}")
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return check_value(value, arg, path, at)
            except InputError as exc:
                errors.append(exc.expected)
        raise InputError(path, _place(at), " or ".join(dict.fromkeys(errors)))
    if origin is Literal:
        if not any(value == a and type(value) is type(a) for a in args):
            raise InputError(path, _place(at), f"one of {list(args)}, got {_show(value)}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise InputError(path, _place(at), f"a JSON array, got {_kind(value)}")
        return [check_value(v, args[0], path, f"{at}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise InputError(path, _place(at), f"a JSON object, got {_kind(value)}")
        return {k: check_value(v, args[1], path, f"{at}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(hint):
        return from_json(typing.cast(type, hint), value, path, at)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not _finite(value):
            raise InputError(path, _place(at), f"a finite number, got {_show(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(path, _place(at), f"a whole number, got {_show(value)}")
        return value
    if hint in (str, bool):
        if not isinstance(value, hint):
            raise InputError(path, _place(at), f"{_NAMES[hint]}, got {_show(value)}")
        return value
    raise TypeError(f"schema type {hint!r} is not one edgekit.jsonfile checks")


_NAMES: dict[Any, str] = {str: "text", bool: "true or false"}


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer beyond any float
        return False


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "text", bool: "a boolean"}.get(type(value), _show(value))


def _show(value: Any) -> str:
    return ascii(value)[:60]


def from_json(cls: type[T], obj: Any, path: str | Path | None, at: str = "") -> T:
    """An instance of dataclass ``cls`` from a parsed JSON object (field ``at`` of a larger one, or the whole
    file), every field checked against its annotation; fields with a default may be missing, and unknown keys
    are ignored (later versions may add fields)."""
    if not isinstance(obj, dict):
        raise InputError(path, _place(at), f"a JSON object, got {_kind(obj)}")
    hints = get_type_hints(cls, include_extras=True)
    kwargs = {}
    for f in dataclasses.fields(typing.cast(Any, cls)):
        name = f"{at}.{f.name}" if at else f.name
        if f.name not in obj:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise InputError(path, _place(name), "present (it is missing)")
            continue
        kwargs[f.name] = check_value(obj[f.name], hints[f.name], path, name)
    return cls(**kwargs)
