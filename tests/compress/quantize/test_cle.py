"""Bias correction removes the mean output shift; CLE leaves ReLU networks' outputs unchanged."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp.compress.quantize import equalization_scales, equalize_chain, equalize_pair
from refcomp.errors import ShapeError

from ..conv_reference import conv2d
from .cases import relu, seeds

# --- cross-layer equalization -------------------------------------------------


def _ranges(w1, w2):
    r1 = np.max(np.abs(w1), axis=tuple(a for a in range(w1.ndim) if a != 0))
    r2 = np.max(np.abs(w2), axis=tuple(a for a in range(w2.ndim) if a != 1))
    return r1, r2


@settings(max_examples=40)
@given(st.integers(1, 12), st.integers(1, 12), st.integers(1, 12), seeds)
def test_cle_keeps_relu_network_outputs_and_equalizes_ranges(n_in, hidden, n_out, seed):
    rng = np.random.default_rng(seed)
    # channels with very different ranges: what CLE is for
    w1 = rng.standard_normal((hidden, n_in)) * rng.lognormal(0, 2, size=(hidden, 1))
    b1 = rng.standard_normal(hidden)
    w2 = rng.standard_normal((n_out, hidden))
    x = rng.standard_normal((32, n_in))
    w1e, b1e, w2e, s = equalize_pair(w1, b1, w2)
    y = relu(x @ w1.T + b1) @ w2.T
    y_e = relu(x @ w1e.T.astype(np.float64) + b1e) @ w2e.T.astype(np.float64)
    np.testing.assert_allclose(y_e, y, rtol=1e-4, atol=1e-4 * (1 + np.abs(y).max()))
    r1, r2 = _ranges(w1e.astype(np.float64), w2e.astype(np.float64))
    np.testing.assert_allclose(r1, r2, rtol=1e-6)
    np.testing.assert_allclose(s, np.sqrt(_ranges(w1, w2)[0] * _ranges(w1, w2)[1]) / _ranges(w1, w2)[1])


@settings(max_examples=30)
@given(st.integers(1, 6), seeds)
def test_any_positive_scaling_commutes_with_relu(hidden, seed):
    """Eq. (12) for arbitrary s > 0: the property CLE relies on (and why s must be positive)."""
    rng = np.random.default_rng(seed)
    w1, b1, w2 = rng.standard_normal((hidden, 4)), rng.standard_normal(hidden), rng.standard_normal((3, hidden))
    s = rng.uniform(0.01, 100, size=hidden)
    x = rng.standard_normal((16, 4))
    y = relu(x @ w1.T + b1) @ w2.T
    y_s = relu(x @ (w1 / s[:, None]).T + b1 / s) @ (w2 * s).T
    np.testing.assert_allclose(y_s, y, rtol=1e-9, atol=1e-9)
    if hidden and np.any(relu(x @ w1.T + b1) > 0):
        y_neg = relu(x @ (-w1).T - b1) @ (-w2).T  # s = −1 breaks it
        assert not np.allclose(y_neg, y)


def test_cle_on_conv_pair():
    rng = np.random.default_rng(1)
    w1 = rng.standard_normal((6, 3, 3, 3)) * rng.lognormal(0, 2, size=(6, 1, 1, 1))
    b1 = rng.standard_normal(6)
    w2 = rng.standard_normal((4, 6, 3, 3))
    x = rng.standard_normal((2, 3, 9, 9))
    w1e, b1e, w2e, _ = equalize_pair(w1, b1, w2)
    y = conv2d(relu(conv2d(x, w1) + b1[:, None, None]), w2)
    y_e = conv2d(relu(conv2d(x, w1e.astype(np.float64)) + b1e[:, None, None]), w2e.astype(np.float64))
    np.testing.assert_allclose(y_e, y, rtol=1e-4, atol=1e-4 * np.abs(y).max())
    r1, r2 = _ranges(w1e, w2e)
    np.testing.assert_allclose(r1, r2, rtol=1e-6)


def test_cle_zero_channel_and_chain():
    w1 = np.array([[0.0, 0.0], [4.0, 1.0]])
    w2 = np.array([[1.0, 1.0]])
    np.testing.assert_array_equal(equalization_scales(w1, w2), [1.0, 2.0])
    rng = np.random.default_rng(2)
    ws = [rng.standard_normal((8, 5)) * rng.lognormal(0, 2, (8, 1)), rng.standard_normal((7, 8)) * 10,
          rng.standard_normal((3, 7))]
    bs = [rng.standard_normal(8), None, rng.standard_normal(3)]
    new_w, new_b, sweeps = equalize_chain(ws, bs, max_iter=50)
    x = rng.standard_normal((10, 5))

    def net(w, b):
        h = relu(x @ w[0].T + b[0])
        h = relu(h @ w[1].T)
        return h @ w[2].T + b[2]

    ref = net(ws, bs)
    np.testing.assert_allclose(net([w.astype(np.float64) for w in new_w], new_b), ref,
                               rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    for k in range(2):
        r1, r2 = _ranges(new_w[k], new_w[k + 1])
        np.testing.assert_allclose(r1, r2, rtol=1e-3)
    assert 1 < sweeps <= 50
    with pytest.raises(ShapeError, match="w2"):
        equalize_pair(np.ones((3, 2)), None, np.ones((2, 4)))
