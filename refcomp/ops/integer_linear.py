"""Integer-only Linear and Conv2d: uint8/int8 codes in, codes out, int32 accumulators.

Jacob et al. 2018 (arXiv:1712.05877) §2: with per-tensor activation
parameters (s_x, z_x), (s_y, z_y) and per-output-channel symmetric weights
(s_w[o], z_w = 0), a layer y = W x + b becomes, in integers
(docs/gptq_and_ptq.md §7, eqs. I1-I4)::

    acc[o]  = Σ_k (q_x[k] − z_x) · q_w[o, k]  +  q_b[o]                     (I1)
    q_b[o]  = round_half_even(b[o] / (s_x · s_w[o]))          int32          (I2)
    M[o]    = s_x · s_w[o] / s_y  ≈  m[o] · 2^(shift[o] − 31)                (I3)
    q_y[o]  = clip(MultiplyByQuantizedMultiplier(acc[o], m[o], shift[o]) + z_y,
                   q_min, q_max)                                              (I4)

(I4) has a second form, ``method="float"``: ONNX QLinearMatMul / QLinearConv
as onnxruntime computes them (eq. R1 of refcomp/ops/requantize.py)::

    M[o]    = f32( f32(s_x · s_w[o]) / s_y )                                  (I3')
    q_y[o]  = clip( round_half_even( f32(acc[o]) ·f32 M[o] ) + z_y, q_min, q_max )   (I4')

with the same int32 bias (I2). It is what an exported QOperator graph
computes (refcomp.onnx.export), so the integer model chosen with it
(``quantize_static(..., requantize="float")``) equals that graph bit for bit.

(I1) runs through :func:`refcomp.ops.matmul_integer` (exact, int32; its fast
kernels are used when the accumulator provably fits int32) — a convolution
as im2col of the codes times the kernel matrix (groups = 1), or
:func:`refcomp.ops.conv_integer` itself (groups > 1); the two are the same
integer sums. (I4) is :func:`refcomp.ops.requantize` with
``method="fixed_point"``: gemmlowp's SaturatingRoundingDoublingHighMul then
RoundingDivideByPOT. A ReLU after the layer is exact on codes: z_y is the
code of the real 0, so max(q_y, z_y) is the quantization of relu(ŷ).

These are TFLite's reference kernels ``reference_integer_ops::FullyConnected``
and ``ConvPerChannel`` (per-channel multipliers, int32 bias), written with the
ONNX ops of this package. Shapes:

    q_x      (N, K) codes (Linear) or (N, C, H, W) codes (Conv2d), uint8 or int8
    w_codes  (O, K) or (O, C/groups, kh, kw), int8 with z_w = 0
    q_bias   (O,) int32 or None        multiplier, shift  (O,) int32
    result   (N, O) or (N, O, OH, OW) codes of ``y_dtype``
"""

from __future__ import annotations

import numpy as np

from ..errors import OverflowRiskError, ShapeError, ValidationError
from .conv_integer import conv_integer
from .im2col import conv_output_size, im2col
from .matmul_integer import matmul_integer
from .requantize import quantize_multiplier, real_multiplier, requantize

__all__ = ["requantization_params", "integer_linear", "integer_conv2d", "requantize_accumulators",
           "REQUANTIZE_METHODS", "check_requantize"]

#: the two forms of eq. (I4): gemmlowp fixed point (default) and ONNX's float32 (I4')
REQUANTIZE_METHODS = ("fixed_point", "float")


def check_requantize(method, argument: str = "requantize") -> str:
    """``method`` if it is one of REQUANTIZE_METHODS, else ValidationError naming ``argument``."""
    if not isinstance(method, str) or method not in REQUANTIZE_METHODS:
        raise ValidationError(argument, f"one of {REQUANTIZE_METHODS}", repr(method))
    return method

_I32_MIN, _I32_MAX = -(2**31), 2**31 - 1


def requantization_params(x_scale, w_scale, y_scale, bias, *, name: str = "layer", method: str = "fixed_point"):
    """Eqs. (I2)-(I3): (q_bias int32 (O,) or None, multiplier int32 (O,), shift int32 (O,)).

    With ``method="float"`` (I3'): (q_bias, M float32 (O,), None), M as
    onnxruntime forms it from the stored float32 scales.

    ``x_scale``, ``y_scale``: the float32 per-tensor scales; ``w_scale``:
    float32 (O,); ``bias``: float (O,) or None. The products are formed in
    float64 from the float32 values a runtime stores, so a reader of the
    stored scales derives the same integers. A bias outside int32 raises
    OverflowRiskError naming ``{name}.bias``.
    """
    s_w = np.asarray(w_scale, dtype=np.float32).reshape(-1)
    s_x = np.float64(np.asarray(x_scale, dtype=np.float32).reshape(()))
    s_y = np.float64(np.asarray(y_scale, dtype=np.float32).reshape(()))
    unit = s_x * s_w.astype(np.float64)                 # the real value of one accumulator step
    q_b = None
    if bias is not None:
        qb = np.rint(np.asarray(bias, dtype=np.float64).reshape(-1) / unit)
        if np.any(qb < _I32_MIN) or np.any(qb > _I32_MAX):
            raise OverflowRiskError(f"{name}.bias", "b / (s_x·s_w) within int32", f"range [{qb.min()}, {qb.max()}]")
        q_b = qb.astype(np.int32)
    if check_requantize(method, "method") == "float":
        M = real_multiplier(np.float32(s_x), s_w, np.float32(s_y))
        return q_b, np.asarray(M, np.float32).reshape(-1), None
    m, sh = quantize_multiplier(unit / s_y)
    return q_b, np.asarray(m, np.int32).reshape(-1), np.asarray(sh, np.int32).reshape(-1)


def requantize_accumulators(acc, multiplier, shift, y_zero_point, *, y_dtype, channel_axis: int = 1) -> np.ndarray:
    """Eq. (I4): int32 accumulators (channel along ``channel_axis``) -> output codes of ``y_dtype``.

    ``shift`` None means eq. (I4'): ``multiplier`` is the float32 M of (I3').
    ``y_zero_point`` is per tensor: one value, of any size-1 shape (else ShapeError).
    The channel axis is moved last and the rest flattened, so the 2-D
    per-column requantization kernel (refcomp.kernels) is used when registered.
    """
    moved = np.moveaxis(acc, channel_axis, -1)
    shape = moved.shape
    flat = np.ascontiguousarray(moved.reshape(-1, shape[-1]))
    zp = np.asarray(y_zero_point).astype(np.int64)
    if zp.size != 1:
        raise ShapeError("y_zero_point", "a scalar (per-tensor, eq. I4)", f"shape {zp.shape}")
    zp = zp.reshape(())
    if shift is None:
        y = requantize(flat, np.asarray(multiplier, np.float32), zp, output_dtype=y_dtype, method="float", axis=1)
    else:
        y = requantize(flat, (multiplier, shift), zp, output_dtype=y_dtype, method="fixed_point", axis=1)
    return np.moveaxis(y.reshape(shape), -1, channel_axis)


def _add_bias(acc: np.ndarray, q_bias, name: str) -> np.ndarray:
    """acc + q_b (eq. I1's last term), checked to stay within int32 as a runtime's adder would need."""
    if q_bias is None:
        return acc
    total = acc.astype(np.int64) + q_bias.reshape((-1,) + (1,) * (acc.ndim - 2))
    if total.size and (total.min() < _I32_MIN or total.max() > _I32_MAX):
        raise OverflowRiskError(f"{name} accumulator", "acc + bias within int32",
                                f"range [{total.min()}, {total.max()}]")
    return total.astype(np.int32)


def integer_linear(q_x, x_zero_point, w_codes_t, q_bias, multiplier, shift, y_zero_point, *, y_dtype,
                   name: str = "layer") -> np.ndarray:
    """Eqs. (I1) + (I4) for a Linear: (N, K) codes -> (N, O) codes.

    ``w_codes_t`` is the weight transposed, (K, O): B of MatMulInteger, an
    int8 / uint8 array or a :class:`refcomp.ops.PackedWeight` with zero point
    0 (a layer's weight, packed once).
    """
    if q_x.ndim != 2 or q_x.shape[1] != w_codes_t.shape[0]:
        raise ShapeError(f"{name} input", f"(N, {w_codes_t.shape[0]}) codes", q_x.shape)
    acc = matmul_integer(q_x, w_codes_t, np.asarray(x_zero_point).reshape(()), None)
    return requantize_accumulators(_add_bias(acc, q_bias, name), multiplier, shift, y_zero_point,
                                   y_dtype=y_dtype, channel_axis=1)


def integer_conv2d(q_x, x_zero_point, w_codes, q_bias, multiplier, shift, y_zero_point, *, y_dtype,
                   strides=(1, 1), pads=(0, 0), dilations=(1, 1), group: int = 1, name: str = "layer"
                   ) -> np.ndarray:
    """Eqs. (I1) + (I4) for a Conv2d: (N, C, H, W) codes -> (N, O, OH, OW) codes.

    ``pads`` = (ph, pw), symmetric. With ``group == 1`` the sums run as im2col
    + MatMulInteger (the registered GEMM kernels); the input is padded with
    the code z_x — the real 0, contributing 0 to every sum, as ConvInteger
    pads — and each output position's receptive field becomes a row of the
    (N·OH·OW, C·kh·kw) code matrix. With groups, :func:`conv_integer`.
    Both give the same integers (tested).
    """
    zp = np.asarray(x_zero_point).reshape(())
    if q_x.ndim != 4 or q_x.shape[1] != w_codes.shape[1] * group:
        raise ShapeError(f"{name} input", f"(N, {w_codes.shape[1] * group}, H, W) codes", q_x.shape)
    kh, kw = w_codes.shape[2:]
    (sh, sw), (ph, pw), (dh, dw) = strides, pads, dilations
    n, _, h, w = q_x.shape
    oh, ow = conv_output_size(h, kh, sh, ph, dh), conv_output_size(w, kw, sw, pw, dw)
    if oh < 1 or ow < 1:
        raise ShapeError(f"{name} input", "spatial size at least the dilated kernel", q_x.shape)
    if group == 1:
        qp = np.pad(q_x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=zp) if ph or pw else q_x
        cols = np.ascontiguousarray(im2col(qp, (kh, kw), (sh, sw), (dh, dw), (oh, ow)).T)   # (N·OH·OW, K)
        w_t = np.ascontiguousarray(w_codes.reshape(w_codes.shape[0], -1).T)                 # (K, O)
        acc = matmul_integer(cols, w_t, zp, None)                                            # (N·OH·OW, O)
        acc = np.ascontiguousarray(acc.reshape(n, oh, ow, -1).transpose(0, 3, 1, 2))
    else:
        acc = conv_integer(q_x, w_codes, zp, None, strides=list(strides), pads=[ph, pw, ph, pw],
                           dilations=list(dilations), group=group)
    return requantize_accumulators(_add_bias(acc, q_bias, name), multiplier, shift, y_zero_point,
                                   y_dtype=y_dtype, channel_axis=1)
