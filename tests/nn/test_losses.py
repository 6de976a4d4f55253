"""Losses (refcomp.nn.losses): values against the formulas written out with Python floats, gradients
against their closed forms, dtypes, and the inputs each loss refuses."""

import math

import numpy as np
import pytest

from refcomp import nn
from refcomp.errors import DTypeError, ShapeError, ValidationError
from refcomp.nn.losses import log_softmax, softmax


def _log_softmax_row(row):
    """log p_k = z_k − log Σ_j exp(z_j) with Python floats, the max subtracted first."""
    m = max(row)
    lse = m + math.log(math.fsum(math.exp(v - m) for v in row))
    return [v - lse for v in row]


def _cross_entropy(z, t, a=0.0):
    """L = −(1/N) Σ_n Σ_k q_nk log p_nk, q = (1 − α)·onehot(t) + α/K."""
    k = len(z[0])
    terms = []
    for row, label in zip(z, t):
        logp = _log_softmax_row(row)
        terms.append(-math.fsum(((1 - a) * (j == label) + a / k) * lp for j, lp in enumerate(logp)))
    return math.fsum(terms) / len(z)


def _kl(student, teacher, temp):
    """T² · (1/N) Σ_n Σ_k p_k (log p_k − log s_k) with p, s the softmaxes at temperature T; p_k = 0 adds 0."""
    terms = []
    for s_row, t_row in zip(student, teacher):
        log_s = _log_softmax_row([v / temp for v in s_row])
        log_p = _log_softmax_row([v / temp for v in t_row])
        terms.append(math.fsum(math.exp(lp) * (lp - ls) for lp, ls in zip(log_p, log_s) if math.exp(lp) > 0))
    return temp * temp * math.fsum(terms) / len(student)


# -- log_softmax, softmax --------------------------------------------------------------------------

def test_log_softmax_rows_by_hand():
    # 2 rows of 3 (not square: a reduction over the wrong axis cannot broadcast back by accident)
    z = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    want = [_log_softmax_row(list(r)) for r in z]
    np.testing.assert_allclose(log_softmax(z), want, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(softmax(z), np.exp(want), rtol=1e-14)


def test_log_softmax_and_softmax_along_a_chosen_axis():
    z = np.random.default_rng(0).standard_normal((2, 3, 4))
    for axis in (0, 1, 2):
        moved = np.moveaxis(z, axis, -1)
        want = np.array([_log_softmax_row(list(r)) for r in moved.reshape(-1, moved.shape[-1])])
        want = np.moveaxis(want.reshape(moved.shape), -1, axis)
        np.testing.assert_allclose(log_softmax(z, axis=axis), want, rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(softmax(z, axis=axis), np.exp(want), rtol=1e-13)


def test_log_softmax_subtracts_each_rows_own_max():
    """Rows a thousand apart: each is shifted by its own max, so neither overflows nor underflows to
    log 0 (a shift by the batch's max would make the second row's exponentials all 0)."""
    z = np.array([[1000.0, 999.0, 998.0], [0.0, -1.0, -2.0]])
    row = _log_softmax_row([0.0, -1.0, -2.0])
    np.testing.assert_allclose(log_softmax(z), [row, row], rtol=1e-14)
    np.testing.assert_allclose(softmax(z), np.exp([row, row]), rtol=1e-14)


# -- cross-entropy ---------------------------------------------------------------------------------

@pytest.mark.parametrize("a", [0.0, 0.1, 0.5])
def test_cross_entropy_value_and_gradient_by_hand(a):
    rng = np.random.default_rng(1)
    z = rng.standard_normal((4, 3)) * 3
    t = np.array([0, 2, 2, 1])
    loss = nn.CrossEntropyLoss(a)
    assert loss(z, t) == pytest.approx(_cross_entropy(z.tolist(), t.tolist(), a), rel=1e-13)
    # dL/dz = (p − q) / N
    q = (1 - a) * np.eye(3)[t] + a / 3
    g = loss.backward()
    assert g.shape == (4, 3) and g.dtype == np.float64
    np.testing.assert_allclose(g, (np.exp([_log_softmax_row(list(r)) for r in z]) - q) / 4, rtol=1e-12, atol=1e-15)


def test_cross_entropy_default_has_no_smoothing():
    z = np.array([[2.0, 0.0, -1.0]])
    assert nn.CrossEntropyLoss().label_smoothing == 0.0
    assert nn.CrossEntropyLoss()(z, np.array([1])) == pytest.approx(_cross_entropy(z.tolist(), [1]), rel=1e-14)


def test_cross_entropy_accepts_one_sample_and_one_class():
    # K = 1: p = 1, the loss and its gradient are 0
    loss = nn.CrossEntropyLoss(0.5)
    assert loss(np.array([[3.0]]), np.array([0])) == 0.0
    np.testing.assert_array_equal(loss.backward(), [[0.0]])


def test_cross_entropy_without_smoothing_reads_only_the_labels_log_probability():
    """α = 0: L = −log p_t, whatever the other classes' log-probabilities — even −inf, when the shift
    by the row's max overflows (1e308 − (−1e308)); a smoothing term 0·Σ log p would be NaN there."""
    z = np.array([[1e308, -1e308, 0.0]])
    with np.errstate(over="ignore"):
        assert nn.CrossEntropyLoss()(z, np.array([0])) == 0.0


def test_cross_entropy_labels_span_zero_to_k_minus_one():
    z = np.zeros((2, 4))
    assert nn.CrossEntropyLoss()(z, np.array([0, 3])) == pytest.approx(math.log(4), rel=1e-14)
    for bad in ([-1, 0], [0, 4]):
        with pytest.raises(ValidationError, match="^target:"):
            nn.CrossEntropyLoss()(z, np.array(bad))


def test_cross_entropy_gradient_keeps_float32():
    z = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 1.0]], dtype=np.float32)
    loss = nn.CrossEntropyLoss(0.2)
    loss(z, np.array([1, 0]))
    g = loss.backward()
    assert g.dtype == np.float32
    q = 0.8 * np.eye(3)[[1, 0]] + 0.2 / 3
    want = (np.exp([_log_softmax_row(list(map(float, r))) for r in z]) - q) / 2
    np.testing.assert_allclose(g, want, rtol=1e-6, atol=1e-7)


def test_cross_entropy_label_smoothing_range():
    nn.CrossEntropyLoss(0.0)
    nn.CrossEntropyLoss(0.999)
    for bad in (-0.01, 1.0, 1.5):
        with pytest.raises(ValidationError, match="^label_smoothing:"):
            nn.CrossEntropyLoss(bad)


def test_cross_entropy_refuses_bad_inputs():
    loss = nn.CrossEntropyLoss()
    with pytest.raises(DTypeError, match="^logits:"):
        loss(np.zeros((2, 3), dtype=np.int64), np.array([0, 1]))
    for shape in ((3,), (2, 3, 1), (0, 3), (2, 0)):
        with pytest.raises(ShapeError, match="^logits:"):
            loss(np.zeros(shape), np.zeros(shape[:1], dtype=np.int64))
    for v in (np.nan, np.inf, -np.inf):
        with pytest.raises(ValidationError, match="^logits:"):
            loss(np.array([[0.0, v]]), np.array([0]))
    with pytest.raises(DTypeError, match="^target:"):
        loss(np.zeros((2, 3)), np.array([0.0, 1.0]))
    with pytest.raises(ShapeError, match="^target:"):
        loss(np.zeros((2, 3)), np.array([0, 1, 2]))
    with pytest.raises(ShapeError, match="^target:"):
        loss(np.zeros((2, 3)), np.array([[0], [1]]))


@pytest.mark.parametrize("make", [nn.CrossEntropyLoss, nn.KLDivLoss, nn.MSELoss])
def test_backward_before_forward_is_refused(make):
    with pytest.raises(ValidationError, match="^backward:"):
        make().backward()


# -- KL divergence (distillation) ------------------------------------------------------------------

@pytest.mark.parametrize("temp", [0.5, 1.0, 4.0])
def test_kl_value_and_gradient_by_hand(temp):
    rng = np.random.default_rng(2)
    s, t = rng.standard_normal((3, 5)) * 2, rng.standard_normal((3, 5)) * 2
    kl = nn.KLDivLoss(temp)
    assert kl(s, t) == pytest.approx(_kl(s.tolist(), t.tolist(), temp), rel=1e-12)
    # dL/ds = T · (s^T − p^T) / N
    s_t = np.exp([_log_softmax_row(list(r / temp)) for r in s])
    p_t = np.exp([_log_softmax_row(list(r / temp)) for r in t])
    g = kl.backward()
    assert g.dtype == np.float64
    np.testing.assert_allclose(g, temp * (s_t - p_t) / 3, rtol=1e-12, atol=1e-15)


def test_kl_default_temperature_is_one():
    s, t = np.array([[1.0, 0.0, 3.0]]), np.array([[0.0, 2.0, 1.0]])
    assert nn.KLDivLoss().temperature == 1.0
    assert nn.KLDivLoss()(s, t) == pytest.approx(_kl(s.tolist(), t.tolist(), 1.0), rel=1e-13)


def test_kl_classes_the_teacher_rules_out_contribute_zero():
    """p^T_k = exp(−2000) underflows to 0: its term is 0 (not 0·(log 0 − log s) or anything else),
    even where the student's own log-probability overflowed to −inf."""
    t = np.array([[0.0, -2000.0, 0.0], [0.0, -2000.0, 1.0]])
    s = np.array([[0.0, 1.0, 2.0], [1.0, 0.0, 0.0]])
    kl = nn.KLDivLoss()
    assert kl(s, t) == pytest.approx(_kl(s.tolist(), t.tolist(), 1.0), rel=1e-13)
    # the student's second logit is −inf after the shift by its max (1e308 − (−1e308) overflows)
    s_inf = np.array([[1e308, -1e308, 0.0]])
    t_inf = np.array([[0.0, -2000.0, 0.0]])
    with np.errstate(over="ignore", invalid="ignore"):
        value = kl(s_inf, t_inf)
    # p = (1/2, 0, 1/2), log s = (0, −inf, −1e308): the terms are −log 2 / 2, 0 and (1e308 − log 2) / 2
    assert value == pytest.approx(0.5e308, rel=1e-12)


def test_kl_gradient_keeps_float32():
    s = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 1.0]], dtype=np.float32)
    t = np.array([[0.0, 1.0, 0.0], [2.0, 0.0, 1.0]], dtype=np.float32)
    kl = nn.KLDivLoss(2.0)
    kl(s, t)
    g = kl.backward()
    assert g.dtype == np.float32
    s_t = np.exp([_log_softmax_row([float(v) / 2 for v in r]) for r in s])
    p_t = np.exp([_log_softmax_row([float(v) / 2 for v in r]) for r in t])
    np.testing.assert_allclose(g, 2.0 * (s_t - p_t) / 2, rtol=1e-5, atol=1e-7)


def test_kl_temperature_must_be_finite_and_positive():
    nn.KLDivLoss(1e-3)
    for bad in (0.0, -1.0, np.inf, np.nan):
        with pytest.raises(ValidationError, match="^temperature:"):
            nn.KLDivLoss(bad)


def test_kl_refuses_bad_inputs():
    kl = nn.KLDivLoss()
    with pytest.raises(ShapeError, match="^teacher_logits:"):
        kl(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(DTypeError, match="^student_logits:"):
        kl(np.zeros((2, 3), dtype=np.int32), np.zeros((2, 3)))
    with pytest.raises(ValidationError, match="^teacher_logits:"):
        kl(np.zeros((1, 2)), np.array([[np.nan, 0.0]]))


# -- mean squared error ----------------------------------------------------------------------------

def test_mse_value_and_gradient_by_hand():
    y = np.array([[1.0, -2.0, 0.5], [3.0, 0.0, 1.0]])
    t = np.array([[0.0, -1.0, 0.5], [1.0, 1.0, -1.0]])
    mse = nn.MSELoss()
    # L = (1/6)(1 + 1 + 0 + 4 + 1 + 4) = 11/6
    assert mse(y, t) == pytest.approx(11 / 6, rel=1e-15)
    np.testing.assert_allclose(mse.backward(), 2 * (y - t) / 6, rtol=1e-15)


def test_mse_gradient_has_the_prediction_dtype():
    y = np.array([1.0, 2.0], dtype=np.float32)
    mse = nn.MSELoss()
    assert mse(y, np.array([0.0, 4.0])) == pytest.approx(2.5)
    g = mse.backward()
    assert g.dtype == np.float32
    np.testing.assert_array_equal(g, np.array([1.0, -2.0], dtype=np.float32))


def test_mse_refuses_bad_inputs():
    with pytest.raises(DTypeError, match="^pred:"):
        nn.MSELoss()(np.array([1, 2]), np.array([1.0, 2.0]))
    with pytest.raises(ShapeError, match="^target:"):
        nn.MSELoss()(np.zeros(3), np.zeros((3, 1)))
