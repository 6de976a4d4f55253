"""Distillation and hint losses: values by hand, gradients by finite differences."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp.compress.distill.loss import (cross_entropy, distillation_loss, hard_label_loss, hint_loss, log_softmax,
                                          softmax)
from refcomp.errors import DTypeError, ShapeError, ValidationError

seeds = st.integers(0, 2**32 - 1)


def _fd(f, x, eps=1e-6):
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[idx] = eps
        g[idx] = (f(x + e) - f(x - e)) / (2 * eps)
    return g


def test_softmax_is_stable_for_huge_logits():
    z = np.array([[1e4, 0.0, -1e4], [1000.0, 1000.0, 1000.0]])
    p = softmax(z)
    assert np.all(np.isfinite(p)) and np.allclose(p.sum(1), 1)
    np.testing.assert_allclose(p[1], 1 / 3)
    np.testing.assert_allclose(log_softmax(z)[0], [0.0, -1e4, -2e4])


@settings(max_examples=30)
@given(st.integers(1, 5), st.integers(2, 7), st.floats(0.5, 20), st.floats(0, 1), seeds)
def test_distillation_gradient_matches_finite_differences(n, k, temperature, alpha, seed):
    rng = np.random.default_rng(seed)
    s = rng.standard_normal((n, k)) * 3
    t = rng.standard_normal((n, k)) * 3
    y = rng.integers(0, k, n)
    loss, grad = distillation_loss(s, t, y, temperature=temperature, alpha=alpha)
    fd = _fd(lambda v: distillation_loss(v, t, y, temperature=temperature, alpha=alpha)[0], s)
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-8)
    assert loss >= 0


def test_distillation_loss_by_hand():
    s = np.array([[2.0, 0.0, -1.0]])
    t = np.array([[1.0, 1.0, 0.0]])
    y = np.array([0])
    T, a = 2.0, 0.3
    p, q = softmax(t / T), softmax(s / T)
    kl = np.sum(p * np.log(p / q))
    ce = -np.log(softmax(s)[0, 0])
    loss, _ = distillation_loss(s, t, y, temperature=T, alpha=a)
    assert loss == pytest.approx(a * ce + (1 - a) * T * T * kl, rel=1e-12)
    # α = 1 is plain cross-entropy; the student equal to the teacher with α = 0 has zero loss and gradient
    assert distillation_loss(s, t, y, alpha=1.0)[0] == pytest.approx(cross_entropy(s, y)[0])
    loss0, grad0 = distillation_loss(t, t, y, alpha=0.0)
    assert loss0 == pytest.approx(0.0, abs=1e-12) and np.allclose(grad0, 0.0)


def test_high_temperature_limit_is_logit_matching():
    """Hinton §2.1: for T ≫ |logits| and zero-mean logits, T²·∂KL/∂s_i → (s_i − t_i) / (N·K)."""
    rng = np.random.default_rng(0)
    s = rng.standard_normal((4, 10))
    t = rng.standard_normal((4, 10))
    s -= s.mean(1, keepdims=True)
    t -= t.mean(1, keepdims=True)
    _, grad = distillation_loss(s, t, np.zeros(4, int), temperature=1e4, alpha=0.0)
    # the next term of the expansion is O(|s|²/T) = O(1e-4) relative to the largest entry
    np.testing.assert_allclose(grad, (s - t) / (4 * 10), rtol=0, atol=1e-4 * np.abs(s - t).max() / 40)


@settings(max_examples=25)
@given(st.sampled_from([(5, 4, 4, ()), (3, 4, 6, ()), (2, 3, 5, (4, 3)), (2, 2, 2, (3, 3))]), st.booleans(), seeds)
def test_hint_loss_gradients_match_finite_differences(case, project, seed):
    n, c_s, c_t, spatial = case
    rng = np.random.default_rng(seed)
    if not project:
        c_t = c_s
    u = rng.standard_normal((n, c_s, *spatial))
    v = rng.standard_normal((n, c_t, *spatial))
    p = rng.standard_normal((c_s, c_t)) if project else None
    loss, gu, gp = hint_loss(u, v, p)
    np.testing.assert_allclose(gu, _fd(lambda x: hint_loss(x, v, p)[0], u), rtol=1e-5, atol=1e-9)
    if project:
        np.testing.assert_allclose(gp, _fd(lambda x: hint_loss(u, v, x)[0], p), rtol=1e-5, atol=1e-9)
        r = np.einsum("nc...,cd->nd...", u, p)
        assert loss == pytest.approx(np.mean((r - v) ** 2))
    else:
        assert gp is None and loss == pytest.approx(np.mean((u - v) ** 2))


def test_loss_argument_errors():
    s = np.zeros((2, 3))
    with pytest.raises(ValidationError, match="labels"):
        distillation_loss(s, s, np.array([0, 3]))
    with pytest.raises(DTypeError, match="labels"):
        distillation_loss(s, s, np.array([0.0, 1.0]))
    with pytest.raises(ShapeError, match="teacher_logits"):
        distillation_loss(s, np.zeros((2, 4)), np.array([0, 1]))
    with pytest.raises(ValidationError, match="temperature"):
        distillation_loss(s, s, np.array([0, 1]), temperature=0.0)
    with pytest.raises(ValidationError, match="alpha"):
        distillation_loss(s, s, np.array([0, 1]), alpha=1.5)
    with pytest.raises(ValidationError, match="finite"):
        distillation_loss(np.array([[np.nan, 0.0]]), np.zeros((1, 2)), np.array([0]))
    with pytest.raises(ShapeError, match="projection"):
        hint_loss(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ShapeError, match="teacher_features"):
        hint_loss(np.zeros((2, 3, 4, 4)), np.zeros((2, 3, 5, 5)))


def test_hard_label_loss_written_out():
    """Eqs. (8)-(9) by hand: CE against argmax t, mixed with the true labels by α; the teacher's
    labels differ from y on purpose, so a loss that reads y for both terms fails."""
    rng = np.random.default_rng(3)
    n, k = 9, 5
    s, t = rng.normal(size=(n, k)), rng.normal(size=(n, k)) * 4
    y = (np.argmax(t, axis=1) + 1) % k                        # never the teacher's label
    e = np.exp(s - s.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    rows = np.arange(n)
    for a in (0.0, 0.3, 1.0):
        loss, g = hard_label_loss(s, t, y, alpha=a)
        want = -(a * np.log(p[rows, y]) + (1 - a) * np.log(p[rows, t.argmax(axis=1)])).mean()
        want_g = p.copy()
        want_g[rows, y] -= a
        want_g[rows, t.argmax(axis=1)] -= 1 - a
        assert loss == pytest.approx(want, rel=1e-12)
        np.testing.assert_allclose(g, want_g / n, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(_fd(lambda z: hard_label_loss(z, t, y, alpha=0.3)[0], s),
                               hard_label_loss(s, t, y, alpha=0.3)[1], atol=1e-7)
    with pytest.raises(ValidationError, match="alpha"):
        hard_label_loss(s, t, y, alpha=-0.1)
    with pytest.raises(ShapeError, match="teacher_logits"):
        hard_label_loss(s, t[:, :3], y)


# softmax along the axis asked for; float64 out of any real input (the losses' precision)
def test_softmax_axis_and_float64():
    z = np.array([[0.0, 1.0, 2.0], [3.0, -1.0, 0.5]])
    p0 = softmax(z, axis=0)
    np.testing.assert_allclose(p0.sum(axis=0), 1.0, rtol=1e-15)
    np.testing.assert_allclose(p0, np.exp(z) / np.exp(z).sum(axis=0), rtol=1e-15)
    z32 = np.array([[0.1, 0.7, -2.3]], dtype=np.float32)
    want = z32.astype(np.float64) - np.log(np.exp(z32.astype(np.float64)).sum())
    assert log_softmax(z32).dtype == np.float64
    np.testing.assert_allclose(log_softmax(z32), want, rtol=1e-15)


# logits: float64 whatever their dtype, so float32 logits give the loss of their float64 values
def test_float32_logits_give_the_float64_loss():
    rng = np.random.default_rng(5)
    s, t = rng.normal(size=(4, 6)).astype(np.float32), rng.normal(size=(4, 6)).astype(np.float32)
    y = np.array([0, 5, 2, 2])
    loss32, g32 = distillation_loss(s, t, y, temperature=3.0, alpha=0.25)  # s / 3 is inexact in float32
    loss64, g64 = distillation_loss(s.astype(np.float64), t.astype(np.float64), y, temperature=3.0, alpha=0.25)
    assert g32.dtype == np.float64 and loss32 == pytest.approx(loss64, rel=1e-14)
    np.testing.assert_allclose(g32, g64, rtol=1e-13, atol=1e-16)


# a teacher probability that is exactly 0 (log p = −inf: a logit gap beyond the float64 range)
# adds 0·log 0 = 0 to the KL term, without NaN or warning
def test_kl_term_of_a_zero_teacher_probability_is_zero():
    t = np.array([[1e308, -1e308]])  # p = (1, 0)
    s = np.zeros((1, 2))  # q = (1/2, 1/2): KL(p ‖ q) = log 2
    loss, grad = distillation_loss(s, t, np.array([1]), temperature=1.0, alpha=0.0)
    assert loss == pytest.approx(np.log(2.0), rel=1e-15)
    np.testing.assert_allclose(grad, [[-0.5, 0.5]], rtol=1e-15)  # T·(q − p) / N
    np.testing.assert_array_equal(softmax(t), [[1.0, 0.0]])


# the defaults: T = 4 and α = 1/2 (Hinton), hard labels from the teacher only (α = 0)
def test_loss_defaults():
    rng = np.random.default_rng(2)
    s, t, y = rng.normal(size=(3, 4)), rng.normal(size=(3, 4)) * 3, np.array([0, 1, 3])
    assert distillation_loss(s, t, y)[0] == distillation_loss(s, t, y, temperature=4.0, alpha=0.5)[0]
    assert hard_label_loss(s, t, y)[0] == cross_entropy(s, t.argmax(axis=1))[0]


# bad input: each error names the argument it is about
@pytest.mark.parametrize("call, exc, argument", [
    (lambda: cross_entropy(np.zeros(3), np.array([0])), ShapeError, "logits"),
    (lambda: cross_entropy(np.zeros((1, 2, 3)), np.array([0])), ShapeError, "logits"),
    (lambda: distillation_loss(np.zeros(3), np.zeros(3), np.array([0])), ShapeError, "student_logits"),
    (lambda: distillation_loss(np.zeros((1, 3)), np.zeros(3), np.array([0])), ShapeError, "teacher_logits"),
    (lambda: distillation_loss(np.zeros((1, 3)), np.zeros((1, 3)), np.array([0]), alpha=-0.1), ValidationError,
     "alpha"),
    (lambda: hard_label_loss(np.zeros(3), np.zeros(3), np.array([0])), ShapeError, "student_logits"),
    (lambda: hard_label_loss(np.zeros((1, 3)), np.zeros(3), np.array([0])), ShapeError, "teacher_logits"),
    (lambda: hard_label_loss(np.zeros((1, 3)), np.zeros((1, 3)), np.array([0]), alpha=1.5), ValidationError,
     "alpha"),
    (lambda: hard_label_loss(np.zeros((1, 3)), np.zeros((1, 3)), np.array([0]), alpha=2.0), ValidationError,
     "alpha"),
    (lambda: hint_loss(np.zeros(3), np.zeros(3)), ShapeError, "student_features"),
    (lambda: hint_loss(np.zeros((1,) * 6), np.zeros((1,) * 6)), ShapeError, "student_features"),
    (lambda: hint_loss(np.zeros((1, 1)), np.zeros(1)), ShapeError, "teacher_features"),
    (lambda: hint_loss(np.zeros((1,) * 5), np.zeros((1,) * 6)), ShapeError, "teacher_features"),
    (lambda: hint_loss(np.zeros((2, 3)), np.zeros((2, 4)), np.zeros(12)), ShapeError, "projection"),
    (lambda: hint_loss(np.zeros((2, 3)), np.zeros((2, 4)), np.zeros((1, 3, 4))), ShapeError, "projection"),
])
def test_errors_name_their_argument(call, exc, argument):
    with pytest.raises(exc) as e:
        call()
    assert e.value.argument == argument


# hint loss: features of 2 to 5 dimensions (dense, 1-D, 2-D, 3-D maps); float64 whatever their dtype
@pytest.mark.parametrize("spatial", [(), (3,), (2, 3), (2, 1, 2)])
def test_hint_loss_ranks_and_float64(spatial):
    rng = np.random.default_rng(len(spatial))
    u = rng.normal(size=(2, 3, *spatial)).astype(np.float32)
    v = rng.normal(size=(2, 4, *spatial)).astype(np.float32)
    p = rng.normal(size=(3, 4)).astype(np.float32)
    u64, v64, p64 = (x.astype(np.float64) for x in (u, v, p))
    r = np.einsum("nc...,cd->nd...", u64, p64)
    loss, gu, gp = hint_loss(u, v, p)
    assert loss == pytest.approx(np.mean((r - v64) ** 2), rel=1e-14)
    assert gu.dtype == gp.dtype == np.float64
    g_r = 2 * (r - v64) / r.size
    np.testing.assert_allclose(gu, np.einsum("nd...,cd->nc...", g_r, p64), rtol=1e-13)
    summed = [0, *range(2, u.ndim)]  # the batch and spatial axes
    np.testing.assert_allclose(gp, np.tensordot(u64, g_r, axes=(summed, summed)), rtol=1e-13)
    loss_same, g_same, none = hint_loss(u, u)
    assert loss_same == 0.0 and none is None and g_same.dtype == np.float64 and not g_same.any()
