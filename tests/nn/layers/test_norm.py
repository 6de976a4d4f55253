"""BatchNorm1d, BatchNorm2d, LayerNorm: the forward and the running statistics against the formulas
written out with sums over the reduced axes, the backward against central differences (training and
eval mode), without the affine map, bad input."""

import numpy as np
import pytest

from refcomp.errors import DTypeError, ShapeError, ValidationError
from refcomp.nn import BatchNorm1d, BatchNorm2d, LayerNorm

from ..nn_gradcheck import check_layer


def _affine(layer, rng):
    layer.weight.data[...] = rng.uniform(0.5, 2, layer.weight.shape)
    layer.bias.data[...] = rng.standard_normal(layer.bias.shape)
    return layer


def normalize(x, axes, eps):
    """(x − μ) / √(σ² + ε) with μ, σ² (biased) the means over ``axes``, by explicit sums."""
    m = np.prod([x.shape[a] for a in axes])
    mu = x.sum(axis=axes, keepdims=True) / m
    var = ((x - mu) ** 2).sum(axis=axes, keepdims=True) / m
    return (x - mu) / np.sqrt(var + eps), mu.reshape(-1), var.reshape(-1), m


@pytest.mark.parametrize("cls, shape", [(BatchNorm1d, (6, 3)), (BatchNorm1d, (4, 3, 5)), (BatchNorm2d, (3, 3, 2, 4))])
def test_batchnorm_training_forward_and_running_statistics(cls, shape):
    rng = np.random.default_rng(0)
    layer = _affine(cls(3, eps=0.5, momentum=0.25, dtype="float64"), rng)
    layer.running_mean[...] = rng.standard_normal(3)
    layer.running_var[...] = rng.uniform(1, 2, 3)
    rm, rv = layer.running_mean.copy(), layer.running_var.copy()
    x = rng.standard_normal(shape) * 3 + 1
    axes = (0,) + tuple(range(2, len(shape)))
    xhat, mu, var, m = normalize(x, axes, 0.5)
    bs = (1, 3) + (1,) * (len(shape) - 2)
    want = xhat * layer.weight.data.reshape(bs) + layer.bias.data.reshape(bs)
    np.testing.assert_allclose(layer.forward(x), want, rtol=1e-12, atol=1e-12)
    # running ← (1 − m)·running + m·batch, the variance unbiased (M / (M − 1))
    np.testing.assert_allclose(layer.running_mean, 0.75 * rm + 0.25 * mu, rtol=1e-12)
    np.testing.assert_allclose(layer.running_var, 0.75 * rv + 0.25 * var * m / (m - 1), rtol=1e-12)


def test_batchnorm_eval_uses_the_running_statistics():
    rng = np.random.default_rng(1)
    layer = _affine(BatchNorm2d(2, eps=0.1, dtype="float64"), rng)
    layer.running_mean[...] = [0.5, -1.0]
    layer.running_var[...] = [2.0, 0.25]
    layer.eval()
    x = rng.standard_normal((2, 2, 3, 3))
    r = lambda v: np.asarray(v).reshape(1, 2, 1, 1)   # noqa: E731
    want = (x - r([0.5, -1.0])) / np.sqrt(r([2.0, 0.25]) + 0.1) * r(layer.weight.data) + r(layer.bias.data)
    np.testing.assert_allclose(layer.forward(x), want, rtol=1e-12)
    np.testing.assert_array_equal(layer.running_mean, [0.5, -1.0])
    np.testing.assert_array_equal(layer.running_var, [2.0, 0.25])
    dy = rng.standard_normal(x.shape)
    np.testing.assert_allclose(layer.backward(dy), dy * r(layer.weight.data) / np.sqrt(r([2.0, 0.25]) + 0.1),
                               rtol=1e-12)


@pytest.mark.parametrize("shape, cls", [((6, 3), BatchNorm1d), ((4, 3, 5), BatchNorm1d), ((3, 3, 2, 4), BatchNorm2d)])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_batchnorm_gradients(shape, cls, training, affine):
    rng = np.random.default_rng(2)
    layer = cls(3, affine=affine, dtype="float64")
    if affine:
        _affine(layer, rng)
    layer.running_mean[...] = rng.standard_normal(3)
    layer.running_var[...] = rng.uniform(0.5, 2, 3)
    layer.train(training)
    check_layer(layer, rng.standard_normal(shape) * 2 + 1, rng)


def test_batchnorm_without_affine_is_the_normalized_input():
    rng = np.random.default_rng(3)
    layer = BatchNorm1d(4, affine=False, dtype="float64")
    assert layer.weight is None and layer.bias is None
    x = rng.standard_normal((5, 4))
    np.testing.assert_allclose(layer.forward(x), normalize(x, (0,), 1e-5)[0], rtol=1e-12)


def test_batchnorm_defaults_and_config():
    layer = BatchNorm2d(3)
    assert layer.eps == 1e-5 and layer.momentum == 0.1
    np.testing.assert_array_equal(layer.weight.data, [1, 1, 1])
    np.testing.assert_array_equal(layer.bias.data, [0, 0, 0])
    np.testing.assert_array_equal(layer.running_mean, [0, 0, 0])
    np.testing.assert_array_equal(layer.running_var, [1, 1, 1])
    assert layer.config() == {"num_features": 3, "eps": 1e-5, "momentum": 0.1, "affine": True, "dtype": "float32"}
    assert BatchNorm1d(2, 0.5, 0.0, False, "float64").config() == {
        "num_features": 2, "eps": 0.5, "momentum": 0.0, "affine": False, "dtype": "float64"}
    BatchNorm1d(2, momentum=1.0)                                # both ends of [0, 1] allowed


def test_batchnorm_bad_input_is_named():
    for eps in (0.0, -1.0, float("nan")):
        with pytest.raises(ValidationError, match="^eps:"):
            BatchNorm1d(2, eps=eps)
    for momentum in (-0.1, 1.1, float("nan")):
        with pytest.raises(ValidationError, match="^momentum:"):
            BatchNorm1d(2, momentum=momentum)
    layer = BatchNorm1d(2)
    with pytest.raises(ValidationError, match="^backward:"):
        layer.backward(np.ones((2, 2)))
    with pytest.raises(ShapeError, match="^x:"):
        layer.forward(np.ones((4, 3)))
    with pytest.raises(ShapeError, match="^x:"):
        BatchNorm2d(2).forward(np.ones((4, 2)))
    with pytest.raises(ShapeError, match="^x:"):
        layer.forward(np.ones((1, 2)))                          # one value per channel
    layer.forward(np.ones((2, 2)))                              # two are enough
    with pytest.raises(ShapeError, match="^dy:"):
        layer.backward(np.ones((2, 3)))
    layer.eval()
    layer.forward(np.ones((1, 2)))                              # eval mode needs no batch statistics


@pytest.mark.parametrize("norm_shape, x_shape", [((4,), (3, 4)), ((3, 4), (2, 3, 4)), ((5,), (2, 2, 5)), ((2, 3), (2, 3))])
def test_layernorm_forward_and_gradients(norm_shape, x_shape):
    rng = np.random.default_rng(4)
    layer = _affine(LayerNorm(norm_shape, eps=0.3, dtype="float64"), rng)
    x = rng.standard_normal(x_shape) * 2 + 1
    axes = tuple(range(len(x_shape) - len(norm_shape), len(x_shape)))
    want = normalize(x, axes, 0.3)[0] * layer.weight.data + layer.bias.data
    np.testing.assert_allclose(layer.forward(x), want, rtol=1e-12, atol=1e-12)
    check_layer(layer, x, rng)


def test_layernorm_without_affine_and_config():
    rng = np.random.default_rng(5)
    layer = LayerNorm(4, elementwise_affine=False, dtype="float64")
    assert layer.weight is None and layer.normalized_shape == (4,)
    x = rng.standard_normal((3, 4))
    np.testing.assert_allclose(layer.forward(x), normalize(x, (1,), 1e-5)[0], rtol=1e-12)
    check_layer(layer, x, rng)
    d = LayerNorm((2, 3))
    np.testing.assert_array_equal(d.weight.data, np.ones((2, 3)))
    np.testing.assert_array_equal(d.bias.data, np.zeros((2, 3)))
    assert d.config() == {"normalized_shape": [2, 3], "eps": 1e-5, "elementwise_affine": True, "dtype": "float32"}
    assert layer.config() == {"normalized_shape": [4], "eps": 1e-5, "elementwise_affine": False,
                              "dtype": "float64"}


def test_layernorm_bad_input_is_named():
    for eps in (0.0, float("nan")):
        with pytest.raises(ValidationError, match="^eps:"):
            LayerNorm(3, eps=eps)
    layer = LayerNorm((2, 3))
    with pytest.raises(ValidationError, match="^backward:"):
        layer.backward(np.ones((2, 3)))
    with pytest.raises(ShapeError, match="^x:"):
        layer.forward(np.ones((2, 3, 2)))
    with pytest.raises(ShapeError, match="^x:"):
        layer.forward(np.ones(6))
    layer.forward(np.ones((4, 2, 3)))
    with pytest.raises(ShapeError, match="^dy:"):
        layer.backward(np.ones((4, 3, 2)))


def test_one_feature_is_enough_and_zero_is_refused():
    # num_features / normalized_shape count channels: 1 is the smallest layer, 0 (or fewer) is refused
    for bad in (0, -1):
        with pytest.raises(ValidationError, match="^num_features:"):
            BatchNorm1d(bad)
        with pytest.raises(ValidationError, match="^normalized_shape:"):
            LayerNorm(bad)
        with pytest.raises(ValidationError, match="^normalized_shape:"):
            LayerNorm((3, bad))
    x = np.array([[1.0], [3.0]])
    # one channel: (x − 2) / √(1 + ε) over the batch of two; one feature: every sample is its own mean
    want = np.array([[-1.0], [1.0]]) / np.sqrt(1 + 1e-5)
    np.testing.assert_allclose(BatchNorm1d(1, dtype="float64").forward(x), want, rtol=1e-12)
    np.testing.assert_array_equal(LayerNorm(1, dtype="float64").forward(x), [[0.0], [0.0]])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_parameters_and_buffers_have_the_layer_dtype(dtype):
    bn, ln = BatchNorm2d(3, dtype=dtype), LayerNorm((2, 3), dtype=dtype)
    for a in (bn.weight.data, bn.bias.data, bn.running_mean, bn.running_var, ln.weight.data, ln.bias.data):
        assert a.dtype == np.dtype(dtype)


def test_layernorm_takes_a_numpy_integer_and_up_to_7_leading_axes():
    # the input has the k normalized axes and up to 7 leading ones: ranks k … k + 7
    layer = LayerNorm(np.int64(2))
    assert layer.normalized_shape == (2,)
    assert layer.forward(np.ones((1,) * 7 + (2,))).shape == (1,) * 7 + (2,)
    with pytest.raises(ShapeError, match="^x:"):
        layer.forward(np.ones((1,) * 8 + (2,)))
    with pytest.raises(DTypeError, match="^x:"):
        layer.forward(np.ones((3, 2), np.int64))
    with pytest.raises(DTypeError, match="^x:"):
        BatchNorm1d(2).forward(np.ones((3, 2), np.int64))
