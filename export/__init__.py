"""edgekit's workstation pipeline: load or train a teacher, distill, quantize, convert,
validate and write edge bundles. Needs the ``export`` extra (torch, transformers, onnx).
"""
