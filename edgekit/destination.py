"""Where a command may write: never over what it did not make.

Every command that writes a directory names the kind of output it makes and what it
reads. Before anything is written the destination is checked:

- never the working directory or one of its parents, never a source the command reads,
  a parent of one, or a directory inside one;
- an existing directory is taken only when it is empty or holds the same kind of output
  (its marker file: a bundle's ``manifest.json``, a run's ``run.json``, ...); anything else
  is refused with one line, and nothing is touched;
- never a link: a link at the destination's own name is refused, never followed. Links among its parents
  are the user's own path (a home or ``/tmp`` may be one) and are followed as every program follows them;
- never under a file: a path through a regular file is refused before anything loads.

One-shot outputs (bundles, reports) are built in a temporary sibling and swapped into
place (:func:`replacing`), so an interrupted command leaves the old output or the new
one, never half of either. Outputs that grow and resume (runs, training, deploys) are
claimed once (:func:`claim`) and then written file by file, each write atomic.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from edgekit.atomic import umask
from edgekit.errors import InputError


@dataclass(frozen=True)
class OutputKind:
    """A kind of output directory and the files that mark one (any of them)."""

    what: str
    markers: tuple[str, ...]

    def owns(self, path: Path) -> bool:
        return any((path / m).is_file() and not (path / m).is_symlink() for m in self.markers)


LOCK_FILE = ".edgekit.lock"  # see locked(); a directory holding only it counts as empty
BUNDLE = OutputKind("an edge bundle", ("manifest.json",))
RUN = OutputKind("an edgekit run directory", ("run.json",))
REPORT = OutputKind("an edgekit report", ("report.json",))
SWEEP = OutputKind("an edgekit thread sweep", ("sweep.json",))
VOCAB_CURVE = OutputKind("an edgekit vocabulary curve", ("curve-settings.json",))
SENSITIVITY = OutputKind("an edgekit int8 sensitivity", ("sensitivity.json",))
DEPLOY = OutputKind("an edgekit deploy's results", ("deploy.json",))
FLEET = OutputKind("an edgekit fleet deploy's results", ("fleet.json",))
TRAINING = OutputKind("an edgekit training output", ("checkpoint-settings.json", "result.json"))


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _inside(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def _own_lock(p: Path) -> bool:
    """A lock file a failed edgekit command left behind: a regular file of that name, not a link to one."""
    return p.name == LOCK_FILE and p.is_file() and not p.is_symlink()


def check_destination(out: str | Path, kind: OutputKind, sources: Iterable[str | Path] = ()) -> Path:
    """Refuse ``out`` unless this command may write ``kind`` there (see the module docstring); returns it."""
    out = Path(out)
    real = _real(out)
    cwd = _real(Path.cwd())
    if _inside(cwd, real):
        raise InputError(out, "output directory", "a new directory, not the working directory or one of its parents")
    for src in sources:
        s = _real(Path(src))
        if _inside(s, real) or _inside(real, s):
            raise InputError(
                out, "output directory", f"a directory apart from the input {src} (not it, inside it or above it)"
            )
    if out.is_symlink():  # a write never follows a link: the directory it names is not this command's to replace
        raise InputError(out, "output directory", "a directory, not a link (it is left alone)")
    # refused now, before any model loads, rather than when the directory is made
    above = next((a for a in out.absolute().parents if a.exists()), None)
    if above is not None and not above.is_dir():
        raise InputError(out, "output directory", f"a path through directories; {above} is a file")
    if out.exists():
        if not out.is_dir():
            raise InputError(out, "output directory", "a directory; this is a file")
        if any(not _own_lock(p) for p in out.iterdir()) and not kind.owns(out):
            marker = " or ".join(kind.markers)
            raise InputError(
                out,
                "output directory",
                f"a new or empty directory, or {kind.what} (with {marker}); it holds other files, which are left alone",
            )
    return out


def claim(out: str | Path, kind: OutputKind, sources: Iterable[str | Path] = ()) -> Path:
    """Check ``out`` and create it: for outputs written piece by piece and resumed."""
    out = check_destination(out, kind, sources)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(out, "output directory", f"a writable directory ({exc.strerror})") from None
    return out


@contextmanager
def replacing(out: str | Path, kind: OutputKind, sources: Iterable[str | Path] = ()) -> Iterator[Path]:
    """Yield a temporary sibling of ``out`` to build in; on success it takes ``out``'s place.

    An earlier output of the same kind is moved aside, the new one renamed in, then the old one
    removed; on failure only the temporary directory goes.
    """
    out = check_destination(out, kind, sources)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
        tmp.chmod(0o777 & ~umask())  # mkdtemp makes 0700; the output gets what a plain mkdir would give
    except OSError as exc:
        raise InputError(out, "output directory", f"a writable place ({exc.strerror})") from None
    old = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.old")
    try:
        yield tmp
        if out.exists():
            os.rename(out, old)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not out.exists():  # interrupted between the two renames: the earlier output returns
            os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def locked(out: Path) -> Iterator[None]:
    """Hold an OS lock on directory ``out`` (``flock`` on a file inside it) for as long as one command writes it.

    A second command into the same directory is refused at once, not queued: two runs appending
    to one prediction log would corrupt it for every later resume. The lock goes with the process,
    so a killed command never leaves a stale one.
    """
    import fcntl

    try:  # O_NOFOLLOW: a link planted at the lock's name is refused, never followed and truncated
        fd = os.open(out / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        raise InputError(
            out / LOCK_FILE, "lock file", f"a regular file edgekit made, not a link ({exc.strerror})"
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
            raise InputError(
                out, "output directory", f"a directory no other edgekit command is writing (process {holder} is)"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)
