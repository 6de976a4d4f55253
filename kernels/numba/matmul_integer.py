"""Numba twin of refcomp.ops.matmul_integer (backend="numba").

Same numerics as csrc/matmul_integer.c (docs/kernels.md eq. 1-4): operands
shifted to uint8 x int8 (a' = a ^ 0x80 for int8 A, b' = b ^ 0x80 for uint8 B,
shifts folded into the zero points), the raw product P = a' @ b' accumulated
in int32 lanes that wrap modulo 2**32, then the zero-point folding

    C = P - zb' * rowsum(a') - za' * (colsum(b') - K * zb')        (mod 2**32)

which is the exact result whenever that fits int32 (the op's precondition).
Rows are blocked by 4 so each loaded row of b' feeds four accumulator rows;
``prange`` splits the 4-row blocks among threads (a row's arithmetic does not
depend on the split, so every thread count gives the same integers).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._threads import use_refcomp_threads

__all__ = ["matmul_integer"]


@njit(parallel=True, cache=True)
def _raw_product(ap, bp, out):  # pragma: no cover - compiled
    M, K = ap.shape
    N = bp.shape[1]
    for blk in prange((M + 3) // 4):
        i = blk * 4
        if i + 4 <= M:
            o0 = out[i]
            o1 = out[i + 1]
            o2 = out[i + 2]
            o3 = out[i + 3]
            o0[:] = 0
            o1[:] = 0
            o2[:] = 0
            o3[:] = 0
            for k in range(K):
                brow = bp[k]
                a0 = np.int32(ap[i, k])
                a1 = np.int32(ap[i + 1, k])
                a2 = np.int32(ap[i + 2, k])
                a3 = np.int32(ap[i + 3, k])
                for j in range(N):
                    bv = np.int32(brow[j])
                    o0[j] = np.int32(o0[j] + a0 * bv)
                    o1[j] = np.int32(o1[j] + a1 * bv)
                    o2[j] = np.int32(o2[j] + a2 * bv)
                    o3[j] = np.int32(o3[j] + a3 * bv)
        else:
            for r in range(i, M):
                orow = out[r]
                orow[:] = 0
                for k in range(K):
                    av = np.int32(ap[r, k])
                    brow = bp[k]
                    for j in range(N):
                        orow[j] = np.int32(orow[j] + av * np.int32(brow[j]))


def _wrap32(x: np.ndarray) -> np.ndarray:
    return ((x + 2**31) % 2**32 - 2**31).astype(np.int32)


def matmul_integer(a, b, a_zero_point, b_zero_point, *, threads=None):
    """(a - a_zero_point[:, None]) @ (b - b_zero_point[None, :]) in int32, modulo 2**32.

    a: uint8|int8 [M, K]; b: int8|uint8 [K, N]; zero points int32 [M] / [N]
    (the registration contract of refcomp.backend "matmul_integer").
    """
    a = np.ascontiguousarray(a)
    b = np.ascontiguousarray(b)
    M, K = a.shape
    N = b.shape[1]
    za = np.broadcast_to(np.asarray(a_zero_point, np.int64).reshape(-1), (M,))
    zb = np.broadcast_to(np.asarray(b_zero_point, np.int64).reshape(-1), (N,))
    # eq. 1 of docs/kernels.md: shift to uint8 x int8, fold the shift into the zero points
    if a.dtype == np.int8:
        ap = a.view(np.uint8) ^ np.uint8(0x80)
        za = za + 128
    else:
        ap = a
    if b.dtype == np.uint8:
        bp = (b ^ np.uint8(0x80)).view(np.int8)
        zb = zb - 128
    else:
        bp = b
    out = np.empty((M, N), np.int32)
    use_refcomp_threads(threads)
    _raw_product(ap, bp, out)
    ra = ap.sum(axis=1, dtype=np.int64)
    cb = bp.sum(axis=0, dtype=np.int64)
    fix = zb[None, :] * ra[:, None] + za[:, None] * (cb - K * zb)[None, :]
    return _wrap32(out.astype(np.int64) - fix)
