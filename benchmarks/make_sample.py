"""Rebuild the attributed SQuAD excerpts the offline demo uses (see edgekit/data/NOTICE.md).

- ``edgekit/data/squad-sample.json``: dev, the first 3 paragraphs of the first 3 articles (105 questions);
- ``edgekit/data/squad-train-sample.json``: train, the first 12 paragraphs of the first 8 articles (734).

    python -m benchmarks.make_sample [--squad-dir DIR]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edgekit.atomic import write_text
from edgekit.squad import default_data_dir, parse_squad, read_json, sample_path

EXCERPTS = [  # (source file, output file, articles, paragraphs per article)
    ("dev-v1.1.json", sample_path(), 3, 3),
    ("train-v1.1-subset.json", sample_path("train"), 8, 12),
]


def excerpt(full: dict, articles: int, paragraphs: int) -> dict:
    data = [{"title": a["title"], "paragraphs": a["paragraphs"][:paragraphs]} for a in full["data"][:articles]]
    return {"data": data, "version": full["version"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--squad-dir", type=Path, default=default_data_dir())
    args = p.parse_args(argv)
    for source, out, articles, paragraphs in EXCERPTS:
        sample = excerpt(read_json(args.squad_dir / source, "SQuAD JSON"), articles, paragraphs)
        n = len(parse_squad(sample, out))
        write_text(out, json.dumps(sample, indent=1, ensure_ascii=False))
        print(f"wrote {out}: {n} questions")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
