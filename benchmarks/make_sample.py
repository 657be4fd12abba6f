"""Rebuild the attributed excerpts the offline demo uses (see edgekit/data/NOTICE.md).

- ``edgekit/data/squad-sample.json``: dev, the first 3 paragraphs of the first 3 articles (105 questions);
- ``edgekit/data/squad-train-sample.json``: train, the first 12 paragraphs of the first 8 articles (734);
- ``edgekit/data/clinc150-sample.json``: CLINC150's layout with the queries of its first ten intents (in file
  order), per split the first 50 (train), 10 (val) and 20 (test) of each, and as many out-of-scope queries.

    python -m benchmarks.make_sample [--squad-dir DIR] [--clinc FILE]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from edgekit.atomic import write_text
from edgekit.jsonfile import read_json
from edgekit.squad import default_data_dir, parse_squad, sample_path
from edgekit.tasks.classification import OOS, read_clinc

CLINC_INTENTS = 10
CLINC_PER_INTENT = {"train": 50, "val": 10, "test": 20}

EXCERPTS = [  # (source file, output file, articles, paragraphs per article)
    ("dev-v1.1.json", sample_path(), 3, 3),
    ("train-v1.1-subset.json", sample_path("train"), 8, 12),
]


def excerpt(full: dict, articles: int, paragraphs: int) -> dict:
    data = [{"title": a["title"], "paragraphs": a["paragraphs"][:paragraphs]} for a in full["data"][:articles]]
    return {"data": data, "version": full["version"]}


def clinc_excerpt(full: dict) -> dict:
    """The first ten intents' queries (and as many out-of-scope ones), per split, in file order."""
    intents: list[str] = []
    for _, intent in full["train"]:
        if intent not in intents:
            intents.append(intent)
    keep = set(intents[:CLINC_INTENTS])
    out = {}
    for split, n in CLINC_PER_INTENT.items():
        seen: dict[str, int] = {}
        rows = []
        for text, intent in full[split]:
            if intent in keep and seen.get(intent, 0) < n:
                seen[intent] = seen.get(intent, 0) + 1
                rows.append([text, intent])
        out[split] = rows
        out[f"oos_{split}"] = [pair for pair in full[f"oos_{split}"] if pair[1] == OOS][: n * 2]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--squad-dir", type=Path, default=default_data_dir())
    p.add_argument(
        "--clinc",
        type=Path,
        default=Path(os.environ.get("EDGEKIT_DATA_DIR", "")) / "clinc150" / "data_full.json",
        help="CLINC150's data_full.json (default: $EDGEKIT_DATA_DIR/clinc150/data_full.json)",
    )
    args = p.parse_args(argv)
    sample = clinc_excerpt(read_json(args.clinc, "CLINC150 JSON"))
    out = sample_path("clinc150")
    write_text(out, json.dumps(sample, ensure_ascii=False))
    print(f"wrote {out}: " + ", ".join(f"{s} {len(read_clinc(out, s))}" for s in CLINC_PER_INTENT))
    for source, out, articles, paragraphs in EXCERPTS:
        sample = excerpt(read_json(args.squad_dir / source, "SQuAD JSON"), articles, paragraphs)
        n = len(parse_squad(sample, out))
        write_text(out, json.dumps(sample, indent=1, ensure_ascii=False))
        print(f"wrote {out}: {n} questions")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
