"""Dropout (inverted): in training, each element is kept with probability 1 − p
and scaled by 1/(1 − p), so the expected output equals the input and eval mode
is the identity (Srivastava et al. 2014, with the scaling moved to training).

    mask ~ Bernoulli(1 − p) drawn from the layer's explicit ``rng``
    y = x ⊙ mask / (1 − p),   dL/dx = dy ⊙ mask / (1 − p)
"""

from __future__ import annotations

import numpy as np

from ...checks import float_tensor
from ...errors import ShapeError, ValidationError
from ...formats.qtensor import QTensor
from ..module import Module, as_rng, register_layer

__all__ = ["Dropout"]


@register_layer
class Dropout(Module):
    """Dropout with drop probability p in [0, 1).

    rng : Generator or int seed, required before the first training-mode
        forward (a model loaded from a file has none: assign ``layer.rng``).
    """

    def __init__(self, p: float = 0.5, *, rng=None):
        if not (0.0 <= p < 1.0):
            raise ValidationError("p", "a probability in [0, 1)", p)
        self.p = float(p)
        self.rng = None if rng is None else as_rng(rng)
        self._mask = None

    def config(self) -> dict:
        return {"p": self.p}

    def forward(self, x):
        if isinstance(x, QTensor) and not self.training:
            return x                    # eval mode is the identity, on codes too
        x = float_tensor(x, "x", tuple(range(0, 9)))
        if not self.training or self.p == 0.0:
            self._mask = np.ones((), dtype=x.dtype)
            return x
        if self.rng is None:
            raise ValidationError("rng", "a Generator or seed on a training-mode Dropout", "None")
        keep = self.rng.random(x.shape) >= self.p
        self._mask = keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - self.p))
        return x * self._mask

    def backward(self, dy):
        self._require_forward(self._mask)
        if self._mask.ndim and dy.shape != self._mask.shape:
            raise ShapeError("dy", f"shape {self._mask.shape}", dy.shape)
        return dy * self._mask
