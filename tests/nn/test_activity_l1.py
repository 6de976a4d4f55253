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


def test_a_fresh_layer_has_no_penalty_and_passes_gradients_through():
    layer = ActivityL1(0.5)
    assert layer.penalty == 0.0
    dy = np.ones((2, 3))
    np.testing.assert_array_equal(layer.backward(dy), dy)


def test_the_subgradient_at_zero_is_zero():
    # (P.17) dL/da = dy + λ sign(a) / N, sign(0) = 0: an exact zero gets no push either way
    x = np.array([[0.0, 2.0, -1.0], [0.0, 0.0, 3.0]])
    layer = ActivityL1(0.4)
    layer.forward(x)
    dy = np.full(x.shape, 0.25)
    np.testing.assert_array_equal(layer.backward(dy), dy + 0.2 * np.array([[0, 1, -1], [0, 0, 1]]))


def test_float32_activations_are_summed_in_float64_and_gradients_stay_float32():
    # 2^24 + 1 + 1 in float32 is 2^24 (each 1 rounds away); the penalty needs the exact 2^24 + 2
    x = np.array([[2.0**24, 1.0, 1.0]], np.float32)
    layer = ActivityL1(1.0)
    layer.forward(x)
    assert layer.penalty == 2.0**24 + 2
    assert layer.backward(np.ones_like(x)).dtype == np.float32


@pytest.mark.parametrize("shape", [(2, 3), (2, 3, 4), (2, 3, 4, 4)])
def test_ranks_2_to_4_are_accepted(shape):
    x = np.ones(shape)
    assert ActivityL1(0.1).forward(x) is x


def test_input_errors_name_x():
    for bad in (np.ones(3), np.ones((1, 1, 1, 1, 1)), np.ones((2, 3), np.int64)):
        with pytest.raises(ValidationError) as e:
            ActivityL1(0.1).forward(bad)
        assert e.value.argument == "x"
