"""FitNets hint training on models: stage 1 by hand (eq. 13), what it may and may not change, stage 2 runs."""

import numpy as np
import pytest

from refcomp.compress.distill.hints import guided_part, hint_train, teacher_features
from refcomp.errors import ShapeError, ValidationError
from refcomp.nn import Conv2d, Flatten, Graph, Linear, ReLU, Sequential, evaluate

from ..models_for_tests import digits_split, small_mlp


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
