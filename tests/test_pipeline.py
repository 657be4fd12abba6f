"""The one-command export chain on a tiny recipe: every bundle made, checked, and reused on re-run."""

from __future__ import annotations

import json

from conftest import chain_forms

from edgekit.export.pipeline import Variants, export_all
from edgekit.export.recipes import RECIPES_DIR, load_recipe


def test_export_chain_builds_checks_and_skips_valid_steps(tmp_path, capsys) -> None:
    recipe = load_recipe(
        RECIPES_DIR / "tiny-test.toml",
        [
            f"output_dir={json.dumps(str(tmp_path))}",
            'teacher.model="packaged:all-MiniLM-L6-v2"',
            "student.layers=[0, 5]",
            "data.train_limit=6",
            "data.max_seq_len=96",
            "data.doc_stride=32",
            "training.max_steps=2",
            "training.batch_size=8",
        ],
    )
    rows = export_all(recipe, check_questions=5)
    assert {(r.format, r.precision) for r in rows} == chain_forms()
    for r in rows:
        assert r.n_questions == 5 and 0 <= r.f1 <= 100 and r.latency_p50_ms > 0
        if r.precision == "fp32":
            assert r.max_abs_diff < 1e-3 and r.answer_agreement == 1.0
    fp32 = next(r for r in rows if r.format == "onnx" and r.precision == "fp32")
    int8 = next(r for r in rows if r.format == "onnx" and r.precision == "int8")
    assert int8.size_mb < 0.35 * fp32.size_mb
    summary = json.loads((recipe.out / "export-summary.json").read_text())
    assert len(summary["rows"]) == len(rows)
    capsys.readouterr()
    # second run: only the new variants are made
    again = export_all(recipe, 5, Variants(tflite=False, fuse=True, dynamic=("full-range",), static=("minmax",)))
    err = capsys.readouterr().err
    assert "skip distill" in err and "skip ONNX fp32" in err and "skip ONNX int8" in err
    assert "ONNX fused ->" in err and "ONNX fused int8 ->" in err and "ONNX static int8 (minmax) ->" in err
    assert {f"{recipe.name}-int8-onnx-static-minmax", f"{recipe.name}-int8-onnx-full-range"} <= {r.name for r in again}
    fused = {r.name: r for r in again if r.name.endswith("-fused")}
    assert set(fused) == {f"{recipe.name}-fp32-onnx-fused", f"{recipe.name}-int8-onnx-fused"}
    assert fused[f"{recipe.name}-fp32-onnx-fused"].max_abs_diff < 1e-3
    hows = {r.name: r.how for r in again}
    assert hows[f"{recipe.name}-int8-onnx"] == "onnxruntime dynamic, 7-bit weights"
    assert hows[f"{recipe.name}-int8-onnx-full-range"] == "onnxruntime dynamic, 8-bit weights"
    # an int8 bundle made with other settings (an older default, other calibration data) is remade, not reused
    from edgekit.bundle import load_bundle
    from edgekit.export.quantize import DynamicInt8, quantize_dynamic_bundle

    bundles = recipe.out / "bundles"
    int8_dir = bundles / f"{recipe.name}-int8-onnx"
    quantize_dynamic_bundle(
        load_bundle(bundles / f"{recipe.name}-fp32-onnx"), int8_dir, int8_dir.name, DynamicInt8(reduce_range=False)
    )
    capsys.readouterr()
    export_all(recipe, 5, Variants(tflite=False, static=("minmax",), calibration_windows=8))
    err = capsys.readouterr().err
    assert "ONNX int8 ->" in err and "skip ONNX int8" not in err
    assert "ONNX static int8 (minmax) ->" in err
    static = load_bundle(bundles / f"{recipe.name}-int8-onnx-static-minmax").manifest.source["quantization"]
    assert static["calibration_data"].startswith("8 windows of ")
    assert load_bundle(int8_dir).manifest.source["quantization"]["reduce_range"] is True
