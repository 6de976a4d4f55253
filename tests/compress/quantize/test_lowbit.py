"""Binary, ternary and power-of-two quantizers and their STE gradients."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp.compress.quantize import (binarize, binarize_grad, power_of_two_grad, power_of_two_quantize, ternarize,
                                       ternarize_grad, xnor_binarize, xnor_grad)
from refcomp.errors import ShapeError, ValidationError

shapes = st.sampled_from([(3, 5), (4, 1), (2, 3, 3, 3), (6, 2, 1, 5)])
seeds = st.integers(0, 2**32 - 1)


def test_binarize_is_sign_with_zero_to_plus_one():
    np.testing.assert_array_equal(binarize([-2.0, -0.0, 0.0, 1e-30, 3.0]), [-1, 1, 1, 1, 1])
    assert binarize(np.ones(3)).dtype == np.int8


def test_binarize_grad_cancels_outside_clip():
    w = np.array([-1.5, -1.0, 0.2, 1.0, 2.0])
    g = np.arange(5.0) + 1
    np.testing.assert_array_equal(binarize_grad(w, g), [0, 2, 3, 4, 0])
    np.testing.assert_array_equal(binarize_grad(w, g, clip=None), g)
    with pytest.raises(ShapeError, match="grad"):
        binarize_grad(w, np.ones(4))


@settings(max_examples=30)
@given(shapes, seeds)
def test_xnor_alpha_is_the_least_squares_scale(shape, seed):
    w = np.random.default_rng(seed).standard_normal(shape)
    codes, alpha = xnor_binarize(w)
    axes = tuple(range(1, w.ndim))
    np.testing.assert_allclose(alpha, np.mean(np.abs(w), axis=axes), rtol=1e-6)
    a = alpha.astype(np.float64).reshape((-1,) + (1,) * (w.ndim - 1))

    def err(scale):
        return np.sum((w - scale * codes) ** 2, axis=axes)

    # α = mean|W| minimises ||W − α sign(W)||² per channel: moving it either way costs
    assert np.all(err(a) <= err(a * 1.01) + 1e-9) and np.all(err(a) <= err(a * 0.99) + 1e-9)


@settings(max_examples=30)
@given(shapes, seeds)
def test_xnor_grad_alpha_term_matches_finite_differences(shape, seed):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(shape)
    w[np.abs(w) < 0.05] = 0.5  # keep FD steps from crossing 0 (sign held fixed)
    g = rng.standard_normal(shape)
    sign = np.where(w >= 0, 1.0, -1.0)
    axes = tuple(range(1, w.ndim))

    def f(v):  # C(W) = Σ g̃ · α(W) · sign(W0): the α part of W̃ = α sign(W)
        return np.sum(g * np.mean(np.abs(v), axis=axes, keepdims=True) * sign)

    fd = np.zeros_like(w)
    # f is linear in each coordinate while no sign flips (|w| >= 0.05 > eps): a large step has no
    # truncation error and 1000x less rounding error than 1e-6 (which failed at atol 1e-9 for some seeds)
    eps = 1e-3
    for idx in np.ndindex(w.shape):
        e = np.zeros_like(w)
        e[idx] = eps
        fd[idx] = (f(w + e) - f(w - e)) / (2 * eps)
    alpha = np.mean(np.abs(w), axis=axes, keepdims=True)
    ste_part = alpha * g * (np.abs(w) <= 1.0)
    np.testing.assert_allclose(xnor_grad(w, g) - ste_part, fd, rtol=1e-6, atol=1e-9)


def test_ternarize_by_hand_and_per_channel():
    w = np.array([[1.0, -0.1, 0.0, -2.0], [0.3, 0.3, -0.3, 0.0]])
    # per tensor: mean|w| = 4.0/8 = 0.5, Δ = 0.35; |w| > Δ: 1.0, 2.0 -> α = 1.5
    codes, alpha = ternarize(w)
    np.testing.assert_array_equal(codes, [[1, 0, 0, -1], [0, 0, 0, 0]])
    assert alpha.shape == () and alpha == np.float32(1.5)
    # per channel: row 1 mean|w| = 0.225, Δ = 0.1575 -> three ±0.3 kept, α = 0.3
    codes_c, alpha_c = ternarize(w, per_channel=True)
    np.testing.assert_array_equal(codes_c[1], [1, 1, -1, 0])
    np.testing.assert_allclose(alpha_c, [1.5, 0.3], rtol=1e-6)
    zc, za = ternarize(np.zeros((2, 3)), per_channel=True)
    assert np.all(zc == 0) and np.all(za == 0)


@settings(max_examples=30)
@given(shapes, seeds)
def test_ternary_values_and_identity_ste(shape, seed):
    w = np.random.default_rng(seed).standard_normal(shape)
    codes, alpha = ternarize(w, per_channel=True)
    assert set(np.unique(codes)) <= {-1, 0, 1}
    delta = 0.7 * np.mean(np.abs(w), axis=tuple(range(1, w.ndim)), keepdims=True)
    np.testing.assert_array_equal(codes != 0, np.abs(w) > delta)
    np.testing.assert_array_equal(np.sign(codes), np.sign(w) * (codes != 0))
    g = np.ones(shape)
    np.testing.assert_array_equal(ternarize_grad(w, g), g)


def test_power_of_two_by_hand():
    w = np.array([1.0, -0.3, 0.7, 0.0, 5.0, -1e-4, 1.4142, 1.4143])
    q = power_of_two_quantize(w, bits=4, max_exponent=1)  # exponents [-5, 1] + zero
    assert q.min_exponent == -5
    # 5.0 clips to 2^1; −1e-4 underflows to 0; log-domain rounding flips at sqrt(2)
    np.testing.assert_array_equal(q.to_dense(), np.float32([1, -0.25, 0.5, 0, 2, 0, 1, 2]))


@settings(max_examples=40)
@given(shapes, seeds, st.integers(2, 6))
def test_power_of_two_values_are_signed_powers_in_the_window(shape, seed, bits):
    w = np.random.default_rng(seed).standard_normal(shape)
    q = power_of_two_quantize(w, bits=bits)
    v = q.to_dense().astype(np.float64)
    nz = v != 0
    e = np.log2(np.abs(v[nz]))
    np.testing.assert_array_equal(e, np.rint(e))
    assert np.all((e >= q.min_exponent) & (e <= q.max_exponent))
    assert q.max_exponent - q.min_exponent + 1 == 2 ** (bits - 1) - 1
    assert np.all(np.sign(v[nz]) == np.sign(w[nz]))
    # within the window, ŵ is within a factor sqrt(2) of w (rounding in the log domain)
    inside = nz & (np.abs(w) <= 2.0**q.max_exponent)
    ratio = np.abs(v[inside] / w[inside])
    assert np.all((ratio <= np.sqrt(2) * (1 + 1e-12)) & (ratio >= 1 / np.sqrt(2) * (1 - 1e-12)))
    g = np.ones(shape)
    np.testing.assert_array_equal(power_of_two_grad(w, g, max_exponent=q.max_exponent),
                                  np.abs(w) <= 2.0**q.max_exponent)


def test_lowbit_argument_errors():
    with pytest.raises(ValidationError, match="bits"):
        power_of_two_quantize(np.ones(3), bits=1)
    with pytest.raises(ValidationError, match="max_exponent"):
        power_of_two_quantize(np.ones(3), bits=8, max_exponent=-100)
    with pytest.raises(ShapeError, match="w"):
        xnor_binarize(np.ones(3))
    with pytest.raises(ValidationError, match="threshold_factor"):
        ternarize(np.ones((2, 2)), threshold_factor=-1)
    with pytest.raises(ValidationError, match="finite"):
        binarize([np.inf])


# --- what a caller relies on: dtypes, copies, accepted ranks, argument checks ---

def test_result_dtypes_and_gradients_are_new_float64_arrays():
    w32 = np.float32([[0.5, -0.25, 0.0], [1.5, -2.0, 0.75]])
    g = np.ones(w32.shape)
    codes, alpha = xnor_binarize(w32)
    assert codes.dtype == np.int8 and alpha.dtype == np.float32
    t_codes, t_alpha = ternarize(w32)
    assert t_codes.dtype == np.int8 and t_alpha.dtype == np.float32
    # a float32 upstream gradient still gives float64 ∂C/∂W
    for grad in (binarize_grad(w32, g.astype(np.float32)), ternarize_grad(w32, g.astype(np.float32)),
                 xnor_grad(w32, g.astype(np.float32)),
                 power_of_two_grad(w32, g.astype(np.float32), max_exponent=0)):
        assert grad.dtype == np.float64
    # the identity STEs hand back a new array: writing into it leaves the caller's gradient alone
    for grad in (binarize_grad(w32, g, clip=None), ternarize_grad(w32, g)):
        assert grad is not g and not np.shares_memory(grad, g)


def test_accepted_ranks():
    for ndim in (2, 3, 4, 5):  # Linear, Conv1d, Conv2d, Conv3d kernels
        w = np.ones((2,) + (1,) * (ndim - 1))
        assert xnor_binarize(w)[0].shape == w.shape and xnor_grad(w, w).shape == w.shape
    for ndim in (1, 2, 3, 4, 5):
        assert ternarize(np.ones((2,) * ndim))[0].shape == (2,) * ndim
    for bad in (np.ones(3), np.ones((1,) * 6)):
        with pytest.raises(ShapeError, match="w"):
            xnor_grad(bad, bad)
        with pytest.raises(ShapeError, match="w"):
            xnor_binarize(bad)
    for bad in (np.float64(1.0), np.ones((1,) * 6)):
        with pytest.raises(ShapeError, match="w"):
            ternarize(bad)


def test_clip_must_be_positive():
    for clip in (0.0, -1.0):
        with pytest.raises(ValidationError, match="clip"):
            binarize_grad(np.ones(2), np.ones(2), clip=clip)


def test_clip_compares_the_exact_value_of_a_float32_weight():
    # float32(0.1) = 0.10000000149... > 0.1: the weight is outside [−0.1, 0.1], its gradient cancelled
    w = np.float32([0.1, 0.05])
    np.testing.assert_array_equal(binarize_grad(w, [1.0, 1.0], clip=0.1), [0.0, 1.0])


# --- XNOR-Net (16)-(17) written out by hand ---

def test_xnor_of_float32_weights_is_computed_in_float64():
    rng = np.random.default_rng(0)
    w32 = rng.standard_normal((3, 4097)).astype(np.float32)
    w = w32.astype(np.float64)
    alpha64 = np.mean(np.abs(w), axis=1)
    np.testing.assert_array_equal(xnor_binarize(w32)[1], alpha64.astype(np.float32))
    g = rng.standard_normal(w.shape)
    s = np.where(w >= 0, 1.0, -1.0)
    oracle = s / w.shape[1] * np.sum(g * s, axis=1, keepdims=True) + alpha64[:, None] * g * (np.abs(w) <= 1.0)
    np.testing.assert_allclose(xnor_grad(w32, g), oracle, rtol=1e-12, atol=1e-15)


def test_xnor_grad_by_hand_with_a_zero_weight_and_clip():
    # one channel, W = [0, -2, 0.5]: s = [+1, −1, +1] (0 is +1, as in binarize), n = 3, α = 2.5/3
    w = np.array([[0.0, -2.0, 0.5]])
    g = np.array([[1.0, 2.0, 4.0]])
    total = 1.0 * 1 + 2.0 * -1 + 4.0 * 1  # Σ g̃_k s_k = 3
    alpha = 2.5 / 3
    s = np.array([[1.0, -1.0, 1.0]])
    np.testing.assert_allclose(xnor_grad(w, g), s / 3 * total + alpha * g * [[1, 0, 1]], rtol=1e-15)
    # clip is passed on to the STE term: clip=None keeps the gradient of |w| = 2 too
    np.testing.assert_allclose(xnor_grad(w, g, clip=None), s / 3 * total + alpha * g, rtol=1e-15)


# --- TWN (18)-(19) by hand: the strict threshold, a single survivor ---

def test_ternarize_threshold_is_strict_and_alpha_is_a_mean():
    # threshold_factor 0.5: mean|w| = 2, Δ = 1; |w| = 1 is not > Δ, so only 3 survives and α = 3
    codes, alpha = ternarize(np.array([1.0, -3.0]), threshold_factor=0.5)
    np.testing.assert_array_equal(codes, [0, -1])
    assert alpha == 3.0
    # one weight above Δ = 0.7 · 0.25: α is that weight's magnitude, not half of it
    codes, alpha = ternarize(np.array([0.0, 0.0, 0.0, 1.0]))
    np.testing.assert_array_equal(codes, [0, 0, 0, 1])
    assert alpha == 1.0


def test_ternarize_of_float32_weights_is_computed_in_float64():
    rng = np.random.default_rng(1)
    w32 = rng.standard_normal((64, 3000)).astype(np.float32)
    w = w32.astype(np.float64)
    a = np.abs(w)
    delta = 0.7 * a.mean(axis=1, keepdims=True)
    big = a > delta
    oracle = (np.sum(a * big, axis=1) / np.sum(big, axis=1)).astype(np.float32)
    codes, alpha = ternarize(w32, per_channel=True)
    np.testing.assert_array_equal(codes != 0, big)
    np.testing.assert_array_equal(alpha, oracle)


# --- power of two (21): the window's edges ---

def test_power_of_two_window_edges():
    # bits=4, e_max=1: e_min = 1 − 7 + 1 = −5; 2^−5 is kept, 2^−6 flushed; 2^e_max keeps its gradient
    w = np.array([2.0**-5, -(2.0**-5), 2.0**-6, 2.0])
    q = power_of_two_quantize(w, bits=4, max_exponent=1)
    np.testing.assert_array_equal(q.to_dense(), np.float32([2.0**-5, -(2.0**-5), 0.0, 2.0]))
    np.testing.assert_array_equal(power_of_two_grad(w, np.ones(4), max_exponent=1), [1, 1, 1, 1])
    np.testing.assert_array_equal(power_of_two_grad([2.0 + 1e-12], [1.0], max_exponent=1), [0])


def test_power_of_two_default_max_exponent_is_the_rounded_log2_of_the_peak():
    assert power_of_two_quantize(np.array([8.0, 0.3])).max_exponent == 3
    assert power_of_two_quantize(np.array([0.3, -0.1])).max_exponent == -2   # log2 0.3 = −1.74
    assert power_of_two_quantize(np.array([-0.7])).max_exponent == -1        # log2 0.7 = −0.51
    # no weight to scale to: e_max = 0
    for w in (np.zeros(3), np.zeros(0)):
        q = power_of_two_quantize(w)
        assert q.max_exponent == 0 and np.all(q.to_dense() == 0)


def test_power_of_two_of_float32_weights_rounds_log2_in_float64():
    # float32(2.828427) lies just below 2·sqrt(2), so it rounds to 2^1; float32's own log2 gives 1.5
    x = np.float32(2.828427)
    assert float(x) < 2 * np.sqrt(2)
    q = power_of_two_quantize(np.float32([x, 0.25]), bits=4, max_exponent=2)
    np.testing.assert_array_equal(q.to_dense(), np.float32([2, 0.25]))
    # the STE's bound 2^e_max may exceed float32's range: compared in float64, no overflow
    np.testing.assert_array_equal(power_of_two_grad(np.float32([3e38]), [1.0], max_exponent=200), [1.0])


def test_power_of_two_argument_checks():
    for bits in (1, 9, 2.0, True):
        with pytest.raises(ValidationError, match="bits"):
            power_of_two_quantize(np.ones(3), bits=bits)
    for e in (1.5, True):
        with pytest.raises(ValidationError, match="max_exponent"):
            power_of_two_quantize(np.ones(3), max_exponent=e)
    # the window [e_max − 2^(bits−1) + 2, e_max] must lie in [−126, 127]: bits=8 spans 127 exponents
    assert power_of_two_quantize(np.ones(3), bits=8, max_exponent=0).min_exponent == -126
    assert power_of_two_quantize(np.ones(3), bits=2, max_exponent=127).max_exponent == 127
    for bits, e in ((8, -1), (2, 128)):
        with pytest.raises(ValidationError, match="max_exponent"):
            power_of_two_quantize(np.ones(3), bits=bits, max_exponent=e)
