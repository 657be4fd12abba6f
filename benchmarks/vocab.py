"""The vocabulary curve: dev F1 and size of an INT8 student against how many word pieces it keeps.

For each ``--keep`` size the fp32 ONNX bundle is pruned (``edgekit export prune-vocab``: pieces
ranked on the training subset and general English, never dev text), quantized to dynamic INT8
(``edgekit export int8``) and run on the dev set by the edgekit runner. The full vocabulary's INT8
bundle (8-bit embedding) is the baseline, in the same run. Each row also says how much of dev's text the kept pieces
cover (the share of dev's full-vocabulary tokens still in the vocabulary, measured after the choice)
and how many more tokens a dev question and context take.

    python -m benchmarks.vocab BUNDLE --keep 20000 15000 10000 7000 [--embedding-bits 8 4] [--limit N]

Writes ``benchmarks/results/vocab-<bundle name>.json``; bundles and runs stay under ``--work``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from edgekit.atomic import write_json
from edgekit.bundle import Bundle, load_bundle
from edgekit.errors import EdgekitError
from edgekit.export.cli import quiet_third_party
from edgekit.export.pipeline import run_fresh
from edgekit.export.quantize import DynamicInt8, quantize_dynamic_bundle
from edgekit.export.vocab import ENGLISH_WORDS, prune_bundle
from edgekit.provenance import module_command
from edgekit.squad import default_data_dir, load_squad

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _bundle(path: Path, make) -> Bundle:
    """The bundle at ``path``, made by ``make(path)`` unless a verified one is there already."""
    try:
        return load_bundle(path)
    except EdgekitError:
        return make(path)


def coverage(full: Bundle, pruned: Bundle, texts: list[str]) -> dict[str, float]:
    """Share of the texts' full-vocabulary tokens the pruned vocabulary holds, and the token count growth."""
    kept = set(json.loads(pruned.tokenizer_path.read_text())["model"]["vocab"])
    t_full, t_cut = full.tokenizer().tokenizer, pruned.tokenizer().tokenizer
    pieces = Counter(p for enc in t_full.encode_batch(texts, add_special_tokens=False) for p in enc.tokens)
    n_full = sum(pieces.values())
    n_cut = sum(len(enc.ids) for enc in t_cut.encode_batch(texts, add_special_tokens=False))
    return {
        "dev_tokens_covered": sum(c for p, c in pieces.items() if p in kept) / n_full,
        "dev_tokens_growth": n_cut / n_full - 1,
    }


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
    work = args.work / name
    train = load_squad(args.train)
    dev = load_squad(args.dataset)[: args.limit]
    dev_texts = [ex.question for ex in dev] + sorted({ex.context for ex in dev})
    rows: list[dict[str, Any]] = []
    for keep in [None, *sorted(args.keep, reverse=True)]:
        label = "full" if keep is None else str(keep)
        fp32 = (
            src
            if keep is None
            else _bundle(
                work / f"vocab{label}",
                lambda out, k=keep: prune_bundle(
                    src, out, f"{name}-vocab{k}-fp32-onnx", k, train, [args.train], args.english_words
                ),
            )
        )
        covered = coverage(src, fp32, dev_texts)  # a property of the vocabulary: the same for every bit width
        for bits in sorted(set(args.embedding_bits) | {8}, reverse=True):  # the 8-bit row first: the baseline
            tag = label if bits == 8 else f"{label}-emb4"
            int8 = _bundle(
                work / f"vocab{tag}-int8",
                lambda out, b=fp32, e=bits: quantize_dynamic_bundle(
                    b,
                    out,
                    b.manifest.name.removesuffix("-fp32-onnx") + ("-int8-onnx" if e == 8 else "-int8-onnx-emb4"),
                    DynamicInt8(embedding_bits=e),
                ),
            )
            print(f"{tag}: {int8.manifest.vocab_size} pieces, {int8.model_size_mb:.1f} MB; running dev", flush=True)
            run_dir = work / f"run-{tag}"
            # in a process of its own, as a user runs it: the latency and memory recorded are the runner's
            extra = ["--threads", str(args.threads)] if args.threads else []
            metrics = run_fresh(int8.path, args.dataset, run_dir, args.limit or len(dev), extra)
            row = {
                "name": int8.manifest.name,
                "keep": int8.manifest.vocab_size,
                "full": keep is None,
                "embedding_bits": bits,
                "params": int8.manifest.params,
                "fp32_model_mb": fp32.model_size_mb,
                "int8_model_mb": int8.model_size_mb,
                "int8_bundle_mb": int8.size_mb,
                "exact_match": metrics["exact_match"],
                "f1": metrics["f1"],
                "n_questions": metrics["n_questions"],
                **covered,
                "run": str(run_dir),
                "bundle_path": str(int8.path),
                "model_sha256": int8.manifest.files[int8.manifest.model_file].sha256,
            }
            base = rows[0] if rows else row
            row["delta_f1"] = row["f1"] - base["f1"]
            row["mb_saved"] = base["int8_model_mb"] - row["int8_model_mb"]
            rows.append(row)
            print(f"  F1 {row['f1']:.2f} ({row['delta_f1']:+.2f}), {row['mb_saved']:.1f} MB saved", flush=True)
    out = args.out or RESULTS / f"vocab-{name}.json"
    write_json(
        out,
        {
            "bundle": name,
            "source_sha256": src.manifest.files[src.manifest.model_file].sha256,
            "train_corpus": args.train.name,
            "english_words": args.english_words,
            "dataset": args.dataset.name,
            "device": metrics.get("device"),
            "command": module_command("benchmarks.vocab", argv),
            "rows": rows,
        },
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
