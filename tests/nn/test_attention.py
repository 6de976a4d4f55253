"""MultiHeadAttention: the forward against the formula written out here (loops, no shared code),
the padding mask, finite-difference gradients (float64), bad input."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from .graph_gradcheck import check_module
from .nn_gradcheck import check_input_grad_false
from refcomp import nn
from refcomp.errors import ShapeError, ValidationError


def reference_attention(layer, x, mask):
    """softmax(Q_h K_hᵀ/√d + mask) V_h per sample and head, by loops; masked keys get −∞.

    Rows whose keys are all masked come out NaN here (0/0): callers skip them.
    """
    w = {name: p.data.astype(np.float64) for name, p in layer.named_weights()}
    n_batch, t, dm = x.shape
    h = layer.num_heads
    d = dm // h
    y = np.empty((n_batch, t, dm))
    for n in range(n_batch):
        q = x[n] @ w["q_proj.weight"].T + w["q_proj.bias"]
        k = x[n] @ w["k_proj.weight"].T + w["k_proj.bias"]
        v = x[n] @ w["v_proj.weight"].T + w["v_proj.bias"]
        heads = []
        for head in range(h):
            cols = slice(head * d, (head + 1) * d)
            out = np.empty((t, d))
            for i in range(t):
                scores = np.array([q[i, cols] @ k[j, cols] / math.sqrt(d) for j in range(t)])
                if mask is not None:
                    scores = np.where(mask[n] == 1, scores, -np.inf)
                with np.errstate(invalid="ignore"):
                    e = np.exp(scores - scores.max())
                    out[i] = (e / e.sum()) @ v[:, cols]
            heads.append(out)
        y[n] = np.concatenate(heads, axis=1) @ w["out_proj.weight"].T + w["out_proj.bias"]
    return y


def padding_mask(rng, n, t):
    """1 = keep, 0 = padding at the end of each sequence; every sequence keeps >= 1 token."""
    lengths = rng.integers(1, t + 1, n)
    return (np.arange(t)[None, :] < lengths[:, None]).astype(np.int64)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 3), t=st.integers(1, 5), heads=st.sampled_from([1, 2, 4]), dh=st.integers(1, 3),
       masked=st.booleans(), seed=st.integers(0, 2**31))
def test_forward_matches_the_formula(n, t, heads, dh, masked, seed):
    rng = np.random.default_rng(seed)
    layer = nn.MultiHeadAttention(heads * dh, heads, rng=seed, dtype="float64")
    x = rng.standard_normal((n, t, heads * dh))
    mask = padding_mask(rng, n, t) if masked else None
    args = (x, mask) if masked else (x,)
    np.testing.assert_allclose(layer.forward(*args), reference_attention(layer, x, mask), rtol=1e-12, atol=1e-12)


def test_float32_forward_close_to_float64_formula():
    rng = np.random.default_rng(3)
    layer = nn.MultiHeadAttention(8, 2, rng=3)
    x = rng.standard_normal((2, 4, 8)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0]])
    y = layer.forward(x, mask)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, reference_attention(layer, x.astype(np.float64), mask), rtol=1e-5, atol=1e-5)


def test_padded_positions_do_not_change_unpadded_outputs():
    rng = np.random.default_rng(4)
    layer = nn.MultiHeadAttention(12, 3, rng=4, dtype="float64")
    mask = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    x = rng.standard_normal((2, 6, 12))
    y = layer.forward(x, mask)
    x2 = x.copy()
    x2[0, 4:] = rng.standard_normal((2, 12)) * 100      # anything at the padded positions
    y2 = layer.forward(x2, mask)
    np.testing.assert_array_equal(y2[0, :4], y[0, :4])  # padded keys weigh exactly 0
    np.testing.assert_array_equal(y2[1], y[1])
    assert not np.array_equal(y2[0, 4:], y[0, 4:])      # padded queries do change (ignored downstream)
    # ... and the gradient reaching padded inputs from the kept outputs is exactly 0
    dy = np.zeros_like(y)
    dy[0, :4] = rng.standard_normal((4, 12))
    dx, dmask = layer.backward(dy)
    assert dmask is None and np.all(dx[0, 4:] == 0)


def test_fully_masked_rows_are_finite():
    layer = nn.MultiHeadAttention(4, 2, rng=5)
    x = np.random.default_rng(5).standard_normal((2, 3, 4)).astype(np.float32)
    mask = np.array([[0, 0, 0], [1, 0, 0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):   # underflow to 0 is the point
        y = layer.forward(x, mask)
        dx, _ = layer.backward(np.ones_like(y))
    assert np.isfinite(y).all() and np.isfinite(dx).all()


def test_bool_and_float_masks_equal_int_mask():
    rng = np.random.default_rng(6)
    layer = nn.MultiHeadAttention(4, 2, rng=6)
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    m = np.array([[1, 1, 0], [1, 0, 0]])
    y = layer.forward(x, m)
    assert layer.forward(x, m.astype(bool)).tobytes() == y.tobytes()
    assert layer.forward(x, m.astype(np.float32)).tobytes() == y.tobytes()


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_gradients(masked, bias):
    rng = np.random.default_rng(7)
    layer = nn.MultiHeadAttention(6, 3, bias, rng=7, dtype="float64")
    x = rng.standard_normal((2, 4, 6))
    inputs = [x, np.array([[1, 1, 1, 0], [1, 1, 0, 0]])] if masked else [x]
    check_module(layer, inputs, rng)


def test_input_grad_false_gives_the_same_parameter_gradients():
    rng = np.random.default_rng(8)
    layer = nn.MultiHeadAttention(4, 2, rng=8, dtype="float64")
    x, dy = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3, 4))
    check_input_grad_false(layer, x, dy)


def test_projection_names_and_hooks_see_rows():
    layer = nn.MultiHeadAttention(4, 2, rng=0)
    assert [n for n, _ in layer.named_weights()] == [
        f"{p}.{w}" for p in ("q_proj", "k_proj", "v_proj", "out_proj") for w in ("weight", "bias")]
    seen = []
    layer.q_proj.register_forward_hook(lambda m, inputs, out: seen.append(inputs[0].shape))
    layer.forward(np.zeros((2, 3, 4), np.float32))
    assert seen == [(6, 4)]


def test_bad_input():
    with pytest.raises(ValidationError, match="^num_heads:"):
        nn.MultiHeadAttention(6, 4)
    layer = nn.MultiHeadAttention(4, 2)
    with pytest.raises(ShapeError, match="^x:"):
        layer.forward(np.zeros((2, 3, 5)))
    with pytest.raises(ShapeError, match="^x:"):
        layer.forward(np.zeros((6, 4)))
    with pytest.raises(ShapeError, match="^mask:"):
        layer.forward(np.zeros((2, 3, 4)), np.ones((2, 4)))
    with pytest.raises(ValidationError, match="^mask:"):
        layer.forward(np.zeros((2, 3, 4)), np.full((2, 3), 2))
    with pytest.raises(ValidationError, match="^backward:"):
        nn.MultiHeadAttention(4, 2).backward(np.zeros((2, 3, 4)))


def test_config_and_the_projections_drawn_in_turn():
    assert nn.MultiHeadAttention(6, 3).config() == {"d_model": 6, "num_heads": 3, "bias": True, "dtype": "float32"}
    assert nn.MultiHeadAttention(4, 1, False, dtype="float64").config() == {
        "d_model": 4, "num_heads": 1, "bias": False, "dtype": "float64"}
    layer = nn.MultiHeadAttention(4, 2, rng=11, init="glorot_uniform", dtype="float64")
    assert layer.head_dim == 2 and layer.scale == 1 / math.sqrt(2)
    g = np.random.default_rng(11)
    for proj in (layer.q_proj, layer.k_proj, layer.v_proj, layer.out_proj):    # q, k, v, out from one generator
        want = nn.Linear(4, 4, rng=g, init="glorot_uniform", dtype="float64")
        np.testing.assert_array_equal(proj.weight.data, want.weight.data)
        np.testing.assert_array_equal(proj.bias.data, want.bias.data)
    zero = nn.MultiHeadAttention(4, 2, bias=False)
    assert zero.q_proj.bias is None and np.all(zero.out_proj.weight.data == 0)


def test_a_mask_of_another_kind_is_refused():
    layer = nn.MultiHeadAttention(4, 2)
    for mask in (np.ones((2, 3), np.complex64), np.array([["1", "1", "0"], ["1", "0", "0"]]),
                 np.array([[1, 1, 0.5], [1, 0, 0]])):
        with pytest.raises(ValidationError, match="^mask:"):
            layer.forward(np.zeros((2, 3, 4), np.float32), mask)


def test_a_size_or_head_count_below_one_is_refused_by_name():
    for args, name in (((0, 1), "d_model"), ((-2, 1), "d_model"), ((4, 0), "num_heads"), ((4, -2), "num_heads")):
        with pytest.raises(ValidationError, match=f"^{name}:"):
            nn.MultiHeadAttention(*args)
    assert nn.MultiHeadAttention(1, 1).head_dim == 1                    # the smallest layer


def test_a_mask_keeping_every_key_adds_exactly_zero_to_the_scores():
    # one head of size 1, float32, the projections set by hand: q = 1, k = 2x + 2^24, v = x, out = identity.
    # x = (0, 1) gives the scores (2^24, 2^24 + 2), exact in float32 (its ulp there is 2), and every query
    # weighs key 1 by e^2 / (1 + e^2): y = sigmoid(2). Anything but an exact 0 added to a kept score would
    # be rounded at 2^24 and change the gap of 2.
    layer = nn.MultiHeadAttention(1, 1)
    for proj, w, b in ((layer.q_proj, 0, 1), (layer.k_proj, 2, 2.0 ** 24), (layer.v_proj, 1, 0), (layer.out_proj, 1, 0)):
        proj.weight.data[...] = w
        proj.bias.data[...] = b
    x = np.array([[[0.0], [1.0]]], np.float32)
    y = layer.forward(x)
    np.testing.assert_allclose(y, np.full((1, 2, 1), 1 / (1 + math.exp(-2))), rtol=1e-6)
    assert layer.forward(x, np.ones((1, 2), np.int64)).tobytes() == y.tobytes()
