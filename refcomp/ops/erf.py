"""Erf: the Gauss error function, element-wise (ONNX Erf-13).

Definition::

    y = erf(x) = 2/√π ∫₀ˣ e^(−t²) dt                                   (eq. E1)

x float32 or float64 (any shape), y the same shape and dtype. Each element is
evaluated in float64 by the C library's ``erf`` (Python's ``math.erf``) and
rounded once to x's dtype, so a float32 y is the correctly rounded float32 of
a double result accurate to about 1 ulp: within 1 float32 ulp of the true
erf. NaN gives NaN, ±∞ gives ±1.

GELU (refcomp.nn.layers.activations) is x·½(1 + erf(x/√2)), so BERT's
feed-forward calls this op on every hidden unit: the NumPy definition loops
in Python (about 0.3 µs per element); the Numba twin calls the same C ``erf``
in a compiled loop and is identical bit for bit (tests/kernels/test_erf.py).

Source: ONNX operator spec Erf (opset 13); Abramowitz & Stegun 7.1.1.
"""

from __future__ import annotations

import math

import numpy as np

from .. import backend as _backend
from ..checks import dtype_in, numeric_array

__all__ = ["erf"]

_erf64 = np.vectorize(math.erf, otypes=[np.float64])


def erf(x, *, backend="auto") -> np.ndarray:
    """erf(x) element-wise (eq. E1); x float32 / float64, result of the same shape and dtype."""
    x = numeric_array(x, "x")
    dtype_in(x, "x", (np.float32, np.float64))
    fast = _backend.implementation("erf", backend)
    if fast is not None:
        return fast(x)
    if x.size == 0:
        return np.empty_like(x)
    return _erf64(x.astype(np.float64)).astype(x.dtype, copy=False)
