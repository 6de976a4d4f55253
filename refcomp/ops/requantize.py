"""Requantization: int32 accumulator -> quantized output, in float or in fixed point.

An integer GEMM / convolution leaves an int32 accumulator ``acc`` whose real
value is ``acc * s_a * s_b``; the output wants ``y = acc * M + z_y`` with the
real multiplier ``M = s_a * s_b / s_y`` (per tensor, or per output channel).
Two ways of computing it are in use:

``method="float"`` (ONNX QLinearMatMul / QLinearConv as onnxruntime runs them)::

    y = clip( round_half_even( f32(acc) *f32 M ) + z_y, qmin, qmax )          (eq. R1)

    every step in IEEE float32: f32(acc) rounds |acc| > 2**24 to 24 bits, the
    product is rounded to float32, then ties go to even. M itself is
    f32(f32(s_a * s_b) / s_y) (see :func:`real_multiplier`).
    Precision, measured against the two implementations that exist:
    onnxruntime (MLAS ``MlasRequantizeOutput``) computes exactly eq. R1;
    onnx.reference multiplies an int32 array by a float32 array, which NumPy
    promotes to float64, so it rounds the product once in float64 instead.
    The two differ by one unit when the float32 product lands on a tie that
    the float64 product does not (docs/deviations.md). refcomp follows
    onnxruntime because that is what deployed runtimes compute.

``method="fixed_point"`` (TFLite / gemmlowp, integer-only hardware)::

    (m, shift) = quantize_multiplier(M)        M ~= m * 2**(shift - 31)       (eq. R2)
    y = clip( RDivPOT( SRDHM(acc * 2**max(shift,0), m), max(-shift,0) ) + z_y, qmin, qmax )

    SRDHM = SaturatingRoundingDoublingHighMul (ties upward), RDivPOT =
    RoundingDivideByPOT (ties away from zero), both from gemmlowp fixedpoint.h.
    The result is within one unit of eq. R1 (tests/ops/test_requantize.py).

Sources: ONNX QLinearMatMul-21 / QLinearConv-10 specs; Jacob et al. 2018,
"Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-
Only Inference", section 2.2 (eq. 5-6); TFLite quantization_util.cc
(QuantizeMultiplier), gemmlowp fixedpoint/fixedpoint.h.
"""

from __future__ import annotations

import numpy as np

from .. import backend as _backend
from ..checks import normalize_axis, numeric_array
from ..errors import DTypeError, OverflowRiskError, ShapeError, ValidationError
from ..numerics.dtypes import qdtype
from . import _validate as v

__all__ = [
    "quantize_multiplier",
    "saturating_rounding_doubling_high_mul",
    "rounding_divide_by_pot",
    "multiply_by_quantized_multiplier",
    "real_multiplier",
    "requantize",
    "METHODS",
]

METHODS = ("float", "fixed_point")
_I32_MIN, _I32_MAX = -(2**31), 2**31 - 1


def quantize_multiplier(real_multiplier):
    """Real multiplier M > 0 -> (int32 m, int shift) with M ~= m * 2**(shift - 31)  (eq. R2).

    TFLite QuantizeMultiplier: frexp gives M = q * 2**shift with q in [0.5, 1);
    m = round_half_away(q * 2**31) in [2**30, 2**31]; m == 2**31 (q rounded up
    to 1) becomes 2**30 with shift + 1. A multiplier below 2**-32 (shift < -31)
    is flushed to m = 0, shift = 0. The relative error is at most 2**-31.

    Accepts a scalar or an array (per-channel); returns int32 arrays of the same
    shape (0-d for a scalar: use ``int(m)``).
    """
    M = np.asarray(real_multiplier, dtype=np.float64)
    if M.dtype.kind != "f" or not np.all(np.isfinite(M) & (M > 0)):
        raise ValidationError("real_multiplier", "finite values > 0", f"{np.asarray(real_multiplier)}")
    q, shift = np.frexp(M)  # M = q * 2**shift, 0.5 <= q < 1
    t = q * 2.0**31
    m = np.floor(t + 0.5).astype(np.int64)  # half away from zero (t > 0); t + 0.5 is exact here
    carry = m == 2**31
    m = np.where(carry, m // 2, m)
    shift = np.where(carry, shift + 1, shift).astype(np.int64)
    flush = shift < -31
    m = np.where(flush, 0, m)
    shift = np.where(flush, 0, shift)
    if np.any(shift > 30):
        raise ValidationError("real_multiplier", "values < 2**30 (shift <= 30)", f"max {M.max()}")
    return m.astype(np.int32), shift.astype(np.int32)


def saturating_rounding_doubling_high_mul(a, b):
    """gemmlowp SaturatingRoundingDoublingHighMul: round(a * b / 2**31) in int32.

    ``(a*b + nudge) / 2**31`` with C's truncating division, nudge = 2**30 for
    a*b >= 0 and 1 - 2**30 otherwise: round to nearest of a * b / 2**31 with
    ties upward (+0.5 -> 1, -0.5 -> 0, -1.5 -> -1). The only overflow,
    a = b = -2**31 (result +2**31), saturates to 2**31 - 1.
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    ab = a * b  # |ab| <= 2**62: exact in int64
    nudge = np.where(ab >= 0, 2**30, 1 - 2**30)
    s = ab + nudge
    q = np.sign(s) * (np.abs(s) >> 31)  # truncating division by 2**31
    q = np.where((a == _I32_MIN) & (b == _I32_MIN), _I32_MAX, q)
    return q.astype(np.int32)


def rounding_divide_by_pot(x, exponent):
    """gemmlowp RoundingDivideByPOT: x / 2**exponent rounded half away from zero, 0 <= exponent <= 31."""
    x = np.asarray(x, dtype=np.int64)
    e = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return ((x >> e) + (remainder > threshold)).astype(np.int32)


def multiply_by_quantized_multiplier(acc_int32, multiplier, shift):
    """TFLite MultiplyByQuantizedMultiplier: acc * m * 2**(shift - 31), rounded, in int32.

    ``RDivPOT(SRDHM(acc * 2**left, m), right)`` with left = max(shift, 0),
    right = max(-shift, 0). TFLite computes ``acc * 2**left`` in int32 where an
    overflow is undefined behaviour; here it raises OverflowRiskError.
    ``multiplier`` / ``shift`` broadcast against ``acc`` (per-channel: shape the
    caller's responsibility, e.g. [N] against [M, N]).
    """
    acc = np.asarray(acc_int32)
    if acc.dtype != np.int32:
        raise DTypeError("acc_int32", "dtype int32", f"dtype {acc.dtype}")
    m = np.asarray(multiplier)
    s = np.asarray(shift)
    if m.dtype.kind not in "iu" or s.dtype.kind not in "iu":
        raise DTypeError("multiplier, shift", "integer arrays (from quantize_multiplier)", f"{m.dtype}, {s.dtype}")
    if np.any(m < 0) or np.any(m > _I32_MAX):
        raise ValidationError("multiplier", "values in [0, 2**31 - 1]", f"range [{m.min()}, {m.max()}]")
    if np.any(s < -31) or np.any(s > 30):
        raise ValidationError("shift", "values in [-31, 30]", f"range [{s.min()}, {s.max()}]")
    s = s.astype(np.int64)
    left = np.maximum(s, 0)
    right = np.maximum(-s, 0)
    shifted = acc.astype(np.int64) << left
    if shifted.size and (shifted.min() < _I32_MIN or shifted.max() > _I32_MAX):
        raise OverflowRiskError("acc_int32", f"acc * 2**shift to fit int32 (shift up to {int(left.max())})",
                                f"range [{acc.min()}, {acc.max()}]")
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, m), right)


def real_multiplier(a_scale, b_scale, y_scale):
    """M = f32(f32(a_scale * b_scale) / y_scale), in float32, as onnxruntime computes it."""
    a = np.asarray(a_scale, dtype=np.float32)
    b = np.asarray(b_scale, dtype=np.float32)
    y = np.asarray(y_scale, dtype=np.float32)
    return (a * b) / y


def requantize(acc_int32, multiplier_or_scale, zero_point, *, output_dtype, method="float", axis=None,
               backend="auto"):
    """int32 accumulator -> quantized integers (eq. R1 or eq. R2).

    Parameters
    ----------
    acc_int32 : int32 array, any shape.
    multiplier_or_scale : the real multiplier M = s_a * s_b / s_y (float, > 0),
        scalar, or 1-D along ``axis``. With method="fixed_point" it may also
        be a pair ``(m, shift)`` from :func:`quantize_multiplier`.
    zero_point : output zero point, scalar or 1-D along ``axis``; None means 0.
    output_dtype : an integer quantized dtype (name, ONNX enum, NumPy dtype or QDType).
    method : "float" (eq. R1, ONNX as onnxruntime runs it) or "fixed_point" (eq. R2).
    axis : the axis of acc the per-channel parameters run along (None: per tensor).

    Returns
    -------
    Array of ``output_dtype`` with acc's shape.
    """
    acc = numeric_array(acc_int32, "acc_int32")
    if acc.dtype != np.int32:
        raise DTypeError("acc_int32", "dtype int32", f"dtype {acc.dtype}")
    q = qdtype(output_dtype, "output_dtype")
    if q.is_float or q.name == "int32":
        raise DTypeError("output_dtype", "an integer quantized dtype narrower than int32", q.name)
    if method not in METHODS:
        raise ValidationError("method", f"one of {METHODS}", repr(method))

    if method == "fixed_point" and isinstance(multiplier_or_scale, tuple):
        mult, shift = (np.asarray(t) for t in multiplier_or_scale)
        if mult.shape != shift.shape:
            raise ShapeError("multiplier_or_scale", "(m, shift) of equal shapes", f"{mult.shape}, {shift.shape}")
    else:
        M = numeric_array(multiplier_or_scale, "multiplier_or_scale")
        if M.dtype.kind != "f":
            raise DTypeError("multiplier_or_scale", "a float multiplier (or (m, shift) for fixed_point)", f"dtype {M.dtype}")
        if M.size == 0 or not np.all(np.isfinite(M.astype(np.float64)) & (M.astype(np.float64) > 0)):
            raise ValidationError("multiplier_or_scale", "finite values > 0", f"{M}")
        ref = M

    zp = np.zeros((), np.int64) if zero_point is None else np.asarray(zero_point)
    if zp.dtype.kind not in "iu" and not (zp.dtype.kind == "V" and not q.is_float):
        raise DTypeError("zero_point", "an integer array", f"dtype {zp.dtype}")
    zp = zp.astype(np.int64)
    v.integer_in_range(zp, "zero_point", q)

    def per_axis(p, name):
        if p.size == 1:
            return p.reshape(())
        if axis is None:
            raise ShapeError(name, "a scalar when axis is None", f"shape {p.shape}")
        ax = normalize_axis(axis, acc.ndim)
        if p.ndim != 1 or p.shape[0] != acc.shape[ax]:
            raise ShapeError(name, f"a scalar or a vector of length acc.shape[{ax}] = {acc.shape[ax]}", f"shape {p.shape}")
        return p.reshape((-1,) + (1,) * (acc.ndim - 1 - ax))

    zp_b = per_axis(zp, "zero_point")
    lo, hi = int(q.qmin), int(q.qmax)

    if method == "float":
        M32 = per_axis(ref.astype(np.float32), "multiplier_or_scale")
        fast = _fast_2d("requantize_float", backend, acc, axis, M32, zp_b)
        if fast is not None:
            fn, cols = fast
            y = fn(acc, cols(M32, np.float32), cols(zp_b, np.int32), lo, hi)
        else:
            y = _float_numpy(acc, M32, zp_b, lo, hi)
    else:
        if isinstance(multiplier_or_scale, tuple):
            m, s = per_axis(mult.astype(np.int64), "multiplier_or_scale"), per_axis(shift.astype(np.int64), "multiplier_or_scale")
        else:
            m, s = quantize_multiplier(ref.astype(np.float64))
            m, s = per_axis(m, "multiplier_or_scale"), per_axis(s, "multiplier_or_scale")
        fast = _fast_2d("requantize_fixed_point", backend, acc, axis, m, zp_b)
        if fast is not None and not np.any(s > 0):  # kernels need no left-shift overflow check
            fn, cols = fast
            y = fn(acc, cols(m, np.int32), cols(s, np.int32), cols(zp_b, np.int32), lo, hi)
        else:
            y = np.asarray(multiply_by_quantized_multiplier(acc, m, s), np.int64) + zp_b
            y = np.clip(y, lo, hi)
    return np.asarray(y).astype(q.np_dtype)


def _float_numpy(acc, M32, zp, lo, hi):
    # eq. R1: float32 product (NumPy float32 * float32 stays float32, correctly rounded)
    with np.errstate(over="ignore"):  # ±Inf (huge multiplier) saturates in the clip
        prod = acc.astype(np.float32) * M32
    r = np.rint(prod).astype(np.float64)  # integer-valued; float64 holds it exactly
    return np.clip(r + zp, lo, hi).astype(np.int64)


def _fast_2d(op, backend, acc, axis, param, zp):
    """A registered kernel and a column-broadcaster, when acc is 2-D and params run along columns (or are scalars)."""
    fn = _backend.implementation(op, backend)
    if fn is None or acc.ndim != 2 or acc.size == 0:
        return None
    ax = None if axis is None else axis % 2
    if ax == 0 and (param.size > 1 or zp.size > 1):
        return None
    n = acc.shape[1]

    def cols(p, dt):
        return np.ascontiguousarray(np.broadcast_to(np.asarray(p).reshape(-1), (n,)) if np.size(p) == 1
                                    else np.asarray(p).reshape(n), dtype=dt)

    return fn, cols
