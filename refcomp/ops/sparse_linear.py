"""sparse_linear: a fully connected layer whose weight is a CSR matrix.

Definition (float)::

    y[b, o] = sum_{p in row o} W.data[p] * x[b, W.indices[p]]  +  bias[o]        (eq. S1)

x: (batch, in) or (in,); W: CSRMatrix of shape (out, in) (any CSR operand of
refcomp.ops.csr_matmul); bias: (out,) or None;
y: (batch, out) (or (out,)), i.e. y = x @ W.T + bias with W stored sparse.

Float precision: float32 x and float32 W give float32 y. The products and
the sum of each output are rounded in the result dtype, the sum taken in
the order of W's row (numpy: a dot product per row, whose BLAS order may
differ; c: fused multiply-add per step; numba: multiply then add). Every
backend satisfies, with m = nnz of row o and u = 2**-24 for float32::

    |y[b, o] - exact| <= gamma_{m+1} * ( sum_p |W.data[p] x[b, W.indices[p]]| + |bias[o]| ),
    gamma_k = k u / (1 - k u)                                                    (eq. S2)

(Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., eq. 3.5;
the +1 is the bias addition). Results of different backends therefore agree
to that bound, not bit for bit.

Definition (integer, :func:`sparse_linear_integer`)::

    y[b, o] = sum_{p in row o} W.data[p] * (x[b, W.indices[p]] - x_zero_point) + bias[o]   (eq. S3)

W int8 CSR (a symmetric per-tensor or per-row quantized weight: zero point
0, scales applied by the caller), x int8 or uint8 with a scalar zero point,
bias int32; y int32, exact. The fast kernels accumulate in int32 and run only
when ``max_row_nnz * max|W| * max|x - x_zero_point| <= 2**31 - 1`` (then no
partial sum leaves int32); otherwise the NumPy int64 path runs. The bias is
added in int64; a final result outside int32 raises OverflowRiskError.

Kernels: the C and Numba kernels compute W @ x^T row by row (each non-zero
scales one contiguous row of x^T): "csr_linear_f32" (transposes and bias
included), "csr_spmm_i8"; see csrc/spmm.c and docs/kernels.md.
"""

from __future__ import annotations

import numpy as np

from .. import backend as _backend
from ..errors import DTypeError, OverflowRiskError, ShapeError, ValidationError
from .csr_matmul import csr_matmul, csr_matmul_int16, csr_operand

__all__ = ["sparse_linear", "sparse_linear_integer"]

_INT32_MAX = 2**31 - 1


def _check_weight(W, integer: bool):
    csr_operand(W)
    if integer and W.data.dtype != np.int8:
        raise DTypeError("W", "int8 CSR data for sparse_linear_integer", f"dtype {W.data.dtype}")
    if not integer and W.data.dtype.kind != "f":
        raise DTypeError("W", "float32/float64 CSR data (int8 weights: sparse_linear_integer)", f"dtype {W.data.dtype}")
    return W


def _check_x(x, W, dtypes, what: str):
    x = np.asarray(x)
    if x.dtype not in tuple(np.dtype(d) for d in dtypes):
        raise DTypeError("x", what, f"dtype {x.dtype}")
    vec = x.ndim == 1
    x2 = x[None, :] if vec else x
    if x2.ndim != 2 or x2.shape[1] != W.shape[1]:
        raise ShapeError("x", f"shape (batch, {W.shape[1]}) or ({W.shape[1]},) (W is {W.shape})", f"shape {x.shape}")
    return x2, vec


def _check_bias(bias, n: int, dtypes, what: str):
    if bias is None:
        return None
    b = np.asarray(bias)
    if b.dtype not in tuple(np.dtype(d) for d in dtypes):
        raise DTypeError("bias", what, f"dtype {b.dtype}")
    if b.shape != (n,):
        raise ShapeError("bias", f"shape ({n},)", f"shape {b.shape}")
    return b


def sparse_linear(x, W, bias=None, *, backend="auto"):
    """y = x @ W.T + bias for a CSR weight W (eq. S1), float.

    Parameters
    ----------
    x : float32 | float64 array (batch, in) or (in,).
    W : CSRMatrix (out, in) with float32 or float64 data.
    bias : optional (out,) float array.
    backend : "auto" | "numpy" | "numba" | "c" (the fast kernels need float32 x and W).

    Returns
    -------
    (batch, out) (or (out,)) array of dtype result_type(x, W.data, bias);
    within eq. S2 of the exact value on every backend.
    """
    W = _check_weight(W, integer=False)
    x2, vec = _check_x(x, W, (np.float32, np.float64), "dtype float32 or float64")
    b = _check_bias(bias, W.shape[0], (np.float32, np.float64), "dtype float32 or float64")
    if b is not None and not np.all(np.isfinite(b)):
        raise ValidationError("bias", "finite values", "NaN or Inf")
    fast = None
    if (x2.dtype == np.float32 and W.data.dtype == np.float32 and (b is None or b.dtype == np.float32)
            and W.shape[1] <= _INT32_MAX):  # the kernels take int32 column indices
        fast = _backend.implementation("csr_linear_f32", backend)
    if fast is not None:  # (W x^T)^T + bias inside the kernel, transposes included
        y = fast(W.indptr, W.kernel_indices, W.data, W.shape, x2, b, validated=True, blocks=W.column_blocks(x2.shape[0]))
        return y[0] if vec else y
    # W @ x^T: each non-zero scales a contiguous row of x^T (batch values)
    yT = csr_matmul(W, x2.T, backend=backend)
    y = np.ascontiguousarray(yT.T)
    if b is not None:
        y = y + b  # one more rounding: the +1 of eq. S2
    return y[0] if vec else y


def sparse_linear_integer(x, W, bias=None, *, x_zero_point=0, backend="auto"):
    """y = (x - x_zero_point) @ W.T + bias, exact int32, for an int8 CSR W (eq. S3).

    Parameters
    ----------
    x : int8 | uint8 array (batch, in) or (in,).
    W : CSRMatrix (out, in) with int8 data (zero point 0).
    bias : optional int32 (out,).
    x_zero_point : scalar integer in x's dtype range.
    backend : "auto" | "numpy" | "numba" | "c".

    Returns
    -------
    int32 (batch, out) (or (out,)). OverflowRiskError if an exact value does not fit int32.
    """
    W = _check_weight(W, integer=True)
    x2, vec = _check_x(x, W, (np.int8, np.uint8), "dtype int8 or uint8")
    zx = np.asarray(x_zero_point)
    info = np.iinfo(x2.dtype)
    if zx.ndim != 0 or zx.dtype.kind not in "iu" or not (info.min <= int(zx) <= info.max):
        raise ValidationError("x_zero_point", f"a scalar integer in [{info.min}, {info.max}] (x is {x2.dtype})", repr(x_zero_point))
    b = _check_bias(bias, W.shape[0], (np.int32,), "dtype int32")
    xT = np.ascontiguousarray(x2.T.astype(np.int16) - np.int16(int(zx)))  # in [-255, 255]
    yT = csr_matmul_int16(W, xT, backend).astype(np.int64)
    y = yT.T
    if b is not None:
        y = y + b.astype(np.int64)
        if y.size and (y.min() < -_INT32_MAX - 1 or y.max() > _INT32_MAX):
            raise OverflowRiskError("y", "exact int32 results after adding bias", f"a value of {int(np.abs(y).max())}")
    y = np.ascontiguousarray(y.astype(np.int32))
    return y[0] if vec else y
