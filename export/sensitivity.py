"""Which int8 products cost the answers: per-group sensitivity of a dynamic-int8 QA bundle.

Dynamic int8 rounds two things: the weights (once, per output channel) and every product's input
activations (per call, one scale per tensor). The second is what a 768-wide student loses F1 to,
and it can be undone product by product without growing the file: ``edgekit export
float-activations`` keeps the int8 weights and feeds those products unrounded activations.

:func:`int8_sensitivity` measures, on training windows (never dev, so choosing groups by it is not
tuning on the test set), how far each variant's start/end distributions are from the reference that
rounds weights only (every product with float activations):

- ``int8``: the bundle as it is;
- one variant per group of ``matmul_groups`` with float activations: a role (one product in
  every layer, e.g. ``output/dense``) or a layer (``layer.3``);
- roles cumulatively, the most harmful first: what keeping 1, 2, 3 ... roles in float buys.

Per variant: mean KL divergence of the start and end distributions from the reference's (nats,
per window, summed over the two), the share of windows whose start and end argmax both match it,
and the median model time per window on this CPU. Confirm a chosen variant's F1 with ``edgekit run``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.backends import RuntimeOptions, open_backend
from edgekit.bundle import Bundle, load_bundle
from edgekit.cli import train_default, whole
from edgekit.device import describe
from edgekit.squad import Example


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64) - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def logits(bundle: Path, feeds: list[dict[str, np.ndarray]], threads: int) -> tuple[list[tuple], float]:
    """Start/end logits of every feed through the runner's own backend, and the median ms per window."""
    backend = open_backend(load_bundle(bundle), RuntimeOptions(threads=threads))
    backend(feeds[0])  # warm-up
    out, ms = [], []
    for f in feeds:
        t = time.perf_counter()
        out.append(backend(f))
        ms.append(1000 * (time.perf_counter() - t))
    return out, statistics.median(ms)


def distance(ref: list[tuple], got: list[tuple]) -> dict[str, float]:
    """Mean KL(ref || got) of start plus end distributions per window, and the share with both argmaxes equal."""
    kl, same = [], []
    for r, g in zip(ref, got, strict=True):
        pairs = [(_log_softmax(a.ravel()), _log_softmax(b.ravel())) for a, b in zip(r, g, strict=True)]
        kl.append(sum(float((np.exp(p) * (p - q)).sum()) for p, q in pairs))
        same.append(all(p.argmax() == q.argmax() for p, q in pairs))
    return {"kl": statistics.fmean(kl), "same_argmax": statistics.fmean(same)}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The bundle and the measurement's settings, for ``edgekit export int8-sensitivity`` and its benchmark."""
    p.add_argument("bundle", type=Path, help="dynamic int8 ONNX bundle (edgekit export int8)")
    p.add_argument(
        "--dataset",
        type=Path,
        default=train_default(),
        help="SQuAD JSON the windows come from: training questions, never dev (default: %(default)s)",
    )
    p.add_argument(
        "--windows", type=whole(1, 1_000_000), default=200, help="windows to compare on (default: %(default)s)"
    )
    p.add_argument("--threads", type=whole(1, 10_000), default=2, help="runtime threads (default: %(default)s)")


def int8_sensitivity(
    src: Bundle,
    examples: Sequence[Example],
    windows: int = 200,
    threads: int = 2,
    say: Callable[[str], None] = print,
    workdir: Path | None = None,
) -> dict[str, Any]:
    """Every variant's distance from the weights-only reference on ``windows`` windows of ``examples``; the
    variants' bundles are written to a temporary directory in ``workdir`` (a command's partial output) and
    removed."""
    import onnx

    from edgekit.export.quantize import WindowReader, float_activations_bundle, matmul_groups

    groups = matmul_groups(onnx.load(str(src.model_path)).graph)
    roles = [g for g in groups if not g.startswith("layer.")]
    feeds = WindowReader(src, list(examples), windows, padded=False).feeds
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:

        def measure(label: str, chosen: list[str]) -> dict:
            path = float_activations_bundle(src, Path(tmp) / "variant", chosen).path if chosen else src.path
            got, ms = logits(path, feeds, threads)
            row = {"variant": label, "float_groups": chosen, **distance(ref, got), "ms_per_window": round(ms, 2)}
            say(f"{label}: KL {row['kl']:.4f}, same argmax {100 * row['same_argmax']:.1f}%, {ms:.1f} ms")
            return row

        say(f"reference (weights rounded only): {len(feeds)} windows")
        ref, ref_ms = logits(float_activations_bundle(src, Path(tmp) / "reference", roles).path, feeds, threads)
        rows = [measure("int8", [])] + [measure(f"float {g}", [g]) for g in groups]
        single = {r["float_groups"][0]: r["kl"] for r in rows[1:]}
        ranked = sorted(roles, key=single.__getitem__)
        rows += [measure("float " + " + ".join(ranked[:k]), ranked[:k]) for k in range(2, len(ranked))]
    return {
        "bundle": src.manifest.name,
        "bundle_sha256": src.manifest.files[src.manifest.model_file].sha256,
        "width": src.manifest.hidden_size,
        "windows": len(feeds),
        "reference_ms_per_window": round(ref_ms, 2),
        "roles_by_harm": ranked,
        "variants": rows,
        "device": describe(),
        "threads": threads,
    }
