"""``--backend auto``: the fastest runtime for a bundle on this machine that answers as the format's own.

Every runtime that runs the bundle's format and loads here (ONNX Runtime, OpenVINO in f32 and,
on a CPU with bfloat16, in bf16; LiteRT for TFLite) answers the run's first questions; the
fastest (median per question, after a warm-up) whose answers equal the format's own runtime's on
at least ``AGREEMENT`` of them wins. Nothing is assumed about a CPU: the choice is measured on it,
recorded in ``metrics.json`` with every candidate's time and same-answer rate, and remembered in
``~/.cache/edgekit/backend-choice.json`` for this bundle, CPU and settings, so later runs skip it.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from edgekit import device
from edgekit.atomic import write_json
from edgekit.backends import BACKENDS, RuntimeOptions
from edgekit.bundle import load_bundle
from edgekit.errors import EdgekitError, InputError
from edgekit.jsonfile import from_json, read_json
from edgekit.squad import Example

AGREEMENT = 0.95  # share of answers equal to the reference's a candidate needs
N_QUESTIONS = 32
WARMUP = 2
OWN_RUNTIME = {"onnx": "onnxruntime", "tflite": "litert"}


def cache_file() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "edgekit" / "backend-choice.json"


MAX_CACHE_BYTES = 1 << 20


def _remembered(path: Path) -> dict[str, Any]:
    """The remembered choices, or none: the file is read back as untrusted (a FIFO or device there is not
    waited on, an oversized or malformed file is measured again and rewritten)."""
    try:
        found = read_json(path, "backend choices", MAX_CACHE_BYTES, read_back=True)
    except InputError:
        return {}
    return found if isinstance(found, dict) else {}


@dataclass(frozen=True)
class RememberedChoice:
    """One entry of the cache, as :func:`choose_backend` writes it (the fields a later run relies on)."""

    backend: str
    candidates: dict[str, dict[str, Any]]


def _valid_choice(known: Any, model_format: str) -> bool:
    """A remembered record as :func:`choose_backend` writes it, for this bundle's format, whose winner met the
    agreement rule: a hand-edited or stale entry is measured again rather than obeyed."""
    try:
        choice = from_json(RememberedChoice, known, None)
    except InputError:
        return False
    same = choice.candidates.get(choice.backend, {}).get(f"same_answers_as_{OWN_RUNTIME.get(model_format)}")
    return (
        BACKENDS.get(choice.backend) == model_format
        and isinstance(same, int | float)
        and not isinstance(same, bool)
        and AGREEMENT <= same <= 1.0
    )


def choose_backend(
    bundle_path: str | Path, options: RuntimeOptions, examples: list[Example], n_best: int
) -> tuple[str, dict[str, Any]]:
    """The backend to run ``bundle_path`` with, and the record of how it was chosen."""
    from edgekit.runner import QAModel

    bundle = load_bundle(bundle_path)
    m = bundle.manifest
    key = "|".join(
        [m.files[m.model_file].sha256, device.cpu_model(), str(options.threads), str(options.low_memory), str(n_best)]
        + ([] if options.spin else ["no-spin"])
    )
    path = cache_file()
    known = _remembered(path).get(key)
    if _valid_choice(known, m.model_format):
        return known["backend"], {**known, "remembered_in": str(path)}

    sample = examples[: WARMUP + N_QUESTIONS]
    if len(sample) <= WARMUP:
        raise EdgekitError(f"--backend auto: needs more than {WARMUP} questions to measure on, got {len(sample)}")
    reference = OWN_RUNTIME[m.model_format]
    trials: dict[str, dict[str, Any]] = {}
    answers: dict[str, list[str]] = {}
    for name in (b for b, fmt in BACKENDS.items() if fmt == m.model_format):
        try:
            qa = QAModel.load(bundle_path, replace(options, backend=name), n_best)
        except EdgekitError as exc:
            trials[name] = {"unavailable": " ".join(str(exc).split())}
            continue
        times, texts = [], []
        for i, ex in enumerate(sample):
            t0 = time.perf_counter()
            text = qa.answer(ex.question, ex.context).text
            if i >= WARMUP:
                times.append((time.perf_counter() - t0) * 1000.0)
                texts.append(text)
        answers[name] = texts
        trials[name] = {"p50_ms": round(statistics.median(times), 2)}
        del qa
    if reference not in answers:
        raise EdgekitError(f"--backend auto: the reference runtime {reference} did not load: {trials[reference]}")
    for name, texts in answers.items():
        same = sum(a == b for a, b in zip(texts, answers[reference], strict=True)) / len(texts)
        trials[name][f"same_answers_as_{reference}"] = round(same, 3)
    agreeing = [n for n in answers if trials[n][f"same_answers_as_{reference}"] >= AGREEMENT]
    best = min(agreeing, key=lambda n: trials[n]["p50_ms"])
    record = {"backend": best, "questions": len(sample) - WARMUP, "agreement_needed": AGREEMENT, "candidates": trials}
    try:
        write_json(path, {**_remembered(path), key: record})
    except OSError:
        pass  # a read-only home: the choice still holds for this run, only not remembered
    return best, record
