"""INT8 with ONNX Runtime's quantization tools: fp32 ONNX bundle -> int8 ONNX bundle.

Dynamic quantization (weights int8 ahead of time, activations quantized per
call) is the default: the fastest int8 path for BERT-style models on x86 with
QInt8 weights, per-channel weights for a smaller logit error at no speed cost
(docs/export.md). Weights are 7-bit by default (``DynamicInt8`` says why).

Static quantization (activations too, with ranges calibrated on real training
windows through a pluggable ``CalibrationDataReader``) is here for comparison:
MinMax calibration is known to lose many points on BERT, so the report shows
accuracy and speed for every variant, and only MatMul/Gemm are quantized by
default, plus the embedding Gathers (softmax, layer norm and GELU stay fp32); ``nodes_to_exclude`` keeps
more of the graph in fp32.

A trap: ``quantize_static`` does not pass histogram sizes to the entropy calibrator,
so "entropy" gives a model byte-identical to "minmax" (docs/export.md); percentile
calibration is the one that clips outliers.

NNCF, OpenVINO's post-training quantizer, is the other static method ("nncf"): it knows a
transformer's graph (softmax, layer norms and the like stay in float), smooths activation
outliers into the weights (SmoothQuant) and corrects the biases that rounding shifts, so its
QDQ graph keeps the answers where ONNX Runtime's calibrators lose them; OpenVINO runs that graph
with int8 kernels (VNNI), ONNX Runtime runs it too, slower (docs/export.md, "INT8").

4-bit weights (``quantize_int4_bundle``, ONNX Runtime's ``MatMulNBits`` quantizer) are for
students whose int8 form is still over a size budget: a weight costs 4 bits plus an fp32
scale per block instead of a byte.
"""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from onnx import GraphProto, ModelProto, NodeProto, TensorProto, helper
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from onnxruntime.quantization.onnx_model import ONNXModel

from edgekit.bundle import Bundle, bundle_scratch, fill_bundle, load_bundle
from edgekit.errors import EdgekitError
from edgekit.features import batch_inputs

WEIGHT_TYPES = {"qint8": QuantType.QInt8, "quint8": QuantType.QUInt8}
CALIBRATION = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}
STATIC_METHODS = (*CALIBRATION, "nncf")


class WindowReader(CalibrationDataReader):
    """Calibration feeds: the bundle's own windows of real questions (a classifier's: its texts; a tagger's: its
    sentences' windows), one per call.

    Inputs are taken evenly across ``examples`` (not the first ones, which all share
    one article), so the ranges see many contexts. Windows are padded to ``max_seq_len``
    (the calibrators stack activations across calls) unless ``padded`` is False, for a
    comparison of outputs where padding positions would count.
    """

    def __init__(self, bundle: Bundle, examples: list[Any], max_windows: int = 64, padded: bool = True) -> None:
        if max_windows <= 0:
            raise EdgekitError(f"calibration windows {max_windows}: expected a positive number")
        m, tok = bundle.manifest, bundle.tokenizer()
        pad_to = m.max_seq_len if padded else None
        self.feeds: list[dict[str, np.ndarray]] = []
        for ex in examples[:: max(1, len(examples) // max_windows)]:
            if m.task == "text-classification":
                self.feeds.append(tok.feeds(ex.text, m.input_names, pad_to))
                continue
            if m.task == "token-classification":
                self.feeds += [tok.feeds(w, m.input_names, pad_to) for w in tok.windows(ex.words)]
                continue
            for w in tok.windows(ex.question, ex.context):
                self.feeds.append(batch_inputs([w], m.input_names, m.pad_id, pad_to))
        del self.feeds[max_windows:]
        self._iter: Iterator[dict[str, np.ndarray]] = iter(self.feeds)
        self.n = len(self.feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._iter, None)


def windows_of(n: int, dataset: Path) -> str:
    """``StaticInt8.calibration_data`` for a ``WindowReader``: how many windows, of which file."""
    return f"{n} windows of {dataset.name}"


def _quantized_bundle(
    src: Bundle,
    out_dir: str | Path,
    name: str,
    quantize: Callable[[Path, Path], None],
    info: dict,
    precision: str = "int8",
) -> Bundle:
    """Run ``quantize(fp32_model, quantized_model)`` and write the result as a ``precision`` bundle of ``src``."""
    m = src.manifest
    if m.model_format != "onnx" or m.precision != "fp32":
        raise EdgekitError(f"{src.path}: expected an fp32 ONNX bundle to quantize, got {m.model_format}/{m.precision}")
    with bundle_scratch(out_dir, (src.path,)) as tmp:
        # ONNX Runtime's quantizers write scratch files (model-inferred.onnx) beside the model they read:
        # they read a copy here, so the source bundle is never written to
        source_model, out_model = tmp / "source.onnx", tmp / "model.onnx"
        shutil.copyfile(src.model_path, source_model)
        quantize(source_model, out_model)
        source = {**m.source, "quantized_from": m.files[m.model_file].sha256, "quantization": info}
        manifest = replace(m, name=name, precision=precision, source=source)
        fill_bundle(tmp, out_model, src.tokenizer_path, manifest, out_dir)
    return load_bundle(out_dir)


@dataclass(frozen=True)
class DynamicInt8:
    """Settings of dynamic int8 quantization, recorded in the bundle's manifest as they are.

    ``reduce_range`` (7-bit weights) is the default: x86 CPUs without VNNI multiply uint8
    activations by int8 weights with an instruction (``vpmaddubsw``) whose int16 pair sums
    saturate with 8-bit weights: on such a CPU a 768-wide student's 8-bit graph lost its answers
    where the 7-bit one kept them, a MiniLM lost nothing to the missing bit, and only the 7-bit
    form answered on ARM as on x86 (docs/export.md, "INT8", has what was measured). 8-bit weights
    (``reduce_range=False``) are for ARM and VNNI CPUs, where they buy one bit of weight precision.
    """

    weight_type: str = "qint8"  # "qint8" or "quint8"
    # one scale per output channel: a smaller logit error at no speed cost (docs/export.md, "INT8")
    per_channel: bool = True
    reduce_range: bool = True
    nodes_to_exclude: tuple[str, ...] = ()  # ONNX node names left in fp32
    # 4: the word-embedding table in 4-bit blocks (GatherBlockQuantized, block 32) instead of a byte a weight;
    # for a size budget, since a small student's embedding is up to half its weights and only indexed, never multiplied
    embedding_bits: int = 8

    def record(self) -> dict:
        """The manifest's ``source.quantization``: what a later export compares to reuse a bundle."""
        return {"method": "onnxruntime dynamic", **asdict(self), "nodes_to_exclude": list(self.nodes_to_exclude)}


def _int4_word_embedding(model: Path, out: Path, block_size: int = 32) -> None:
    """Write ``model`` with only its word-embedding Gather as 4-bit blocks (ONNX Runtime's MatMulNBits quantizer)."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer  # needs onnx-ir

    from edgekit.export.vocab import word_embedding_node

    graph = onnx.load(str(model))
    word = word_embedding_node(graph, model).name
    q = MatMulNBitsQuantizer(
        graph,
        bits=4,
        block_size=block_size,
        is_symmetric=True,
        # its nodes_to_include does not limit Gathers: the position and token-type tables stay int8 this way
        nodes_to_exclude=[n.name for n in graph.graph.node if n.op_type == "Gather" and n.name != word],
        op_types_to_quantize=("Gather",),
        quant_axes=(("Gather", 1),),
    )
    with np.errstate(invalid="ignore"):  # an all-zero block (the pad row) has scale 0; ORT maps its 0/0 to 0
        q.process()
    q.model.save_model_to_file(str(out), use_external_data_format=False)


def quantize_dynamic_bundle(
    src: Bundle, out_dir: str | Path, name: str | None = None, settings: DynamicInt8 = DynamicInt8()
) -> Bundle:
    """Dynamic int8 quantization of an fp32 ONNX bundle into a new bundle (weights int8 ahead of time)."""
    if settings.weight_type not in WEIGHT_TYPES:
        raise EdgekitError(f"weight type {settings.weight_type!r}: expected one of {sorted(WEIGHT_TYPES)}")
    if settings.embedding_bits not in (4, 8):
        raise EdgekitError(f"embedding bits {settings.embedding_bits}: expected 8 or 4")

    def quantize(model: Path, out: Path) -> None:
        if settings.embedding_bits == 4:
            _int4_word_embedding(model, model)  # a copy in the step's scratch directory
        quantize_dynamic(
            model,
            out,
            per_channel=settings.per_channel,
            reduce_range=settings.reduce_range,
            weight_type=WEIGHT_TYPES[settings.weight_type],
            nodes_to_exclude=list(settings.nodes_to_exclude),
            # outputs of ORT's fused operators (export/fuse.py) have no inferred type; they are float
            extra_options={"DefaultTensorType": TensorProto.FLOAT},
        )

    return _quantized_bundle(src, out_dir, name or f"{src.manifest.name}-int8", quantize, settings.record())


@dataclass(frozen=True)
class StaticInt8:
    """Settings of static (QDQ) int8 quantization, recorded in the bundle's manifest as they are.

    ``calibration_data`` names what the reader fed (e.g. "64 windows of train-v1.1.json"): the
    reader is pluggable, so the caller says it, and a later export remakes the bundle when it changes.
    ``calibration`` "nncf" is NNCF's quantizer instead of ONNX Runtime's: it chooses what to quantize
    itself (``op_types`` and ``per_channel`` do not apply) and calibrates on unpadded windows.
    """

    calibration: str = "minmax"  # "minmax", "entropy", "percentile" (ONNX Runtime) or "nncf"
    calibration_data: str = ""
    per_channel: bool = True
    op_types: tuple[str, ...] = ("MatMul", "Gemm", "Gather")
    nodes_to_exclude: tuple[str, ...] = ()

    @property
    def padded(self) -> bool:
        """Whether the calibration windows are padded to ``max_seq_len``: ONNX Runtime's calibrators stack
        activations across calls; NNCF's ranges would count the padding positions."""
        return self.calibration != "nncf"

    def record(self) -> dict:
        """The manifest's ``source.quantization``: what a later export compares to reuse a bundle."""
        if self.calibration == "nncf":
            return {
                "method": f"NNCF {_nncf().__version__} post-training quantization (transformer), QDQ",
                "calibration": "nncf",
                "calibration_data": self.calibration_data,
                "nodes_to_exclude": list(self.nodes_to_exclude),
            }
        return {
            "method": f"onnxruntime static QDQ, {self.calibration} calibration",
            **asdict(self),
            "op_types": list(self.op_types),
            "nodes_to_exclude": list(self.nodes_to_exclude),
        }


def _nncf() -> Any:
    try:
        import nncf
    except ImportError:
        raise EdgekitError("--static nncf needs the nncf package: pip install nncf") from None
    return nncf


def _quantize_nncf(model: Path, out: Path, reader: CalibrationDataReader, nodes_to_exclude: tuple[str, ...]) -> None:
    """NNCF's post-training int8 of an ONNX model, every feed of ``reader`` a calibration sample."""
    import logging

    import onnx

    nncf = _nncf()

    logging.getLogger("nncf").setLevel(logging.ERROR)  # its notes on the graph are not the user's to act on
    feeds = list(iter(reader.get_next, None))
    quantized = nncf.quantize(
        onnx.load(str(model)),
        nncf.Dataset(feeds),
        preset=nncf.QuantizationPreset.MIXED,
        model_type=nncf.ModelType.TRANSFORMER,
        subset_size=len(feeds),
        ignored_scope=nncf.IgnoredScope(names=list(nodes_to_exclude)) if nodes_to_exclude else None,
    )
    onnx.save(quantized, str(out))


def quantize_static_bundle(
    src: Bundle,
    out_dir: str | Path,
    reader: CalibrationDataReader,
    name: str | None = None,
    settings: StaticInt8 = StaticInt8(),
) -> Bundle:
    """Static (QDQ) int8 quantization of an fp32 ONNX bundle with calibration data from ``reader``
    (built with ``padded=settings.padded``)."""
    method = settings.calibration
    if method not in STATIC_METHODS:
        raise EdgekitError(f"calibration method {method!r}: expected one of {sorted(STATIC_METHODS)}")
    if method == "entropy":
        print(
            "note: onnxruntime's entropy calibration gives the MinMax ranges here (see export/quantize.py)",
            file=sys.stderr,
        )

    def quantize(model: Path, out: Path) -> None:
        if method == "nncf":
            return _quantize_nncf(model, out, reader, settings.nodes_to_exclude)
        quantize_static(
            model,
            out,
            calibration_data_reader=reader,
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(settings.op_types),
            per_channel=settings.per_channel,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=list(settings.nodes_to_exclude),
            calibrate_method=CALIBRATION[method],
            extra_options={"ActivationSymmetric": False},
        )

    name = name or f"{src.manifest.name}-int8-static-{method}"
    return _quantized_bundle(src, out_dir, name, quantize, settings.record())


@dataclass(frozen=True)
class Int4Weights:
    """Settings of 4-bit weight-only quantization (ONNX Runtime's ``MatMulNBits``), recorded in the manifest.

    Weights of every MatMul (and, with ``embeddings``, the word-embedding Gather) in blocks of
    ``block_size`` along the input dimension, one fp32 scale per block: about 0.625 bytes a weight at
    32 against int8's one (docs/results.md, "The size budget", has a 768-wide 6-layer student in both
    forms: mpnet-l6-kd-int4-onnx, mpnet-l6-kd-bf16-int8-onnx). ``accuracy_level`` 4 lets
    the CPU kernel quantize activations to int8 for the product (its fast path).
    """

    block_size: int = 32
    symmetric: bool = True
    accuracy_level: int = 4
    embeddings: bool = True

    def record(self) -> dict:
        return {"method": "onnxruntime MatMulNBits, 4-bit weights", **asdict(self)}


def quantize_int4_bundle(
    src: Bundle, out_dir: str | Path, name: str | None = None, settings: Int4Weights = Int4Weights()
) -> Bundle:
    """4-bit weight-only quantization of an fp32 ONNX bundle into a new bundle."""
    if not 16 <= settings.block_size <= 1024 or settings.block_size & (settings.block_size - 1):
        raise EdgekitError(f"block size {settings.block_size}: expected a power of two from 16 to 1024")
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer  # needs onnx-ir

    def quantize(model: Path, out: Path) -> None:
        q = MatMulNBitsQuantizer(
            onnx.load(str(model)),
            bits=4,
            block_size=settings.block_size,
            is_symmetric=settings.symmetric,
            accuracy_level=settings.accuracy_level,
            op_types_to_quantize=("MatMul", "Gather") if settings.embeddings else ("MatMul",),
            quant_axes=(("MatMul", 0), ("Gather", 1)),  # blocks along each weight's input dimension
        )
        q.process()
        q.model.save_model_to_file(str(out), use_external_data_format=False)

    name = name or f"{src.manifest.name}-int4"
    return _quantized_bundle(src, out_dir, name, quantize, settings.record(), precision="int4")


def matmul_groups(graph: GraphProto) -> dict[str, list[str]]:
    """The dynamic-int8 MatMuls of ``graph`` by name, grouped by role and by layer, for a sensitivity sweep.

    A role is the node's path with the model prefix and layer index taken out (``attention/attn/q``,
    ``output/dense``), so one role holds that product in every layer; a layer (``layer.3``) holds
    every product of one layer. A node outside a numbered layer (the QA head) is a role of its own.
    """
    groups: dict[str, list[str]] = {}
    for n in graph.node:
        if n.op_type != "MatMulInteger":
            continue
        parts = n.name.strip("/").split("/")
        layer = next((p for p in parts if re.fullmatch(r"layer\.\d+", p)), None)
        role = "/".join(
            p for p in parts[:-1] if p not in ("model", layer) and not p.startswith(("mpnet", "bert", "encoder"))
        )
        groups.setdefault(role or parts[0], []).append(n.name)
        if layer:
            groups.setdefault(layer, []).append(n.name)
    return groups


def float_activations(model: ModelProto, names: Iterable[str]) -> int:
    """Give the named ``MatMulInteger`` nodes of a dynamic-int8 graph float activations, in place.

    Each ``DynamicQuantizeLinear -> MatMulInteger -> Cast -> Mul(scales)`` chain becomes
    ``DequantizeLinear(int8 weight) -> MatMul`` on the unquantized input: the weights stay int8 on
    disk (the bundle does not grow) and only the activation rounding of those products goes. A
    ``DynamicQuantizeLinear`` still feeding another product stays. Returns how many nodes changed;
    an unknown name or a chain of another shape is an error, so a typo never passes as a variant.
    """
    graph, wanted = model.graph, set(names)
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list[NodeProto]] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    initializers = {i.name for i in graph.initializer}

    def only(nodes: list[NodeProto], op: str) -> NodeProto | None:
        return nodes[0] if len(nodes) == 1 and nodes[0].op_type == op else None

    found = {n.name: n for n in graph.node if n.op_type == "MatMulInteger" and n.name in wanted}
    if missing := sorted(wanted - found.keys()):
        raise EdgekitError(f"MatMulInteger nodes not in the graph: {', '.join(missing)}")
    drop: set[int] = set()
    added: list[NodeProto] = []
    for name, mm in found.items():
        quant = producer.get(mm.input[0])
        cast = only(consumers.get(mm.output[0], []), "Cast")
        rescale = cast and only(consumers.get(cast.output[0], []), "Mul")
        scales = rescale and producer.get(rescale.input[1])
        weight_scale = scales and next((i for i in scales.input if i in initializers), None)
        if not (quant and quant.op_type == "DynamicQuantizeLinear" and weight_scale and mm.input[1] in initializers):
            raise EdgekitError(f"{name}: expected a dynamic-int8 MatMul (DynamicQuantizeLinear, Cast, Mul)")
        weight = [mm.input[1], weight_scale, mm.input[3]]
        added += [
            helper.make_node("DequantizeLinear", weight, [f"{name}_weight"], f"{name}_dequant", axis=1),
            helper.make_node("MatMul", [quant.input[0], f"{name}_weight"], [rescale.output[0]], f"{name}_float"),
        ]
        drop |= {id(mm), id(cast), id(rescale), id(scales)}
    kept = [n for n in graph.node if id(n) not in drop]
    used = {i for n in kept + added for i in n.input}
    kept = [n for n in kept if n.op_type != "DynamicQuantizeLinear" or any(o in used for o in n.output)]
    del graph.node[:]
    graph.node.extend(kept + added)
    ONNXModel(model).topological_sort()
    return len(found)


def float_activations_bundle(
    src: Bundle, out_dir: str | Path, groups: Iterable[str], name: str | None = None
) -> Bundle:
    """A dynamic-int8 bundle with float activations into the MatMul ``groups`` (:func:`matmul_groups`, or
    ``all``: every product, int8 weights only).

    Made from the int8 bundle, not its fp32 source, so it also works on a shipped bundle whose fp32
    weights are not at hand; the file keeps its size. The groups are recorded in the manifest.
    """
    import onnx

    m = src.manifest
    quantization = m.source.get("quantization", {})
    if m.model_format != "onnx" or quantization.get("method") != "onnxruntime dynamic":
        raise EdgekitError(f"{src.path}: expected a dynamic int8 ONNX bundle (edgekit export int8)")
    model = onnx.load(str(src.model_path))
    table, groups = matmul_groups(model.graph), list(dict.fromkeys(groups))
    table["all"] = [n.name for n in model.graph.node if n.op_type == "MatMulInteger"]  # int8 weights only
    if unknown := [g for g in groups if g not in table]:
        raise EdgekitError(f"{src.path}: no MatMul group {', '.join(unknown)}; expected one of {', '.join(table)}")
    float_activations(model, {n for g in groups for n in table[g]})
    with bundle_scratch(out_dir, (src.path,)) as tmp:
        out_model = tmp / "model.onnx"
        onnx.save(model, str(out_model))
        earlier = quantization.get("float_activations", [])  # a bundle already made this way
        source = {**m.source, "quantization": {**quantization, "float_activations": earlier + groups}}
        manifest = replace(m, name=name or f"{m.name}-float-act", source=source)
        fill_bundle(tmp, out_model, src.tokenizer_path, manifest, out_dir)
    return load_bundle(out_dir)
