"""Rebuild ``edgekit/data/squad-sample.json``, the attributed dev excerpt the offline demo uses.

python -m benchmarks.make_sample [--dataset DEV.json] [--articles 3] [--paragraphs 3]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edgekit.atomic import write_text
from edgekit.squad import default_data_dir, parse_squad, read_json, sample_path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", type=Path, default=default_data_dir() / "dev-v1.1.json")
    p.add_argument("--articles", type=int, default=3)
    p.add_argument("--paragraphs", type=int, default=3)
    p.add_argument("--out", type=Path, default=sample_path())
    args = p.parse_args(argv)
    full = read_json(args.dataset, "SQuAD JSON")
    sample = {
        "data": [
            {"title": a["title"], "paragraphs": a["paragraphs"][: args.paragraphs]}
            for a in full["data"][: args.articles]
        ],
        "version": full["version"],
    }
    n = len(parse_squad(sample, args.out))
    write_text(args.out, json.dumps(sample, indent=1, ensure_ascii=False))
    print(f"wrote {args.out}: {n} questions")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
