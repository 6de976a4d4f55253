"""Gradients and Hessian-gradient products of a model's loss, for the gradient criteria (P.1, P.2).

GraSP needs Hg, the Hessian of the loss times its gradient, restricted to the
weights being scored. refcomp.nn has no second backward (its layers store one
forward's activations and return first derivatives), so Hg is taken here by
the **central finite difference of gradients** along g:

    Hg ≈ [∇L(θ + εĝ) − ∇L(θ − εĝ)] / (2ε) · ‖g‖,   ĝ = g/‖g‖             (P.3)

exact for a quadratic loss and O(ε²) off otherwise (the third derivative
along g). ε is a step in the units of θ along the unit direction ĝ; the
default 1e-3 balances that truncation against rounding, which for a float32
model is O(u·‖∇L‖/ε) with u = 6e-8, and is exact to O(ε²) = 1e-6 relative
in float64. Only the chosen layers' weights move (the product is the block
of H for those weights); every other parameter stays fixed, as GraSP scores
only the prunable weights. The model is evaluated in eval mode (BatchNorm
statistics and Dropout fixed), so ∇L is a deterministic function of θ.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ...checks import real
from ...errors import ValidationError
from ...nn.losses import CrossEntropyLoss

__all__ = ["mean_gradients", "hessian_gradient_product"]


def mean_gradients(model, layers: dict, batches, loss=None) -> dict:
    """{name: (1/B) Σ_b ∂L_b/∂W} over the batches (eval mode; cross-entropy on the labels by default).

    layers : {name: Linear/Conv2d layer with a Dense weight}; batches : list of (x, y).
    Returns float64 arrays of each weight's shape; the model's gradients are cleared afterwards.
    """
    _check(layers, batches)
    loss = loss or CrossEntropyLoss()
    total = {n: np.zeros(l.weight.data.shape, dtype=np.float64) for n, l in layers.items()}
    was = model.training
    model.eval()  # calibration must not move BatchNorm statistics
    try:
        for xb, yb in batches:
            model.zero_grad()
            loss.forward(model.forward(xb), yb)
            model.backward(loss.backward())
            for n, l in layers.items():
                if l.weight.grad is not None:
                    total[n] += l.weight.grad
    finally:
        model.zero_grad()
        model.train(was)
    return {n: t / len(batches) for n, t in total.items()}


def _check(layers, batches) -> None:
    if not isinstance(layers, Mapping) or not layers:
        raise ValidationError("layers", "a non-empty mapping name -> Linear/Conv2d layer", type(layers).__name__)
    if not isinstance(batches, list) or not batches or not all(isinstance(b, tuple) and len(b) == 2
                                                                 for b in batches):
        raise ValidationError("batches", "a non-empty list of (x, y) batches", type(batches).__name__)


def _shift(layers: dict, direction: dict, step: float) -> None:
    for n, l in layers.items():
        l.weight.data += (step * direction[n]).astype(l.weight.data.dtype)


def hessian_gradient_product(model, layers: dict, batches, *, eps: float = 1e-3, loss=None) -> tuple:
    """(g, Hg): the mean gradient and its Hessian-gradient product on the chosen weights  (P.3).

    layers : {name: layer}; batches : list of (x, y); eps : ε > 0 of (P.3).
    Returns two dicts {name: float64 array of the weight's shape}. The weights
    are restored exactly (saved and copied back, not shifted back), so the
    model is unchanged afterwards.
    """
    eps = real(eps, "eps", low=0.0, low_open=True)
    g = mean_gradients(model, layers, batches, loss)
    norm = float(np.sqrt(sum(float(np.sum(v * v)) for v in g.values())))
    if norm == 0.0:
        return g, {n: np.zeros_like(v) for n, v in g.items()}
    unit = {n: v / norm for n, v in g.items()}
    saved = {n: l.weight.data.copy() for n, l in layers.items()}
    try:
        _shift(layers, unit, eps)
        plus = mean_gradients(model, layers, batches, loss)
        for n, l in layers.items():
            l.weight.data[...] = saved[n]
        _shift(layers, unit, -eps)
        minus = mean_gradients(model, layers, batches, loss)
    finally:
        for n, l in layers.items():
            l.weight.data[...] = saved[n]
    return g, {n: (plus[n] - minus[n]) * (norm / (2 * eps)) for n in g}
