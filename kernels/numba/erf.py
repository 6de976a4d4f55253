"""Numba twin of refcomp.ops.erf: the C library's erf in a compiled loop.

``math.erf`` in Numba lowers to the same C ``erf`` that Python's math.erf
calls, evaluated in float64 and rounded once to the input's dtype, so the
result is identical to the NumPy definition bit for bit.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ._threads import elementwise

__all__ = ["erf"]


@njit(parallel=True, cache=True)
def _erf(x, out):  # pragma: no cover - compiled
    for i in prange(x.size):
        out[i] = math.erf(np.float64(x[i]))


def erf(x: np.ndarray) -> np.ndarray:
    return elementwise(_erf, x)
