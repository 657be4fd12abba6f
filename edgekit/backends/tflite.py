"""LiteRT / TFLite backend: ``ai-edge-litert`` (preferred) or the older ``tflite-runtime``.

TFLite models have a static shape: [1, max_seq_len] int32 inputs, in the order of
the manifest's ``input_names`` (the converter names them ``args_0``, ``args_1``,
...). Windows are therefore padded to ``max_seq_len`` and run one at a time.
"""

from __future__ import annotations

import numpy as np

from edgekit.backends import RuntimeOptions
from edgekit.bundle import Bundle
from edgekit.errors import BundleError, EdgekitError


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise EdgekitError(
                "TFLite bundles need a LiteRT interpreter: pip install ai-edge-litert (in device_runners/requirements.txt)"
            ) from None
    return Interpreter


class TfliteBackend:
    """A LiteRT interpreter driven through its default signature."""

    def __init__(self, bundle: Bundle, options: RuntimeOptions) -> None:
        interpreter = _interpreter_class()
        try:
            self.interpreter = interpreter(model_path=str(bundle.model_path), num_threads=options.threads)
            self.runner = self.interpreter.get_signature_runner()
        except (ValueError, RuntimeError) as exc:
            raise BundleError(bundle.model_path, "model", f"a TFLite model the interpreter can load ({exc})") from None
        self.name = interpreter.__module__.split(".")[0]
        m = bundle.manifest
        details = self.runner.get_input_details()
        self.arg_names = sorted(details, key=lambda k: int(k.rsplit("_", 1)[-1]) if k[-1].isdigit() else 0)
        if len(self.arg_names) != len(m.input_names):
            raise BundleError(
                bundle.path / "manifest.json",
                "field 'input_names'",
                f"{len(self.arg_names)} inputs as the TFLite model has, got {m.input_names}",
            )
        self.input_names = m.input_names
        shape = details[self.arg_names[0]]["shape"]
        self.fixed_seq_len = int(shape[1])
        if self.fixed_seq_len != m.max_seq_len:
            raise BundleError(
                bundle.path / "manifest.json",
                "field 'max_seq_len'",
                f"the TFLite model's fixed length {self.fixed_seq_len}, got {m.max_seq_len}",
            )
        self.output_keys = sorted(self.runner.get_output_details())

    def __call__(self, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        n = feeds[self.input_names[0]].shape[0]
        starts, ends = [], []
        for row in range(n):
            args = {
                a: feeds[name][row : row + 1].astype(np.int32)
                for a, name in zip(self.arg_names, self.input_names, strict=True)
            }
            out = self.runner(**args)
            starts.append(out[self.output_keys[0]][0])
            ends.append(out[self.output_keys[1]][0])
        return np.stack(starts), np.stack(ends)
