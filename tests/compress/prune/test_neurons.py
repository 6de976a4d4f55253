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
from ..._support.terminal import TerminalStream


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


# ---- the result dtype, one-sample and per-batch input, and each bad input named

def test_signed_importance_float64_from_float32_and_one_sample():
    rng = np.random.default_rng(4)
    a32, v32 = rng.normal(size=(50, 7)).astype(np.float32), rng.normal(size=(9, 7)).astype(np.float32)
    got = signed_neuron_importance(a32, v32)       # accumulated in float64, as the float64 formula
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, a32.astype(np.float64).mean(axis=0) * v32.astype(np.float64).sum(axis=0),
                               rtol=1e-13)
    a = np.array([[1.0, 2.0], [3.0, -2.0]], np.float32)
    v = np.array([[1.0, 0.5], [2.0, 0.25]], np.float32)
    got = signed_neuron_importance(a, v)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, [2.0 * 3.0, 0.0])
    np.testing.assert_array_equal(signed_neuron_importance(a[0], v), [3.0, 2.0 * 0.75])   # a 1-D row: one sample
    np.testing.assert_array_equal(signed_neuron_importance(a.reshape(1, 2, 2), v), got)  # leading axes: samples
    with pytest.raises(ValidationError, match="activations"):
        signed_neuron_importance(np.ones((0, 2)), v)
    with pytest.raises(ShapeError, match="activations"):
        signed_neuron_importance(np.float64(1.0), v)
    with pytest.raises(ShapeError, match="next_weight"):
        signed_neuron_importance(a, np.ones(2))


def test_low_gradient_neurons_conv_rows_rounding_and_bad_input():
    g = np.zeros((5, 2, 2, 2))
    for o, norm in enumerate([3.0, 1.0, 4.0, 0.5, 2.0]):
        g[o, 1, 0, 1] = norm                       # row norm = that one entry
    np.testing.assert_array_equal(low_gradient_neurons(g, 0.3), [False, True, False, True, False])  # ⌊1.5 + ½⌋ = 2
    np.testing.assert_array_equal(low_gradient_neurons(g.astype(np.float32), 0.0), np.zeros(5, bool))
    # the per-batch gradients are averaged before the norm: rows whose batches cancel are the quiet ones
    g2 = g.copy()
    g2[[0, 2]] *= -1                              # mean rows: 0, 1, 0, 0.5, 2 (norms of |g| alone: 3 1 4 0.5 2)
    np.testing.assert_array_equal(low_gradient_neurons([g, g2], 0.4), [True, False, True, False, False])
    np.testing.assert_array_equal(low_gradient_neurons((g, g), 0.4), [False, True, False, True, False])
    with pytest.raises(ValidationError, match="grad"):
        low_gradient_neurons([], 0.5)
    with pytest.raises(ShapeError, match="grad"):
        low_gradient_neurons([np.ones((2, 3)), np.ones((3, 2))], 0.5)
    with pytest.raises(ShapeError, match="grad"):
        low_gradient_neurons([np.ones(4)], 0.5)


def test_frozen_rows_under_adam_without_bias_and_without_gradients():
    from refcomp.nn import Adam, Linear, ReLU, Sequential
    m = Sequential(("fc1", Linear(4, 5, bias=False, rng=0, dtype="float64")), ("relu", ReLU()),
                   ("fc2", Linear(5, 3, rng=0, dtype="float64")))
    x, y = np.random.default_rng(0).normal(size=(8, 4)), np.arange(8) % 3
    f = np.array([True, False, False, True, False])
    opt = FrozenNeuronOptimizer(Adam(m.parameters(), lr=0.1, weight_decay=0.1), m, {"fc1": f})
    w0 = m["fc1"].weight.data.copy()
    opt.zero_grad()
    opt.step()                                    # no gradient yet: nothing moves, nothing fails
    np.testing.assert_array_equal(m["fc1"].weight.data, w0)
    loss = CrossEntropyLoss()
    for _ in range(2):
        opt.zero_grad()
        loss.forward(m.forward(x), y)
        m.backward(loss.backward())
        opt.step()
    p = m["fc1"].weight
    np.testing.assert_array_equal(p.data[f], w0[f])
    assert (p.data[~f] != w0[~f]).all()
    assert (p.grad[f] == 0).all() and (p.grad[~f] != 0).any()      # g[frozen] = 0, as stated
    state = opt.state[id(p)]
    assert (state["m"][f] == 0).all() and (state["v"][f] == 0).all() and (state["m"][~f] != 0).all()
    assert opt.lr == 0.1
    opt.lr = 0.05                                 # the inner optimizer's rate
    assert opt.inner.lr == 0.05


def test_frozen_optimizer_and_neuron_keep_bad_input():
    m = mlp()
    x, y = blobs(n=16)
    with pytest.raises(ValidationError, match="optimizer"):
        FrozenNeuronOptimizer(object(), m, {"fc1": np.zeros(16, bool)})
    with pytest.raises(ValidationError, match="frozen"):
        FrozenNeuronOptimizer(SGD(m.parameters(), lr=0.1), m, [("fc1", np.zeros(16, bool))])
    for bad in ({}, [("fc1", 0.5)], 0.5):
        with pytest.raises(ValidationError, match="sparsity"):
            neuron_keep(m, bad, (x, y))
    with pytest.raises(ValidationError, match="batch_size"):
        neuron_keep(m, {"fc1": 0.5}, (x, y), batch_size=0)
    with pytest.raises(ValidationError, match=r"sparsity\['fc1'\]"):
        neuron_keep(m, {"fc1": 1.5}, (x, y))
    with pytest.raises(ValidationError, match="layers"):
        neuron_keep(m, {"relu1": 0.5}, (x, y))


def test_neuron_keep_needs_a_next_linear_read_through_activations_only():
    from refcomp.nn import BatchNorm1d, Dropout, Linear, Sequential, Tanh
    from ..._support.helpers import convnet
    xc = np.random.default_rng(0).normal(size=(4, 2, 8, 8))
    yc = np.arange(4) % 3
    with pytest.raises(ValidationError, match="sparsity"):      # conv2 -> Flatten -> fc1
        neuron_keep(convnet(), {"conv2": 0.4}, (xc, yc))
    with pytest.raises(ValidationError, match="sparsity"):      # conv1 -> conv2: the next layer is no Linear
        neuron_keep(convnet(), {"conv1": 0.5}, (xc, yc))
    bn = Sequential(("fc1", Linear(4, 6, rng=0)), ("bn", BatchNorm1d(6)), ("fc2", Linear(6, 2, rng=0)))
    x, y = np.random.default_rng(1).normal(size=(10, 4)).astype(np.float32), np.arange(10) % 2
    with pytest.raises(ValidationError, match="sparsity"):      # a BatchNorm between shifts the zero
        neuron_keep(bn.eval(), {"fc1": 0.5}, (x, y))
    # Tanh and Dropout map 0 to 0: fine; the importance is that of what fc2 reads, over every batch
    m = Sequential(("fc1", Linear(4, 6, rng=0, dtype="float64")), ("act", Tanh()), ("drop", Dropout(0.5)),
                   ("fc2", Linear(6, 2, rng=1, dtype="float64"))).eval()
    x = x.astype(np.float64)
    act = np.tanh(x @ m["fc1"].weight.data.T + m["fc1"].bias.data)
    imp = act.mean(axis=0) * m["fc2"].weight.data.sum(axis=0)
    keep = neuron_keep(m, {"fc1": 0.5}, (x, y), batch_size=3)["fc1"]
    assert set(np.flatnonzero(~keep)) == set(np.argsort(imp)[:3])


@pytest.mark.parametrize("kw", [{}, dict(layers=["fc2", "fc3"], epochs=2, lr=0.05, momentum=0.5, weight_decay=0.01,
                                        batch_size=16, rng=3)])
def test_train_frozen_is_freeze_then_train_with_its_stated_defaults(capsys, kw):
    # defaults: every prunable layer, 1 epoch, SGD lr 0.01, momentum 0.9, no weight decay, batches of 64,
    # seed 0, quiet; the gradients are the mean calibration gradient of each layer
    from refcomp.nn import train
    m = mlp(dtype="float64")
    x, y = blobs(n=150)
    x = x.astype(np.float64)
    out, report = train_frozen(m, (x, y), fraction=0.25, calibration=(x[:40], y[:40]), **kw)
    kw = {**dict(layers=["fc1", "fc2", "fc3"], epochs=1, lr=0.01, momentum=0.9, weight_decay=0.0, batch_size=64,
                 rng=0), **kw}
    assert capsys.readouterr().out == ""
    ref = mlp(dtype="float64")
    loss = CrossEntropyLoss()
    ref.eval()
    loss.forward(ref.forward(x[:40]), y[:40])
    ref.backward(loss.backward())
    frozen = {n: low_gradient_neurons(ref[n].weight.grad, 0.25) for n in kw["layers"]}
    ref.zero_grad()
    ref.train()
    assert set(report["frozen"]) == set(frozen)
    for n in frozen:
        np.testing.assert_array_equal(report["frozen"][n], frozen[n])
    opt = FrozenNeuronOptimizer(SGD(ref.parameters(), lr=kw["lr"], momentum=kw["momentum"],
                                    weight_decay=kw["weight_decay"]), ref, frozen)
    history = train(ref, (x, y), epochs=kw["epochs"], batch_size=kw["batch_size"], optimizer=opt, rng=kw["rng"],
                    progress=False)
    assert len(report["history"]) == len(history) == kw["epochs"]
    for k, v in ref.state_dict().items():
        np.testing.assert_array_equal(out.state_dict()[k], v)


def test_train_frozen_is_quiet_by_default_even_on_a_terminal_and_passes_progress_and_validation(monkeypatch):
    import sys

    m = mlp()
    x, y = blobs(n=40)
    for progress, shown in ((None, False), (True, True)):
        term = TerminalStream()
        monkeypatch.setattr(sys, "stdout", term)
        kw = {} if progress is None else {"progress": progress}
        _, report = train_frozen(m, (x, y), fraction=0.25, calibration=(x, y), layers=["fc1"], val_data=(x, y),
                                 **kw)
        monkeypatch.undo()
        assert bool(term.getvalue()) == shown
        assert set(report["frozen"]) == {"fc1"}
        assert "val_accuracy" in report["history"][-1]


def test_frozen_rows_of_several_layers_and_large_gradients():
    m = mlp(dtype="float64")
    x, y = blobs(n=32)
    frozen = {"fc1": np.arange(16) < 4, "fc2": np.arange(8) >= 6}
    before = {n: m[n].weight.data.copy() for n in frozen}
    opt = FrozenNeuronOptimizer(SGD(m.parameters(), lr=0.1), m, frozen)
    loss = CrossEntropyLoss()
    loss.forward(m.forward(x.astype(np.float64)), y)
    m.backward(loss.backward())
    opt.step()
    for n, f in frozen.items():                   # every named layer keeps its frozen rows
        np.testing.assert_array_equal(m[n].weight.data[f], before[n][f])
        assert (m[n].weight.data[~f] != before[n][~f]).any()
    # the norm is that of the mean gradient, at the gradient's own scale: 1e154-sized gradients still rank
    # (their squares stay below the float64 maximum; the sum of the batches' squares would overflow to ties)
    g = np.zeros((2, 3))
    g[:, 0] = [0.5e154, 1.2e154]
    np.testing.assert_array_equal(low_gradient_neurons([g, g], 0.5), [True, False])


class _StepOnly:
    def step(self):
        pass


def test_neuron_keep_batch_sizes_and_the_prune_report():
    m = mlp(dtype="float64")
    x, y = blobs(n=20)
    x = x.astype(np.float64)
    ref = neuron_keep(m, {"fc1": 0.5}, (x, y))
    np.testing.assert_array_equal(neuron_keep(m, {"fc1": 0.5}, (x, y), batch_size=1)["fc1"], ref["fc1"])
    small, report = prune_neurons(m, {"fc1": 0.5}, (x, y), batch_size=7)
    np.testing.assert_array_equal(report["keep"]["fc1"], ref["fc1"])
    assert report["shrink"] == {"fc1": {"kept": 8, "removed": 8}}
    with pytest.raises(ValidationError, match="batch_size"):
        prune_neurons(m, {"fc1": 0.5}, (x, y), batch_size=0)
    with pytest.raises(ValidationError, match="optimizer"):
        FrozenNeuronOptimizer(_StepOnly(), m, {"fc1": np.zeros(16, bool)})
    # a conv read by a conv (no Flatten, no BatchNorm between) is refused too: the next layer is no Linear
    from refcomp.nn import Conv2d, Flatten, Linear, ReLU, Sequential
    c = Sequential(("a", Conv2d(2, 3, 3, rng=0)), ("r", ReLU()), ("b", Conv2d(3, 2, 3, rng=0)), ("f", Flatten()),
                   ("fc", Linear(2 * 2 * 2, 2, rng=0)))
    xc = np.random.default_rng(0).normal(size=(3, 2, 6, 6)).astype(np.float32)
    with pytest.raises(ValidationError, match="sparsity"):
        neuron_keep(c, {"a": 0.5}, (xc, np.arange(3) % 2))
