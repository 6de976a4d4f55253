"""ConvInteger: integer N-D convolution with zero points, exact (ONNX ConvInteger-10).

Source: ONNX operator spec ConvInteger, opset 10 (geometry: Conv-11 rules,
refcomp/ops/_conv_geometry.py).

Definition, for x [N, C, D1..Dn], w [M, C/G, k1..kn], G = group::

    Y[b, m, o] = sum_{c in group(m)} sum_{j} (Xp[b, c, o*s + j*d] - x_zp) * (w[m, c', j] - w_zp[m])   (eq. CI1)

o and j are multi-indices over the spatial dims, Xp is x padded with the value
x_zp (so padding contributes 0), group(m) = the C/G input channels of m's
group, c' = c mod C/G. x_zero_point is a scalar; w_zero_point a scalar or
[M] (per output channel). Y is int32 [N, M, O1..On] (O from eq. C1).

Accumulation is exact in int64 (im2col + matmul); a result outside int32 (the
ONNX output type) raises OverflowRiskError.
"""

from __future__ import annotations

import numpy as np

from .. import backend as _backend
from ..checks import dtype_in, integer, numeric_array
from ..errors import DTypeError, OverflowRiskError, ShapeError
from ._conv_geometry import geometry

__all__ = ["conv_integer"]

_INT8_TYPES = (np.uint8, np.int8)


def conv_integer(x, w, x_zero_point=None, w_zero_point=None, *, auto_pad="NOTSET", dilations=None, group=1,
                 kernel_shape=None, pads=None, strides=None, backend="auto"):
    """ONNX ConvInteger (eq. CI1): int32 [N, M, O1..On] from uint8/int8 x [N, C, D..] and w [M, C/group, k..]."""
    _backend.implementation("conv_integer", backend)
    x = numeric_array(x, "x")
    w = numeric_array(w, "w")
    dtype_in(x, "x", _INT8_TYPES)
    dtype_in(w, "w", _INT8_TYPES)
    acc = _conv_accumulate(x, w, x_zero_point, w_zero_point, auto_pad=auto_pad, dilations=dilations, group=group,
                           kernel_shape=kernel_shape, pads=pads, strides=strides)
    return _to_int32(acc)


def _to_int32(acc):
    if acc.size and (acc.min() < -(2**31) or acc.max() > 2**31 - 1):
        bad = int(acc.max()) if acc.max() > 2**31 - 1 else int(acc.min())
        raise OverflowRiskError("y", "an exact result that fits int32 (the ONNX output type)", bad)
    return acc.astype(np.int32)


def _zero_points(x, w, x_zero_point, w_zero_point, M):
    xz = np.zeros((), np.int64)
    if x_zero_point is not None:
        z = numeric_array(x_zero_point, "x_zero_point")
        if z.dtype != x.dtype:
            raise DTypeError("x_zero_point", f"dtype {x.dtype} (the dtype of x)", f"dtype {z.dtype}")
        if z.size != 1 or z.ndim > 1:
            raise ShapeError("x_zero_point", "a scalar (per-tensor)", f"shape {z.shape}")
        xz = z.astype(np.int64).reshape(())
    wz = np.zeros((1,), np.int64)
    if w_zero_point is not None:
        z = numeric_array(w_zero_point, "w_zero_point")
        if z.dtype != w.dtype:
            raise DTypeError("w_zero_point", f"dtype {w.dtype} (the dtype of w)", f"dtype {z.dtype}")
        if not (z.size == 1 and z.ndim <= 1) and z.shape != (M,):
            raise ShapeError("w_zero_point", f"a scalar or [{M}] (per output channel)", f"shape {z.shape}")
        wz = z.astype(np.int64).reshape(-1)
    return xz, wz


def _conv_accumulate(x, w, x_zero_point, w_zero_point, *, auto_pad, dilations, group, kernel_shape, pads, strides):
    """Exact int64 accumulator of eq. CI1 (shared with QLinearConv)."""
    if x.ndim < 3:
        raise ShapeError("x", "shape [N, C, D1, ..., Dn] with n >= 1", f"shape {x.shape}")
    if w.ndim != x.ndim:
        raise ShapeError("w", f"shape [M, C/group, k1..k{x.ndim - 2}] (rank {x.ndim}, like x)", f"shape {w.shape}")
    G = integer(group, "group")
    N, C = x.shape[:2]
    M, Cg = w.shape[:2]
    if G < 1 or C % G or M % G:
        raise ShapeError("group", f"an int >= 1 dividing C = {C} and M = {M}", G)
    if Cg != C // G:
        raise ShapeError("w", f"shape[1] = C / group = {C // G}", f"shape {w.shape}")
    g = geometry(x.shape, w.shape, auto_pad=auto_pad, dilations=dilations, kernel_shape=kernel_shape, pads=pads,
                 strides=strides)
    xz, wz = _zero_points(x, w, x_zero_point, w_zero_point, M)

    # Padding with 0 after subtracting x_zp is padding x with x_zp (eq. CI1).
    xc = np.pad(x.astype(np.int64) - xz, [(0, 0), (0, 0)] + list(zip(g.pads_begin, g.pads_end)))
    wc = w.astype(np.int64) - wz.reshape((-1,) + (1,) * (w.ndim - 1))

    # im2col: for every kernel offset j, the input samples x[o*s + j*d] for all outputs o.
    cols = []
    for j in np.ndindex(*g.kernel):
        sl = tuple(slice(jj * d, jj * d + (o - 1) * s + 1, s) for jj, d, o, s in zip(j, g.dilations, g.out, g.strides))
        cols.append(xc[(slice(None), slice(None)) + sl])  # [N, C, O1..On]
    K = int(np.prod(g.kernel))
    L = int(np.prod(g.out))
    col = np.stack(cols, axis=2).reshape(N, G, Cg * K, L)  # rows ordered (c, j), like w's flattening
    wm = wc.reshape(G, M // G, Cg * K)
    y = np.matmul(wm[None], col)  # [N, G, M/G, L], exact in int64
    return y.reshape((N, M) + g.out)
