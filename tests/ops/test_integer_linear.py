"""Integer-only Linear / Conv2d (eqs. I1-I4) against the arithmetic written out with Python integers.

The oracle shares no code with refcomp: the accumulator is a Python-int sum,
and the requantization is gemmlowp's SaturatingRoundingDoublingHighMul and
RoundingDivideByPOT transcribed from fixedpoint.h (C division truncates
toward zero; the rounding shift rounds ties away from zero).
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp.errors import OverflowRiskError, ShapeError
from refcomp.ops import conv_integer
from refcomp.ops.integer_linear import (
    integer_conv2d,
    integer_linear,
    requantization_params,
    requantize_accumulators,
)

I32_MIN, I32_MAX = -(2**31), 2**31 - 1


def srdhm(a: int, b: int) -> int:
    if a == b == I32_MIN:
        return I32_MAX
    ab = a * b
    nudge = 1 << 30 if ab >= 0 else 1 - (1 << 30)
    q = abs(ab + nudge) // (1 << 31)
    return q if ab + nudge >= 0 else -q


def rdivpot(x: int, e: int) -> int:
    mask = (1 << e) - 1
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if (x & mask) > threshold else 0)


def requant(acc: int, m: int, shift: int, z: int, lo: int, hi: int) -> int:
    left, right = max(shift, 0), max(-shift, 0)
    return min(max(rdivpot(srdhm(acc * (1 << left), m), right) + z, lo), hi)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 4), k=st.integers(1, 9), o=st.integers(1, 5),
       act=st.sampled_from(["uint8", "int8"]), bias=st.booleans())
def test_integer_linear_equals_written_out_arithmetic(seed, n, k, o, act, bias):
    rng = np.random.default_rng(seed)
    lo, hi = (0, 255) if act == "uint8" else (-128, 127)
    q_x = rng.integers(lo, hi + 1, size=(n, k)).astype(act)
    w = rng.integers(-127, 128, size=(o, k)).astype(np.int8)
    z_x, z_y = int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1))
    s_x, s_y = np.float32(rng.uniform(1e-3, 0.1)), np.float32(rng.uniform(1e-2, 1.0))
    s_w = rng.uniform(1e-3, 0.05, size=o).astype(np.float32)
    b = rng.normal(size=o).astype(np.float32) if bias else None
    q_b, m, sh = requantization_params(s_x, s_w, s_y, b)
    got = integer_linear(q_x, np.array(z_x, act), np.ascontiguousarray(w.T), q_b, m, sh, np.array(z_y, act),
                         y_dtype=act)
    for i in range(n):
        for j in range(o):
            acc = sum((int(q_x[i, t]) - z_x) * int(w[j, t]) for t in range(k)) + (int(q_b[j]) if bias else 0)
            assert got[i, j] == requant(acc, int(m[j]), int(sh[j]), z_y, lo, hi)
    # eqs. (I2)-(I3) written out: the bias on the accumulator's grid, M = s_x·s_w / s_y within 2^-31
    unit = np.float64(s_x) * s_w.astype(np.float64)
    if bias:
        np.testing.assert_array_equal(q_b, np.rint(b.astype(np.float64) / unit))
    np.testing.assert_allclose(m * 2.0 ** (sh.astype(np.float64) - 31), unit / np.float64(s_y), rtol=2**-30)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), padding=st.integers(0, 2), stride=st.integers(1, 3),
       dilation=st.integers(1, 2), act=st.sampled_from(["uint8", "int8"]), group=st.sampled_from([1, 2]))
def test_integer_conv2d_equals_conv_integer(seed, padding, stride, dilation, act, group):
    """The im2col + MatMulInteger route (groups = 1) gives exactly ConvInteger's sums, padded with z_x."""
    rng = np.random.default_rng(seed)
    lo, hi = (0, 255) if act == "uint8" else (-128, 127)
    q_x = rng.integers(lo, hi + 1, size=(2, 2 * group, 7, 7)).astype(act)
    w = rng.integers(-127, 128, size=(3 * group, 2, 3, 3)).astype(np.int8)
    z_x, z_y = np.array(rng.integers(lo, hi + 1), act), np.array(rng.integers(lo, hi + 1), act)
    q_b, m, sh = requantization_params(np.float32(0.02), np.full(3 * group, 0.01, np.float32), np.float32(0.5),
                                       rng.normal(size=3 * group))
    got = integer_conv2d(q_x, z_x, w, q_b, m, sh, z_y, y_dtype=act, strides=(stride,) * 2, pads=(padding,) * 2,
                         dilations=(dilation,) * 2, group=group)
    acc = conv_integer(q_x, w, z_x, None, strides=[stride] * 2, pads=[padding] * 4, dilations=[dilation] * 2,
                       group=group)
    acc = (acc.astype(np.int64) + q_b.reshape(-1, 1, 1)).astype(np.int32)
    np.testing.assert_array_equal(got, requantize_accumulators(acc, m, sh, z_y, y_dtype=act))


def test_bad_input_is_named():
    q_b, m, sh = requantization_params(np.float32(1), np.ones(2, np.float32), np.float32(1), None)
    with pytest.raises(ShapeError, match="fc input"):
        integer_linear(np.zeros((2, 3), np.uint8), np.uint8(0), np.zeros((4, 2), np.int8), None, m, sh,
                       np.uint8(0), y_dtype="uint8", name="fc")
    with pytest.raises(ShapeError, match="conv input"):
        integer_conv2d(np.zeros((1, 1, 2, 2), np.uint8), np.uint8(0), np.zeros((2, 1, 3, 3), np.int8), None, m, sh,
                       np.uint8(0), y_dtype="uint8", name="conv")
    with pytest.raises(OverflowRiskError, match="fc.bias"):
        requantization_params(np.float32(1e-6), np.full(2, 1e-6, np.float32), np.float32(1), np.ones(2), name="fc")
