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
