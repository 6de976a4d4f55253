"""Activation L1 on a model: the penalty enters training, activations get sparser, the layers come out."""

import numpy as np
import pytest

from refcomp.compress.prune import (ActivationL1Penalty, activation_sparsity, add_activation_l1,
                                    remove_activation_l1, train_activation_l1)
from refcomp.errors import ValidationError
from refcomp.nn import CrossEntropyLoss

from ..._support.helpers import blobs, mlp


def test_penalty_layers_sit_after_the_activations_and_report_the_penalty():
    m = add_activation_l1(mlp(dtype="float64"), ["relu1", "relu2"], 0.2)
    assert list(m.layers) == ["fc1", "relu1", "relu1_l1", "fc2", "relu2", "relu2_l1", "fc3"]
    x, _ = blobs(n=10)
    x = x.astype(np.float64)
    m.train()
    m.forward(x)
    a1 = np.maximum(x @ m["fc1"].weight.data.T + m["fc1"].bias.data, 0)
    a2 = np.maximum(a1 @ m["fc2"].weight.data.T + m["fc2"].bias.data, 0)
    written = 0.2 * (np.abs(a1).sum() + np.abs(a2).sum()) / 10
    assert ActivationL1Penalty().penalty(m) == pytest.approx(written, rel=1e-12)
    assert list(remove_activation_l1(m).layers) == ["fc1", "relu1", "fc2", "relu2", "fc3"]


def test_weight_gradients_include_the_penalty_through_the_layers_below():
    m = add_activation_l1(mlp(dtype="float64"), ["relu1"], 0.5)
    x, y = blobs(n=10)
    x = x.astype(np.float64)
    loss = CrossEntropyLoss()
    reg = ActivationL1Penalty()

    def total():
        m.train()
        return loss.forward(m.forward(x), y) + reg.penalty(m)

    total()
    m.zero_grad()
    m.backward(loss.backward())
    g = m["fc1"].weight.grad.copy()
    w = m["fc1"].weight.data
    for i, j in [(0, 0), (3, 5), (7, 11), (15, 2)]:
        old = w[i, j]
        w[i, j] = old + 1e-6
        p = total()
        w[i, j] = old - 1e-6
        q = total()
        w[i, j] = old
        assert g[i, j] == pytest.approx((p - q) / 2e-6, rel=1e-5, abs=1e-8)


def test_training_with_the_penalty_makes_activations_sparser():
    m = mlp()
    x, y = blobs(n=300)
    plain, _ = train_activation_l1(m, (x, y), after=["relu1", "relu2"], l1=0.0, epochs=10, lr=0.05)
    sparse, _ = train_activation_l1(m, (x, y), after=["relu1", "relu2"], l1=0.05, epochs=10, lr=0.05)
    s0 = activation_sparsity(plain, (x, y), ["relu1", "relu2"])
    s1 = activation_sparsity(sparse, (x, y), ["relu1", "relu2"])
    assert s1["relu1"] > s0["relu1"] + 0.1 and s1["relu2"] > s0["relu2"] + 0.1
    assert np.mean(sparse.forward(x).argmax(1) == y) > 0.9
    with pytest.raises(ValidationError, match="after"):
        add_activation_l1(m, ["relu9"], 0.1)


def test_train_activation_l1_leaves_its_input_alone():
    m = mlp()
    x, y = blobs(n=64)
    before = {k: v.copy() for k, v in m.state_dict().items()}
    out, report = train_activation_l1(m, (x, y), after=["relu1"], l1=0.1, epochs=1)
    assert list(m.layers) == list(out.layers) == ["fc1", "relu1", "fc2", "relu2", "fc3"]
    assert len(report["history"]) == 1
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
