"""Learning-rate schedules: pure functions of the step (or epoch) index t = 0, 1, ...

=================================  ==================================================
schedule                           lr(t)
=================================  ==================================================
StepLR(base, step_size, γ)         base · γ^floor(t / step_size)
ExponentialLR(base, γ)             base · γ^t
CosineLR(base, T, η_min)           η_min + (base − η_min)·(1 + cos(π·min(t, T)/T))/2
                                   (SGDR without restarts, Loshchilov & Hutter 2017, eq. 5)
LinearWarmup(inner, W, f0)         inner(t) · (f0 + (1 − f0)·t/W) for t < W, inner(t) after
=================================  ==================================================

These match torch.optim.lr_scheduler's StepLR, ExponentialLR and
CosineAnnealingLR (closed forms) when stepped once per t. ``refcomp.nn.train``
calls the schedule once per epoch and assigns ``optimizer.lr = schedule(epoch)``.
"""

from __future__ import annotations

import math

from ..errors import ValidationError

__all__ = ["StepLR", "ExponentialLR", "CosineLR", "LinearWarmup", "Constant"]


def _positive(v, arg):
    if not (v > 0 and math.isfinite(v)):
        raise ValidationError(arg, "a finite value > 0", v)
    return v


def _step(t) -> int:
    if isinstance(t, bool) or not isinstance(t, int) or t < 0:
        raise ValidationError("t", "an int >= 0", repr(t))
    return t


class Constant:
    def __init__(self, base: float):
        self.base = _positive(base, "base")

    def __call__(self, t: int) -> float:
        _step(t)
        return self.base


class StepLR:
    def __init__(self, base: float, step_size: int, gamma: float = 0.1):
        self.base = _positive(base, "base")
        if isinstance(step_size, bool) or not isinstance(step_size, int) or step_size < 1:
            raise ValidationError("step_size", "an int >= 1", step_size)
        self.step_size, self.gamma = step_size, _positive(gamma, "gamma")

    def __call__(self, t: int) -> float:
        return self.base * self.gamma ** (_step(t) // self.step_size)


class ExponentialLR:
    def __init__(self, base: float, gamma: float):
        self.base, self.gamma = _positive(base, "base"), _positive(gamma, "gamma")

    def __call__(self, t: int) -> float:
        return self.base * self.gamma ** _step(t)


class CosineLR:
    def __init__(self, base: float, total: int, eta_min: float = 0.0):
        self.base = _positive(base, "base")
        if isinstance(total, bool) or not isinstance(total, int) or total < 1:
            raise ValidationError("total", "an int >= 1", total)
        if not (0 <= eta_min <= base):
            raise ValidationError("eta_min", f"in [0, base={base}]", eta_min)
        self.total, self.eta_min = total, float(eta_min)

    def __call__(self, t: int) -> float:
        t = min(_step(t), self.total)
        return self.eta_min + (self.base - self.eta_min) * (1 + math.cos(math.pi * t / self.total)) / 2


class LinearWarmup:
    def __init__(self, inner, warmup: int, start_factor: float = 0.0):
        if not callable(inner):
            raise ValidationError("inner", "a schedule (callable t -> lr)", type(inner).__name__)
        if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 1:
            raise ValidationError("warmup", "an int >= 1", warmup)
        if not (0 <= start_factor <= 1):
            raise ValidationError("start_factor", "in [0, 1]", start_factor)
        self.inner, self.warmup, self.start_factor = inner, warmup, float(start_factor)

    def __call__(self, t: int) -> float:
        t = _step(t)
        f = self.start_factor + (1 - self.start_factor) * t / self.warmup if t < self.warmup else 1.0
        return self.inner(t) * f
