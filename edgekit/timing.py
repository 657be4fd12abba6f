"""Latency measurement: one timer and one summary, used by every runner and benchmark."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class LatencyStats:
    """Percentiles of per-item latencies in milliseconds."""

    n: int
    mean: float
    p50: float
    p90: float
    p99: float
    min: float
    max: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def summarize(latencies_ms: Sequence[float]) -> LatencyStats:
    """Mean and p50/p90/p99 (linear interpolation, numpy's default)."""
    if not latencies_ms:
        raise ValueError("no latencies to summarize")
    a = np.asarray(latencies_ms, dtype=np.float64)
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return LatencyStats(len(a), float(a.mean()), float(p50), float(p90), float(p99), float(a.min()), float(a.max()))


class Stopwatch:
    """Elapsed wall time in milliseconds from a monotonic high-resolution clock."""

    def __init__(self) -> None:
        self.ms = 0.0

    @contextmanager
    def time(self) -> Iterator[Stopwatch]:
        t0 = time.perf_counter()
        try:
            yield self
        finally:
            self.ms = (time.perf_counter() - t0) * 1000.0
