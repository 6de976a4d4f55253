"""StaticQuantized: eq. (S1) written out, saturation outside the calibrated range, fields, bad input."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp.errors import DTypeError, FileFormatError, ShapeError, ValidationError
from refcomp.formats import QTensor, StaticQuantized
from refcomp.quant import QParams, choose_qparams


def _weight(w):
    qp = choose_qparams(w.min(axis=1), w.max(axis=1), "int8", symmetric=True, restricted_range=True, axis=0)
    return QTensor.quantize(w, qp)


def _s1_reference(x, q, s_x, z_x, m):
    """Eq. (S1) from the ONNX definitions, in float32 / int64, element by element where it matters."""
    xs = x if m is None else (x / m).astype(np.float32)
    q_x = np.clip(np.rint(xs / np.float32(s_x)) + z_x, 0, 255).astype(np.int64)      # QuantizeLinear, half to even
    z_w = q.qparams.zero_point.astype(np.int64).reshape(-1, 1)                         # per tensor or per row
    acc = (q_x - z_x) @ (q.data.astype(np.int64) - z_w).T
    return acc.astype(np.int32).astype(np.float32) * (np.float32(s_x) * q.qparams.scale.astype(np.float32))


@settings(max_examples=40)
@given(st.integers(1, 6), st.integers(1, 30), st.integers(1, 8), st.booleans(), st.integers(0, 2**32 - 1))
def test_matmul_is_eq_s1(batch, n_in, out, smooth, seed):
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((out, n_in)) * rng.uniform(0.01, 3)).astype(np.float32)
    x = (rng.standard_normal((batch, n_in)) * rng.uniform(0.1, 10)).astype(np.float32)
    s_x, z_x = np.float32(rng.uniform(0.005, 0.1)), int(rng.integers(0, 256))   # values outside saturate
    m = rng.uniform(0.2, 5, n_in).astype(np.float32) if smooth else None
    q = _weight(w)
    fmt = StaticQuantized(q, QParams(s_x, np.uint8(z_x), "uint8"), smooth=m)
    np.testing.assert_array_equal(fmt.matmul(x), _s1_reference(x, q, s_x, z_x, m))
    want = q.to_dense() if m is None else q.to_dense() / m
    np.testing.assert_allclose(fmt.to_dense(), want, rtol=1e-6)


def test_fields_round_trip_and_refuse_what_they_did_not_write():
    q = _weight(np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32))
    iq = QParams(np.float32(0.02), np.uint8(130), "uint8")
    for m in (None, np.linspace(0.5, 2, 6).astype(np.float32)):
        f = StaticQuantized(q, iq, smooth=m)
        back = StaticQuantized.from_fields(f.fields())
        x = np.random.default_rng(1).standard_normal((3, 6)).astype(np.float32)
        np.testing.assert_array_equal(back.matmul(x), f.matmul(x))
        assert back.nbytes == f.nbytes
    bad = StaticQuantized(q, iq).fields()
    bad["input_qparams"] = np.array([0.02, 300.0])
    with pytest.raises(FileFormatError, match="input_qparams"):
        StaticQuantized.from_fields(bad)


def test_bad_arguments():
    q = _weight(np.ones((2, 3), np.float32))
    iq = QParams(np.float32(0.1), np.uint8(0), "uint8")
    with pytest.raises(DTypeError, match="input_qparams"):
        StaticQuantized(q, None)
    with pytest.raises(ValidationError, match="input_qparams"):
        StaticQuantized(q, QParams(np.float32(0.1), np.int8(0), "int8"))
    with pytest.raises(ShapeError, match="smooth"):
        StaticQuantized(q, iq, smooth=np.ones(4, np.float32))
    with pytest.raises(ValidationError, match="smooth"):
        StaticQuantized(q, iq, smooth=np.array([1, 0, 1], np.float32))
    with pytest.raises(ShapeError, match="x"):
        StaticQuantized(q, iq).matmul(np.ones((2, 4), np.float32))


# --- weights with zero points, float64 input, the edges of what is accepted
def _zero_point_weights(w):
    out = w.shape[0]
    asym = choose_qparams(w.min(axis=1), w.max(axis=1), "int8", symmetric=False, axis=0)
    ones = QParams(asym.scale, np.ones(out, np.int8), "int8", axis=0)      # every zero point 1
    tensor = QParams(np.float32(np.abs(w).max() / 100), np.int8(-3), "int8")
    return [QTensor.quantize(w, qp) for qp in (asym, ones, tensor)]


@pytest.mark.parametrize("which", [0, 1, 2])
def test_weight_zero_points_are_subtracted(which):
    rng = np.random.default_rng(which)
    w = (rng.standard_normal((5, 9)) + 0.7).astype(np.float32)
    q = _zero_point_weights(w)[which]
    assert np.any(q.qparams.zero_point != 0)
    x = rng.standard_normal((4, 9)).astype(np.float32)
    s_x, z_x = np.float32(0.03), 120
    fmt = StaticQuantized(q, QParams(s_x, np.uint8(z_x), "uint8"))
    np.testing.assert_array_equal(fmt.matmul(x), _s1_reference(x, q, s_x, z_x, None))


def test_a_float64_input_is_rounded_to_float32_before_it_is_quantized():
    # 1.25 + 1e-12 is 1.25 in float32: 2.5 steps of 0.5, rounded half to even to 2 (3 in float64)
    q = QTensor(np.array([[1]], np.int8), QParams(np.float32(1), None, "int8"))
    fmt = StaticQuantized(q, QParams(np.float32(0.5), np.uint8(0), "uint8"))
    y = fmt.matmul(np.array([[1.25 + 1e-12]]))
    assert y.dtype == np.float32 and y.tolist() == [[1.0]]


def test_the_smoothing_vector_is_a_frozen_copy_and_the_weight_stays_float32():
    q = _weight(np.random.default_rng(2).standard_normal((3, 4)).astype(np.float32))
    m = np.array([0.5, 1, 2, 4], np.float32)
    fmt = StaticQuantized(q, QParams(np.float32(0.1), np.uint8(128), "uint8"), smooth=m)
    m[:] = 1
    assert fmt.smooth.tolist() == [0.5, 1, 2, 4]
    with pytest.raises(ValueError):
        fmt.smooth[0] = 3
    dense = fmt.to_dense()
    assert dense.dtype == np.float32
    np.testing.assert_array_equal(dense, q.to_dense() / np.array([0.5, 1, 2, 4], np.float32))


def test_refuses_weights_and_inputs_it_cannot_multiply():
    w = np.random.default_rng(3).standard_normal((4, 6)).astype(np.float32)
    iq = QParams(np.float32(0.1), np.uint8(0), "uint8")
    uint8 = QTensor.quantize(w, choose_qparams(w.min(), w.max(), "uint8"))
    kernel = QTensor.quantize(w.reshape(4, 2, 3), QParams(np.ones(4, np.float32), None, "int8", axis=0))
    per_column = QTensor.quantize(w, QParams(np.ones(6, np.float32), None, "int8", axis=1))
    for weight, cls in ((uint8, ShapeError), (kernel, ShapeError), (per_column, ValidationError)):
        with pytest.raises(cls) as info:
            StaticQuantized(weight, iq)
        assert info.value.argument == "weight"
    per_axis_input = QParams(np.ones(6, np.float32), np.zeros(6, np.uint8), "uint8", axis=0)
    with pytest.raises(ValidationError, match="input_qparams"):
        StaticQuantized(_weight(w), per_axis_input)
    for smooth, cls in ((np.ones(6), ShapeError), (np.array([1, 1, np.inf, 1, 1, 1], np.float32), ValidationError),
                        (np.array([1, 1, -2, 1, 1, 1], np.float32), ValidationError)):
        with pytest.raises(cls, match="smooth"):
            StaticQuantized(_weight(w), iq, smooth=smooth)
    with pytest.raises(ShapeError, match="x"):
        StaticQuantized(_weight(w), iq).matmul(np.ones(6, np.float32))


@pytest.mark.parametrize("iq", [
    [0.5, 3.0],                                  # not an array
    np.array([0.5, 3.0], np.float32),            # not float64
    np.array([0.5, 3.0, 1.0]),                   # three values
    np.array([0.0, 3.0]), np.array([-0.5, 3.0]), np.array([np.inf, 3.0]),
    np.array([0.1, 3.0]),                        # 0.1 is no float32
    np.array([0.5, -1.0]), np.array([0.5, 256.0]), np.array([0.5, 2.5]),  # no uint8 zero point
])
def test_from_fields_refuses_input_qparams_it_did_not_write(iq):
    q = _weight(np.random.default_rng(4).standard_normal((2, 3)).astype(np.float32))
    f = StaticQuantized(q, QParams(np.float32(0.5), np.uint8(3), "uint8")).fields()
    with pytest.raises(FileFormatError, match="input_qparams"):
        StaticQuantized.from_fields({**f, "input_qparams": iq})


@pytest.mark.parametrize("z", [0, 255])
def test_fields_hold_the_input_scale_and_zero_point_exactly(z):
    q = _weight(np.random.default_rng(5).standard_normal((2, 3)).astype(np.float32))
    s = np.float32(0.0123)
    f = StaticQuantized(q, QParams(s, np.uint8(z), "uint8")).fields()
    assert f["input_qparams"].dtype == np.float64 and f["input_qparams"].tolist() == [float(s), float(z)]
    back = StaticQuantized.from_fields(f)
    assert back.input_qparams.scale == s and int(back.input_qparams.zero_point) == z
    assert back.input_qparams.dtype.name == "uint8"
