"""An integer-only model's output codes from the formulas alone (shared by test_integer_model, test_simulate).

No refcomp op in it: Python integers and fractions, and the direct convolution of conv_reference.
"""

import math
from fractions import Fraction

import numpy as np

from ..conv_reference import conv2d


def _srdhm(a, b):
    """gemmlowp SaturatingRoundingDoublingHighMul: a·b / 2^31, ties upward, C's division toward zero."""
    v = a * b + (2**30 if a * b >= 0 else 1 - 2**30)
    q = abs(v) // 2**31 if v >= 0 else -(abs(v) // 2**31)
    return max(min(q, 2**31 - 1), -2**31)


def _rdivpot(v, e):
    """gemmlowp RoundingDivideByPOT: v / 2^e, ties away from zero."""
    mask = (1 << e) - 1
    rem, thresh = v & mask, (mask >> 1) + (1 if v < 0 else 0)
    return (v >> e) + (1 if rem > thresh else 0)


def _multiplier(s_x, s_w, s_y):
    """TFLite QuantizeMultiplier of the exact M = s_x·s_w / s_y (the float32 scales read as fractions):
    M = q·2^n with q in [1/2, 1), m = ⌊q·2^31 + ½⌋; m = 2^31 carries into n."""
    M = Fraction(float(s_x)) * Fraction(float(s_w)) / Fraction(float(s_y))
    n = math.floor(math.log2(M)) + 1
    while M / Fraction(2) ** n >= 1:
        n += 1
    while M / Fraction(2) ** n < Fraction(1, 2):
        n -= 1
    m = math.floor(M / Fraction(2) ** n * 2**31 + Fraction(1, 2))
    return (m // 2, n + 1) if m == 2**31 else (m, n)


def _requantize(acc, q_b, s_x, s_w, oq, relu):
    """acc (…, C) int64 per output channel c (last axis) -> output codes (eq. I4; a fused ReLU clamps at z_y)."""
    s_y, z_y = np.float32(oq.scale), int(oq.zero_point)
    lo, hi = (0, 255) if oq.dtype.name == "uint8" else (-128, 127)
    out = np.empty(acc.shape, np.int64)
    for c in range(acc.shape[-1]):
        m, n = _multiplier(s_x, s_w[c], s_y)
        for idx in np.ndindex(acc.shape[:-1]):
            y = _rdivpot(_srdhm((int(acc[idx + (c,)]) + q_b[c]) * 2 ** max(n, 0), m), max(-n, 0)) + z_y
            out[idx + (c,)] = min(max(y, z_y if relu else lo), hi)
    return out


def _conv(d, q_w, layer):
    """Σ d·q_w over each receptive field: d (N, C, H, W) centred codes (x − z_x, so zero padding is z_x
    padding), the kernel dilated by inserting zeros, the stride by keeping every s-th output, groups by
    convolving each group's channels with its own filters. Returns (N, O, OH, OW) int64."""
    (ph, pw), (sh, sw), (dh, dw), g = layer.padding, layer.stride, layer.dilation, layer.groups
    d = np.pad(d, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    o, cg, kh, kw = q_w.shape
    wd = np.zeros((o, cg, (kh - 1) * dh + 1, (kw - 1) * dw + 1), np.int64)
    wd[:, :, ::dh, ::dw] = q_w
    og = o // g
    parts = [conv2d(d[:, i * cg:(i + 1) * cg], wd[i * og:(i + 1) * og]) for i in range(g)]
    return np.concatenate(parts, axis=1)[:, :, ::sh, ::sw]


def oracle_codes(im, x):
    """The integer model's output codes from the formulas alone, in Python integers:
    QuantizeLinear q = clip(round_half_even(f32(x) / f32(s)) + z) (ONNX QuantizeLinear-19);
    acc = Σ (q_x − z_x)·q_w + round_half_even(b / (s_x·s_w)) (Jacob et al. 2018 eq. 7-9);
    M = s_x·s_w / s_y exactly, (m, n) by TFLite QuantizeMultiplier (m = ⌊q·2³¹ + ½⌋);
    y = clip(RDivPOT(SRDHM(acc·2^max(n,0), m), max(−n,0)) + z_y) with gemmlowp's roundings
    (SRDHM ties upward, RDivPOT ties away from zero); a fused ReLU clamps at z_y, a ReLU after
    anything else clamps the codes at the zero point they carry; Dropout is the identity;
    MaxPool2d(2) takes the max of the codes (max commutes with a monotone map)."""
    qx = im["quantize"].qparams
    lo, hi = (0, 255) if qx.dtype.name == "uint8" else (-128, 127)
    s_x, z_x = np.float32(qx.scale), int(qx.zero_point)
    codes = np.clip(np.rint(x.astype(np.float32) / s_x) + z_x, lo, hi).astype(np.int64)
    layers = list(im["model"])
    fused = set()
    for i, layer in enumerate(layers):
        kind = type(layer).__name__
        if kind == "MaxPool2d":
            assert layer.kernel_size == (2, 2) and layer.stride == (2, 2)
            n_, c_, h_, w_ = codes.shape
            codes = codes[:, :, :h_ // 2 * 2, :w_ // 2 * 2].reshape(n_, c_, h_ // 2, 2, w_ // 2, 2).max(axis=(3, 5))
        elif kind == "Flatten":
            codes = codes.reshape(len(codes), -1)
        elif kind == "ReLU":
            if i not in fused:
                codes = np.maximum(codes, z_x)
        elif kind in ("Linear", "Conv2d"):
            relu = i + 1 < len(layers) and type(layers[i + 1]).__name__ == "ReLU"
            if relu:
                fused.add(i + 1)
            q_w = layer.weight.data.astype(np.int64)
            s_w = np.asarray(layer.weight.qparams.scale, np.float32).reshape(-1)
            s_w = np.broadcast_to(s_w, (len(q_w),))
            q_b = [0] * len(q_w) if layer.bias is None else [
                int(np.rint(np.float64(layer.bias.data[o]) / (np.float64(s_x) * np.float64(s_w[o]))))
                for o in range(len(q_w))]
            if kind == "Linear":
                acc = (codes - z_x) @ q_w.T                                   # (N, O)
            else:
                acc = np.moveaxis(_conv(codes - z_x, q_w, layer), 1, -1)      # (N, OH, OW, O)
            codes = _requantize(acc, q_b, s_x, s_w, layer.output_qparams, relu)
            if kind == "Conv2d":
                codes = np.moveaxis(codes, -1, 1)
            s_x, z_x = np.float32(layer.output_qparams.scale), int(layer.output_qparams.zero_point)
        else:
            assert kind == "Dropout", kind
    return codes
