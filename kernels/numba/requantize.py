"""Numba twins of refcomp.ops.requantize's kernels (backend="numba").

float (eq. R1): clip(rint_even(f32(acc) * M[j]) + zp[j], qmin, qmax); the
product is a float32 multiplication (Numba keeps float32 * float32 in
float32, no FMA without fastmath), np.rint rounds half to even, the add and
clip happen in float64 as in the NumPy definition.
fixed point (eq. R2): gemmlowp SaturatingRoundingDoublingHighMul and
RoundingDivideByPOT in int64 arithmetic.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._threads import parallel_region

__all__ = ["requantize_float", "requantize_fixed_point"]

_I32_MIN, _I32_MAX = -(2**31), 2**31 - 1


@njit(parallel=True, cache=True)
def _float(acc, mult, zp, qmin, qmax, out):  # pragma: no cover - compiled
    M, N = acc.shape
    for i in prange(M):
        for j in range(N):
            p = np.float32(acc[i, j]) * mult[j]
            r = np.float64(np.rint(p)) + np.float64(zp[j])
            if r < qmin:
                r = np.float64(qmin)
            if r > qmax:
                r = np.float64(qmax)
            out[i, j] = np.int32(r)


@njit(cache=True)
def _srdhm(a, b):  # pragma: no cover - compiled
    if a == _I32_MIN and b == _I32_MIN:
        return np.int64(_I32_MAX)
    ab = np.int64(a) * np.int64(b)
    nudge = np.int64(1 << 30) if ab >= 0 else np.int64(1 - (1 << 30))
    s = ab + nudge
    q = s >> 31 if s >= 0 else -((-s) >> 31)  # C's truncating division by 2**31
    return q


@njit(cache=True)
def _rdivpot(x, e):  # pragma: no cover - compiled
    mask = (np.int64(1) << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if remainder > threshold else 0)


@njit(parallel=True, cache=True)
def _fixed(acc, mult, shift, zp, qmin, qmax, out):  # pragma: no cover - compiled
    M, N = acc.shape
    for i in prange(M):
        for j in range(N):
            s = np.int64(shift[j])
            left = s if s > 0 else np.int64(0)
            right = -s if s < 0 else np.int64(0)
            x = np.int64(acc[i, j]) << left
            if x > _I32_MAX:
                x = np.int64(_I32_MAX)
            if x < _I32_MIN:
                x = np.int64(_I32_MIN)
            y = _rdivpot(_srdhm(x, np.int64(mult[j])), right) + np.int64(zp[j])
            if y < qmin:
                y = np.int64(qmin)
            if y > qmax:
                y = np.int64(qmax)
            out[i, j] = np.int32(y)


def requantize_float(acc, multiplier, zero_point, qmin, qmax, *, threads=None):
    """Registration contract "requantize_float": acc int32 [M, N], per-column float32 / int32 [N]."""
    acc = np.ascontiguousarray(acc, np.int32)
    out = np.empty(acc.shape, np.int32)
    with parallel_region(threads):
        _float(acc, np.ascontiguousarray(multiplier, np.float32), np.ascontiguousarray(zero_point, np.int32),
               int(qmin), int(qmax), out)
        return out


def requantize_fixed_point(acc, multiplier, shift, zero_point, qmin, qmax, *, threads=None):
    """Registration contract "requantize_fixed_point": acc int32 [M, N], per-column int32 [N]."""
    acc = np.ascontiguousarray(acc, np.int32)
    out = np.empty(acc.shape, np.int32)
    with parallel_region(threads):
        _fixed(acc, np.ascontiguousarray(multiplier, np.int32), np.ascontiguousarray(shift, np.int32),
               np.ascontiguousarray(zero_point, np.int32), int(qmin), int(qmax), out)
        return out
