"""Collect distillation results into ``benchmarks/results/distill.json`` and a Markdown table.

Reads the teacher's full-dev metrics (from ``benchmarks.teacher_fulldev``) and every
student's ``result.json`` (written by ``edgekit distill``), one record per model:
name, params, layers, hidden size, method, EM, F1, dev questions, training
settings, wall time and the command that produced it; then the issue's two
questions, computed from those records: each model's F1 as a share of the
teacher's, and KD against plain fine-tuning (alpha = 1) for students trained
alike (same initial student, training and dev window lengths, schedule and step).
A pair may differ in training precision (fp32 or bf16 autocast) when no
same-precision partner was scored; the pair then says so, and ``bf16_vs_fp32``
measures what bf16 itself changes on runs alike in everything else.

    python -m benchmarks.distill_table RUN_DIR... [--teacher METRICS.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from edgekit.atomic import write_json, write_text
from edgekit.jsonfile import read_json

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _shown(path: Path) -> str:
    """A path as the results should show it: relative to the repository when it lies inside."""
    full = path.resolve()
    return str(full.relative_to(ROOT)) if full.is_relative_to(ROOT) else str(path)


def teacher_record(metrics_path: Path) -> dict[str, Any]:
    m = read_json(metrics_path, "metrics")
    b = m["bundle"]
    return {
        "name": "teacher: mpnet-base-squad",
        "role": "teacher",
        "params": b["params"],
        "layers": b["layers"],
        "hidden_size": b["hidden_size"],
        "method": "fine-tuned teacher (MODEL_CARD.md)",
        "exact_match": m["exact_match"],
        "f1": m["f1"],
        "n_questions": m["n_questions"],
        "max_seq_len": b["max_seq_len"],
        "eval_max_seq_len": b["max_seq_len"],
        "training": None,
        "wall_s": None,
        "command": " ".join(m["command"]),
        "source": _shown(metrics_path),
    }


def late_losses(log_path: Path, steps: int) -> dict[str, float] | None:
    """Each logged loss component (``loss_hard``, ``loss_soft``, ``loss_hidden``...) averaged over the
    logged steps of the last tenth of training, from the Trainer's log beside result.json: where the
    student ended up on each objective, less noisy than one logged step. None without a log."""
    if not log_path.is_file():
        return None
    late = [e for e in read_json(log_path, "training log") if "loss" in e and e.get("step", 0) > 0.9 * steps]
    keys = sorted({k for e in late for k in e if k.startswith("loss_")})
    return {k: sum(e[k] for e in late if k in e) / sum(k in e for e in late) for k in keys} or None


def student_record(result_path: Path) -> dict[str, Any]:
    r = read_json(result_path, "result")
    rec = r["recipe"]
    return {
        "name": r["name"],
        "role": "student",
        "params": r["params"],
        "layers": r["layers"],
        "hidden_size": r["hidden_size"],
        "method": r["method"],
        "exact_match": r.get("exact_match"),
        "f1": r.get("f1"),
        "n_questions": r.get("n_questions"),
        "max_seq_len": rec["data"]["max_seq_len"],  # of the training windows
        # of the dev windows (data.bundle_max_seq_len); results made before it existed used the training length
        "eval_max_seq_len": r.get("eval_max_seq_len", rec["data"]["max_seq_len"]),
        "student": rec["student"],
        "training": {
            **rec["training"],
            "loss": rec["loss"],
            "steps": r["steps"],
            "epoch": r.get("epoch"),
            "from_checkpoint": r.get("from_checkpoint"),  # a snapshot of a run still going or cut short
            "n_train_features": r.get("n_train_features"),
            "n_train_questions": r.get("n_train_questions"),
            "extra_train": rec["data"].get("extra_train", []),  # files trained on beside data.train
            "late_losses": late_losses(result_path.parent / "training_log.json", r["steps"]),
        },
        "wall_s": r.get("wall_s"),
        "command": " ".join(r["command"]),
        "eval_command": " ".join(r["eval_command"]) if "eval_command" in r else None,  # scored later (--eval-only)
        "source": _shown(result_path),
    }


def precision(r: dict[str, Any]) -> str:
    """The training arithmetic: ``fp32`` or ``bf16`` (mixed precision: bf16 autocast over fp32 weights)."""
    return "bf16" if (r.get("training") or {}).get("bf16") else "fp32"


def _trained_alike(r: dict[str, Any], seed: bool = True) -> str:
    """What must match for a KD/FT pair to compare the loss: student, lengths, questions, schedule,
    batching, step and (unless ``seed`` is false) seed. Precision is reported beside the pair rather than
    matched (see ``kd_vs_ft``)."""
    t = r["training"]
    fields = [r["student"], r["max_seq_len"], r["eval_max_seq_len"], r["n_questions"], t["steps"]]
    fields += [t[k] for k in ("epochs", "max_steps", "batch_size", "learning_rate", "warmup_ratio")]
    fields += [t["seed"]] if seed else []
    fields.append(t.get("group_by_length", False))  # absent from results made before the option existed
    return json.dumps(fields, sort_keys=True)


def _scored_students(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r["role"] == "student" and r["f1"] is not None]


def _deltas(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """What a pair's rows share, and ``a``'s EM/F1 minus ``b``'s."""
    return {
        "steps": a["training"]["steps"],
        "n_questions": a["n_questions"],
        "delta_exact_match": a["exact_match"] - b["exact_match"],
        "delta_f1": a["f1"] - b["f1"],
    }


def kd_vs_ft(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each KD student against the plain fine-tuned one trained alike, when both were scored: one of the
    same precision if there is one, else one trained in the other precision (``same_precision`` false)."""
    scored = _scored_students(records)
    plain: dict[str, list[dict[str, Any]]] = {}
    for r in scored:
        if r["training"]["loss"]["alpha"] == 1.0:
            plain.setdefault(_trained_alike(r), []).append(r)
    pairs = []
    for kd in scored:
        if kd["training"]["loss"]["alpha"] == 1.0:
            continue
        candidates = plain.get(_trained_alike(kd), [])
        ft = next((r for r in candidates if precision(r) == precision(kd)), candidates[0] if candidates else None)
        if ft is not None:
            pairs.append(
                {
                    "kd": kd["name"],
                    "ft": ft["name"],
                    "precision_kd": precision(kd),
                    "precision_ft": precision(ft),
                    "same_precision": precision(kd) == precision(ft),
                    **_deltas(kd, ft),
                    "kd_better": kd["f1"] > ft["f1"],
                }
            )
    return pairs


def bf16_vs_fp32(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each bf16-trained student against an fp32 one trained alike with the same loss: what the cheaper
    arithmetic costs in accuracy, measured rather than assumed."""
    scored = _scored_students(records)

    def key(r: dict[str, Any]) -> str:
        return _trained_alike(r) + json.dumps(r["training"]["loss"], sort_keys=True)

    fp32 = {key(r): r for r in scored if precision(r) == "fp32"}
    return [
        {"bf16": b["name"], "fp32": fp32[key(b)]["name"], **_deltas(b, fp32[key(b)])}
        for b in scored
        if precision(b) == "bf16" and key(b) in fp32
    ]


INTERMEDIATE_TERMS = ("hidden", "attention", "pkd")


def intermediate_vs_logits(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each student trained with intermediate-layer terms against the logit-KD-only one trained alike (same
    student, schedule, seed and so data order, precision, alpha and T): what each term gave."""
    scored = [r for r in _scored_students(records) if r["training"]["loss"]["alpha"] < 1.0]

    def terms(r: dict[str, Any]) -> dict[str, float]:
        loss = r["training"]["loss"]
        return {k: loss[f"{k}_weight"] for k in INTERMEDIATE_TERMS if loss.get(f"{k}_weight", 0) > 0}

    def key(r: dict[str, Any]) -> str:
        loss = r["training"]["loss"]
        return _trained_alike(r) + json.dumps([precision(r), loss["alpha"], loss["temperature"]])

    logits_only = {key(r): r for r in scored if not terms(r)}
    return [
        {
            "variant": v["name"],
            "logits_only": logits_only[key(v)]["name"],
            "terms": terms(v),
            "layer_map": v["training"]["loss"]["layer_map"],
            "seed": v["training"]["seed"],
            "late_loss_hard": _late_hard(v),
            "late_loss_hard_logits_only": _late_hard(logits_only[key(v)]),
            **_deltas(v, logits_only[key(v)]),
        }
        for v in scored
        if terms(v) and key(v) in logits_only
    ]


def seed_repeats(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs alike in everything but the seed (so data order, dropout and any freshly initialised weights):
    the F1 of each seed and the spread, the noise a difference between two single runs has to clear."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in _scored_students(records):
        key = _trained_alike(r, seed=False) + json.dumps([precision(r), r["training"]["loss"]], sort_keys=True)
        groups.setdefault(key, []).append(r)
    out = []
    for runs in groups.values():
        if len({r["training"]["seed"] for r in runs}) < 2:
            continue
        runs = sorted(runs, key=lambda r: r["training"]["seed"])
        f1s, ems = [r["f1"] for r in runs], [r["exact_match"] for r in runs]
        out.append(
            {
                "runs": [r["name"] for r in runs],
                "seeds": [r["training"]["seed"] for r in runs],
                "f1": f1s,
                "exact_match": ems,
                "spread_f1": max(f1s) - min(f1s),
                "spread_exact_match": max(ems) - min(ems),
            }
        )
    return out


def _late_hard(r: dict[str, Any]) -> float | None:
    return (r["training"].get("late_losses") or {}).get("loss_hard")


def term_verdict(term_pairs: list[dict[str, Any]], repeats: list[dict[str, Any]] | None = None) -> str:
    """What the intermediate terms gave: ΔF1 by term and weight (and seed, where runs used several), whether
    any run beat logit KD only, and the seed-to-seed spread to read that against. Written from the pairs and
    repeats so that it cannot drift from the tables."""
    seeded = len({p.get("seed") for p in term_pairs}) > 1
    by_term: dict[str, list[str]] = {}
    for p in term_pairs:
        for k, w in p["terms"].items():
            seed = f" (seed {p['seed']})" if seeded else ""
            by_term.setdefault(k, []).append(f"x{w:g}{seed} {p['delta_f1']:+.2f}")
    said = "; ".join(f"{k} {', '.join(v)}" for k, v in by_term.items())
    better = [p["variant"] for p in term_pairs if p["delta_f1"] > 0]
    verdict = (
        f"{len(better)} of {len(term_pairs)} runs beat logit KD only ({', '.join(better)})"
        if better
        else f"none of the {len(term_pairs)} runs beat logit KD only"
    )
    if repeats:
        noise = "; ".join(f"{' / '.join(r['runs'])}: F1 spread {r['spread_f1']:.2f}" for r in repeats)
        caveat = (
            f"Seed to seed ({noise}), a single run's F1 moves by up to {max(r['spread_f1'] for r in repeats):.2f}: "
            "a difference under that is not told apart from noise."
        )
    else:
        caveat = "Each run is one seed; the spread between seeds was not measured, so a difference under a point may be noise."
    return f"ΔF1 against logit KD only, by term and weight: {said}; {verdict}. {caveat}"


def with_teacher_share(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add ``f1_vs_teacher`` (a fraction) to every scored record, when the teacher is among them."""
    teacher = next((r for r in records if r["role"] == "teacher"), None)
    for r in records:
        r["f1_vs_teacher"] = r["f1"] / teacher["f1"] if teacher and r["f1"] is not None else None
    return records


def _two_places(x: float | None) -> str:
    """A score or loss as the tables show it; "n/a" where it was not measured."""
    return f"{x:.2f}" if x is not None else "n/a"


def markdown(
    records: list[dict[str, Any]],
    pairs: list[dict[str, Any]],
    precision_pairs: list[dict[str, Any]],
    term_pairs: list[dict[str, Any]],
    repeats: list[dict[str, Any]] | None = None,
) -> str:
    lines = [
        "| model | params | layers | hidden | method | trained | seq len (train / dev) | dev questions | EM | F1 | F1 vs teacher |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        em, f1 = _two_places(r["exact_match"]), _two_places(r["f1"])
        t = r.get("training") or {}
        trained = "given" if not t else f"{t['steps']} steps"
        if t.get("group_by_length"):
            trained += ", length-grouped batches"
        if precision(r) == "bf16":
            trained += ", bf16 autocast"
        if t.get("extra_train"):
            files = ", ".join(Path(f).parent.name for f in t["extra_train"])
            trained += f", {t['n_train_questions']} questions with data.extra_train {files}"
        if t.get("from_checkpoint"):
            trained += f" (checkpoint at epoch {t['epoch']:.2f} of {t['epochs']:g})"
        share = f"{100 * r['f1_vs_teacher']:.1f}%" if r["f1_vs_teacher"] is not None else "n/a"
        lengths = {r["max_seq_len"], r["eval_max_seq_len"]}
        seq = f"{r['max_seq_len']} / {r['eval_max_seq_len']}" if len(lengths) > 1 else str(r["max_seq_len"])
        lines.append(
            f"| {r['name']} | {r['params'] / 1e6:.1f}M | {r['layers']} | {r['hidden_size']} | {r['method']} "
            f"| {trained} | {seq} | {r['n_questions']} | {em} | {f1} | {share} |"
        )
    if pairs:
        lines += [
            "",
            "KD against plain fine-tuning, trained alike (same student, schedule, step and dev questions):",
            "",
            "| KD | plain fine-tuning | precision (KD / FT) | steps | dev questions | ΔEM | ΔF1 |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {p['kd']} | {p['ft']} | {p['precision_kd']} / {p['precision_ft']} | {p['steps']} | {p['n_questions']} "
            f"| {p['delta_exact_match']:+.2f} | {p['delta_f1']:+.2f} |"
            for p in pairs
        ]
    if precision_pairs:
        lines += [
            "",
            "bf16 autocast against fp32 training, otherwise alike (same loss, student, schedule, step, dev questions):",
            "",
            "| bf16 | fp32 | steps | dev questions | ΔEM | ΔF1 |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {p['bf16']} | {p['fp32']} | {p['steps']} | {p['n_questions']} "
            f"| {p['delta_exact_match']:+.2f} | {p['delta_f1']:+.2f} |"
            for p in precision_pairs
        ]
    if term_pairs:
        lines += [
            "",
            "Intermediate-layer terms added to logit KD, trained alike (same student, schedule, seed, data order):",
            "",
            "| with the term | logit KD only | terms (weight) | teacher layers matched | steps | seed | dev questions "
            "| hard loss, last tenth (with / without) | ΔEM | ΔF1 |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {p['variant']} | {p['logits_only']} | {', '.join(f'{k} x{w:g}' for k, w in p['terms'].items())} "
            f"| {p['layer_map']} | {p['steps']} | {p.get('seed', 'n/a')} | {p['n_questions']} "
            f"| {_two_places(p.get('late_loss_hard'))} / {_two_places(p.get('late_loss_hard_logits_only'))} "
            f"| {p['delta_exact_match']:+.2f} | {p['delta_f1']:+.2f} |"
            for p in term_pairs
        ]
        lines += ["", term_verdict(term_pairs, repeats)]
    if repeats:
        lines += [
            "",
            "The same run with another seed (data order, dropout); otherwise alike:",
            "",
            "| runs | seeds | EM | F1 | F1 spread |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {', '.join(r['runs'])} | {', '.join(map(str, r['seeds']))} "
            f"| {' / '.join(map(_two_places, r['exact_match']))} | {' / '.join(map(_two_places, r['f1']))} "
            f"| {r['spread_f1']:.2f} |"
            for r in repeats
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="*", type=Path, help="distill output directories (each with result.json)")
    p.add_argument(
        "--teacher",
        type=Path,
        default=RESULTS / "teacher-mpnet-fp32-onnx" / "metrics.json",
        help="the teacher's full-dev metrics.json (default: %(default)s)",
    )
    p.add_argument("--out", type=Path, default=RESULTS / "distill.json", help="JSON to write (and .md beside it)")
    args = p.parse_args(argv)
    records = [teacher_record(args.teacher)] if args.teacher.exists() else []
    records += [student_record(d / "result.json") for d in args.runs]
    records = with_teacher_share(records)
    pairs, precision_pairs, term_pairs = kd_vs_ft(records), bf16_vs_fp32(records), intermediate_vs_logits(records)
    repeats = seed_repeats(records)
    write_json(
        args.out,
        {
            "records": records,
            "kd_vs_ft": pairs,
            "bf16_vs_fp32": precision_pairs,
            "intermediate_vs_logits": term_pairs,
            "seed_repeats": repeats,
        },
    )
    table = markdown(records, pairs, precision_pairs, term_pairs, repeats)
    write_text(args.out.with_suffix(".md"), table)
    print(table)
    print(json.dumps({"wrote": [str(args.out), str(args.out.with_suffix(".md"))]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
