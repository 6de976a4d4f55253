"""DynamicQuantizeLinear: uint8 quantization with parameters computed from x (ONNX DynamicQuantizeLinear-11).

Source: ONNX operator spec DynamicQuantizeLinear, opset 11.

Definition (float32 throughout, qmin = 0, qmax = 255)::

    r_min = min(0, min(x)),  r_max = max(0, max(x))        (range widened to contain 0)
    y_scale = (r_max - r_min) / 255,  or 1 / 255 when r_max == r_min        (eq. DQ1)
    y_zero_point = round( clip(0 - r_min / y_scale, 0, 255) )                 (eq. DQ2)
    y = clip( round(x / y_scale) + y_zero_point, 0, 255 )                     (eq. DQ3)

Every operation is one float32 IEEE operation; round is half to even.
0 is exactly representable: x = 0 maps to y_zero_point.
r_max == r_min only for an all-zero x, where the spec's formula divides by
zero; 1 / 255 is onnx.reference's choice, onnxruntime's is 1.0 (docs/deviations.md D8).
Fast path: a registered "dynamic_quantize_linear" kernel (Numba) computes
eq. DQ3 only, from the y_scale and y_zero_point computed here, with the same
float32 operations in one pass; tests/kernels prove it byte-equal. For
:func:`dynamic_quantize_rows`, a registered "dynamic_quantize_rows" kernel (C,
csrc/dynamic_quantize.c) computes all of DQ1–DQ3 per row with the same
float32 operations, byte-equal too (there is no Numba one: backend="numba"
raises BackendUnavailableError for it).

Policy: x must be non-empty (the range of an empty tensor is undefined) and
finite (NaN / Inf would make y_scale NaN / Inf); both raise ValidationError / ShapeError naming x.
"""

from __future__ import annotations

import numpy as np

from .. import backend as _backend
from ..checks import dtype_in, finite, numeric_array
from ..errors import ShapeError

__all__ = ["dynamic_quantize_linear", "dynamic_quantize_rows"]


def dynamic_quantize_linear(x, *, backend="auto"):
    """ONNX DynamicQuantizeLinear: returns (y uint8 [x.shape], y_scale float32 [], y_zero_point uint8 [])."""
    fast = _backend.implementation("dynamic_quantize_linear", backend)  # eq. DQ3 only
    x = numeric_array(x, "x")
    dtype_in(x, "x", (np.float32,))
    if x.size == 0:
        raise ShapeError("x", "a non-empty tensor (its range defines the scale)", f"shape {x.shape}")
    hi, lo = x.max(), x.min()
    # max / min propagate NaN and show any ±inf, so they decide finiteness without a pass of
    # isfinite over x; finite() then names the first offending element
    if not (np.isfinite(hi) and np.isfinite(lo)):
        finite(x, "x")
    f32 = np.float32
    r_max = max(f32(0), hi)
    r_min = min(f32(0), lo)
    span = f32(1) if r_max == r_min else f32(r_max - r_min)
    scale = f32(span / f32(255))
    zp = np.rint(np.clip(f32(0) - f32(r_min / scale), f32(0), f32(255)))
    if fast is not None:  # the same float32 operations in one pass (kernels/numba/dynamic_quantize.py)
        return fast(x, scale, zp), np.array(scale, np.float32), np.array(zp, np.uint8)
    # eq. DQ3 step by step in one float32 buffer (the same IEEE operations as
    # clip(rint(x / scale) + zp, 0, 255), without a temporary per step)
    y = np.divide(x, scale, dtype=np.float32)
    np.rint(y, out=y)
    np.add(y, zp, out=y)
    np.clip(y, 0, 255, out=y)
    return y.astype(np.uint8), np.array(scale, np.float32), np.array(zp, np.uint8)


def dynamic_quantize_rows(x, *, backend="auto"):
    """DynamicQuantizeLinear applied to each row of x on its own ("per-token" dynamic quantization).

    x float32 (M, K), finite, K >= 1. For every row m, eqs. DQ1–DQ3 with the
    range of that row only, in the same float32 operations as
    :func:`dynamic_quantize_linear`::

        r_min[m] = min(0, min_k x[m, k]),  r_max[m] = max(0, max_k x[m, k])
        y_scale[m] = (r_max[m] − r_min[m]) / 255  (1/255 when equal)
        y_zero_point[m] = round(clip(−r_min[m] / y_scale[m], 0, 255))
        y[m, k] = clip(round(x[m, k] / y_scale[m]) + y_zero_point[m], 0, 255)

    Returns (y uint8 (M, K), y_scale float32 (M,), y_zero_point uint8 (M,)); row m
    equals dynamic_quantize_linear(x[m]) exactly. A token whose activations are
    small is no longer quantized with the step of the largest one in the batch
    (the outlier features of transformers: Dettmers et al. 2022, LLM.int8(),
    §3; Yao et al. 2022, ZeroQuant, §3 "token-wise quantization"). ONNX has no
    such op; refcomp.onnx.export writes it as ReduceMin/ReduceMax per row and
    the float32 Div / Round / Clip of these equations (docs/onnx.md, "Styles").
    """
    fast = _backend.implementation("dynamic_quantize_rows", backend)
    x = numeric_array(x, "x")
    dtype_in(x, "x", (np.float32,))
    if x.ndim != 2 or x.shape[1] == 0:
        raise ShapeError("x", "a (M, K) matrix with K >= 1 (each row's range defines its scale)", f"shape {x.shape}")
    finite(x, "x")
    if fast is not None:  # the same float32 operations, one pass per row (csrc/dynamic_quantize.c)
        return fast(x)
    f32 = np.float32
    r_max = np.maximum(f32(0), x.max(axis=1, initial=-np.inf))
    r_min = np.minimum(f32(0), x.min(axis=1, initial=np.inf))
    span = np.where(r_max == r_min, f32(1), (r_max - r_min).astype(f32))
    scale = (span / f32(255)).astype(f32)
    zp = np.rint(np.clip(f32(0) - (r_min / scale).astype(f32), f32(0), f32(255)))
    y = np.clip(np.rint(x / scale[:, None]) + zp[:, None], 0, 255)
    return y.astype(np.uint8), scale, zp.astype(np.uint8)
