"""Weight penalties R(θ) added to the loss, with their gradients.

    L1(λ1):            R = λ1 Σ|θ|,          ∂R/∂θ = λ1 · sign(θ)   (subgradient 0 at θ = 0)
    L2(λ2):            R = (λ2/2) Σθ²,       ∂R/∂θ = λ2 · θ         (the ½ makes λ2 equal SGD weight_decay)
    ElasticNet(λ1,λ2): R = λ1 Σ|θ| + (λ2/2) Σθ²  (Zou & Hastie 2005)

L1 drives weights to exactly-small values and is the classic sparsity-inducing
penalty before magnitude pruning (Han et al. 2015 train with L1/L2 first).

By default the penalty covers the weights of Linear/Conv2d/Embedding layers
(the ``*.weight`` entries with rank >= 2), not biases or norm scales.
Use: ``loss += reg.penalty(model)`` and, after ``model.backward``,
``reg.add_gradient(model)``.
"""

from __future__ import annotations

import numpy as np

from ..errors import ValidationError
from .module import _accumulate

__all__ = ["L1", "L2", "ElasticNet"]


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
