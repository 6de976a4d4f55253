"""Bias correction removes the mean output shift; CLE leaves ReLU networks' outputs unchanged."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp.compress.quantize import equalization_scales, equalize_chain, equalize_pair
from refcomp.errors import ShapeError, ValidationError

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


def test_scales_are_eq_13_in_float64_for_float32_weights():
    # s_i = sqrt(r1_i · r2_i) / r2_i written out on the float64 ranges; a float32 s would round it
    rng = np.random.default_rng(5)
    w1 = (rng.standard_normal((6, 4)) * rng.lognormal(0, 2, (6, 1))).astype(np.float32)
    w2 = rng.standard_normal((3, 6)).astype(np.float32)
    w1[1] = 0.0            # r1 = 0: left as it is
    w2[:, 4] = 0.0         # r2 = 0: left as it is (sqrt(r1·0) / 0 would be NaN)
    s = equalization_scales(w1, w2)
    r1 = np.abs(w1.astype(np.float64)).max(axis=1)
    r2 = np.abs(w2.astype(np.float64)).max(axis=0)
    want = [1.0 if r1[i] == 0 or r2[i] == 0 else np.sqrt(r1[i] * r2[i]) / r2[i] for i in range(6)]
    assert s.dtype == np.float64
    np.testing.assert_array_equal(s, want)
    assert s[1] == 1.0 and s[4] == 1.0


def test_equalize_pair_returns_eq_12_rounded_once_to_float32():
    rng = np.random.default_rng(6)
    w1 = rng.standard_normal((4, 3, 2, 2)) * rng.lognormal(0, 2, (4, 1, 1, 1))
    b1 = rng.standard_normal(4)
    w2 = rng.standard_normal((5, 4, 3, 3))
    w1e, b1e, w2e, s = equalize_pair(w1, b1, w2)
    assert (w1e.dtype, b1e.dtype, w2e.dtype) == (np.float32, np.float32, np.float32)
    np.testing.assert_array_equal(w1e, (w1 / s[:, None, None, None]).astype(np.float32))
    np.testing.assert_array_equal(b1e, (b1 / s).astype(np.float32))
    np.testing.assert_array_equal(w2e, (w2 * s[None, :, None, None]).astype(np.float32))
    assert equalize_pair(w1, None, w2)[1] is None


def test_w2_must_read_w1_outputs_not_its_inputs():
    # w2's input channels (axis 1) are w1's outputs (axis 0): here they equal w1's inputs instead
    with pytest.raises(ShapeError) as e:
        equalize_pair(np.ones((3, 2)), None, np.ones((5, 2)))
    assert e.value.argument == "w2"
    with pytest.raises(ShapeError) as e:
        equalize_pair(np.ones((3, 2)), np.ones(2), np.ones((5, 3)))
    assert e.value.argument == "b1"


def _balanced_chain():
    """Every pair already has r1_i == r2_i: s = sqrt(r·r) / r is exactly 1."""
    w1 = np.array([[1.0, -0.5], [0.25, 2.0]])           # r1 = [1, 2]
    w2 = np.array([[-1.0, 0.5], [0.5, 2.0], [0.0, -1.0]])  # r2 = [1, 2], r1 (rows) = [1, 2, 1]
    w3 = np.array([[1.0, 2.0, -1.0]])                   # r2 = [1, 2, 1]
    return [w1, w2, w3]


def test_chain_sweeps_stop_below_tol_or_at_max_iter():
    ws = _balanced_chain()
    assert equalize_chain(ws, [None] * 3)[2] == 1                  # max |log s| = 0 < tol at once
    assert equalize_chain(ws, [None] * 3, tol=0.0)[2] == 20        # 0 < 0 never holds: max_iter (default 20) sweeps
    assert equalize_chain(ws, [None] * 3, tol=0.0, max_iter=3)[2] == 3
    assert equalize_chain(ws, [None] * 3, max_iter=1)[2] == 1      # one sweep is allowed
    with pytest.raises(ValidationError) as e:
        equalize_chain(ws, [None] * 3, max_iter=0)
    assert e.value.argument == "max_iter"
    # no channel to equalize: nothing moves, one sweep
    assert equalize_chain([np.ones((0, 3)), np.ones((2, 0))], [None, None])[2] == 1


def test_chain_default_tolerance_leaves_every_pair_balanced_to_1e_6():
    rng = np.random.default_rng(2)
    ws = [rng.standard_normal((8, 5)) * rng.lognormal(0, 2, (8, 1)), rng.standard_normal((7, 8)) * 10,
          rng.standard_normal((3, 7))]
    new_w, new_b, sweeps = equalize_chain(ws, [None, rng.standard_normal(7), rng.standard_normal(3)])
    assert 1 < sweeps < 20
    assert all(w.dtype == np.float32 for w in new_w) and new_b[0] is None
    assert new_b[1].dtype == np.float32 and new_b[2].dtype == np.float32
    for k in range(2):
        # the last sweep moved no scale by more than tol = 1e-6 (plus the float32 rounding of the weights)
        s = equalization_scales(new_w[k].astype(np.float64), new_w[k + 1].astype(np.float64))
        assert np.max(np.abs(np.log(s))) < 1e-6 + 2.0**-23


def test_a_conv_chain_of_one_pair_is_equalize_pair():
    # one sweep over one pair: the same float64 arithmetic, rounded once to float32
    rng = np.random.default_rng(7)
    w1 = rng.standard_normal((4, 2, 3, 3)) * rng.lognormal(0, 2, (4, 1, 1, 1))
    b1 = rng.standard_normal(4)
    w2 = rng.standard_normal((3, 4, 1, 1))
    (c1, c2), (cb1, cb2), sweeps = equalize_chain([w1, w2], [b1, None], max_iter=1)
    p1, pb1, p2, _ = equalize_pair(w1, b1, w2)
    assert sweeps == 1 and cb2 is None
    assert c1.tobytes() == p1.tobytes() and cb1.tobytes() == pb1.tobytes() and c2.tobytes() == p2.tobytes()


@pytest.mark.parametrize("w1, w2, argument", [
    (np.ones((2, 3, 4)), np.ones((5, 2)), "w1"),
    (np.ones((2, 3)), np.ones((5, 2, 4)), "w2"),
    (np.ones((2, 3, 4)), np.ones((5, 2, 4)), "w1"),       # both wrong: the first is named
])
def test_weights_of_other_ranks_are_refused_by_name(w1, w2, argument):
    # _ranges would read a 3-D array as well: the rank is checked, not assumed
    for call in (lambda: equalization_scales(w1, w2), lambda: equalize_pair(w1, None, w2)):
        with pytest.raises(ShapeError) as e:
            call()
        assert e.value.argument == argument


def test_chain_refuses_bad_weights_and_biases_by_their_index():
    with pytest.raises(ShapeError) as e:
        equalize_chain([np.ones((2, 3, 4)), np.ones((5, 2))], [None, None])
    assert e.value.argument == "weights[0]"
    for k in range(2):                     # the last layer's bias is never equalized, but checked all the same
        biases = [np.ones(2), np.ones(5)]
        biases[k] = biases[k][:, None]
        with pytest.raises(ShapeError) as e:
            equalize_chain([np.ones((2, 3)), np.ones((5, 2))], biases)
        assert e.value.argument == f"biases[{k}]"
    with pytest.raises(ShapeError) as e:
        equalize_chain([np.ones((2, 3)), np.ones((5, 2))], [None])
    assert e.value.argument == "biases"
