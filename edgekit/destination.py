"""Where a command may write: never over what it did not make.

Every command that writes a directory names the kind of output it makes and what it
reads. Before anything is written the destination is checked:

- never the working directory or one of its parents, never a source the command reads,
  a parent of one, or a directory inside one;
- an existing directory is taken only when it is empty or holds the same kind of output
  (its marker file: a bundle's ``manifest.json``, a run's ``run.json``, ...); anything else
  is refused with one line, and nothing is touched;
- an output that is replaced whole (bundles, reports, ...) is replaced only when every file in it is
  one edgekit wrote there, unchanged: a bundle's manifest lists its files with their hashes, and
  the other kinds carry the same list in ``.edgekit-files.json``. A file a user added or edited
  keeps the whole directory as it is;
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
import sys
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from edgekit.atomic import umask, write_json
from edgekit.errors import InputError
from edgekit.jsonfile import READ_BACK_BYTES, read_json


@dataclass(frozen=True)
class OutputKind:
    """A kind of output directory and the files that mark one (any of them); ``swapped``: made whole and
    swapped in by :func:`replacing`, so that an existing one is checked file by file before anything loads."""

    what: str
    markers: tuple[str, ...]
    swapped: bool = False

    def owns(self, path: Path) -> bool:
        return any((path / m).is_file() and not (path / m).is_symlink() for m in self.markers)


LOCK_FILE = ".edgekit.lock"  # see locked(); a directory holding only it counts as empty
RECORD = ".edgekit-files.json"  # what replacing() wrote: {relative path: sha256}
BUNDLE = OutputKind("an edge bundle", ("manifest.json",), swapped=True)
RUN = OutputKind("an edgekit run directory", ("run.json",))
REPORT = OutputKind("an edgekit report", ("report.json",), swapped=True)
SWEEP = OutputKind("an edgekit thread sweep", ("sweep.json",))
VOCAB_CURVE = OutputKind("an edgekit vocabulary curve", ("curve-settings.json",))
SENSITIVITY = OutputKind("an edgekit int8 sensitivity", ("sensitivity.json",), swapped=True)
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


def _written(out: Path, kind: OutputKind) -> dict[str, str | None] | None:
    """The files edgekit recorded writing in ``out``, each with its sha256 (None only for the record itself):
    a bundle's manifest lists its own, every other swapped output its record; None when there is no record
    to read. Read as untrusted: names are only compared with what is there, never opened one by one."""
    try:
        if kind == BUNDLE:
            found = read_json(out / "manifest.json", "manifest", READ_BACK_BYTES, read_back=True)["files"]
            found = {k: v.get("sha256") for k, v in found.items() if isinstance(v, dict)}
            own = "manifest.json"
        else:
            found = read_json(out / RECORD, "record of written files", READ_BACK_BYTES, read_back=True)
            own = RECORD
        return {str(k): v for k, v in found.items() if isinstance(v, str)} | {own: None}
    except (InputError, AttributeError, KeyError, TypeError):
        return None


def _entries(out: Path) -> Iterator[tuple[str, Path]]:
    """Every entry under ``out`` (relative path, path), links not followed; a directory it cannot list raises."""

    def fail(exc: OSError) -> None:
        raise exc

    for top, dirs, files in os.walk(out, onerror=fail):
        for name in sorted([*dirs, *files]):
            p = Path(top) / name
            yield p.relative_to(out).as_posix(), p


def _not_written(out: Path, kind: OutputKind) -> str | None:
    """The first entry in ``out`` that edgekit did not write there, or that changed since (a file, link or
    directory the record does not account for, or one it cannot read); None if none."""
    from edgekit.bundle import sha256_file  # edgekit.bundle builds on this module

    written = _written(out, kind)
    if written is None:
        return "manifest.json" if kind == BUNDLE else RECORD
    folders = {parent.as_posix() for rel in written for parent in PurePosixPath(rel).parents}
    try:
        for rel, p in _entries(out):
            if p.is_dir() and not p.is_symlink():
                if rel not in folders:
                    return rel
            elif rel == LOCK_FILE and _own_lock(p):
                continue
            elif rel not in written or p.is_symlink() or not p.is_file():
                return rel
            elif written[rel] is not None and sha256_file(p) != written[rel]:
                return rel
    except OSError as exc:  # a directory it cannot list, a file it cannot read: not known to be edgekit's
        return os.path.relpath(exc.filename, out) if exc.filename else "."
    return None


def record_written(out: Path) -> None:
    """Write the record of every file in ``out`` (built by :func:`replacing`), so that a later command may
    replace it whole."""
    from edgekit.bundle import sha256_file

    files = {rel: sha256_file(p) for rel, p in _entries(out) if p.is_file() and not p.is_symlink() and rel != LOCK_FILE}
    write_json(out / RECORD, files)


def check_destination(
    out: str | Path, kind: OutputKind, sources: Iterable[str | Path] = (), replace: bool | None = None
) -> Path:
    """Refuse ``out`` unless this command may write ``kind`` there (see the module docstring); returns it.
    ``replace`` (default: ``kind.swapped``): the existing output will be replaced whole, so every file in
    it must be one edgekit wrote."""
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
        held = any(not _own_lock(p) for p in out.iterdir())
        if held and not kind.owns(out):
            marker = " or ".join(kind.markers)
            raise InputError(
                out,
                "output directory",
                f"a new or empty directory, or {kind.what} (with {marker}); it holds other files, which are left alone",
            )
        foreign = _not_written(out, kind) if held and (kind.swapped if replace is None else replace) else None
        if foreign == RECORD and not (out / RECORD).exists():
            raise InputError(
                out / RECORD,
                "file",
                f"the record of the files edgekit wrote in {kind.what}, to replace it; without one (not made by "
                f"edgekit, or by an earlier version) {out} is left alone: move it, or choose another directory",
            )
        if foreign is not None:
            raise InputError(
                out / foreign,
                "file",
                f"only files edgekit wrote in {kind.what}, unchanged, to replace it; this one it did not write or "
                f"it changed since, so {out} is left alone (move the file, or choose another directory)",
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

    An earlier output of the same kind, all of whose files edgekit wrote, is moved aside, the new one
    renamed in, then the old one removed; on failure only the temporary directory goes. The new output
    records its files (a bundle's manifest does so itself).
    """
    out = check_destination(out, kind, sources, replace=True)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
        tmp.chmod(0o777 & ~umask())  # mkdtemp makes 0700; the output gets what a plain mkdir would give
    except OSError as exc:
        raise InputError(out, "output directory", f"a writable place ({exc.strerror})") from None
    old = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.old")
    try:
        yield tmp
        if kind != BUNDLE:
            record_written(tmp)
        if out.exists():
            check_destination(out, kind, sources, replace=True)  # again: a file may have been added meanwhile
            os.rename(out, old)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not out.exists():  # interrupted between the two renames: the earlier output returns
            os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)
    if old.exists() or old.is_symlink():  # a file the system would not let go (permissions): said, not hidden
        print(f"edgekit: the earlier {out.name} is at {old}, which could not be removed", file=sys.stderr)


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
