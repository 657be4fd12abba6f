"""A student's starting weights read back from an edgekit ONNX bundle (fp32 or dynamic int8).

Why: the bundles in ``models/`` are often the only copy of a trained student that outlives the
machine it was trained on (no weights other than shipped bundles are kept). Reading their weights
back lets a run continue training a shipped student (more epochs, new data) instead of starting
from the pretrained encoder again.

The bundle's graph comes from ``export onnx`` (torch.onnx names: ``model.<parameter>`` for biases,
norms and embeddings, ``/model/<module path>/MatMul`` for each linear layer, its weight stored
transposed) and, for int8, from ONNX Runtime's dynamic quantizer (``<name>_quantized``,
``<name>_scale``, ``<name>_zero_point``: per-channel int8 weights and per-tensor 8-bit embeddings;
``export float-activations`` turns some into ``DequantizeLinear`` nodes).
An int8 weight comes back as ``(q - zero_point) * scale``: the rounded weight the bundle answered
with, not the float one it was rounded from. 4-bit forms (``MatMulNBits``, a block-quantized
embedding), fused graphs, static (QDQ) int8 forms and pruned vocabularies are refused: they do not fit the
architecture's own tensors.
Nothing is unpickled: ONNX is a protobuf, read by ``onnx``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from tokenizers import Tokenizer

from edgekit.atomic import write_json
from edgekit.bundle import load_bundle
from edgekit.destination import OutputKind, check_destination, replacing
from edgekit.errors import InputError
from edgekit.export.models import LoadedQA, load_model, resolve

CHECKPOINT = OutputKind("a transformers checkpoint written by edgekit", ("edgekit-checkpoint.json",), swapped=True)

# the exporter names a node's output after the module and the operator it came from; int8 forms add a suffix.
# A node whose output is the graph's (a classifier head's Add gives ``logits``) is known by its own name.
_MODULE_OP = re.compile(r"^/model/(.+)/(MatMul|Add|LayerNormalization|Gather|Gemm)_output_0")
_MODULE_NODE = re.compile(r"^/model/(.+)/(MatMul|Add|LayerNormalization|Gather|Gemm)$")
# graphs whose tensors are not the architecture's own: 4-bit blocks, ONNX Runtime's fusions, and activations
# quantized by calibration (NNCF's SmoothQuant scales folded into the weights, undone by Mul nodes beside them)
_NOT_READ_BACK = {
    "MatMulNBits": "4-bit forms",
    "GatherBlockQuantized": "4-bit forms",
    "Attention": "fused graphs",
    "SkipLayerNormalization": "fused graphs",
    "EmbedLayerNormalization": "fused graphs",
    "QuantizeLinear": "static (QDQ) int8 forms",
}
_QUANTIZED = "_quantized"


def _dequantize(q: np.ndarray, scale: np.ndarray, zero: np.ndarray, axis: int = -1) -> np.ndarray:
    """``(q - zero) * scale``, with one scale and zero point for the tensor or one per slice along ``axis``."""
    shape = [1] * q.ndim
    if scale.ndim:
        shape[axis] = -1
    f32 = np.float32
    return (q.astype(f32) - zero.astype(f32).reshape(shape)) * scale.astype(f32).reshape(shape)


def onnx_weights(model_file: Path) -> dict[str, np.ndarray]:
    """Every weight of an exported QA graph by its PyTorch parameter name, dequantized where stored as int8.

    Names come from the nodes that use each initializer, not from the initializer's own name: the
    exporter stores equal tensors once (the zero biases of a fresh model, say) and passes the copies
    through ``Identity`` nodes, so ``/model/<module>/Add`` is what says whose bias a tensor is.
    """
    graph = onnx.load(str(model_file)).graph
    unsupported = sorted({n.op_type for n in graph.node} & _NOT_READ_BACK.keys())
    if unsupported:
        kinds = " and ".join(sorted({_NOT_READ_BACK[op] for op in unsupported}))
        raise InputError(
            model_file,
            f"operators {unsupported}",
            f"an fp32 or dynamic int8 graph as export wrote it ({kinds} are not read back: use the bundle they were "
            "made from)",
        )
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:  # constants computed from constants, in graph order (a chain resolves in one pass)
        if node.op_type == "Identity" and node.input[0] in inits:
            inits[node.output[0]] = inits[node.input[0]]
        elif node.op_type == "DequantizeLinear" and all(i in inits for i in node.input):  # float-activation MatMuls
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            inits[node.output[0]] = _dequantize(*(inits[i] for i in node.input), axis=axis)

    def value(name: str) -> np.ndarray:
        """ONNX Runtime's naming: ``X_quantized`` beside ``X_scale`` and ``X_zero_point`` (per output channel,
        the last axis, for a MatMul weight; one for the whole table for an embedding)."""
        if not name.endswith(_QUANTIZED):
            return inits[name].astype(np.float32)
        base = name[: -len(_QUANTIZED)]
        return _dequantize(inits[name], inits[base + "_scale"], inits[base + "_zero_point"])

    weights: dict[str, np.ndarray] = {}
    for node in graph.node:
        m = (_MODULE_OP.match(node.output[0]) if node.output else None) or _MODULE_NODE.match(node.name)
        if m is None:
            continue
        module, op = m.group(1).replace("/", "."), m.group(2)
        consts = [name for name in node.input if name in inits]
        if op == "MatMul" and len(node.input) > 1 and node.input[1] in inits:
            weights[f"{module}.weight"] = value(node.input[1]).T  # MatMul takes W^T; torch's Linear keeps W
        elif op == "Add" and len(consts) == 1:
            weights[f"{module}.bias"] = value(consts[0])
        elif op == "LayerNormalization" and len(node.input) == 3 and consts == list(node.input[1:]):
            weights[f"{module}.weight"], weights[f"{module}.bias"] = value(node.input[1]), value(node.input[2])
        elif op == "Gemm" and len(node.input) == 3 and consts == list(node.input[1:]):  # a pooler's, a head's
            trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
            w = value(node.input[1])
            weights[f"{module}.weight"], weights[f"{module}.bias"] = (w if trans_b else w.T), value(node.input[2])
        elif op == "Gather" and node.input[0] in inits:
            weights[f"{module}.weight"] = value(node.input[0])
    return weights


def load_bundle_weights(qa: LoadedQA, bundle_dir: str | Path) -> LoadedQA:
    """``qa`` with every parameter replaced by the bundle's (same architecture, same vocabulary).

    The bundle is verified against its manifest first; its tokenizer must map every piece to the same id
    as the student's, and every tensor must be present with the student's shape, or nothing is loaded.
    """
    bundle = load_bundle(bundle_dir)
    m = bundle.manifest
    if m.model_format != "onnx":
        raise InputError(bundle.path / "manifest.json", "model_format", f"an ONNX bundle, got {m.model_format!r}")
    if Tokenizer.from_file(str(bundle.tokenizer_path)).get_vocab() != qa.tokenizer.get_vocab():
        raise InputError(
            bundle.tokenizer_path,
            "vocabulary",
            f"the word pieces and ids of the model read into ({len(qa.tokenizer)}): neither a pruned vocabulary nor "
            "another model's tokenizer can be read back",
        )
    weights = onnx_weights(bundle.model_path)
    state = qa.model.state_dict()
    missing = [k for k in state if k not in weights]
    if missing:
        raise InputError(
            bundle.model_path,
            f"{len(missing)} of the student's {len(state)} tensors absent (first: {missing[0]})",
            "a bundle of the student's architecture",
        )
    for k, v in state.items():
        if tuple(weights[k].shape) != tuple(v.shape):
            raise InputError(bundle.model_path, f"tensor {k}", f"shape {tuple(v.shape)}, got {weights[k].shape}")
    qa.model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(weights[k])) for k in state}, strict=True)
    return LoadedQA(qa.model, qa.tokenizer, f"{qa.source} with the weights of {m.name}", fresh_head=False)


def _looks_local(source: str) -> bool:
    """A directory, not a hub name (``name`` or ``org/name``): what a manifest names may be either."""
    return source.startswith(("/", ".", "~")) or source.count("/") > 1 or " " in source


def save_checkpoint(bundle_dir: str | Path, out: str | Path, architecture: str | None = None) -> Path:
    """A transformers checkpoint (safetensors, config, tokenizer) holding an ONNX bundle's weights, in ``out``.

    Why: a shipped bundle is often the only copy of a trained student, and the tools a user compares edgekit with
    (the transformers pipeline, Optimum's export and quantizer) start from a checkpoint. The architecture and
    tokenizer are those the bundle was exported from (its manifest's ``source.model``), or ``architecture``;
    int8 weights come back dequantized, so the checkpoint answers as the bundle's weights do, in fp32.
    ``edgekit-checkpoint.json`` records the bundle it came from (and marks the directory as edgekit's to replace).
    """
    bundle = load_bundle(bundle_dir, verify=False)  # which architecture; load_bundle_weights verifies its files
    m = bundle.manifest
    source = architecture or str(m.source.get("model", ""))
    if not architecture and (not source or (_looks_local(source) and not Path(resolve(source)).is_dir())):
        # a student's source is often a training run's directory that was not kept (or a description of one)
        said = f"{source!a} is no model directory here" if source else "it names none"
        raise InputError(
            bundle.path / "manifest.json",
            "source.model",
            f"the model the bundle was exported from ({said}): name its architecture with --architecture",
        )
    arch_dir = Path(resolve(source))
    # neither input may hold the output: the architecture's directory is read too (a packaged model's included)
    sources = [bundle.path, *([arch_dir] if arch_dir.is_dir() else [])]
    check_destination(out, CHECKPOINT, sources)  # before the model is loaded: a refusal costs nothing
    labels = list(m.labels) if m.task != "extractive-qa" else None
    qa = load_bundle_weights(load_model(source, labels=labels, per_token=m.task == "token-classification"), bundle.path)
    with replacing(out, CHECKPOINT, sources) as tmp:
        qa.model.save_pretrained(tmp, safe_serialization=True)
        qa.tokenizer.save_pretrained(tmp)
        write_json(
            tmp / "edgekit-checkpoint.json",
            {"bundle": m.name, "model_sha256": m.files[m.model_file].sha256, "architecture": source, "task": m.task},
        )
    return Path(out)
