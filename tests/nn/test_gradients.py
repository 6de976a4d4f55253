"""Finite-difference gradient checks (float64) for every layer and loss.

See nn_gradcheck.py for the method and the tolerance (rtol = atol = 1e-6).
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp.errors import ValidationError
from refcomp import nn

from .nn_gradcheck import check_layer, check_loss

F64 = "float64"


def away_from(rng, shape, kinks, margin=1e-3, scale=3.0):
    """Random values no closer than ``margin`` to any kink (finite differences straddling a
    kink of a piecewise function are not its derivative)."""
    x = rng.uniform(-scale, scale, size=shape)
    for k in kinks:
        close = np.abs(x - k) < margin
        x[close] = k + np.where(x[close] >= k, margin, -margin) * 2
    return x


@settings(max_examples=25)
@given(data=st.data())
def test_conv2d_gradients(data):
    g = data.draw(st.sampled_from([1, 2, 3]), label="groups")
    cin = g * data.draw(st.integers(1, 2), label="cin/g")
    cout = g * data.draw(st.integers(1, 2), label="cout/g")
    kh, kw = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    sh, sw = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 2))
    ph, pw = data.draw(st.integers(0, 2)), data.draw(st.integers(0, 2))
    dh, dw = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2))
    h = data.draw(st.integers(max(1, dh * (kh - 1) + 1 - 2 * ph), 7))
    w = data.draw(st.integers(max(1, dw * (kw - 1) + 1 - 2 * pw), 7))
    n = data.draw(st.integers(1, 2))
    bias = data.draw(st.booleans())
    seed = data.draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    layer = nn.Conv2d(cin, cout, (kh, kw), (sh, sw), (ph, pw), (dh, dw), groups=g, bias=bias, rng=seed, dtype=F64)
    check_layer(layer, rng.standard_normal((n, cin, h, w)), rng)


def test_depthwise_conv_gradients():
    rng = np.random.default_rng(1)
    layer = nn.Conv2d(4, 8, 3, stride=2, padding=1, groups=4, rng=1, dtype=F64)
    check_layer(layer, rng.standard_normal((2, 4, 7, 6)), rng)


@settings(max_examples=15)
@given(n=st.integers(1, 4), i=st.integers(1, 6), o=st.integers(1, 5), bias=st.booleans(), seed=st.integers(0, 2**31))
def test_linear_gradients(n, i, o, bias, seed):
    rng = np.random.default_rng(seed)
    check_layer(nn.Linear(i, o, bias, rng=seed, dtype=F64), rng.standard_normal((n, i)), rng)


@settings(max_examples=25)
@given(data=st.data())
def test_pool_gradients(data):
    kind = data.draw(st.sampled_from([nn.MaxPool2d, nn.AvgPool2d]))
    kh, kw = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    stride = data.draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    ph, pw = data.draw(st.integers(0, kh // 2)), data.draw(st.integers(0, kw // 2))
    h, w = data.draw(st.integers(kh, 7)), data.draw(st.integers(kw, 7))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    layer = kind((kh, kw), stride, (ph, pw))
    # distinct values: a tie inside a max window has no derivative
    x = rng.permutation(2 * 3 * h * w).reshape(2, 3, h, w) * 0.01 + rng.uniform(0, 1e-3, (2, 3, h, w))
    check_layer(layer, x, rng)


def test_global_avg_pool_and_flatten_gradients():
    rng = np.random.default_rng(2)
    check_layer(nn.GlobalAvgPool2d(), rng.standard_normal((2, 3, 4, 5)), rng)
    check_layer(nn.Flatten(), rng.standard_normal((2, 3, 4)), rng)


def test_maxpool_tie_sends_gradient_once():
    layer = nn.MaxPool2d(2)
    x = np.zeros((1, 1, 4, 4))
    layer.forward(x)
    dx = layer.backward(np.ones((1, 1, 2, 2)))
    assert dx.sum() == 4 and dx[0, 0, 0, 0] == 1 and dx[0, 0, 0, 1] == 0  # the first of the tied maxima


@pytest.mark.parametrize("shape,cls", [((6, 3), nn.BatchNorm1d), ((4, 3, 5), nn.BatchNorm1d),
                                       ((3, 2, 3, 4), nn.BatchNorm2d)])
@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_gradients(shape, cls, training):
    rng = np.random.default_rng(3)
    layer = cls(shape[1], dtype=F64)
    layer.weight.data[:] = rng.uniform(0.5, 2, shape[1])
    layer.bias.data[:] = rng.standard_normal(shape[1])
    layer.running_mean[:] = rng.standard_normal(shape[1])
    layer.running_var[:] = rng.uniform(0.5, 2, shape[1])
    layer.train(training)
    stats = (layer.running_mean.copy(), layer.running_var.copy())
    check_layer(layer, rng.standard_normal(shape) * 2 + 1, rng)
    if not training:
        np.testing.assert_array_equal(layer.running_mean, stats[0])


@pytest.mark.parametrize("norm_shape,x_shape", [((4,), (3, 4)), ((3, 4), (2, 3, 4)), ((5,), (2, 2, 5))])
def test_layernorm_gradients(norm_shape, x_shape):
    rng = np.random.default_rng(4)
    layer = nn.LayerNorm(norm_shape, dtype=F64)
    layer.weight.data[:] = rng.uniform(0.5, 2, norm_shape)
    layer.bias.data[:] = rng.standard_normal(norm_shape)
    check_layer(layer, rng.standard_normal(x_shape), rng)


@pytest.mark.parametrize("layer,kinks", [
    (nn.ReLU(), [0.0]), (nn.ReLU6(), [0.0, 6.0]), (nn.Tanh(), []), (nn.Sigmoid(), []),
    (nn.GELU(), []), (nn.GELU("tanh"), []),
])
def test_activation_gradients(layer, kinks):
    rng = np.random.default_rng(5)
    check_layer(layer, away_from(rng, (3, 7), kinks, scale=8.0), rng)


def test_dropout_gradient_is_the_mask():
    rng = np.random.default_rng(6)
    layer = nn.Dropout(0.4, rng=7)
    x = rng.uniform(1, 2, (50, 40))
    y = layer.forward(x)
    kept = y != 0
    assert 0.5 < kept.mean() < 0.7
    np.testing.assert_allclose(y[kept], x[kept] / 0.6, rtol=1e-15)
    dy = rng.standard_normal(x.shape)
    np.testing.assert_allclose(layer.backward(dy), np.where(kept, dy / 0.6, 0), rtol=1e-15)
    layer.eval()
    assert layer.forward(x) is x


def test_dropout_same_seed_same_mask_and_needs_rng():
    x = np.ones((10, 10))
    a, b = nn.Dropout(0.5, rng=3), nn.Dropout(0.5, rng=3)
    np.testing.assert_array_equal(a.forward(x), b.forward(x))
    with pytest.raises(ValidationError, match="rng"):
        nn.Dropout(0.5).forward(x)


def test_embedding_gradient():
    rng = np.random.default_rng(8)
    layer = nn.Embedding(5, 3, rng=0, dtype=F64)
    idx = np.array([[0, 2, 2], [4, 0, 1]])
    r = rng.standard_normal((2, 3, 3))
    layer.forward(idx)
    assert layer.backward(r) is None
    w = layer.weight.data
    num = np.zeros_like(w)
    h = 1e-6
    for i in np.ndindex(w.shape):
        old = w[i]
        w[i] = old + h
        lp = np.sum(layer.forward(idx) * r)
        w[i] = old - h
        lm = np.sum(layer.forward(idx) * r)
        w[i] = old
        num[i] = (lp - lm) / (2 * h)
    np.testing.assert_allclose(layer.weight.grad, num, rtol=1e-6, atol=1e-6)
    assert np.all(layer.weight.grad[3] == 0)  # row 3 never looked up


def test_sequential_small_convnet_gradients():
    rng = np.random.default_rng(9)
    model = nn.Sequential(
        ("conv", nn.Conv2d(2, 3, 3, padding=1, rng=0, dtype=F64)), ("bn", nn.BatchNorm2d(3, dtype=F64)),
        ("act", nn.Tanh()), ("pool", nn.AvgPool2d(2)), ("flat", nn.Flatten()),
        ("ln", nn.LayerNorm(18, dtype=F64)), ("fc", nn.Linear(18, 4, rng=1, dtype=F64)))
    check_layer(model, rng.standard_normal((3, 2, 4, 6)), rng, max_coords=40)


@settings(max_examples=15)
@given(n=st.integers(1, 5), k=st.integers(2, 6), smooth=st.sampled_from([0.0, 0.1, 0.5]), seed=st.integers(0, 2**31))
def test_cross_entropy_gradient(n, k, smooth, seed):
    rng = np.random.default_rng(seed)
    check_loss(nn.CrossEntropyLoss(smooth), rng.standard_normal((n, k)) * 3, rng.integers(0, k, n), rng)


@settings(max_examples=15)
@given(n=st.integers(1, 5), k=st.integers(2, 6), t=st.sampled_from([1.0, 2.0, 4.0]), seed=st.integers(0, 2**31))
def test_kl_distillation_gradient(n, k, t, seed):
    rng = np.random.default_rng(seed)
    check_loss(nn.KLDivLoss(t), rng.standard_normal((n, k)) * 3, rng.standard_normal((n, k)) * 3, rng)


def test_mse_gradient():
    rng = np.random.default_rng(10)
    check_loss(nn.MSELoss(), rng.standard_normal((3, 4)), rng.standard_normal((3, 4)), rng)
