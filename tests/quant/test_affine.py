"""quantize / dequantize with QParams (wrappers over refcomp.ops): the properties of issue 2 §3."""

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from refcomp.errors import DTypeError, ShapeError, ValidationError
from refcomp.quant import QDTYPES, QParams, choose_qparams, dequantize, fake_quantize, quantize

INT_DTYPES = ["int2", "uint2", "int4", "uint4", "int8", "uint8", "int16", "uint16"]
FLOAT_DTYPES = ["float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz", "float4_e2m1fn"]

values = hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=6),
                    elements=st.floats(-1e4, 1e4, width=32))


def _qparams_for(x, dtype, symmetric, axis=None):
    if axis is None:
        return choose_qparams(x.min(), x.max(), dtype, symmetric=symmetric)
    red = tuple(i for i in range(x.ndim) if i != axis % x.ndim)
    return choose_qparams(x.min(axis=red), x.max(axis=red), dtype, symmetric=symmetric, axis=axis)


@settings(max_examples=80)
@given(x=values, dtype=st.sampled_from(INT_DTYPES), symmetric=st.booleans(),
       rounding=st.sampled_from(["half_to_even", "half_away"]))
def test_roundtrip_error_is_at_most_half_a_step_inside_the_range(x, dtype, symmetric, rounding):
    qp = _qparams_for(x, dtype, symmetric)
    rmin, rmax = qp.representable_range()
    inside = (x >= rmin) & (x <= rmax)
    err = np.abs(dequantize(quantize(x, qp, rounding=rounding), qp).astype(np.float64) - x)
    s = float(qp.scale)
    # half a step, plus the float32 rounding of x / s and of (q - z)·s
    assert np.all(err[inside] <= 0.5 * s + 1e-6 * (np.abs(x[inside]) + s))


@settings(max_examples=80)
@given(x=values, dtype=st.sampled_from(INT_DTYPES + FLOAT_DTYPES), symmetric=st.booleans())
def test_quantize_of_dequantize_is_identity_on_codes(x, dtype, symmetric):
    qp = _qparams_for(x, dtype, symmetric)
    q = quantize(x, qp)
    again = quantize(dequantize(q, qp), qp)
    assert np.array_equal(again.astype(np.float64), q.astype(np.float64))


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_every_code_survives_dequantize_quantize(dtype):
    dt = QDTYPES[dtype]
    codes = np.arange(int(dt.qmin), int(dt.qmax) + 1).astype(dt.np_dtype)
    for zp in (int(dt.qmin), (int(dt.qmin) + int(dt.qmax)) // 2, int(dt.qmax)):
        qp = QParams(np.float32(0.037), zp, dtype)
        assert np.array_equal(quantize(dequantize(codes, qp), qp), codes)


@settings(max_examples=60)
@given(x=values, dtype=st.sampled_from(INT_DTYPES), symmetric=st.booleans())
def test_zero_maps_to_zero_point_exactly(x, dtype, symmetric):
    qp = _qparams_for(x, dtype, symmetric)
    z = quantize(np.zeros_like(x), qp)
    assert np.all(z.astype(np.int64) == int(qp.zero_point))
    assert np.all(dequantize(z, qp) == 0.0)


@settings(max_examples=60)
@given(data=st.data(), dtype=st.sampled_from(INT_DTYPES + FLOAT_DTYPES), symmetric=st.booleans())
def test_per_axis_equals_per_tensor_slice_by_slice(data, dtype, symmetric):
    x = data.draw(hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=3, max_side=5),
                             elements=st.floats(-100, 100, width=32)))
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    qp = _qparams_for(x, dtype, symmetric, axis=axis)
    q = quantize(x, qp)
    fq = fake_quantize(x, qp)
    for c in range(x.shape[axis]):
        one = QParams(qp.scale[c], qp.zero_point[c:c + 1].reshape(()), dtype)
        xs = np.take(x, c, axis=axis)
        assert np.array_equal(np.take(q, c, axis=axis).astype(np.float64), quantize(xs, one).astype(np.float64))
        np.testing.assert_array_equal(np.take(fq, c, axis=axis), fake_quantize(xs, one))


@settings(max_examples=60)
@given(data=st.data(), dtype=st.sampled_from(INT_DTYPES + FLOAT_DTYPES))
def test_blocked_equals_per_axis_on_each_block(data, dtype):
    rows = data.draw(st.integers(1, 4))
    length = data.draw(st.integers(1, 12))
    block = data.draw(st.integers(1, length))
    x = data.draw(hnp.arrays(np.float32, (rows, length), elements=st.floats(-50, 50, width=32)))
    nb = -(-length // block)
    lo = np.stack([x[:, j * block:(j + 1) * block].min(axis=1) for j in range(nb)], axis=1)
    hi = np.stack([x[:, j * block:(j + 1) * block].max(axis=1) for j in range(nb)], axis=1)
    qp = choose_qparams(lo, hi, dtype, axis=1, block_size=block)
    q = quantize(x, qp).astype(np.float64)
    for j in range(nb):
        # block j is per-axis quantization (axis 0, one scale per row) of its columns
        per_axis = QParams(qp.scale[:, j], qp.zero_point[:, j], dtype, axis=0)
        cols = slice(j * block, (j + 1) * block)
        assert np.array_equal(q[:, cols], quantize(x[:, cols], per_axis).astype(np.float64))


def test_rounding_modes_differ_only_on_ties():
    qp = QParams(1.0, 0, "int8")
    x = np.array([0.5, 1.5, 2.5, -0.5, -2.5, 0.4, 0.6], np.float32)
    assert quantize(x, qp).tolist() == [0, 2, 2, 0, -2, 0, 1]
    assert quantize(x, qp, rounding="half_away").tolist() == [1, 2, 3, -1, -3, 0, 1]


def test_saturation_and_narrowed_range():
    qp = choose_qparams(-1.0, 1.0, "int8", symmetric=True, restricted_range=True)
    q = quantize(np.array([-100.0, 100.0], np.float32), qp)
    assert q.tolist() == [-127, 127]  # never -128 in the restricted range
    qp = choose_qparams(0.0, 1.0, "uint8", reduce_range=True)
    assert quantize(np.array([5.0], np.float32), qp).tolist() == [127]
    assert quantize(np.array([-np.inf, np.inf], np.float32), qp).tolist() == [0, 127]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_float_dtypes_relative_error(dtype):
    rng = np.random.default_rng(0)
    x = rng.normal(size=1000).astype(np.float32)
    qp = choose_qparams(x.min(), x.max(), dtype)
    q = quantize(x, qp)
    assert q.dtype == QDTYPES[dtype].np_dtype
    y = dequantize(q, qp)
    mant = {"float8_e4m3fn": 3, "float8_e4m3fnuz": 3, "float8_e5m2": 2, "float8_e5m2fnuz": 2, "float4_e2m1fn": 1}
    # normal numbers: relative error <= 2^-(mantissa bits + 1); subnormals: absolute error <= half their step
    fi = ml_dtypes.finfo(QDTYPES[dtype].np_dtype)
    bound = np.maximum(np.abs(x) * 2.0 ** -(mant[dtype] + 1), float(fi.smallest_subnormal) / 2 * float(qp.scale))
    assert np.all(np.abs(y - x) <= bound * (1 + 1e-6))


def test_float64_input_is_rounded_to_float32_first():
    qp = QParams(1.0, 0, "int8")
    x = np.array([0.5 + 2**-40], np.float64)  # float32(x) == 0.5: a tie, to even
    assert quantize(x, qp).tolist() == [0]


def test_nan_policy_and_empty():
    qp = QParams(1.0, 0, "int8")
    with pytest.raises(ValidationError) as info:
        quantize(np.array([1.0, np.nan], np.float32), qp)
    assert info.value.argument == "x"
    assert quantize(np.zeros((0, 3), np.float32), qp).shape == (0, 3)
    assert dequantize(np.zeros((0, 3), np.int8), qp).shape == (0, 3)


@pytest.mark.parametrize("call,exc,argument", [
    (lambda: quantize([1.0], QParams(1.0, 0, "int8")), DTypeError, "x"),
    (lambda: quantize(np.ones(2, np.float32), "qp"), DTypeError, "qparams"),
    (lambda: quantize(np.ones(2, np.int64), QParams(1.0, 0, "int8")), DTypeError, "x"),
    (lambda: quantize(np.ones(2, np.float32), QParams(1.0, 0, "int32")), DTypeError, "qparams.dtype"),
    (lambda: quantize(np.ones(2, np.float32), QParams(1.0, 0, "bfloat16")), DTypeError, "qparams.dtype"),
    (lambda: quantize(np.ones(2, np.float32), QParams(1.0, 0, "int8"), rounding="up"), ValidationError, "rounding"),
    (lambda: quantize(np.ones((2, 3), np.float32), QParams([1.0, 1.0], None, "int8", axis=1)), ShapeError, "scale"),
    (lambda: quantize(np.ones((2, 3), np.float32), QParams([1.0, 1.0], None, "int8", axis=2)), ValidationError,
     "axis"),
    (lambda: quantize(np.ones((2, 10), np.float32), QParams(np.ones((2, 3), np.float32), None, "int8", axis=1,
                                                            block_size=3)), ShapeError, "block_size"),
    (lambda: dequantize(np.ones(2, np.uint8), QParams(1.0, 0, "int8")), DTypeError, "q"),
    (lambda: dequantize([1, 2], QParams(1.0, 0, "int8")), DTypeError, "q"),
])
def test_bad_input(call, exc, argument):
    with pytest.raises(exc) as info:
        call()
    assert info.value.argument == argument


@pytest.mark.parametrize("scale_dtype", [np.float16, ml_dtypes.bfloat16])
def test_half_precision_scales_and_inputs(scale_dtype):
    # ONNX allows float16 / bfloat16 scales; the division happens in the scale's type
    qp = QParams(np.array(0.5, scale_dtype), 3, "uint8")
    assert qp.scale.dtype == scale_dtype
    x = np.array([1.0, 2.2, -10.0], scale_dtype)
    assert quantize(x, qp).tolist() == [5, 7, 0]
    y = dequantize(quantize(x, qp), qp)
    assert y.dtype == scale_dtype and y.astype(np.float32).tolist() == [1.0, 2.0, -1.5]
    assert QParams.from_dict(qp.to_dict()) == qp


# the wrappers' own options: float8 saturates by default, int32 (bias) codes have no zero point,
# the backend reaches the op
def test_float8_saturates_unless_told_not_to():
    qp = QParams(1.0, 0, "float8_e4m3fn")
    x = np.array([1e4, -1e4, 1.0], np.float32)
    assert quantize(x, qp).astype(np.float32).tolist() == [448.0, -448.0, 1.0]   # ONNX saturate=1
    assert np.isnan(quantize(x[:2], qp, saturate=False).astype(np.float32)).all()  # e4m3fn has no Inf


def test_int32_codes_dequantize_without_a_zero_point():
    q = np.array([3, -4, 2**30], np.int32)
    assert dequantize(q, QParams(np.float32(0.5), 0, "int32")).tolist() == [1.5, -2.0, 2.0**29]
    with pytest.raises(ValidationError) as info:
        dequantize(q, QParams(np.float32(0.5), 2, "int32"))
    assert info.value.argument == "qparams.zero_point"


def test_backend_reaches_the_ops():
    qp = QParams(1.0, 0, "int8")
    for call in (lambda b: quantize(np.ones(2, np.float32), qp, backend=b),
                 lambda b: dequantize(np.ones(2, np.int8), qp, backend=b)):
        assert call("numpy").tolist() == [1, 1]
        with pytest.raises(ValidationError) as info:
            call("cuda")
        assert info.value.argument == "backend"
