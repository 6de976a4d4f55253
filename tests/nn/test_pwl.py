"""HardTanh, HardSigmoid, BinarySign: forward against the written-out formulas, backward against
central differences (away from the kinks) and, for BinarySign, against eq. A1's clipped STE."""

import numpy as np
import pytest

from refcomp.errors import DTypeError, ShapeError, ValidationError
from refcomp.nn import BinarySign, HardSigmoid, HardTanh

from .nn_gradcheck import numeric_gradient


def _away_from(x, kinks, gap=1e-3):
    for k in kinks:
        x = np.where(np.abs(x - k) < gap, k + 2 * gap, x)
    return x


@pytest.mark.parametrize("layer, f, kinks", [
    (HardTanh(), lambda x: np.minimum(1.0, np.maximum(-1.0, x)), (-1.0, 1.0)),
    (HardSigmoid(), lambda x: np.minimum(1.0, np.maximum(0.0, 0.2 * x + 0.5)), (-2.5, 2.5)),
    (HardSigmoid(alpha=0.5, beta=0.25), lambda x: np.minimum(1.0, np.maximum(0.0, 0.5 * x + 0.25)), (-0.5, 1.5)),
])
def test_forward_and_gradient(layer, f, kinks):
    rng = np.random.default_rng(0)
    x = _away_from(rng.uniform(-4, 4, (6, 7)), kinks)
    np.testing.assert_allclose(layer.forward(x), f(x), rtol=0, atol=1e-15)
    r = rng.standard_normal(x.shape)
    dx = layer.backward(r)
    np.testing.assert_allclose(dx, numeric_gradient(lambda: float(np.sum(f(x) * r)), x), rtol=1e-6, atol=1e-6)
    assert layer.forward(x.astype(np.float32)).dtype == np.float32


def test_binary_sign_forward_is_pm1_zero_positive():
    x = np.array([[-3.0, -1.0, -1e-30, 0.0, -0.0, 1e-30, 0.5, 7.0]], np.float32)
    y = BinarySign().forward(x)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, [[-1, -1, -1, 1, 1, 1, 1, 1]])


def test_binary_sign_ste_is_cut_at_one():
    # eq. A1: the gradient passes where |x| <= 1 (inclusive) and is cancelled beyond
    x = np.array([-2.0, -1.0000001, -1.0, -0.3, 0.0, 0.99, 1.0, 1.5, 40.0])
    dy = np.arange(1.0, 10.0)
    s = BinarySign()
    s.forward(x)
    np.testing.assert_array_equal(s.backward(dy), np.where(np.abs(x) <= 1, dy, 0.0))


def test_binary_sign_gradient_is_hardtanh_gradient_inside():
    rng = np.random.default_rng(1)
    x = _away_from(rng.uniform(-3, 3, 50), (-1.0, 1.0))
    dy = rng.standard_normal(50)
    s, h = BinarySign(), HardTanh()
    s.forward(x)
    h.forward(x)
    np.testing.assert_array_equal(s.backward(dy), h.backward(dy))


def test_bad_arguments():
    with pytest.raises(DTypeError, match="x"):
        HardTanh().forward(np.ones(3, np.int32))
    with pytest.raises(ValidationError, match="alpha"):
        HardSigmoid(alpha=float("nan"))
    s = BinarySign()
    s.forward(np.ones(3))
    with pytest.raises(ShapeError, match="dy"):
        s.backward(np.ones(4))


def test_the_derivative_at_a_kink_is_the_flat_side():
    # HardTanh's kinks at ±1; HardSigmoid's where α·x + β is exactly 0 or 1 (x = −2.5, 2.5)
    x = np.array([-2.5, -1.0, 1.0, 2.5])
    dy = np.array([1.0, 2.0, 3.0, 4.0])
    h, s = HardTanh(), HardSigmoid()
    np.testing.assert_array_equal(h.forward(x), [-1, -1, 1, 1])
    np.testing.assert_array_equal(h.backward(dy), [0, 0, 0, 0])
    np.testing.assert_array_equal(s.forward(x), [0.0, 0.3, 0.7, 1.0])
    np.testing.assert_array_equal(s.backward(dy), [0, 2 * 0.2, 3 * 0.2, 0])


@pytest.mark.parametrize("layer", [HardTanh(), HardSigmoid(), BinarySign()])
@pytest.mark.parametrize("shape", [(), (2,) * 8])
def test_any_rank_from_0_to_8_and_the_input_dtype(layer, shape):
    x = np.full(shape, 0.25, np.float32)
    y = layer.forward(x)
    assert y.shape == shape and y.dtype == np.float32
    dx = layer.backward(np.ones(shape, np.float32))
    assert dx.shape == shape and dx.dtype == np.float32
    with pytest.raises(ShapeError, match="^x:"):
        layer.forward(np.zeros((1,) * 9))


def test_hard_sigmoid_config_and_backward_before_forward():
    assert HardSigmoid().config() == {"alpha": 0.2, "beta": 0.5}
    assert HardSigmoid(0.5, 0.25).config() == {"alpha": 0.5, "beta": 0.25}
    for layer in (HardTanh(), HardSigmoid(), BinarySign()):
        with pytest.raises(ValidationError, match="^backward:"):
            layer.backward(np.ones(3))
    with pytest.raises(ValidationError, match="beta"):
        HardSigmoid(beta=float("inf"))
