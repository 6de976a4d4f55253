"""refcomp.onnx: ONNX models in (``load``); needs the optional onnx package (``pip install refcomp[interop]``).

See docs/onnx.md for the supported operators and what each becomes.
"""

from .importer import load

__all__ = ["load"]
