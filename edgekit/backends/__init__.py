"""Model runtimes behind one interface: feeds by input name in, the manifest's outputs out, in its order.

Each backend lives in its own module and imports its runtime lazily, so a device
needs only the runtime of the bundles it runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from edgekit.bundle import Bundle, Manifest
from edgekit.errors import BundleError, EdgekitError

MAX_THREADS = 256  # more intra-op threads than any device has cores; ONNX Runtime stalls starting 100,000


def per_token_outputs(task: str) -> bool:
    """Whether a task's model gives one value per position (QA's logits, a tagger's), which a backend that
    pads a window cuts back to it; a classifier's one row per text is whole."""
    return task != "text-classification"


def pad_inputs(feeds: dict[str, np.ndarray], length: int, pad_id: int) -> dict[str, np.ndarray]:
    """``feeds`` [n, width] padded on the right to ``length``: the ids with the pad id, the mask and segment ids
    with 0, so the padding is masked out as a batch's shorter windows are."""
    return {
        name: np.pad(
            value, ((0, 0), (0, length - value.shape[1])), constant_values=pad_id if name == "input_ids" else 0
        )
        for name, value in feeds.items()
    }


@dataclass(frozen=True)
class RuntimeOptions:
    """Settings every backend understands.

    ``threads`` is the intra-op thread count (None: the runtime's default, usually
    all cores); ``low_memory`` trades speed for a smaller footprint
    (ONNX Runtime: CPU memory arena off; what it saves depends on the C library's allocator, docs/runner.md). ``spin`` False makes ONNX Runtime's worker
    threads sleep between calls instead of spinning: slower on an idle machine, but on
    cores shared with other work the spinning threads compete with it (docs/runner.md, "Runtime settings").
    """

    threads: int | None = None
    low_memory: bool = False
    spin: bool = True
    # None: the format's own runtime (ONNX Runtime, LiteRT); one of BACKENDS; or "auto" (edgekit.backends.choose)
    backend: str | None = None

    def __post_init__(self) -> None:
        if self.threads is not None and not 0 < self.threads <= MAX_THREADS:
            raise EdgekitError(f"threads={self.threads}: expected a thread count from 1 to {MAX_THREADS}")
        if self.backend is not None and self.backend not in {*BACKENDS, "auto"}:
            raise EdgekitError(f"backend {self.backend!r}: expected 'auto' or one of {sorted(BACKENDS)}")


# runtime -> the model format it runs
BACKENDS = {"onnxruntime": "onnx", "openvino": "onnx", "openvino-bf16": "onnx", "litert": "tflite"}


class Backend(Protocol):
    """A loaded model. ``fixed_seq_len`` is set when the model has a static length."""

    name: str
    fixed_seq_len: int | None

    def __call__(self, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]: ...


def check_format(bundle: Bundle, backend: str | None) -> None:
    """Refuse a runtime that does not run the bundle's model format (``auto`` and None always do)."""
    fmt = bundle.manifest.model_format
    if backend not in (None, "auto") and BACKENDS[backend] != fmt:
        runs = sorted(b for b, f in BACKENDS.items() if f == fmt)
        raise EdgekitError(f"{bundle.path}: backend {backend} does not run {fmt} models; expected one of {runs}")


def open_backend(bundle: Bundle, options: RuntimeOptions) -> Backend:
    """Load the bundle's model with the runtime its format needs, and check the manifest against it."""
    fmt = bundle.manifest.model_format
    if options.backend == "auto":
        raise EdgekitError("backend 'auto' is chosen by the runner (edgekit.backends.choose) before a model is opened")
    check_format(bundle, options.backend)
    if options.backend in ("openvino", "openvino-bf16"):
        from edgekit.backends.openvino import OpenVinoBackend

        backend: Backend = OpenVinoBackend(bundle, options, bf16=options.backend == "openvino-bf16")
    elif fmt == "onnx":
        from edgekit.backends.onnx import OnnxBackend

        backend = OnnxBackend(bundle, options)
    elif fmt == "tflite":
        from edgekit.backends.tflite import TfliteBackend

        backend = TfliteBackend(bundle, options)
    else:
        raise EdgekitError(f"{bundle.path}: model format {fmt!r} has no backend in this edgekit version")
    check_model(bundle, backend)
    return backend


def check_finite(bundle: Bundle, outputs: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """``outputs`` unchanged when every value is finite. A model that passed the load probe can still give NaN
    on a real input (an overflow in fp16/int8 arithmetic, a tampered weight the probe's ids never touch); its
    scores would decode to an arbitrary answer and a NaN could not be written to the prediction log."""
    if not all(np.all(np.isfinite(o)) for o in outputs):
        raise BundleError(bundle.model_path, "outputs", "finite scores (the model gave NaN or infinity on this input)")
    return outputs


# where in its own sources ONNX Runtime failed, and the C++ function: nothing a user can act on
ORT_SOURCE_LINE = re.compile(r"\S*onnxruntime_src/\S+:\d+\s*([\w:<>, ]*\([^)]*\)\s*)?")


def _failed_probe(backend: Backend, feeds: dict[str, np.ndarray], m: Manifest, n: int, said: str) -> tuple[str, str]:
    """Where and what a failed probe window says of the manifest: the vocabulary when a window of the smallest
    ids runs, the window length when a short one of the largest ids does; both fields otherwise."""
    trials = [
        (
            "vocab_size",
            m.vocab_size,
            "the rows of the model's word embedding",
            {**feeds, "input_ids": np.zeros_like(feeds["input_ids"])},
        )
    ]
    if n > 8:
        trials.append(
            ("max_seq_len", n, "the length of the model's position table", {k: v[:, :8] for k, v in feeds.items()})
        )
    for field, value, table, trial in trials:
        try:
            backend({name: trial[name] for name in m.input_names})
        except Exception:  # this trial failed too: the next one may tell
            continue
        return f"field '{field}' ({value})", f"at most {table} (a probe window failed: {said})"
    where = f"fields 'max_seq_len' ({n}) / 'vocab_size' ({m.vocab_size})"
    return where, f"values the model accepts (one window of them failed: {said})"


def check_model(bundle: Bundle, backend: Backend) -> None:
    """Run one window of ``max_seq_len`` tokens, every id the largest the manifest allows, through the model,
    and check its outputs against the shapes the bundle's task expects.

    A manifest may only promise what the model can do: a window length beyond its position table,
    or a vocabulary (hence tokenizer ids, pad id) beyond its embedding rows, fails here with one
    line at load time instead of a runtime crash, or silent garbage, in the middle of a run.
    Costs one inference of the longest window.
    """
    m = bundle.manifest
    n = m.max_seq_len
    if backend.fixed_seq_len is not None and backend.fixed_seq_len != n:
        raise BundleError(
            bundle.path / "manifest.json", "field 'max_seq_len'", f"the model's fixed length {backend.fixed_seq_len}"
        )
    by_name = {
        "input_ids": np.full((1, n), m.vocab_size - 1, dtype=np.int64),
        "attention_mask": np.ones((1, n), dtype=np.int64),
        "token_type_ids": np.zeros((1, n), dtype=np.int64),
    }
    from edgekit.tasks import get_task

    expected = get_task(m.task).probe_outputs(m, n)
    try:
        outputs = backend({name: by_name[name] for name in m.input_names})
    except KeyError as exc:
        raise BundleError(
            bundle.path / "manifest.json", "field 'input_names'", f"names among {sorted(by_name)}, got {exc}"
        ) from None
    except Exception as exc:  # each runtime raises its own types; any failure here is the manifest's promise broken
        said = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        said = said.split("Status Message:")[-1].strip()  # ONNX Runtime's own words, without its preamble
        said = ORT_SOURCE_LINE.sub("", said).strip()[:160]
        raise BundleError(bundle.path / "manifest.json", *_failed_probe(backend, by_name, m, n, said)) from None
    got = [np.shape(o) for o in outputs]
    if got != expected or not all(np.all(np.isfinite(o)) for o in outputs):
        raise BundleError(
            bundle.model_path, "outputs", f"finite outputs of shapes {expected} ({m.output_names}), got shapes {got}"
        )
