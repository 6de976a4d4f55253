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
