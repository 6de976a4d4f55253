"""Knowledge-distillation losses with their gradients (the trainer comes later).

Math and sources: docs/distillation.md, eqs. (1)-(7).

Logit distillation (Hinton, Vinyals, Dean 2015, "Distilling the Knowledge in
a Neural Network", arXiv:1503.02531, §2), for student logits s, teacher
logits t (N, K), labels y and temperature T::

    p^T = softmax(t / T),  q^T = softmax(s / T)                               (1)
    L = α · CE(y, softmax(s)) + (1 − α) · T² · KL(p^T ‖ q^T)                   (2)

averaged over the batch. Its gradient w.r.t. the student logits is::

    ∂L/∂s = [α (softmax(s) − onehot(y)) + (1 − α) · T · (q^T − p^T)] / N       (3)

The T² keeps the soft term's gradient magnitude independent of T (Hinton
§2: the soft gradient scales as 1/T²). The teacher is a constant: no
gradient flows into t.

Hint (feature) loss (Romero et al. 2015, "FitNets", arXiv:1412.6550, §2.2):
student features u (N, C_s, ...) are mapped by a regressor — here a linear
map P (C_s, C_t) on the channel axis, i.e. a 1×1 convolution for (N, C, H, W)
features — onto the teacher's guided features v (N, C_t, ...)::

    L_hint = mean over all elements of (r − v)²,  r = u ×_channel P            (5)
    ∂L/∂r = 2 (r − v) / numel,  ∂L/∂u = ∂L/∂r ×_channel Pᵀ,
    ∂L/∂P = Σ_{n, spatial} u ⊗ ∂L/∂r                                          (6)

Softmax and log-softmax are computed stably by subtracting the row maximum
(eq. 7 of the docs); this module keeps its own small versions so that the
loss math stays self-contained.
"""

from __future__ import annotations

import numpy as np

from ...checks import float_array, real
from ...errors import DTypeError, ShapeError, ValidationError

__all__ = ["log_softmax", "softmax", "cross_entropy", "distillation_loss", "hard_label_loss", "hint_loss"]


def log_softmax(z, axis: int = -1) -> np.ndarray:
    """log softmax(z) = z − m − log Σ exp(z − m), m = max z (no overflow for any finite z)."""
    z = np.asarray(z, dtype=np.float64)
    m = np.max(z, axis=axis, keepdims=True)
    with np.errstate(over="ignore"):  # a gap beyond the float64 range is −inf: a probability of exactly 0
        shifted = z - m
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def softmax(z, axis: int = -1) -> np.ndarray:
    """exp(log_softmax(z)); rows sum to 1 up to rounding."""
    return np.exp(log_softmax(z, axis=axis))


def _logits(x, name: str) -> np.ndarray:
    # float64 whatever the input (the losses divide by T before the float64 log_softmax); never
    # written to, so no copy
    return float_array(x, name, ndim=2, dtype=np.float64)


def _labels(y, n: int, k: int) -> np.ndarray:
    y = np.asarray(y)
    if y.dtype.kind not in "iu":
        raise DTypeError("labels", "an integer array of class indices", f"dtype {y.dtype}")
    if y.shape != (n,):
        raise ShapeError("labels", f"shape ({n},) (one per row of the logits)", f"shape {y.shape}")
    if n and (y.min() < 0 or y.max() >= k):
        raise ValidationError("labels", f"class indices in [0, {k - 1}]", f"range [{y.min()}, {y.max()}]")
    return y.astype(np.int64)


def cross_entropy(logits, labels) -> tuple[float, np.ndarray]:
    """Mean CE(y, softmax(s)) = −mean_n log softmax(s_n)[y_n] and its gradient (softmax(s) − onehot)/N."""
    s = _logits(logits, "logits")
    n, k = s.shape
    y = _labels(labels, n, k)
    if n == 0:
        raise ShapeError("logits", "at least one row", f"shape {s.shape}")
    logp = log_softmax(s)
    rows = np.arange(n)
    grad = np.exp(logp)
    grad[rows, y] -= 1.0
    return float(-np.mean(logp[rows, y])), grad / n


def distillation_loss(student_logits, teacher_logits, labels, *, temperature: float = 4.0,
                      alpha: float = 0.5) -> tuple[float, np.ndarray]:
    """Hinton distillation loss (2) and its gradient (3) w.r.t. the student logits.

    student_logits, teacher_logits : (N, K) finite. labels : (N,) int in [0, K).
    temperature : T > 0. alpha : weight of the hard-label term, in [0, 1].
    Returns (loss as a Python float, gradient float64 (N, K)).
    """
    s = _logits(student_logits, "student_logits")
    t = _logits(teacher_logits, "teacher_logits")
    if t.shape != s.shape:
        raise ShapeError("teacher_logits", f"the shape of student_logits {s.shape}", f"shape {t.shape}")
    temp = real(temperature, "temperature", low=0, low_open=True)
    a = real(alpha, "alpha", low=0, high=1)
    ce, grad_ce = cross_entropy(s, labels)
    n = s.shape[0]
    log_p = log_softmax(t / temp)
    log_q = log_softmax(s / temp)
    p = np.exp(log_p)
    # KL(p ‖ q) = Σ p (log p − log q) with 0·log 0 = 0: where p is 0, log p can be −inf (a logit
    # gap beyond the float64 range) and the product NaN; those terms are 0
    with np.errstate(invalid="ignore"):
        kl = float(np.sum(np.where(p > 0, p * (log_p - log_q), 0.0)) / n)
    grad_kl = temp * (np.exp(log_q) - p) / n  # T² · ∂KL/∂s = T² · (q − p) / (T N)
    loss = a * ce + (1.0 - a) * temp * temp * kl
    return loss, a * grad_ce + (1.0 - a) * grad_kl


def hard_label_loss(student_logits, teacher_logits, labels, *, alpha: float = 0.0) -> tuple[float, np.ndarray]:
    """Hard-label distillation: cross-entropy against the teacher's argmax, mixed with the true labels.

    The student learns the teacher's decisions ŷ rather than its soft targets
    (the T → 0 limit of eq. 1: softmax(t/T) → onehot(argmax t); Hinton et al.
    2015 §2 use the "hard targets" of the true labels beside the soft ones; the
    teacher's hard labels are the pseudo-labels of self-training). docs/distillation.md eqs. (8)-(9)::

        ŷ_n = argmax_k t_nk   (ties: the lowest k, as numpy.argmax)                 (8)
        L = α · CE(y, softmax(s)) + (1 − α) · CE(ŷ, softmax(s))
        ∂L/∂s = [softmax(s) − α onehot(y) − (1 − α) onehot(ŷ)] / N                  (9)

    student_logits, teacher_logits : (N, K) finite. labels : (N,) int in [0, K).
    alpha : weight of the true labels in [0, 1] (0 = the teacher's labels only).
    Returns (loss as a Python float, gradient float64 (N, K)).
    """
    s = _logits(student_logits, "student_logits")
    t = _logits(teacher_logits, "teacher_logits")
    if t.shape != s.shape:
        raise ShapeError("teacher_logits", f"the shape of student_logits {s.shape}", f"shape {t.shape}")
    a = real(alpha, "alpha", low=0, high=1)
    ce_true, g_true = cross_entropy(s, labels)
    ce_teacher, g_teacher = cross_entropy(s, np.argmax(t, axis=1))
    return a * ce_true + (1.0 - a) * ce_teacher, a * g_true + (1.0 - a) * g_teacher


def hint_loss(student_features, teacher_features, projection=None) -> tuple[float, np.ndarray, np.ndarray | None]:
    """FitNets hint loss (5) with gradients (6).

    student_features : (N, C_s, ...) ; teacher_features : (N, C_t, ...) with
    the same trailing (spatial) shape; projection : (C_s, C_t) or None
    (then C_s must equal C_t).
    Returns (loss, ∂L/∂student_features, ∂L/∂projection or None).
    """
    # float64 whatever the input; the features and the projection are never written to, so no copy
    u = float_array(student_features, "student_features", ndim=(2, 3, 4, 5), dtype=np.float64)
    v = float_array(teacher_features, "teacher_features", ndim=(2, 3, 4, 5), dtype=np.float64)
    if u.shape[0] != v.shape[0] or u.shape[2:] != v.shape[2:]:
        raise ShapeError("teacher_features", f"shape (N={u.shape[0]}, C_t, {', '.join(map(str, u.shape[2:]))}) "
                         "matching student_features except for channels", f"shape {v.shape}")
    if projection is None:
        if u.shape[1] != v.shape[1]:
            raise ShapeError("projection", f"a ({u.shape[1]}, {v.shape[1]}) matrix, since the channel counts differ",
                             "None")
        p = None
        r = u
    else:
        p = float_array(projection, "projection", dtype=np.float64)  # any other shape is refused just below
        if p.shape != (u.shape[1], v.shape[1]):
            raise ShapeError("projection", f"shape ({u.shape[1]}, {v.shape[1]}) = (C_s, C_t)", f"shape {p.shape}")
        r = np.moveaxis(np.moveaxis(u, 1, -1) @ p, -1, 1)  # channel-wise linear map = 1×1 conv
    diff = r - v
    loss = float(np.mean(diff * diff))
    grad_r = 2.0 * diff / diff.size
    if p is None:
        return loss, grad_r, None
    g_last = np.moveaxis(grad_r, 1, -1)  # (N, ..., C_t)
    u_last = np.moveaxis(u, 1, -1)  # (N, ..., C_s)
    grad_u = np.moveaxis(g_last @ p.T, -1, 1)
    grad_p = u_last.reshape(-1, u.shape[1]).T @ g_last.reshape(-1, v.shape[1])
    return loss, grad_u, grad_p
