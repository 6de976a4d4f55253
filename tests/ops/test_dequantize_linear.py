"""dequantize_linear: eq. D1 y = (x - x_zero_point) * x_scale (ONNX DequantizeLinear-25), its output types and bad input.

The round trips with quantize_linear are in test_quantize_linear.py; the bit-exact comparisons with
onnx.reference / onnxruntime in test_vs_onnx_reference.py / test_vs_onnxruntime.py.
"""

import ml_dtypes
import numpy as np
import pytest

from refcomp.errors import DTypeError, ShapeError, ValidationError
from refcomp.ops import dequantize_linear

F = np.float32


# ---- output types and shapes ---------------------------------------------------------------

def test_output_type_rules():
    """output_dtype 0 (the default): x_scale's dtype; 1 / 10 / 16: float32 / float16 / bfloat16."""
    assert dequantize_linear(np.int8([3]), np.float16(0.5)).dtype == np.float16
    assert dequantize_linear(np.int8([3]), np.float32(0.5), output_dtype=16).dtype == ml_dtypes.bfloat16
    assert dequantize_linear(np.int8([3]), np.float32(0.5), output_dtype=0).dtype == np.float32
    assert dequantize_linear(np.int8([3]), np.float16(0.5), output_dtype=1).dtype == np.float32
    assert dequantize_linear(np.int8([3]), np.float32(0.5), output_dtype=10).dtype == np.float16


def test_empty_in_empty_out():
    assert dequantize_linear(np.zeros((0, 3), np.int8), np.float32(1)).shape == (0, 3)


# ---- bad input: a refcomp.errors exception naming the argument -----------------------------

@pytest.mark.parametrize("scale", [0.0, -1.0, np.nan, np.inf, -np.inf])
def test_scale_not_finite_positive(scale):
    with pytest.raises(ValidationError, match="x_scale"):
        dequantize_linear(np.uint8([1]), F(scale))


def test_bad_dtypes():
    with pytest.raises(DTypeError, match="x_scale"):
        dequantize_linear(np.uint8([1]), np.int32(1))
    with pytest.raises(DTypeError, match="x_zero_point"):
        dequantize_linear(np.uint8([1]), F(1), np.int8(0))  # dtype must be x's
    with pytest.raises(DTypeError, match="x"):
        dequantize_linear(np.zeros(3, np.float32), F(1))
    with pytest.raises(DTypeError, match="x"):
        dequantize_linear(np.array(["a"]), F(1))
    with pytest.raises(DTypeError, match="output_dtype"):
        dequantize_linear(np.uint8([1]), F(1), output_dtype=3)


def test_zero_point_of_int32_must_be_zero():
    with pytest.raises(ValidationError, match="x_zero_point"):
        dequantize_linear(np.int32([5]), F(1), np.int32(3))  # int32 has no zero point


def test_bad_axis_and_block_shape():
    with pytest.raises(ValidationError, match="axis"):
        dequantize_linear(np.zeros((3, 4), np.uint8), np.ones(4, F), axis=-3)
    with pytest.raises(ShapeError, match="x_scale"):
        dequantize_linear(np.zeros((3, 4), np.uint8), np.ones((3, 3), F), axis=1, block_size=3)


# ---- eq. D1 term by term: exact integer difference, one float32 product, one cast -----------

def test_the_zero_point_is_subtracted_exactly_before_the_product():
    y = dequantize_linear(np.uint8([0, 7, 255]), np.float32(0.5), np.uint8(7))
    np.testing.assert_array_equal(y, [-3.5, 0.0, 124.0])
    y = dequantize_linear(np.int8([-128, 127]), np.float32(0.25), np.int8(127))
    np.testing.assert_array_equal(y, [-63.75, 0.0])


def test_int32_beyond_2_to_the_24_is_rounded_to_float32_before_the_product():
    """f32(2^24 + 1) = 2^24, times 1.5 = 25165824 (the exact 25165825.5 would round to 25165826)."""
    y = dequantize_linear(np.int32([2**24 + 1, -(2**24 + 1)]), np.float32(1.5))
    np.testing.assert_array_equal(y, [25165824.0, -25165824.0])


def test_the_product_is_float32_then_cast_to_the_output_type():
    """-31105 x 0.81298828125 = -25288.0005: float32 rounds it to -25288, a float16 tie, which goes to
    even -25280 (onnx.reference's answer); one rounding of the exact product would give -25296."""
    y = dequantize_linear(np.int16([-31105]), np.float16(0.81298828125))
    assert y.dtype == np.float16 and y.astype(np.float32)[0] == -25280.0
    y = dequantize_linear(np.int16([17947]), np.float16(1.0185546875))     # 18280.001 -> 18280 -> 18272
    assert y.astype(np.float32)[0] == 18272.0


def test_a_float8_product_is_float32_then_cast_to_float16():
    """4.5 x 0.6295573 (float32) with output_dtype=10: the float32 product 2.8330078 is a float16 tie,
    which goes to even 2.83203125 (onnx.reference's answer); one rounding would give 2.833984375."""
    y = dequantize_linear(np.array([4.5], ml_dtypes.float8_e4m3fn), np.float32(0.6295573), output_dtype=10)
    assert y.dtype == np.float16 and y.astype(np.float32)[0] == 2.83203125


def test_beyond_the_output_range_is_inf_without_a_warning():
    """IEEE overflow in the cast to float16 (pytest turns a RuntimeWarning into an error)."""
    y = dequantize_linear(np.int16([30000, -30000, 1]), np.float16(4))
    np.testing.assert_array_equal(y.astype(np.float32), [np.inf, -np.inf, 4.0])


def test_float8_input_with_a_zero_zero_point_and_nan():
    """Float inputs take eq. D1 with zero point 0; a float8 NaN dequantizes to NaN."""
    f8 = ml_dtypes.float8_e4m3fn
    y = dequantize_linear(np.array([1.5, np.nan, -448], f8), np.float32(2), np.zeros((), f8))
    np.testing.assert_array_equal(y[[0, 2]], [3.0, -896.0])
    assert np.isnan(y[1]) and y.dtype == np.float32
    with pytest.raises(ValidationError) as e:
        dequantize_linear(np.array([1.5], f8), np.float32(2), np.ones((), f8))
    assert e.value.argument == "x_zero_point"


def test_int32_takes_a_zero_zero_point():
    np.testing.assert_array_equal(dequantize_linear(np.int32([5, -3]), np.float32(0.5), np.int32(0)), [2.5, -1.5])


# ---- accepted arguments ------------------------------------------------------------------------

def test_float16_and_bfloat16_x_are_refused():
    """They are float types but not quantized ones (DequantizeLinear's inputs are codes)."""
    for dt in (np.float16, ml_dtypes.bfloat16):
        with pytest.raises(DTypeError) as e:
            dequantize_linear(np.zeros(2, dt), np.float32(1))
        assert e.value.argument == "x"


def test_precision_must_be_0():
    assert dequantize_linear(np.int8([2]), np.float32(0.5), precision=0) == 1.0
    for p in (1, 10):
        with pytest.raises(ValidationError) as e:
            dequantize_linear(np.int8([2]), np.float32(0.5), precision=p)
        assert e.value.argument == "precision"


def test_an_unknown_backend_is_refused_and_numpy_is_accepted():
    assert dequantize_linear(np.int8([2]), np.float32(0.5), backend="numpy") == 1.0
    with pytest.raises(ValidationError) as e:
        dequantize_linear(np.int8([2]), np.float32(0.5), backend="cuda")
    assert e.value.argument == "backend"


def test_zero_point_must_have_the_scales_shape():
    with pytest.raises(ShapeError) as e:
        dequantize_linear(np.zeros((2, 3), np.uint8), F(0.5), np.zeros(3, np.uint8), axis=1)
    assert e.value.argument == "x_zero_point"
