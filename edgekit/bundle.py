"""The edge bundle: a self-contained directory a device can run and trust.

Layout::

    BUNDLE/
      manifest.json     format version, task (and a classifier's label names), model
                        settings, provenance, and the size and sha256 of every other file
      model.onnx | model.tflite
      tokenizer.json

Loading verifies every hash and refuses missing, extra or altered files, a
manifest of another format version, and settings that do not fit together,
before any runtime touches the model.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from edgekit import __version__
from edgekit.atomic import write_json
from edgekit.destination import BUNDLE, replacing
from edgekit.errors import BundleError, InputError
from edgekit.features import QATokenizer
from edgekit.jsonfile import read_json

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
TASK = "extractive-qa"  # the default task: bundles written before the field had other values
MODEL_FORMATS = ("onnx", "tflite")
PRECISIONS = ("fp32", "int8", "int4")
MAX_SEQ_LEN = 4096
MAX_LABELS = 100_000


@dataclass(frozen=True)
class FileEntry:
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """Everything a runner needs to know about a bundle besides the files themselves."""

    name: str
    model_file: str
    model_format: str
    precision: str
    input_names: list[str]
    output_names: list[str]
    pad_id: int
    max_seq_len: int
    doc_stride: int
    params: int
    layers: int
    hidden_size: int
    vocab_size: int
    tokenizer_file: str = "tokenizer.json"
    max_answer_len: int = 30
    # a classifier's label names (a tagger's tags), in the order of its logits (edgekit.tasks); empty for QA
    labels: list[str] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)
    files: dict[str, FileEntry] = field(default_factory=dict)
    task: str = TASK
    format_version: int = FORMAT_VERSION
    edgekit_version: str = __version__

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        if not d["labels"]:
            del d["labels"]  # a task without labels writes the manifest it wrote before labels existed
        return d


@dataclass(frozen=True)
class Bundle:
    """A verified bundle on disk."""

    path: Path
    manifest: Manifest
    # the tokenizer verify built, handed to the model: a second one would hold its vocabulary twice over
    _tokenizer: Any = field(default=None, init=False, repr=False, compare=False)

    @property
    def model_path(self) -> Path:
        return self.path / self.manifest.model_file

    @property
    def tokenizer_path(self) -> Path:
        return self.path / self.manifest.tokenizer_file

    @property
    def size_mb(self) -> float:
        return sum(e.size for e in self.manifest.files.values()) / 1e6

    @property
    def model_size_mb(self) -> float:
        return self.manifest.files[self.manifest.model_file].size / 1e6

    def tokenizer(self) -> Any:
        """The task's tokenizer over the bundle's tokenizer.json (question/context windows for QA, word windows
        for token classification), built once per bundle."""
        if self._tokenizer is None:
            object.__setattr__(self, "_tokenizer", self._load_tokenizer())
        return self._tokenizer

    def _load_tokenizer(self) -> Any:
        m = self.manifest
        if m.task == TASK:
            return QATokenizer.from_file(self.tokenizer_path, m.max_seq_len, m.doc_stride)
        if m.task == "token-classification":
            from edgekit.tasks.tokens import WordTokenizer

            return WordTokenizer.from_file(self.tokenizer_path, m.max_seq_len)
        from edgekit.tasks.classification import TextTokenizer

        return TextTokenizer.from_file(self.tokenizer_path, m.max_seq_len)

    def summary(self) -> dict[str, Any]:
        """The bundle record stored in metrics.json."""
        m = self.manifest
        return {
            "name": m.name,
            "path": str(self.path),
            "format": m.model_format,
            "precision": m.precision,
            "size_mb": round(self.size_mb, 3),
            "model_size_mb": round(self.model_size_mb, 3),
            "model_sha256": m.files[m.model_file].sha256,  # which model file the figures are of
            "params": m.params,
            "layers": m.layers,
            "hidden_size": m.hidden_size,
            "max_seq_len": m.max_seq_len,
            "doc_stride": m.doc_stride,
            "source": m.source,
            "task": m.task,
            **({"labels": list(m.labels)} if m.labels else {}),
        }


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


SCRATCH = ".scratch"  # inside a bundle's partial directory: what the bundle is made from, gone before the swap


@contextmanager
def bundle_scratch(out_dir: str | Path, sources: Iterable[str | Path] = ()) -> Iterator[Path]:
    """A scratch directory for what a bundle is made from (a converter's output, the copy a quantizer reads),
    inside the partial directory that becomes ``out_dir`` (:func:`edgekit.destination.replacing`): ``out_dir``
    is checked before any work, an interrupted export leaves nothing in ``$TMPDIR``, and a killed one only its
    partial directory beside ``out_dir``. Call :func:`fill_bundle` inside it."""
    with replacing(out_dir, BUNDLE, sources) as tmp:
        scratch = tmp / SCRATCH
        scratch.mkdir()
        yield scratch
        shutil.rmtree(scratch)


def fill_bundle(
    scratch: Path, model_path: str | Path, tokenizer_path: str | Path, manifest: Manifest, out_dir: str | Path
) -> None:
    """Put model and tokenizer into the bundle being built around ``scratch`` (a file made in the scratch is
    moved, any other copied) and write its manifest with their hashes."""
    tmp = scratch.parent
    for src, name in ((Path(model_path), manifest.model_file), (Path(tokenizer_path), manifest.tokenizer_file)):
        if src.parent == scratch:
            os.replace(src, tmp / name)
        else:
            shutil.copyfile(src, tmp / name)
    files = {
        name: FileEntry((tmp / name).stat().st_size, sha256_file(tmp / name))
        for name in (manifest.model_file, manifest.tokenizer_file)
    }
    final = replace(manifest, files=files)
    _check_manifest(final, Path(out_dir) / MANIFEST)  # named as the user will find it
    write_json(tmp / MANIFEST, final.to_json())


def write_bundle(
    out_dir: str | Path,
    model_path: str | Path,
    tokenizer_path: str | Path,
    manifest: Manifest,
    sources: Iterable[str | Path] = (),
) -> Bundle:
    """Copy model and tokenizer into a new bundle and write its manifest with hashes.

    The bundle is assembled in a temporary sibling directory and swapped into place
    (:func:`edgekit.destination.replacing`): an interrupted export never leaves a half
    bundle, and ``out_dir`` is refused unless it is new, empty or an earlier bundle, and
    apart from ``sources`` (what the bundle is made from).
    """
    with bundle_scratch(out_dir, sources) as scratch:
        fill_bundle(scratch, model_path, tokenizer_path, manifest, out_dir)
    return load_bundle(out_dir)


def _manifest_from_json(obj: Any, path: Path) -> Manifest:
    """The manifest, checked field by field against its schema before anything is built from it."""
    if not isinstance(obj, dict):
        raise BundleError(path, "top level", "a JSON object")
    version = obj.get("format_version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise BundleError(
            path,
            "field 'format_version'",
            f"{FORMAT_VERSION} (this edgekit reads bundle format {FORMAT_VERSION}), got {version!r}",
        )
    known = {f.name: f for f in fields(Manifest)}
    unknown = sorted(set(obj) - set(known))
    if unknown:
        raise BundleError(path, f"field '{unknown[0]}'", f"one of the manifest fields {sorted(known)}")
    kwargs = dict(obj)
    files = obj.get("files", {})
    _check_type(files, dict, path, "field 'files'")  # the rest is typed by _check_manifest, once built
    for name, entry in files.items():
        where = f"field 'files' entry {name!r}"
        _check_plain_name(name, path, where)
        if not isinstance(entry, dict) or set(entry) != {"size", "sha256"}:
            raise BundleError(path, where, 'an object {"size": bytes, "sha256": hex digest}')
        _check_type(entry["size"], int, path, f"{where} 'size'")
        if entry["size"] < 0 or not isinstance(entry["sha256"], str) or not _SHA256.fullmatch(entry["sha256"]):
            raise BundleError(path, where, "a size of 0 or more bytes and a 64-digit lowercase hex sha256")
    kwargs["files"] = {name: FileEntry(**entry) for name, entry in files.items()}
    try:
        manifest = Manifest(**kwargs)
    except TypeError as exc:
        raise BundleError(path, "fields", f"a complete manifest ({exc})") from None
    _check_manifest(manifest, path)
    return manifest


_SHA256 = re.compile(r"[0-9a-f]{64}")
_TYPES = {
    "name": str,
    "model_file": str,
    "model_format": str,
    "precision": str,
    "input_names": list,
    "output_names": list,
    "pad_id": int,
    "max_seq_len": int,
    "doc_stride": int,
    "params": int,
    "layers": int,
    "hidden_size": int,
    "vocab_size": int,
    "tokenizer_file": str,
    "max_answer_len": int,
    "labels": list,
    "source": dict,
    "files": dict,
    "task": str,
    "edgekit_version": str,
}
# (field, test, expected): values no model can run with, refused before a runtime is opened
_BOUNDS = (
    # the probe at load time runs one window of this length: no encoder edgekit exports has more positions,
    # and a longer promise could make that one window's attention matrix alone exhaust a device's memory
    ("max_seq_len", lambda m: m.max_seq_len <= MAX_SEQ_LEN, f"a window of at most {MAX_SEQ_LEN:,} tokens"),
    ("vocab_size", lambda m: m.vocab_size > 0, "a positive vocabulary size"),
    ("pad_id", lambda m: 0 <= m.pad_id < m.vocab_size, "a token id in the model's vocabulary (0 to vocab_size - 1)"),
    ("max_answer_len", lambda m: m.max_answer_len >= 1, "an answer length of at least 1 token"),
    ("params", lambda m: m.params >= 0, "a parameter count of 0 or more"),
    ("layers", lambda m: m.layers >= 0, "a layer count of 0 or more"),
    ("hidden_size", lambda m: m.hidden_size >= 0, "a hidden size of 0 or more"),
)


def _check_type(value: Any, kind: type, path: Path, where: str) -> None:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BundleError(path, where, f"a {kind.__name__}, got {type(value).__name__}")


def _check_plain_name(name: Any, path: Path, where: str) -> None:
    """A file name inside the bundle: no directories, no way out, nothing special."""
    if not isinstance(name, str) or not _PLAIN_NAME.fullmatch(name) or name in (".", "..", MANIFEST):
        raise BundleError(
            path, where, f"a plain file name inside the bundle (letters, digits, '.', '_', '-'), got {name!r}"
        )


_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")


def name_from(text: str) -> str:
    """A bundle name made from any text (a hub id, a ``packaged:`` name): the characters a name may hold."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:128] or "bundle"


def _check_manifest(m: Manifest, path: Path) -> None:
    for name, kind in _TYPES.items():
        _check_type(getattr(m, name), kind, path, f"field '{name}'")
    from edgekit.tasks import get_task

    task = get_task(m.task, path)
    if m.model_format not in MODEL_FORMATS:
        raise BundleError(path, "field 'model_format'", f"one of {MODEL_FORMATS}, got {m.model_format!r}")
    if m.precision not in PRECISIONS:
        raise BundleError(path, "field 'precision'", f"one of {PRECISIONS}, got {m.precision!r}")
    for field_name, names in (("input_names", m.input_names), ("output_names", m.output_names)):
        if not names or not all(isinstance(n, str) and n for n in names):
            raise BundleError(path, f"field '{field_name}'", "a list of non-empty names")
    for field_name, ok, expected in _BOUNDS:
        if not ok(m):
            raise BundleError(path, f"field '{field_name}'", f"{expected}, got {getattr(m, field_name)!r}")
    if len(m.labels) > MAX_LABELS:
        raise BundleError(path, "field 'labels'", f"at most {MAX_LABELS:,} labels, got {len(m.labels):,}")
    task.check_manifest(m, path)
    for field_name in ("model_file", "tokenizer_file"):
        _check_plain_name(getattr(m, field_name), path, f"field '{field_name}'")
    if not _PLAIN_NAME.fullmatch(m.name):  # deploy and the report build file and remote names from it
        raise BundleError(path, "field 'name'", f"a bundle name of letters, digits, '.', '_', '-', got {m.name!a}")


def load_bundle(path: str | Path, verify: bool = True) -> Bundle:
    """Read a bundle's manifest and (by default) verify every file against it."""
    path = Path(path)
    if not path.is_dir():
        raise BundleError(path, "bundle", "a bundle directory (with manifest.json)")
    manifest_path = path / MANIFEST
    if manifest_path.is_symlink():
        raise BundleError(manifest_path, "file", "the bundle manifest as a regular file, not a link")
    if not manifest_path.is_file():
        raise BundleError(manifest_path, "file", "the bundle manifest (file missing)")
    try:
        obj = read_json(manifest_path, "manifest")
    except InputError as exc:
        raise BundleError(exc.path, exc.where, exc.expected) from None
    manifest = _manifest_from_json(obj, manifest_path)
    bundle = Bundle(path, manifest)
    if verify:
        verify_files(bundle)
        _verify_tokenizer(bundle)
    return bundle


def verify_files(bundle: Bundle) -> None:
    """Every listed file present with its size and hash; no other file in the bundle."""
    m = bundle.manifest
    for required in (m.model_file, m.tokenizer_file):
        if required not in m.files:
            raise BundleError(
                bundle.path / MANIFEST, f"field 'files' entry '{required}'", "size and sha256 of every bundle file"
            )
    present = {p.name for p in bundle.path.iterdir()} - {MANIFEST}
    extra = sorted(present - set(m.files))
    if extra:
        raise BundleError(bundle.path / extra[0], "file", "no files besides those listed in manifest.json")
    for name, entry in m.files.items():
        f = bundle.path / name  # a plain name (checked with the manifest): never outside the bundle
        try:
            info = os.lstat(f)
        except FileNotFoundError:
            raise BundleError(
                f, "file", f"the bundle file listed in manifest.json ({entry.size} bytes); it is missing"
            ) from None
        if not stat.S_ISREG(info.st_mode):
            raise BundleError(f, "file", "a regular file inside the bundle, not a link or a directory")
        size = info.st_size
        if size != entry.size:
            raise BundleError(f, "size", f"{entry.size} bytes as manifest.json says, got {size}")
        digest = sha256_file(f)
        if digest != entry.sha256:
            raise BundleError(
                f, "sha256", f"{entry.sha256} as manifest.json says, got {digest} (file altered or corrupt)"
            )


# texts a tokenizer must encode into ids the model has: plain words, characters outside any vocabulary, the
# special tokens' own spellings, and (per task, below) an input longer than a window
TOKENIZER_PROBES = ("Where is Paris?", "\x00\ufffd\U0001f600 Ÿ ǅ ﬀ ١٢٣ 漢字", "[CLS] [SEP] [UNK] <s> </s> <pad> <mask>")


def _verify_tokenizer(bundle: Bundle) -> None:
    """The tokenizer loads, every id it can give is a row of the model's embedding (the count of its entries
    is not enough: one entry may carry any id), and it encodes the probes, an over-long input among them,
    into such ids. A tokenizer that fails here would otherwise pass verify and stop a run midway."""
    tok, n = bundle.tokenizer(), bundle.manifest.vocab_size
    ids = tok.tokenizer.get_vocab(with_added_tokens=True).values()
    top = max(ids, default=-1)
    if tok.vocab_size > n or top >= n:
        raise BundleError(
            bundle.tokenizer_path,
            "vocabulary",
            f"token ids below the model's {n} embedding rows (manifest 'vocab_size'), got {tok.vocab_size} "
            f"entries up to id {top}",
        )
    long = " ".join(["word"] * 4 * bundle.manifest.max_seq_len)
    for text in (*TOKENIZER_PROBES, long):
        try:
            got = _probe_ids(tok, text)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # tokenizers raises bare Exceptions, and panics as PanicException
            said = " ".join(str(exc).split())[:160] or type(exc).__name__
            raise BundleError(
                bundle.tokenizer_path, "encoding", f"a tokenizer that encodes {text[:30]!r}... ({said})"
            ) from None
        if any(not 0 <= i < n for i in got):
            raise BundleError(bundle.tokenizer_path, "encoding", f"ids below {n} for {text[:30]!r}..., got {max(got)}")


def _probe_ids(tok: Any, text: str) -> list[int]:
    """Every id ``tok`` (the bundle's task tokenizer) gives for ``text``, as the runner would ask for them."""
    if not isinstance(tok, QATokenizer):
        return [int(i) for i in tok.tokenizer.encode(text).ids]
    got = [int(i) for w in tok.windows(text[:200], text) for i in w.input_ids]  # as a context: windows
    try:
        got += [int(i) for w in tok.windows(text, "Paris.") for i in w.input_ids]  # as a question, after a call
    except InputError:
        pass  # too long a question: the task's own refusal, a clear line at run time
    return got
