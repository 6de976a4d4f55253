"""Regularizers: penalties, gradients by finite differences, L1 training."""

import numpy as np
import pytest

from refcomp import nn
from refcomp.nn import regularizers


def test_regularizer_penalties_and_gradients():
    lin = nn.Linear(3, 2, rng=0, dtype="float64")
    w = lin.weight.data
    reg = regularizers.ElasticNet(l1=0.3, l2=0.2)
    assert reg.penalty(lin) == pytest.approx(0.3 * np.abs(w).sum() + 0.1 * (w * w).sum())
    lin.zero_grad()
    reg.add_gradient(lin)
    np.testing.assert_allclose(lin.weight.grad, 0.3 * np.sign(w) + 0.2 * w)
    assert lin.bias.grad is None          # biases are not penalised by default
    # finite differences of the penalty
    h, num = 1e-6, np.zeros_like(w)
    for i in np.ndindex(w.shape):
        old = w[i]
        w[i] = old + h
        lp = reg.penalty(lin)
        w[i] = old - h
        lm = reg.penalty(lin)
        w[i] = old
        num[i] = (lp - lm) / (2 * h)
    np.testing.assert_allclose(lin.weight.grad, num, rtol=1e-6)
    assert regularizers.L1(0.1).l2 == 0 and regularizers.L2(0.1).l1 == 0


def test_l1_training_makes_weights_small():
    from refcomp import datasets, models

    x, y = datasets.digits()
    plain, sparse = models.digits_mlp(0), models.digits_mlp(0)
    nn.train(plain, (x, y), epochs=3, progress=False)
    nn.train(sparse, (x, y), epochs=3, progress=False, regularizer=regularizers.L1(1e-3))
    small = lambda m: np.mean(np.abs(m["fc1"].weight.data) < 1e-2)  # noqa: E731
    assert small(sparse) > small(plain) + 0.1
