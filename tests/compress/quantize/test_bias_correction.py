"""Bias correction removes the mean output shift (array level)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp.compress.quantize import correct_bias, expected_output_shift, input_mean, relu_gaussian_mean, rtn_quantize
from refcomp.errors import ShapeError

from ..conv_reference import conv2d
from .cases import relu, seeds


@settings(max_examples=30)
@given(st.integers(1, 20), st.integers(1, 30), seeds)
def test_bias_correction_restores_the_mean_output(out, n_in, seed):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((out, n_in)).astype(np.float32)
    b = rng.standard_normal(out).astype(np.float32)
    x = relu(rng.standard_normal((256, n_in)) + 0.5)  # post-ReLU inputs: nonzero mean
    w_hat = rtn_quantize(w, bits=3).to_dense()
    b_hat = correct_bias(w, w_hat, b, input_mean(x))
    y = x @ w.T.astype(np.float64) + b
    y_q = x @ w_hat.T.astype(np.float64) + b
    y_c = x @ w_hat.T.astype(np.float64) + b_hat
    np.testing.assert_allclose(y_c.mean(0), y.mean(0), atol=1e-5 * (1 + np.abs(y).max()))
    # and the shift removed is the one the uncorrected layer had
    np.testing.assert_allclose(y_q.mean(0) - y.mean(0), expected_output_shift(w, w_hat, input_mean(x)),
                               atol=1e-6 * (1 + np.abs(y).max()))


def test_bias_correction_for_conv_with_spatially_constant_inputs():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((5, 3, 3, 3))
    w_hat = np.round(w * 2) / 2
    x = np.broadcast_to(rng.uniform(0, 2, (64, 3, 1, 1)), (64, 3, 6, 6)).copy()
    shift = conv2d(x, w_hat).mean(axis=(0, 2, 3)) - conv2d(x, w).mean(axis=(0, 2, 3))
    np.testing.assert_allclose(expected_output_shift(w, w_hat, input_mean(x)), shift, rtol=1e-10)
    np.testing.assert_allclose(correct_bias(w, w_hat, None, input_mean(x)), -shift, rtol=1e-5, atol=1e-6)


def test_relu_gaussian_mean_matches_numerical_integration():
    beta = np.array([-3.0, -0.5, 0.0, 0.7, 4.0, 1.0])
    gamma = np.array([1.0, 2.0, 0.3, -1.5, 0.5, 0.0])  # negative γ: BN scale sign does not matter; 0: a constant
    z = np.linspace(-40, 40, 400001)
    expected = []
    for bt, gm in zip(beta, gamma):
        if gm == 0:
            expected.append(max(bt, 0.0))
            continue
        pdf = np.exp(-0.5 * ((z - bt) / gm) ** 2) / (abs(gm) * np.sqrt(2 * np.pi))
        expected.append(np.trapezoid(relu(z) * pdf, z))
    np.testing.assert_allclose(relu_gaussian_mean(beta, gamma), expected, rtol=1e-6, atol=1e-9)


def test_bias_correction_shape_errors():
    with pytest.raises(ShapeError, match="w_hat"):
        correct_bias(np.ones((2, 3)), np.ones((3, 2)), None, np.ones(3))
    with pytest.raises(ShapeError, match="input_mean"):
        expected_output_shift(np.ones((2, 3)), np.ones((2, 3)), np.ones(4))
    with pytest.raises(ShapeError, match="bias"):
        correct_bias(np.ones((2, 3)), np.ones((2, 3)), np.ones(3), np.ones(3))


def test_corrected_bias_is_eq_10_rounded_to_float32():
    # dyadic values: b - (Ŵ - W) E[x] is exact in Fractions and in float64, so the one rounding is to float32
    from fractions import Fraction as F

    w = np.array([[0.5, -1.25, 2.0], [1.0, 0.75, -0.5]])
    w_hat = np.array([[0.5, -1.0, 2.25], [1.25, 0.5, -0.5]])
    mu = np.array([0.1, 3.0, -2.5])          # 0.1 is not dyadic: the float32 rounding shows
    b = np.array([0.3, -0.7])
    want = [np.float32(float(F(b[o]) - sum((F(w_hat[o, i]) - F(w[o, i])) * F(mu[i]) for i in range(3))))
            for o in range(2)]
    got = correct_bias(w, w_hat, b, mu)
    assert got.dtype == np.float32 and got.shape == (2,)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("argument, call", [
    ("w", lambda: expected_output_shift(np.ones((2, 3, 4)), np.ones((2, 3, 4)), np.ones(3))),   # 3-D weights
    ("w", lambda: expected_output_shift(np.ones(3), np.ones(3), np.ones(3))),                   # 1-D weights
    ("input_mean", lambda: expected_output_shift(np.ones((2, 3)), np.ones((2, 3)), np.ones((3, 2)))),
    ("x", lambda: input_mean(np.ones(5))),                                                       # no batch axis
    ("x", lambda: input_mean(np.ones((1, 2, 1, 1, 1, 1)))),                                      # 6-D
])
def test_wrong_ranks_are_refused_by_name(argument, call):
    # a 2-D input_mean (in, k) would otherwise give an (out, k) "shift"; a 1-D x its own values as means
    with pytest.raises(ShapeError) as e:
        call()
    assert e.value.argument == argument


@pytest.mark.parametrize("shape", [(4, 3), (4, 3, 5), (4, 3, 2, 5), (4, 3, 2, 2, 3)])
def test_input_mean_averages_every_axis_but_the_channels_exactly(shape):
    # (N, C), (N, C, L), (N, C, H, W) and (N, C, D, H, W) inputs; float32 data averaged in float64:
    # 1 + 2^-24 + ... is not representable in float32, and the float64 mean is the exact one rounded once
    from fractions import Fraction as F

    rng = np.random.default_rng(3)
    x = (rng.integers(-8, 9, shape) * 2.0**-24).astype(np.float32)
    x[0] += np.float32(1)
    got = input_mean(x)
    cols = np.moveaxis(x, 1, 0).reshape(shape[1], -1)
    want = [float(sum(map(F, c.tolist())) / c.size) for c in cols]
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(input_mean(np.moveaxis(x, 1, -1), channel_axis=-1), want)


def test_relu_gaussian_mean_of_a_constant_is_its_relu():
    # γ = 0: z is the constant β, E[max(β, 0)] = max(β, 0) (below 1 as well as above)
    beta = np.array([-2.0, -0.25, 0.0, 0.5, 3.0])
    np.testing.assert_array_equal(relu_gaussian_mean(beta, np.zeros(5)), [0.0, 0.0, 0.0, 0.5, 3.0])
