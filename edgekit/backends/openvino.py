"""OpenVINO backend for ONNX bundles (x86 CPUs; the ``openvino`` package).

OpenVINO reads the bundle's ONNX graph itself (no conversion step, any window length) and
compiles it for this CPU: VNNI for int8, AVX512-BF16/AMX where the CPU has them. Its CPU plugin
would pick bf16 by itself on such CPUs; here the precision is always said outright, so a
backend never trades accuracy silently: ``openvino`` computes in f32 (the answers of ONNX
Runtime), ``openvino-bf16`` in bfloat16 (faster, answers measured against f32 by
``benchmarks.speed``).

A window is padded to a multiple of ``LENGTH_STEP`` tokens (its mask keeps the padding out of the answer):
OpenVINO's CPU plugin prepares its kernels per input shape, and windows at their own lengths met a new
shape on most calls, which cost time on int8 graphs and memory on all (``benchmarks.openvino_lengths``
measures steps against the windows' own lengths; docs/runner.md, "Runtime settings").
"""

from __future__ import annotations

import numpy as np

from edgekit.backends import RuntimeOptions, pad_inputs, per_token_outputs
from edgekit.bundle import Bundle
from edgekit.errors import BundleError, EdgekitError

LENGTH_STEP = 32


def stepped_length(width: int, step: int, longest: int) -> int:
    """The length OpenVINO sees for a window of ``width`` tokens: the next multiple of ``step``, at most
    ``longest`` (the bundle's ``max_seq_len``)."""
    return max(width, min(longest, -(-width // step) * step))


def _openvino():
    try:
        import openvino
    except ImportError:
        raise EdgekitError("backend openvino needs the openvino package: pip install openvino") from None
    return openvino


def cpu_has_bf16() -> bool:
    """Whether OpenVINO's CPU plugin computes in bfloat16 here (AVX512-BF16 or AMX)."""
    return "BF16" in _openvino().Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


class OpenVinoBackend:
    """An OpenVINO compiled model for the CPU, checked against the bundle manifest."""

    def __init__(
        self, bundle: Bundle, options: RuntimeOptions, bf16: bool = False, length_step: int = LENGTH_STEP
    ) -> None:
        """``length_step``: pad windows to multiples of it (1: their own lengths)."""
        ov = _openvino()
        self.name = "openvino-bf16" if bf16 else "openvino"
        if bf16 and not cpu_has_bf16():
            raise EdgekitError(
                "backend openvino-bf16 needs a CPU with bfloat16 (AVX512-BF16 or AMX); this one has none"
            )
        core = ov.Core()
        try:
            model = core.read_model(str(bundle.model_path))
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses of its own
            raise BundleError(bundle.model_path, "model", f"an ONNX model OpenVINO can read ({exc})") from None
        m = bundle.manifest
        inputs = [i.get_any_name() for i in model.inputs]
        if sorted(inputs) != sorted(m.input_names):
            raise BundleError(
                bundle.path / "manifest.json",
                "field 'input_names'",
                f"the model's inputs {inputs}, got {m.input_names}",
            )
        config = {"INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32", "PERFORMANCE_HINT": "LATENCY"}
        if options.threads is not None:
            config["INFERENCE_NUM_THREADS"] = options.threads
        self.request = core.compile_model(model, "CPU", config).create_infer_request()
        self.input_names, self.output_names = m.input_names, m.output_names
        self.fixed_seq_len = None
        self.max_seq_len, self.pad_id = m.max_seq_len, m.pad_id
        self.length_step = length_step
        self.per_token = per_token_outputs(m.task)

    def __call__(self, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
        width = feeds[self.input_names[0]].shape[1]
        length = stepped_length(width, self.length_step, self.max_seq_len)
        inputs = {name: feeds[name] for name in self.input_names}
        if length > width:
            inputs = pad_inputs(inputs, length, self.pad_id)
        result = self.request.infer(inputs)
        by_name = {out.get_any_name(): value for out, value in result.items()}
        return tuple(
            np.array(by_name[name][:, :width] if self.per_token else by_name[name]) for name in self.output_names
        )
