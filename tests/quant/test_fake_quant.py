"""Fake quantization (eq. 17) and its straight-through gradients (eq. 18)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from refcomp import backend
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


# options reach the ops: rounding, backend (an explicit one overrides the process default)
def test_rounding_reaches_the_quantizer():
    qp = QParams(1.0, 0, "int8")
    x = np.array([0.5, 2.5, -0.5], np.float32)
    assert fake_quantize(x, qp).tolist() == [0.0, 2.0, -0.0]
    assert fake_quantize(x, qp, rounding="half_away").tolist() == [1.0, 3.0, -1.0]
    assert FakeQuantize(qparams=qp, rounding="half_away")(x).tolist() == [1.0, 3.0, -1.0]


def test_explicit_backend_is_used_for_both_ops():
    qp = QParams(0.5, 0, "int8")
    x = np.array([0.7, -0.2], np.float32)
    previous = backend.get_backend()
    backend.set_backend("c")          # no C kernel for (de)quantize_linear: "auto" would now refuse
    try:
        assert fake_quantize(x, qp, backend="numpy").tolist() == [0.5, -0.0]
    finally:
        backend.set_backend(previous)
    with pytest.raises(ValidationError) as info:
        fake_quantize(x, qp, backend="cuda")
    assert info.value.argument == "backend"


# the straight-through band is closed: its edges still pass the gradient
@pytest.mark.parametrize("qp,edges", [
    (QParams(1.0, 0, "int8"), [-128.5, 127.5]),            # codes -128..127, half a step beyond
    (QParams(0.5, 10, "uint8"), [-5.25, 122.75]),          # (0 - 10 - 0.5)·0.5, (255 - 10 + 0.5)·0.5
    (QParams(1.0, 0, "float8_e4m3fn"), [-448.0, 448.0]),   # float: no rounding band
])
def test_band_edges_keep_the_gradient(qp, edges):
    x = np.array(edges + [np.nextafter(np.float32(edges[0]), np.float32(-np.inf)),
                          np.nextafter(np.float32(edges[1]), np.float32(np.inf))], np.float32)
    assert fake_quantize_grad(x, qp, np.ones(4, np.float32)).tolist() == [1.0, 1.0, 0.0, 0.0]


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_gradient_dtype_follows_grad_out(dtype):
    x = np.array([0.0, 500.0])         # float64 x: the dtype comes from grad_out alone
    g = fake_quantize_grad(x, QParams(1.0, 0, "int8"), np.array([2.0, 2.0], dtype))
    assert g.dtype == dtype and g.tolist() == [2.0, 0.0]


def test_unclipped_gradient_is_a_new_array():
    g = np.ones(2, np.float32)
    out = fake_quantize_grad(np.array([0.0, 500.0], np.float32), QParams(1.0), g, clipped=False)
    assert out.tolist() == [1.0, 1.0] and not np.shares_memory(out, g)


def test_fake_quantize_class_clipped_ste_option():
    x = np.array([0.5, 500.0], np.float32)
    for clipped, want in ((True, [1.0, 0.0]), (False, [1.0, 1.0])):
        fq = FakeQuantize(qparams=QParams(1.0, 0, "int8"), clipped_ste=clipped)
        fq(x)
        assert fq.backward(np.ones(2, np.float32)).tolist() == want


def test_disabled_fake_quant_still_checks_the_gradient_shape():
    fq = FakeQuantize(qparams=QParams(1.0), fake_quant_enabled=False)
    fq(np.ones(2, np.float32))
    for bad in (np.ones(3, np.float32), [1.0, 1.0]):
        with pytest.raises(ShapeError) as info:
            fq.backward(bad)
        assert info.value.argument == "grad_out"


def test_grad_out_must_be_an_array():
    with pytest.raises(DTypeError) as info:
        fake_quantize_grad(np.ones(2), QParams(1.0), [1.0, 1.0])
    assert info.value.argument == "grad_out"
