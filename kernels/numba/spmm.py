"""Numba twins of the CSR x dense kernels of csrc/spmm.c (backend="numba").

The CSR arrays must satisfy refcomp.formats.CSRMatrix's invariants (callers
pass a CSRMatrix's arrays; ``validated`` and ``blocks`` -- the C kernel's
column blocking -- are accepted for the common kernel signature and ignored). Y[r, :] = sum_p data[p] * X[indices[p], :] in CSR order from 0: float32
(product and sum rounded separately: Numba does not contract to FMA without
fastmath) or int8 x int16 -> int32 modulo 2**32. Rows are split by prange;
a row's arithmetic does not depend on the split.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ...errors import ShapeError
from ._threads import parallel_region

__all__ = ["csr_spmm_f32", "csr_spmm_i8", "csr_linear_f32"]


@njit(parallel=True, cache=True)
def _spmm_f32(indptr, indices, data, X, Y):  # pragma: no cover - compiled
    rows = Y.shape[0]
    n = Y.shape[1]
    for r in prange(rows):
        y = Y[r]
        y[:] = np.float32(0.0)
        for p in range(indptr[r], indptr[r + 1]):
            w = data[p]
            x = X[indices[p]]
            for j in range(n):
                y[j] = y[j] + w * x[j]


@njit(parallel=True, cache=True)
def _spmm_i8(indptr, indices, data, X, Y):  # pragma: no cover - compiled
    rows = Y.shape[0]
    n = Y.shape[1]
    for r in prange(rows):
        y = Y[r]
        y[:] = 0
        for p in range(indptr[r], indptr[r + 1]):
            w = np.int32(data[p])
            x = X[indices[p]]
            for j in range(n):
                y[j] = np.int32(y[j] + w * np.int32(x[j]))


def _indices32(indices, shape):
    # int32 column indices (whatever integer type comes in: one compiled
    # specialization; CSRMatrix.kernel_indices may be uint16)
    if shape[1] > np.iinfo(np.int32).max:
        raise ShapeError("shape", f"at most {np.iinfo(np.int32).max} columns (int32 column indices)",
                         f"{shape[1]} columns")
    return np.asarray(indices, np.int32)


def csr_spmm_f32(indptr, indices, data, shape, X, *, threads=None, validated=False, blocks=None):
    """Y = W @ X, W float32 CSR of ``shape``, X float32 [cols, n] (arrays validated by the caller)."""
    Y = np.empty((shape[0], X.shape[1]), np.float32)
    with parallel_region(threads):
        _spmm_f32(np.asarray(indptr, np.int64), _indices32(indices, shape), np.asarray(data, np.float32),
                  np.ascontiguousarray(X, np.float32), Y)
        return Y


def csr_spmm_i8(indptr, indices, data, shape, X, *, threads=None, validated=False):
    """Y = W @ X in int32 (mod 2**32), W int8 CSR of ``shape``, X int16 [cols, n]."""
    Y = np.empty((shape[0], X.shape[1]), np.int32)
    with parallel_region(threads):
        _spmm_i8(np.asarray(indptr, np.int64), _indices32(indices, shape), np.asarray(data, np.int8),
                 np.ascontiguousarray(X, np.int16), Y)
        return Y


def csr_linear_f32(indptr, indices, data, shape, x, bias=None, *, threads=None, validated=False, blocks=None):
    """y = x @ W.T + bias = (W @ x.T).T + bias, float32 (one addition for the bias)."""
    y = np.ascontiguousarray(csr_spmm_f32(indptr, indices, data, shape, np.ascontiguousarray(x.T), threads=threads).T)
    if bias is not None:
        y += np.asarray(bias, np.float32)
    return y
