"""Losses: a scalar from (prediction, target), and its gradient w.r.t. the prediction.

Each loss object has ``forward(pred, target) -> float`` (``__call__`` too) and
``backward() -> dL/dpred`` for the last forward. All are means over the batch.

Softmax cross-entropy (logits z of shape (N, K), integer labels t):

    log p_k = z_k − LSE(z),  LSE(z) = m + log Σ_j exp(z_j − m),  m = max_j z_j
    q = (1 − α)·onehot(t) + α/K         (label smoothing α, Szegedy et al. 2016 §7)
    L = −(1/N) Σ_n Σ_k q_nk · log p_nk
    dL/dz = (p − q) / N

Subtracting m before exp is what makes LSE stable: every exponent is <= 0.

Knowledge distillation, KL divergence with temperature T (Hinton et al. 2015, §2):

    p^T = softmax(teacher / T),  s^T = softmax(student / T)
    L = T² · (1/N) Σ_n KL(p^T ‖ s^T) = T² · (1/N) Σ_n Σ_k p^T_k (log p^T_k − log s^T_k)
    dL/dstudent = T · (s^T − p^T) / N

The T² factor keeps the gradient magnitude independent of T (the gradient of
the softened term scales as 1/T², see Hinton et al.); the teacher is a
constant (no gradient). Terms with p^T_k = 0 contribute 0.

Mean squared error: L = (1/numel) Σ (y − t)²,  dL/dy = 2 (y − t) / numel.
"""

from __future__ import annotations

import numpy as np

from ..errors import DTypeError, ShapeError, ValidationError

__all__ = ["log_softmax", "softmax", "CrossEntropyLoss", "KLDivLoss", "MSELoss"]


def log_softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    """z − LSE(z) along ``axis`` with the max subtracted first (no overflow)."""
    m = z.max(axis=axis, keepdims=True)
    s = z - m
    return s - np.log(np.exp(s).sum(axis=axis, keepdims=True))


def softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _logits(z, argument="logits") -> np.ndarray:
    z = np.asarray(z)
    if z.dtype.kind != "f":
        raise DTypeError(argument, "a floating array", z.dtype)
    if z.ndim != 2 or z.shape[0] < 1 or z.shape[1] < 1:
        raise ShapeError(argument, "shape (N, K) with N, K >= 1", z.shape)
    if not np.isfinite(z).all():
        raise ValidationError(argument, "finite values", "NaN or inf")
    return z


class CrossEntropyLoss:
    """Softmax cross-entropy from logits, with optional label smoothing α in [0, 1)."""

    def __init__(self, label_smoothing: float = 0.0):
        if not (0.0 <= label_smoothing < 1.0):
            raise ValidationError("label_smoothing", "in [0, 1)", label_smoothing)
        self.label_smoothing = float(label_smoothing)
        self._cache = None

    def forward(self, logits, target) -> float:
        z = _logits(logits)
        t = np.asarray(target)
        if t.dtype.kind not in "iu":
            raise DTypeError("target", "integer class labels", t.dtype)
        n, k = z.shape
        if t.shape != (n,):
            raise ShapeError("target", f"shape ({n},)", t.shape)
        if t.min() < 0 or t.max() >= k:
            raise ValidationError("target", f"labels in [0, {k})", f"range [{t.min()}, {t.max()}]")
        logp = log_softmax(z)
        a = self.label_smoothing
        rows = np.arange(n)
        nll = -logp[rows, t]
        loss = (1 - a) * nll - (a / k) * logp.sum(axis=1) if a else nll
        self._cache = (logp, t, z.dtype)
        return float(loss.mean())

    __call__ = forward

    def backward(self) -> np.ndarray:
        if self._cache is None:
            raise ValidationError("backward", "a preceding forward()", "none")
        logp, t, dtype = self._cache
        n, k = logp.shape
        g = np.exp(logp)
        a = self.label_smoothing
        if a:
            g -= a / k
        g[np.arange(n), t] -= 1 - a
        g /= n
        return g.astype(dtype, copy=False)


class KLDivLoss:
    """Distillation loss T²·KL(softmax(teacher/T) ‖ softmax(student/T)), batch mean."""

    def __init__(self, temperature: float = 1.0):
        if not (temperature > 0 and np.isfinite(temperature)):
            raise ValidationError("temperature", "a finite value > 0", temperature)
        self.temperature = float(temperature)
        self._cache = None

    def forward(self, student_logits, teacher_logits) -> float:
        s = _logits(student_logits, "student_logits")
        t = _logits(teacher_logits, "teacher_logits")
        if s.shape != t.shape:
            raise ShapeError("teacher_logits", f"shape {s.shape} (as student_logits)", t.shape)
        T = self.temperature
        log_s = log_softmax(s / T)
        log_p = log_softmax(t / T)
        p = np.exp(log_p)
        kl = np.where(p > 0, p * (log_p - log_s), 0.0).sum(axis=1)
        self._cache = (np.exp(log_s), p, s.dtype)
        return float(T * T * kl.mean())

    __call__ = forward

    def backward(self) -> np.ndarray:
        if self._cache is None:
            raise ValidationError("backward", "a preceding forward()", "none")
        s, p, dtype = self._cache
        return (self.temperature * (s - p) / s.shape[0]).astype(dtype, copy=False)


class MSELoss:
    """Mean of squared differences over all elements."""

    def __init__(self):
        self._cache = None

    def forward(self, pred, target) -> float:
        y = np.asarray(pred)
        t = np.asarray(target)
        if y.dtype.kind != "f":
            raise DTypeError("pred", "a floating array", y.dtype)
        if y.shape != t.shape:
            raise ShapeError("target", f"shape {y.shape} (as pred)", t.shape)
        d = y - t
        self._cache = (d, y.dtype)
        return float(np.mean(d * d))

    __call__ = forward

    def backward(self) -> np.ndarray:
        if self._cache is None:
            raise ValidationError("backward", "a preceding forward()", "none")
        d, dtype = self._cache
        return (2.0 * d / d.size).astype(dtype, copy=False)
