"""How a result file was made: the command line a person can rerun to get it again.

Every results writer records the command that produced it (the README's figures must come from a
named command). Entry points run as ``python -m MODULE``, so ``sys.argv[0]`` is a path on the
machine that ran them; recording the module name instead gives a line that reruns anywhere.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path


def module_command(module: str, argv: Sequence[str] | None = None) -> list[str]:
    """``python -m MODULE ARGS``, with ARGS from ``argv`` or, when ``None``, this process's own.

    Absolute paths are recorded relative to the working directory (see :func:`portable`): a results file
    that held ``/home/someone/data/dev.tsv`` would render differently in every checkout that reads it.
    """
    return portable(["python", "-m", module, *(sys.argv[1:] if argv is None else argv)], Path.cwd())


def portable(cmd: Sequence[str], root: Path) -> list[str]:
    """A recorded command as a person reruns it from the checkout ``root``: an interpreter path becomes
    ``python``, and absolute paths inside ``root`` or beside it (a data or model folder) become relative, so a
    results page shows no one machine's directories. Other arguments are kept as recorded."""
    out = [str(c) for c in cmd]
    if out and Path(out[0]).name.startswith("python"):
        out[0] = "python"
    for i, c in enumerate(out):
        if os.path.isabs(c):
            rel = os.path.relpath(c, root)
            if not rel.startswith(os.pardir + os.sep + os.pardir):
                out[i] = rel
    return out
