"""csr_matmul: Y = W @ X for a CSR matrix W and a dense X (the SpMM definition).

Definition::

    Y[r, j] = sum_{p = indptr[r]}^{indptr[r + 1] - 1} data[p] * X[indices[p], j]        (eq. S0)

W (rows, cols) in canonical CSR (refcomp.formats.csr: sorted, unique column
indices per row, int64 ``indptr`` / ``indices``); X (cols, n) dense; Y (rows, n).

float data (float32 / float64): X float32 / float64, Y of dtype
result_type(data, X); each Y[r, j] summed in CSR order (numpy: one dot
product per row, whose BLAS order may differ; the kernels fuse multiply-add),
so every backend is within

    |Y[r, j] - exact| <= gamma_m * sum_p |data[p] X[indices[p], j]|,   gamma_m = m u / (1 - m u)

with m the non-zeros of row r and u the unit roundoff of Y's dtype (Higham,
Accuracy and Stability of Numerical Algorithms, 2nd ed., eq. 3.5).

int8 data (a symmetric quantized weight): X int8 / uint8 / int16, Y exact
int32. The kernels accumulate in int32 and run only when
``max_row_nnz * max|data| * max|X| <= 2**31 - 1``; otherwise the int64 NumPy
path runs and a result outside int32 raises OverflowRiskError.

W is a CSR operand: an object with the canonical arrays ``indptr``,
``indices``, ``data``, ``shape`` and ``canonical_csr = True``, the promise that
its constructor checked them (refcomp.formats.CSRMatrix), because the kernels
trust the indices. It also gives the kernels' forms of its indices, made once
and cached: ``kernel_indices`` (:func:`kernel_index_dtype`) and
``column_blocks(n)`` (:func:`block_width`, :func:`block_pointers`).

Kernels: "csr_spmm_f32", "csr_spmm_i8" (csrc/spmm.c, kernels/numba/spmm.py;
docs/kernels.md). Source: the CSR ("Yale") format, Eisenstat et al. 1977.
"""

from __future__ import annotations

import numpy as np

from .. import backend as _backend
from .._frozen import frozen
from ..errors import DTypeError, OverflowRiskError, ShapeError, ValidationError

__all__ = ["csr_matmul", "csr_operand", "kernel_index_dtype", "block_width", "block_pointers"]

_INT32_MAX = 2**31 - 1


def csr_operand(W, argument: str = "W"):
    """``W`` if it is a validated CSR operand (see the module docstring), else ValidationError."""
    if getattr(type(W), "canonical_csr", False) is not True:
        raise ValidationError(argument, "a refcomp.formats.CSRMatrix (use CSRMatrix.from_dense / from_scipy)",
                              type(W).__name__)
    return W


def kernel_index_dtype(cols: int) -> np.dtype:
    """The column-index type the C kernels take for a matrix of ``cols`` columns.

    uint16 when every index fits (cols <= 65536), else int32 (csrc/refcomp.h,
    REFCOMP_INDEX_U16 / REFCOMP_INDEX_I32); wider matrices are not for the kernels.
    Why narrow: at high sparsity the kernels are bound by memory traffic, and
    the narrow index stream leaves more cache to the dense operand (docs/kernels.md).
    """
    if cols > _INT32_MAX:
        raise ShapeError("cols", f"at most {_INT32_MAX} columns for the kernels' int32 indices", f"{cols}")
    return np.dtype(np.uint16 if cols <= 65536 else np.int32)


def block_width(shape, nnz: int, n: int) -> int | None:
    """Columns per block kb of the column-blocked C kernel, or None when blocking would not pay.

    kb starts at the number of X rows that fill 32 KiB (L1) for n right-hand
    columns and doubles until an average row has >= 12 non-zeros per block
    (below that, reloading the partial sums per block costs more than the
    reuse of X saves). Measured on AMD Zen 4 with out = in = 1024, n = 128
    (docs/kernels.md): the best kb was 64 at 50 % sparsity, 64-128 at 80 %,
    128 at 90 %, 256-512 at 95 %, no blocking at 98 %; this rule picks 64, 64,
    128, 256, none.
    """
    rows, cols = shape
    if rows < 256 or nnz == 0 or n < 16:
        return None
    density = nnz / (rows * cols)
    kb = max(16, 32768 // (4 * n))
    while kb < cols and density * kb < 12:
        kb *= 2
    return None if kb >= cols else kb


def block_pointers(indptr, indices, shape, kb: int) -> tuple[int, np.ndarray]:
    """(nblocks, block_ptr): block_ptr[r, b] is the first non-zero of row r with column >= b kb.

    So block_ptr[r, 0] = indptr[r] and block_ptr[r, -1] = indptr[r + 1]; frozen (refcomp._frozen) int64 (rows, nblocks + 1).
    """
    rows, cols = shape
    nb = -(-cols // kb)
    row_ids = np.repeat(np.arange(rows, dtype=np.int64), np.diff(indptr))
    counts = np.zeros((rows, nb), np.int64)
    np.add.at(counts, (row_ids, indices // kb), 1)
    bp = np.empty((rows, nb + 1), np.int64)
    bp[:, 0] = 0
    np.cumsum(counts, axis=1, out=bp[:, 1:])
    bp += indptr[:-1, None]
    return nb, frozen(bp)  # cached with the matrix: C re-checks the partition, Numba does not


def csr_matmul(W, X, *, backend="auto") -> np.ndarray:
    """Y = W @ X (eq. S0) for dense X of shape (cols, n) (or (cols,)): (rows, n) (or (rows,)).

    float data: X float32/float64, all finite; the "c"/"numba" kernels run for
    float32 data and float32 X (the C kernel copies X unless it is C-contiguous
    and 64-byte aligned; see refcomp.kernels.c.aligned_array).
    int8 data: X int8/uint8/int16 -> exact int32 (OverflowRiskError when an
    exact value does not fit int32).
    """
    W = csr_operand(W)
    X = np.asarray(X)
    vec = X.ndim == 1
    X2 = X[:, None] if vec else X
    if X2.ndim != 2 or X2.shape[0] != W.shape[1]:
        raise ShapeError("X", f"shape ({W.shape[1]}, n) or ({W.shape[1]},)", f"shape {X.shape}")
    if W.data.dtype == np.int8:
        if X2.dtype not in (np.int8, np.uint8, np.int16):
            raise DTypeError("X", "dtype int8, uint8 or int16 (for int8 CSR data)", f"dtype {X2.dtype}")
        Y = csr_matmul_int16(W, X2.astype(np.int16), backend)
    else:
        Y = _csr_matmul_float(W, X2, backend)
    return Y[:, 0] if vec else Y


def _csr_matmul_float(W, X, backend):
    if X.dtype.kind != "f" or X.dtype not in (np.float32, np.float64):
        raise DTypeError("X", "dtype float32 or float64 (for float CSR data)", f"dtype {X.dtype}")
    if not np.all(np.isfinite(X)):
        raise ValidationError("X", "finite values", "NaN or Inf")
    rows, n = W.shape[0], X.shape[1]
    if W.data.dtype == np.float32 and X.dtype == np.float32 and W.shape[1] <= _INT32_MAX:
        fast = _backend.implementation("csr_spmm_f32", backend)
        if fast is not None:
            return fast(W.indptr, W.kernel_indices, W.data, W.shape, X, validated=True,
                        blocks=W.column_blocks(X.shape[1]))
    dt = np.result_type(W.data, X)
    Y = np.zeros((rows, n), dt)
    for r in range(rows):
        p0, p1 = W.indptr[r], W.indptr[r + 1]
        if p1 > p0:
            Y[r] = W.data[p0:p1].astype(dt) @ X[W.indices[p0:p1]].astype(dt)
    return Y


def csr_matmul_int16(W, X16: np.ndarray, backend) -> np.ndarray:
    """Exact Y = W @ X16 in int32 (W int8 CSR operand, X16 int16 (cols, n), already checked)."""
    rows, n = W.shape[0], X16.shape[1]
    if W.indices.size and X16.size:
        row_nnz = int(np.diff(W.indptr).max())
        bound = row_nnz * int(np.abs(W.data.astype(np.int64)).max()) * int(np.abs(X16.astype(np.int64)).max())
    else:
        bound = 0
    if bound <= _INT32_MAX and W.shape[1] <= _INT32_MAX:
        fast = _backend.implementation("csr_spmm_i8", backend)
        if fast is not None:
            return fast(W.indptr, W.kernel_indices, W.data, W.shape, X16, validated=True)
    Y = np.zeros((rows, n), np.int64)
    for r in range(rows):
        p0, p1 = W.indptr[r], W.indptr[r + 1]
        if p1 > p0:
            Y[r] = W.data[p0:p1].astype(np.int64) @ X16[W.indices[p0:p1]].astype(np.int64)
    if Y.size and (Y.min() < -_INT32_MAX - 1 or Y.max() > _INT32_MAX):
        raise OverflowRiskError("W @ X", "exact int32 results", f"a value of {int(np.abs(Y).max())} in magnitude")
    return Y.astype(np.int32)
