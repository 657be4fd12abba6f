"""How a result file was made: the command line a person can rerun to get it again.

Every results writer records the command that produced it (the README's figures must come from a
named command). Entry points run as ``python -m MODULE``, so ``sys.argv[0]`` is a path on the
machine that ran them; recording the module name instead gives a line that reruns anywhere.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def module_command(module: str, argv: Sequence[str] | None = None) -> list[str]:
    """``python -m MODULE ARGS``, with ARGS from ``argv`` or, when ``None``, this process's own."""
    return ["python", "-m", module, *(sys.argv[1:] if argv is None else argv)]
