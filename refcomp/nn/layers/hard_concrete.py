"""HardConcreteGate: a learnable L0 gate z_j ∈ [0, 1] on each feature / channel (axis 1).

Louizos, Welling, Kingma 2018, "Learning Sparse Neural Networks through L0
Regularization" (arXiv:1712.01312), §4 (the hard concrete distribution,
the expected L0 of eq. (12), the test-time estimator of eq. (13)). Each gate j has a
location log α_j; with β = 2/3, γ = −0.1, ζ = 1.1 (the paper's choice):

    u ~ U(0, 1)
    s  = σ((log u − log(1 − u) + log α) / β)          binary concrete sample   (P.10)
    s̄  = s·(ζ − γ) + γ                               stretched to (γ, ζ)      (P.11)
    z  = min(1, max(0, s̄))                           hard-clipped: exact 0s and 1s  (P.12)
    ẑ  = min(1, max(0, σ(log α)·(ζ − γ) + γ))        the test-time gate       (P.13)

Training draws one u per sample and gate from the layer's explicit ``rng``;
eval mode uses ẑ. The output is y = x ⊙ z, z broadcast over axis 1 of x
((N, F) Linear outputs or (N, C, H, W) conv channels). The stretch is what
lets z reach exactly 0 and 1 with non-zero probability (σ alone never does).

Backward (dy = dL/dy; the clip passes gradient only where 0 < s̄ < 1):

    dL/dx       = dy ⊙ z
    dL/d log α_j = Σ_{n,spatial} dy·x · 1[0 < s̄ < 1] · (ζ − γ) · s(1 − s) / β
                  (eval: (ζ − γ) · σ(log α)(1 − σ(log α)) inside the clip)

The expected-L0 penalty, P(z_j ≠ 0) = σ(log α_j − β log(−γ/ζ)) (eq. 12), is
:meth:`expected_l0`; refcomp.compress.prune.l0 adds it to the loss.
"""

from __future__ import annotations

import math

import numpy as np

from ...checks import float_tensor, integer, real
from ...errors import ShapeError, ValidationError
from ..module import Module, Parameter, _accumulate, as_rng, register_layer

__all__ = ["HardConcreteGate"]


def _sigmoid(v):
    # both branches finite for any v: exp of a non-positive number only
    e = np.exp(-np.abs(v))
    return np.where(v >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


@register_layer
class HardConcreteGate(Module):
    """One hard-concrete gate per feature of axis 1.

    num_features : F; beta, gamma, zeta : the distribution's temperature and stretch
        (γ < 0, ζ > 1, β > 0); drop_init : the initial P(gate closed at test time) is set by
        log α = log(1 − p) − log p (Louizos et al.'s initialisation, without its noise);
    rng : Generator or seed for the training-mode noise (required before the first training forward).
    """

    def __init__(self, num_features: int, *, beta: float = 2 / 3, gamma: float = -0.1, zeta: float = 1.1,
                 drop_init: float = 0.5, rng=None, dtype="float32"):
        self.num_features = integer(num_features, "num_features", minimum=1)
        self.beta = real(beta, "beta", low=0.0, low_open=True)
        self.gamma = real(gamma, "gamma", high=0.0, high_open=True)
        self.zeta = real(zeta, "zeta", low=1.0, low_open=True)
        p = real(drop_init, "drop_init", low=0.0, high=1.0, low_open=True, high_open=True)
        self.log_alpha = Parameter(np.full(self.num_features, math.log(1 - p) - math.log(p), dtype=np.dtype(dtype)))
        self.rng = None if rng is None else as_rng(rng)
        self._cache = None

    def config(self) -> dict:
        return {"num_features": self.num_features, "beta": self.beta, "gamma": self.gamma, "zeta": self.zeta,
                "dtype": str(self.log_alpha.data.dtype)}

    def _gate(self, n: int):
        """(z (n, F), dz/dlog α (n, F)) in training; (ẑ (1, F), dẑ/dlog α) in eval."""
        la = self.log_alpha.data.astype(np.float64)
        span = self.zeta - self.gamma
        if self.training:
            if self.rng is None:
                raise ValidationError("rng", "a Generator or seed set on the gate before training", "None")
            u = self.rng.uniform(np.finfo(np.float64).tiny, 1.0, size=(n, self.num_features))
            s = _sigmoid((np.log(u) - np.log1p(-u) + la) / self.beta)       # (P.10)
            ds = s * (1 - s) / self.beta
        else:
            s = _sigmoid(la)[None, :]                                         # (P.13)
            ds = s * (1 - s)
        stretched = s * span + self.gamma                                     # (P.11)
        inside = (stretched > 0) & (stretched < 1)
        return np.clip(stretched, 0.0, 1.0), np.where(inside, span * ds, 0.0)  # (P.12)

    def gate_values(self) -> np.ndarray:
        """ẑ (F,), the test-time gate (P.13), float64."""
        la = self.log_alpha.data.astype(np.float64)
        return np.clip(_sigmoid(la) * (self.zeta - self.gamma) + self.gamma, 0.0, 1.0)

    def expected_l0(self) -> tuple:
        """(Σ_j P(z_j ≠ 0), its gradient w.r.t. log α (F,)): eq. (12), σ(log α − β log(−γ/ζ))."""
        p = _sigmoid(self.log_alpha.data.astype(np.float64) - self.beta * math.log(-self.gamma / self.zeta))
        return float(p.sum()), p * (1 - p)

    def forward(self, x):
        x = float_tensor(x, "x", (2, 3, 4))
        if x.shape[1] != self.num_features:
            raise ShapeError("x", f"{self.num_features} features on axis 1", f"shape {x.shape}")
        z, dz = self._gate(x.shape[0])
        shape = z.shape + (1,) * (x.ndim - 2)
        self._cache = (x, z.reshape(shape), dz.reshape(shape))
        return (x * z.reshape(shape)).astype(x.dtype, copy=False)

    def backward(self, dy):
        self._require_forward(self._cache)
        x, z, dz = self._cache
        if dy.shape != x.shape:
            raise ShapeError("dy", f"shape {x.shape}", dy.shape)
        axes = (0,) + tuple(range(2, x.ndim))
        _accumulate(self.log_alpha, np.sum(dy * x * dz, axis=axes).astype(self.log_alpha.data.dtype))
        return (dy * z).astype(dy.dtype, copy=False)
