"""Linear: y = x·Wᵀ + b against the sum written out with einsum, dL/dx, dL/dW, dL/db against the
formulas of the module docstring and central differences, the frozen / non-Dense weight, bad input."""

import numpy as np
import pytest

from refcomp.errors import ShapeError, ValidationError
from refcomp.formats import Dense, QTensor
from refcomp.nn import Linear, Sequential
from refcomp.quant import QParams

from ..nn_gradcheck import check_layer
from ..._support.helpers import PlainFormat


def _layer(i, o, bias=True, seed=0, dtype="float64"):
    rng = np.random.default_rng(seed)
    layer = Linear(i, o, bias, dtype=dtype)
    layer.weight.data[...] = rng.standard_normal((o, i))
    if bias:
        layer.bias.data[...] = rng.standard_normal(o)
    return layer


@pytest.mark.parametrize("bias", [True, False])
def test_forward_is_the_sum_over_inputs(bias):
    layer = _layer(5, 3, bias)
    x = np.random.default_rng(1).standard_normal((4, 5))
    want = np.einsum("ni,oi->no", x, layer.weight.data) + (layer.bias.data if bias else 0.0)
    np.testing.assert_allclose(layer.forward(x), want, rtol=1e-13, atol=1e-13)


def test_float32_in_float32_out():
    layer = _layer(3, 2, dtype="float32")
    y = layer.forward(np.ones((2, 3), np.float32))
    assert y.dtype == np.float32 and layer.weight_dtype() == np.float32


@pytest.mark.parametrize("bias", [True, False])
def test_backward_is_the_written_formulas_and_finite_differences(bias):
    rng = np.random.default_rng(2)
    layer = _layer(4, 3, bias, seed=2)
    x, dy = rng.standard_normal((5, 4)), rng.standard_normal((5, 3))
    layer.forward(x)
    dx = layer.backward(dy)
    # dL/dx[n, i] = Σ_o dy[n, o] W[o, i];  dL/dW[o, i] = Σ_n dy[n, o] x[n, i];  dL/db[o] = Σ_n dy[n, o]
    np.testing.assert_allclose(dx, np.einsum("no,oi->ni", dy, layer.weight.data), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(layer.weight.grad, np.einsum("no,ni->oi", dy, x), rtol=1e-13, atol=1e-13)
    if bias:
        np.testing.assert_allclose(layer.bias.grad, dy.sum(axis=0), rtol=1e-13, atol=1e-13)
    layer.zero_grad()
    check_layer(layer, x, rng)


def test_gradients_accumulate_over_backward_calls():
    rng = np.random.default_rng(3)
    layer = _layer(3, 2, seed=3)
    x, dy = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    layer.forward(x)
    layer.backward(dy)
    layer.backward(dy)
    np.testing.assert_allclose(layer.weight.grad, 2 * dy.T @ x, rtol=1e-13)
    np.testing.assert_allclose(layer.bias.grad, 2 * dy.sum(axis=0), rtol=1e-13)


def test_input_grad_false_still_gives_the_parameter_gradients():
    rng = np.random.default_rng(4)
    layer = _layer(3, 2, seed=4)
    x, dy = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    layer.forward(x)
    assert layer.backward(dy, input_grad=False) is None
    np.testing.assert_allclose(layer.weight.grad, dy.T @ x, rtol=1e-13)
    np.testing.assert_allclose(layer.bias.grad, dy.sum(axis=0), rtol=1e-13)
    # a model's first layer is told to skip dL/dx (accepts_input_grad)
    model = Sequential(("fc", layer))
    model.forward(x)
    assert model.backward(dy, input_grad=False) is None


def test_a_frozen_weight_gets_no_gradient_but_passes_dx():
    rng = np.random.default_rng(5)
    layer = _layer(3, 2, seed=5)
    w = layer.weight.data.copy()
    layer.weight = Dense(w, trainable=False)
    x, dy = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    layer.forward(x)
    np.testing.assert_allclose(layer.backward(dy), dy @ w, rtol=1e-13)
    assert layer.weight.grad is None
    np.testing.assert_allclose(layer.bias.grad, dy.sum(axis=0), rtol=1e-13)


def test_a_qtensor_weight_computes_with_its_dequantized_values():
    rng = np.random.default_rng(6)
    qp = QParams(np.full(2, 0.1, np.float32), np.zeros(2, np.int8), "int8", axis=0)
    layer = Linear(3, 2, bias=False)
    layer.weight = QTensor.quantize(rng.standard_normal((2, 3)).astype(np.float32), qp)
    w = layer.weight.data.astype(np.float64) * 0.1          # (q − 0)·s
    x = rng.standard_normal((4, 3)).astype(np.float32)
    np.testing.assert_allclose(layer.forward(x), x @ w.T, rtol=1e-5, atol=1e-6)
    dy = rng.standard_normal((4, 2)).astype(np.float32)
    np.testing.assert_allclose(layer.backward(dy), dy @ w, rtol=1e-5, atol=1e-6)


def test_a_format_without_dtype_or_trainable_flag():
    rng = np.random.default_rng(8)
    layer = Linear(3, 2, dtype="float64")
    w = rng.standard_normal((2, 3))
    layer.weight = PlainFormat(w)
    assert layer.weight_dtype() == np.float32 and layer.config()["dtype"] == "float32"   # the default
    x, dy = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    np.testing.assert_allclose(layer.forward(x), x @ w.T, rtol=1e-13)
    np.testing.assert_allclose(layer.backward(dy), dy @ w, rtol=1e-13)
    assert not hasattr(layer.weight, "grad")                      # not trainable unless it says so


def test_codes_in_codes_out():
    """A QTensor input runs the integer layer: acc = Σ (q_x − z_x)·q_w, y = round(acc·s_x·s_w / s_y) + z_y."""
    layer = Linear(2, 1, bias=False, output_qparams={"scale": 2.0, "zero_point": 1, "dtype": "int8"})
    layer.weight = QTensor(np.array([[1, 2]], np.int8), QParams(np.float32(1), np.array(0, np.int8), "int8"))
    x = QTensor(np.array([[6, 3], [4, 5]], np.uint8), QParams(np.float32(0.5), np.array(2, np.uint8), "uint8"))
    y = layer.forward(x)
    assert isinstance(y, QTensor) and y.qparams is layer.output_qparams
    # acc = (4 + 2) = 6 and (2 + 6) = 8; times 0.5 / 2: 1.5 and 2 -> 2 and 2 (+ 1)
    np.testing.assert_array_equal(y.data[:, 0], [3, 3])


def test_initial_weights():
    z = Linear(3, 2)
    assert np.all(z.weight.data == 0) and np.all(z.bias.data == 0)     # rng None: zeros, loaded later
    assert z.weight.dtype == np.float32 and z.bias.data.dtype == np.float32
    r = Linear(3, 2, rng=0)
    assert r.weight.dtype == np.float32 and r.bias.data.dtype == np.float32
    one = Linear(1, 1, rng=0)                                          # the smallest layer
    assert one.weight.shape == (1, 1) and one.forward(np.ones((2, 1), np.float32)).shape == (2, 1)
    a, b = Linear(30, 20, rng=7), Linear(30, 20, rng=7)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    # uniform_fan_in: U(−1/√fan_in, 1/√fan_in) for both
    bound = 1 / np.sqrt(30)
    assert 0.8 * bound < np.abs(a.weight.data).max() <= bound
    assert 0 < np.abs(a.bias.data).max() <= bound
    # glorot_uniform: U(−√(6/(fan_in + fan_out)), +…) with fan_out = out_features; zero biases
    g = Linear(30, 20, rng=7, init="glorot_uniform")
    bound = np.sqrt(6 / 50)
    assert 0.9 * bound < np.abs(g.weight.data).max() <= bound and np.all(g.bias.data == 0)


def test_config():
    assert Linear(3, 2).config() == {"in_features": 3, "out_features": 2, "bias": True, "dtype": "float32"}
    qp = {"scale": 0.5, "zero_point": 3, "dtype": "uint8"}
    c = Linear(3, 2, False, dtype="float64", output_qparams=qp, requantize="float").config()
    assert c == {"in_features": 3, "out_features": 2, "bias": False, "dtype": "float64",
                 "output_qparams": qp, "requantize": "float"}
    assert Linear(3, 2).output_qparams is None and Linear(3, 2).requantize == "fixed_point"


def test_bad_input_is_named():
    layer = _layer(3, 2)
    with pytest.raises(ValidationError, match="^backward:"):
        layer.backward(np.ones((1, 2)))
    with pytest.raises(ShapeError, match="^x:"):
        layer.forward(np.ones((2, 4)))
    with pytest.raises(ShapeError, match="^x:"):
        layer.forward(np.ones(3))
    layer.forward(np.ones((2, 3)))
    with pytest.raises(ShapeError, match="^dy:"):
        layer.backward(np.ones((2, 3)))
    with pytest.raises(ShapeError, match="^dy:"):
        layer.backward(np.ones((3, 2)))
    with pytest.raises(ValidationError, match="in_features"):
        Linear(0, 2)
    with pytest.raises(ValidationError, match="out_features"):
        Linear(2, 0)
    with pytest.raises(ValidationError, match="^output_qparams:"):
        Linear(2, 2, output_qparams={"scale": 0.5, "zero_point": 0, "dtype": "int32"})
