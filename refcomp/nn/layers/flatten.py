"""Flatten: (N, d1, d2, ...) -> (N, d1·d2·...); backward reshapes dy back."""

from __future__ import annotations

import numpy as np

from ...errors import ShapeError
from ...formats.qtensor import QTensor
from ..module import Module, register_layer

__all__ = ["Flatten"]


@register_layer
class Flatten(Module):
    def __init__(self):
        self._shape = None

    def forward(self, x):
        if isinstance(x, QTensor):      # codes of a per-tensor QTensor: the reshape keeps their (s, z)
            return QTensor(self.forward(x.data), x.qparams)
        x = np.asarray(x)
        if x.ndim < 1:
            raise ShapeError("x", "rank >= 1", f"shape {x.shape}")
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy):
        self._require_forward(self._shape)
        if dy.size != int(np.prod(self._shape)):
            raise ShapeError("dy", f"{int(np.prod(self._shape))} elements", dy.shape)
        return dy.reshape(self._shape)
