"""Signed neuron importance (P.4) and freezing low-gradient neurons (P.5), against loops written out."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp.compress.prune import (FrozenNeuronOptimizer, apply_structured, low_gradient_neurons, neuron_keep,
                                    prune_neurons, signed_neuron_importance, train_frozen)
from refcomp.errors import ShapeError, ValidationError
from refcomp.nn import SGD, CrossEntropyLoss

from ..._support.helpers import blobs, mlp


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 6), h=st.integers(1, 5), out=st.integers(1, 4))
def test_signed_importance_is_the_mean_summed_contribution(seed, n, h, out):
    rng = np.random.default_rng(seed)
    a, v = rng.normal(size=(n, h)), rng.normal(size=(out, h))
    got = signed_neuron_importance(a, v)
    for j in range(h):
        total = 0.0
        for s in range(n):
            for k in range(out):
                total += a[s, j] * v[k, j]
        assert got[j] == pytest.approx(total / n, rel=1e-12, abs=1e-12)


def test_signed_importance_lets_opposite_contributions_cancel():
    a = np.array([[1.0, 1.0]])
    v = np.array([[2.0, 2.0], [-2.0, 1.0]])   # neuron 0 pushes +2 and −2: net 0; neuron 1: +3
    np.testing.assert_array_equal(signed_neuron_importance(a, v), [0.0, 3.0])
    with pytest.raises(ShapeError, match="activations"):
        signed_neuron_importance(np.ones((3, 4)), v)


def test_neuron_keep_removes_the_lowest_signed_importance_of_the_model():
    m = mlp(dtype="float64")
    x, y = blobs(n=40)
    x = x.astype(np.float64)
    w1, b1, w2 = m["fc1"].weight.data, m["fc1"].bias.data, m["fc2"].weight.data
    act = np.maximum(x @ w1.T + b1, 0.0)                  # what fc2 reads
    imp = [np.mean(act[:, j]) * sum(w2[k, j] for k in range(w2.shape[0])) for j in range(16)]
    keep = neuron_keep(m, {"fc1": 0.25}, (x, y))["fc1"]
    assert set(np.flatnonzero(~keep)) == set(np.argsort(imp)[:4])


def test_prune_neurons_gives_the_smaller_model_of_the_zeroed_one():
    m = mlp(dtype="float64")
    x, y = blobs(n=40)
    x = x.astype(np.float64)
    small, report = prune_neurons(m, {"fc1": 0.5, "fc2": 0.25}, (x, y))
    assert small["fc1"].weight.data.shape == (8, 12) and small["fc2"].weight.data.shape == (6, 8)
    zeroed, _ = apply_structured(m, report["keep"])
    np.testing.assert_allclose(small.forward(x), zeroed.forward(x), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValidationError, match="sparsity"):
        prune_neurons(m, {"fc3": 0.5}, (x, y))       # the output layer has no next Linear


def test_low_gradient_neurons_freeze_the_smallest_row_norms():
    rng = np.random.default_rng(3)
    g1, g2 = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    mean = (g1 + g2) / 2
    norms = [np.sqrt(sum(mean[o, i] ** 2 for i in range(4))) for o in range(6)]
    frozen = low_gradient_neurons([g1, g2], 0.5)
    assert set(np.flatnonzero(frozen)) == set(np.argsort(norms)[:3])
    with pytest.raises(ValidationError, match="fraction"):
        low_gradient_neurons(g1, 1.5)
    with pytest.raises(ShapeError, match="grad"):
        low_gradient_neurons(np.ones(4), 0.5)


def test_frozen_rows_stay_bit_for_bit_under_momentum_and_weight_decay():
    m = mlp()
    x, y = blobs(n=64)
    frozen = {"fc1": np.arange(16) % 3 == 0}
    before_w, before_b = m["fc1"].weight.data.copy(), m["fc1"].bias.data.copy()
    opt = FrozenNeuronOptimizer(SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1), m, frozen)
    loss = CrossEntropyLoss()
    for _ in range(3):
        opt.zero_grad()
        loss.forward(m.forward(x), y)
        m.backward(loss.backward())
        opt.step()
    f = frozen["fc1"]
    np.testing.assert_array_equal(m["fc1"].weight.data[f], before_w[f])
    np.testing.assert_array_equal(m["fc1"].bias.data[f], before_b[f])
    assert (m["fc1"].weight.data[~f] != before_w[~f]).mean() > 0.9   # the others train
    with pytest.raises(ValidationError, match="frozen"):
        FrozenNeuronOptimizer(SGD(m.parameters(), lr=0.1), m, {"fc1": np.ones(5, bool)})


def test_train_frozen_freezes_the_low_gradient_rows_and_leaves_the_input_alone():
    m = mlp()
    x, y = blobs(n=64)
    w0 = m["fc2"].weight.data.copy()
    out, report = train_frozen(m, (x, y), fraction=0.25, calibration=(x, y), layers=["fc2"], epochs=2,
                               weight_decay=1e-3)
    f = report["frozen"]["fc2"]
    assert f.sum() == 2
    np.testing.assert_array_equal(out["fc2"].weight.data[f], w0[f])
    np.testing.assert_array_equal(m["fc2"].weight.data, w0)


def test_prune_neurons_leaves_its_input_alone():
    m = mlp()
    x, y = blobs(n=64)
    before = {k: v.copy() for k, v in m.state_dict().items()}
    prune_neurons(m, {"fc1": 0.5}, (x, y))
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
