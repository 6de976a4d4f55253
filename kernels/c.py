"""cffi wrappers of the C library (backend="c").

Each wrapper validates dtypes and shapes and makes its operands C-contiguous
and aligned for their dtype (:func:`_c_array`) BEFORE the C function runs (C
trusts its arguments), reads the ISA path and
the thread count at call time, and calls the library with the GIL released
(cffi API mode does that for every call). The numeric contracts are in
csrc/refcomp.h; the NumPy definitions they must equal are in refcomp.ops.

ISA path: the ``isa`` argument, else the environment variable REFCOMP_ISA
(``auto`` | ``scalar`` | ``avx2`` | ``avx512vnni``), read on every call so a
test can force each path; an unsupported path raises BackendUnavailableError.
"""

from __future__ import annotations

import os

import numpy as np

from .. import backend as _backend
from ..errors import BackendUnavailableError, DTypeError, ShapeError, ValidationError
from ..ops.csr_matmul import kernel_index_dtype
from ._crefcomp import ffi, lib

__all__ = [
    "ISAS",
    "isa_supported",
    "supported_isas",
    "best_isa",
    "matmul_integer",
    "PackedB",
    "requantize_float",
    "requantize_fixed_point",
    "csr_spmm_f32",
    "csr_spmm_i8",
    "csr_linear_f32",
    "aligned_array",
    "gelu",
    "dynamic_quantize_rows",
    "binary_matmul",
]

ISAS = {"auto": 0, "scalar": 1, "avx2": 2, "avx512vnni": 3}
_STATUS = {-1: "invalid argument", -2: "out of memory", -3: "ISA path not supported", -4: "thread error"}


def isa_supported(isa: str) -> bool:
    return isa in ISAS and bool(lib.refcomp_isa_supported(ISAS[isa]))


def supported_isas() -> list[str]:
    """The ISA paths that run on this CPU, e.g. ['scalar', 'avx2', 'avx512vnni']."""
    return [name for name in ("scalar", "avx2", "avx512vnni") if isa_supported(name)]


def best_isa() -> str:
    return ffi.string(lib.refcomp_isa_name(lib.refcomp_isa_best())).decode()


def _isa_code(isa: str | None) -> int:
    name = isa if isa is not None else os.environ.get("REFCOMP_ISA", "auto").strip().lower() or "auto"
    if name not in ISAS:
        raise ValidationError("isa (or REFCOMP_ISA)", f"one of {tuple(ISAS)}", repr(name))
    if not lib.refcomp_isa_supported(ISAS[name]):
        raise BackendUnavailableError(f"ISA path {name!r} is not supported on this CPU (supported: {supported_isas()})")
    return ISAS[name]


def _threads(threads: int | None) -> int:
    return _backend.get_num_threads() if threads is None else int(threads)


def _check(status: int, what: str) -> None:
    if status != 0:  # the wrappers validate first, so this is a bug, not bad input
        raise RuntimeError(f"refcomp C library: {what} returned {status} ({_STATUS.get(status, 'unknown')})")


def _c_array(a, dtype=None) -> np.ndarray:
    """``a`` C-contiguous and aligned for its dtype, copied only when it is not already.

    np.ascontiguousarray is not enough: a C-contiguous array may start at any
    byte (np.frombuffer(buf, offset=1), a field of a packed record), and C
    reads int16 / int32 / int64 / float elements through typed pointers, where
    a misaligned load is undefined behaviour (UBSan flags it; some CPUs trap).
    """
    return np.require(a, dtype=dtype, requirements=("C", "A"))


def _ptr(ctype: str, a: np.ndarray):
    return ffi.cast(ctype, ffi.from_buffer(a))


def _int8_matrix(x, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype not in (np.uint8, np.int8):
        raise DTypeError(name, "dtype uint8 or int8", f"dtype {a.dtype}")
    if a.ndim != 2:
        raise ShapeError(name, "a 2-D array", f"shape {a.shape}")
    return _c_array(a)


def _vector(x, name: str, n: int, dtype) -> np.ndarray | None:
    if x is None:
        return None
    v = np.asarray(x)
    if v.dtype.kind not in "iu" and np.dtype(dtype).kind in "iu":
        raise DTypeError(name, "an integer array", f"dtype {v.dtype}")
    if v.ndim == 0 or v.size == 1:
        v = np.broadcast_to(v.reshape(()), (n,))
    if v.shape != (n,):
        raise ShapeError(name, f"a scalar or a vector of length {n}", f"shape {v.shape}")
    if np.dtype(dtype).kind in "iu" and v.size and (v.min() < -(2**31) or v.max() > 2**31 - 1):
        raise ValidationError(name, "values in int32 range", f"range [{v.min()}, {v.max()}]")
    return _c_array(v, dtype=dtype)


def _opt(ctype: str, a: np.ndarray | None):
    return ffi.NULL if a is None else _ptr(ctype, a)


def matmul_integer(a, b, a_zero_point=None, b_zero_point=None, bias=None, *, isa=None, threads=None):
    """C = (a - a_zero_point[:, None]) @ (b - b_zero_point[None, :]) + bias, int32, mod 2**32.

    a: uint8|int8 [M, K]; b: int8|uint8 [K, N] or a :class:`PackedB`;
    zero points int32 (scalar, [M] / [N]); bias int32 [N] or None.
    Exact whenever the exact result fits int32 (refcomp.ops.matmul_integer
    only calls it when ``K * max|a - za| * max|b - zb| <= 2**31 - 1``).
    """
    a = _int8_matrix(a, "a")
    M, K = a.shape
    packed = isinstance(b, PackedB)
    if packed:
        Kb, N = b.shape
    else:
        b = _int8_matrix(b, "b")
        Kb, N = b.shape
    if Kb != K:
        raise ShapeError("b", f"{K} rows (a has K = {K} columns)", f"{Kb} rows")
    za = _vector(a_zero_point, "a_zero_point", M, np.int32)
    zb = _vector(b_zero_point, "b_zero_point", N, np.int32)
    bi = _vector(bias, "bias", N, np.int32)
    isa_code = _isa_code(isa)
    c = np.empty((M, N), np.int32)
    if M == 0 or N == 0:
        return c
    a_signed = int(a.dtype == np.int8)
    if packed:
        st = lib.refcomp_matmul_integer_packed(
            isa_code, _threads(threads), M, ffi.from_buffer(a), K, a_signed, _opt("int32_t *", za),
            b._ptr, _opt("int32_t *", zb), _opt("int32_t *", bi), _ptr("int32_t *", c), N)
    else:
        st = lib.refcomp_matmul_integer(
            isa_code, _threads(threads), M, K, N, ffi.from_buffer(a), K, a_signed, _opt("int32_t *", za),
            ffi.from_buffer(b), N, int(b.dtype == np.int8), _opt("int32_t *", zb), _opt("int32_t *", bi),
            _ptr("int32_t *", c), N)
    _check(st, "refcomp_matmul_integer")
    return c


class PackedB:
    """A weight B [K, N] (int8 or uint8) packed once for :func:`matmul_integer` (csrc refcomp_pack_b).

    Holds the packed bytes and column sums in C memory, freed with the object.
    """

    def __init__(self, b):
        b = _int8_matrix(b, "b")
        self.shape = b.shape
        self.dtype = b.dtype
        out = ffi.new("refcomp_packed_b **")
        _check(lib.refcomp_pack_b(b.shape[0], b.shape[1], ffi.from_buffer(b), b.shape[1],
                                  int(b.dtype == np.int8), out), "refcomp_pack_b")
        self._ptr = ffi.gc(out[0], lib.refcomp_packed_b_free)


def _acc_matrix(acc) -> np.ndarray:
    a = np.asarray(acc)
    if a.dtype != np.int32:
        raise DTypeError("acc", "dtype int32", f"dtype {a.dtype}")
    if a.ndim != 2:
        raise ShapeError("acc", "a 2-D array", f"shape {a.shape}")
    return _c_array(a)


def _bounds(qmin, qmax):
    qmin, qmax = int(qmin), int(qmax)
    if not (-(2**31) <= qmin <= qmax <= 2**31 - 1):
        raise ValidationError("qmin, qmax", "int32 values with qmin <= qmax", f"{qmin}, {qmax}")
    return qmin, qmax


def _zp_fits(zp, qmin, qmax):
    if zp.size and (qmin - int(zp.max()) < -(2**31) or qmax - int(zp.min()) > 2**31 - 1):
        raise ValidationError("zero_point", "values with qmin - zp and qmax - zp inside int32", f"range [{zp.min()}, {zp.max()}]")


def requantize_float(acc, multiplier, zero_point, qmin, qmax, *, isa=None):
    """clip(rint_even(f32(acc) * multiplier[j]) + zero_point[j], qmin, qmax) -> int32 (refcomp.ops eq. R1)."""
    acc = _acc_matrix(acc)
    M, N = acc.shape
    m = _vector(multiplier, "multiplier", N, np.float32)
    if m is not None and not np.all(np.isfinite(m)):
        raise ValidationError("multiplier", "finite values", "a NaN or Inf")
    zp = _vector(zero_point, "zero_point", N, np.int32)
    qmin, qmax = _bounds(qmin, qmax)
    _zp_fits(zp, qmin, qmax)
    out = np.empty((M, N), np.int32)
    if acc.size:
        _check(lib.refcomp_requantize_float(_isa_code(isa), M, N, _ptr("int32_t *", acc), N, _ptr("float *", m),
                                            _ptr("int32_t *", zp), qmin, qmax, _ptr("int32_t *", out), N),
               "refcomp_requantize_float")
    return out


def requantize_fixed_point(acc, multiplier, shift, zero_point, qmin, qmax, *, isa=None):
    """clip(RDivPOT(SRDHM(acc * 2**max(s,0), m), max(-s,0)) + zp, qmin, qmax) -> int32 (refcomp.ops eq. R2).

    Left shifts (shift > 0) saturate acc * 2**shift to int32 here; refcomp.ops
    raises instead and only calls this kernel when every shift <= 0.
    """
    acc = _acc_matrix(acc)
    M, N = acc.shape
    m = _vector(multiplier, "multiplier", N, np.int32)
    s = _vector(shift, "shift", N, np.int32)
    if s.size and (s.min() < -31 or s.max() > 30):
        raise ValidationError("shift", "values in [-31, 30]", f"range [{s.min()}, {s.max()}]")
    zp = _vector(zero_point, "zero_point", N, np.int32)
    qmin, qmax = _bounds(qmin, qmax)
    out = np.empty((M, N), np.int32)
    if acc.size:
        _check(lib.refcomp_requantize_fixed_point(
            _isa_code(isa), M, N, _ptr("int32_t *", acc), N, _ptr("int32_t *", m), _ptr("int32_t *", s),
            _ptr("int32_t *", zp), qmin, qmax, _ptr("int32_t *", out), N), "refcomp_requantize_fixed_point")
    return out


def kernel_index_array(indices, cols: int) -> np.ndarray:
    """Column indices (values in [0, cols)) in the C kernels' index type
    (refcomp.ops.csr_matmul.kernel_index_dtype); no copy when they already are."""

    return _c_array(indices, dtype=kernel_index_dtype(cols))


def _index_type(indices: np.ndarray) -> int:
    return lib.REFCOMP_INDEX_U16 if indices.dtype == np.uint16 else lib.REFCOMP_INDEX_I32


def _csr_arrays(indptr, indices, data, rows: int, cols: int, data_dtype, validated: bool = False):
    """The CSR arrays as the C library wants them; checks what C relies on (refcomp.h precondition).

    ``validated=True`` (arrays taken from a CSRMatrix, which checked the O(nnz)
    invariants at construction and holds them read-only) keeps only the O(1) checks.
    Column indices come back in the kernels' type (:func:`kernel_index_array`),
    narrowed only after the range check, so no index can wrap into range.
    """
    indptr, indices = np.asarray(indptr), np.asarray(indices)
    for name, v in (("indptr", indptr), ("indices", indices)):
        if v.size and v.dtype.kind not in "iu":
            raise DTypeError(name, "an integer array", f"dtype {v.dtype}")
        if v.ndim != 1:
            raise ShapeError(name, "a 1-D array", f"shape {v.shape}")
    indptr = _c_array(indptr, dtype=np.int64)
    data = np.asarray(data)
    if data.dtype != data_dtype:
        raise DTypeError("data", f"dtype {np.dtype(data_dtype)}", f"dtype {data.dtype}")
    data = _c_array(data)
    if indptr.shape != (rows + 1,) or indptr[0] != 0 or indptr[-1] != indices.size or (
            not validated and np.any(np.diff(indptr) < 0)):
        raise ValidationError("indptr", f"{rows + 1} non-decreasing offsets from 0 to nnz = {indices.size}",
                              f"shape {indptr.shape}")
    if data.shape != indices.shape:
        raise ShapeError("data", f"shape {indices.shape} (as indices)", f"shape {data.shape}")
    if not validated and indices.size and (indices.min() < 0 or indices.max() >= cols):
        raise ValidationError("indices", f"column indices in [0, {cols})", f"range [{indices.min()}, {indices.max()}]")
    return indptr, kernel_index_array(indices, cols), data


def aligned_array(X, align: int = 64) -> np.ndarray:
    """X as a C-contiguous array starting on a 64-byte boundary; no copy when it already is one.

    The dense operand of :func:`csr_spmm_f32` is read one 64-byte vector at a
    time; unaligned, every load straddles two cache lines (measured ~25 %
    slower), so the wrapper copies an unaligned X first. Callers that reuse an
    X (or build it once) can pass ``aligned_array(X)`` and skip that copy.
    """
    X = np.asarray(X)
    if X.flags.c_contiguous and X.ctypes.data % align == 0:
        return X
    buf = np.empty(X.nbytes + align, np.uint8)
    off = (-buf.ctypes.data) % align
    out = buf[off:off + X.nbytes].view(X.dtype).reshape(X.shape)
    out[...] = X
    return out


def _blocks(blocks, rows: int):
    """(nblocks, block_ptr int64 [rows, nblocks + 1]) or (0, NULL); C re-checks that block_ptr partitions each row."""
    if blocks is None:
        return 0, ffi.NULL, None
    nb, bp = blocks
    bp = _c_array(bp, dtype=np.int64)
    if int(nb) < 1 or bp.shape != (rows, int(nb) + 1):
        raise ShapeError("blocks", f"(nblocks >= 1, block_ptr of shape ({rows}, nblocks + 1))", f"({nb}, {bp.shape})")
    return int(nb), _ptr("int64_t *", bp), bp


def csr_spmm_f32(indptr, indices, data, shape, X, *, isa=None, threads=None, validated=False, blocks=None):
    """Y = W @ X for a float32 CSR W of ``shape`` (rows, cols) and dense X [cols, n] -> float32 [rows, n].

    ``blocks``: optional (nblocks, block_ptr) from CSRMatrix.column_blocks: the
    column-blocked kernel, same bits, better reuse of X in cache.
    """
    rows, cols = shape
    indptr, indices, data = _csr_arrays(indptr, indices, data, rows, cols, np.float32, validated)
    X = np.asarray(X)
    if X.dtype != np.float32:
        raise DTypeError("X", "dtype float32", f"dtype {X.dtype}")
    if X.ndim != 2 or X.shape[0] != cols:
        raise ShapeError("X", f"shape ({cols}, n)", f"shape {X.shape}")
    X = aligned_array(X)
    n = X.shape[1]
    isa_code = _isa_code(isa)
    Y = np.empty((rows, n), np.float32)
    nb, bp_ptr, _keep = _blocks(blocks, rows)
    if rows and n and nb:
        st = lib.refcomp_csr_spmm_f32_blocked(isa_code, _threads(threads), rows, n, _ptr("int64_t *", indptr),
                                              ffi.from_buffer(indices), _index_type(indices), _ptr("float *", data), nb, bp_ptr,
                                              _ptr("float *", X), max(n, 1), _ptr("float *", Y), n)
        if st == -1:  # the only argument C checks that Python does not: the partition
            raise ValidationError("blocks", "block_ptr rows running from indptr[r] to indptr[r+1], non-decreasing",
                                  "a block_ptr that does not partition every row")
        _check(st, "refcomp_csr_spmm_f32_blocked")
    elif rows and n:
        _check(lib.refcomp_csr_spmm_f32(isa_code, _threads(threads), rows, n, _ptr("int64_t *", indptr),
                                        ffi.from_buffer(indices), _index_type(indices), _ptr("float *", data),
                                        _ptr("float *", X), max(n, 1), _ptr("float *", Y), n),
               "refcomp_csr_spmm_f32")
    return Y


def csr_spmm_i8(indptr, indices, data, shape, X, *, isa=None, threads=None, validated=False):
    """Y = W @ X for an int8 CSR W and an int16 X [cols, n] -> int32 [rows, n], modulo 2**32."""
    rows, cols = shape
    indptr, indices, data = _csr_arrays(indptr, indices, data, rows, cols, np.int8, validated)
    X = np.asarray(X)
    if X.dtype != np.int16:
        raise DTypeError("X", "dtype int16", f"dtype {X.dtype}")
    if X.ndim != 2 or X.shape[0] != cols:
        raise ShapeError("X", f"shape ({cols}, n)", f"shape {X.shape}")
    X = _c_array(X)
    n = X.shape[1]
    isa_code = _isa_code(isa)
    Y = np.empty((rows, n), np.int32)
    if rows and n:
        _check(lib.refcomp_csr_spmm_i8(isa_code, _threads(threads), rows, n, _ptr("int64_t *", indptr),
                                       ffi.from_buffer(indices), _index_type(indices), _ptr("int8_t *", data),
                                       _ptr("int16_t *", X), max(n, 1), _ptr("int32_t *", Y), n),
               "refcomp_csr_spmm_i8")
    return Y


def csr_linear_f32(indptr, indices, data, shape, x, bias=None, *, isa=None, threads=None, validated=False,
                   blocks=None):
    """y = x @ W.T + bias for a float32 CSR W of ``shape`` (out, in), x float32 [batch, in] -> [batch, out].

    The transposes happen in C (aligned scratch); same bits as csr_spmm_f32 on x.T plus one add.
    """
    rows, cols = shape
    indptr, indices, data = _csr_arrays(indptr, indices, data, rows, cols, np.float32, validated)
    x = np.asarray(x)
    if x.dtype != np.float32:
        raise DTypeError("x", "dtype float32", f"dtype {x.dtype}")
    if x.ndim != 2 or x.shape[1] != cols:
        raise ShapeError("x", f"shape (batch, {cols})", f"shape {x.shape}")
    x = _c_array(x)
    b = None
    if bias is not None:
        b = np.asarray(bias)
        if b.dtype != np.float32 or b.shape != (rows,):
            raise ValidationError("bias", f"float32 of shape ({rows},)", f"{b.dtype} {b.shape}")
        b = _c_array(b)
    batch = x.shape[0]
    isa_code = _isa_code(isa)
    nb, bp_ptr, _keep = _blocks(blocks, rows)
    y = np.empty((batch, rows), np.float32)
    if batch and rows:
        _check(lib.refcomp_csr_linear_f32(isa_code, _threads(threads), batch, cols, rows, _ptr("int64_t *", indptr),
                                          ffi.from_buffer(indices), _index_type(indices), _ptr("float *", data), nb, bp_ptr,
                                          _ptr("float *", x),
                                          max(cols, 1), _opt("float *", b), _ptr("float *", y), rows),
               "refcomp_csr_linear_f32")
    return y


def gelu(x, *, isa=None, threads=None):
    """y = x·Φ(x) on float32 x of any shape (refcomp.ops.gelu, approximate="none"), within eq. G2 of it.

    csrc/gelu.c: the definition's float32 steps with a polynomial erf; see refcomp.h for the bound.
    """
    x = np.asarray(x)
    if x.dtype != np.float32:
        raise DTypeError("x", "dtype float32", f"dtype {x.dtype}")
    xc = _c_array(x)
    isa_code = _isa_code(isa)
    y = np.empty(x.shape, np.float32)
    if y.size:
        _check(lib.refcomp_gelu_f32(isa_code, _threads(threads), y.size, _ptr("float *", xc), _ptr("float *", y)),
               "refcomp_gelu_f32")
    return y


def dynamic_quantize_rows(x, *, isa=None, threads=None):
    """refcomp.ops.dynamic_quantize_rows of float32 x (M, K), K >= 1: (y uint8 (M, K), scale float32 (M,),
    zero point uint8 (M,)), bit for bit the NumPy definition (csrc/dynamic_quantize.c).

    Precondition (refcomp.ops checks it, this wrapper does not): every x finite.
    """
    x = np.asarray(x)
    if x.dtype != np.float32:
        raise DTypeError("x", "dtype float32", f"dtype {x.dtype}")
    if x.ndim != 2 or x.shape[1] == 0:
        raise ShapeError("x", "a (M, K) matrix with K >= 1", f"shape {x.shape}")
    xc = np.ascontiguousarray(x)
    isa_code = _isa_code(isa)
    M, K = xc.shape
    y = np.empty((M, K), np.uint8)
    scale = np.empty(M, np.float32)
    zp = np.empty(M, np.uint8)
    if M:
        _check(lib.refcomp_dynamic_quantize_rows_f32(isa_code, _threads(threads), M, K, _ptr("float *", xc), K,
                                                     _ptr("uint8_t *", y), K, _ptr("float *", scale),
                                                     _ptr("uint8_t *", zp)),
               "refcomp_dynamic_quantize_rows_f32")
    return y, scale, zp


def binary_matmul(a, b, k, *, isa=None, threads=None):
    """refcomp.ops.binary_matmul: packed ±1 rows a uint64 (M, W), b uint64 (N, W) → int32 (M, N), eq. B1.

    Precondition (refcomp.ops checks it, this wrapper does not): W = ceil(k/64), pad bits zero.
    """
    a, b = _c_array(np.asarray(a), np.uint64), _c_array(np.asarray(b), np.uint64)
    for name, v in (("a", a), ("b", b)):
        if v.ndim != 2 or v.shape[1] != -(-int(k) // 64):
            raise ShapeError(name, f"a (rows, ceil(k/64)) uint64 array for k = {k}", f"shape {v.shape}")
    isa_code = _isa_code(isa)
    M, W = a.shape
    N = b.shape[0]
    c = np.empty((M, N), np.int32)
    if M and N:
        _check(lib.refcomp_binary_matmul(isa_code, _threads(threads), M, N, int(k), _ptr("uint64_t *", a), W,
                                         _ptr("uint64_t *", b), W, _ptr("int32_t *", c), N),
               "refcomp_binary_matmul")
    return c
