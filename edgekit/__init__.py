"""edgekit: ship small, fast students (extractive QA, text classification) to edge devices.

This package is the device side: everything here imports without torch, so the
same code runs on a desktop, a Raspberry Pi and Android (Termux). Installed from the
wheel it also holds the workstation side, ``edgekit.export`` and ``edgekit.device_runners``
(the repository's ``export/`` and ``device_runners/``), which ``edgekit deploy`` never ships.

An app calls :func:`load`: ``edgekit.load("models/NAME")(question=..., context=...)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

__version__ = "0.1.0"


def load(bundle: str | Path, threads: int | None = None, backend: str | None = None, low_memory: bool = False) -> Any:
    """A bundle's task as a pipeline called like transformers' (see :mod:`edgekit.api`); imported when first
    called, so ``import edgekit`` stays free of the runtimes."""
    from edgekit.api import load as load_pipeline

    return load_pipeline(bundle, threads=threads, backend=backend, low_memory=low_memory)
