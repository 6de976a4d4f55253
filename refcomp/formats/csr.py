"""CSRMatrix: a pruned weight stored as compressed sparse rows, its values plain or in a format.

A matrix W of shape (rows, cols) keeps only its non-zeros, row by row::

    row r holds W[r, indices[p]] = value[p]   for indptr[r] <= p < indptr[r + 1]

- ``indptr``  int64 [rows + 1], indptr[0] = 0, non-decreasing, indptr[-1] = nnz
- ``indices`` int64 [nnz], inside each row strictly increasing (sorted, unique), in [0, cols)
- ``data``    the nnz values, either an array or a *values format* (a composition):

  ==========================  ==================================================  ==================
  data                        stored                                              value[p]
  ==========================  ==================================================  ==================
  float32 | float64 [nnz]     the values                                          data[p]
  int8 [nnz]                  integer values (a symmetric quantized weight whose  data[p]
                              scales the caller applies: the integer ops only,
                              :func:`refcomp.ops.sparse_linear_integer`)
  QTensor (nnz,)              codes q [nnz] + QParams (any 1-D layout of          (q[p] - z)·s
                              refcomp.quant; per tensor for the integer path)
  Clustered (nnz,), no mask   codebook c (k,) float32 | float64 + indices i       c[i[p]]
                              [nnz] (b bits each, k <= 2^b)
  ==========================  ==================================================  ==================

This is scipy.sparse's canonical CSR form (``has_canonical_format``); the
constructor checks it once, so a malformed matrix raises ValidationError here
and never reaches the C kernels, which trust the indices. So a CSRMatrix is
immutable: the checked arrays are private copies NumPy refuses to make
writeable (refcomp._frozen), rebinding an attribute raises ReadOnlyError, and
copies and pickles go through the constructor again. A composition is the
same CSR with other values: :meth:`with_values` shares the checked
``indptr`` / ``indices`` and checks only the new values.

Attributes: ``values`` is what is stored for the nnz values (the array, or
the values format); ``data`` is the array the products multiply by (the
same array, or the values format decoded once: dequantized, looked up in the
codebook; float32 or the codebook's dtype, read-only). ``data`` is what every
CSR operand of refcomp.ops.csr_matmul offers, so the float ops see a plain
CSR whatever the storage.

Storage (:attr:`nbytes`) counts what is stored, never the decoded ``data``::

    nbytes = 8 (rows + 1) + 8 nnz + (itemsize · nnz  |  values.nbytes)

(a QTensor: codes, scale, zero point if not 0; a Clustered: ceil(nnz·b / 8)
index bytes + the codebook). :attr:`storage_bits` is the same in bits, with a
Clustered's indices at b bits each.

Products (each takes ``backend="auto" | "numpy" | "numba" | "c"``):

- ``W @ X`` / :meth:`dot`: dense X (cols, n) -> (rows, n), float or exact int32.
- :meth:`matmul`: the WeightFormat contract, ``x @ W.T`` for x (batch, cols),
  i.e. :func:`refcomp.ops.sparse_linear` with the values of the table
  (float semantics for a values format: the dequantized / looked-up matrix).
- :meth:`matmul_integer`: int8 codes (int8 data, or an int8 QTensor with one
  scale s_w and zero point 0) times int8 / uint8 input codes q_x, exact int32
  through :func:`refcomp.ops.sparse_linear_integer` (eq. S3)::

      acc[b, o] = sum_{p in row o} q_w[p] · (q_x[b, indices[p]] - z_x)
      x̂ @ Ŵᵀ   = s_x · s_w · acc          (x̂ = (q_x - z_x)·s_x, Ŵ the dequantized W)

Source: the CSR ("Yale") format, Eisenstat et al. 1977; scipy.sparse.csr_array.
A CSR of cluster indices is Deep Compression's storage (Han, Mao, Dally 2016,
§3-4), here with scipy's absolute int64 column indices; the relative-index,
Huffman-coded encoding of the paper is refcomp.formats.relative_csr.
"""

from __future__ import annotations

import numpy as np

from .._frozen import frozen
from ..errors import DTypeError, FileFormatError, ReadOnlyError, ShapeError, ValidationError
from ..ops.csr_matmul import block_pointers, block_width, csr_matmul, kernel_index_dtype
from ..ops.sparse_linear import sparse_linear, sparse_linear_integer
from .base import WeightFormat, check_field_names
from .clustered import Clustered
from .qtensor import QTensor

__all__ = ["CSRMatrix", "DATA_DTYPES", "VALUE_FORMATS"]

DATA_DTYPES = (np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.int8))
#: the weight formats a CSRMatrix may hold its nnz values in (module docstring)
VALUE_FORMATS = (QTensor, Clustered)


def _int_vector(x, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.size == 0 and a.ndim == 1:  # [] arrives as float64
        a = a.astype(np.int64)
    if a.dtype.kind not in "iu":
        raise DTypeError(name, "an integer array", f"dtype {a.dtype}")
    if a.ndim != 1:
        raise ShapeError(name, "a 1-D array", f"shape {a.shape}")
    if a.size and a.max() > np.iinfo(np.int64).max:  # uint64 beyond int64: would wrap negative
        raise ValidationError(name, f"values <= {np.iinfo(np.int64).max}", f"max {a.max()}")
    # a private copy NumPy cannot make writeable (refcomp._frozen), checked here and by the
    # constructor: the kernels trust it, so neither the caller nor a later holder may change it
    a = frozen(a, np.int64)
    if a.size and a.min() < 0:
        raise ValidationError(name, "non-negative values", f"min {a.min()}")
    return a


def _check_values_length(data, nnz: int) -> None:
    """ShapeError unless ``data`` (array or values format) holds nnz values in one dimension."""
    if isinstance(data, WeightFormat):
        if not isinstance(data, VALUE_FORMATS):
            raise DTypeError("data", "an array or a QTensor / Clustered of the nnz values", type(data).__name__)
        shape = tuple(data.shape)
    else:
        shape = np.shape(data)
    if len(shape) != 1:
        raise ShapeError("data", "1-D values (an array or a format of shape (nnz,))", f"shape {shape}")
    if shape[0] != nnz:
        raise ShapeError("data", f"length nnz = len(indices) = {nnz}", f"length {shape[0]}")


class CSRMatrix(WeightFormat):
    """A validated CSR matrix (see the module docstring for the invariants and the values).

    Parameters
    ----------
    indptr : integer array [rows + 1].
    indices : integer array [nnz].
    data : float32 | float64 | int8 array [nnz], or a values format of shape (nnz,):
        a 1-D QTensor or a 1-D Clustered without mask (``VALUE_FORMATS``).
    shape : (rows, cols).
    """

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
        if indptr.shape != (rows + 1,):
            raise ShapeError("indptr", f"length rows + 1 = {rows + 1}", f"length {indptr.size}")
        if indptr[0] != 0:
            raise ValidationError("indptr", "indptr[0] == 0", f"indptr[0] = {indptr[0]}")
        steps = np.diff(indptr)
        if steps.size and steps.min() < 0:
            r = int(np.flatnonzero(steps < 0)[0])
            raise ValidationError("indptr", "non-decreasing offsets", f"indptr[{r + 1}] = {indptr[r + 1]} < indptr[{r}] = {indptr[r]}")
        # the values' length first: it names the likelier mistake (data for another pattern)
        _check_values_length(data, indices.size)
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
        self.__dict__.update(indptr=indptr, indices=indices, shape=(rows, cols))  # set once (__setattr__)
        self._set_values(data)

    #: what the constructor validated and the kernels trust (with the kernels' cached forms of it):
    #: bound once, never rebound (a new CSRMatrix, or :meth:`with_values`, is the way to change them)
    _FIXED = frozenset({"indptr", "indices", "data", "values", "shape", "_kernel_indices", "_column_blocks", "_codes"})

    def __setattr__(self, name, value):
        if name in self._FIXED:
            raise ReadOnlyError(name, "an attribute fixed when the CSRMatrix was validated "
                                "(make a new CSRMatrix, or use with_values)", "an assignment")
        super().__setattr__(name, value)

    def __delattr__(self, name):
        if name in self._FIXED:
            raise ReadOnlyError(name, "an attribute fixed when the CSRMatrix was validated", "a deletion")
        super().__delattr__(name)

    def __reduce__(self):
        # copy / deepcopy / pickle rebuild through the constructor: a copied array comes back
        # writeable (and a pickle is outside data), so the copy is validated and frozen again
        return type(self), (self.indptr, self.indices, self.values, self.shape)

    def _set_values(self, data) -> None:
        """Check the nnz values (an array or a values format) and set ``values`` and ``data``."""
        nnz = self.indices.size
        _check_values_length(data, nnz)
        if isinstance(data, WeightFormat):
            if isinstance(data, Clustered) and data.mask is not None:
                raise ValidationError("data", "a Clustered without mask (the CSR pattern is the mask)",
                                      "a Clustered with a mask")
            values = data
            decoded = data.to_dense()
            if decoded.dtype not in (np.float32, np.float64):
                # float16 / bfloat16 scales dequantize to their dtype; widening is exact
                decoded = decoded.astype(np.float32)
        else:
            decoded = np.asarray(data)
            if decoded.dtype not in DATA_DTYPES:
                raise DTypeError("data", "dtype float32, float64 or int8 (or a QTensor / Clustered)",
                                 f"dtype {decoded.dtype}")
        decoded = frozen(decoded)  # validated once, below: keep it valid (refcomp._frozen)
        if decoded.dtype.kind == "f" and not np.all(np.isfinite(decoded)):
            p = int(np.flatnonzero(~np.isfinite(decoded))[0])
            raise ValidationError("data", "finite values", f"data[{p}] = {decoded[p]}")
        if not isinstance(data, WeightFormat):
            values = decoded  # a plain CSR stores the array it multiplies by
        self.__dict__.update(values=values, data=decoded)

    def with_values(self, data) -> "CSRMatrix":
        """This sparsity pattern with other nnz values: an array or a values format of shape (nnz,).

        ``indptr`` / ``indices`` (and the kernels' forms of them) are shared,
        not checked again: they were checked when this matrix was made. This
        is how a composition is made: ``W.with_values(QTensor.quantize(W.data, qp))``.
        """
        new = object.__new__(type(self))
        new.__dict__.update(indptr=self.indptr, indices=self.indices, shape=self.shape)
        for key in ("_kernel_indices", "_column_blocks"):  # they depend on the pattern only
            if key in self.__dict__:
                new.__dict__[key] = self.__dict__[key]
        new._set_values(data)
        return new

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
            cached = frozen(self.indices, kernel_index_dtype(self.shape[1]))
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
        """indptr + indices + the stored values (the array, or the values format's bytes)."""
        return int(self.indptr.nbytes + self.indices.nbytes + self.values.nbytes)

    @property
    def storage_bits(self) -> int:
        """:attr:`nbytes` in bits, a values format counted at its own bits (b-bit cluster indices)."""
        values_bits = self.values.storage_bits if isinstance(self.values, WeightFormat) else 8 * self.values.nbytes
        return int(8 * (self.indptr.nbytes + self.indices.nbytes) + values_bits)

    def fields(self) -> dict:
        """indptr, indices, data and the shape (int64) -- what a file stores.

        ``data`` is the stored values: the array, or the values format, which a
        model file stores as the part ``data`` (refcomp.io.model_file).
        """
        return {"indptr": self.indptr, "indices": self.indices, "data": self.values,
                "shape": np.asarray(self.shape, np.int64)}

    @classmethod
    def from_fields(cls, fields: dict) -> "CSRMatrix":
        """Inverse of :meth:`fields`, with the constructor's validation; FileFormatError otherwise.

        The pattern is checked before the values are decoded (the only new array).
        """
        check_field_names(fields, {"indptr", "indices", "data", "shape"})
        shape = np.asarray(fields["shape"])
        if shape.dtype != np.int64 or shape.shape != (2,):
            raise FileFormatError(f"fields['shape']: expected 2 int64 values, got {shape.dtype} {shape.shape}")
        try:
            return cls(fields["indptr"], fields["indices"], fields["data"], tuple(shape.tolist()))
        except ValidationError as exc:
            raise FileFormatError(f"fields: {exc}") from None

    def __repr__(self) -> str:
        if isinstance(self.values, WeightFormat):
            return f"CSRMatrix(shape={self.shape}, nnz={self.nnz}, values={self.values!r})"
        return f"CSRMatrix(shape={self.shape}, nnz={self.nnz}, dtype={self.data.dtype})"

    # -------------------------------------------------------------- products
    def dot(self, X, *, backend="auto") -> np.ndarray:
        """Y = W @ X for dense X of shape (cols, n) (or (cols,)): refcomp.ops.csr_matmul."""
        return csr_matmul(self, X, backend=backend)

    __matmul__ = dot

    def matmul(self, x) -> np.ndarray:
        """``x @ W.T`` (WeightFormat contract): refcomp.ops.sparse_linear without bias.

        With a values format, W is the decoded matrix (float semantics); int8
        ``data`` is an integer weight and x its int8 / uint8 input (:meth:`matmul_integer`).
        """
        if self.data.dtype == np.int8:
            return sparse_linear_integer(x, self)
        return sparse_linear(x, self)

    def matmul_integer(self, q_x, *, x_zero_point=0, bias=None, backend="auto") -> np.ndarray:
        """Exact int32 ``acc = (q_x - x_zero_point) @ Q_w.T + bias`` on the int8 weight codes Q_w (eq. S3).

        q_x : int8 | uint8 (batch, cols) or (cols,); x_zero_point : scalar in q_x's range;
        bias : optional int32 (rows,). Q_w is the int8 ``data``, or the codes of
        an int8 QTensor ``values`` with one scale s_w and zero point 0, whose
        dequantized product is then ``s_x · s_w · acc`` (module docstring).
        Runs refcomp.ops.sparse_linear_integer on a CSR of the codes that
        shares this pattern; int32 (batch, rows) (or (rows,)).
        """
        return sparse_linear_integer(q_x, self._integer_codes(), bias, x_zero_point=x_zero_point, backend=backend)

    def _integer_codes(self) -> "CSRMatrix":
        """This matrix with its int8 codes as ``data`` (made once), or DTypeError / ValidationError."""
        if self.data.dtype == np.int8:
            return self
        v = self.values
        if not isinstance(v, QTensor) or v.qparams.dtype.name != "int8":
            what = type(v).__name__ if isinstance(v, WeightFormat) else f"{self.data.dtype} values"
            raise DTypeError("W.data", "int8 values or an int8 QTensor for the integer product", what)
        qp = v.qparams
        if not qp.per_tensor or np.any(qp.zero_point.astype(np.int64) != 0):
            # the op applies one scale after the sum and has no weight zero point (eq. S3)
            raise ValidationError("W.data", "an int8 QTensor with one scale and zero point 0 (symmetric)",
                                  f"{qp.granularity}, zero point {qp.zero_point.ravel()[:3].tolist()}")
        codes = self.__dict__.get("_codes")
        if codes is None:
            codes = self.__dict__["_codes"] = self.with_values(v.data)
        return codes
