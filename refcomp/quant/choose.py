"""Choosing scale and zero point from a real range [min_val, max_val].

Integer dtypes (docs/quantization.md §3, eqs. 4-8)::

    # the range always contains 0, so that 0.0 is exactly a code (eq. 4)
    lo = min(min_val, 0)            hi = max(max_val, 0)

    asymmetric (affine)                                         (5)
        scale      = (hi - lo) / (qmax - qmin)
        zero_point = clip(qmin - round(lo / scale), qmin, qmax)

    symmetric                                                   (6)
        scale      = max(|lo|, |hi|) / ((qmax - qmin) / 2)
        zero_point = (qmin + qmax + 1) // 2     # 0 for signed, 128 for uint8

    narrowed ranges (applied to [qmin, qmax] before (5) / (6))   (7)
        bits=b:            b-bit codes held in the dtype   # int8, b=3 -> -4..3; uint4, b=3 -> 0..7
        restricted_range:  qmin += 1            # int8 -> -127..127
        reduce_range:      one bit less         # int8 -> -64..63, uint8 -> 0..127

    empty range (lo == hi == 0): scale = 1 (any scale represents 0 exactly;
    onnxruntime makes the same choice)                          (8)

Sources: Jacob et al. 2018 (arXiv:1712.05877) §2.1 and eq. (1), the
nudging of the zero point to an integer; Krishnamoorthi 2018
(arXiv:1806.08342) §2.1-2.2 (asymmetric / symmetric); Nagel et al. 2021
(arXiv:2106.08295) §2.2. The symmetric denominator (qmax - qmin) / 2 and the
uint8 midpoint 128 are PyTorch's and onnxruntime's choices (the full code
range is used; the largest magnitude lands on qmax + 1/2, which rounds and
saturates to qmax). ``round`` is half-to-even.

Float dtypes (float8 / float4 / float16 / bfloat16): there is no zero point
and the grid is not uniform; the scale maps the largest magnitude onto the
largest finite value (Micikevicius et al. 2022, arXiv:2209.05433 §2; OCP
Microscaling spec v1.0 uses a power-of-two variant)::

    scale = max(|lo|, |hi|) / dtype_max,   zero_point = 0       (9)

All arithmetic is float64; the scale is then rounded to float32 (the ONNX
scale type) and never below the smallest normal float32. A range whose
scale exceeds the largest float32 is refused (ValidationError naming
min_val / max_val).
"""

from __future__ import annotations

import numpy as np

from ..errors import DTypeError, ShapeError, ValidationError
from ..numerics.dtypes import QDType, qdtype
from .qparams import QParams

__all__ = ["choose_qparams", "quant_range"]

_TINY = float(np.finfo(np.float32).tiny)
_MAX = float(np.finfo(np.float32).max)


def quant_range(dtype="int8", *, restricted_range: bool = False, reduce_range: bool = False,
                bits: int | None = None) -> tuple[int, int]:
    """The integer code range [qmin, qmax] a scheme uses (eq. 7).

    >>> quant_range("int8"), quant_range("int8", restricted_range=True), quant_range("uint8", reduce_range=True)
    ((-128, 127), (-127, 127), (0, 127))
    >>> quant_range("int8", bits=3), quant_range("uint4", bits=3)
    ((-4, 3), (0, 7))

    ``bits`` keeps b-bit codes in a wider dtype (widths without a dtype of their
    own, 3, 5, 6, 7: the codes of a b-bit integer, signed like the dtype);
    None is the dtype's width. reduce_range then drops one bit more
    (onnxruntime / fbgemm): on x86 the u8·s8 product pairs of ``vpmaddubsw``
    saturate in int16 (2·255·128 > 32767); 7-bit operands cannot.
    """
    dt = qdtype(dtype, "dtype")
    _flag("restricted_range", restricted_range)
    _flag("reduce_range", reduce_range)
    if dt.is_float:
        for name, flag in (("restricted_range", restricted_range), ("reduce_range", reduce_range)):
            if flag:
                raise ValidationError(name, f"False for the float dtype {dt.name}", flag)
        if bits is not None:
            raise ValidationError("bits", f"None for the float dtype {dt.name}", repr(bits))
        return dt.qmin, dt.qmax
    if bits is None:
        bits = dt.bits
    elif not (isinstance(bits, (int, np.integer)) and not isinstance(bits, (bool, np.bool_)) and 2 <= bits <= dt.bits):
        raise ValidationError("bits", f"None or an int in [2, {dt.bits}] for {dt.name}", repr(bits))
    bits = int(bits) - 1 if reduce_range else int(bits)
    if bits < 2:
        raise ValidationError("reduce_range", f"False for {dt.name} (one bit less leaves a single code)", True)
    if dt.signed:
        lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    else:
        lo, hi = 0, 2**bits - 1
    if restricted_range:
        lo += 1
    return lo, hi


def _flag(name: str, value) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise ValidationError(name, "True or False", repr(value))


def _as_bound(value, name: str) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except Exception:  # pragma: no cover - exotic objects
        raise DTypeError(name, "a real number or array", type(value).__name__) from None
    if arr.dtype.kind not in "fiu":
        try:
            arr = arr.astype(np.float64)  # bfloat16 / float8 arrays (ml_dtypes)
        except (TypeError, ValueError):
            raise DTypeError(name, "a real number or array", f"dtype {arr.dtype}") from None
    arr = arr.astype(np.float64)
    if arr.size == 0:
        raise ShapeError(name, "at least one value", f"shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValidationError(name, "finite values", f"{int((~np.isfinite(arr)).sum())} NaN/Inf")
    return arr


def _check_fits_float32(scale: np.ndarray, mn: np.ndarray, mx: np.ndarray) -> None:
    """A scale that overflowed float32 comes from a range too wide for the dtype: blame the bound
    of larger magnitude (the one to shrink), not the scale the user never passed."""
    bad = np.isinf(scale)
    if bad.any():
        i = int(np.argmax(bad))     # the first, in flat order (mn, mx have the scale's shape)
        low, high = float(mn.flat[i]), float(mx.flat[i])
        raise ValidationError("min_val" if -low > high else "max_val",
                              f"a range narrow enough for a float32 scale (range / codes <= {_MAX:.6g})",
                              f"min_val={low!r}, max_val={high!r}")


def choose_qparams(
    min_val,
    max_val,
    dtype="int8",
    *,
    symmetric: bool = False,
    restricted_range: bool = False,
    reduce_range: bool = False,
    bits: int | None = None,
    axis: int | None = None,
    block_size: int | None = None,
) -> QParams:
    """QParams covering [min_val, max_val] with 0 exactly representable (eqs. 4-9).

    Parameters
    ----------
    min_val, max_val : float or array (same shape), finite, min_val <= max_val, and
        the range narrow enough that its scale is a finite float32 (ValidationError
        naming the bound of larger magnitude otherwise: a float64 range such as
        [0, 1e300] has none).
        Scalars for per-tensor; 1-D (one per channel) with ``axis``; the scale
        shape with ``axis`` and ``block_size`` (per-block).
    dtype : quantized dtype (see refcomp.numerics.dtypes).
    symmetric : eq. (6) instead of eq. (5) (integer dtypes; float dtypes are always symmetric).
    restricted_range, reduce_range, bits : eq. (7) (integer dtypes only); ``bits``
        narrows the codes to a b-bit integer held in ``dtype`` (3-bit codes in int4).
    axis, block_size : layout, passed on to :class:`QParams`.

    Returns
    -------
    QParams whose representable range [(qmin - zp)·s, (qmax - zp)·s] contains
    [min_val, max_val] up to half a step (the zero point is an integer).
    """
    dt: QDType = qdtype(dtype, "dtype")
    _flag("symmetric", symmetric)
    lo_code, hi_code = quant_range(dt, restricted_range=restricted_range, reduce_range=reduce_range, bits=bits)
    mn = _as_bound(min_val, "min_val")
    mx = _as_bound(max_val, "max_val")
    if mn.shape != mx.shape:
        raise ShapeError("max_val", f"the shape of min_val {mn.shape}", f"shape {mx.shape}")
    if (mn > mx).any():
        i = int(np.argmax(mn > mx))
        raise ValidationError("min_val", "values <= max_val", f"min_val={float(mn.flat[i])!r} > max_val={float(mx.flat[i])!r}")
    if axis is None and mn.size != 1:
        raise ShapeError("min_val", "a single value when axis is None (per-tensor)", f"shape {mn.shape}")
    if axis is None:
        mn, mx = mn.reshape(()), mx.reshape(())

    lo = np.minimum(mn, 0.0)  # eq. (4)
    hi = np.maximum(mx, 0.0)
    amax = np.maximum(-lo, hi)

    if dt.is_float:  # eq. (9)
        scale = amax / dt.qmax
        zero_point = np.zeros(mn.shape, dtype=np.float64)
    elif symmetric:  # eq. (6)
        scale = amax / ((hi_code - lo_code) / 2.0)
        zero_point = np.full(mn.shape, (lo_code + hi_code + 1) // 2, dtype=np.int64)
    else:  # eq. (5)
        with np.errstate(over="ignore"):   # hi - lo beyond float64: an infinite scale, reported below
            scale = (hi - lo) / float(hi_code - lo_code)

    empty = amax == 0
    scale = np.where(empty, 1.0, scale)  # eq. (8)
    with np.errstate(over="ignore"):   # a range too wide for a float32 scale is reported just below
        scale = np.maximum(scale, _TINY).astype(np.float32)
    _check_fits_float32(scale, mn, mx)

    if not dt.is_float and not symmetric:
        # the zero point is computed from the float32 scale actually stored
        zero_point = lo_code - np.rint(lo / scale.astype(np.float64))
        zero_point = np.clip(zero_point, lo_code, hi_code).astype(np.int64)

    narrowed = not dt.is_float and (lo_code, hi_code) != (dt.qmin, dt.qmax)
    return QParams(
        scale,
        zero_point.astype(dt.np_dtype),
        dt,
        axis,
        block_size,
        qmin=lo_code if narrowed else None,
        qmax=hi_code if narrowed else None,
    )
