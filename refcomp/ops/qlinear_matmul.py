"""QLinearMatMul: quantized matrix product with requantized output (ONNX QLinearMatMul-21).

Source: ONNX operator spec QLinearMatMul, opset 21 (opset 10 is the float32-scale subset).

Definition::

    acc = (a - a_zero_point) @ (b - b_zero_point)                 exact int32 (eq. M1, matmul_integer)
    y   = clip( round_half_even( f32(acc) * M ) + y_zero_point, qmin, qmax )   (eq. R1)
    M   = f32( f32(a_scale * b_scale) / y_scale )                 (per row of a x per column of b)

a, b: uint8 | int8 ([..., M, K], [..., K, N], broadcasting as numpy.matmul).
a_scale / a_zero_point: scalar, or [M] per row; b_scale / b_zero_point:
scalar, or [N] per column; y_scale / y_zero_point: scalars. Scales are
float32 / float16 / bfloat16, finite > 0 (widened exactly to float32).
y has y_zero_point's dtype (uint8 | int8). ONNX fixes the accumulator at int32:
an exact accumulator outside int32 raises OverflowRiskError.
The float precision of eq. R1 is discussed in refcomp/ops/requantize.py.
"""

from __future__ import annotations

import numpy as np

from ..checks import dtype_in, numeric_array
from ..errors import DTypeError, ShapeError
from ..numerics.dtypes import qdtype
from . import _validate as v
from .matmul_integer import matmul_integer
from .requantize import _float_numpy, real_multiplier, requantize

__all__ = ["qlinear_matmul"]


def _per(p, name, length, what):
    if p.size == 1 and p.ndim <= 1:
        return p.reshape(())
    if p.ndim != 1 or p.shape[0] != length:
        raise ShapeError(name, f"a scalar or a per-{what} vector of length {length}", f"shape {p.shape}")
    return p


def qlinear_matmul(a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point, *, backend="auto"):
    """ONNX QLinearMatMul: y = requantize((a - a_zp) @ (b - b_zp), a_scale * b_scale / y_scale, y_zp)."""
    a = numeric_array(a, "a")
    b = numeric_array(b, "b")
    dtype_in(a, "a", (np.uint8, np.int8))
    dtype_in(b, "b", (np.uint8, np.int8))
    sa, sb, sy = v.scale(a_scale, "a_scale"), v.scale(b_scale, "b_scale"), v.scale(y_scale, "y_scale")
    if y_zero_point is None:
        raise DTypeError("y_zero_point", "a uint8 or int8 scalar (it decides the output type)", "None")
    yz = numeric_array(y_zero_point, "y_zero_point")
    dtype_in(yz, "y_zero_point", (np.uint8, np.int8))
    if yz.size != 1:
        raise ShapeError("y_zero_point", "a scalar", f"shape {yz.shape}")
    if sy.size != 1:
        raise ShapeError("y_scale", "a scalar", f"shape {sy.shape}")
    M = a.shape[-2] if a.ndim >= 2 else 1
    N = b.shape[-1] if b.ndim >= 2 else 1
    sa = _per(sa, "a_scale", M, "row")
    sb = _per(sb, "b_scale", N, "column")
    if a_zero_point is not None and np.shape(a_zero_point) not in ((), (1,), sa.shape):
        raise ShapeError("a_zero_point", f"the shape of a_scale {sa.shape}", f"shape {np.shape(a_zero_point)}")
    if b_zero_point is not None and np.shape(b_zero_point) not in ((), (1,), sb.shape):
        raise ShapeError("b_zero_point", f"the shape of b_scale {sb.shape}", f"shape {np.shape(b_zero_point)}")

    acc = matmul_integer(a, b, a_zero_point, b_zero_point, backend=backend)
    q = qdtype(yz.dtype, "y_zero_point")
    mult = real_multiplier(sa.reshape(-1, 1) if sa.ndim else sa, sb, sy.reshape(()))  # [M, N], [N] or []
    # any multiplier of at most one axis is per tensor or per column, a 0-d acc (a [K] @ b [K])
    # included: the per-row branch below indexes mult[:, 0], which needs the [M, 1] multiplier
    if mult.ndim <= 1:
        axis = None if mult.size == 1 else acc.ndim - 1
        if acc.ndim == 1 and b.ndim == 1:  # y is [M] when b is a vector: the column axis is gone
            axis = None
        return requantize(acc, mult.reshape(-1) if axis is not None else mult.reshape(()), yz.reshape(()),
                          output_dtype=q, method="float", axis=axis, backend=backend)
    # per-row a_scale: the multiplier is an [M, N] matrix; same eq. R1, broadcast
    m = mult if b.ndim >= 2 else mult[:, 0]
    y = _float_numpy(acc, m.astype(np.float32), yz.astype(np.int64).reshape(()), int(q.qmin), int(q.qmax))
    return y.astype(q.np_dtype)
