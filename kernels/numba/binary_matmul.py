"""Numba twin of refcomp.ops.binary_matmul (eq. B1): C = k − 2·popcount(a XOR b), bit-exact.

The popcount is the SWAR one of csrc/binary_matmul.c's scalar path (Hacker's
Delight 5-1) in uint64 arithmetic; LLVM recognises the pattern and emits
POPCNT where the CPU has it. The same integers either way.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._threads import parallel_region

__all__ = ["binary_matmul"]

_M1, _M2, _M4, _H01 = (np.uint64(0x5555555555555555), np.uint64(0x3333333333333333),
                       np.uint64(0x0F0F0F0F0F0F0F0F), np.uint64(0x0101010101010101))


@njit(cache=True)
def _popcount(v):  # pragma: no cover - compiled
    v = v - ((v >> np.uint64(1)) & _M1)
    v = (v & _M2) + ((v >> np.uint64(2)) & _M2)
    v = (v + (v >> np.uint64(4))) & _M4
    return np.int64((v * _H01) >> np.uint64(56))


@njit(parallel=True, cache=True)
def _bmm(a, b, k, out):  # pragma: no cover - compiled
    M, W = a.shape
    N = b.shape[0]
    for i in prange(M):
        for j in range(N):
            d = np.int64(0)
            for w in range(W):
                d += _popcount(a[i, w] ^ b[j, w])
            out[i, j] = np.int32(k - 2 * d)


def binary_matmul(a, b, k, *, threads=None):
    """Registration contract "binary_matmul": a uint64 (M, W), b uint64 (N, W), W = ceil(k/64), pads zero."""
    a = np.ascontiguousarray(a, np.uint64)
    b = np.ascontiguousarray(b, np.uint64)
    out = np.empty((a.shape[0], b.shape[0]), np.int32)
    if out.size == 0:
        return out
    with parallel_region(threads):
        _bmm(a, b, np.int64(k), out)
        return out
