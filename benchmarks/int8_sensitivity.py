"""Per-group int8 sensitivity of this project's dynamic-int8 students (``edgekit export int8-sensitivity``),
written to ``benchmarks/results/int8-sensitivity/<bundle>.json``::

    python -m benchmarks.int8_sensitivity INT8_BUNDLE [--windows 200] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgekit.atomic import write_json
from edgekit.bundle import load_bundle
from edgekit.errors import EdgekitError
from edgekit.export.sensitivity import add_arguments, int8_sensitivity
from edgekit.provenance import module_command
from edgekit.squad import load_squad

RESULTS = Path(__file__).resolve().parent / "results" / "int8-sensitivity"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.add_argument("--out", type=Path, default=RESULTS, help="results directory (default: %(default)s)")
    args = p.parse_args(argv)
    src = load_bundle(args.bundle)
    result = int8_sensitivity(src, load_squad(args.dataset), args.windows, args.threads)
    result |= {"dataset": args.dataset.name, "command": module_command("benchmarks.int8_sensitivity", argv)}
    write_json(args.out / f"{src.manifest.name}.json", result)
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except EdgekitError as exc:  # a bundle that is not dynamic int8, or not a bundle: one line, exit 2
        print(f"int8_sensitivity: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
