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
