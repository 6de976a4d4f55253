"""L0 pruning (P.14, P.15): the penalty's gradient, exact folding of the gates, the closed neurons removed."""

import math

import numpy as np
import pytest

from refcomp.compress.prune import L0Penalty, add_gates, fold_gates, l0_prune
from refcomp.errors import ValidationError

from ..._support.helpers import blobs, mlp
from ...nn.nn_gradcheck import numeric_gradient
from ..._support.terminal import TerminalStream


def test_penalty_is_lambda_times_the_expected_open_gates_and_its_gradient_is_its_derivative():
    m = add_gates(mlp(dtype="float64"), ["fc1", "fc2"], rng=0)
    rng = np.random.default_rng(0)
    for n in ("fc1_gate", "fc2_gate"):
        m[n].log_alpha.data[...] = rng.normal(size=m[n].log_alpha.data.shape)
    reg = L0Penalty(0.3)
    shift = (2 / 3) * math.log(0.1 / 1.1)
    written = 0.3 * sum(1 / (1 + math.exp(-(a - shift))) for n in ("fc1_gate", "fc2_gate")
                        for a in m[n].log_alpha.data)
    assert reg.penalty(m) == pytest.approx(written, rel=1e-12)
    m.zero_grad()
    reg.add_gradient(m)
    la = m["fc2_gate"].log_alpha
    num = numeric_gradient(lambda: reg.penalty(m), la.data)
    for i in range(la.data.size):
        assert la.grad[i] == pytest.approx(num[i], rel=1e-6, abs=1e-9)


def test_folded_model_equals_the_gated_model_in_eval_mode():
    m = add_gates(mlp(dtype="float64"), ["fc1", "fc2"], rng=0)
    m["fc1_gate"].log_alpha.data[...] = np.linspace(-4, 4, 16)     # some closed, some open, some partial
    m["fc2_gate"].log_alpha.data[...] = np.linspace(3, -3, 8)
    x, _ = blobs(n=30)
    x = x.astype(np.float64)
    folded, gates = fold_gates(m)
    assert [n for n in folded.layers] == ["fc1", "relu1", "fc2", "relu2", "fc3"]
    np.testing.assert_allclose(folded.forward(x), m.eval().forward(x), rtol=1e-12, atol=1e-12)
    assert (gates["fc1"] == 0).sum() > 0 and (gates["fc1"] == 1).sum() > 0


def test_l0_prune_removes_neurons_and_stays_accurate():
    m = mlp()
    x, y = blobs(n=300)
    small, report = l0_prune(m, (x, y), layers=["fc1", "fc2"], lam=0.05, epochs=20, lr=0.05,
                              batch_size=32, rng=0)
    assert report["kept"]["fc1"] <= 12 and small["fc1"].weight.data.shape[0] == report["kept"]["fc1"]
    assert small["fc2"].weight.data.shape == (report["kept"]["fc2"], report["kept"]["fc1"])
    acc = float(np.mean(small.forward(x).argmax(1) == y))
    assert acc > 0.9
    with pytest.raises(ValidationError, match="layers"):
        l0_prune(m, (x, y), layers=["relu1"], lam=0.1)


def test_a_gated_model_saves_and_loads(tmp_path):
    from refcomp.io import load_model, save_model
    m = add_gates(mlp(), ["fc1"], rng=0)
    m["fc1_gate"].log_alpha.data[...] = np.linspace(-3, 3, 16)
    save_model(m, tmp_path / "g.safetensors")
    back = load_model(tmp_path / "g.safetensors")
    x, _ = blobs(n=5)
    np.testing.assert_array_equal(back.eval().forward(x), m.eval().forward(x))


def test_transforms_leave_their_input_alone():
    m = mlp()
    x, y = blobs(n=64)
    before = {k: v.copy() for k, v in m.state_dict().items()}
    add_gates(m, ["fc1"], rng=0)
    l0_prune(m, (x, y), layers=["fc1"], lam=0.1, epochs=1, rng=0)
    assert list(m.layers) == ["fc1", "relu1", "fc2", "relu2", "fc3"]
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_conv_channel_gates_fold_exactly():
    from ..._support.helpers import convnet
    m = add_gates(convnet(dtype="float64"), ["conv2"], rng=0)
    assert list(m.layers)[4:6] == ["conv2", "conv2_gate"]
    m["conv2_gate"].log_alpha.data[...] = [-4.0, -0.5, 0.3, 2.0, 5.0]   # closed, partial and open channels
    x = np.random.default_rng(1).normal(size=(3, 2, 8, 8))
    folded, gates = fold_gates(m)
    assert gates["conv2"][0] == 0.0 and gates["conv2"][4] == 1.0 and 0 < gates["conv2"][1] < 1
    np.testing.assert_allclose(folded.forward(x), m.eval().forward(x), rtol=1e-12, atol=1e-12)


def test_lambda_must_be_non_negative():
    # a negative λ would reward open gates: the penalty is a cost, never a bonus
    with pytest.raises(ValidationError, match="lam"):
        L0Penalty(-0.1)
    assert L0Penalty(0.0).penalty(add_gates(mlp(), ["fc1"], rng=0)) == 0.0


def test_gates_start_at_drop_init_in_the_dtype_of_their_layer():
    # log α = log(1 − p) − log p (Louizos et al.'s initialisation), stored like the layer it gates
    m = add_gates(mlp(), ["fc1", "fc2"], rng=0, drop_init=0.2)
    for name, n in (("fc1_gate", 16), ("fc2_gate", 8)):
        la = m[name].log_alpha.data
        assert la.dtype == np.float32 and la.shape == (n,)
        np.testing.assert_allclose(la, np.float32(math.log(0.8) - math.log(0.2)), rtol=1e-7)


def test_a_gate_not_right_after_a_linear_or_conv_is_refused():
    from refcomp.nn import HardConcreteGate, ReLU, Sequential
    after_relu = Sequential(("fc1", mlp()["fc1"]), ("relu1", ReLU()), ("g", HardConcreteGate(16, rng=0)))
    first = Sequential(("g", HardConcreteGate(12, rng=0)), ("fc1", mlp()["fc1"]))
    for bad in (after_relu, first):
        with pytest.raises(ValidationError, match="model"):
            fold_gates(bad)


def test_folding_multiplies_weights_and_bias_by_the_gate_rounded_to_the_layer_dtype():
    # (P.15) W_j ← ẑ_j W_j, b_j ← ẑ_j b_j in float32: ẑ (eq. 13, written out) is rounded to float32 first
    m = add_gates(mlp(), ["fc1"], rng=0)
    la = np.linspace(-3, 3, 16)
    m["fc1_gate"].log_alpha.data[...] = la
    zhat = np.clip(1 / (1 + np.exp(-la.astype(np.float32).astype(np.float64))) * 1.2 - 0.1, 0, 1)
    w, b = m["fc1"].weight.data.copy(), m["fc1"].bias.data.copy()
    folded, _ = fold_gates(m)
    z32 = zhat.astype(np.float32)
    np.testing.assert_array_equal(folded["fc1"].weight.data, w * z32[:, None])
    np.testing.assert_array_equal(folded["fc1"].bias.data, b * z32)


def test_l0_prune_is_gates_then_adam_with_the_penalty_then_folding_with_its_documented_defaults():
    # defaults: epochs 1, lr 1e-3, batch 64, rng 0; one generator draws the gates' noise and the batch order
    from refcomp.nn import Adam, train
    m = mlp()
    x, y = blobs(n=150)
    small, report = l0_prune(m, (x, y), layers=["fc1", "fc2"], lam=0.5, drop_init=0.3)
    assert set(report) == {"gates", "kept", "history"}
    g = np.random.default_rng(0)
    gated = add_gates(m, ["fc1", "fc2"], rng=g, drop_init=0.3)
    history = train(gated, (x, y), epochs=1, batch_size=64, optimizer=Adam(gated.parameters(), lr=1e-3),
                    regularizer=L0Penalty(0.5), rng=g, progress=False)
    _, gates = fold_gates(gated)
    assert len(report["history"]) == len(history) == 1
    assert report["history"][0]["loss"] == history[0]["loss"]
    for n in ("fc1", "fc2"):
        np.testing.assert_array_equal(report["gates"][n], gates[n])
        assert report["kept"][n] == int((gates[n] > 0).sum()) == small[n].weight.data.shape[0]



def test_l0_prune_is_quiet_by_default_and_passes_progress_and_validation_to_training(monkeypatch):
    monkeypatch.setenv("TERM", "xterm-256color")
    term = TerminalStream()
    monkeypatch.setattr("sys.stdout", term)
    m = mlp()
    x, y = blobs(n=64)
    l0_prune(m, (x, y), layers=["fc1"], lam=0.1)
    assert term.getvalue() == ""          # no bar even on a terminal
    _, report = l0_prune(m, (x, y), layers=["fc1"], lam=0.1, epochs=2, progress="epoch", val_data=(x, y))
    lines = [ln for ln in term.getvalue().splitlines() if "val_acc" in ln]
    assert len(lines) == 2
    assert all("val_accuracy" in rec for rec in report["history"])


def test_a_layer_whose_gates_all_close_keeps_the_neuron_of_its_largest_log_alpha(monkeypatch):
    # training replaced by one that closes every gate of fc1 (ẑ = 0 below log α = log(1/11))
    # and leaves fc2's open: fc1 keeps only neuron 5, the largest log α
    closed = -np.arange(10.0, 26.0)
    closed[5] = -3.0

    def closing_train(gated, *args, **kwargs):
        gated["fc1_gate"].log_alpha.data[...] = closed
        gated["fc2_gate"].log_alpha.data[...] = 5.0
        return []

    monkeypatch.setattr("refcomp.compress.prune.l0.train", closing_train)
    m = mlp()
    x, y = blobs(n=8)
    small, report = l0_prune(m, (x, y), layers=["fc1", "fc2"], lam=0.1)
    assert report["kept"] == {"fc1": 1, "fc2": 8}
    assert np.all(report["gates"]["fc1"] == 0)
    assert small["fc1"].weight.data.shape == (1, 12) and small["fc2"].weight.data.shape == (8, 1)
    # the kept column of fc2 is neuron 5's (fc2's gates are open: ẑ = 1 leaves it as it was)
    np.testing.assert_array_equal(small["fc2"].weight.data[:, 0], m["fc2"].weight.data[:, 5])
