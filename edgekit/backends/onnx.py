"""ONNX Runtime backend (CPU execution provider)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from edgekit.backends import RuntimeOptions
from edgekit.bundle import Bundle
from edgekit.errors import BundleError


class OnnxBackend:
    """An ``onnxruntime.InferenceSession`` checked against the bundle manifest."""

    name = "onnxruntime"

    def __init__(self, bundle: Bundle, options: RuntimeOptions) -> None:
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.inter_op_num_threads = 1
        if options.threads is not None:
            so.intra_op_num_threads = options.threads
        # ORT's memory pattern plans the buffers of one input shape; bundles take windows of any length, so
        # it keeps a plan per length seen and pays off for none (docs/runner.md, "Runtime settings")
        so.enable_mem_pattern = False
        if options.low_memory:
            so.enable_cpu_mem_arena = False
        if not options.spin:
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.log_severity_level = 4  # fatal only: failures reach the user as edgekit's one line, not ORT's log
        try:
            self.session = ort.InferenceSession(
                str(bundle.model_path), sess_options=so, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ORT raises its own exception types for bad models
            raise BundleError(bundle.model_path, "model", f"an ONNX model ONNX Runtime can load ({exc})") from None
        m = bundle.manifest
        inputs = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        if sorted(inputs) != sorted(m.input_names):
            raise BundleError(
                bundle.path / "manifest.json",
                "field 'input_names'",
                f"the model's inputs {inputs}, got {m.input_names}",
            )
        if not set(m.output_names) <= set(outputs):
            raise BundleError(
                bundle.path / "manifest.json",
                "field 'output_names'",
                f"outputs of the model {outputs}, got {m.output_names}",
            )
        self.input_names = m.input_names
        self.output_names = m.output_names
        shape = self.session.get_inputs()[0].shape
        self.fixed_seq_len = shape[1] if len(shape) > 1 and isinstance(shape[1], int) else None

    def __call__(self, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
        return tuple(self.session.run(self.output_names, feeds))
