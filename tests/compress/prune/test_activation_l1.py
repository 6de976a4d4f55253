"""Activation L1 on a model: the penalty enters training, activations get sparser, the layers come out."""

import numpy as np
import pytest

from refcomp.compress.prune import (ActivationL1Penalty, activation_sparsity, add_activation_l1,
                                    remove_activation_l1, train_activation_l1)
from refcomp.errors import ValidationError
from refcomp.nn import CrossEntropyLoss

from ..._support.helpers import blobs, mlp
from ..._support.terminal import TerminalStream


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


def test_one_layer_name_may_be_a_string_and_l1_must_be_non_negative():
    m = add_activation_l1(mlp(), "relu1", 0.1)
    assert list(m.layers) == ["fc1", "relu1", "relu1_l1", "fc2", "relu2", "fc3"]
    for after in (["relu1"], []):          # refused even when no layer is named
        with pytest.raises(ValidationError, match="l1"):
            add_activation_l1(mlp(), after, -0.1)


def test_the_model_without_its_penalty_layers_is_a_copy():
    m = add_activation_l1(mlp(), ["relu1"], 0.1)
    before = m["fc1"].weight.data.copy()
    out = remove_activation_l1(m)
    out["fc1"].weight.data[...] = 0
    np.testing.assert_array_equal(m["fc1"].weight.data, before)
    assert "relu1_l1" in m.layers


def test_sparsity_is_the_share_of_exact_zeros_over_all_batches():
    # 300 samples: two batches of the default size 256; the share written out from the ReLU outputs
    m = mlp(dtype="float64")
    x, y = blobs(n=300)
    x = x.astype(np.float64)
    a1 = np.maximum(x @ m["fc1"].weight.data.T + m["fc1"].bias.data, 0)
    a2 = np.maximum(a1 @ m["fc2"].weight.data.T + m["fc2"].bias.data, 0)
    s = activation_sparsity(m, (x, y), ["relu1", "relu2"])
    assert s["relu1"] == pytest.approx(np.mean(a1 == 0), abs=1e-15)
    assert s["relu2"] == pytest.approx(np.mean(a2 == 0), abs=1e-15)
    assert activation_sparsity(m, (x, y), "relu1") == {"relu1": s["relu1"]}
    # one output value in all: the share is 0 or 1
    from refcomp.nn import Linear, ReLU, Sequential
    tiny = Sequential(("fc", Linear(2, 1, dtype="float64")), ("relu", ReLU()))
    tiny["fc"].weight.data[...] = [[1.0, 1.0]]
    tiny["fc"].bias.data[...] = 0.0
    assert activation_sparsity(tiny, (np.array([[-1.0, -2.0]]), np.array([0])), "relu") == {"relu": 1.0}


def _by_hand(m, data, after, l1, *, lr=0.01, momentum=0.9, weight_decay=0.0, epochs=1, batch_size=64, rng=0,
             val_data=None):
    """train_activation_l1 as its docstring states it: the penalty layers, SGD, train with the penalty, removed."""
    from refcomp.nn import SGD, train
    gated = add_activation_l1(m, after, l1)
    sgd = SGD(gated.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    history = train(gated, data, epochs=epochs, batch_size=batch_size, optimizer=sgd,
                    regularizer=ActivationL1Penalty(), rng=rng, progress=False, val_data=val_data)
    return remove_activation_l1(gated), history


@pytest.mark.parametrize("kw", [{}, {"weight_decay": 0.01, "rng": 5, "batch_size": 16}])
def test_train_activation_l1_is_sgd_with_the_penalty_layers_and_its_documented_defaults(kw):
    # defaults: epochs 1, lr 0.01, momentum 0.9, no weight decay, batch 64, rng 0
    m = mlp()
    x, y = blobs(n=150)
    out, report = train_activation_l1(m, (x, y), after=["relu1"], l1=0.05, val_data=(x, y), **kw)
    ref, history = _by_hand(m, (x, y), ["relu1"], 0.05, val_data=(x, y), **kw)
    for k, v in ref.state_dict().items():
        np.testing.assert_array_equal(out.state_dict()[k], v)
    assert [r["loss"] for r in report["history"]] == [r["loss"] for r in history]
    assert all("val_accuracy" in r for r in report["history"])



def test_train_activation_l1_is_quiet_by_default_and_passes_progress_to_training(monkeypatch):
    monkeypatch.setenv("TERM", "xterm-256color")
    term = TerminalStream()
    monkeypatch.setattr("sys.stdout", term)
    x, y = blobs(n=64)
    train_activation_l1(mlp(), (x, y), after=["relu1"], l1=0.1)
    assert term.getvalue() == ""          # no bar even on a terminal
    train_activation_l1(mlp(), (x, y), after=["relu1"], l1=0.1, epochs=2, progress="epoch")
    assert len([ln for ln in term.getvalue().splitlines() if "samples/s" in ln]) == 2   # one line per epoch
