"""DequantizeLinear: quantized tensor -> real tensor (ONNX DequantizeLinear-25).

Source: ONNX operator spec DequantizeLinear, opset 25 (onnx 1.23).

Definition::

    y = (x - x_zero_point) * x_scale                                           (eq. D1)

- ``x - x_zero_point`` is exact (integers, int64); it is then converted to
  float32, exactly for every type up to 16 bits (int32 inputs with
  |x| > 2**24 round to nearest even, as in every ONNX runtime).
- The product is one float32 multiplication (x_scale widened exactly to
  float32), then a cast to the output type: ``output_dtype`` if set, else
  x_scale's dtype (float32 / float16 / bfloat16), round to nearest even;
  a value beyond the output type's range becomes ±Inf (IEEE overflow).
  This is what onnx.reference and onnxruntime compute.
- Float inputs (float8, float4 e2m1) take the same formula; their zero point
  must be 0. A float8 NaN dequantizes to NaN (the input encodes NaN).
- int32 inputs (biases) have no zero point other than 0.

Granularity as in QuantizeLinear (refcomp/ops/_broadcast.py).
``precision`` is not an ONNX 1.23 DequantizeLinear attribute; refcomp accepts
0 only (the precision of the product is fixed above).
Empty x gives an empty y.
"""

from __future__ import annotations

import numpy as np

from .. import backend as _backend
from ..checks import integer, numeric_array
from ..errors import DTypeError, ValidationError
from ..numerics.dtypes import ONNX_FLOAT_TYPES, qdtype
from . import _broadcast
from . import _validate as v

__all__ = ["dequantize_linear"]


def dequantize_linear(x, x_scale, x_zero_point=None, *, axis=1, block_size=0, output_dtype=0, precision=0,
                      backend="auto"):
    """ONNX DequantizeLinear: y = (x - x_zero_point) * x_scale  (eq. D1).

    Parameters
    ----------
    x : any quantized dtype of refcomp.numerics.dtypes (int2..int32, uint2..uint16, float8, float4).
    x_scale : float32 | float16 | bfloat16, finite > 0; scalar, [D_axis] or blocked.
    x_zero_point : optional, x's dtype, same shape as x_scale.
    axis, block_size : as in quantize_linear.
    output_dtype : TensorProto enum of y (1, 10, 16); 0: x_scale's dtype.

    Returns
    -------
    float array of x's shape.
    """
    _backend.implementation("dequantize_linear", backend)
    x = numeric_array(x, "x")
    q = qdtype(x.dtype, "x")
    if q.name in ("float16", "bfloat16"):
        raise DTypeError("x", "a quantized dtype (int2..int32, uint2..uint16, float8, float4)", q.name)
    scale = v.scale(x_scale, "x_scale")
    if integer(precision, "precision") != 0:
        raise ValidationError("precision", "0 (not an attribute of ONNX DequantizeLinear)", precision)
    od = integer(output_dtype, "output_dtype")
    if od == 0:
        out = scale.dtype
    elif od in ONNX_FLOAT_TYPES:
        out = ONNX_FLOAT_TYPES[od]
    else:
        raise DTypeError("output_dtype", "0 or a float TensorProto enum (1 float32, 10 float16, 16 bfloat16)", od)

    if x_zero_point is not None:
        zp = numeric_array(x_zero_point, "x_zero_point")
        if zp.dtype != x.dtype:
            raise DTypeError("x_zero_point", f"dtype {x.dtype} (the dtype of x)", f"dtype {zp.dtype}")
        _broadcast.same_shape(scale, zp, "x_scale", "x_zero_point")
        if (q.is_float or q.name == "int32") and np.any(zp.astype(np.float64) != 0):
            raise ValidationError("x_zero_point", f"0 for x of type {q.name}", zp)
        z = _broadcast.expand(zp, "x_zero_point", x.shape, axis, block_size)
    else:
        z = None
    s = _broadcast.expand(scale, "x_scale", x.shape, axis, block_size)

    if q.is_float:
        d = x.astype(np.float32)
    else:
        d = x.astype(np.int64)
        if z is not None:
            d = d - z.astype(np.int64)
        d = d.astype(np.float32)
    y = d * s.astype(np.float32)
    with np.errstate(over="ignore"):  # beyond float16's range: ±Inf, as IEEE (and onnxruntime) round it
        return y.astype(out)
