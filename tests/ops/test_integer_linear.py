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

from refcomp.errors import OverflowRiskError, ShapeError, ValidationError
from refcomp.ops import conv_integer
from refcomp.ops.integer_linear import (
    check_requantize,
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


def random_linear(seed, n, k, o, act, bias):
    """A random quantized Linear: (lo, hi, q_x (n, k), w int8 (o, k), z_x, z_y, s_x, s_y, s_w (o,), b or None)."""
    rng = np.random.default_rng(seed)
    lo, hi = (0, 255) if act == "uint8" else (-128, 127)
    q_x = rng.integers(lo, hi + 1, size=(n, k)).astype(act)
    w = rng.integers(-127, 128, size=(o, k)).astype(np.int8)
    z_x, z_y = int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1))
    s_x, s_y = np.float32(rng.uniform(1e-3, 0.1)), np.float32(rng.uniform(1e-2, 1.0))
    s_w = rng.uniform(1e-3, 0.05, size=o).astype(np.float32)
    b = rng.normal(size=o).astype(np.float32) if bias else None
    return lo, hi, q_x, w, z_x, z_y, s_x, s_y, s_w, b


def exact_accumulator(q_x, z_x, w, q_b, i, j):
    """Σ_t (q_x[i, t] − z_x)·w[j, t] (+ q_b[j]) in Python ints."""
    acc = sum((int(q_x[i, t]) - z_x) * int(w[j, t]) for t in range(q_x.shape[1]))
    return acc + (0 if q_b is None else int(q_b[j]))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 4), k=st.integers(1, 9), o=st.integers(1, 5),
       act=st.sampled_from(["uint8", "int8"]), bias=st.booleans())
def test_integer_linear_equals_written_out_arithmetic(seed, n, k, o, act, bias):
    lo, hi, q_x, w, z_x, z_y, s_x, s_y, s_w, b = random_linear(seed, n, k, o, act, bias)
    q_b, m, sh = requantization_params(s_x, s_w, s_y, b)
    got = integer_linear(q_x, np.array(z_x, act), np.ascontiguousarray(w.T), q_b, m, sh, np.array(z_y, act),
                         y_dtype=act)
    for i in range(n):
        for j in range(o):
            acc = exact_accumulator(q_x, z_x, w, q_b if bias else None, i, j)
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


# ---------------------------------------------------------------- geometry per dimension, defaults, bad input


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), pads=st.tuples(st.integers(0, 2), st.integers(0, 2)),
       strides=st.tuples(st.integers(1, 3), st.integers(1, 3)), dilations=st.tuples(st.integers(1, 2), st.integers(1, 2)))
def test_integer_conv2d_geometry_is_read_per_dimension(seed, pads, strides, dilations):
    """Height and width take their own padding, stride and dilation (padding one of them only pads with z_x too)."""
    rng = np.random.default_rng(seed)
    q_x = rng.integers(0, 256, size=(2, 2, 6, 7)).astype(np.uint8)
    w = rng.integers(-127, 128, size=(3, 2, 3, 2)).astype(np.int8)
    z_x, z_y = np.uint8(rng.integers(0, 256)), np.uint8(rng.integers(0, 256))
    q_b, m, sh = requantization_params(np.float32(0.02), rng.uniform(0.005, 0.02, 3).astype(np.float32),
                                       np.float32(0.5), None)
    got = integer_conv2d(q_x, z_x, w, q_b, m, sh, z_y, y_dtype="uint8", strides=strides, pads=pads,
                         dilations=dilations)
    acc = conv_integer(q_x, w, z_x, None, strides=list(strides), pads=[pads[0], pads[1], pads[0], pads[1]],
                       dilations=list(dilations))
    assert got.shape == acc.shape and got.dtype == np.uint8
    for idx in np.ndindex(*acc.shape):
        assert got[idx] == requant(int(acc[idx]), int(m[idx[1]]), int(sh[idx[1]]), int(z_y), 0, 255)


def test_integer_conv2d_defaults_are_a_plain_convolution():
    """Defaults: stride 1, no padding, dilation 1, one group."""
    rng = np.random.default_rng(5)
    q_x = rng.integers(-128, 128, size=(1, 2, 5, 5)).astype(np.int8)
    w = rng.integers(-127, 128, size=(2, 2, 3, 3)).astype(np.int8)
    q_b, m, sh = requantization_params(np.float32(0.02), np.full(2, 0.01, np.float32), np.float32(0.5), None)
    got = integer_conv2d(q_x, np.int8(3), w, q_b, m, sh, np.int8(-4), y_dtype="int8")
    acc = conv_integer(q_x, w, np.int8(3), None)
    assert got.shape == (1, 2, 3, 3)
    np.testing.assert_array_equal(got, requantize_accumulators(acc, m, sh, np.int8(-4), y_dtype="int8"))


def test_bad_conv_input_is_refused_by_name():
    """A 3-D input, a wrong channel count, or a kernel larger than the input in one dimension only:
    ShapeError naming the layer ("layer" unless named)."""
    q_b, m, sh = requantization_params(np.float32(1), np.ones(2, np.float32), np.float32(1), None)
    w = np.zeros((2, 1, 3, 3), np.int8)
    for q_x in (np.zeros((1, 4, 4), np.uint8), np.zeros((1, 2, 4, 4), np.uint8), np.zeros((1, 1, 2, 4), np.uint8),
                np.zeros((1, 1, 4, 2), np.uint8)):
        with pytest.raises(ShapeError, match="layer input"):
            integer_conv2d(q_x, np.uint8(0), w, None, m, sh, np.uint8(0), y_dtype="uint8")
    with pytest.raises(ShapeError, match="layer input"):
        integer_linear(np.zeros((2, 3), np.uint8), np.uint8(0), np.zeros((4, 2), np.int8), None, m, sh,
                       np.uint8(0), y_dtype="uint8")


# ---------------------------------------------------------------- eq. (I4'): the float32 requantization


def float_requant(acc: int, M: np.float32, z: int, lo: int, hi: int) -> int:
    """Eq. (I4') written out: f32(acc) times M in float32, rounded half to even, plus z_y, clipped."""
    r = np.float32(acc) * M
    assert r.dtype == np.float32
    return min(max(int(np.rint(r)) + z, lo), hi)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 3), k=st.integers(1, 9), o=st.integers(1, 4),
       act=st.sampled_from(["uint8", "int8"]), bias=st.booleans())
def test_float_method_is_onnx_float32_requantization(seed, n, k, o, act, bias):
    lo, hi, q_x, w, z_x, z_y, s_x, s_y, s_w, b = random_linear(seed, n, k, o, act, bias)
    q_b, M, shift = requantization_params(s_x, s_w, s_y, b, method="float")
    # eq. (I3'): M = f32(f32(s_x · s_w) / s_y); the bias is eq. (I2), as for the fixed-point form
    assert shift is None and M.dtype == np.float32 and M.shape == (o,)
    np.testing.assert_array_equal(M, (s_x * s_w) / s_y)
    if bias:
        np.testing.assert_array_equal(q_b, requantization_params(s_x, s_w, s_y, b)[0])
    got = integer_linear(q_x, np.array(z_x, act), np.ascontiguousarray(w.T), q_b, M, None, np.array(z_y, act),
                         y_dtype=act)
    assert got.dtype == np.dtype(act) and got.shape == (n, o)
    for i in range(n):
        for j in range(o):
            acc = exact_accumulator(q_x, z_x, w, q_b if bias else None, i, j)
            assert got[i, j] == float_requant(acc, M[j], z_y, lo, hi)


def test_float_method_on_a_convolution_keeps_channels_in_place():
    rng = np.random.default_rng(9)
    q_x = rng.integers(-128, 128, size=(2, 2, 5, 4)).astype(np.int8)
    w = rng.integers(-127, 128, size=(3, 2, 2, 2)).astype(np.int8)
    q_b, M, shift = requantization_params(np.float32(0.03), rng.uniform(0.002, 0.02, 3).astype(np.float32),
                                          np.float32(0.2), rng.normal(size=3), method="float")
    got = integer_conv2d(q_x, np.int8(-5), w, q_b, M, shift, np.int8(7), y_dtype="int8", pads=(1, 0))
    acc = conv_integer(q_x, w, np.int8(-5), None, pads=[1, 0, 1, 0])
    assert got.shape == acc.shape == (2, 3, 6, 3) and got.dtype == np.int8
    for idx in np.ndindex(*acc.shape):
        assert got[idx] == float_requant(int(acc[idx]) + int(q_b[idx[1]]), M[idx[1]], 7, -128, 127)


# ---------------------------------------------------------------- eqs. (I2)-(I3): what the parameters are read as


def test_parameters_are_read_as_the_stored_float32_scales():
    """Scales given in float64 (or of any shape holding their values, e.g. a conv's (O, 1, 1, 1)) give the integers of the
    float32 values a runtime stores; the bias codes are int32 (O,)."""
    s_x, s_y = 0.1 + 1e-12, 0.7 + 1e-12
    s_w = np.array([0.013, 0.021, 0.0007]) + 1e-12
    b = np.array([0.5, -1.25, 3.0])
    f32 = (np.float32(s_x), s_w.astype(np.float32), np.float32(s_y))
    for method in ("fixed_point", "float"):
        want = requantization_params(*f32, b, method=method)
        for got in (requantization_params(s_x, s_w, s_y, b, method=method),
                    requantization_params(np.array([[s_x]]), s_w.reshape(3, 1, 1, 1), np.array([[s_y]]), b,
                                          method=method)):
            assert got[0].dtype == np.int32 and got[0].shape == (3,)
            for g, w_ in zip(got, want):
                if w_ is None:
                    assert g is None
                else:
                    assert g.dtype == w_.dtype and g.shape == w_.shape == (3,)
                    np.testing.assert_array_equal(g, w_)


def test_requantize_method_is_one_of_two():
    assert check_requantize("float") == "float" and check_requantize("fixed_point") == "fixed_point"
    for bad in ("bogus", "FLOAT", None, 1):
        with pytest.raises(ValidationError) as e:
            check_requantize(bad)
        assert e.value.argument == "requantize"
        with pytest.raises(ValidationError) as e:
            requantization_params(np.float32(1), np.ones(2, np.float32), np.float32(1), None, method=bad)
        assert e.value.argument == "method"


# ---------------------------------------------------------------- the bias adder, zero points


def test_accumulator_plus_bias_may_reach_both_ends_of_int32_but_not_beyond():
    """acc + q_b is checked as a runtime's int32 adder needs: I32_MIN and I32_MAX themselves are fine."""
    m, sh = np.array([2**30], np.int32), np.array([0], np.int32)
    q_x = np.array([[255]], np.uint8)
    for w, edge in ((127, I32_MAX), (-128, I32_MIN)):
        w_t = np.array([[w]], np.int8)
        q_b = np.array([edge - 255 * w], np.int32)
        got = integer_linear(q_x, np.uint8(0), w_t, q_b, m, sh, np.uint8(0), y_dtype="uint8")
        assert got.item() == requant(edge, 2**30, 0, 0, 0, 255)
        beyond = np.array([edge - 255 * w + (1 if edge > 0 else -1)], np.int64)
        with pytest.raises(OverflowRiskError, match="layer accumulator"):
            integer_linear(q_x, np.uint8(0), w_t, beyond, m, sh, np.uint8(0), y_dtype="uint8")
        with pytest.raises(OverflowRiskError, match="fc accumulator"):
            integer_linear(q_x, np.uint8(0), w_t, beyond, m, sh, np.uint8(0), y_dtype="uint8", name="fc")


def test_zero_points_are_scalars_of_any_size_one_shape():
    rng = np.random.default_rng(11)
    q_b, m, sh = requantization_params(np.float32(0.02), np.full(2, 0.01, np.float32), np.float32(0.5), None)
    q_x = rng.integers(0, 256, size=(3, 4)).astype(np.uint8)
    w_t = rng.integers(-127, 128, size=(4, 2)).astype(np.int8)
    want = integer_linear(q_x, np.uint8(7), w_t, None, m, sh, np.uint8(9), y_dtype="uint8")
    for z_x, z_y in ((np.array([7], np.uint8), np.array([9], np.uint8)),
                     (np.array([[7]], np.uint8), np.array([[9]], np.uint8))):
        np.testing.assert_array_equal(integer_linear(q_x, z_x, w_t, None, m, sh, z_y, y_dtype="uint8"), want)
    x4 = rng.integers(0, 256, size=(1, 2, 4, 4)).astype(np.uint8)
    w4 = rng.integers(-127, 128, size=(2, 2, 3, 3)).astype(np.int8)
    want = integer_conv2d(x4, np.uint8(7), w4, None, m, sh, np.uint8(9), y_dtype="uint8", pads=(1, 1))
    got = integer_conv2d(x4, np.array([[7]], np.uint8), w4, None, m, sh, np.array([[9]], np.uint8), y_dtype="uint8",
                         pads=(1, 1))
    np.testing.assert_array_equal(got, want)
    with pytest.raises(ShapeError) as e:
        integer_linear(q_x, np.uint8(7), w_t, None, m, sh, np.array([9, 9], np.uint8), y_dtype="uint8")
    assert e.value.argument == "y_zero_point"


def test_conv_accumulator_overflow_and_the_float_multiplier_as_given():
    """A convolution's acc + bias outside int32 is named like a Linear's; eq. (I4')'s M is read as
    float32 whatever the dtype it comes in (a list of Python numbers too)."""
    q_b, m, sh = requantization_params(np.float32(1), np.ones(1, np.float32), np.float32(1), None)
    x = np.full((1, 1, 1, 1), 255, np.uint8)
    w = np.full((1, 1, 1, 1), 127, np.int8)
    with pytest.raises(OverflowRiskError, match="layer accumulator"):
        integer_conv2d(x, np.uint8(0), w, np.array([I32_MAX], np.int64), m, sh, np.uint8(0), y_dtype="uint8")
    acc = np.array([[1000, -3000], [250, 7]], np.int32)
    want = requantize_accumulators(acc, np.array([0.5, 0.25], np.float32), None, np.int8(3), y_dtype="int8")
    for M in ([0.5, 0.25], np.array([0.5, 0.25])):
        np.testing.assert_array_equal(requantize_accumulators(acc, M, None, np.int8(3), y_dtype="int8"), want)
    np.testing.assert_array_equal(requantize_accumulators(acc, [1, 1], None, np.int8(3), y_dtype="int8"),
                                  requantize_accumulators(acc, np.ones(2, np.float32), None, np.int8(3), y_dtype="int8"))
