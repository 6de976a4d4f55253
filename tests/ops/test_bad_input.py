"""Bad input: each case raises a refcomp.errors exception whose message names the argument."""

import ml_dtypes
import numpy as np
import pytest

from refcomp.errors import DTypeError, OverflowRiskError, RefcompError, ShapeError, ValidationError
from refcomp.ops import (
    conv_integer,
    matmul_integer,
    qlinear_conv,
    qlinear_matmul,
    quantize_linear,
)

X = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
F = np.float32


@pytest.mark.parametrize("scale", [0.0, -1.0, np.nan, np.inf, -np.inf])
def test_scale_not_finite_positive(scale):
    with pytest.raises(ValidationError, match="y_scale"):
        quantize_linear(X, F(scale), np.uint8(0))
    with pytest.raises(ValidationError, match="y_scale"):
        quantize_linear(X, np.array([1, scale, 1, 1], F), np.zeros(4, np.uint8), axis=1)


def test_scale_wrong_dtype():
    with pytest.raises(DTypeError, match="y_scale"):
        quantize_linear(X, np.float64(0.1))


def test_zero_point_out_of_range_or_wrong_dtype():
    with pytest.raises(DTypeError, match="output_dtype"):
        quantize_linear(X, F(1), np.int8(0), output_dtype=2)  # uint8 requested, int8 zero point
    with pytest.raises(DTypeError, match="y_zero_point"):
        quantize_linear(X, F(1), np.int32(0))  # int32 is not a quantization target
    with pytest.raises(DTypeError, match="y_zero_point"):
        quantize_linear(X, F(1), np.float32(0))
    with pytest.raises(DTypeError, match="a_zero_point"):
        matmul_integer(np.uint8([[1]]), np.int8([[1]]), np.int8(0))
    with pytest.raises(ValidationError, match="y_zero_point"):
        quantize_linear(X, F(1), np.array(1.0, ml_dtypes.float8_e4m3fn))  # float zero point must be 0


def test_axis_out_of_range():
    with pytest.raises(ValidationError, match="axis"):
        quantize_linear(X, np.ones(4, F), np.zeros(4, np.uint8), axis=2)


def test_per_axis_length_and_block_shape():
    with pytest.raises(ShapeError, match="y_scale"):
        quantize_linear(X, np.ones(3, F), np.zeros(3, np.uint8), axis=1)
    with pytest.raises(ShapeError, match="y_zero_point"):
        quantize_linear(X, np.ones(4, F), np.zeros(3, np.uint8), axis=1)
    # blocks of 3 along an axis of 4 need ceil(4/3) = 2 scales; 1 or 3 is an error
    quantize_linear(X, np.ones((3, 2), F), np.zeros((3, 2), np.uint8), axis=1, block_size=3)
    with pytest.raises(ShapeError, match="y_scale"):
        quantize_linear(X, np.ones((3, 1), F), np.zeros((3, 1), np.uint8), axis=1, block_size=3)
    with pytest.raises(ValidationError, match="block_size"):
        quantize_linear(X, np.ones((3, 2), F), axis=1, block_size=-2)


def test_nan_policy():
    bad = X.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValidationError, match="x"):
        quantize_linear(bad, F(0.1), np.int8(0))
    with pytest.raises(ValidationError, match="x"):
        quantize_linear(bad, F(0.1), output_dtype=23)  # float4 has no NaN
    # float8 outputs encode NaN: kept (documented policy)
    assert np.isnan(quantize_linear(bad, F(0.1), output_dtype=17).astype(np.float32)[1, 2])


def test_empty_tensors():
    assert quantize_linear(np.zeros((0,), np.float32), F(1)).shape == (0,)


def test_unsupported_dtypes():
    with pytest.raises(DTypeError, match="x"):
        quantize_linear(X.astype(np.float64), F(1))
    with pytest.raises(DTypeError, match="A"):
        matmul_integer(np.zeros((2, 2), np.int16), np.zeros((2, 2), np.int8))
    with pytest.raises(DTypeError, match="x"):
        conv_integer(np.zeros((1, 1, 3), np.int32), np.zeros((1, 1, 1), np.int8))
    with pytest.raises(DTypeError, match="output_dtype"):
        quantize_linear(X, F(1), output_dtype=1)  # float32 is not a quantized type
    with pytest.raises(ValidationError, match="rounding"):
        quantize_linear(X, F(1), rounding="stochastic")
    with pytest.raises(ValidationError, match="numerics"):
        matmul_integer(np.uint8([[1]]), np.int8([[1]]), numerics="fast")
    with pytest.raises(DTypeError, match="A, B"):
        matmul_integer(np.int8([[1]]), np.int8([[1]]), numerics="x86_u8s8_int16_saturating")


def test_shape_mismatches():
    with pytest.raises(ShapeError, match="B"):
        matmul_integer(np.zeros((2, 3), np.uint8), np.zeros((4, 2), np.int8))
    with pytest.raises(ShapeError, match="B"):
        matmul_integer(np.zeros((2, 2, 3), np.uint8), np.zeros((3, 3, 2), np.int8))
    with pytest.raises(ShapeError, match="b_zero_point"):
        matmul_integer(np.zeros((2, 3), np.uint8), np.zeros((3, 2), np.int8), None, np.zeros(3, np.int8))
    with pytest.raises(ShapeError, match="w"):
        conv_integer(np.zeros((1, 2, 5, 5), np.uint8), np.zeros((1, 3, 3, 3), np.uint8))
    with pytest.raises(ShapeError, match="x"):
        conv_integer(np.zeros((1, 1, 2, 2), np.uint8), np.zeros((1, 1, 3, 3), np.uint8))  # kernel > input
    with pytest.raises(ShapeError, match="kernel_shape"):
        conv_integer(np.zeros((1, 1, 5, 5), np.uint8), np.zeros((1, 1, 3, 3), np.uint8), kernel_shape=[2, 2])
    with pytest.raises(ValidationError, match="pads"):
        conv_integer(np.zeros((1, 1, 5, 5), np.uint8), np.zeros((1, 1, 3, 3), np.uint8), pads=[1, 1])
    with pytest.raises(ValidationError, match="strides"):
        conv_integer(np.zeros((1, 1, 5, 5), np.uint8), np.zeros((1, 1, 3, 3), np.uint8), strides=[0, 1])
    with pytest.raises(ValidationError, match="auto_pad"):
        conv_integer(np.zeros((1, 1, 5, 5), np.uint8), np.zeros((1, 1, 3, 3), np.uint8), auto_pad="SAME")
    with pytest.raises(ShapeError, match="group"):
        conv_integer(np.zeros((1, 3, 5), np.uint8), np.zeros((2, 1, 3), np.uint8), group=3)
    with pytest.raises(ShapeError, match="w_scale"):
        qlinear_conv(np.zeros((1, 1, 5), np.uint8), F(1), np.uint8(0), np.zeros((2, 1, 3), np.int8),
                     np.ones(3, F), np.int8(0), F(1), np.uint8(0))
    with pytest.raises(ShapeError, match="B"):
        qlinear_conv(np.zeros((1, 1, 5), np.uint8), F(1), np.uint8(0), np.zeros((2, 1, 3), np.int8),
                     F(1), np.int8(0), F(1), np.uint8(0), np.zeros(3, np.int32))
    with pytest.raises(ShapeError, match="a_scale"):
        qlinear_matmul(np.zeros((2, 3), np.uint8), np.ones(3, F), np.uint8(0), np.zeros((3, 2), np.int8), F(1),
                       np.int8(0), F(1), np.uint8(0))


def test_int32_overflow_of_conv_accumulator():
    x = np.full((1, 1, 200, 200), 255, np.uint8)
    w = np.full((1, 1, 200, 200), 255, np.uint8)  # 40000 * 65025 > 2**31
    with pytest.raises(OverflowRiskError, match="y"):
        conv_integer(x, w)


def test_every_error_is_a_refcomp_error_and_a_builtin():
    with pytest.raises(RefcompError):
        quantize_linear(X, F(0))
    with pytest.raises(ValueError):
        quantize_linear(X, F(0))
    with pytest.raises(TypeError):
        quantize_linear(X.astype(np.float64), F(1))
