"""Numba twin of the C GELU kernel's scalar path (csrc/gelu.c: gelu_scalar1).

The same float32 operations in the same order, each multiplication and
addition rounded on its own (no fastmath, so LLVM neither fuses nor
reassociates them): bit-identical to ``refcomp.kernels.c.gelu(x, isa="scalar")``
and within eq. G2 of refcomp.ops.gelu (tests/kernels/test_gelu.py). The
coefficients are csrc/gelu.c's (benchmarks/fit_gelu_erf.py).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ._threads import elementwise

__all__ = ["gelu"]

f32 = np.float32
ERF_R = np.array([0.128379151, -0.376125246, 0.112821408, -0.0267789066, 0.005011959, -0.000609033916], f32)
ERF_G = np.array([0.217017844, -0.119305395, 0.0621986575, -0.0316139013, 0.0135759609, -0.00634737127,
                  0.00802530348, 0.00536554493, 0.0038127494], f32)
EXP_E = np.array([0.49999994, 0.166665211, 0.041668389, 0.00836871564, 0.00138145941], f32)
ERF_A, ERF_B = f32(0.658436239), f32(-1.5925926)
ERF_Z0, ERF_ZMAX = f32(0.9), f32(3.9375)
SQRT2, LOG2E = f32(1.41421354), f32(1.44269504)
LN2_HI, LN2_LO = f32(0.693145751953125), f32(1.42860677e-06)
MAGIC = f32(12582912.0)  # 1.5·2^23: (t + M) − M rounds t to an integer, ties to even
ONE, HALF = f32(1.0), f32(0.5)
POW2_NEG = np.array([2.0 ** -k for k in range(24)], f32)  # 2^-k, k in [0, 23]: exact; a table, not a pow() call


@njit(cache=True, inline="always")
def _gelu1(x):  # pragma: no cover - compiled
    z = x / SQRT2
    a = abs(z)
    a = a if a < ERF_ZMAX else ERF_ZMAX  # NaN -> ZMAX; y stays NaN through x
    # both branches, then a select, as the AVX2 path does: no branch lets LLVM vectorize the loop
    w = a * a
    p = ERF_R[5]
    for j in range(4, -1, -1):
        p = p * w + ERF_R[j]
    e_small = a + a * p
    v = -w
    kf = (v * LOG2E + MAGIC) - MAGIC
    r = (v - kf * LN2_HI) - kf * LN2_LO
    q = EXP_E[4]
    for j in range(3, -1, -1):
        q = q * r + EXP_E[j]
    q = (r * r) * q + r + ONE
    scale = POW2_NEG[-int(kf)]  # 2^k, k = kf in [-23, 0] since a <= ZMAX
    t = a * ERF_A + ERF_B
    g = ERF_G[8]
    for j in range(7, -1, -1):
        g = g * t + ERF_G[j]
    e_big = ONE - (q * scale) * g
    e = e_small if a < ERF_Z0 else e_big
    e = f32(math.copysign(e, z))
    return x * (HALF * (ONE + e))


@njit(parallel=True, cache=True)
def _gelu(x, out):  # pragma: no cover - compiled
    for i in prange(x.size):
        out[i] = _gelu1(x[i])


def gelu(x: np.ndarray) -> np.ndarray:
    """GELU of a float32 array of any shape (refcomp.ops.gelu, approximate="none"), within eq. G2."""
    return elementwise(_gelu, x)
