"""Peak memory and time of one question as its context grows: 1 KB, 100 KB, 1 MB of text.

The runner hands a question's windows to the model one per call, so the model's activations do not grow
with the context; what still grows is the tokenizer's output and one row of logits per
window. Each size runs in a fresh ``edgekit run`` process (peak RSS is per process), in the
normal mode and with ``--low-memory``. The context is real dev text (paragraphs joined in
file order) with the first paragraph's question, whose answer stays at its offset. Writes
``benchmarks/results/long-context.json``; ratios are against the 1 KB run of the same mode
in the same run.

    python -m benchmarks.long_context BUNDLE [--sizes 1000 100000 1000000] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from edgekit.atomic import write_json
from edgekit.bundle import load_bundle
from edgekit.device import describe
from edgekit.predlog import read_log
from edgekit.provenance import module_command
from edgekit.runner import run_in_process
from edgekit.squad import default_data_dir, load_squad

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks" / "results" / "long-context.json"


def long_question(dev: Path, chars: int) -> dict:
    """A one-question SQuAD file whose context is ``chars`` characters of dev text, starting with the question's own."""
    examples = load_squad(dev)
    first = examples[0]
    parts, seen, size = [], set(), 0
    for ex in examples:
        if ex.context not in seen:
            seen.add(ex.context)
            parts.append(ex.context)
            size += len(ex.context) + 1
            if size >= chars:
                break
    context = " ".join(parts)[:chars]
    answers = [{"text": a.text, "answer_start": a.start} for a in first.answers if a.start + len(a.text) <= chars]
    qa = {"id": first.id, "question": first.question, "answers": answers}
    return {"version": "1.1", "data": [{"title": "long", "paragraphs": [{"context": context, "qas": [qa]}]}]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", type=Path, help="edge bundle directory")
    p.add_argument(
        "--dataset", type=Path, default=default_data_dir() / "dev-v1.1.json", help="where the text comes from"
    )
    p.add_argument(
        "--sizes", type=int, nargs="+", default=[1_000, 100_000, 1_000_000], help="context sizes in characters"
    )
    p.add_argument("--threads", type=int, default=2, help="runtime threads (default: %(default)s)")
    p.add_argument("--out", type=Path, default=RESULT, help="result file (default: %(default)s)")
    args = p.parse_args(argv)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for chars in args.sizes:
            data = Path(tmp) / f"ctx-{chars}.json"
            data.write_text(json.dumps(long_question(args.dataset, chars)))
            for low_memory in (False, True):
                out = Path(tmp) / f"run-{chars}-{int(low_memory)}"
                flags = ["--warmup", "0", "--no-progress", "--threads", str(args.threads)]
                m = run_in_process(args.bundle, data, out, flags + (["--low-memory"] if low_memory else []))
                [rec] = read_log(out / "predictions.jsonl")
                rows.append(
                    {
                        "context_chars": chars,
                        "low_memory": low_memory,
                        "windows": rec["windows"],
                        "seconds_per_question": round(rec["latency_ms"] / 1000, 3),
                        "model_seconds": round(rec["model_ms"] / 1000, 3),
                        "peak_rss_mb": m["peak_rss_mb"],
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    for r in rows:
        base = next(b for b in rows if b["low_memory"] == r["low_memory"] and b["context_chars"] == min(args.sizes))
        r["peak_rss_vs_smallest"] = round(r["peak_rss_mb"] / base["peak_rss_mb"], 3)
    write_json(
        args.out,
        {
            "bundle": load_bundle(args.bundle).manifest.name,
            "windows_per_call": 1,
            "threads": args.threads,
            "rows": rows,
            "device": describe(),
            "command": module_command("benchmarks.long_context", argv),
        },
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
