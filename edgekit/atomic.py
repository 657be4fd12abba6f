"""Atomic file writes: a result file is either the old one or the new one, never half.

Writes go to a temporary file in the same directory, are fsync'ed, then renamed
over the target (rename is atomic on POSIX within one filesystem): a link planted at
the target is replaced, never followed. A file that must be opened in place (the
prediction log, appended to and cut back on resume) is opened by :func:`open_in_place`,
which refuses links and anything that is not a regular file.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

from edgekit.errors import InputError


def umask() -> int:
    """This process's file-mode creation mask (reading it means setting it: put straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def open_in_place(path: str | Path, mode: str) -> BinaryIO:
    """``path`` opened in binary ``mode`` (``"rb"``, ``"r+b"``, or ``"ab"``, which creates it) without following a
    link at its name, and only if it is a regular file: a link planted in an output directory could otherwise
    point a resumed run's repair or appends at a file outside it, and a FIFO there would block forever."""
    flags = {"rb": os.O_RDONLY, "r+b": os.O_RDWR, "ab": os.O_WRONLY | os.O_APPEND | os.O_CREAT}[mode]
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK, 0o666 & ~umask())
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO):  # a link, or a FIFO no one reads
            raise InputError(path, "file", "a regular file, not a link, FIFO or device") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InputError(path, "file", "a regular file, not a link, FIFO or device")
    os.set_blocking(fd, True)
    return os.fdopen(fd, mode)


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, with the permissions a plain ``open`` would give."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:  # named by the path asked for, not the temporary file beside it
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    try:
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes 0600 files
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented, strict JSON atomically (keys kept in insertion order).

    NaN and infinity are refused (``ValueError``): they are not JSON, and no other program could read the
    file. Text that UTF-8 cannot carry (a file name's undecodable bytes, kept by Python as lone
    surrogates) is written as ``\\u`` escapes, so the file is valid either way and reads back equal.
    """
    text = json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        data = (json.dumps(obj, indent=2, ensure_ascii=True, allow_nan=False) + "\n").encode("ascii")
    write_bytes(path, data)
