"""FitNets hint training on models: stage 1 by hand (eq. 13), what it may and may not change, stage 2 runs."""

import numpy as np
import pytest

from refcomp.compress.distill.hints import guided_part, hint_train, teacher_features
from refcomp.errors import ShapeError, ValidationError
from refcomp.nn import Conv2d, Flatten, Graph, Linear, ReLU, Sequential, evaluate

from ..models_for_tests import digits_split, small_mlp
from ..._support.terminal import TerminalStream


def _params(m):
    return {n: p.data.copy() for n, p in m.named_parameters()}


def test_stage_one_is_sgd_on_the_hint_loss_written_out():
    """Full-batch stage 1 = SGD by hand on mean((relu(x W0ᵀ + b0) Rᵀ − v)²) over W0, b0 and R, v the
    teacher's hidden output; the teacher and the student's layers after the guided one do not move."""
    rng = np.random.default_rng(0)
    n, d = 20, 5
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = rng.integers(0, 3, size=n)
    teacher = Sequential(("fc0", Linear(d, 6, rng=rng)), ("relu0", ReLU()), ("fc1", Linear(6, 3, rng=rng)))
    student = Sequential(("fc0", Linear(d, 4, rng=rng)), ("relu0", ReLU()), ("fc1", Linear(4, 3, rng=rng)))
    t_before, s_before = _params(teacher), _params(student)
    xd = x.astype(np.float64)
    v = np.maximum(xd @ t_before["fc0.weight"].T.astype(np.float64) + t_before["fc0.bias"], 0)
    w0, b0 = s_before["fc0.weight"].astype(np.float64), s_before["fc0.bias"].astype(np.float64)
    lr, epochs = 0.1, 3
    rec = hint_train(student, teacher, (x, y), student_layer="relu0", teacher_layer="relu0", hint_epochs=epochs,
                     kd_epochs=0, lr=lr, momentum=0.0, batch_size=n, schedule="constant", rng=0)
    # the regressor's initial weight: the first draw of the same rng (Linear(4, 6, bias=False))
    r = Linear(4, 6, bias=False, rng=np.random.default_rng(0)).weight.to_dense().astype(np.float64)
    for _ in range(epochs):
        pre = xd @ w0.T + b0
        h = np.maximum(pre, 0)
        out = h @ r.T
        g_out = 2 * (out - v) / out.size
        g_r = g_out.T @ h
        g_pre = (g_out @ r) * (pre > 0)
        w0, b0, r = w0 - lr * g_pre.T @ xd, b0 - lr * g_pre.sum(axis=0), r - lr * g_r
    np.testing.assert_allclose(student["fc0"].weight.to_dense(), w0, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(student["fc0"].bias.data, b0, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(rec["regressor"].weight.to_dense(), r, rtol=1e-4, atol=1e-6)
    for name, a in _params(teacher).items():
        np.testing.assert_array_equal(a, t_before[name], err_msg=name)      # the teacher never moves
    for name in ("fc1.weight", "fc1.bias"):                                  # nor the unguided layers
        np.testing.assert_array_equal(student.state_dict()[name], s_before[name])
    assert rec["hint"][-1]["loss"] < rec["hint"][0]["loss"]


def test_hints_from_a_graph_teacher_and_conv_features():
    """The hint is read by a forward hook, so a Graph teacher works; 4-D features get a 1×1 conv regressor."""
    rng = np.random.default_rng(1)
    g = Graph()
    g.add("conv", Conv2d(1, 4, 3, padding=1, rng=rng), "x")
    g.add("relu", ReLU(), "conv")
    g.add("flat", Flatten(), "relu")
    g.add("fc", Linear(4 * 25, 3, rng=rng), "flat")
    g.outputs = ["fc"]
    student = Sequential(("conv", Conv2d(1, 2, 3, padding=1, rng=rng)), ("relu", ReLU()), ("flat", Flatten()),
                         ("fc", Linear(2 * 25, 3, rng=rng)))
    x = rng.normal(size=(16, 1, 5, 5)).astype(np.float32)
    y = rng.integers(0, 3, size=16)
    v = teacher_features(g, "relu", x)
    assert v.shape == (16, 4, 5, 5)
    rec = hint_train(student, g, (x, y), student_layer="relu", teacher_layer="relu", hint_epochs=2, kd_epochs=1,
                     rng=0)
    assert isinstance(rec["regressor"], Conv2d) and rec["regressor"].weight.shape == (4, 2, 1, 1)
    assert len(rec["kd"]) == 1
    with pytest.raises(ShapeError, match="student_layer"):                  # 50 features vs (4, 5, 5)
        hint_train(student, g, (x, y), student_layer="flat", teacher_layer="relu", kd_epochs=0)
    with pytest.raises(ValidationError, match="teacher_layer"):
        teacher_features(g, "nope", x)
    with pytest.raises(ValidationError, match="student_layer"):
        guided_part(student, "nope")
    with pytest.raises(ValidationError, match="hint_epochs"):
        hint_train(student, g, (x, y), student_layer="relu", teacher_layer="relu", hint_epochs=-1)


def test_fitnets_student_learns_on_digits():
    tr, te = digits_split()
    from refcomp.nn import train

    teacher = small_mlp(1, sizes=(64, 64, 10))
    train(teacher, tr, epochs=15, lr=0.05, rng=0, progress=False)
    student = small_mlp(2, sizes=(64, 16, 10))
    rec = hint_train(student, teacher, tr, student_layer="relu0", teacher_layer="relu0", hint_epochs=5,
                     kd_epochs=10, alpha=0.2, temperature=3.0, rng=0, val_data=te)
    assert rec["kd"][-1]["val_accuracy"] >= 0.85
    assert evaluate(student, te)["accuracy"] == rec["kd"][-1]["val_accuracy"]


# --- the two stages as the documented composition, the regressor, the checks


class _MeanSquare:
    """Eq. (13) written out: mean((r - v)²), gradient 2 (r - v) / numel in the prediction's dtype."""

    def forward(self, pred, target):
        self._d = pred.astype(np.float64) - target.astype(np.float64)
        self._dtype = pred.dtype
        return float(np.mean(self._d ** 2))

    def backward(self):
        return (2 * self._d / self._d.size).astype(self._dtype)


def _pair(seed, n=20):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype(np.float32)
    y = rng.integers(0, 3, size=n)
    teacher = Sequential(("fc0", Linear(5, 6, rng=rng)), ("relu0", ReLU()), ("fc1", Linear(6, 3, rng=rng)))
    student = Sequential(("fc0", Linear(5, 4, rng=rng)), ("relu0", ReLU()), ("fc1", Linear(4, 3, rng=rng)))
    return x, y, teacher, student


@pytest.mark.parametrize("schedule", ["cosine", "constant"])
def test_hint_train_is_stage_one_then_distill_train_with_the_same_settings_and_rng(schedule):
    """FitNets (§2.3, Algorithm 1): stage 1 trains guided part + regressor on eq. (13) with hint_lr, then
    stage 2 is knowledge distillation of the whole student, every setting passed on and one rng
    drawn in turn: the regressor's initial weight, stage 1's batch orders, stage 2's."""
    import copy

    from refcomp.compress.distill.train import distill_train
    from refcomp.nn import train

    x, y, teacher, student = _pair(0)
    twin = copy.deepcopy(student)
    settings = dict(batch_size=7, momentum=0.5, schedule=schedule)
    rec = hint_train(student, teacher, (x, y), student_layer="relu0", teacher_layer="relu0", hint_epochs=2, kd_epochs=2,
                     lr=0.1, hint_lr=0.2, alpha=0.3, temperature=2.0, rng=3, **settings)
    g = np.random.default_rng(3)
    reg = Linear(4, 6, bias=False, rng=g)
    v = np.maximum(x @ teacher["fc0"].weight.to_dense().T + teacher["fc0"].bias.data, 0)
    train(Sequential(("a", twin["fc0"]), ("b", twin["relu0"]), ("r", reg)), (x, v), epochs=2, lr=0.2,
          loss=_MeanSquare(), rng=g, progress=False, **settings)
    np.testing.assert_allclose(rec["regressor"].weight.to_dense(), reg.weight.to_dense(), rtol=1e-5, atol=1e-7)
    distill_train(twin, teacher, (x, y), epochs=2, lr=0.1, alpha=0.3, temperature=2.0, rng=g, **settings)
    for name, p in twin.named_parameters():
        np.testing.assert_allclose(student.state_dict()[name], p.data, rtol=1e-5, atol=1e-7, err_msg=name)
    assert len(rec["hint"]) == 2 and len(rec["kd"]) == 2


def test_hint_train_defaults():
    # 5 hint epochs, 10 KD epochs, lr 0.05, momentum 0.9, batches of 64, cosine, alpha 0.1, T = 4, seed 0
    import copy

    x, y, teacher, student = _pair(1, n=70)          # more rows than one batch of 64
    twin = copy.deepcopy(student)
    rec = hint_train(student, teacher, (x, y), student_layer="relu0", teacher_layer="relu0")
    want = hint_train(twin, teacher, (x, y), student_layer="relu0", teacher_layer="relu0", hint_epochs=5,
                      kd_epochs=10, lr=0.05, momentum=0.9, batch_size=64, schedule="cosine", alpha=0.1,
                      temperature=4.0, rng=0)
    assert len(rec["hint"]) == 5 and len(rec["kd"]) == 10
    assert [r["loss"] for r in rec["hint"] + rec["kd"]] == [r["loss"] for r in want["hint"] + want["kd"]]
    for name, p in twin.named_parameters():
        np.testing.assert_array_equal(student.state_dict()[name], p.data, err_msg=name)


def test_no_epochs_keeps_the_student_and_its_mode():
    # zero epochs of either stage are allowed: nothing trains, the records are empty, the mode is kept
    x, y, teacher, student = _pair(2)
    before = _params(student)
    for mode in (True, False):
        student.train(mode)
        rec = hint_train(student, teacher, (x, y), student_layer="relu0", teacher_layer="relu0", hint_epochs=0,
                         kd_epochs=0)
        assert set(rec) == {"regressor", "hint", "kd"} and rec["hint"] == [] and rec["kd"] == []
        assert student.training is mode
    for name, a in _params(student).items():
        np.testing.assert_array_equal(a, before[name])


def test_hint_loss_gradient_keeps_the_prediction_dtype():
    from refcomp.compress.distill.hints import HintLoss

    pred = np.array([[1.0, 2.0], [0.5, -1.0]], np.float32)
    target = np.array([[0.0, 2.0], [1.5, 1.0]], np.float32)
    h = HintLoss()
    assert h.forward(pred, target) == pytest.approx((1 + 0 + 1 + 4) / 4)
    g = h.backward()
    assert g.dtype == np.float32 and g.tolist() == [[0.5, 0.0], [-0.5, -1.0]]     # 2 (r - v) / 4


def test_the_conv_regressor_is_a_bias_free_1x1_conv_drawn_from_the_rng():
    rng = np.random.default_rng(6)
    teacher = Sequential(("conv", Conv2d(1, 3, 3, padding=1, rng=rng)), ("relu", ReLU()), ("flat", Flatten()),
                         ("fc", Linear(3 * 16, 2, rng=rng)))
    student = Sequential(("conv", Conv2d(1, 2, 3, padding=1, rng=rng)), ("relu", ReLU()), ("flat", Flatten()),
                         ("fc", Linear(2 * 16, 2, rng=rng)))
    x = rng.normal(size=(4, 1, 4, 4)).astype(np.float32)
    rec = hint_train(student, teacher, (x, rng.integers(0, 2, size=4)), student_layer="relu", teacher_layer="relu",
                     hint_epochs=0, kd_epochs=0, rng=5)
    want = Conv2d(2, 3, 1, bias=False, rng=np.random.default_rng(5))
    assert rec["regressor"].bias is None
    np.testing.assert_array_equal(rec["regressor"].weight.to_dense(), want.weight.to_dense())


def test_hint_train_refusals_name_their_argument():
    x, y, teacher, student = _pair(3)
    rng = np.random.default_rng(7)
    conv_t = Sequential(("conv", Conv2d(1, 3, 3, rng=rng)), ("relu", ReLU()))              # 5x5 -> 3x3
    conv_s = Sequential(("conv", Conv2d(1, 2, 3, padding=1, rng=rng)), ("relu", ReLU()))   # 5x5 -> 5x5
    cases = ((lambda: hint_train(student, teacher, (x, y, y), student_layer="relu0", teacher_layer="relu0",
                                 kd_epochs=0), "data"),          # refused before stage 1, not by stage 2
             (lambda: hint_train(student, teacher, (x, y), student_layer="relu0", teacher_layer="relu0", kd_epochs=-1),
              "kd_epochs"),
             (lambda: hint_train(conv_s, conv_t, (rng.normal(size=(2, 1, 5, 5)).astype(np.float32), y[:2]),
                                 student_layer="relu", teacher_layer="relu"), "student_layer"))   # H, W differ
    for call, argument in cases:
        with pytest.raises((ShapeError, ValidationError)) as e:
            call()
        assert e.value.argument == argument


def test_teacher_features_are_read_in_batches_of_1000():
    from refcomp.nn import Module

    sizes = []

    class Rows(Module):
        def forward(self, x):
            sizes.append(len(x))
            return x

        def backward(self, dy):
            return dy

    teacher = Sequential(("rows", Rows()), ("fc", Linear(2, 2, rng=0)))
    x = np.arange(2 * 2500, dtype=np.float32).reshape(2500, 2)
    np.testing.assert_array_equal(teacher_features(teacher, "rows", x), x)
    assert sizes == [1000, 1000, 500]


def test_hint_train_draws_no_progress_bars_even_on_a_terminal(monkeypatch):
    import sys

    out = TerminalStream()
    monkeypatch.setattr(sys, "stdout", out)
    x, y, teacher, student = _pair(4)
    hint_train(student, teacher, (x, y), student_layer="relu0", teacher_layer="relu0", hint_epochs=1, kd_epochs=1)
    assert out.getvalue() == ""
