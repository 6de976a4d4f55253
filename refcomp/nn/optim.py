"""Optimizers, with the update rules PyTorch documents (torch.optim, 2.x).

For a parameter θ with gradient g at step t (t = 1, 2, ...), learning rate η,
weight decay λ:

SGD (momentum μ, dampening τ, Nesterov):

    g ← g + λθ
    b ← g                     at t = 1
    b ← μ·b + (1 − τ)·g       after
    d ← g + μ·b   if Nesterov  else  b      (d = g when μ = 0)
    θ ← θ − η·d

Adam (Kingma & Ba 2015, Alg. 1; λ is L2 regularisation added to g):

    g ← g + λθ
    m ← β1·m + (1 − β1)·g,   v ← β2·v + (1 − β2)·g²
    θ ← θ − η · (m / (1 − β1^t)) / (sqrt(v / (1 − β2^t)) + ε)

AdamW (Loshchilov & Hutter 2019, decoupled weight decay): θ ← θ·(1 − ηλ) first,
then the Adam step with λ = 0.

Only parameters that are ``trainable`` and have a ``grad`` are updated; the
update is in place on ``p.data`` (so views of it, e.g. a Dense format's array,
see it). State is kept per parameter object.
"""

from __future__ import annotations

import numpy as np

from ..errors import ValidationError

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "Wrapped"]


def _nonneg(value, argument) -> float:
    if not (value >= 0 and np.isfinite(value)):
        raise ValidationError(argument, "a finite value >= 0", value)
    return float(value)


class Optimizer:
    """Holds the parameter list, the learning rate ``lr`` (schedules set it) and per-parameter state."""

    def __init__(self, params, lr: float):
        self.params = [p for p in params if getattr(p, "trainable", False)]
        if not self.params:
            raise ValidationError("params", "at least one trainable parameter", "none")
        self.lr = _nonneg(lr, "lr")
        self.state: dict[int, dict] = {}
        self.t = 0

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        self.t += 1
        for p in self.params:
            if p.grad is not None:
                self._update(p, p.grad, self.state.setdefault(id(p), {}))

    def _update(self, p, g, state) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    def __init__(self, params, lr: float, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):
        super().__init__(params, lr)
        self.momentum = _nonneg(momentum, "momentum")
        self.dampening = _nonneg(dampening, "dampening")
        self.weight_decay = _nonneg(weight_decay, "weight_decay")
        if nesterov and (self.momentum == 0 or self.dampening != 0):
            raise ValidationError("nesterov", "momentum > 0 and dampening = 0", f"momentum={momentum}, dampening={dampening}")
        self.nesterov = bool(nesterov)

    def _update(self, p, g, state):
        if self.weight_decay:
            g = g + self.weight_decay * p.data
        if self.momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = np.array(g, dtype=p.data.dtype, copy=True)
            else:
                buf *= self.momentum
                buf += (1 - self.dampening) * g
            g = g + self.momentum * buf if self.nesterov else buf
        p.data -= p.data.dtype.type(self.lr) * g


class Adam(Optimizer):
    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(params, lr)
        b1, b2 = betas
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValidationError("betas", "two values in [0, 1)", betas)
        self.betas = (float(b1), float(b2))
        self.eps = _nonneg(eps, "eps")
        self.weight_decay = _nonneg(weight_decay, "weight_decay")

    def _decay(self, p, g):
        return g + self.weight_decay * p.data if self.weight_decay else g

    def _update(self, p, g, state):
        g = self._decay(p, g)
        b1, b2 = self.betas
        if "m" not in state:
            state["m"] = np.zeros_like(p.data)
            state["v"] = np.zeros_like(p.data)
            state["t"] = 0
        state["t"] += 1
        t = state["t"]
        m, v = state["m"], state["v"]
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * (g * g)
        mhat = m / (1 - b1 ** t)
        vhat = v / (1 - b2 ** t)
        p.data -= (self.lr * mhat / (np.sqrt(vhat) + self.eps)).astype(p.data.dtype, copy=False)


class AdamW(Adam):
    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01):
        super().__init__(params, lr, betas, eps, weight_decay)

    def _decay(self, p, g):
        if self.weight_decay:
            p.data *= p.data.dtype.type(1 - self.lr * self.weight_decay)
        return g


class Wrapped:
    """An optimizer that changes what one step does around an inner optimizer's step.

    lr, params, state and zero_grad are the inner optimizer's, so refcomp.nn.train's
    schedules set the rate the inner step uses. Subclasses set ``self.inner`` and define ``step``
    (masked pruning, frozen neurons).
    """

    inner: Optimizer

    @property
    def lr(self):
        return self.inner.lr

    @lr.setter
    def lr(self, value):
        self.inner.lr = value

    @property
    def params(self):
        return self.inner.params

    @property
    def state(self):
        return self.inner.state

    def zero_grad(self) -> None:
        self.inner.zero_grad()
