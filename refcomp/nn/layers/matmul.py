"""MatMul of two activations, batched: y = a @ b (ONNX MatMul, NumPy matmul).

Shapes: a (..., M, K), b (..., K, P), y (..., M, P); the leading batch axes
broadcast as in NumPy. Both operands have rank >= 2 (NumPy's special rules for
1-D operands are not supported: reshape them first).

Backward, per batch element (and then summed over the batch axes an operand
was broadcast along, see arithmetic.unbroadcast):

    dL/da = dy @ bᵀ      (..., M, K)
    dL/db = aᵀ @ dy      (..., K, P)

where ᵀ swaps the last two axes. Backward returns (dL/da, dL/db).

This is the product of two *activations* (attention's Q·Kᵀ and P·V); a product
with a weight is a Linear layer, whose weight can be compressed.
"""

from __future__ import annotations

import numpy as np

from ...checks import float_tensor
from ...errors import ShapeError
from ..module import Module, register_layer
from .arithmetic import unbroadcast

__all__ = ["MatMul"]

_RANKS = tuple(range(2, 9))


@register_layer
class MatMul(Module):
    """Batched matrix product of two inputs."""

    def __init__(self):
        self._cache = None

    def forward(self, a, b):
        a, b = float_tensor(a, "a", _RANKS), float_tensor(b, "b", _RANKS)
        if a.shape[-1] != b.shape[-2]:
            raise ShapeError("b", f"shape (..., {a.shape[-1]}, P) to match a's {a.shape}", f"shape {b.shape}")
        try:
            batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        except ValueError:
            raise ShapeError("b", f"batch axes that broadcast with a's {a.shape[:-2]}", f"shape {b.shape}") from None
        self._cache = (a, b, batch + (a.shape[-2], b.shape[-1]))
        return a @ b

    def backward(self, dy):
        self._require_forward(self._cache)
        a, b, y_shape = self._cache
        if dy.shape != y_shape:
            raise ShapeError("dy", f"shape {y_shape}", dy.shape)
        da = dy @ np.swapaxes(b, -1, -2)
        db = np.swapaxes(a, -1, -2) @ dy
        return unbroadcast(da, a.shape), unbroadcast(db, b.shape)
