"""The teacher-logits cache: run the teacher once over the training features, reuse it.

This is the costly step on a CPU, so it runs the teacher's ONNX bundle in ONNX
Runtime (faster than PyTorch eager: docs/export.md, "The teacher-logits cache"), writes progress as it goes
(a killed run resumes from the last finished batch), and stores start/end logits
aligned to *student* positions as memory-mapped ``.npy`` arrays (never pickle):

    CACHE/key.json       what the logits are valid for
    CACHE/start.npy      float32 [N, L]
    CACHE/end.npy        float32 [N, L]
    CACHE/mask.npy       bool [N, L]: positions with an aligned teacher logit
    CACHE/progress.json  features done so far

A cache is reused only when teacher weights, student tokenizer, sequence length,
stride and training data are all the same; anything else is refused. One process
fills it (``write=True``); the other processes of a multi-process run only read it.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from numpy.lib.format import open_memmap
from tqdm import tqdm

from edgekit.atomic import write_json
from edgekit.backends import RuntimeOptions, open_backend
from edgekit.bundle import Bundle
from edgekit.errors import EdgekitError, InputError
from edgekit.export.align import teacher_window
from edgekit.export.train_features import TrainFeatures
from edgekit.features import QATokenizer, batch_inputs
from edgekit.jsonfile import READ_BACK_BYTES, Range, from_json, read_json
from edgekit.squad import Example

FORMAT = 1
TEACHER_MAX_LEN = 512


@dataclass(frozen=True)
class CacheKey:
    teacher_sha256: str
    student_tokenizer_sha256: str
    max_seq_len: int
    doc_stride: int
    data_sha256: str
    n_features: int
    format: int = FORMAT

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class TeacherLogits:
    start: np.ndarray
    end: np.ndarray
    mask: np.ndarray


def _check_key(cache: Path, key: CacheKey, write: bool) -> None:
    key_file = cache / "key.json"
    if key_file.exists() or not write:
        found = read_json(key_file, "teacher-logits cache key", READ_BACK_BYTES, read_back=True)
        found = found if isinstance(found, dict) else {}
        if found != asdict(key):
            diff = sorted(k for k in asdict(key) if found.get(k) != asdict(key)[k])
            raise InputError(
                key_file,
                f"fields {diff}",
                "a cache made for this teacher, student tokenizer, sequence "
                "length, stride and data; use another cache directory",
            )
    else:
        cache.mkdir(parents=True, exist_ok=True)
        write_json(key_file, asdict(key))


@dataclass(frozen=True)
class CacheProgress:
    """``progress.json``: how many windows of the cache are written (the rest is computed on resume)."""

    done: Annotated[int, Range(0, 1e12)]


def _progress(path: Path, n: int) -> int:
    """Windows already in the cache, read back as untrusted: a count beyond the cache's windows is refused."""
    if not (path.exists() or path.is_symlink()):
        return 0
    done = from_json(CacheProgress, read_json(path, "cache progress", READ_BACK_BYTES, read_back=True), path).done
    if done > n:
        raise InputError(path, "field 'done'", f"at most the cache's {n} windows, got {done}")
    return done


def teacher_logits(
    cache: Path,
    key: CacheKey,
    teacher: Bundle,
    examples: list[Example],
    features: TrainFeatures,
    batch_size: int = 8,
    threads: int | None = None,
    progress: bool = True,
    write: bool = True,
) -> TeacherLogits:
    """Load the cache, computing (or finishing) it first when needed and ``write`` is true; without
    ``write`` an incomplete cache is an error (FileNotFoundError when there is none)."""
    if key.n_features != len(features):
        raise EdgekitError(f"cache key is for {key.n_features} features, got {len(features)}")
    _check_key(cache, key, write)
    n, length = len(features), features.input_ids.shape[1]
    files = {name: cache / f"{name}.npy" for name in ("start", "end", "mask")}
    progress_file = cache / "progress.json"
    done = _progress(progress_file, n)
    if done < n and not write:
        raise EdgekitError(f"{progress_file}: expected a complete teacher-logits cache, found {done} of {n} windows")
    if done < n:
        print(f"teacher logits: computing {n - done} of {n} windows into {cache}", file=sys.stderr)
        if done == 0:
            arrays = {
                k: open_memmap(f, mode="w+", dtype=np.bool_ if k == "mask" else np.float32, shape=(n, length))
                for k, f in files.items()
            }
        else:
            arrays = {k: open_memmap(f, mode="r+") for k, f in files.items()}
        _fill(arrays, done, teacher, examples, features, batch_size, threads, progress, progress_file)
    loaded = {k: np.load(f, mmap_mode="r", allow_pickle=False) for k, f in files.items()}
    return TeacherLogits(loaded["start"], loaded["end"], loaded["mask"])


def _fill(arrays, done, teacher, examples, features, batch_size, threads, progress, progress_file) -> None:
    backend = open_backend(teacher, RuntimeOptions(threads=threads))
    m = teacher.manifest
    t_tok = QATokenizer.from_file(teacher.tokenizer_path, TEACHER_MAX_LEN, m.doc_stride)
    n = len(features)
    bar = tqdm(total=n, initial=done, desc="teacher logits", unit="feat", disable=not progress)
    for lo in range(done, n, batch_size):
        hi = min(lo + batch_size, n)
        t_windows, maps = [], []
        for j in range(lo, hi):
            ex = examples[features.example_index[j]]
            tw, index = teacher_window(features.windows[j], ex.question, ex.context, t_tok)
            t_windows.append(tw)
            maps.append(index)
        start, end = backend(batch_inputs(t_windows, m.input_names, m.pad_id))
        for k, (j, index) in enumerate(zip(range(lo, hi), maps, strict=True)):
            row_s = np.zeros(arrays["start"].shape[1], dtype=np.float32)
            row_e = np.zeros_like(row_s)
            ok = index >= 0
            row_s[: len(index)][ok] = start[k][index[ok]]
            row_e[: len(index)][ok] = end[k][index[ok]]
            arrays["start"][j] = row_s
            arrays["end"][j] = row_e
            mask = np.zeros(row_s.shape, dtype=np.bool_)
            mask[: len(index)] = ok
            arrays["mask"][j] = mask
        for a in arrays.values():
            a.flush()
        write_json(progress_file, {"done": hi, "of": n})
        bar.update(hi - lo)
    bar.close()


def check_teacher_labels(teacher: Bundle, labels: list[str], noun: str = "labels") -> None:
    """Refuse a classifier or tagger teacher whose labels (a tagger's tags) are not the student's, in order."""
    have = teacher.manifest.labels
    if have != labels:
        raise EdgekitError(
            f"{teacher.path}: the teacher's {noun} {have[:5]}... differ from the student's {labels[:5]}...; "
            f"expected a teacher trained on the recipe's {noun}, in the same order"
        )


def cached_array(
    cache_root: Path,
    prefix: str,
    key: Any,
    shape: tuple[int, ...],
    fill: Callable[[Path], np.ndarray],
    write: bool = True,
) -> np.ndarray:
    """A classifier's or tagger's teacher logits: ``logits.npy`` (plain ``.npy``, never pickle) beside ``key.json``
    in ``cache_root/<prefix>-<digest of key>``, read back as untrusted (the key it was made for, the shape, finite
    numbers), or made by ``fill(that directory)`` and written (``write``; a reader of another process raises
    FileNotFoundError). ``key`` is a dataclass of what the logits are valid for. A killed fill starts over: it is
    minutes, one forward pass per text."""
    record = asdict(key)
    digest = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]
    cache = cache_root / f"{prefix}-{digest}"
    logits_file, key_file = cache / "logits.npy", cache / "key.json"
    if logits_file.is_file() and key_file.is_file():
        found = read_json(key_file, "teacher-logits cache key", READ_BACK_BYTES, read_back=True)
        if found != json.loads(json.dumps(record)):
            raise InputError(key_file, "fields", "a cache made for this teacher, data and labels")
        logits = np.load(logits_file, allow_pickle=False)
        if logits.shape != shape or not np.all(np.isfinite(logits)):
            raise InputError(logits_file, "array", f"finite logits of shape {shape}")
        return logits
    if not write:
        raise FileNotFoundError(logits_file)
    logits = fill(cache)
    if not np.all(np.isfinite(logits)):
        raise EdgekitError(f"{cache}: the teacher gave non-finite logits on the training data")
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / "logits.tmp.npy"
    np.save(tmp, logits, allow_pickle=False)
    tmp.replace(logits_file)
    write_json(key_file, record)
    return logits
