"""ONNX Runtime's offline transformer optimizer: fp32 ONNX bundle -> fused fp32 ONNX bundle.

``onnxruntime.transformers.optimizer`` rewrites the exported graph's attention,
layer norm, GELU and embedding subgraphs into ORT's fused operators (Attention,
SkipLayerNormalization, ...). The fused graph runs only on ONNX Runtime (the ops
are ORT contrib ops), which is the runtime the bundle names. Quantizing the fused
graph gives int8 attention (QAttention) as well as int8 MatMuls: ORT's
documentation recommends optimize-then-quantize for BERT-style models.

The fused bundle is checked against its source bundle on real inputs (questions, or a
classifier's texts: same logits within ``atol``) before it is written.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from edgekit.backends import RuntimeOptions, open_backend
from edgekit.bundle import Bundle, bundle_scratch, fill_bundle, load_bundle, write_bundle
from edgekit.errors import EdgekitError
from edgekit.export.to_onnx import DEFAULT_ATOL, Validation, compare, compare_tags, compare_texts

# the optimizer's BERT patterns: they match BERT-style encoders (BERT, MiniLM, RoBERTa); on other graphs
# fewer subgraphs match, the rest stays as exported, and the check below still applies
MODEL_TYPE = "bert"


def fuse_bundle(
    src: Bundle, out_dir: str | Path, examples: list[Any], name: str | None = None, atol: float = DEFAULT_ATOL
) -> tuple[Bundle, Validation]:
    """Write the fused form of an fp32 ONNX bundle, validated against ``src`` on ``examples`` (SQuAD
    questions, or a classifier's texts)."""
    from onnxruntime.transformers.optimizer import optimize_model

    m = src.manifest
    if m.model_format != "onnx" or m.precision != "fp32":
        raise EdgekitError(f"{src.path}: expected an fp32 ONNX bundle to fuse, got {m.model_format}/{m.precision}")
    reference = open_backend(src, RuntimeOptions())
    with bundle_scratch(out_dir, (src.path,)) as tmp:
        out_model = tmp / "model.onnx"
        # num_heads/hidden_size 0: read from the graph; opt_level 0: only the optimizer's own fusions, so the
        # saved graph stays portable across ORT versions (the session applies its own optimizations at load)
        source_model = tmp / "source.onnx"  # the optimizer reads a copy: nothing is written beside the source
        shutil.copyfile(src.model_path, source_model)
        opt = optimize_model(str(source_model), model_type=MODEL_TYPE, num_heads=0, hidden_size=0, opt_level=0)
        opt.save_model_to_file(str(out_model))
        fusions = {k: v for k, v in opt.get_fused_operator_statistics().items() if v}
        source = {
            **m.source,
            "fused_from": m.files[m.model_file].sha256,
            "fusion": {"tool": "onnxruntime.transformers.optimizer", "model_type": MODEL_TYPE, "fused": fusions},
        }
        manifest = replace(m, name=name or f"{m.name}-fused", source=source)
        # checked in a scratch bundle first, so a failed check leaves nothing at out_dir
        staged = write_bundle(tmp / "staged", out_model, src.tokenizer_path, manifest)
        by_task = {"text-classification": compare_texts, "token-classification": compare_tags}
        v = by_task.get(m.task, compare)(reference, staged, examples, atol)
        if not v.ok:
            raise EdgekitError(
                f"{src.path}: fused graph differs from the original by {v.max_abs_diff:.3g} > atol {atol}"
            )
        fill_bundle(tmp, out_model, src.tokenizer_path, manifest, out_dir)
    return load_bundle(out_dir), v
