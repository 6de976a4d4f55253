"""QuantizeLinear: real tensor -> quantized tensor (ONNX QuantizeLinear-25; -10/13/19/21/23 are special cases).

Source: ONNX operator spec QuantizeLinear, opset 25 (onnx 1.23).

Definition (integer outputs)::

    y = saturate( round( x / y_scale ) + y_zero_point )                        (eq. Q1)

- ``x / y_scale`` is computed in the precision given by the ``precision``
  attribute, or else in y_scale's dtype (float32, float16 or bfloat16): x is
  cast to that type, then divided with one IEEE rounding (NumPy computes
  float16 / bfloat16 division in float32 and rounds once more, which gives the
  correctly rounded result because float32 has more than 2p + 2 bits).
- ``round`` is round-half-to-even (ONNX); ``rounding="half_away"`` is a
  refcomp extension (TFLite's rule) and is not ONNX.
- ``saturate`` clips to [qmin, qmax] of the output type (refcomp.numerics.dtypes).
- ±Inf in x / y_scale saturates to qmax / qmin (the formula's limit).

Float outputs (float8 e4m3fn / e4m3fnuz / e5m2 / e5m2fnuz, float4 e2m1)::

    y = cast( x / y_scale + y_zero_point )                                      (eq. Q2)

with IEEE round-to-nearest-even. ``saturate=1`` (default) clips values beyond
the largest finite value (and ±Inf) to ±max; ``saturate=0`` follows the
ONNX cast tables: e4m3fn / e4m3fnuz / e5m2fnuz overflow to NaN, e5m2 to ±Inf.
float4 e2m1 has no Inf/NaN encoding and always saturates.
The zero point of a float output must be 0 (adding it still turns -0 into
+0, as IEEE addition does).

Output type: y_zero_point's dtype if given, else ``output_dtype`` (TensorProto
enum), else uint8; both given and different is an error.

Granularity (refcomp/ops/_broadcast.py): y_scale scalar (per tensor), 1-D
along ``axis`` (per axis), or blocked along ``axis`` with ``block_size``.

Policy for special inputs (refcomp's choice; ONNX leaves them undefined):
NaN in x raises ValidationError("x") for integer and float4 outputs (no NaN
to map to); float8 outputs keep NaN as NaN (the float8 types encode NaN).
Empty x gives an empty y of the output type.
"""

from __future__ import annotations

import numpy as np

from .. import backend as _backend
from ..checks import dtype_in, finite, integer, numeric_array
from ..errors import DTypeError, ValidationError
from ..numerics.dtypes import ONNX_FLOAT_TYPES, QDType, qdtype
from ..numerics.rounding import ROUNDING_MODES, round_with
from . import _broadcast
from . import _validate as v

__all__ = ["quantize_linear", "output_qdtype"]

_X_DTYPES = v.FLOAT_DTYPES + (np.dtype(np.int32),)
_NOT_QUANTIZED = ("int32", "float16", "bfloat16")


def output_qdtype(y_zero_point, output_dtype) -> QDType:
    """The quantized output type: zero point's dtype, else output_dtype, else uint8 (ONNX rule)."""
    out = None
    if output_dtype not in (0, None):
        out = qdtype(integer(output_dtype, "output_dtype"), "output_dtype")
    if y_zero_point is not None:
        zq = qdtype(np.asarray(y_zero_point).dtype, "y_zero_point")
        if out is not None and out != zq:
            raise DTypeError("output_dtype", f"the dtype of y_zero_point ({zq.name}, enum {zq.onnx})",
                             f"{out.name} (enum {out.onnx})")
        out = zq
    out = out or qdtype("uint8")
    if out.name in _NOT_QUANTIZED:
        raise DTypeError("y_zero_point" if y_zero_point is not None else "output_dtype",
                         "a quantized type (int2..int16, uint2..uint16, float8, float4)", out.name)
    return out


def quantize_linear(x, y_scale, y_zero_point=None, *, axis=1, block_size=0, output_dtype=0, saturate=1,
                    precision=0, rounding="half_to_even", backend="auto"):
    """ONNX QuantizeLinear: y = saturate(round(x / y_scale) + y_zero_point)  (eq. Q1 / Q2).

    Parameters
    ----------
    x : float32 | float16 | bfloat16 | int32 array, any shape.
    y_scale : float32 | float16 | bfloat16, finite > 0; scalar, [D_axis] or blocked.
    y_zero_point : optional, same shape as y_scale; its dtype is the output type.
    axis : quantization axis for per-axis / blocked parameters (negative counts from the back).
    block_size : > 0 for blocked quantization, 0 otherwise.
    output_dtype : TensorProto enum of the output type when y_zero_point is absent (0: unset).
    saturate : float8 outputs only: 1 clips to the finite range, 0 follows the cast tables.
    precision : TensorProto enum (1 float32, 10 float16, 16 bfloat16) of the division; 0: y_scale's dtype.
    rounding : "half_to_even" (ONNX) or "half_away" (refcomp extension, integer outputs only).

    Returns
    -------
    Array of x's shape and the output type (ml_dtypes for sub-byte and float8/float4).
    """
    _backend.implementation("quantize_linear", backend)  # validates the name; no fast kernel
    x = numeric_array(x, "x")
    dtype_in(x, "x", _X_DTYPES)
    scale = v.scale(y_scale, "y_scale")
    q = output_qdtype(y_zero_point, output_dtype)
    if rounding not in ROUNDING_MODES:
        raise ValidationError("rounding", f"one of {ROUNDING_MODES}", repr(rounding))
    if q.is_float and rounding != "half_to_even":
        raise ValidationError("rounding", f"'half_to_even' for a float output ({q.name})", repr(rounding))
    sat = integer(saturate, "saturate")
    if sat not in (0, 1):
        raise ValidationError("saturate", "0 or 1", sat)

    zp = None
    if y_zero_point is not None:
        zp = numeric_array(y_zero_point, "y_zero_point")
        _broadcast.same_shape(scale, zp, "y_scale", "y_zero_point")
        if q.is_float and np.any(zp.astype(np.float32) != 0):
            raise ValidationError("y_zero_point", f"0 for a float output type ({q.name})", zp)
    s = _broadcast.expand(scale, "y_scale", x.shape, axis, block_size)
    z = None if zp is None or q.is_float else _broadcast.expand(zp, "y_zero_point", x.shape, axis, block_size)

    if x.size == 0:
        return np.zeros(x.shape, q.np_dtype)

    P = _division_dtype(precision, scale)
    with np.errstate(over="ignore"):  # overflow to ±Inf is saturated below, by definition
        ratio = x.astype(P) / s.astype(P)

    if q.is_float:
        if zp is not None:  # the zero point is 0, but x/scale + 0 turns -0 into +0 (IEEE), as in eq. Q1
            ratio = ratio + _broadcast.expand(zp, "y_zero_point", x.shape, axis, block_size).astype(ratio.dtype)
        return _to_float(ratio, x, q, sat)
    if np.isnan(x.astype(np.float32)).any():
        finite(x, "x")  # raises, naming the first NaN
    r = round_with(ratio.astype(np.float64), rounding)  # exact widening; rounding of the P-precision value
    if z is not None:
        r = r + z.astype(np.float64)
    y = np.clip(r, q.qmin, q.qmax)  # ±Inf lands on the bounds
    return y.astype(np.int64).astype(q.np_dtype)


def _division_dtype(precision, scale):
    p = integer(precision, "precision")
    if p == 0:
        return scale.dtype
    if p not in ONNX_FLOAT_TYPES:
        raise DTypeError("precision", "0 or a float TensorProto enum (1 float32, 10 float16, 16 bfloat16)", p)
    return ONNX_FLOAT_TYPES[p]


def _to_float(ratio, x, q, sat):
    if q.name.startswith("float4"):
        if np.isnan(x.astype(np.float32)).any():
            finite(x, "x")
        return ratio.astype(q.np_dtype)  # no Inf/NaN encoding: the cast saturates
    if sat:
        ratio = np.clip(ratio.astype(np.float32), q.qmin, q.qmax)  # NaN stays NaN
    return ratio.astype(q.np_dtype)
