"""HardConcreteGate (P.10–P.13) against the paper's formulas written out, finite differences and Monte Carlo."""

import math

import numpy as np
import pytest

from refcomp.errors import ShapeError, ValidationError
from refcomp.nn import HardConcreteGate

from .nn_gradcheck import numeric_gradient

BETA, GAMMA, ZETA = 2 / 3, -0.1, 1.1


def _sig(v):
    return 1 / (1 + np.exp(-v))


def _gate(log_alpha, seed, n, **kw):
    g = HardConcreteGate(len(log_alpha), rng=seed, dtype="float64", **kw)
    g.log_alpha.data[...] = log_alpha
    return g


def test_training_gate_is_the_stretched_clipped_concrete_sample():
    la = np.array([-3.0, -0.5, 0.0, 0.7, 4.0])
    g = _gate(la, 7, 6)
    x = np.ones((6, 5))
    y = g.forward(x)
    u = np.random.default_rng(7).uniform(np.finfo(np.float64).tiny, 1.0, size=(6, 5))  # the same draw
    s = _sig((np.log(u) - np.log(1 - u) + la) / BETA)
    z = np.minimum(1, np.maximum(0, s * (ZETA - GAMMA) + GAMMA))
    np.testing.assert_allclose(y, z, rtol=1e-12, atol=1e-15)


def test_eval_gate_is_eq13_and_broadcasts_over_channels():
    la = np.array([-5.0, 0.0, 5.0])
    g = _gate(la, 0, 1).eval()
    x = np.random.default_rng(1).normal(size=(2, 3, 4, 4))
    zhat = np.minimum(1, np.maximum(0, _sig(la) * (ZETA - GAMMA) + GAMMA))
    assert zhat[0] == 0.0 and zhat[2] == 1.0          # the stretch reaches exact 0 and 1
    np.testing.assert_allclose(g.forward(x), x * zhat[None, :, None, None], rtol=1e-14)
    np.testing.assert_allclose(g.gate_values(), zhat, rtol=1e-14)


def test_probability_of_a_non_zero_gate_matches_expected_l0():
    la = np.array([-2.0, -0.3, 0.5, 2.0])
    g = _gate(la, 3, 1)
    n = 40000
    z = g.forward(np.ones((n, 4)))
    freq = (z != 0).mean(axis=0)
    p = _sig(la - BETA * math.log(-GAMMA / ZETA))       # eq. (12)
    total, grad = g.expected_l0()
    assert total == pytest.approx(p.sum(), rel=1e-12)
    np.testing.assert_allclose(grad, p * (1 - p), rtol=1e-12)
    np.testing.assert_array_less(np.abs(freq - p), 5 * np.sqrt(p * (1 - p) / n))   # 5 sigma
    assert ((z > 0) & (z < 1)).any() and (z == 1).any() and (z == 0).any()


@pytest.mark.parametrize("training", [True, False])
def test_backward_matches_finite_differences_with_the_noise_fixed(training):
    rng = np.random.default_rng(0)
    la = rng.normal(size=4)
    x = rng.normal(size=(5, 4, 2))
    r = rng.normal(size=x.shape)
    g = _gate(la, 11, 5)
    g.train(training)

    def loss():
        g.rng = np.random.default_rng(11)   # the same u for every evaluation
        return float(np.sum(g.forward(x) * r))

    loss()
    g.zero_grad()
    dx = g.backward(r)
    for v, analytic in ((x, dx), (g.log_alpha.data, g.log_alpha.grad)):
        num = numeric_gradient(loss, v).reshape(-1)
        np.testing.assert_allclose(np.asarray(analytic).reshape(-1), num, rtol=1e-6, atol=1e-7)
    assert np.any(g.log_alpha.grad != 0)


def test_bad_arguments():
    with pytest.raises(ValidationError, match="gamma"):
        HardConcreteGate(3, gamma=0.1)
    with pytest.raises(ValidationError, match="zeta"):
        HardConcreteGate(3, zeta=0.9)
    with pytest.raises(ValidationError, match="rng"):
        HardConcreteGate(3).forward(np.ones((2, 3), np.float32))
    with pytest.raises(ShapeError, match="x"):
        HardConcreteGate(3, rng=0).forward(np.ones((2, 4), np.float32))


@pytest.mark.parametrize("kw, name", [({"num_features": 0}, "num_features"), ({"beta": 0.0}, "beta"),
                                      ({"beta": -0.5}, "beta"), ({"gamma": 0.0}, "gamma"),
                                      ({"zeta": 1.0}, "zeta"), ({"drop_init": 0.0}, "drop_init"),
                                      ({"drop_init": 1.0}, "drop_init"), ({"drop_init": -0.5}, "drop_init"),
                                      ({"drop_init": 1.5}, "drop_init")])
def test_the_distribution_needs_beta_positive_gamma_negative_zeta_above_one_and_p_strictly_inside(kw, name):
    # γ < 0 < 1 < ζ is what lets z reach exact 0 and 1; log(1 − p) − log p needs 0 < p < 1
    kw = {"num_features": 3, **kw}
    with pytest.raises(ValidationError) as e:
        HardConcreteGate(kw.pop("num_features"), **kw)
    assert e.value.argument == name


def test_one_feature_and_values_near_the_ends_are_accepted():
    g = HardConcreteGate(1, beta=1e-3, gamma=-1e-9, zeta=1 + 1e-9, drop_init=1e-6)
    assert g.log_alpha.data.shape == (1,)


@pytest.mark.parametrize("p", [0.2, 0.5, 0.9])
def test_log_alpha_starts_at_log_1_minus_p_over_p_in_the_requested_dtype(p):
    # Louizos et al.'s initialisation: P(ẑ closed) at p means σ(log α) = 1 − p
    assert HardConcreteGate(4).log_alpha.data.dtype == np.float32       # float32 by default
    g = HardConcreteGate(4, drop_init=p, dtype="float64")
    assert g.log_alpha.data.dtype == np.float64
    np.testing.assert_allclose(g.log_alpha.data, math.log((1 - p) / p), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(_sig(g.log_alpha.data), 1 - p, rtol=1e-14)


def test_without_rng_the_gate_runs_in_eval_mode_and_refuses_only_training():
    g = HardConcreteGate(3)                  # no noise needed at test time
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(g.eval().forward(x), x * np.float32(0.5 * 1.2 - 0.1))
    with pytest.raises(ValidationError, match="rng"):
        g.train().forward(x)


def test_backward_before_forward_is_refused():
    with pytest.raises(ValidationError) as e:
        HardConcreteGate(3, rng=0).backward(np.ones((2, 3), np.float32))
    assert e.value.argument == "backward"


def test_input_errors_name_x():
    g = HardConcreteGate(3, rng=0)
    for bad in (np.ones(3, np.float32), np.ones((2, 3, 1, 1, 1), np.float32), np.ones((2, 3), np.int32)):
        with pytest.raises(ValidationError) as e:
            g.forward(bad)
        assert e.value.argument == "x"


@pytest.mark.parametrize("training", [True, False])
def test_float32_in_float32_out_both_ways(training):
    g = HardConcreteGate(5, rng=0).train(training)
    x = np.random.default_rng(0).normal(size=(4, 5, 3)).astype(np.float32)
    assert g.forward(x).dtype == np.float32
    assert g.backward(x).dtype == np.float32 and g.log_alpha.grad.dtype == np.float32


def test_log_alpha_gradients_of_two_backwards_add_in_float32():
    # accumulation is the sum of each pass's float32 gradient (not one float64 sum rounded once)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(6, 64)).astype(np.float32)
    r1, r2 = (rng.normal(size=x.shape).astype(np.float32) for _ in range(2))
    g = HardConcreteGate(64).eval()
    g.log_alpha.data[...] = rng.normal(size=64)
    grads = []
    for r in (r1, r2):
        g.zero_grad()
        g.forward(x)
        g.backward(r)
        grads.append(g.log_alpha.grad.copy())
    g.zero_grad()
    for r in (r1, r2):
        g.forward(x)
        g.backward(r)
    np.testing.assert_array_equal(g.log_alpha.grad, grads[0] + grads[1])


def test_no_log_alpha_gradient_exactly_at_the_clip_ends():
    # log α = 0: σ = 1/2 exactly, so s̄ = span/2 + γ is exact; γ = −1.5, ζ = 1.5 puts it at 0 and
    # γ = −1, ζ = 3 at 1: the clip passes gradient only where 0 < s̄ < 1 (strictly)
    x = np.ones((2, 1))
    for gamma, zeta, zhat in ((-1.5, 1.5, 0.0), (-1.0, 3.0, 1.0)):
        g = _gate([0.0], 0, 2, gamma=gamma, zeta=zeta).eval()
        np.testing.assert_array_equal(g.forward(x), zhat * x)
        g.zero_grad()
        g.backward(np.ones((2, 1)))
        np.testing.assert_array_equal(g.log_alpha.grad, [0.0])
