"""Fake quantization (eq. 17) and its straight-through gradients (eq. 18)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from refcomp.errors import DTypeError, ShapeError, ValidationError
from refcomp.quant import (
    FakeQuantize,
    MinMaxObserver,
    QParams,
    choose_qparams,
    dequantize,
    fake_quantize,
    fake_quantize_grad,
    quantize,
)

values = hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=2, max_side=8),
                    elements=st.floats(-20, 20, width=32))
qparams = st.builds(
    lambda lo, hi, dtype, sym: choose_qparams(lo, lo + hi, dtype, symmetric=sym),
    st.floats(-10, 0), st.floats(0.1, 10), st.sampled_from(["int8", "uint8", "int4", "float8_e4m3fn"]),
    st.booleans())


@settings(max_examples=50)
@given(x=values, qp=qparams)
def test_fake_quantize_is_dequantize_of_quantize_and_idempotent(x, qp):
    y = fake_quantize(x, qp)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, dequantize(quantize(x, qp), qp))
    np.testing.assert_array_equal(fake_quantize(y, qp), y)


def test_float64_in_float64_out():
    qp = QParams(0.25, 0, "int8")
    y = fake_quantize(np.array([0.3, -0.1]), qp)
    assert y.dtype == np.float64 and y.tolist() == [0.25, -0.0]


def _clip_derivative_fd(x, lo, hi, h=1e-4):
    """Central finite difference of clip(x, lo, hi): the derivative the clipped STE keeps."""
    f = lambda t: np.clip(t, lo, hi)  # noqa: E731
    return (f(x + h) - f(x - h)) / (2 * h)


@settings(max_examples=50)
@given(x=values, qp=qparams)
def test_clipped_ste_is_the_derivative_of_the_saturation(x, qp):
    lo, hi = qp.representable_range()
    if not qp.dtype.is_float:  # the clip acts on round(x/s) + z: half a step beyond the range
        lo, hi = lo - float(qp.scale) / 2, hi + float(qp.scale) / 2
    g = np.ones_like(x)
    ste = fake_quantize_grad(x, qp, g, clipped=True)
    fd = _clip_derivative_fd(x.astype(np.float64), float(lo), float(hi))
    away = (np.abs(x - lo) > 1e-3) & (np.abs(x - hi) > 1e-3)  # finite differences are ambiguous at the kinks
    np.testing.assert_allclose(ste[away], fd[away], atol=1e-6)
    assert np.array_equal(fake_quantize_grad(x, qp, g * 3, clipped=False), g * 3)


def test_clipped_ste_per_axis():
    qp = QParams([0.1, 1.0], None, "int8", axis=0)  # band: channel 0 [-12.85, 12.75], channel 1 [-128.5, 127.5]
    x = np.array([[20.0, 12.7, 12.8], [20.0, 127.4, 127.6]], np.float32)
    g = fake_quantize_grad(x, qp, np.ones_like(x))
    assert g.tolist() == [[0.0, 1.0, 0.0], [1.0, 1.0, 0.0]]


def test_fake_quantize_class_forward_backward():
    fq = FakeQuantize(MinMaxObserver("int8", symmetric=True))
    x = np.array([-1.0, 0.2, 1.0], np.float32)
    y = fq(x)
    np.testing.assert_array_equal(y, fake_quantize(x, fq.qparams))
    # symmetric full range: s = 1/127.5, 1.0 = 127.5·s is half a step beyond 127·s: still in the band
    assert fq.backward(np.ones(3, np.float32)).tolist() == [1.0, 1.0, 1.0]
    # the qparams of the first batch stay while the observer is disabled: 5.0 saturates, no gradient there
    fq.observer_enabled = False
    fq(np.array([5.0, 0.5], np.float32))
    assert fq.backward(np.ones(2, np.float32)).tolist() == [0.0, 1.0]
    fq.fake_quant_enabled = False
    x2 = np.array([5.0], np.float32)
    assert fq(x2) is x2 and fq.backward(np.ones(1, np.float32)).tolist() == [1.0]


def test_fake_quantize_class_with_fixed_qparams():
    qp = QParams(0.5, 0, "int8")
    fq = FakeQuantize(qparams=qp)
    assert fq(np.array([0.7], np.float32)).tolist() == [0.5]


@pytest.mark.parametrize("call,exc,argument", [
    (lambda: fake_quantize_grad(np.ones(2), QParams(1.0), np.ones(3)), ShapeError, "grad_out"),
    (lambda: fake_quantize_grad(np.ones(2), "qp", np.ones(2)), DTypeError, "qparams"),
    (lambda: fake_quantize_grad([1.0], QParams(1.0), np.ones(1)), DTypeError, "x"),
    (lambda: fake_quantize_grad(np.ones(1), QParams(1.0), np.ones(1), clipped="yes"), ValidationError, "clipped"),
    (lambda: fake_quantize(np.array([np.nan], np.float32), QParams(1.0)), ValidationError, "x"),
    (lambda: FakeQuantize(), ValidationError, "observer"),
    (lambda: FakeQuantize(qparams=QParams(1.0)).backward(np.ones(1)), ValidationError, "grad_out"),
])
def test_bad_input(call, exc, argument):
    with pytest.raises(exc) as info:
        call()
    assert info.value.argument == argument
