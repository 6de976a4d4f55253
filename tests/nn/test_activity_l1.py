"""ActivityL1 (P.16, P.17): identity forward, the penalty written out, backward by finite differences."""

import numpy as np
import pytest

from refcomp.errors import ValidationError
from refcomp.nn import ActivityL1

from .nn_gradcheck import numeric_gradient


def test_forward_is_the_identity_and_the_penalty_is_the_mean_l1_norm():
    x = np.array([[1.0, -2.0, 0.0], [0.5, 0.0, -0.25]])
    layer = ActivityL1(0.1)
    np.testing.assert_array_equal(layer.forward(x), x)
    assert layer.penalty == pytest.approx(0.1 * (1 + 2 + 0 + 0.5 + 0 + 0.25) / 2, rel=1e-15)
    layer.eval()
    layer.forward(x)
    assert layer.penalty == 0.0
    np.testing.assert_array_equal(layer.backward(x), x)


def test_backward_is_the_gradient_of_output_dot_r_plus_the_penalty():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 3, 2, 2))     # no exact zeros: |·| is differentiable there
    r = rng.normal(size=x.shape)
    layer = ActivityL1(0.3)

    def total():
        return float(np.sum(layer.forward(x) * r)) + layer.penalty

    total()
    dx = layer.backward(r)
    num = numeric_gradient(total, x).reshape(-1)
    np.testing.assert_allclose(dx.reshape(-1), num, rtol=1e-6, atol=1e-8)


def test_l1_must_be_non_negative():
    with pytest.raises(ValidationError, match="l1"):
        ActivityL1(-0.1)
