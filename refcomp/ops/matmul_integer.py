"""MatMulInteger: integer matrix product with zero points, exact (ONNX MatMulInteger-10).

Source: ONNX operator spec, MatMulInteger (opset 10, the only version).

Definition
----------
::

    Y[..., m, n] = sum_k (A[..., m, k] - a_zp[m]) * (B[..., k, n] - b_zp[n])     (eq. M1)

A: uint8 | int8, shape [..., M, K] (or [K]); B: uint8 | int8, shape [..., K, N]
(or [K]). Batch dimensions broadcast as in numpy.matmul; a 1-D A is a row
vector and a 1-D B a column vector whose unit dimension is dropped from Y.
a_zero_point has A's dtype and is a scalar (per tensor), an [M] vector (per row)
or an N-D tensor of shape [..., M, 1]; b_zero_point has B's dtype and is a
scalar, an [N] vector (per column) or [..., 1, N]. Y is int32.

Accumulator and overflow: every term of eq. M1 is computed exactly in int64
(|term| <= 255 * 255, so 2**47 terms fit). ONNX declares Y int32; an exact
result outside int32 raises OverflowRiskError instead of wrapping.

Fast kernels: a registered "matmul_integer" kernel is called only when
``K * max|A - a_zp| * max|B - b_zp| <= 2**31 - 1``: then every partial sum
fits int32, whatever the order of summation, and the kernel must be exact.

Packed weight: when one B multiplies many A (a layer's weight), :func:`pack_weight`
makes a :class:`PackedWeight` once; ``matmul_integer(A, packed, a_zero_point)``
then gives the same integers as ``matmul_integer(A, B, a_zero_point,
b_zero_point)`` without re-validating B, rescanning it for the overflow
precondition, or (C, Numba) re-packing it into the kernel's layout per call.

numerics="x86_u8s8_int16_saturating" is NOT the ONNX definition: it emulates
x86 GEMM kernels built on ``vpmaddubsw`` (u8 x s8 -> adjacent pairs summed
with int16 saturation), the AVX2 / AVX-512BW (no VNNI) path of onnxruntime's
MLAS, so that a test can predict what such a runtime returns. See
:func:`_x86_u8s8_int16_saturating` and docs/deviations.md.
"""

from __future__ import annotations

import numpy as np

from .. import backend as _backend
from .._frozen import frozen
from ..checks import dtype_in, numeric_array
from ..errors import DTypeError, OverflowRiskError, ShapeError, ValidationError

__all__ = ["matmul_integer", "pack_weight", "PackedWeight", "NUMERICS"]

NUMERICS = ("exact", "x86_u8s8_int16_saturating")
_INT8_TYPES = (np.uint8, np.int8)
_INT32_MAX = 2**31 - 1
_INT16_MIN, _INT16_MAX = -(2**15), 2**15 - 1


class PackedWeight:
    """B of eq. M1 with its zero point, prepared once for many products (see :func:`pack_weight`).

    Attributes
    ----------
    B : uint8 | int8 array [K, N], read-only (what the NumPy definition multiplies).
    b_zero_point : None or B's dtype, scalar or [N], read-only (as given to :func:`pack_weight`).
    max_deviation : int, max |B - b_zero_point| over all of B: the B factor of the
        fast kernels' precondition ``K * max|A - a_zp| * max|B - b_zp| <= 2**31 - 1``.
    shape, dtype : B's.

    The kernels' packed forms are made on first use, one per backend, and
    cached in the object; they are a cache, never part of its value: copies
    and pickles drop them (a cffi handle to C memory can be neither copied
    nor pickled) and they are rebuilt on the next product.
    """

    def __init__(self, B, b_zero_point=None):
        B = numeric_array(B, "B")
        dtype_in(B, "B", _INT8_TYPES)
        if B.ndim != 2:
            raise ShapeError("B", "a 2-D weight [K, N]", f"shape {B.shape}")
        K, N = B.shape
        self._bzp = _zero_point(b_zero_point, "b_zero_point", B, N, "column", False)
        if self._bzp.ndim != 2:  # [..., 1, N] with batch dimensions: not a weight's zero point
            raise ShapeError("b_zero_point", f"a scalar, [{N}] or [1, {N}]", f"shape {np.shape(b_zero_point)}")
        # a private read-only copy: the packed forms are made from it later, so it must not change under them
        # (refcomp._frozen: NumPy refuses to make it writeable again)
        self.B = frozen(B)
        self.b_zero_point = None if b_zero_point is None else frozen(b_zero_point, B.dtype)
        self.max_deviation = _max_deviation(self.B, self._bzp, -2) if K and N else 0
        # the zero point as the kernels take it (int32 [N]), made once
        self._b_zp_int32 = frozen(np.broadcast_to(self._bzp, (1, N))[0], np.int32)
        self._packed = {}  # backend name -> that backend's packed B (or the plain B if it has none)

    @property
    def shape(self) -> tuple:
        return self.B.shape

    @property
    def dtype(self) -> np.dtype:
        return self.B.dtype

    def packed_for(self, backend: str):
        """B in the layout of ``backend``'s "matmul_integer" kernel: its "pack_b" of B, made once, or B itself."""
        p = self._packed.get(backend)
        if p is None:
            pack = _backend.lookup("pack_b", backend)
            # a backend without "pack_b" takes the plain array; a race here only packs twice
            p = self._packed[backend] = self.B if pack is None else pack(self.B)
        return p

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_packed"] = {}  # the cache, not the value (see the class docstring)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        for k in ("B", "b_zero_point", "_b_zp_int32"):  # a deep copy's arrays come back writeable
            if self.__dict__[k] is not None:
                self.__dict__[k] = frozen(self.__dict__[k])

    def __repr__(self) -> str:
        zp = "None" if self.b_zero_point is None else f"{self.b_zero_point.shape or 'scalar'}"
        return f"PackedWeight(shape={self.shape}, dtype={self.dtype}, b_zero_point={zp})"


def pack_weight(B, b_zero_point=None) -> PackedWeight:
    """B [K, N] and its zero point, validated and prepared once for ``matmul_integer(A, packed, a_zero_point)``.

    Parameters
    ----------
    B : uint8 | int8 array [K, N] (2-D: a weight; batched B is not packed).
    b_zero_point : optional, B's dtype; scalar, [N] (per column) or [1, N].

    Returns
    -------
    PackedWeight holding a read-only copy of B, its zero point and
    max |B - b_zero_point| (so the fast kernels' int32 precondition, eq. M1's
    "Fast kernels" paragraph, costs no scan of B per call). The C / Numba
    kernels' packed layouts are made lazily, on the first product with each
    backend. ``matmul_integer(A, pack_weight(B, zb), za)`` equals
    ``matmul_integer(A, B, za, zb)`` bit for bit on every backend.

    Raises
    ------
    DTypeError for B not uint8/int8 or a zero point not of B's dtype;
    ShapeError for B not 2-D or a zero point of the wrong shape.
    """
    return PackedWeight(B, b_zero_point)


def matmul_integer(A, B, a_zero_point=None, b_zero_point=None, *, numerics="exact", backend="auto"):
    """ONNX MatMulInteger: Y = (A - a_zero_point) @ (B - b_zero_point), exact, int32 output.

    Parameters
    ----------
    A : uint8 | int8 array [..., M, K] or [K].
    B : uint8 | int8 array [..., K, N] or [K]; or a :class:`PackedWeight` (B [K, N]
        with its zero point, from :func:`pack_weight`).
    a_zero_point : optional, A's dtype; scalar, [M] (per row) or [..., M, 1].
    b_zero_point : optional, B's dtype; scalar, [N] (per column) or [..., 1, N].
        Must be None when B is a PackedWeight (its zero point is packed with it).
    numerics : "exact" (ONNX, eq. M1) or "x86_u8s8_int16_saturating"
        (emulation of a vpmaddubsw kernel, u8 A x s8 B only; not ONNX).
    backend : "auto" | "numpy" | "numba" | "c".

    Returns
    -------
    int32 array of shape broadcast(A.shape[:-2], B.shape[:-2]) + [M, N]
    (the M / N dimension dropped for a 1-D A / B).

    Raises
    ------
    DTypeError for dtypes other than uint8/int8 or a zero point whose dtype is
    not its operand's; ShapeError for mismatched K or zero-point shapes;
    OverflowRiskError when an exact result does not fit int32; ValidationError
    naming b_zero_point when one is given with a PackedWeight.
    """
    packed = B if isinstance(B, PackedWeight) else None
    if packed is not None:
        if b_zero_point is not None:
            raise ValidationError("b_zero_point", "None when B is a PackedWeight (its zero point is packed with it)",
                                  f"a zero point of shape {np.shape(b_zero_point)}")
        B = packed.B
    A = numeric_array(A, "A")
    B = numeric_array(B, "B")
    dtype_in(A, "A", _INT8_TYPES)
    dtype_in(B, "B", _INT8_TYPES)
    if numerics not in NUMERICS:
        raise ValidationError("numerics", f"one of {NUMERICS}", repr(numerics))
    if A.ndim == 0 or B.ndim == 0:
        raise ShapeError("A" if A.ndim == 0 else "B", "an array with at least 1 dimension", "a scalar")

    # 1-D operands become matrices; the unit dimension is dropped at the end (numpy.matmul rule).
    squeeze_m, squeeze_n = A.ndim == 1, B.ndim == 1
    A2 = A[None, :] if squeeze_m else A
    B2 = B[:, None] if squeeze_n else B
    M, K = A2.shape[-2:]
    if B2.shape[-2] != K:
        raise ShapeError("B", f"shape [..., {K}, N] (K = A.shape[-1] = {K})", f"shape {B.shape}")
    try:
        batch = np.broadcast_shapes(A2.shape[:-2], B2.shape[:-2])
    except ValueError:
        raise ShapeError("B", f"batch dimensions broadcastable with A's {A.shape[:-2]}", f"{B.shape[:-2]}") from None
    N = B2.shape[-1]

    azp = _zero_point(a_zero_point, "a_zero_point", A, M, "row", squeeze_m)
    bzp = packed._bzp if packed is not None else _zero_point(b_zero_point, "b_zero_point", B, N, "column", squeeze_n)

    if numerics == "x86_u8s8_int16_saturating":
        if A.dtype != np.uint8 or B.dtype != np.int8:
            raise DTypeError("A, B", "uint8 A and int8 B for numerics='x86_u8s8_int16_saturating'",
                             f"{A.dtype} A and {B.dtype} B")
        y = _x86_u8s8_int16_saturating(A2, B2, azp, bzp)
    else:
        y = _exact(A2, B2, azp, bzp, batch, backend, packed)

    if squeeze_n:
        y = y[..., 0]
    if squeeze_m:
        y = y[..., 0, :] if not squeeze_n else y[..., 0]
    return y


def _zero_point(zp, name, X, length, what, operand_is_1d):
    """Zero point as an int64 array broadcastable against X's matrix form: [..., length, 1] for A, [..., 1, length] for B."""
    is_a = name == "a_zero_point"
    if zp is None:
        return np.zeros((1, 1), np.int64)
    z = numeric_array(zp, name)
    if z.dtype != X.dtype:
        raise DTypeError(name, f"dtype {X.dtype} (the dtype of {'A' if is_a else 'B'})", f"dtype {z.dtype}")
    z = z.astype(np.int64)
    if z.size == 1 and z.ndim <= 1:
        return z.reshape(1, 1)
    if z.ndim == 1:
        if z.shape[0] != length:
            raise ShapeError(name, f"a scalar or a per-{what} vector of length {length}", f"shape {z.shape}")
        return z.reshape(length, 1) if is_a else z.reshape(1, length)
    # N-D: [..., M, 1] for A, [..., 1, N] for B (ONNX spec).
    want = (length, 1) if is_a else (1, length)
    if operand_is_1d or z.shape[-2:] != want:
        raise ShapeError(name, f"a scalar, [{length}] or [..., {want[0]}, {want[1]}]", f"shape {z.shape}")
    return z


def _max_deviation(X, zp, axis):
    """max |X - zp| over all elements, from per-row/column extremes (no int64 copy of X)."""
    hi = X.max(axis=axis, keepdims=True).astype(np.int64)
    lo = X.min(axis=axis, keepdims=True).astype(np.int64)
    return int(np.maximum(np.abs(hi - zp), np.abs(lo - zp)).max())


def _exact(A, B, azp, bzp, batch, backend, packed=None):
    K = A.shape[-1]
    M, N = A.shape[-2], B.shape[-1]
    if 0 in (M, N) or any(d == 0 for d in batch):
        return np.zeros(batch + (M, N), np.int32)

    if packed is None:
        name, fast = None, _backend.implementation("matmul_integer", backend)
    else:
        name, fast = _backend.resolve("matmul_integer", backend)
    if fast is not None and K > 0 and azp.ndim == 2 and bzp.ndim == 2:
        # An 8-bit operand minus a zero point of its own dtype lies in [-255, 255], so for
        # K <= 33025 the bound holds for every input; only larger K needs a look at the data
        # (for a packed B, its half was taken once by pack_weight).
        if K * 255 * 255 <= _INT32_MAX or K * _max_deviation(A, azp, -1) * (
                packed.max_deviation if packed is not None else _max_deviation(B, bzp, -2)) <= _INT32_MAX:
            if packed is not None:
                return _call_fast(fast, A, packed.packed_for(name), azp, packed._b_zp_int32, batch, N)
            return _call_fast(fast, A, B, azp, bzp, batch, N)

    Ac = A.astype(np.int64) - azp
    Bc = B.astype(np.int64) - bzp
    y = np.matmul(Ac, Bc)  # eq. M1 in int64: exact
    if y.size and (y.min() < -_INT32_MAX - 1 or y.max() > _INT32_MAX):
        bad = int(y.max()) if y.max() > _INT32_MAX else int(y.min())
        raise OverflowRiskError("Y", "an exact result that fits int32 (the ONNX output type)", f"{bad}")
    return y.astype(np.int32)


def _call_fast(fast, A, B, azp, bzp, batch, N):
    """The kernel on each [M, K] x [K, N] matrix of the batch; B is an array or a backend's packed B [K, N]
    (then not batched), bzp an int64 [1, N] / [1, 1] or, for a packed B, already int32 [N]."""
    M, K = A.shape[-2:]
    plain = isinstance(B, np.ndarray)
    a_zp = np.ascontiguousarray(np.broadcast_to(azp, (M, 1))[:, 0], dtype=np.int32)
    b_zp = np.ascontiguousarray(np.broadcast_to(bzp, (1, N))[0], dtype=np.int32) if bzp.ndim == 2 else bzp
    if plain:
        B = np.ascontiguousarray(B)
    if not batch:
        return fast(np.ascontiguousarray(A), B, a_zp, b_zp)
    Ab = np.broadcast_to(A, batch + (M, K))
    Bb = np.broadcast_to(B, batch + (K, N)) if plain else None
    out = np.empty(batch + (M, N), np.int32)
    for idx in np.ndindex(*batch):
        out[idx] = fast(np.ascontiguousarray(Ab[idx]), np.ascontiguousarray(Bb[idx]) if plain else B, a_zp, b_zp)
    return out


def _x86_u8s8_int16_saturating(A, B, azp, bzp):
    """What a ``vpmaddubsw`` u8 x s8 GEMM kernel returns (onnxruntime MLAS, x86 without VNNI).

    The kernel multiplies the *raw* bytes (zero points are not subtracted first)::

        P[m, n] = sum_i sat16( A[m, 2i] * B[2i, n] + A[m, 2i+1] * B[2i+1, n] )   (eq. M2)

    ``vpmaddubsw`` forms the two products of adjacent k (2i, 2i+1) exactly
    (|u8 * s8| <= 32640) and adds them with signed 16-bit saturation (sat16 clips
    to [-32768, 32767]); the pair sums are then widened and added in int32
    (``vpmaddwd`` with ones, ``vpaddd``) without saturation. K is zero-padded to
    a multiple of 4, which adds 0 pairs. The zero points are applied afterwards,
    exactly, from row sums of A and column sums of B::

        Y = P - a_zp * colsum(B) - b_zp * rowsum(A) + K * a_zp * b_zp          (eq. M3)

    Source: onnxruntime MLAS, x86_64/QgemmU8X8KernelAvx2.S (macro
    MultiplyAccumulateRowU8S8Avx2: vpbroadcastd of 4 bytes of A, vpmaddubsw
    against packed B, vpmaddwd with 1s, vpaddd into accumulators that start
    from the row / column sums) and QgemvU8S8KernelAvx2.S (the M = 1 path,
    same pairing, the K remainder zero-padded).

    Without saturating pairs eq. M2 + M3 equals eq. M1. A pair saturates only
    when both bytes of A are large and both weights share a sign, e.g.
    A = 255, B = -128 for every k: pair = -65280 -> -32768, so K = 64 gives
    32 * -32768 = -1048576 instead of -2088960.
    int32 wrap-around of the final sum is reproduced with two's complement.
    """
    a = A.astype(np.int64)
    b = B.astype(np.int64)
    K = a.shape[-1]
    if K % 2:  # a trailing lone k pairs with a zero-padded k
        a = np.concatenate([a, np.zeros(a.shape[:-1] + (1,), np.int64)], axis=-1)
        b = np.concatenate([b, np.zeros(b.shape[:-2] + (1,) + b.shape[-1:], np.int64)], axis=-2)
    # products[..., m, k, n]; pairs (2i, 2i+1) summed then saturated to int16
    prod = a[..., :, :, None] * b[..., None, :, :]
    pairs = prod[..., 0::2, :] + prod[..., 1::2, :]
    p = np.clip(pairs, _INT16_MIN, _INT16_MAX).sum(axis=-2)
    rowsum_a = A.astype(np.int64).sum(axis=-1, keepdims=True)  # [..., M, 1]
    colsum_b = B.astype(np.int64).sum(axis=-2, keepdims=True)  # [..., 1, N]
    y = p - azp * colsum_b - bzp * rowsum_a + K * azp * bzp
    return ((y + 2**31) % 2**32 - 2**31).astype(np.int32)
