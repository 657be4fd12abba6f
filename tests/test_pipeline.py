"""The one-command export chain on a tiny recipe: every bundle made, checked, and reused on re-run."""

from __future__ import annotations

import importlib.util
import json

from export.pipeline import Variants, export_all
from export.recipes import RECIPES_DIR, load_recipe


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
    kinds = {(r.format, r.precision) for r in rows}
    want = {("onnx", "fp32"), ("onnx", "int8")}
    if importlib.util.find_spec("litert_torch") is not None:
        want |= {("tflite", "fp32"), ("tflite", "int8")}
    assert kinds == want
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
    again = export_all(recipe, 5, Variants(tflite=False, fuse=True, dynamic=("reduce-range",), static=("minmax",)))
    err = capsys.readouterr().err
    assert "skip distill" in err and "skip ONNX fp32" in err and "skip ONNX int8" in err
    assert "ONNX fused ->" in err and "ONNX fused int8 ->" in err and "ONNX static int8 (minmax) ->" in err
    assert {f"{recipe.name}-int8-onnx-static-minmax", f"{recipe.name}-int8-onnx-reduce-range"} <= {
        r.name for r in again
    }
    fused = {r.name: r for r in again if r.name.endswith("-fused")}
    assert set(fused) == {f"{recipe.name}-fp32-onnx-fused", f"{recipe.name}-int8-onnx-fused"}
    assert fused[f"{recipe.name}-fp32-onnx-fused"].max_abs_diff < 1e-3
