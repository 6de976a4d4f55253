"""Optimizer steps against hand-computed formulas; schedules; regularizers."""

import numpy as np
import pytest

from refcomp import nn
from refcomp.errors import ValidationError
from refcomp.nn.module import Parameter


def param(values, grad):
    p = Parameter(np.array(values, dtype=np.float64))
    p.grad = np.array(grad, dtype=np.float64)
    return p


def test_sgd_plain_and_weight_decay():
    p = param([1.0, -2.0], [0.5, 0.25])
    nn.SGD([p], lr=0.1, weight_decay=0.01).step()
    np.testing.assert_allclose(p.data, [1.0 - 0.1 * (0.5 + 0.01), -2.0 - 0.1 * (0.25 - 0.02)])


def test_sgd_momentum_two_steps():
    p = param([1.0], [2.0])
    opt = nn.SGD([p], lr=0.1, momentum=0.9, dampening=0.1)
    opt.step()                      # b = g = 2 (no dampening on the first step)
    np.testing.assert_allclose(p.data, [1.0 - 0.2])
    p.grad = np.array([1.0])
    opt.step()                      # b = 0.9·2 + 0.9·1 = 2.7
    np.testing.assert_allclose(p.data, [0.8 - 0.1 * 2.7])


def test_sgd_nesterov():
    p = param([0.0], [1.0])
    opt = nn.SGD([p], lr=1.0, momentum=0.5, nesterov=True)
    opt.step()                      # b = 1, d = g + μ·b = 1.5
    np.testing.assert_allclose(p.data, [-1.5])
    p.grad = np.array([2.0])
    opt.step()                      # b = 0.5 + 2 = 2.5, d = 2 + 1.25 = 3.25
    np.testing.assert_allclose(p.data, [-4.75])
    with pytest.raises(ValidationError, match="nesterov"):
        nn.SGD([p], lr=1.0, nesterov=True)


@pytest.mark.parametrize("cls,wd", [(nn.Adam, 0.0), (nn.Adam, 0.1), (nn.AdamW, 0.1)])
def test_adam_family_three_steps(cls, wd):
    grads = [np.array([0.3, -1.0]), np.array([0.1, 0.5]), np.array([-0.2, 0.0])]
    p = param([1.0, 2.0], grads[0])
    opt = cls([p], lr=0.01, betas=(0.8, 0.9), eps=1e-8, weight_decay=wd)
    theta = np.array([1.0, 2.0])
    m = v = np.zeros(2)
    for t, g in enumerate(grads, start=1):
        p.grad = g.copy()
        opt.step()
        if cls is nn.AdamW:
            theta = theta * (1 - 0.01 * wd)
        else:
            g = g + wd * theta
        m = 0.8 * m + 0.2 * g
        v = 0.9 * v + 0.1 * g * g
        theta = theta - 0.01 * (m / (1 - 0.8 ** t)) / (np.sqrt(v / (1 - 0.9 ** t)) + 1e-8)
        np.testing.assert_allclose(p.data, theta, rtol=1e-14)


def test_optimizer_skips_frozen_and_gradless():
    a, b = param([1.0], [1.0]), param([1.0], [1.0])
    b.trainable = False
    c = Parameter(np.array([1.0]))
    nn.SGD([a, b, c], lr=0.5).step()
    assert a.data[0] == 0.5 and b.data[0] == 1.0 and c.data[0] == 1.0
