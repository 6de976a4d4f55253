"""refcomp: a reference implementation of neural-network compression.

Sub-packages (imported on first use):

- ``refcomp.quant``    quantized dtypes, QParams, observers, fake quantization
- ``refcomp.ops``      ONNX-semantics golden ops in NumPy (the definitions)
- ``refcomp.kernels``  fast twins of the ops (Numba, C via cffi)
- ``refcomp.formats``  how one weight is stored (Dense, QTensor, CSR, ...)
- ``refcomp.nn``       layers with forward/backward, losses, optimizers, training
- ``refcomp.compress`` algorithms: model in, model out
- ``refcomp.io``       files (safetensors / npz / ONNX), never pickle
"""

from __future__ import annotations

import importlib

from . import errors
from ._version import __version__
from .backend import get_backend, get_num_threads, set_backend, set_num_threads

__all__ = [
    "__version__",
    "errors",
    "get_backend",
    "set_backend",
    "get_num_threads",
    "set_num_threads",
]

_SUBPACKAGES = {"quant", "ops", "kernels", "formats", "nn", "compress", "io", "datasets", "models"}


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        return importlib.import_module(f"refcomp.{name}")
    raise AttributeError(f"module 'refcomp' has no attribute {name!r}")
