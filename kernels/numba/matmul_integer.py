"""Numba twin of refcomp.ops.matmul_integer (backend="numba").

    C[i, j] = sum_k (a[i, k] - za[i]) * (b[k, j] - zb[j])          (int32, modulo 2**32)

The zero points are subtracted first, into int16 operands (every difference
of two 8-bit values lies in [-255, 255]); B is transposed so that the inner
loop is a dot product over contiguous k. Each product is at most 255 * 255 in
magnitude and every partial sum is reduced modulo 2**32 (the explicit
np.int32 wraps), so the result is exact whenever it fits int32 -- the op
calls this kernel only when ``K * max|a - za| * max|b - zb| <= 2**31 - 1``.
LLVM vectorizes the int16 dot product (vpmaddwd: two exact products summed
into an int32 lane, no saturation). For fewer than 32 rows the transposed copy
of B would cost more than the product, so B's rows are used as stored
(axpy form) and the zero point of B is folded in afterwards:
sum_k ac (b - zb) = ac @ b - rowsum(ac) zb, again modulo 2**32. ``prange`` splits rows among threads; a
row's arithmetic does not depend on the split, so every thread count gives
the same integers. See docs/kernels.md for the C kernel's blocking.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._threads import use_refcomp_threads

__all__ = ["matmul_integer"]


@njit(parallel=True, cache=True)
def _dot_rows(a, bt, out):  # pragma: no cover - compiled
    M, K = a.shape
    N = bt.shape[0]
    for i in prange(M):
        ar = a[i]
        for j in range(N):
            br = bt[j]
            s = np.int32(0)
            for k in range(K):
                s = np.int32(s + np.int32(ar[k]) * np.int32(br[k]))
            out[i, j] = s


@njit(parallel=True, cache=True)
def _axpy_rows(ac, b, out):  # pragma: no cover - compiled
    # out[i, :] = sum_k ac[i, k] * b[k, :] over the raw rows of b (no transposed copy)
    M, K = ac.shape
    N = b.shape[1]
    for i in prange(M):
        o = out[i]
        o[:] = 0
        for k in range(K):
            av = np.int32(ac[i, k])
            if av != 0:
                bk = b[k]
                for j in range(N):
                    o[j] = np.int32(o[j] + av * np.int32(bk[j]))


_SMALL_M = 32  # below this, transposing B costs more than the product


def matmul_integer(a, b, a_zero_point, b_zero_point, *, threads=None):
    """(a - a_zero_point[:, None]) @ (b - b_zero_point[None, :]) in int32, modulo 2**32.

    a: uint8|int8 [M, K]; b: int8|uint8 [K, N]; zero points int32 [M] / [N] or
    scalars (the registration contract of refcomp.backend "matmul_integer").
    """
    a = np.asarray(a)
    b = np.asarray(b)
    M, K = a.shape
    N = b.shape[1]
    za = np.asarray(a_zero_point, np.int16).reshape(-1)
    zb = np.asarray(b_zero_point, np.int16).reshape(-1)
    ac = np.ascontiguousarray(a.astype(np.int16) - za.reshape(-1, 1) if za.size > 1 else a.astype(np.int16) - za)
    out = np.empty((M, N), np.int32)
    use_refcomp_threads(threads)
    if M < _SMALL_M:
        # sum_k ac (b - zb) = ac @ b - rowsum(ac) zb: B is used as stored
        _axpy_rows(ac, np.ascontiguousarray(b), out)
        fix = ac.sum(axis=1, dtype=np.int64)[:, None] * np.broadcast_to(zb.astype(np.int64), (N,))[None, :]
        return ((out.astype(np.int64) - fix + 2**31) % 2**32 - 2**31).astype(np.int32)
    bt = np.ascontiguousarray(b.T.astype(np.int16) - zb.reshape(-1, 1) if zb.size > 1 else b.T.astype(np.int16) - zb)
    _dot_rows(ac, bt, out)
    return out
