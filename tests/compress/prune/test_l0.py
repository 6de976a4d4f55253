"""L0 pruning (P.14, P.15): the penalty's gradient, exact folding of the gates, the closed neurons removed."""

import math

import numpy as np
import pytest

from refcomp.compress.prune import L0Penalty, add_gates, fold_gates, l0_prune
from refcomp.errors import ValidationError

from ..._support.helpers import blobs, mlp
from ...nn.nn_gradcheck import numeric_gradient


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
