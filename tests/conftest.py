"""Shared fixtures: the real SQuAD, SST-2 and CLINC150 files from ../shared and a real MiniLM bundle.

Datasets come from ``EDGEKIT_DATA_DIR`` (SQuAD from ``EDGEKIT_SQUAD_DIR`` when set) and the MPNet teacher
from ``EDGEKIT_MODELS_DIR``; ``benchmarks/__init__.py`` sets them to ``../shared/data`` and ``../shared/models``
when unset. CI checks the project out beside ``shared/``, so these tests run there too.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
from hypothesis import settings

import benchmarks  # noqa: F401  (the workspace's data and models, see below)
from edgekit.squad import default_data_dir

# Property tests check answers, not speed: hypothesis' default 200 ms deadline per example turns a
# busy shared machine into a failure (seen with training running beside the suite).
settings.register_profile("edgekit", deadline=None)
settings.load_profile("edgekit")

# the product names no folder of this workspace: the tests find its datasets and teacher as the benchmarks do,
# through EDGEKIT_DATA_DIR and EDGEKIT_MODELS_DIR (benchmarks/__init__.py sets them when unset)
DATA_DIR = Path(os.environ["EDGEKIT_DATA_DIR"])
TEACHER_DIR = Path(os.environ["EDGEKIT_MODELS_DIR"]) / "mpnet-base-squad"


@pytest.fixture(scope="session")
def squad_dir() -> Path:
    d = default_data_dir()
    if not (d / "dev-v1.1.json").exists():
        pytest.fail(f"SQuAD data not found in {d}; set EDGEKIT_SQUAD_DIR")
    return d


@pytest.fixture(scope="session")
def dev_path(squad_dir: Path) -> Path:
    return squad_dir / "dev-v1.1.json"


@pytest.fixture(scope="session")
def train_path(squad_dir: Path) -> Path:
    return squad_dir / "train-v1.1-subset.json"


@pytest.fixture(scope="session")
def dev_examples(dev_path: Path):
    from edgekit.squad import load_squad

    return load_squad(dev_path)


@pytest.fixture(scope="session")
def minilm_qa():
    from edgekit.export.models import PACKAGED_MINILM, load_qa

    return load_qa(PACKAGED_MINILM)


@pytest.fixture(scope="session")
def minilm_bundle(tmp_path_factory, minilm_qa):
    """The packaged MiniLM exported once per session to a real fp32 ONNX bundle."""
    from edgekit.export.to_onnx import onnx_bundle

    return onnx_bundle(minilm_qa, tmp_path_factory.mktemp("bundles") / "minilm", "minilm-test")


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    """A real OpenSSH server on loopback (tests/device_tools.py), one per session."""
    from device_tools import loopback_sshd

    with loopback_sshd(tmp_path_factory.mktemp("sshd")) as target:
        yield target


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory):
    """A seeded 2-layer, 32-wide BERT QA model with the MiniLM tokenizer, as an fp32 ONNX bundle (fast anywhere)."""
    from edgekit.export.tiny import tiny_qa
    from edgekit.export.to_onnx import onnx_bundle

    out = tmp_path_factory.mktemp("tiny") / "tiny"
    return onnx_bundle(tiny_qa(), out, "tiny-random-bert", max_seq_len=128, doc_stride=64)


@pytest.fixture(scope="session")
def sst2_dir() -> Path:
    d = DATA_DIR / "sst2"
    if not (d / "dev.tsv").exists():
        pytest.fail(f"SST-2 not found in {d}; set EDGEKIT_DATA_DIR")
    return d


@pytest.fixture(scope="session")
def clinc_file() -> Path:
    f = DATA_DIR / "clinc150" / "data_full.json"
    if not f.exists():
        pytest.fail(f"CLINC150 not found at {f}; set EDGEKIT_DATA_DIR")
    return f


@pytest.fixture(scope="session")
def wnut_dir() -> Path:
    d = DATA_DIR / "wnut17"
    if not (d / "emerging.dev.conll").exists():
        pytest.fail(f"WNUT-17 not found in {d}; set EDGEKIT_DATA_DIR")
    return d


def chain_forms() -> set[tuple[str, str]]:
    """The (format, precision) of the bundles ``edgekit export --recipe`` makes here: ONNX fp32 and int8, and TFLite
    fp32 and int8 where litert-torch is installed."""
    forms = {("onnx", "fp32"), ("onnx", "int8")}
    if importlib.util.find_spec("litert_torch") is not None:
        forms |= {("tflite", "fp32"), ("tflite", "int8")}
    return forms


# WNUT-17's tags in the order tag_set gives them (O, then B-/I- per type)
WNUT_TAGS = [
    "O",
    *(f"{p}-{k}" for k in ("corporation", "creative-work", "group", "location", "person", "product") for p in "BI"),
]


@pytest.fixture(scope="session")
def wnut_excerpt(wnut_dir: Path, tmp_path_factory) -> Path:
    """WNUT-17 dev's first 24 sentences (CC BY 4.0, see the data's SOURCES.md) as a CoNLL file of their own."""
    blocks = (wnut_dir / "emerging.dev.conll").read_text(encoding="utf-8").strip().split("\n\n")[:24]
    path = tmp_path_factory.mktemp("wnut") / "dev24.conll"
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_tagger_bundle(tmp_path_factory):
    """A seeded 2-layer, 32-wide BERT tagger over WNUT-17's tags with the MiniLM tokenizer, fp32 ONNX, 32-token
    windows (long tweets take two)."""
    from edgekit.export.tiny import tiny_classifier
    from edgekit.export.to_onnx import onnx_bundle

    out = tmp_path_factory.mktemp("tiny-tag") / "tiny-tagger"
    tagger = tiny_classifier(WNUT_TAGS, per_token=True)
    return onnx_bundle(tagger, out, "tiny-random-tagger", max_seq_len=32, doc_stride=0)


@pytest.fixture(scope="session")
def tiny_classifier_bundle(tmp_path_factory):
    """A seeded 2-layer, 32-wide BERT classifier over SST-2's labels with the MiniLM tokenizer, fp32 ONNX."""
    from edgekit.export.tiny import tiny_classifier
    from edgekit.export.to_onnx import onnx_bundle

    out = tmp_path_factory.mktemp("tiny-cls") / "tiny-cls"
    return onnx_bundle(tiny_classifier(["0", "1"]), out, "tiny-random-classifier", max_seq_len=64, doc_stride=0)
