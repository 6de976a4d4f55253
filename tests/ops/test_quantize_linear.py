"""quantize_linear / dequantize_linear: the properties of issue 2, item 3 (dynamic_quantize_linear: its own file)."""

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp.errors import DTypeError, ValidationError
from refcomp.ops import dequantize_linear, quantize_linear
from refcomp.numerics.dtypes import QDTYPES

INT_TYPES = ["int2", "uint2", "int4", "uint4", "int8", "uint8", "int16", "uint16"]
seeds = st.integers(0, 2**32 - 1)


def zero_point(rng, q, shape=()):
    return rng.integers(int(q.qmin), int(q.qmax) + 1, size=shape).astype(np.int64).astype(q.np_dtype)


@settings(max_examples=80)
@given(seed=seeds, name=st.sampled_from(INT_TYPES))
def test_round_trip_error_at_most_half_a_step_inside_the_range(seed, name):
    q = QDTYPES[name]
    rng = np.random.default_rng(seed)
    s = np.float32(rng.uniform(1e-3, 2))
    z = zero_point(rng, q)
    lo, hi = (q.qmin - int(z)) * float(s), (q.qmax - int(z)) * float(s)
    x = rng.uniform(lo, hi, 100).astype(np.float32)
    y = dequantize_linear(quantize_linear(x, s, z), s, z)
    # 1e-6 relative slack: x / s and (q - z) * s are each rounded once in float32
    assert np.all(np.abs(y.astype(np.float64) - x) <= float(s) / 2 * (1 + 1e-6) + 1e-6 * np.abs(x))


@settings(max_examples=80)
@given(seed=seeds, name=st.sampled_from(INT_TYPES))
def test_quantize_of_dequantize_is_identity(seed, name):
    q = QDTYPES[name]
    rng = np.random.default_rng(seed)
    qs = zero_point(rng, q, (64,))
    s = np.float32(2.0 ** rng.integers(-8, 4) * rng.choice([1.0, 0.75, 1.25]))
    z = zero_point(rng, q)
    back = quantize_linear(dequantize_linear(qs, s, z), s, z)
    assert back.dtype == qs.dtype
    np.testing.assert_array_equal(back.astype(np.int64), qs.astype(np.int64))


@settings(max_examples=60)
@given(seed=seeds, name=st.sampled_from(INT_TYPES))
def test_zero_maps_to_zero_point_exactly(seed, name):
    q = QDTYPES[name]
    rng = np.random.default_rng(seed)
    s, z = np.float32(rng.uniform(1e-6, 1e3)), zero_point(rng, q)
    y = quantize_linear(np.array([0.0, -0.0], np.float32), s, z)
    assert np.all(y.astype(np.int64) == int(z))
    assert np.all(dequantize_linear(y, s, z) == 0)


@settings(max_examples=50)
@given(seed=seeds, axis=st.sampled_from([0, 1, 2, -1]))
def test_per_axis_equals_per_tensor_slice_by_slice(seed, axis):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((3, 4, 5)).astype(np.float32) * 10
    n = x.shape[axis]
    s = rng.uniform(0.01, 1, n).astype(np.float32)
    z = rng.integers(-128, 128, n).astype(np.int8)
    y = quantize_linear(x, s, z, axis=axis)
    d = dequantize_linear(y, s, z, axis=axis)
    for j in range(n):
        sl = np.take(x, j, axis=axis)
        np.testing.assert_array_equal(np.take(y, j, axis=axis), quantize_linear(sl, s[j], z[j]))
        np.testing.assert_array_equal(np.take(d, j, axis=axis), dequantize_linear(np.take(y, j, axis=axis), s[j], z[j]))


@settings(max_examples=50)
@given(seed=seeds, block=st.integers(1, 7), dim=st.integers(1, 12))
def test_blocked_equals_per_tensor_on_each_block(seed, block, dim):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((3, dim)).astype(np.float32) * 5
    nb = -(-dim // block)
    s = rng.uniform(0.01, 1, (3, nb)).astype(np.float32)
    z = rng.integers(0, 16, (3, nb)).astype(ml_dtypes.uint4)
    y = quantize_linear(x, s, z, axis=1, block_size=block)
    assert y.dtype == np.dtype(ml_dtypes.uint4)
    d = dequantize_linear(y, s, z, axis=1, block_size=block)
    for r in range(3):
        for b in range(nb):
            cols = slice(b * block, min(dim, (b + 1) * block))
            np.testing.assert_array_equal(y[r, cols], quantize_linear(x[r, cols], s[r, b], z[r, b]))
            np.testing.assert_array_equal(d[r, cols], dequantize_linear(y[r, cols], s[r, b], z[r, b]))


def test_rounding_modes_on_ties():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5], np.float32)
    np.testing.assert_array_equal(quantize_linear(x, np.float32(1), np.int8(0)), [0, 2, 2, 0, -2, -2])
    np.testing.assert_array_equal(quantize_linear(x, np.float32(1), np.int8(0), rounding="half_away"),
                                  [1, 2, 3, -1, -2, -3])


def test_saturation_and_infinities():
    x = np.array([1e6, -1e6, np.inf, -np.inf], np.float32)
    np.testing.assert_array_equal(quantize_linear(x, np.float32(1), np.int8(0)), [127, -128, 127, -128])
    np.testing.assert_array_equal(quantize_linear(x, np.float32(1), np.uint16(0)), [65535, 0, 65535, 0])


def test_float8_saturate_flag_and_nan():
    x = np.array([1e6, -1e6, np.inf, np.nan, 3.0], np.float32)
    y = quantize_linear(x, np.float32(1), output_dtype=17)  # e4m3fn
    assert y.dtype == np.dtype(ml_dtypes.float8_e4m3fn)
    np.testing.assert_array_equal(y.astype(np.float32)[[0, 1, 2, 4]], [448, -448, 448, 3])
    assert np.isnan(y.astype(np.float32)[3])
    y = quantize_linear(x, np.float32(1), output_dtype=19, saturate=0)  # e5m2: overflow -> inf
    np.testing.assert_array_equal(y.astype(np.float32)[:3], [np.inf, -np.inf, np.inf])
    y = quantize_linear(x, np.float32(1), output_dtype=17, saturate=0)  # e4m3fn: overflow -> NaN
    assert np.isnan(y.astype(np.float32)[:2]).all()


def test_output_type_rules():
    x = np.array([1.0], np.float32)
    assert quantize_linear(x, np.float32(1)).dtype == np.uint8
    assert quantize_linear(x, np.float32(1), output_dtype=22).dtype == np.dtype(ml_dtypes.int4)
    assert quantize_linear(x, np.float32(1), np.int16(0)).dtype == np.int16


def test_empty_in_empty_out():
    e = np.zeros((0, 3), np.float32)
    assert quantize_linear(e, np.float32(1), np.int8(0)).shape == (0, 3)


# ---- found by mutation testing (benchmarks/mutation_score.py) ---------------------------------

def test_a_float8_zero_point_is_zero_and_turns_minus_zero_into_plus_zero():
    """Eq. Q2 adds the zero point: -0 + 0 = +0 in IEEE; without a zero point -0 stays -0."""
    x = np.array([-0.0, 2.0], np.float32)
    zp = np.zeros((), ml_dtypes.float8_e4m3fn)
    with_zp = quantize_linear(x, np.float32(1), zp).view(np.uint8)
    without = quantize_linear(x, np.float32(1), output_dtype=17).view(np.uint8)
    assert with_zp[0] == 0x00 and without[0] == 0x80 and with_zp[1] == without[1]
    with pytest.raises(ValidationError) as e:
        quantize_linear(x, np.float32(1), np.ones((), ml_dtypes.float8_e4m3fn))
    assert e.value.argument == "y_zero_point"


def test_float4_saturates_and_refuses_nan():
    y = quantize_linear(np.array([100.0, -100.0, 1.4], np.float32), np.float32(1), output_dtype=23)
    assert y.dtype == np.dtype(ml_dtypes.float4_e2m1fn)
    np.testing.assert_array_equal(y.astype(np.float32), [6.0, -6.0, 1.5])
    with pytest.raises(ValidationError) as e:
        quantize_linear(np.array([np.nan], np.float32), np.float32(1), output_dtype=23)
    assert e.value.argument == "x"


def test_default_axis_is_one():
    """ONNX's default axis is 1: a 1-D scale runs along the second dimension."""
    x = np.ones((2, 3), np.float32)
    y = quantize_linear(x, np.float32([1.0, 0.5, 0.25]), np.int8([0, 0, 0]))
    np.testing.assert_array_equal(y, [[1, 2, 4], [1, 2, 4]])


def test_precision_attribute_sets_the_division_type():
    """precision=10: x is cast to float16 before the division (2049 -> 2048); 0: y_scale's type."""
    x = np.array([2049.0], np.float32)
    assert quantize_linear(x, np.float32(1), np.int16(0)) == 2049
    assert quantize_linear(x, np.float32(1), np.int16(0), precision=10) == 2048
    assert quantize_linear(x, np.float16(1), np.int16(0)) == 2048
    assert quantize_linear(x, np.float16(1), np.int16(0), precision=1) == 2049
    with pytest.raises(DTypeError) as e:
        quantize_linear(x, np.float32(1), np.int16(0), precision=2)
    assert e.value.argument == "precision"


def test_overflow_in_the_division_saturates_silently():
    """x / scale beyond float16 is ±Inf, which saturates: no warning escapes (pytest makes them errors)."""
    x = np.array([60000.0, -60000.0], np.float32)
    np.testing.assert_array_equal(quantize_linear(x, np.float16(0.5), np.int8(0)), [127, -128])


def test_output_dtype_agreeing_with_the_zero_point_is_accepted():
    assert quantize_linear(np.ones(1, np.float32), np.float32(1), np.int8(0), output_dtype=3).dtype == np.int8
    with pytest.raises(DTypeError) as e:
        quantize_linear(np.ones(1, np.float32), np.float32(1), np.int8(0), output_dtype=2)
    assert e.value.argument == "output_dtype"


def test_int32_input_and_empty_output_types():
    x = np.array([2**24 + 1, -7], np.int32)       # int32 x is divided in the scale's type (float32)
    np.testing.assert_array_equal(quantize_linear(x, np.float32(2**20), np.int16(0)), [16, 0])
    assert quantize_linear(np.zeros((0, 2), np.float32), np.float32(1), np.int8(0)).dtype == np.int8
    assert quantize_linear(np.zeros((0,), np.float32), np.float32(1), output_dtype=17).dtype == \
        np.dtype(ml_dtypes.float8_e4m3fn)


def test_an_unknown_backend_is_refused():
    with pytest.raises(ValidationError) as e:
        quantize_linear(np.ones(1, np.float32), np.float32(1), backend="cuda")
    assert e.value.argument == "backend"


def test_scale_and_zero_point_must_have_the_same_shape():
    """ONNX QuantizeLinear: y_zero_point has y_scale's shape; a per-axis zero point beside a scalar scale is refused."""
    from refcomp.errors import ShapeError

    x = np.ones((2, 3), np.float32)
    with pytest.raises(ShapeError, match="y_zero_point"):
        quantize_linear(x, np.float32(0.5), np.zeros(3, np.uint8), axis=1)
    with pytest.raises(ShapeError, match="y_zero_point"):
        quantize_linear(x, np.full(3, 0.5, np.float32), np.uint8(0), axis=1)
