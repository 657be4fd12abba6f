"""One command from recipe to shippable bundles: distill -> ONNX [-> fused] -> INT8 [static] -> TFLite -> check -> table.

Each step is skipped when its output already exists and is valid for the current
student weights (bundles record the sha256 of the weights they were made from and
must verify), so re-running after an interruption only does what is missing.
The quick dev check runs every bundle through the device runner on the first
``check_questions`` dev questions and validates its logits against PyTorch fp32.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from edgekit.atomic import write_json, write_text
from edgekit.bundle import Bundle, load_bundle, sha256_file
from edgekit.destination import TRAINING, claim
from edgekit.errors import EdgekitError
from edgekit.export.distill import (
    LABELLED,
    dev_examples,
    dev_file,
    method_name,
    recipe_labels,
    recipe_model,
    run_distill,
    train_texts,
)
from edgekit.export.models import LoadedQA
from edgekit.export.quantize import (
    DynamicInt8,
    StaticInt8,
    WindowReader,
    quantize_dynamic_bundle,
    quantize_static_bundle,
    windows_of,
)
from edgekit.export.recipes import Recipe
from edgekit.export.to_onnx import DEFAULT_ATOL, onnx_bundle, validate
from edgekit.runner import run_in_process
from edgekit.squad import load_squad
from edgekit.text import md_table

# int8 moves a trained model's logits a little with most answers unchanged, and flips a barely trained model's
# flat argmax under tiny noise (docs/export.md); so int8 is judged by EM/F1 in the report, and this check fails
# only a broken graph: answers mostly changed *and* logits far off
INT8_MIN_AGREEMENT = 0.6
INT8_BROKEN_ATOL = 1.0


@dataclass(frozen=True)
class ArtifactRow:
    """One shippable artifact and how it compares with the PyTorch fp32 student."""

    name: str
    format: str
    precision: str
    params: int
    size_mb: float
    max_abs_diff: float
    answer_agreement: float
    exact_match: float | None  # QA's scores; None for a classifier
    f1: float | None
    n_questions: int  # questions or, for a classifier, examples
    latency_p50_ms: float
    path: str
    how: str = ""  # quantization / graph optimization, from the manifest
    peak_rss_mb: float = 0.0  # of the runner's own process (run_fresh)
    accuracy: float | None = None  # a classifier's scores; None for QA
    macro_f1: float | None = None
    surface_f1: float | None = None  # a tagger's WNUT surface-form F1 (its entity F1 is ``f1``)


def how_made(source: dict) -> str:
    """A bundle's quantization and graph optimization in a few words, from its manifest's source."""
    parts = ["ORT fused"] if "fusion" in source else []
    q = source.get("quantization", {})
    if q:
        parts.append(str(q["method"]))
    if q.get("weight_type", "qint8") != "qint8":
        parts.append(f"{q['weight_type']} weights")
    if "reduce_range" in q:
        parts.append("7-bit weights" if q["reduce_range"] else "8-bit weights")
    return ", ".join(parts)


def _reuse(path: Path, want: dict, make: Callable[[], Bundle | list[Bundle]], what: str) -> None:
    """Make the bundle at ``path`` unless one is there whose manifest (its source, window length and stride)
    has every item of ``want``."""
    try:
        m = load_bundle(path).manifest
        have = {**m.source, "max_seq_len": m.max_seq_len, "doc_stride": m.doc_stride}
        if all(have.get(k) == v for k, v in want.items()):
            print(f"skip {what}: {path} matches these weights and settings", file=sys.stderr)
            return
    except EdgekitError:
        pass
    print(f"{what} -> {path}", file=sys.stderr)
    make()


# the dynamic int8 forms besides the default (qint8 weights, 7-bit, per channel)
DYNAMIC_FORMS: dict[str, DynamicInt8] = {
    "quint8": DynamicInt8(weight_type="quint8"),
    "full-range": DynamicInt8(reduce_range=False),
}


@dataclass(frozen=True)
class Variants:
    """Which artifacts the chain makes besides fp32 ONNX and its dynamic int8 form."""

    tflite: bool = True  # fp32 and int8 TFLite (needs the tflite extra; skipped with a note without it)
    fuse: bool = False  # ONNX Runtime's fused graph, fp32 and dynamic int8
    dynamic: tuple[str, ...] = ()  # more dynamic int8 forms: "quint8" weights, "full-range" (8-bit weights)
    static: tuple[str, ...] = ()  # static QDQ int8, one bundle per calibration method, calibrated on training windows
    calibration_windows: int = 64


def build_bundles(qa: LoadedQA, recipe: Recipe, weights_sha: str, variants: Variants = Variants()) -> dict[Path, bool]:
    """Write (or reuse) every bundle of the student; returns their paths, each with whether it is shipped.

    Shipped: the default forms (fp32 and dynamic int8 ONNX, TFLite); the variants are made to compare.
    """
    d, name, data = recipe.out / "bundles", recipe.name, recipe.data
    src = {"weights_sha256": weights_sha, "recipe": recipe.name, "method": method_name(recipe)}
    unknown = sorted(set(variants.dynamic) - set(DYNAMIC_FORMS))
    if unknown:
        raise EdgekitError(f"dynamic int8 form {unknown[0]!r}: expected one of {sorted(DYNAMIC_FORMS)}")
    same = {"weights_sha256": weights_sha, "max_seq_len": data.bundle_len, "doc_stride": data.doc_stride}
    fp32 = d / f"{name}-fp32-onnx"
    _reuse(
        fp32,
        same,
        lambda: onnx_bundle(qa, fp32, fp32.name, data.bundle_len, data.doc_stride, source=src),
        "ONNX fp32",
    )
    paths = {fp32: True}
    for kind, settings in [("", DynamicInt8())] + [(k, DYNAMIC_FORMS[k]) for k in variants.dynamic]:
        int8 = d / (f"{name}-int8-onnx-{kind}" if kind else f"{name}-int8-onnx")
        _reuse(
            int8,
            {**same, "quantization": settings.record()},
            lambda int8=int8, settings=settings: quantize_dynamic_bundle(load_bundle(fp32), int8, int8.name, settings),
            f"ONNX int8 ({kind})" if kind else "ONNX int8",
        )
        paths[int8] = not kind
    n, train = variants.calibration_windows, data.train_path()
    for method in variants.static:
        static = d / f"{name}-int8-onnx-static-{method}"
        settings = StaticInt8(calibration=method, calibration_data=windows_of(n, train))

        def make_static(static: Path = static, settings: StaticInt8 = settings) -> Bundle:
            src32 = load_bundle(fp32)
            inputs = train_texts(recipe) if recipe.task in LABELLED else load_squad(train)
            reader = WindowReader(src32, inputs, n, padded=settings.padded)
            return quantize_static_bundle(src32, static, reader, static.name, settings)

        _reuse(static, {**same, "quantization": settings.record()}, make_static, f"ONNX static int8 ({method})")
        paths[static] = False
    if variants.fuse:
        from edgekit.export.fuse import fuse_bundle

        fused, fused8 = d / f"{name}-fp32-onnx-fused", d / f"{name}-int8-onnx-fused"
        check_on = dev_examples(recipe)[:8]
        _reuse(fused, same, lambda: fuse_bundle(load_bundle(fp32), fused, check_on, fused.name), "ONNX fused")
        _reuse(
            fused8,
            {**same, "quantization": DynamicInt8().record()},
            lambda: quantize_dynamic_bundle(load_bundle(fused), fused8, fused8.name),
            "ONNX fused int8",
        )
        paths |= {fused: False, fused8: False}
    if variants.tflite:
        if importlib.util.find_spec("litert_torch") is None:
            print("skip TFLite: litert-torch is not installed (pip install 'edgekit-kd[tflite]')", file=sys.stderr)
        else:
            from edgekit.export.to_tflite import signature_lengths, tflite_bundles

            t32, t8 = d / f"{name}-fp32-tflite", d / f"{name}-int8-tflite"
            _reuse(
                t8,
                {**same, "tflite_lengths": signature_lengths(data.bundle_len)},
                lambda: tflite_bundles(
                    recipe_model(recipe, str(recipe.out / "model"), recipe_labels(recipe)),
                    d,
                    name,
                    data.bundle_len,
                    data.doc_stride,
                    source=src,
                ),
                "TFLite fp32 + int8",
            )
            paths |= {t32: True, t8: True}
    return paths


def check(qa: LoadedQA, bundle_path: Path, recipe: Recipe, n: int, shipped: bool) -> ArtifactRow:
    """Validate against PyTorch and run the device runner on the first ``n`` dev questions.

    A broken fp32 bundle is always refused, a broken int8 one only if ``shipped`` (the default int8
    forms): the other int8 variants are asked for to see what they lose, so they are reported.
    """
    bundle = load_bundle(bundle_path)
    dev = dev_file(recipe)
    m = bundle.manifest
    v = validate(qa, bundle, dev_examples(recipe)[:16], DEFAULT_ATOL)
    if m.precision == "fp32":
        v.require_ok(bundle.path)
    if shipped and v.answer_agreement < INT8_MIN_AGREEMENT and v.max_abs_diff > INT8_BROKEN_ATOL:
        full_range = m.source.get("quantization", {}).get("reduce_range") is False
        raise EdgekitError(
            f"{bundle.path}: only {100 * v.answer_agreement:.0f}% of answers match PyTorch fp32 "
            f"(expected at least {100 * INT8_MIN_AGREEMENT:.0f}%; max |Δlogit| {v.max_abs_diff:.3g})"
            + ("; 8-bit weights saturate on x86 CPUs without VNNI: use 7-bit ones (the default)" if full_range else "")
        )
    # one check directory per model file: a remade bundle is checked afresh, not resumed from the old one's run
    model_sha = m.files[m.model_file].sha256
    split = ["--split", recipe.data.dev_split] if recipe.data.dev_split else []
    metrics = run_fresh(bundle.path, dev, recipe.out / "checks" / f"{bundle.path.name}-{model_sha[:12]}", n, split)
    return ArtifactRow(
        m.name,
        m.model_format,
        m.precision,
        m.params,
        round(bundle.model_size_mb, 2),
        v.max_abs_diff,
        v.answer_agreement,
        metrics.get("exact_match"),
        metrics.get("f1"),
        metrics.get("n_questions", metrics.get("n_examples")),
        metrics["latency_ms"]["p50"],
        str(bundle.path),
        how_made(m.source),
        metrics["peak_rss_mb"],
        metrics.get("accuracy"),
        metrics.get("macro_f1"),
        metrics.get("surface_f1"),
    )


def run_fresh(bundle: Path, dataset: Path, out: Path, limit: int, extra: Sequence[str] = ()) -> dict:
    """The runner's check of a bundle on ``limit`` examples, in a process of its own (the training process's
    threads and multi-GB RSS are not the runner's)."""
    return run_in_process(bundle, dataset, out, ["--limit", str(limit), "--no-progress", *extra])


def markdown(rows: list[ArtifactRow]) -> str:
    """export-summary.md: one row per bundle, the task's scores (QA's EM/F1, a classifier's accuracy, a
    tagger's entity and surface-form F1)."""
    classifier = bool(rows) and rows[0].accuracy is not None
    tagger = bool(rows) and rows[0].surface_f1 is not None
    scores = (
        ["accuracy", "macro-F1", "examples"]
        if classifier
        else ["entity F1", "surface F1", "sentences"]
        if tagger
        else ["EM", "F1", "questions"]
    )
    same = "same label (16 ex)" if classifier else "same tags (16 sent.)" if tagger else "same answer (16 q)"
    head = ["bundle", "format", "precision", "how", "params", "model MB", "max abs Δlogit", same, *scores]
    head += ["p50 ms", "peak RSS MB"]
    body = []
    for r in rows:
        a, b = (r.accuracy, r.macro_f1) if classifier else (r.f1, r.surface_f1) if tagger else (r.exact_match, r.f1)
        cells = [r.name, r.format, r.precision, r.how or "-", f"{r.params / 1e6:.1f}M", f"{r.size_mb:.1f}"]
        cells += [f"{r.max_abs_diff:.2g}", f"{100 * r.answer_agreement:.0f}%", f"{a:.1f}", f"{b:.1f}", r.n_questions]
        body.append([*cells, f"{r.latency_p50_ms:.1f}", f"{r.peak_rss_mb:.0f}"])
    return "\n".join(md_table(head, body)) + "\n"


def export_all(recipe: Recipe, check_questions: int = 100, variants: Variants = Variants()) -> list[ArtifactRow]:
    """Run the whole chain for ``recipe``; writes ``export-summary.{json,md}`` in the recipe's output."""
    out = claim(recipe.out, TRAINING, recipe.inputs())
    weights = out / "model" / "model.safetensors"
    if weights.exists() and (out / "result.json").exists():
        print(f"skip distill: {weights} exists", file=sys.stderr)
    else:
        run_distill(recipe, evaluate=False)
    weights_sha = sha256_file(weights)
    qa = recipe_model(recipe, str(out / "model"), recipe_labels(recipe))
    bundles = build_bundles(qa, recipe, weights_sha, variants)
    rows = [check(qa, p, recipe, check_questions, shipped) for p, shipped in bundles.items()]
    write_json(
        out / "export-summary.json",
        {"recipe": recipe.name, "weights_sha256": weights_sha, "rows": [asdict(r) for r in rows]},
    )
    table = markdown(rows)
    write_text(out / "export-summary.md", table)
    return rows
