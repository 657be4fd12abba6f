"""LiteRT / TFLite backend: ``ai-edge-litert`` (preferred) or the older ``tflite-runtime``.

TFLite models have static shapes: [1, N] int32 inputs, in the order of the
manifest's ``input_names`` (the converter names them ``args_0``, ``args_1``, ...), one
signature per length N. Windows are padded to the shortest N that holds them and run
one at a time.
"""

from __future__ import annotations

import numpy as np

from edgekit.backends import RuntimeOptions, pad_inputs, per_token_outputs
from edgekit.bundle import Bundle
from edgekit.device import captured_output
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
    """A LiteRT interpreter driven through its signatures: one per window length the bundle was converted at
    (``len<N>``; bundles made before that have one, the default). A window is padded to the shortest length
    that holds it, so a short question does not pay for ``max_seq_len`` tokens."""

    def __init__(self, bundle: Bundle, options: RuntimeOptions) -> None:
        interpreter = _interpreter_class()
        m = bundle.manifest
        try:
            with captured_output():  # LiteRT's C++ notice of its XNNPACK delegate, applied when tensors are allocated
                self.interpreter = interpreter(model_path=str(bundle.model_path), num_threads=options.threads)
                self.interpreter.allocate_tensors()
                keys = list(self.interpreter.get_signature_list())
                runners = [self.interpreter.get_signature_runner(k) for k in keys] or [
                    self.interpreter.get_signature_runner()
                ]
        except (ValueError, RuntimeError) as exc:
            raise BundleError(bundle.model_path, "model", f"a TFLite model the interpreter can load ({exc})") from None
        self.name = interpreter.__module__.split(".")[0]
        self.input_names, self.pad_id = m.input_names, m.pad_id
        self.per_token = per_token_outputs(m.task)
        self.runners: dict[int, tuple[object, list[str], list[str]]] = {}  # length -> runner, its args, outputs
        for runner in runners:
            details = runner.get_input_details()
            args = sorted(details, key=lambda k: int(k.rsplit("_", 1)[-1]) if k[-1].isdigit() else 0)
            if len(args) != len(m.input_names):
                raise BundleError(
                    bundle.path / "manifest.json",
                    "field 'input_names'",
                    f"{len(args)} inputs as the TFLite model has, got {m.input_names}",
                )
            self.runners[int(details[args[0]]["shape"][1])] = (runner, args, sorted(runner.get_output_details()))
        self.lengths = sorted(self.runners)
        if self.lengths[-1] != m.max_seq_len:
            raise BundleError(
                bundle.path / "manifest.json",
                "field 'max_seq_len'",
                f"the TFLite model's longest fixed length {self.lengths[-1]}, got {m.max_seq_len}",
            )
        # one length: the runner pads every window to it; several: each window is padded here, to its own
        self.fixed_seq_len = self.lengths[0] if len(self.lengths) == 1 else None

    def __call__(self, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
        n, width = feeds[self.input_names[0]].shape
        length = next((k for k in self.lengths if k >= width), None)
        if length is None:
            raise EdgekitError(f"a window of {width} tokens: this TFLite model takes at most {self.lengths[-1]}")
        runner, arg_names, output_keys = self.runners[length]
        rows: list[list[np.ndarray]] = [[] for _ in output_keys]
        for row in range(n):
            padded = pad_inputs({name: feeds[name][row : row + 1] for name in self.input_names}, length, self.pad_id)
            args = {a: padded[name].astype(np.int32) for a, name in zip(arg_names, self.input_names, strict=True)}
            out = runner(**args)
            for got, key in zip(rows, output_keys, strict=True):
                got.append(out[key][0][:width] if self.per_token else out[key][0])
        return tuple(np.stack(r) for r in rows)
