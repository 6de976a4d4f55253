"""Conv2d and pooling forward equal their direct (loop) definitions."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp import nn


def naive_conv2d(x, w, b, stride, pad, dil, groups):
    """y[n,o,i,j] = b[o] + Σ_{c,u,v} w[o,c,u,v]·xp[n, γ·C/g + c, i·sh + u·dh, j·sw + v·dw], loops only."""
    n, cin, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.zeros((n, cin, h + 2 * pad[0], wd + 2 * pad[1]))
    xp[:, :, pad[0]:pad[0] + h, pad[1]:pad[1] + wd] = x
    oh = (h + 2 * pad[0] - dil[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd + 2 * pad[1] - dil[1] * (kw - 1) - 1) // stride[1] + 1
    y = np.zeros((n, o, oh, ow))
    og = o // groups
    for s in range(n):
        for oc in range(o):
            g = oc // og
            for i in range(oh):
                for j in range(ow):
                    acc = b[oc] if b is not None else 0.0
                    for c in range(cg):
                        for u in range(kh):
                            for v in range(kw):
                                acc += w[oc, c, u, v] * xp[s, g * cg + c, i * stride[0] + u * dil[0], j * stride[1] + v * dil[1]]
                    y[s, oc, i, j] = acc
    return y


def naive_pool(x, k, stride, pad, op):
    n, c, h, w = x.shape
    fill = -np.inf if op == "max" else 0.0
    xp = np.full((n, c, h + 2 * pad[0], w + 2 * pad[1]), fill)
    xp[:, :, pad[0]:pad[0] + h, pad[1]:pad[1] + w] = x
    oh = (h + 2 * pad[0] - k[0]) // stride[0] + 1
    ow = (w + 2 * pad[1] - k[1]) // stride[1] + 1
    y = np.zeros((n, c, oh, ow))
    for s in range(n):
        for ch in range(c):
            for i in range(oh):
                for j in range(ow):
                    win = xp[s, ch, i * stride[0]:i * stride[0] + k[0], j * stride[1]:j * stride[1] + k[1]]
                    y[s, ch, i, j] = win.max() if op == "max" else win.sum() / (k[0] * k[1])
    return y


@settings(max_examples=30)
@given(data=st.data())
def test_conv2d_equals_loops(data):
    g = data.draw(st.sampled_from([1, 2, 4]))
    cin, cout = g * data.draw(st.integers(1, 2)), g * data.draw(st.integers(1, 2))
    k = (data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4)))
    s = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))
    p = (data.draw(st.integers(0, 2)), data.draw(st.integers(0, 2)))
    d = (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2)))
    h = data.draw(st.integers(max(1, d[0] * (k[0] - 1) + 1 - 2 * p[0]), 8))
    w = data.draw(st.integers(max(1, d[1] * (k[1] - 1) + 1 - 2 * p[1]), 8))
    bias = data.draw(st.booleans())
    seed = data.draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    layer = nn.Conv2d(cin, cout, k, s, p, d, g, bias, rng=seed, dtype="float64")
    x = rng.standard_normal((2, cin, h, w))
    want = naive_conv2d(x, layer.weight.data, layer.bias.data if bias else None, s, p, d, g)
    np.testing.assert_allclose(layer.forward(x), want, rtol=1e-12, atol=1e-12)


def test_conv2d_float32_close_to_float64_loops():
    rng = np.random.default_rng(0)
    layer = nn.Conv2d(3, 4, 3, padding=1, rng=0)
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    y = layer.forward(x)
    assert y.dtype == np.float32
    want = naive_conv2d(x.astype(np.float64), layer.weight.data.astype(np.float64), layer.bias.data, (1, 1), (1, 1), (1, 1), 1)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)


@settings(max_examples=30)
@given(data=st.data())
def test_pooling_equals_loops(data):
    op = data.draw(st.sampled_from(["max", "avg"]))
    k = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))
    s = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))
    p = (data.draw(st.integers(0, k[0] // 2)), data.draw(st.integers(0, k[1] // 2)))
    h, w = data.draw(st.integers(k[0], 8)), data.draw(st.integers(k[1], 8))
    x = np.random.default_rng(data.draw(st.integers(0, 2**31))).standard_normal((2, 3, h, w))
    layer = (nn.MaxPool2d if op == "max" else nn.AvgPool2d)(k, s, p)
    np.testing.assert_allclose(layer.forward(x), naive_pool(x, k, s, p, op), rtol=1e-13, atol=1e-15)


def test_global_avg_pool_is_mean():
    x = np.random.default_rng(1).standard_normal((2, 3, 4, 5))
    np.testing.assert_allclose(nn.GlobalAvgPool2d().forward(x), x.mean(axis=(2, 3)))


def test_norm_layers_forward_definitions():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((8, 3, 4, 4)) * 3 + 2
    bn = nn.BatchNorm2d(3, dtype="float64")
    y = bn.forward(x)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1, rtol=1e-4)   # ε = 1e-5 shrinks it slightly
    m = 8 * 16
    np.testing.assert_allclose(bn.running_mean, 0.1 * x.mean(axis=(0, 2, 3)))
    np.testing.assert_allclose(bn.running_var, 0.9 + 0.1 * x.var(axis=(0, 2, 3)) * m / (m - 1))
    ln = nn.LayerNorm((4, 4), dtype="float64")
    z = ln.forward(x)
    np.testing.assert_allclose(z.mean(axis=(2, 3)), 0, atol=1e-12)


def test_activation_values():
    x = np.array([-7.0, -1.0, 0.0, 0.5, 3.0, 6.5])
    np.testing.assert_array_equal(nn.ReLU().forward(x), [0, 0, 0, 0.5, 3, 6.5])
    np.testing.assert_array_equal(nn.ReLU6().forward(x), [0, 0, 0, 0.5, 3, 6])
    from math import erf, sqrt

    np.testing.assert_allclose(nn.GELU().forward(x), [v * 0.5 * (1 + erf(v / sqrt(2))) for v in x], rtol=1e-15)
    np.testing.assert_allclose(nn.GELU("tanh").forward(x), nn.GELU().forward(x), atol=2e-3)
    s = nn.Sigmoid().forward(np.array([-1000.0, 0.0, 1000.0]))   # no overflow warning (warnings are errors)
    np.testing.assert_array_equal(s, [0.0, 0.5, 1.0])


def test_cross_entropy_values_and_stability():
    z = np.array([[1000.0, 0.0], [0.0, 0.0]])
    loss = nn.CrossEntropyLoss()
    assert np.isclose(loss(z, np.array([0, 1])), (0.0 + np.log(2)) / 2)
    assert np.isclose(loss(z, np.array([1, 1])), (1000.0 + np.log(2)) / 2)
    smooth = nn.CrossEntropyLoss(0.2)
    zz = np.array([[2.0, 0.0, -1.0]])
    logp = zz - np.log(np.exp(zz).sum())
    assert np.isclose(smooth(zz, np.array([0])), -(0.8 * logp[0, 0] + 0.2 / 3 * logp.sum()))


def test_kl_temperature_scaling():
    rng = np.random.default_rng(3)
    s, t = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    kl = nn.KLDivLoss(1.0)
    assert kl(t, t) == 0.0
    p = np.exp(t) / np.exp(t).sum(1, keepdims=True)
    q = np.exp(s) / np.exp(s).sum(1, keepdims=True)
    assert np.isclose(kl(s, t), np.mean((p * np.log(p / q)).sum(1)))
    kl4 = nn.KLDivLoss(4.0)
    p4 = np.exp(t / 4) / np.exp(t / 4).sum(1, keepdims=True)
    q4 = np.exp(s / 4) / np.exp(s / 4).sum(1, keepdims=True)
    assert np.isclose(kl4(s, t), 16 * np.mean((p4 * np.log(p4 / q4)).sum(1)))


def test_gelu_forward_is_ops_gelu():
    """float64 runs the definition bit for bit; float32 the fast kernel (ops.gelu's backend "auto")."""
    from refcomp import ops

    x = np.random.default_rng(0).standard_normal((4, 33)) * 3
    np.testing.assert_array_equal(nn.GELU().forward(x), ops.gelu(x, backend="numpy"))
    x32 = x.astype(np.float32)
    np.testing.assert_array_equal(nn.GELU().forward(x32), ops.gelu(x32))
    np.testing.assert_array_equal(nn.GELU("tanh").forward(x32), ops.gelu(x32, approximate="tanh", backend="numpy"))
