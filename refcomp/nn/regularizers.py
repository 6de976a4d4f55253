"""Weight penalties R(θ) added to the loss, with their gradients, and the proximal elastic-net update.

    L1(λ1):            R = λ1 Σ|θ|,          ∂R/∂θ = λ1 · sign(θ)   (subgradient 0 at θ = 0)
    L2(λ2):            R = (λ2/2) Σθ²,       ∂R/∂θ = λ2 · θ         (the ½ makes λ2 equal SGD weight_decay)
    ElasticNet(λ1,λ2): R = λ1 Σ|θ| + (λ2/2) Σθ²  (Zou & Hastie 2005)

L1 drives weights to exactly-small values and is the classic sparsity-inducing
penalty before magnitude pruning (Han et al. 2015 train with L1/L2 first).

By default the penalty covers the weights of Linear/Conv2d/Embedding layers
(the ``*.weight`` entries with rank >= 2), not biases or norm scales.
Use: ``loss += reg.penalty(model)`` and, after ``model.backward``,
``reg.add_gradient(model)`` (refcomp.nn.train does both when given ``regularizer``).

The proximal (soft-thresholding) update — ProximalElasticNet, docs/deep_compression.md
§13. The same objective, minimised by splitting
the step: a gradient step on the smooth part (loss + (λ2/2)‖θ‖²), then the
proximal map of ηλ1‖θ‖₁, which is soft-thresholding (Parikh & Boyd 2014,
"Proximal Algorithms", §6.5.2; ISTA, Beck & Teboulle 2009, eq. 1.4)::

    S(v, τ) = sign(v) · max(|v| − τ, 0)                                          (R.1)
    θ ← S(θ − η (g + λ2 θ), η λ1)                                               (R.2)

Unlike the subgradient λ1·sign(θ), which makes a small weight oscillate around
0, (R.2) sets it to exactly 0 whenever |θ − η(g + λ2 θ)| ≤ ηλ1. The issue
asks for "the first article's elastic-net update rule"; no rule is written in
the project's design notes or docs, so (R.2) is this module's assumption of it.
With momentum (refcomp.nn.train's SGD) the gradient step is the momentum step
and (R.1) follows it: proximal SGD with momentum, a heuristic without ISTA's
guarantee.

The max-norm constraint — MaxNorm (Srivastava et al. 2014, "Dropout", JMLR
15, §5.1; the "weight constraints" of Hinton et al. 2012 that Hinton et al.
2015 §3 train their MNIST teacher with). Not a penalty but a projection after
each step: every unit's incoming weight vector w_j (row j of a Linear weight
(out, in); output channel j of a Conv2d weight, flattened) is rescaled onto the
ball of radius c when it leaves it::

    w_j ← w_j · min(1, c / ‖w_j‖₂)                                             (R.3)

It lets dropout nets train with a large learning rate and momentum without
the weights growing without bound.
"""

from __future__ import annotations

import numpy as np

from ..errors import ValidationError
from .module import _accumulate

__all__ = ["L1", "L2", "ElasticNet", "soft_threshold", "proximal_elastic_net_step", "ProximalElasticNet",
           "max_norm", "MaxNorm"]


def _weights(model, select):
    for name, p in model.named_parameters():
        if select(name, p):
            yield p


def _default_select(name, p) -> bool:
    return name.endswith("weight") and p.data.ndim >= 2


class ElasticNet:
    def __init__(self, l1: float = 0.0, l2: float = 0.0, select=_default_select):
        for v, a in ((l1, "l1"), (l2, "l2")):
            if not (v >= 0 and np.isfinite(v)):
                raise ValidationError(a, "a finite value >= 0", v)
        self.l1, self.l2, self.select = float(l1), float(l2), select

    def penalty(self, model) -> float:
        r = 0.0
        for p in _weights(model, self.select):
            w = p.data.astype(np.float64)
            if self.l1:
                r += self.l1 * np.abs(w).sum()
            if self.l2:
                r += 0.5 * self.l2 * (w * w).sum()
        return float(r)

    def gradient(self, w: np.ndarray) -> np.ndarray:
        g = np.zeros_like(w)
        if self.l1:
            g += self.l1 * np.sign(w)
        if self.l2:
            g += self.l2 * w
        return g

    def add_gradient(self, model) -> None:
        for p in _weights(model, self.select):
            _accumulate(p, self.gradient(p.data))


class L1(ElasticNet):
    def __init__(self, l1: float, select=_default_select):
        super().__init__(l1=l1, l2=0.0, select=select)


class L2(ElasticNet):
    def __init__(self, l2: float, select=_default_select):
        super().__init__(l1=0.0, l2=l2, select=select)


def soft_threshold(v, tau) -> np.ndarray:
    """S(v, τ) = sign(v) · max(|v| − τ, 0) (R.1), elementwise, τ >= 0; the prox of τ‖·‖₁. Keeps v's dtype."""
    v = np.asarray(v)
    if not (np.all(np.asarray(tau) >= 0) and np.all(np.isfinite(tau))):
        raise ValidationError("tau", "finite thresholds >= 0", tau)
    return (np.sign(v) * np.maximum(np.abs(v) - tau, 0)).astype(v.dtype, copy=False)


def proximal_elastic_net_step(w, g, lr: float, l1: float, l2: float) -> np.ndarray:
    """One proximal SGD step (R.2): S(w − lr·(g + l2·w), lr·l1); w, g arrays of one shape; returns a new array."""
    for v, a in ((lr, "lr"), (l1, "l1"), (l2, "l2")):
        if not (v >= 0 and np.isfinite(v)):
            raise ValidationError(a, "a finite value >= 0", v)
    w, g = np.asarray(w), np.asarray(g)
    if w.shape != g.shape:
        raise ValidationError("g", f"shape {w.shape} (as w)", g.shape)
    return soft_threshold(w - lr * (g + l2 * w), lr * l1)


class ProximalElasticNet(ElasticNet):
    """Elastic net minimised by the proximal update (R.2) instead of the subgradient.

    The penalty is ElasticNet's (so the reported loss is the same objective);
    ``add_gradient`` adds only the smooth part λ2·θ; ``after_step(model, lr)``,
    which refcomp.nn.train calls after ``optimizer.step()``, soft-thresholds the
    selected weights by lr·λ1 (R.1). A pruned (masked) weight stays 0: S(0, τ) = 0.
    """

    def add_gradient(self, model) -> None:
        if self.l2:
            for p in _weights(model, self.select):
                _accumulate(p, self.l2 * p.data)

    def after_step(self, model, lr: float) -> None:
        if self.l1:
            for p in _weights(model, self.select):
                p.data[...] = soft_threshold(p.data, p.data.dtype.type(lr * self.l1))


def _outside(w: np.ndarray, c: float):
    """The units of w (out, ...) outside the ball ‖w_j‖₂ <= c, and the factor c/‖w_j‖₂ (R.3) for each."""
    norms = np.sqrt((w.reshape(len(w), -1).astype(np.float64) ** 2).sum(axis=1))
    over = norms > c
    return over, (c / norms[over]).reshape((-1,) + (1,) * (w.ndim - 1))


def max_norm(w, c: float) -> np.ndarray:
    """(R.3): each w[j] (all axes but the first flattened) rescaled to L2 norm <= c; w (out, ...); a new array.

    A row already inside the ball is returned unchanged (bit for bit); one outside keeps its direction.
    """
    if not (c > 0 and np.isfinite(c)):
        raise ValidationError("c", "a finite value > 0", c)
    w = np.asarray(w)
    if w.ndim < 2:
        raise ValidationError("w", "a weight of rank >= 2 (out, ...)", w.shape)
    over, scale = _outside(w, c)
    out = w.copy()
    # only the rows outside the ball are touched, so a row inside keeps its exact bits
    out[over] = (w[over] * scale).astype(w.dtype)
    return out


class MaxNorm:
    """The max-norm constraint (R.3) as a regularizer for refcomp.nn.train: no penalty and no gradient;
    ``after_step`` projects each selected weight's units onto ‖w_j‖₂ <= c after every optimizer step."""

    def __init__(self, c: float, select=_default_select):
        if not (c > 0 and np.isfinite(c)):
            raise ValidationError("c", "a finite value > 0", c)
        self.c, self.select = float(c), select

    def penalty(self, model) -> float:
        return 0.0

    def add_gradient(self, model) -> None:
        return None

    def after_step(self, model, lr: float) -> None:
        # in place, on the rows outside the ball only: this runs after every step, and a whole copy
        # of each weight (max_norm's contract) would be work the projection does not need
        for p in _weights(model, self.select):
            over, scale = _outside(p.data, self.c)
            p.data[over] = (p.data[over] * scale).astype(p.data.dtype)
