"""Gelu: the Gaussian error linear unit, element-wise (ONNX Gelu-20).

Definition (approximate="none")::

    y = x · Φ(x),   Φ(x) = ½ (1 + erf(x / √2))                           (eq. G1)

evaluated in x's dtype, one rounding per step, as refcomp.nn's GELU layer
always has::

    z = x / dtype(√2),  e = refcomp.ops.erf(z),  y = x · (0.5 · (1 + e))

(e is the C library's double erf rounded once; see refcomp.ops.erf). For
x < 0 the float32 sum 1 + e carries an absolute error up to 2^-25, so y has
an absolute error up to about 2^-25 |x| there, and y = −0 once erf(z) rounds
to −1 (x ≤ −5.4 in float32). Large x gives y = x; NaN gives NaN; +∞ gives
+∞; −∞ gives NaN (−∞ · 0), as onnx.reference's Gelu.

approximate="tanh" (the fast form, PyTorch's ``approximate='tanh'``)::

    y = ½ x (1 + tanh(√(2/π) (x + 0.044715 x³)))                         (eq. G3)

with NumPy's tanh, each step rounded in x's dtype.

x float32 or float64 (any shape), y the same shape and dtype.

Fast backends (refcomp.kernels: C, Numba) exist for float32 and
approximate="none" only; everything else runs this definition, whatever
``backend`` says. They replace e by a polynomial erf of their own (within
1.13 ulp of the true erf, csrc/gelu.c) and keep the other steps, which
gives, for every float32 x (tests/kernels/test_gelu.py,
benchmarks/check_gelu_exhaustive.py)::

    |y_fast − y| ≤ 2^-24 |x| + ulp(y)                                   (eq. G2)

i.e. within 2 ulp for x > 0 and within the definition's own rounding error
of 1 + e for x < 0; never NaN for finite x; y_fast = x for x ≥ 5.57 and −0
for x ≤ −5.57. The C scalar path and Numba agree bit for bit; the C AVX2
path fuses its Horner steps and may differ from them in the last bit.

Source: ONNX operator spec Gelu (opset 20); Hendrycks & Gimpel 2016,
"Gaussian Error Linear Units (GELUs)", eq. 1 and §2's tanh approximation.
"""

from __future__ import annotations

import math

import numpy as np

from .. import backend as _backend
from ..checks import dtype_in, numeric_array, one_of
from .erf import erf

__all__ = ["gelu"]

_TANH_C = math.sqrt(2.0 / math.pi)


def gelu(x, *, approximate: str = "none", backend="auto") -> np.ndarray:
    """Gelu(x) element-wise (eq. G1, or G3 for approximate="tanh"); x float32 / float64, same shape and dtype out."""
    x = numeric_array(x, "x")
    dtype_in(x, "x", (np.float32, np.float64))
    one_of(approximate, "approximate", ("none", "tanh"))
    fast = _backend.implementation("gelu", backend)  # validates backend in every case
    if fast is not None and x.dtype == np.float32 and approximate == "none":
        return fast(x)
    if approximate == "tanh":
        t = np.tanh(_TANH_C * (x + 0.044715 * x ** 3))
        return (0.5 * x * (1 + t)).astype(x.dtype, copy=False)
    # erf's Numba twin is bit-identical to its definition, so any backend but "numpy" may use it
    cdf = 0.5 * (1 + erf(x / np.asarray(math.sqrt(2.0), x.dtype), backend="numpy" if backend == "numpy" else "auto"))
    return (x * cdf).astype(x.dtype, copy=False)
