"""docs/results.md and the README's results table, generated from ``benchmarks/results/*.json``.

No figure is typed in: every table is rendered from a results file (by the same ``markdown``
function the benchmark that wrote it uses, where it has one), and names the command that wrote
the file. ``--check`` fails when the committed pages differ from what the files say now, which
is what the test suite runs, so a figure cannot drift from its file.

    python -m benchmarks.results_doc            # rewrite docs/results.md and the README block
    python -m benchmarks.results_doc --check    # exit 1 if either is out of date
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from pathlib import Path
from typing import Any

from benchmarks import compress, decoding, distill_table, speed
from edgekit.atomic import write_text
from edgekit.bundle import load_bundle
from edgekit.errors import EdgekitError
from edgekit.export.report import pareto_front
from edgekit.provenance import portable

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOC = ROOT / "docs" / "results.md"
README = ROOT / "README.md"
BEGIN, END = "<!-- results:begin (python -m benchmarks.results_doc) -->", "<!-- results:end -->"
FULL_DEV = 10570
TEACHER = RESULTS / "teacher-mpnet-fp32-onnx" / "metrics.json"
BUDGETS_MB = (25.0, 50.0)  # the size lines a student is judged against
# text classification: benchmarks/results/classification-<key>.json, each a run of benchmarks.classification
CLASSIFICATION_SETS = {
    "sst2": ("SST-2 dev", "accuracy"),
    "clinc150": ("CLINC150 test", "in_scope_accuracy"),  # its paper's headline: accuracy over the in-scope queries
    "wnut17": ("WNUT-17 test", "f1"),  # token classification: entity F1 (exact span and type)
}
PUBLISHED = RESULTS / "classification" / "published.json"


def _load(path: Path) -> Any:
    return json.loads(path.read_text())


def _command(obj: dict[str, Any]) -> str:
    cmd = obj.get("command") or []
    return f"`{shlex.join(portable(cmd, ROOT))}`" if cmd else "(no command recorded)"


def _cpu(device: dict[str, Any]) -> str:
    """The CPU, the vector features its speed depends on and its core count: machines of one name differ
    (AVX-512, VNNI, bf16), and a thread count means little without the cores behind it."""
    facts = []
    if "cpu_features" in device:
        facts.append(", ".join(device["cpu_features"]) or "no AVX2")
    if device.get("cores_logical"):
        facts.append(f"{device['cores_logical']} cores")
    return f"{device['cpu']} ({'; '.join(facts)})" if facts else device["cpu"]


def _graph(name: str) -> tuple[str, str] | None:
    """(architecture, variant) of a bundle name: ``minilm-l6-kd-step400-int8-onnx`` -> ("minilm-l6", "int8-onnx").

    Two bundles with the same key run the same graph (other weights), so one's speed is the other's.
    """
    if name in ("mpnet-base-squad-fp32-onnx", "edgekit-teacher-fp32-onnx"):
        return ("teacher", "fp32-onnx")
    m = re.search(r"(minilm-l\d+|mpnet-l\d+)-.*?((?:fp32|int8|int4)-(?:onnx|tflite)(?:-[a-z0-9-]+)?)$", name)
    return (m[1], m[2]) if m else None


def full_dev_runs() -> list[dict[str, Any]]:
    """Every committed run on the full dev set (the teacher's and the students'), one row each."""
    rows = []
    for path in sorted([TEACHER, *RESULTS.glob("students/*/metrics.json")]):
        m = _load(path)
        if m["n_questions"] != FULL_DEV:
            continue
        b = m["bundle"]
        rows.append(
            {
                "name": b["name"],
                "size_mb": b["model_size_mb"],
                "f1": m["f1"],
                "exact_match": m["exact_match"],
                "device": m["device"]["cpu"],
                "path": str(path.relative_to(ROOT)),
                "bundle": b["path"],
                "model_sha256": b.get("model_sha256"),
                "float_activations": b.get("source", {}).get("quantization", {}).get("float_activations", []),
            }
        )
    return rows


def variants() -> list[dict[str, Any]]:
    """Every variant measured on the full dev set: the committed runs, then the vocabulary curves' rows
    (``vocab-*.json``) that are not a committed run of their own; name, model size, EM/F1, bundle path, source."""
    out = full_dev_runs()
    for path in sorted(RESULTS.glob("vocab-*.json")):
        d = _load(path)
        for v in d["rows"]:
            if v["n_questions"] != FULL_DEV or v["model_sha256"] in {r["model_sha256"] for r in out}:
                continue  # not full dev, or a model file already in the table (a committed run of its own)
            out.append(
                {
                    "name": v["name"],
                    "size_mb": v["int8_model_mb"],
                    "f1": v["f1"],
                    "exact_match": v["exact_match"],
                    "device": d["device"]["cpu"],
                    "path": str(path.relative_to(ROOT)),
                    "bundle": v["bundle_path"],
                    "model_sha256": v["model_sha256"],
                }
            )
    return out


def size_front(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows no other row beats on both size (smaller) and F1 (higher), smallest first."""
    return pareto_front(rows, lambda r: r["size_mb"], lambda r: r["f1"])


def shipped_bundles(models: Path = ROOT / "models") -> dict[str, Path]:
    """The bundles shipped in ``models/``, by their model file's sha256 (verified: a changed file is no match)."""
    out = {}
    for d in sorted(p for p in models.iterdir() if p.is_dir()) if models.is_dir() else []:
        try:
            b = load_bundle(d)
        except EdgekitError:
            continue
        out[b.manifest.files[b.manifest.model_file].sha256] = d
    return out


def headline() -> str:
    """Teacher vs the best student within each size budget and of any size (among every full-dev variant, as
    the size budget's table), and those shipped in ``models/``: size, F1 kept, and speed where one run measured it."""
    runs = variants()
    teacher = next(r for r in runs if r["path"] == str(TEACHER.relative_to(ROOT)))
    sp = _load(RESULTS / "speed.json")
    hf = next(r for r in sp["rows"] if r["name"] == "hf-pipeline-teacher")
    by_graph = {_graph(r["name"]): r for r in sp["rows"] if _graph(r["name"])}
    lines = [
        f"Full dev set ({FULL_DEV:,} questions) through the edgekit runner; size is the model file. "
        f"Speed: p50 per question, batch 1, {sp['settings']['threads']} threads, {sp['settings']['n']} questions, "
        f"{_cpu(sp['device'])}, against the Hugging Face pipeline on the teacher ({hf['p50_ms']:.0f} ms), one run "
        "(`benchmarks/results/speed.json`); a student's speed was measured on a bundle of the same graph. "
        f"The students with the best F1 within {' MB, within '.join(f'{mb:.0f}' for mb in BUDGETS_MB)} MB and "
        "of any size, and those shipped in `models/` (by the path they ship at).",
        "",
        "| model | size MB | × smaller | EM | F1 | % of teacher F1 | p50 ms | × faster |",
        "|---|---|---|---|---|---|---|---|",
    ]
    shipped = {sha: d.name for sha, d in shipped_bundles().items()}
    for r in runs:
        r["shipped"] = shipped.get(r["model_sha256"] or "")
    students = [x for x in runs if x is not teacher]
    best = [
        max((x for x in students if x["size_mb"] <= mb), key=lambda x: x["f1"]) for mb in (*BUDGETS_MB, float("inf"))
    ]
    students = [x for x in students if x in best or x["shipped"]]
    for r in [teacher, *sorted(students, key=lambda r: (r["size_mb"], -r["f1"]))]:
        s = by_graph.get(_graph(r["name"]))
        fast = f"{s['p50_ms']:.1f} | {hf['p50_ms'] / s['p50_ms']:.1f}×" if s else "not measured | –"
        name = f"`models/{r['shipped']}`" if r["shipped"] else r["name"]
        lines.append(
            f"| {name} | {r['size_mb']:.1f} | {teacher['size_mb'] / r['size_mb']:.1f}× | {r['exact_match']:.2f} "
            f"| {r['f1']:.2f} | {100 * r['f1'] / teacher['f1']:.1f}% | {fast} |"
        )
    return "\n".join(lines) + "\n"


def classification_runs(results: Path = RESULTS) -> list[tuple[str, str, str, Path, dict[str, Any]]]:
    """(key, title, headline metric, file, its content) of each committed benchmarks.classification run."""
    return [
        (key, title, metric, f, _load(f))
        for key, (title, metric) in CLASSIFICATION_SETS.items()
        if (f := results / f"classification-{key}.json").exists()
    ]


def classification_brief(results: Path = RESULTS) -> str:
    """The README's classification table: per set, the teacher, the best int8 student within 25 MB and those
    shipped in ``models/`` (by the path they ship at)."""
    runs = classification_runs(results)
    shipped = {sha: d.name for sha, d in shipped_bundles().items()}
    if not runs:
        return ""
    lines = [
        "Text and token classification: the whole set through the edgekit runner (SST-2 dev; CLINC150 test, its "
        "score the in-scope accuracy; WNUT-17 test, its score the entity F1); speed: p50 per example, batch 1, "
        "against the HF text- or token-classification pipeline on the "
        f"teacher, one run each on {_cpu(runs[0][4]['device'])} "
        f"({', '.join(f'`benchmarks/results/{f.name}`' for *_, f, _ in runs)}; all students: docs/results.md).",
        "",
        "| data | model | size MB | score | % of teacher | p50 ms | × faster |",
        "|---|---|---|---|---|---|---|",
    ]
    for _, title, metric, _, d in runs:
        acc, sp, info = d["accuracy_full_set"], d["speed"], d["bundles"]
        teacher = max(acc, key=lambda n: info[n]["params"])
        small = [
            n for n in acc if info[n]["precision"] == "int8" and acc[n]["bundle"]["model_size_mb"] <= BUDGETS_MB[0]
        ]
        best = max(small, key=lambda n: acc[n][metric]) if small else None
        ships = [n for n in acc if acc[n]["bundle"]["model_sha256"] in shipped and n not in (teacher, best)]
        for name in [teacher, *([best] if best else []), *ships]:
            r, s_ = acc[name], sp[f"edgekit:{name}"]
            where = shipped.get(r["bundle"]["model_sha256"])
            lines.append(
                f"| {title} | {f'`models/{where}`' if where else name} | {r['bundle']['model_size_mb']:.1f} | {r[metric]:.2f} "
                f"| {100 * r[metric] / acc[teacher][metric]:.1f}% | {s_['p50_ms']:.2f} "
                f"| {s_['speedup_vs_hf_pipeline']:.1f}× |"
            )
    return "\n".join(lines) + "\n"


def classification(results: Path = RESULTS) -> str:
    """Teacher against students per classification set, every figure from one run of benchmarks.classification:
    the whole set through the runner, speed against the HF text-classification pipeline on the teacher."""
    published = _load(PUBLISHED)["rows"] if PUBLISHED.exists() else []
    out = []
    for key, title, headline_metric, f, d in classification_runs(results):
        acc, sp, info = d["accuracy_full_set"], d["speed"], d["bundles"]
        teacher = max(acc, key=lambda n: info[n]["params"])  # the largest model of the run
        hf = sp["hf-pipeline"]
        clinc = headline_metric == "in_scope_accuracy"
        tagger = d.get("task") == "token-classification"
        n = acc[teacher]["n_examples"]
        pub = "; ".join(
            f"{r['model']} {r['value']:.1f}" + ("" if r["metric"] == headline_metric else f" ({r['metric']})")
            for r in published
            if r["dataset"] == key
        )
        out += [
            f"**{title}** ({n:,} {'sentences' if tagger else 'examples'}, `benchmarks/results/{f.name}`, "
            f"{_command(d)}): the whole set through the edgekit runner; speed: p50 per example over "
            f"{d['dataset']['n_timed']} of them, batch 1, {d['threads']} threads, {_cpu(d['device'])}, against the HF "
            f"{'token' if tagger else 'text'}-classification pipeline on the teacher ({hf['p50_ms']:.1f} ms), "
            f"medians of {d['repeats']} repeats in one run."
            + (f" Published: {pub} (`{PUBLISHED.relative_to(ROOT)}`)." if pub else ""),
            "",
        ]
        scores = (
            {"f1": "entity F1", "precision": "P", "recall": "R", "surface_f1": "surface F1"}
            if tagger
            else {
                "accuracy": "accuracy",
                "macro_f1": "macro-F1",
                **({"in_scope_accuracy": "in-scope acc.", "oos_recall": "oos recall"} if clinc else {}),
            }
        )
        head = ["model", "size MB", *scores.values(), f"% of teacher {scores[headline_metric]}"]
        head += ["p50 ms", "× HF pipeline", "peak RSS MB"]
        out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        order = sorted(acc, key=lambda name: (name != teacher, acc[name]["bundle"]["model_size_mb"]))
        for name in order:
            r, s_ = acc[name], sp[f"edgekit:{name}"]
            cells = [name, f"{r['bundle']['model_size_mb']:.1f}", *(f"{r[k]:.2f}" for k in scores)]
            cells += [
                f"{100 * r[headline_metric] / acc[teacher][headline_metric]:.1f}%",
                f"{s_['p50_ms']:.2f}",
                f"{s_['speedup_vs_hf_pipeline']:.1f}×",
                f"{r['peak_rss_mb']:.0f}",
            ]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def int8_agreement() -> str:
    lines = [
        "| bundle | CPU (int8 features) | variant | questions | EM | F1 | same answer as fp32 |",
        "|---|---|---|---|---|---|---|",
    ]
    commands = []
    for path in sorted(RESULTS.glob("int8-agreement/*.json")):
        d = _load(path)
        cpu = _cpu(d["device"])
        for label, v in d["variants"].items():
            lines.append(
                f"| {d['bundle']} | {cpu} | {label} | {v['n_questions']} | {v['exact_match']:.2f} | {v['f1']:.2f} "
                f"| {100 * v['same_answer_as_fp32']:.1f}% |"
            )
        e = d.get("emulated_arm64_int8_default")
        if e:
            lines.append(
                f"| {d['bundle']} | {e['device']['cpu']}, emulated ({', '.join(e['device']['cpu_features'])}) "
                f"| int8 7-bit (default); same answer as the host: {100 * e['same_answer_as_this_host']:.0f}% "
                f"| {e['n_questions']} | {e['exact_match']:.2f} | {e['f1']:.2f} | {100 * e['same_answer_as_fp32']:.1f}% |"
            )
        commands.append(f"- `{path.relative_to(ROOT)}`: {_command(d)}")
    return "\n".join(lines) + "\n\n" + "\n".join(commands) + "\n"


def fit_results() -> str:
    """Each committed ``edgekit fit`` (``benchmarks/results/fit/*/fit.json``): its budget, the answer (or the nearest
    and what it misses), the teacher measured beside it, what the search measured, and the best variant of the same
    starting students made by hand (committed full-dev runs)."""
    rows, notes = [], []
    fits = {p: _load(p) for p in sorted(RESULTS.glob("fit/*/fit.json"))}
    for path, d in fits.items():
        if d["settings"].get("exhaustive"):
            continue  # the reference a search is held against (exhaustive_results)
        budget, cost = d["budget"], d["cost"]
        by_id = {c["candidate"]["id"]: c for c in d["candidates"]}
        answer = by_id[d["chosen"] or d["nearest"]]
        full = answer["measurements"][-1]
        teacher = (d.get("teacher") or {}).get("measurements") or [{}]
        t_f1 = teacher[-1].get("score") if teacher[-1].get("n") == full["n"] else None
        starts = d["settings"]["starts"]
        names = {_load(ROOT / s / "manifest.json")["name"] for s in starts}  # the bundles' names start with them
        made = [
            r
            for r in full_dev_runs()
            if any(r["name"].startswith(n) for n in names) and r["size_mb"] <= budget["max_mb"]
        ]
        best = max(made, key=lambda r: r["f1"], default=None)
        floor = [f"p50 ≤ {budget['max_p50_ms']:g} ms"] if budget.get("max_p50_ms") is not None else []
        floor += [f"≥ {budget['min_share']:.0%} of the teacher"] if budget.get("min_share") is not None else []
        said = d["chosen"] or f"none; nearest {d['nearest']} ({', '.join(d['missing'])})"
        kept = f"{t_f1:.2f} ({full['score'] / t_f1:.1%})" if t_f1 else "–"
        rows.append(
            f"| ≤ {budget['max_mb']:g} MB, {', '.join(floor)} | {said} | {answer['size_mb']:.1f} "
            f"| {full['score']:.2f} | {kept} "
            f"| {full['p50_ms']:.1f} | "
            + (f"{best['name']}: {best['f1']:.2f}" if best else "–")
            + f" | {cost['measured_on_all']} of {cost['within_size']} | {cost['examples_answered']:,} of "
            f"{cost['examples_if_all_measured_on_all']:,} | {d['seconds'] / 60:.0f} min |"
        )
        notes.append(f"`{path.relative_to(ROOT)}` ({_command(d)})")
    if not rows:
        return "No fit is committed.\n"
    recorded = [device for d in fits.values() if (device := d.get("device"))]
    device = recorded[0] if recorded else None
    return "\n".join(
        [
            "The starting students are the shipped QA bundles; the search is over their forms, runtimes and threads "
            "(docs/fit.md), on the full dev set, each measurement on "
            + (_cpu(device) if device else "this machine")
            + ". Teacher: measured by the fit beside the candidates, on the same questions and device (its F1, and "
            "the answer's share of it). Best made by hand: the best committed full-dev run of a bundle made from the "
            "same starts within the size (another machine's run: int8 kernels differ by CPU, so an F1 can move in its "
            "second decimal). Time: of that fit's "
            "own command; a fit run into an --out that holds another fit's measurements reuses them.",
            "",
            "| budget | chosen | MB | F1 | teacher F1 (share) | p50 ms | best made by hand | measured on all "
            "| examples answered | time |",
            "|---|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            *(f"- {n}" for n in notes),
            "",
            exhaustive_results(fits),
        ]
    )


def _seconds(doc: dict[str, Any], cid: str) -> float:
    """The time ``doc``'s measurements of candidate ``cid`` took (0 where it has none)."""
    entries = [*doc["candidates"], *([doc["teacher"]] if doc.get("teacher") else [])]
    return sum(m["seconds"] for e in entries if e["candidate"]["id"] == cid for m in e["measurements"])


def _same_search(d: dict[str, Any], ex: dict[str, Any]) -> bool:
    """Whether ``d`` is a search with ``ex``'s settings and budget (an empty setting and an absent one alike)."""
    keys = (d["settings"].keys() | ex["settings"].keys()) - {"exhaustive"}
    same = all((d["settings"].get(k) or None) == (ex["settings"].get(k) or None) for k in keys)
    return not d["settings"].get("exhaustive") and same and d["budget"] == ex["budget"]


def exhaustive_results(fits: dict[Path, dict[str, Any]]) -> str:
    """Each committed ``--exhaustive`` fit against the search with the same settings (run into a copy of its --out:
    the exhaustive one resumed the search's runs), so measuring every candidate on all took the two fits' times per
    candidate added up (each run resumes its log, so no example is answered twice)."""
    rows, notes = [], []
    for path, ex in fits.items():
        if not ex["settings"].get("exhaustive"):
            continue
        search = next((d for d in fits.values() if _same_search(d, ex)), None)
        if search is None:
            continue
        ids = [c["candidate"]["id"] for c in ex["candidates"] if c["measurements"]]
        teacher = [ex["teacher"]["candidate"]["id"]] if ex.get("teacher") else []
        for name, d, both in (("search", search, False), ("every candidate on all", ex, True)):
            took = {i: _seconds(search, i) + (_seconds(ex, i) if both else 0) for i in ids + teacher}
            cost = d["cost"]
            rows.append(
                f"| ≤ {ex['budget']['max_mb']:g} MB | {name} | {d['chosen'] or 'none'} "
                f"| {cost['measured_on_all']} of {cost['within_size']} | {cost['examples_answered']:,} "
                f"| {sum(took[i] for i in ids) / 60:.0f} min | {sum(took[i] for i in teacher) / 60:.0f} min |"
            )
        notes.append(f"`{path.relative_to(ROOT)}` ({_command(ex)})")
    if not rows:
        return ""
    return "\n".join(
        [
            "The search against measuring every candidate on the whole set (`--exhaustive`, run into a copy of the "
            "search's --out, so it resumed each candidate's runs: a candidate's time is the two fits' measuring time added "
            "up, no example answered twice); the teacher's time apart.",
            "",
            "| budget | fit | chosen | measured on all | examples answered | measuring the candidates | the teacher |",
            "|---|---|---|---|---|---|---|",
            *rows,
            "",
            *(f"- {n}" for n in notes),
            "",
        ]
    )


def int8_sensitivity() -> str:
    """Per bundle: each MatMul group's activation rounding measured against a graph that rounds weights only."""
    out = []
    for path in sorted(RESULTS.glob("int8-sensitivity/*.json")):
        d = _load(path)
        out += [
            f"`{path.relative_to(ROOT)}` ({_command(d)}): {d['bundle']}, {d['windows']} windows of {d['dataset']}, "
            f"{d['threads']} threads, {_cpu(d['device'])}. Reference: every product with float activations (int8 "
            f"weights only), {d['reference_ms_per_window']:.1f} ms per window. Roles, most harmful first: "
            f"{', '.join(d['roles_by_harm'])}.",
            "",
            "| variant | KL from reference (start + end, nats) | same start and end | ms per window |",
            "|---|---|---|---|",
            *(
                f"| {'float ' + ' + '.join(r['float_groups']) if r['float_groups'] else 'int8'} | {r['kl']:.4f} "
                f"| {100 * r['same_argmax']:.1f}% | {r['ms_per_window']:.1f} |"
                for r in d["variants"]
            ),
            "",
        ]
        runs = [r for r in full_dev_runs() if r["name"].startswith(d["bundle"])]
        base = next((r for r in runs if not r["float_activations"]), None)
        if base and len(runs) > 1:
            out += [
                f"On the full dev set (`edgekit run`; the bundle is {d['bundle']}, the rest made from it; their "
                "latency in one run: the size budget's table):",
                "",
                "| bundle | float activations into | EM | F1 | ΔF1 |",
                "|---|---|---|---|---|",
                *(
                    f"| {r['name']} | {', '.join(r['float_activations']) or '-'} | {r['exact_match']:.2f} "
                    f"| {r['f1']:.2f} | {r['f1'] - base['f1']:+.2f} |"
                    for r in sorted(runs, key=lambda r: len(r["float_activations"]))
                ),
                "",
            ]
    return "\n".join(out) if out else "(not measured yet: `python -m benchmarks.int8_sensitivity INT8_BUNDLE`)\n"


def emulated_pi() -> str:
    lines = ["| bundle | questions | same answers as the host | max confidence diff |", "|---|---|---|---|"]
    for path in sorted(RESULTS.glob("devices/*-comparison.json")):
        d = _load(path)
        lines.append(
            f"| {d['bundle']} | {d['n_questions']} | {d['same_answers']} / {d['n_questions']} "
            f"| {d['max_confidence_diff']:.2g} |"
        )
    return "\n".join(lines) + "\n"


def long_context() -> str:
    path = RESULTS / "long-context.json"
    if not path.exists():
        return "(not measured yet: `python -m benchmarks.long_context BUNDLE`)\n"
    d = _load(path)
    per_call = (
        f"at most {d['window_tokens_per_call']:,} tokens per runtime call"
        if "window_tokens_per_call" in d
        else f"{d['windows_per_call']} window per runtime call"
    )
    lines = [
        f"Bundle `{d['bundle']}`, {d['threads']} threads, {per_call}, {_cpu(d['device'])}; {_command(d)}.",
        "",
        "| context chars | --low-memory | windows | s per question | model s | peak RSS MB | × RSS of the smallest |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in d["rows"]:
        lines.append(
            f"| {r['context_chars']:,} | {'yes' if r['low_memory'] else 'no'} | {r['windows']:,} "
            f"| {r['seconds_per_question']:.2f} | {r['model_seconds']:.2f} | {r['peak_rss_mb']:.0f} "
            f"| {r['peak_rss_vs_smallest']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def tflite_lengths() -> str:
    path = RESULTS / "tflite-lengths.json"
    if not path.exists():
        return "(not measured yet: `python -m benchmarks.tflite_lengths`)\n"
    d = _load(path)
    st = d["settings"]
    lines = [
        f"The same int8 TFLite student at one length and with a signature per length, {st['n']} dev questions, "
        f"{st['repeats']} repeats in fresh processes, {st['threads']} threads, {_cpu(d['device'])}; {_command(d)}.",
        "",
        "| bundle | lengths | model MB | p50 ms | mean ms | peak RSS MB | F1 |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['name']} | {', '.join(map(str, r['lengths']))} | {r['model_size_mb']:.1f} | {r['p50_ms']:.2f} "
        f"| {r['mean_ms']:.2f} | {r['peak_rss_mb']:.0f} | {r['f1']:.2f} |"
        for r in d["rows"]
    ]
    lines += [
        "",
        f"Per length against one: {d['per_length_vs_fixed_p50']:.2f}× the p50 time, "
        f"{d['per_length_vs_fixed_mean']:.2f}× the mean, F1 {d['per_length_minus_fixed_f1']:+.2f}.",
    ]
    return "\n".join(lines) + "\n"


def openvino_lengths() -> str:
    """``benchmarks.openvino_lengths``: OpenVINO at the windows' own lengths against lengths in steps."""
    from benchmarks import openvino_lengths

    d = _load(RESULTS / "openvino-lengths.json")
    st = d["settings"]
    return (
        f"Every window of {st['n']} dev questions through the OpenVINO backend, {st['repeats']} repeats in fresh "
        f"processes, {st['threads']} threads, {_cpu(d['device'])}; {_command(d)}; {d['notes']}. The backend pads "
        "every window to a multiple of 32 tokens (`LENGTH_STEP`).\n\n" + openvino_lengths.markdown(d["rows"])
    )


def stages() -> str:
    path = RESULTS / "stages.json"
    if not path.exists():
        return "(not measured yet: `python -m benchmarks.stages BUNDLE...`)\n"
    d = _load(path)
    lines = [
        f"{d['settings']['n']} dev questions spread over the set, batch 1, {_cpu(d['device'])}; {_command(d)}. "
        "Medians per question; the model time by the number of windows a context needs.",
        "",
        "| bundle | runtime | threads | tokenize ms | model ms | decode ms | model share | model ms by windows (1 / 2 / 3+) "
        "| model ms per 1k tokens |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in d["rows"]:
        by = r["model_ms_p50_by_windows"]
        windows = " / ".join(f"{by[k]:.1f}" if k in by else "–" for k in ("1", "2", "3+"))
        lines.append(
            f"| {r['bundle']} | {r['backend']} | {r['threads']} | {r['tokenize_ms_p50']:.2f} | {r['model_ms_p50']:.1f} "
            f"| {r['decode_ms_p50']:.2f} | {100 * r['share_of_time']['model']:.0f}% | {windows} "
            f"| {r['model_ms_per_1k_tokens']:.1f} |"
        )
    if d["unavailable"]:
        lines += ["", "Not measured here: " + "; ".join(f"{k}: {v}" for k, v in d["unavailable"].items()) + "."]
    return "\n".join(lines) + "\n"


def ddp() -> str:
    path = RESULTS / "ddp.json"
    if not path.exists():
        return "(not measured yet: `python -m benchmarks.ddp`)\n"
    d = _load(path)
    lines = [
        f"Recipe `{d['recipe']}` on {d['train_limit']} training questions, global batch {d['global_batch']}, "
        f"dropout off, each count in a fresh output directory through `torchrun`; {_cpu(d['device'])}, "
        f"its cores shared by the processes; {_command(d)}. Loss curves are compared step by "
        f"step with the first row's (tolerance {d['tolerance']:g} relative).",
        "",
        "| processes | batch per process | steps | s per step | × first row | teacher logits s | loss curve | "
        "max rel. loss difference |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in d["runs"]:
        lines.append(
            f"| {r['processes']} | {r['per_process_batch']} | {r['steps']} | {r['step_s']:.2f} "
            f"| {r['step_time_vs_first']:.2f} | {r['teacher_logits_s']:.0f} "
            f"| {'equal' if r['loss_curve_equal'] else 'different'} | {r['max_relative_loss_difference']:.1e} |"
        )
    return "\n".join(lines) + "\n"


def kd_terms() -> str:
    """Each intermediate-layer term's size at step 0 (its weight) and its cost per training step."""
    lines = []
    if (path := RESULTS / "kd-scales.json").exists():
        d = _load(path)
        lines += [
            f"Size at step 0 ({_command(d)}; {d['recipe']}, student layers {d['student_layers']} matched to teacher "
            f"layers {d['layer_map']}, {d['batches']} batches of {d['batch_size']}): the logit loss "
            f"{d['term_at_step_0']['logits']:.3g}; "
            + ", ".join(
                f"{k} {v:.3g} (weight {d['weight_equal_to_logit_loss'][k]:.3g} to equal it)"
                for k, v in d["term_at_step_0"].items()
                if k != "logits"
            )
            + ".",
            "",
        ]
    for path in sorted(RESULTS.glob("kd-cost*.json")):  # one run per machine or precision: compare within one
        d = _load(path)
        lines += [
            f"Cost per training step (`{path.relative_to(ROOT)}`: {_command(d)}; the Trainer's own time over {d['steps']} steps, one run, "
            f"{_cpu(d['device'])}); an epoch is {d['windows_per_epoch']:,} windows. Logit KD reads the teacher's "
            "cached logits; the other terms run the teacher forward on every step.",
            "",
            "| recipe | terms logged | bf16 autocast | s / step | × logit KD | one epoch, min |",
            "|---|---|---|---|---|---|",
            *(
                f"| {r['recipe']} | {', '.join(t.removeprefix('loss_') for t in r['loss_terms'])} "
                f"| {'yes' if r['bf16'] else 'no'} | {r['s_per_step']:.2f} | {r['x_baseline']:.2f}× "
                f"| {r['epoch_min']:.0f} |"
                for r in d["rows"]
            ),
            "",
        ]
    return "\n".join(lines) if lines else "(not measured yet: `python -m benchmarks.kd_scales`, `kd_cost`)\n"


def training_time() -> str:
    """What length-grouped batches (``batching-*.json``) and bf16 autocast (``train-precision-*.json``) did to
    the time of a training step: the two levers that make a CPU epoch fit a session."""
    lines = []
    for path in sorted(RESULTS.glob("batching-*.json")):
        d = _load(path)
        if not lines:
            lines += [
                "Length-grouped batches against random ones, the same windows; the mean over the timed batches of "
                "each kind (a batch's length is its longest window), one run each:",
                "",
                "| command | max length | windows | mean window | padded: random / grouped | s / step: random "
                "/ grouped | grouped ÷ random | epoch min: random / grouped | CPU |",
                "|---|---|---|---|---|---|---|---|---|",
            ]
        pad, step, epoch = d["mean_padded_len"], d["mean_step_s"], d["epoch_s_estimate"]
        lines.append(
            f"| {_command(d)} | {d['max_seq_len']} | {d['n_windows']:,} | {d['mean_window_len']:.0f} "
            f"| {pad['random']:.0f} / {pad['grouped']:.0f} | {step['random']:.2f} / {step['grouped']:.2f} "
            f"| {d['grouped_vs_random_step_time']:.2f} | {epoch['random'] / 60:.0f} / {epoch['grouped'] / 60:.0f} "
            f"| {_cpu(d['device'])} |"
        )
    precision = sorted(RESULTS.glob("train-precision-*.json"))
    if precision:
        lines += [
            "",
            "bf16 autocast against fp32, the same batches, one run each:",
            "",
            "| command | batches (lengths) | s / step: fp32 / bf16 | bf16 ÷ fp32 | CPU | bf16 flags |",
            "|---|---|---|---|---|---|",
        ]
    for path in precision:
        d = _load(path)
        lines.append(
            f"| {_command(d)} | {d['timed_batches']} ({', '.join(map(str, d['timed_batch_len']))}) "
            f"| {d['mean_step_s']['fp32']:.2f} / {d['mean_step_s']['bf16']:.2f} | {d['bf16_vs_fp32_step_time']:.2f} "
            f"| {_cpu(d['device'])} | {', '.join(d['cpu_bf16_flags']) or 'none'} |"
        )
    return "\n".join(lines) + "\n" if lines else "(not measured yet: `python -m benchmarks.batching`)\n"


def _best_within(d: dict[str, Any]) -> list[str]:
    """Per budget, the best variant within it, and where another, the best with int8 layers (weights and
    activations) and the best with int8 weights (some products with float activations): how far from 90% and
    95% of the teacher's F1."""
    out = []
    for mb in d["budgets_mb"]:
        fits = [r for r in d["rows"] if r["size_mb"] <= mb]
        int8_weights = [r for r in fits if "-int8-" in r["name"]]
        shown: list[dict[str, Any]] = []
        for label, among in (
            ("", fits),
            (" with int8 layers", [r for r in int8_weights if not r.get("float_activations")]),
            (" with int8 weights, float activations into some products", int8_weights),
        ):
            r = max(among, key=lambda r: r["f1"], default=None)
            if r is None or r in shown:
                continue
            shown.append(r)
            gaps = "; ".join(
                f"{share:.0%} is {share * d['teacher_f1']:.2f}: "
                + ("held" if r["f1_kept"] >= share else f"{share * d['teacher_f1'] - r['f1']:.2f} F1 short")
                for share in (0.90, 0.95)
            )
            out.append(
                f"- best within {mb:.0f} MB{label}: {r['name']} ({r['size_mb']:.1f} MB), F1 {r['f1']:.2f} "
                f"= {100 * r['f1_kept']:.1f}% of the teacher's; {gaps}"
            )
        # what quantization and pruning start from: a budget no fp32 student clears is not closed by either
        by_name = {r["name"]: r for r in d["rows"]}
        fp32 = [by_name.get(re.split(r"-(?:int8|int4|vocab\d+)-", f["name"])[0] + "-fp32-onnx") for f in fits]
        f = max((f for f in fp32 if f and f not in fits), key=lambda f: f["f1"], default=None)
        if f is not None:
            out.append(
                f"- the same students before quantization or pruning: best {f['name']} ({f['size_mb']:.1f} MB), "
                f"F1 {f['f1']:.2f} = {100 * f['f1_kept']:.1f}% of the teacher's"
            )
    return out


def budget() -> str:
    path = RESULTS / "budget.json"
    if not path.exists():
        return "(not measured yet: `python -m benchmarks.budget`)\n"
    d = _load(path)
    t = d["timing"]
    lines = [
        f"Every variant measured on the full dev set, smallest first ({_command(d)}); the teacher's F1 is "
        f"{d['teacher_f1']:.2f}. Latency: the variants whose bundle was found (in `models/` or its run directory), all in one run, p50 per question "
        f"on the first {t['n']} dev questions, {t['threads']} threads, {_cpu(t['device'])}. "
        "Plot: [budget.png](../benchmarks/results/budget.png).",
        "",
        *_best_within(d),
        "",
        "| variant | MB | budget | EM | F1 | % of teacher F1 | on the front | p50 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in d["rows"]:
        fits = next((f"≤ {mb:.0f} MB" for mb in d["budgets_mb"] if r["size_mb"] <= mb), "over")
        lat = f"{r['latency']['p50_ms']:.1f}" if r["latency"] else "–"
        lines.append(
            f"| {r['name']} | {r['size_mb']:.1f} | {fits} | {r['exact_match']:.2f} | {r['f1']:.2f} "
            f"| {100 * r['f1_kept']:.1f}% | {'yes' if r['front'] else ''} | {lat} |"
        )
    return "\n".join(lines) + "\n"


def vocab_curves() -> str:
    paths = sorted(RESULTS.glob("vocab-*.json"))
    if not paths:
        return "(not measured yet: `python -m benchmarks.vocab BUNDLE --keep ...`)\n"
    out = []
    for path in paths:
        d = _load(path)
        out += [
            f"`{path.relative_to(ROOT)}` ({_command(d)}): `{d['bundle']}` pruned on `{d['train_corpus']}` and "
            f"wordfreq's {d['english_words']:,} most frequent English words, then dynamic INT8; "
            f"{d['rows'][0]['n_questions']:,} dev questions, {_cpu(d['device'])}. Dev coverage: the share of dev's "
            "tokens (full vocabulary) still in the vocabulary; growth: how many more tokens dev's text takes.",
            "",
            "| pieces kept | embedding bits | int8 model MB | MB saved | EM | F1 | ΔF1 | dev coverage | token growth |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in d["rows"]:
            out.append(
                f"| {r['keep']:,} | {r['embedding_bits']} | {r['int8_model_mb']:.1f} | {r['mb_saved']:.1f} "
                f"| {r['exact_match']:.2f} | {r['f1']:.2f} | {r['delta_f1']:+.2f} | {100 * r['dev_tokens_covered']:.1f}% "
                f"| {100 * r['dev_tokens_growth']:+.1f}% |"
            )
        out.append("")
    return "\n".join(out)


def _peer_lines(r: dict[str, Any], model: str, fp32: str, lead: str, unit: str, score: str) -> list[str]:
    """One line per comparison :func:`benchmarks.speed.peer_ratios` made for ``model`` (``r``: its result):
    Optimum's fastest form, and each tool's fastest within 0.5 of ``fp32`` (the fp32 model)."""
    return [
        f"- {lead}{what}: Optimum `{r[f'optimum_{key}_{model}']}`, edgekit `{r[f'edgekit_{key}_{model}']}`: "
        f"{r[f'edgekit_vs_optimum_{key}_{model}_speedup']:.2f}× its speed per {unit}, "
        f"{r[f'edgekit_minus_optimum_{key}_{model}_f1']:+.2f} {score}."
        for key, what in (("fastest", "Optimum's fastest form"), ("accuracy_kept", f"within 0.5 {score} of {fp32}"))
        if f"edgekit_vs_optimum_{key}_{model}_speedup" in r
    ]


def peers() -> str:
    """Each tool's fastest deployable form of the teacher and of each student measured as it is, one run
    (``benchmarks/results/peers.json``), compared as :func:`benchmarks.speed.peer_ratios` compares them."""
    d = _load(RESULTS / "peers.json")
    said = []
    for model in d.get("peer_models", ["teacher"]):
        fp32 = "the fp32 teacher" if model == "teacher" else f"the fp32 student `{model}`"
        said += _peer_lines(speed.peer_ratios(d["rows"], model), model, fp32, f"{model}, ", "question", "F1")
    config = d["ratios"].get("optimum_cpu_config", "?")
    return (
        f"`benchmarks/results/peers.json` ({_command(d)}); {d['notes']}; device: {_cpu(d['device'])}. Optimum's INT8 "
        f"is its `ORTQuantizer` with `AutoQuantizationConfig.{config}(is_static=False)`; edgekit's are "
        "`edgekit export int8` (dynamic; the teacher's `--full-range`) and `edgekit export int8 --static nncf` "
        "(NNCF's static int8, calibrated on 64 windows of the training subset) of its fp32 bundle, each run by ONNX "
        "Runtime and by OpenVINO (`openvino`; `openvino-bf16` computes what stays float in bfloat16). A student's "
        "checkpoint, which Optimum and the HF pipeline start from, is `edgekit export checkpoint` of its shipped "
        "int8 bundle (the weights dequantized; its own export and dynamic int8 give the shipped model file back "
        "byte for byte), and its pipelines use its bundle's window length. "
        "Each comparison takes every tool's fastest form at an accuracy (the goal is "
        f"{d['goals'].get('edgekit_vs_optimum_teacher_speedup_min', 1.5)}×):\n\n"
        + "\n".join(said)
        + "\n\n"
        + speed.markdown(d["rows"])
    )


def classification_peers(results: Path = RESULTS) -> str:
    """Each tool's forms of a shipped classifier or tagger, one run each (``benchmarks/results/peers-<set>.json``,
    ``benchmarks.classification --peer``), compared as :func:`benchmarks.speed.peer_ratios` compares QA's."""
    out, shipped = [], {p.name for p in shipped_bundles().values()}
    for key, (title, _) in CLASSIFICATION_SETS.items():
        if not (f := results / f"peers-{key}.json").exists():
            continue
        d = _load(f)
        tagger = d["task"] == "token-classification"
        score, unit = ("entity F1", "sentence") if tagger else ("accuracy", "example")
        n = d["dataset"]["n_timed"]
        said = _peer_lines(d["peers"], "student", "the fp32 student", "", unit, score)
        sample = "f1_on_sample" if tagger else "accuracy_on_sample"
        if tagger:  # the same weights, scored by one rule, answer differently: say why
            fp32 = next(n for n, b in d["bundles"].items() if b["precision"] == "fp32")
            said.append(
                "- On the same fp32 weights, by the same strict IOB2 scorer, the pipeline scores "
                f"{d['speed']['hf-pipeline-student'][sample]:.2f} and edgekit {d['speed'][f'edgekit:{fp32}'][sample]:.2f}: "
                "the pipeline's grouping starts an entity at an `I-` tag that follows no `B-` of its type, and takes "
                "the pieces of a word split at punctuation (a URL's) as words of their own, so it finds entities "
                "inside URLs; edgekit labels a word by its first piece and keeps only well-formed entities. Both "
                "int8 forms are dynamic int8 on ONNX Runtime: most of what separates their times is the pipeline "
                "around the model."
            )
        rows = ["| system | p50 ms | mean ms | peak RSS MB | " + score + " |", "|---|---|---|---|---|"]
        rows += [
            f"| {name} | {v['p50_ms']:.2f} | {v['mean_ms']:.2f} | {v['peak_rss_mb']:.0f} | {v[sample]:.2f} |"
            for name, v in sorted(d["speed"].items(), key=lambda kv: kv[1]["p50_ms"])
        ]
        out += [
            f"**{title}**, the shipped student `{', '.join(n for n in d['bundles'] if n in shipped)}` "
            "and its forms "
            f"(`benchmarks/results/{f.name}`, {_command(d)}): {n:,} {unit}s, each system timed and scored on all of "
            f"them, batch 1, {d['threads']} threads, {_cpu(d['device'])}, medians of {d['repeats']} repeats in one "
            f"run. The student's checkpoint, which the HF pipeline and Optimum start from, is `edgekit export "
            f"checkpoint` of the shipped bundle; Optimum's INT8 is its `ORTQuantizer` with its config for this CPU; "
            f"edgekit's forms run on ONNX Runtime (no suffix) and OpenVINO. The goal is "
            f"{d['goals'].get('edgekit_vs_optimum_speedup_min', 1.5)}×:",
            "",
            *said,
            "",
            *rows,
            "",
        ]
    return "\n".join(out)


def decoding_rules() -> str:
    """edgekit's rule for picking one answer from several windows against the QA pipeline's, on the same logits
    (``benchmarks/results/decoding.json``)."""
    d = _load(RESULTS / "decoding.json")
    n = d["rows"][0]["questions"]
    return (
        f"`benchmarks/results/decoding.json` ({_command(d)}): each bundle over {n:,} dev questions once, every "
        "window's logits decoded by each rule (the best of the top-20 starts and ends, as the runner does); device: "
        f"{_cpu(d['device'])}. The pipeline normalizes each window's logits over its context tokens before windows are "
        "compared and takes answers of up to 15 tokens; edgekit compares raw logit sums across windows. On one "
        "window the rules differ only in the answer length; what the windows' normalization does shows on the "
        "questions whose context takes several.\n\n" + decoding.markdown(d["rows"])
    )


def document() -> str:
    t = _load(TEACHER)
    c, dt, sp = (_load(RESULTS / f) for f in ("compress.json", "distill.json", "speed.json"))
    sections = [
        "# Results",
        "",
        "Generated by `python -m benchmarks.results_doc` from the files in `benchmarks/results/`; each table "
        "names the command that wrote its file. Numbers are comparable only within one table (one run, one "
        "machine); every file records the device it ran on. Commands are shown as they were run: a recipe they name "
        "under `export/recipes/` that is an experiment, not a preset, now lies in `export/recipes/experiments/` "
        "(`--recipe NAME` finds either).",
        "",
        "## Teacher vs students",
        "",
        headline(),
        "## Text classification",
        "",
        classification(),
        "## The teacher through edgekit",
        "",
        f"`{TEACHER.relative_to(ROOT)}` ({_command(t)}): EM {t['exact_match']:.2f}, F1 {t['f1']:.2f} on "
        f"{t['n_questions']:,} dev questions.",
        "",
        "## Distillation",
        "",
        "`benchmarks/results/distill.json`, from each run's `result.json` (`benchmarks/results/students/`) by "
        "`python -m benchmarks.distill_table RUN_DIR...`. KD vs fine-tuning pairs differ only in the loss's alpha; "
        "intermediate-layer pairs only in the terms added to logit KD.",
        "",
        distill_table.markdown(
            dt["records"], dt["kd_vs_ft"], dt["bf16_vs_fp32"], dt["intermediate_vs_logits"], dt["seed_repeats"]
        ),
        "### Intermediate-layer terms: scale and cost",
        "",
        kd_terms(),
        "### Training time: length-grouped batches and bf16",
        "",
        training_time(),
        "## The size budget",
        "",
        budget(),
        "## edgekit fit: the budget search",
        "",
        fit_results(),
        "## Vocabulary pruning",
        "",
        vocab_curves(),
        "## Size and INT8",
        "",
        f"`benchmarks/results/compress.json` ({_command(c)}).",
        "",
        compress.markdown(c["rows"]),
        "## INT8 on the host CPU and on the emulated Raspberry Pi",
        "",
        int8_agreement(),
        "## INT8: which products lose the answers",
        "",
        "Dynamic int8 rounds each product's input activations per call; `edgekit export float-activations` undoes "
        "that for chosen groups and keeps the int8 weights (the file keeps its size). Measured on training "
        "windows, never dev. A role is one product in every layer; after each group alone, the roles are added "
        "most harmful first.",
        "",
        int8_sensitivity(),
        "## Speed",
        "",
        f"`benchmarks/results/speed.json` ({_command(sp)}); {sp['notes']}; device: {_cpu(sp['device'])}.",
        "",
        speed.markdown(sp["rows"]),
        *(
            ["By thread count (same questions and repeats, a fresh process each):", "", speed.sweep_markdown(sw)]
            if (sw := sp.get("thread_sweep"))
            else []
        ),
        "## Against the peers: each tool's best form of the teacher and the shipped student",
        "",
        peers(),
        *(["### Classification and tagging", "", cp] if (cp := classification_peers()) else []),
        *(
            ["### One answer from several windows", "", decoding_rules()]
            if (RESULTS / "decoding.json").exists()
            else []
        ),
        "## TFLite: a signature per window length",
        "",
        tflite_lengths(),
        "## OpenVINO: window lengths in steps",
        "",
        openvino_lengths(),
        "## Where a question's time goes",
        "",
        stages(),
        "## The emulated Raspberry Pi: same answers as the host",
        "",
        "`python -m benchmarks.emulated_pi BUNDLE --n N` (`benchmarks/results/devices/`); emulation time is not a "
        "Pi's, so only answers are compared.",
        "",
        emulated_pi(),
        "## Long contexts: memory per question",
        "",
        long_context(),
        "## Distillation on 1 and 2 processes (DDP)",
        "",
        ddp(),
    ]
    return "\n".join(sections)


def readme_with(block: str, readme: str) -> str:
    start, end = readme.index(BEGIN) + len(BEGIN), readme.index(END)
    return readme[:start] + "\n" + block + readme[end:]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="only compare; exit 1 if a page is out of date")
    args = p.parse_args(argv)
    doc, readme = document(), readme_with(headline() + "\n" + classification_brief(), README.read_text())
    if args.check:
        stale = [str(f.relative_to(ROOT)) for f, text in ((DOC, doc), (README, readme)) if f.read_text() != text]
        if stale:
            print(f"out of date: {', '.join(stale)}; run python -m benchmarks.results_doc", file=sys.stderr)
            return 1
        return 0
    write_text(DOC, doc)
    write_text(README, readme)
    print(f"wrote {DOC.relative_to(ROOT)} and the README's results table")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
