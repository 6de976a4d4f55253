"""CSRMatrix: a pruned weight stored as compressed sparse rows.

A matrix W of shape (rows, cols) keeps only its non-zeros, row by row::

    row r holds W[r, indices[p]] = data[p]   for indptr[r] <= p < indptr[r + 1]

- ``indptr``  int64 [rows + 1], indptr[0] = 0, non-decreasing, indptr[-1] = nnz
- ``indices`` int64 [nnz], inside each row strictly increasing (sorted, unique), in [0, cols)
- ``data``    float32 | float64 | int8 [nnz]  (int8: a symmetric quantized weight, see
  :func:`refcomp.ops.sparse_linear_integer`)

This is scipy.sparse's canonical CSR form (``has_canonical_format``); every
constructor checks it, so a malformed matrix raises ValidationError here and
never reaches the C kernels, which trust the indices.

Storage (:attr:`nbytes`) counts the three arrays as stored: 8 (rows + 1) +
8 nnz + itemsize nnz bytes.

Products (each takes ``backend="auto" | "numpy" | "numba" | "c"``):

- ``W @ X`` / :meth:`dot`: dense X (cols, n) -> (rows, n), float or exact int32.
- :meth:`matmul`: the WeightFormat contract, ``x @ W.T`` for x (batch, cols),
  i.e. :func:`refcomp.ops.sparse_linear`.

Source: the CSR ("Yale") format, Eisenstat et al. 1977; scipy.sparse.csr_array.
"""

from __future__ import annotations

import numpy as np

from ..errors import DTypeError, FileFormatError, ShapeError, ValidationError
from ..ops.csr_matmul import block_pointers, block_width, csr_matmul, kernel_index_dtype
from ..ops.sparse_linear import sparse_linear, sparse_linear_integer
from .base import WeightFormat, check_field_names

__all__ = ["CSRMatrix", "DATA_DTYPES"]

DATA_DTYPES = (np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.int8))


def _int_vector(x, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.size == 0 and a.ndim == 1:  # [] arrives as float64
        a = a.astype(np.int64)
    if a.dtype.kind not in "iu":
        raise DTypeError(name, "an integer array", f"dtype {a.dtype}")
    if a.ndim != 1:
        raise ShapeError(name, "a 1-D array", f"shape {a.shape}")
    if a.size and (a.min() < 0 or a.max() > np.iinfo(np.int64).max):
        raise ValidationError(name, "non-negative values", f"min {a.min()}")
    return np.ascontiguousarray(a, dtype=np.int64)


class CSRMatrix(WeightFormat):
    """A validated CSR matrix (see the module docstring for the invariants)."""

    #: a pruned weight is frozen: layers propagate dL/dx through it but do not update it
    trainable = False
    #: the constructor checks the invariants, so refcomp.ops may hand the arrays to the
    #: kernels unchecked (refcomp.ops.csr_matmul.csr_operand)
    canonical_csr = True

    def __init__(self, indptr, indices, data, shape):
        try:
            rows, cols = (int(s) for s in shape)
        except (TypeError, ValueError):
            raise ShapeError("shape", "a pair (rows, cols) of ints", repr(shape)) from None
        if rows < 0 or cols < 0:
            raise ShapeError("shape", "non-negative (rows, cols)", repr(tuple(shape)))
        indptr = _int_vector(indptr, "indptr")
        indices = _int_vector(indices, "indices")
        data = np.asarray(data)
        if data.dtype not in DATA_DTYPES:
            raise DTypeError("data", "dtype float32, float64 or int8", f"dtype {data.dtype}")
        if data.ndim != 1:
            raise ShapeError("data", "a 1-D array", f"shape {data.shape}")
        if data.shape != indices.shape:
            raise ShapeError("data", f"length nnz = len(indices) = {indices.size}", f"length {data.size}")
        if indptr.shape != (rows + 1,):
            raise ShapeError("indptr", f"length rows + 1 = {rows + 1}", f"length {indptr.size}")
        if indptr[0] != 0:
            raise ValidationError("indptr", "indptr[0] == 0", f"indptr[0] = {indptr[0]}")
        steps = np.diff(indptr)
        if steps.size and steps.min() < 0:
            r = int(np.flatnonzero(steps < 0)[0])
            raise ValidationError("indptr", "non-decreasing offsets", f"indptr[{r + 1}] = {indptr[r + 1]} < indptr[{r}] = {indptr[r]}")
        if indptr[-1] != indices.size:
            raise ValidationError("indptr", f"indptr[-1] == nnz = {indices.size}", f"indptr[-1] = {indptr[-1]}")
        if indices.size and indices.max() >= cols:
            p = int(np.argmax(indices))
            raise ValidationError("indices", f"column indices in [0, {cols})", f"indices[{p}] = {indices[p]}")
        if indices.size > 1:
            # strictly increasing inside each row: a step <= 0 is allowed only where a new row starts
            bad = np.diff(indices) <= 0
            row_starts = np.zeros(indices.size - 1, bool)
            starts = indptr[1:-1]
            starts = starts[(starts > 0) & (starts < indices.size)]
            row_starts[starts - 1] = True
            bad &= ~row_starts
            if bad.any():
                p = int(np.flatnonzero(bad)[0])
                raise ValidationError("indices", "sorted, unique column indices within each row",
                                      f"indices[{p}] = {indices[p]} then indices[{p + 1}] = {indices[p + 1]}")
        if data.dtype.kind == "f" and not np.all(np.isfinite(data)):
            p = int(np.flatnonzero(~np.isfinite(data))[0])
            raise ValidationError("data", "finite values", f"data[{p}] = {data[p]}")
        self.indptr = indptr
        self.indices = indices
        self.data = np.ascontiguousarray(data)
        self.shape = (rows, cols)
        for a in (self.indptr, self.indices, self.data):
            a.flags.writeable = False  # validated once: keep it valid

    # ------------------------------------------------------------ conversions
    @classmethod
    def from_dense(cls, W, *, dtype=None) -> "CSRMatrix":
        """Keep the non-zeros of a 2-D array (exact zeros are dropped, -0.0 included)."""
        W = np.asarray(W)
        if W.ndim != 2:
            raise ShapeError("W", "a 2-D array", f"shape {W.shape}")
        if dtype is not None:
            W = W.astype(dtype)
        if W.dtype not in DATA_DTYPES:
            raise DTypeError("W", "dtype float32, float64 or int8 (or pass dtype=)", f"dtype {W.dtype}")
        mask = W != 0
        indptr = np.zeros(W.shape[0] + 1, np.int64)
        np.cumsum(mask.sum(axis=1), out=indptr[1:])
        rows, cols = np.nonzero(mask)  # row-major order: sorted columns within each row
        return cls(indptr, cols, W[rows, cols], W.shape)

    def to_dense(self) -> np.ndarray:
        out = np.zeros(self.shape, self.data.dtype)
        out[self.row_ids(), self.indices] = self.data
        return out

    @classmethod
    def from_scipy(cls, m) -> "CSRMatrix":
        """From any scipy.sparse matrix/array (converted to canonical CSR: sorted, duplicates summed)."""
        import scipy.sparse as sp

        if not sp.issparse(m):
            raise ValidationError("m", "a scipy.sparse matrix or array", type(m).__name__)
        c = sp.csr_array(m)
        c.sum_duplicates()  # also sorts indices
        return cls(c.indptr, c.indices, c.data, c.shape)

    def to_scipy(self):
        """A scipy.sparse.csr_array sharing nothing with this object."""
        import scipy.sparse as sp

        return sp.csr_array((self.data.copy(), self.indices.copy(), self.indptr.copy()), shape=self.shape)

    def column_blocks(self, n: int):
        """(nblocks, block_ptr) for the column-blocked C kernel with n right-hand columns, or None.

        The block width is refcomp.ops.csr_matmul.block_width (None: blocking
        would not pay); the pointers (block_pointers) are made once per width
        and cached, read-only.
        """
        kb = block_width(self.shape, self.nnz, n)
        if kb is None:
            return None
        cache = self.__dict__.setdefault("_column_blocks", {})
        if kb not in cache:
            cache[kb] = block_pointers(self.indptr, self.indices, self.shape, kb)
        return cache[kb]

    @property
    def kernel_indices(self) -> np.ndarray:
        """``indices`` in the C kernels' index type, made once and read-only.

        uint16 when cols <= 65536, else int32 (csrc/refcomp.h, REFCOMP_INDEX_*):
        at high sparsity the kernels are bound by memory traffic, and the
        narrow index stream leaves more cache to the dense operand
        (docs/kernels.md). Exact, since every index is < cols.
        """
        cached = self.__dict__.get("_kernel_indices")
        if cached is None:
            cached = self.indices.astype(kernel_index_dtype(self.shape[1]))
            cached.flags.writeable = False
            self.__dict__["_kernel_indices"] = cached
        return cached

    def row_ids(self) -> np.ndarray:
        """The row of every stored entry, int64 [nnz]."""
        return np.repeat(np.arange(self.shape[0], dtype=np.int64), np.diff(self.indptr))

    # ---------------------------------------------------------------- sizes
    @property
    def nnz(self) -> int:
        return int(self.indices.size)

    @property
    def density(self) -> float:
        n = self.shape[0] * self.shape[1]
        return self.nnz / n if n else 0.0

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def nbytes(self) -> int:
        return int(self.indptr.nbytes + self.indices.nbytes + self.data.nbytes)

    def fields(self) -> dict[str, np.ndarray]:
        """indptr, indices, data and the shape (int64) -- what a file stores."""
        return {"indptr": self.indptr, "indices": self.indices, "data": self.data,
                "shape": np.asarray(self.shape, np.int64)}

    @classmethod
    def from_fields(cls, fields: dict[str, np.ndarray]) -> "CSRMatrix":
        """Inverse of :meth:`fields`, with the constructor's validation; FileFormatError otherwise."""
        check_field_names(fields, {"indptr", "indices", "data", "shape"})
        shape = np.asarray(fields["shape"])
        if shape.dtype != np.int64 or shape.shape != (2,):
            raise FileFormatError(f"fields['shape']: expected 2 int64 values, got {shape.dtype} {shape.shape}")
        try:
            return cls(fields["indptr"], fields["indices"], fields["data"], tuple(shape.tolist()))
        except ValidationError as exc:
            raise FileFormatError(f"fields: {exc}") from None

    def __repr__(self) -> str:
        return f"CSRMatrix(shape={self.shape}, nnz={self.nnz}, dtype={self.data.dtype})"

    # -------------------------------------------------------------- products
    def dot(self, X, *, backend="auto") -> np.ndarray:
        """Y = W @ X for dense X of shape (cols, n) (or (cols,)): refcomp.ops.csr_matmul."""
        return csr_matmul(self, X, backend=backend)

    __matmul__ = dot

    def matmul(self, x) -> np.ndarray:
        """``x @ W.T`` (WeightFormat contract): refcomp.ops.sparse_linear without bias."""
        if self.data.dtype == np.int8:
            return sparse_linear_integer(x, self)
        return sparse_linear(x, self)
