"""ONNX-semantics golden ops in NumPy: the definitions refcomp's fast kernels must equal.

Each op takes the ONNX inputs positionally in ONNX order, the ONNX attributes as
keyword arguments with their ONNX names, and ``backend="auto" | "numpy" | "numba" | "c"``.
The numeric contract (ranges, rounding, saturation, accumulators) is in
refcomp/ops/README.md; departures of other runtimes in docs/deviations.md.
"""

from .binary_matmul import binary_matmul, pack_signs
from .conv_integer import conv_integer
from .csr_matmul import csr_matmul
from .dequantize_linear import dequantize_linear
from .dynamic_quantize_linear import dynamic_quantize_linear, dynamic_quantize_rows
from .erf import erf
from .gelu import gelu
from .matmul_integer import PackedWeight, matmul_integer, pack_weight
from .qlinear_conv import qlinear_conv
from .qlinear_matmul import qlinear_matmul
from .quantize_linear import quantize_linear
from .requantize import (
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    requantize,
)
from .shift_linear import rshift_round, shift_linear
from .sparse_linear import sparse_linear, sparse_linear_integer  # W: a CSR weight (refcomp.formats.csr)

__all__ = [
    "quantize_linear",
    "dequantize_linear",
    "dynamic_quantize_linear",
    "dynamic_quantize_rows",
    "erf",
    "gelu",
    "matmul_integer",
    "pack_weight",
    "PackedWeight",
    "qlinear_matmul",
    "conv_integer",
    "qlinear_conv",
    "quantize_multiplier",
    "multiply_by_quantized_multiplier",
    "requantize",
    "csr_matmul",
    "sparse_linear",
    "sparse_linear_integer",
    "pack_signs",
    "binary_matmul",
    "shift_linear",
    "rshift_round",
]
