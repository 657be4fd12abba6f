"""PyTorch model (QA, text classification) -> TFLite edge bundles (fp32 and dynamic-range int8), via LiteRT.

``litert-torch`` converts the model at fixed sequence lengths (TFLite shapes are static;
inputs become int32): one signature per length of ``signature_lengths`` in one file, the
weights shared, so the device pads a window only to the shortest length that holds it, not
always to ``max_seq_len``: a little more file and memory for less time per question
(docs/export.md, "TFLite", has what was measured). Dynamic lengths do not lower: the converter
fails on the position-id slice. ``ai-edge-quantizer``'s ``dynamic_wi8_afp32`` recipe makes the
int8 variant (weights int8, activations fp32 with dynamic-range kernels). Both need the
``tflite`` extra (jax and the converter).
"""

from __future__ import annotations

from pathlib import Path

import torch

from edgekit.bundle import Bundle, bundle_scratch, fill_bundle, load_bundle
from edgekit.device import captured_output
from edgekit.errors import EdgekitError
from edgekit.export.models import LoadedQA
from edgekit.export.to_onnx import _LogitsOnly, input_names_of, manifest_for, output_names_of, save_tokenizer_json
from edgekit.features import DEFAULT_DOC_STRIDE, DEFAULT_MAX_SEQ_LEN

SIGNATURE_LENGTHS = (64, 128, 256)  # below max_seq_len; SQuAD windows are mostly 100-250 tokens


def signature_lengths(max_seq_len: int) -> list[int]:
    """The window lengths a TFLite bundle has a signature for: ``SIGNATURE_LENGTHS`` below ``max_seq_len``,
    and ``max_seq_len`` itself (the longest window)."""
    return [n for n in SIGNATURE_LENGTHS if n < max_seq_len] + [max_seq_len]


def convert_tflite(qa: LoadedQA, out_path: str | Path, lengths: list[int]) -> list[str]:
    """Write ``qa`` as an fp32 .tflite with one signature ``len<N>`` of [1, N] inputs per length; returns
    the input names in order."""
    with captured_output():  # importing TensorFlow logs oneDNN and absl notices from C++
        import litert_torch

    names = input_names_of(qa)
    qa.model.set_attn_implementation("eager")  # the converter lowers eager attention, not SDPA
    wrapper = _LogitsOnly(qa.model, names, output_names_of(qa)).eval()
    converter = litert_torch
    for n in sorted(lengths):
        converter = converter.signature(f"len{n}", wrapper, tuple(torch.ones((1, n), dtype=torch.long) for _ in names))
    with captured_output():  # the converter's stage tree and its C++ logs; edgekit says one line per bundle
        converter.convert().export(str(out_path))
    return names


def quantize_tflite(src: str | Path, out_path: str | Path) -> None:
    """Dynamic-range int8 (weights int8, activations fp32) with ai-edge-quantizer."""
    from ai_edge_quantizer import quantizer, recipe

    with captured_output():  # its progress bars and size summary
        q = quantizer.Quantizer(str(src))
        q.load_quantization_recipe(recipe.dynamic_wi8_afp32())
        q.quantize().export_model(str(out_path), overwrite=True)


def tflite_bundles(
    qa: LoadedQA,
    out_dir: str | Path,
    name: str,
    max_seq_len: int = DEFAULT_MAX_SEQ_LEN,
    doc_stride: int = DEFAULT_DOC_STRIDE,
    int8: bool = True,
    source: dict | None = None,
    lengths: list[int] | None = None,
) -> list[Bundle]:
    """fp32 (and int8) TFLite bundles ``out_dir/<name>-fp32-tflite`` and ``-int8-tflite``, with a signature
    per window length of ``lengths`` (default: ``signature_lengths(max_seq_len)``)."""
    out_dir = Path(out_dir)
    lengths = sorted(lengths or signature_lengths(max_seq_len))
    if lengths[-1] != max_seq_len:
        raise EdgekitError(f"TFLite lengths {lengths}: expected the longest to be max_seq_len ({max_seq_len})")
    source = {**(source or {}), "tflite_lengths": lengths}
    names_of = {p: out_dir / f"{name}-{p}-tflite" for p in ("fp32", "int8")[: 1 + int8]}
    # the converter's and quantizer's files live in the fp32 bundle's partial directory (bundle_scratch)
    with bundle_scratch(names_of["fp32"], qa.local_files) as tmp:
        fp32, tok = tmp / "model.tflite", tmp / "tokenizer.json"
        names = convert_tflite(qa, fp32, lengths)
        save_tokenizer_json(qa, tok)
        import litert_torch

        exporter = f"litert-torch {litert_torch.__version__} (torch {torch.__version__})"
        variants = [("fp32", fp32, source)]
        if int8:
            q8 = tmp / "model-int8.tflite"
            quantize_tflite(fp32, q8)
            variants.append(("int8", q8, {**source, "quantization": {"method": "ai-edge-quantizer dynamic_wi8_afp32"}}))
        manifests = {
            precision: manifest_for(
                qa, names_of[precision].name, "tflite", precision, names, max_seq_len, doc_stride, exporter, src
            )
            for precision, _, src in variants
        }
        if int8:
            with bundle_scratch(names_of["int8"], qa.local_files) as tmp8:
                fill_bundle(tmp8, q8, tok, manifests["int8"], names_of["int8"])
        fill_bundle(tmp, fp32, tok, manifests["fp32"], names_of["fp32"])
    bundles = []
    for precision in names_of:
        with captured_output():  # the check of the written model: LiteRT's delegate notice, once per process
            bundles.append(load_bundle(names_of[precision]))
    return bundles
