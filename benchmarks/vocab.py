"""This project's vocabulary curves (``edgekit export vocab-curve``) of its QA students on the SQuAD dev set,
written to ``benchmarks/results/vocab-<bundle name>.json``, where the size budget and the results page read them::

    python -m benchmarks.vocab BUNDLE --keep 20000 15000 10000 7000 [--embedding-bits 8 4] [--limit N]

Bundles and runs stay under ``--work``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgekit.atomic import write_json
from edgekit.bundle import load_bundle
from edgekit.export.cli import quiet_third_party
from edgekit.export.vocab import ENGLISH_WORDS, CurveSettings, vocab_curve
from edgekit.provenance import module_command
from edgekit.squad import default_data_dir, load_squad

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", type=Path, help="fp32 ONNX bundle of a trained student")
    p.add_argument("--keep", type=int, nargs="+", required=True, help="vocabulary sizes to measure")
    p.add_argument(
        "--embedding-bits", type=int, nargs="+", choices=[8, 4], default=[8], help="word-embedding bits to measure"
    )
    p.add_argument("--english-words", type=int, default=ENGLISH_WORDS, help="wordfreq words mixed in (0: none)")
    p.add_argument("--train", type=Path, default=default_data_dir() / "train-v1.1-subset.json")
    p.add_argument("--dataset", type=Path, default=default_data_dir() / "dev-v1.1.json")
    p.add_argument("--limit", type=int, default=None, help="first N dev questions (default: all)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "vocab")
    p.add_argument("--out", type=Path, default=None, help="results file (default: vocab-<bundle name>.json)")
    args = p.parse_args(argv)
    quiet_third_party()

    src = load_bundle(args.bundle)
    name = src.manifest.name.removesuffix("-fp32-onnx")
    settings = CurveSettings(tuple(args.keep), tuple(args.embedding_bits), args.english_words, args.limit, args.threads)
    train, dev = load_squad(args.train), load_squad(args.dataset)
    doc = vocab_curve(src, args.work / name, settings, train, [args.train], args.dataset, dev)
    doc["command"] = module_command("benchmarks.vocab", argv)
    out = args.out or RESULTS / f"vocab-{name}.json"
    write_json(out, doc)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
