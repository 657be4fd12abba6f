"""Model runtimes behind one interface: feeds by input name in, (start, end) logits out.

Each backend lives in its own module and imports its runtime lazily, so a device
needs only the runtime of the bundles it runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from edgekit.bundle import Bundle
from edgekit.errors import EdgekitError


@dataclass(frozen=True)
class RuntimeOptions:
    """Settings every backend understands.

    ``threads`` is the intra-op thread count (None: the runtime's default, usually
    all cores); ``low_memory`` trades a little speed for a smaller footprint
    (ONNX Runtime: CPU memory arena and memory pattern off).
    """

    threads: int | None = None
    low_memory: bool = False

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads <= 0:
            raise EdgekitError(f"threads={self.threads}: expected a positive thread count")


class Backend(Protocol):
    """A loaded model. ``fixed_seq_len`` is set when the model has a static length."""

    name: str
    fixed_seq_len: int | None

    def __call__(self, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]: ...


def open_backend(bundle: Bundle, options: RuntimeOptions) -> Backend:
    """Load the bundle's model with the runtime its format needs."""
    fmt = bundle.manifest.model_format
    if fmt == "onnx":
        from edgekit.backends.onnx import OnnxBackend

        return OnnxBackend(bundle, options)
    if fmt == "tflite":
        from edgekit.backends.tflite import TfliteBackend

        return TfliteBackend(bundle, options)
    raise EdgekitError(f"{bundle.path}: model format {fmt!r} has no backend in this edgekit version")
