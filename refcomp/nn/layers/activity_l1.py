"""ActivityL1: an identity layer whose backward adds the gradient of an L1 penalty on what passes through.

Placed after a hidden activation a (N, ...), in training mode it adds to the loss

    R(a) = λ · (1/N) Σ_n Σ_i |a_ni|                                              (P.16)

(the mean over samples of each sample's L1 norm, so λ does not depend on the
batch size) and its backward returns

    dL/da = dy + λ · sign(a) / N                    (subgradient 0 at a = 0)     (P.17)

The L1 activation penalty of Glorot, Bordes, Bengio 2011, "Deep Sparse Rectifier
Neural Networks" (AISTATS): with ReLU it drives activations to exact
zeros. The forward output is the input itself; ``penalty`` holds R of the last
training forward (0 in eval mode), which refcomp.compress.prune.activation_l1's
regularizer adds to the reported loss. Eval mode is the identity both ways.
"""

from __future__ import annotations

import numpy as np

from ...checks import float_tensor, real
from ...errors import ShapeError
from ..module import Module, register_layer

__all__ = ["ActivityL1"]


@register_layer
class ActivityL1(Module):
    """Identity forward; L1 activation penalty λ (P.16) added to the gradient in backward (P.17)."""

    def __init__(self, l1: float):
        self.l1 = real(l1, "l1", low=0.0)
        self.penalty = 0.0
        self._x = None

    def config(self) -> dict:
        return {"l1": self.l1}

    def forward(self, x):
        x = float_tensor(x, "x", (2, 3, 4))
        self._x = x if self.training else None
        self.penalty = self.l1 * float(np.abs(x).sum(dtype=np.float64)) / x.shape[0] if self.training else 0.0
        return x

    def backward(self, dy):
        if self._x is None:           # eval mode: the identity
            return dy
        if dy.shape != self._x.shape:
            raise ShapeError("dy", f"shape {self._x.shape}", dy.shape)
        return (dy + (self.l1 / self._x.shape[0]) * np.sign(self._x)).astype(dy.dtype, copy=False)
