"""ReLU, ReLU6, LeakyReLU, Tanh, Sigmoid, GELU: the forward against scipy.special and the formulas of the
module docstring, the backward against the written-out derivatives (the kinks included) and central
differences, float32 in float32 out, codes through ReLU, bad input."""

import math

import numpy as np
import pytest
from scipy import special

from refcomp.errors import DTypeError, ShapeError, ValidationError
from refcomp.formats import QTensor
from refcomp.nn import GELU, LeakyReLU, ReLU, ReLU6, Sigmoid, Tanh
from refcomp.quant import QParams

from ..nn_gradcheck import check_layer

# the kinks themselves, and values on both sides of each
X = np.array([-40.0, -7.0, -6.0, -1.5, -0.01, -0.0, 0.0, 1e-300, 0.3, 2.0, 5.99, 6.0, 6.01, 9.0, 40.0])

C = math.sqrt(2 / math.pi)
TANH_GELU = lambda x: 0.5 * x * (1 + np.tanh(C * (x + 0.044715 * x ** 3)))   # noqa: E731

CASES = [  # layer, f, f' (the value at a kink as the module docstring defines it)
    (ReLU(), lambda x: np.where(x > 0, x, 0.0), lambda x: (x > 0) * 1.0),
    (ReLU6(), lambda x: np.minimum(np.where(x > 0, x, 0.0), 6.0), lambda x: ((x > 0) & (x < 6)) * 1.0),
    (LeakyReLU(), lambda x: np.where(x >= 0, x, 0.01 * x), lambda x: np.where(x >= 0, 1.0, 0.01)),
    (LeakyReLU(0.2), lambda x: np.where(x >= 0, x, 0.2 * x), lambda x: np.where(x >= 0, 1.0, 0.2)),
    (LeakyReLU(-3), lambda x: np.where(x >= 0, x, -3.0 * x), lambda x: np.where(x >= 0, 1.0, -3.0)),
    (Tanh(), np.tanh, lambda x: 1 / np.cosh(x) ** 2),
    (Sigmoid(), special.expit, lambda x: special.expit(x) * special.expit(-x)),
    (GELU(), lambda x: x * special.ndtr(x), lambda x: special.ndtr(x) + x * np.exp(-x * x / 2) / math.sqrt(2 * math.pi)),
    (GELU("tanh"), TANH_GELU,
     lambda x: 0.5 * (1 + np.tanh(C * (x + 0.044715 * x ** 3)))
     + 0.5 * x * (1 - np.tanh(C * (x + 0.044715 * x ** 3)) ** 2) * C * (1 + 3 * 0.044715 * x ** 2)),
]


@pytest.mark.parametrize("layer, f, df", CASES, ids=lambda v: getattr(v, "__name__", None))
def test_forward_and_backward_are_the_formulas(layer, f, df):
    x = X.reshape(3, 5)
    np.testing.assert_allclose(layer.forward(x), f(x), rtol=1e-14, atol=1e-15)
    dy = np.random.default_rng(0).standard_normal(x.shape)
    np.testing.assert_allclose(layer.backward(dy), dy * df(x), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("layer, f, df", CASES, ids=lambda v: getattr(v, "__name__", None))
def test_gradients_match_finite_differences_away_from_kinks(layer, f, df):
    rng = np.random.default_rng(1)
    x = rng.uniform(-8, 8, (4, 6))
    x[np.abs(x) < 1e-2] += 0.1
    x[np.abs(x - 6) < 1e-2] += 0.1
    check_layer(layer, x, rng)


@pytest.mark.parametrize("layer, f, df", CASES, ids=lambda v: getattr(v, "__name__", None))
def test_float32_in_float32_out_and_any_rank(layer, f, df):
    x = X[:12].reshape(2, 3, 2).astype(np.float32)
    y = layer.forward(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, f(x.astype(np.float64)), rtol=2e-6, atol=1e-6)
    assert layer.backward(np.ones_like(x)).dtype == np.float32
    assert layer.forward(np.float64(0.5)).shape == ()


def test_sigmoid_does_not_overflow():
    with np.errstate(over="raise", invalid="raise", divide="raise"):     # underflow to 0 is fine
        s = Sigmoid().forward(np.array([-1000.0, -745.0, -30.0, 0.0, 30.0, 1000.0]))
    np.testing.assert_allclose(s, special.expit([-1000.0, -745.0, -30.0, 0.0, 30.0, 1000.0]), rtol=1e-15, atol=1e-300)


@pytest.mark.parametrize("dtype, z", [("uint8", 100), ("int8", -20)])
def test_relu_on_codes_is_the_max_with_the_zero_point(dtype, z):
    qp = QParams(np.float32(0.1), np.array(z, dtype), dtype)
    info = np.iinfo(dtype)
    codes = np.arange(info.min, info.max + 1).astype(dtype)
    y = ReLU().forward(QTensor(codes, qp))
    assert isinstance(y, QTensor) and y.qparams is qp and y.data.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(y.data, [max(int(c), z) for c in codes])


@pytest.mark.parametrize("cls", [ReLU, ReLU6, LeakyReLU, Tanh, Sigmoid, GELU])
def test_bad_input_is_named(cls):
    layer = cls()
    with pytest.raises(ValidationError, match="^backward:"):
        layer.backward(np.ones(3))
    layer.forward(np.ones((2, 3)))
    with pytest.raises(ShapeError, match="^dy:"):
        layer.backward(np.ones((3, 2)))


def test_bad_arguments_and_config():
    for alpha in (float("nan"), float("inf"), True, "0.1", None):
        with pytest.raises(ValidationError, match="^alpha:"):
            LeakyReLU(alpha)
    assert LeakyReLU(np.float32(0.5)).config() == {"alpha": 0.5}
    assert LeakyReLU().config() == {"alpha": 0.01}
    with pytest.raises(ValidationError, match="^approximate:"):
        GELU("erf")
    assert GELU().config() == {"approximate": "none"} and GELU("tanh").config() == {"approximate": "tanh"}


@pytest.mark.parametrize("cls", [ReLU, ReLU6, LeakyReLU, Tanh, Sigmoid, GELU])
def test_x_must_be_a_floating_tensor_of_rank_at_most_8(cls):
    # every rank from a scalar to 8 is taken; integers (no conversion) and a rank of 9 are refused by x's name
    assert cls().forward(np.zeros((1,) * 8)).shape == (1,) * 8
    with pytest.raises(DTypeError, match="^x:"):
        cls().forward(np.arange(3))
    with pytest.raises(ShapeError, match="^x:"):
        cls().forward(np.zeros((1,) * 9))


def test_gelu_float32_backward_rounds_each_step_in_float32():
    # float32 in, float32 arithmetic throughout (as the forward): Φ(x) = ½(1 + erf(x / √2)) with x / √2 a
    # float32 quotient and erf the C library's double erf rounded to float32, φ(x) = e^(−x·x/2) / √(2π)
    f32 = np.float32
    x = np.linspace(-6, 6, 401).astype(f32)
    dy = np.random.default_rng(4).standard_normal(x.shape).astype(f32)
    z = x / f32(math.sqrt(2.0))
    cdf = f32(0.5) * (f32(1) + np.array([math.erf(float(v)) for v in z], f32))
    pdf = np.exp(f32(-0.5) * x * x) / f32(math.sqrt(2 * math.pi))
    layer = GELU()
    layer.forward(x)
    got = layer.backward(dy)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, dy * (cdf + x * pdf))
