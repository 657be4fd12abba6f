"""Measurements of the project itself, each writing JSON to ``benchmarks/results/``.

Where this workspace keeps the datasets and the teacher is the benchmarks' configuration, not the product's:
``EDGEKIT_DATA_DIR`` and ``EDGEKIT_MODELS_DIR`` default to ``../shared/data`` and ``../shared/models`` beside
the checkout when unset (the tests' conftest does the same).
"""

from __future__ import annotations

import os
from pathlib import Path

WORKSPACE = Path(__file__).resolve().parents[2] / "shared"
os.environ.setdefault("EDGEKIT_DATA_DIR", str(WORKSPACE / "data"))
os.environ.setdefault("EDGEKIT_MODELS_DIR", str(WORKSPACE / "models"))
