"""refcomp: a reference implementation of neural-network compression.

Sub-packages, bottom layer first (imported on first use; each imports only
the ones above it in this list, docs/architecture.md):

- ``refcomp.numerics``  the quantized-dtype table and the rounding modes
- ``refcomp.ops``       ONNX-semantics golden ops in NumPy (the definitions)
- ``refcomp.kernels``   fast twins of the ops (Numba, C via cffi)
- ``refcomp.quant``     QParams, observers, fake quantization
- ``refcomp.formats``   how one weight is stored (Dense, QTensor, CSR, Clustered, ...)
- ``refcomp.datasets``  digits, MNIST, splits, mini-batches
- ``refcomp.nn``        modules and model graphs, forward/backward, losses, optimizers, training
- ``refcomp.models``    the reference LeNets
- ``refcomp.io``        model files (safetensors / npz), never pickle
- ``refcomp.compress``  algorithms by family: model in, model out
- ``refcomp.pipelines`` compositions of families (Deep Compression)
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

_SUBPACKAGES = {"numerics", "quant", "ops", "kernels", "formats", "nn", "compress", "io", "datasets", "models",
                "pipelines", "checks"}


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        return importlib.import_module(f"refcomp.{name}")
    raise AttributeError(f"module 'refcomp' has no attribute {name!r}")
