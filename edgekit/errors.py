"""One error type for everything a user can get wrong.

Every refusal names the file, the place inside it and what was expected, so the
CLI can print one clear line instead of a traceback.
"""

from __future__ import annotations

from pathlib import Path


class EdgekitError(Exception):
    """A user-facing error: bad input, a corrupt bundle, an impossible setting (exit status 2)."""

    exit_code = 2


class InputError(EdgekitError):
    """A file's content is not what edgekit expects.

    ``where`` is the location inside the file (article/paragraph/question index or
    id, manifest field); ``expected`` says what would have been accepted.
    """

    def __init__(self, path: str | Path | None, where: str, expected: str) -> None:
        self.path = str(path) if path is not None else None
        self.where = where
        self.expected = expected
        prefix = f"{self.path}: " if self.path else ""
        super().__init__(f"{prefix}{where}: expected {expected}")


class BundleError(InputError):
    """An edge bundle is incomplete, tampered with, or does not match its manifest."""


class DeviceError(EdgekitError):
    """The device could not be reached, or the run on it did not finish (exit status 3).

    Not the user's input: the same command may succeed when the device is back, and a deploy
    resumes where the device stopped.
    """

    exit_code = 3


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, as Ctrl-C raises ``KeyboardInterrupt``.

    A subclass of it, so every clean-up written for an interrupt (partial output directories, temporary
    copies, lock files) runs for a ``kill`` or a stopped service too, instead of the process dying where
    it stood.
    """
