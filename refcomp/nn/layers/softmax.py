"""Softmax along one axis (ONNX Softmax, opset 13+).

Shapes: x any rank, y = x.shape, normalised along ``axis``:

    y_i = exp(x_i − m) / Σ_j exp(x_j − m),     m = max_j x_j

Subtracting the maximum changes nothing mathematically (it cancels) but keeps
every exponent ≤ 0, so nothing overflows and the largest term is exactly 1.

Backward (the Jacobian dy_i/dx_j = y_i(δ_ij − y_j) applied to dy):

    dL/dx = y ⊙ (dy − Σ_axis dy ⊙ y)
"""

from __future__ import annotations

import numpy as np

from ...checks import float_tensor
from ...errors import ShapeError, ValidationError
from ..module import Module, register_layer

__all__ = ["Softmax", "softmax", "softmax_backward"]


def softmax(x: np.ndarray, axis: int = -1, *, overwrite_x: bool = False) -> np.ndarray:
    """exp(x − max) / Σ exp(x − max) along ``axis``, in x's dtype.

    ``overwrite_x``: compute in x's own memory and return it (the same operations, so the same
    values): attention's scores are not needed afterwards, and a (N, H, T, T) array less per
    layer is what its cost is made of."""
    e = x if overwrite_x else x.copy()
    e -= x.max(axis=axis, keepdims=True)
    np.exp(e, out=e)
    e /= e.sum(axis=axis, keepdims=True)
    return e


def softmax_backward(y: np.ndarray, dy: np.ndarray, axis: int = -1) -> np.ndarray:
    """dL/dx = y ⊙ (dy − Σ_axis dy ⊙ y), given the forward's output y."""
    return y * (dy - (dy * y).sum(axis=axis, keepdims=True))


@register_layer
class Softmax(Module):
    """Softmax along ``axis`` (default the last)."""

    def __init__(self, axis: int = -1):
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise ValidationError("axis", "an int", repr(axis))
        self.axis = int(axis)
        self._y = None

    def config(self) -> dict:
        return {"axis": self.axis}

    def forward(self, x):
        x = float_tensor(x, "x", tuple(range(1, 9)))
        if not -x.ndim <= self.axis < x.ndim:
            raise ShapeError("x", f"a rank that has axis {self.axis}", f"shape {x.shape}")
        self._y = softmax(x, self.axis)
        return self._y

    def backward(self, dy):
        self._require_forward(self._y)
        if dy.shape != self._y.shape:
            raise ShapeError("dy", f"shape {self._y.shape}", dy.shape)
        return softmax_backward(self._y, dy, self.axis)
