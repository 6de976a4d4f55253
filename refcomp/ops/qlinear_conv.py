"""QLinearConv: quantized N-D convolution with requantized output (ONNX QLinearConv-10).

Source: ONNX operator spec QLinearConv, opset 10.

Definition::

    acc[b, m, o] = ConvInteger(x, w, x_zp, w_zp)[b, m, o] + B[m]       exact int32 (eq. CI1 + bias)
    y = clip( round_half_even( f32(acc) * M[m] ) + y_zp, qmin, qmax )  (eq. R1)
    M[m] = f32( f32(x_scale * w_scale[m]) / y_scale )

x: uint8 | int8 [N, C, D1..Dn]; w: uint8 | int8 [M, C/group, k1..kn];
x_scale, y_scale: float32 scalars > 0; w_scale: scalar or [M] (per output
channel); x_zero_point, y_zero_point: scalars of x's / y's dtype;
w_zero_point: scalar or [M] of w's dtype; B: optional int32 [M] (bias,
quantized with scale x_scale * w_scale and zero point 0). y has
y_zero_point's dtype. Attributes: as ConvInteger (refcomp/ops/_conv_geometry.py).
An accumulator (with bias) outside int32 raises OverflowRiskError.
"""

from __future__ import annotations

import numpy as np

from .. import backend as _backend
from ..checks import dtype_in, numeric_array
from ..errors import DTypeError, ShapeError
from ..numerics.dtypes import qdtype
from . import _validate as v
from .conv_integer import _conv_accumulate, _to_int32
from .requantize import real_multiplier, requantize

__all__ = ["qlinear_conv"]


def qlinear_conv(x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point, B=None, *,
                 auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None, pads=None, strides=None,
                 backend="auto"):
    """ONNX QLinearConv: requantize(ConvInteger(x, w) + B, x_scale * w_scale / y_scale, y_zero_point)."""
    _backend.implementation("qlinear_conv", backend)
    x = numeric_array(x, "x")
    w = numeric_array(w, "w")
    dtype_in(x, "x", (np.uint8, np.int8))
    dtype_in(w, "w", (np.uint8, np.int8))
    sx, sw, sy = v.scale(x_scale, "x_scale"), v.scale(w_scale, "w_scale"), v.scale(y_scale, "y_scale")
    for s, name in ((sx, "x_scale"), (sy, "y_scale")):
        if s.size != 1:
            raise ShapeError(name, "a scalar", f"shape {s.shape}")
    if w.ndim < 1:
        raise ShapeError("w", "shape [M, C/group, k1..kn]", f"shape {w.shape}")
    M = w.shape[0]
    if not (sw.size == 1 and sw.ndim <= 1) and sw.shape != (M,):
        raise ShapeError("w_scale", f"a scalar or [{M}] (per output channel)", f"shape {sw.shape}")
    if y_zero_point is None:
        raise DTypeError("y_zero_point", "a uint8 or int8 scalar (it decides the output type)", "None")
    yz = numeric_array(y_zero_point, "y_zero_point")
    dtype_in(yz, "y_zero_point", (np.uint8, np.int8))
    if yz.size != 1:
        raise ShapeError("y_zero_point", "a scalar", f"shape {yz.shape}")

    acc = _conv_accumulate(x, w, x_zero_point, w_zero_point, auto_pad=auto_pad, dilations=dilations, group=group,
                           kernel_shape=kernel_shape, pads=pads, strides=strides)
    if B is not None:
        bias = numeric_array(B, "B")
        if bias.dtype != np.int32:
            raise DTypeError("B", "dtype int32", f"dtype {bias.dtype}")
        if bias.shape != (M,):
            raise ShapeError("B", f"shape [{M}] (one bias per output channel)", f"shape {bias.shape}")
        acc = acc + bias.astype(np.int64).reshape((1, M) + (1,) * (acc.ndim - 2))
    acc = _to_int32(acc)

    q = qdtype(yz.dtype, "y_zero_point")
    mult = real_multiplier(sx.reshape(()), sw.reshape(-1), sy.reshape(()))
    axis = 1 if mult.size > 1 else None
    return requantize(acc, mult if axis else mult.reshape(()), yz.reshape(()), output_dtype=q, method="float",
                      axis=axis, backend=backend)
