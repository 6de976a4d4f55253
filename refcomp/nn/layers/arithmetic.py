"""Element-wise binary operations with NumPy broadcasting: Add, Sub, Mul, Div.

Shapes: a and b broadcast to y's shape (NumPy / ONNX multidirectional
broadcasting: align trailing axes, an axis of size 1 stretches).

=====  ===========  ==========================  ==========================  ====
layer  forward      dL/da                       dL/db                       ONNX
=====  ===========  ==========================  ==========================  ====
Add    y = a + b    unbroadcast(dy, a.shape)    unbroadcast(dy, b.shape)    Add
Sub    y = a − b    unbroadcast(dy, a.shape)    unbroadcast(−dy, b.shape)   Sub
Mul    y = a ⊙ b    unbroadcast(dy ⊙ b, a.sh.)  unbroadcast(dy ⊙ a, b.sh.)  Mul
Div    y = a / b    unbroadcast(dy / b, a.sh.)  unbroadcast(−dy ⊙ y / b,    Div
                                                b.shape)
=====  ===========  ==========================  ==========================  ====

unbroadcast sums the gradient over the axes that broadcasting stretched (the
leading axes a lacks, and the axes where a has size 1): each element of a was
used once per position of y it was stretched over, so its gradient is the sum
of dy over those positions (the chain rule for a fan-out).

Backward returns the tuple (dL/da, dL/db).
"""

from __future__ import annotations

import numpy as np

from ...checks import float_tensor
from ...errors import ShapeError
from ..module import Module, register_layer

__all__ = ["Add", "Sub", "Mul", "Div", "unbroadcast"]

_ANY_RANK = tuple(range(0, 9))


def unbroadcast(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``g`` (of the broadcast shape) down to ``shape``, the shape of one operand."""
    lead = g.ndim - len(shape)
    if lead:
        g = g.sum(axis=tuple(range(lead)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if stretched:
        g = g.sum(axis=stretched, keepdims=True)
    return g


def _broadcast_shape(a, b) -> tuple[int, ...]:
    try:
        return np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ShapeError("b", f"a shape that broadcasts with a's {a.shape}", f"shape {b.shape}") from None


class _Binary(Module):
    """y = op(a, b) with broadcasting; a subclass gives the formula and its two partial gradients.

    ``forward`` checks the operands and keeps (a, b, y); ``backward`` checks dy and
    unbroadcasts the subclass's gradients (of y's shape) to each operand's shape.
    """

    def __init__(self):
        self._cache = None

    @staticmethod
    def op(a, b):
        raise NotImplementedError

    @staticmethod
    def grads(dy, a, b, y):
        """(dL/da, dL/db) before unbroadcasting."""
        raise NotImplementedError

    def forward(self, a, b):
        a, b = float_tensor(a, "a", _ANY_RANK), float_tensor(b, "b", _ANY_RANK)
        _broadcast_shape(a, b)
        y = self.op(a, b)
        self._cache = (a, b, y)
        return y

    def backward(self, dy):
        self._require_forward(self._cache)
        a, b, y = self._cache
        if dy.shape != y.shape:
            raise ShapeError("dy", f"shape {y.shape}", dy.shape)
        ga, gb = self.grads(dy, a, b, y)
        return unbroadcast(ga, a.shape), unbroadcast(gb, b.shape)


@register_layer
class Add(_Binary):
    """y = a + b with broadcasting (the residual connection)."""

    op = staticmethod(np.add)

    @staticmethod
    def grads(dy, a, b, y):
        return dy, dy


@register_layer
class Sub(_Binary):
    """y = a − b with broadcasting (ONNX Sub; the centring step of a decomposed norm)."""

    op = staticmethod(np.subtract)

    @staticmethod
    def grads(dy, a, b, y):
        return dy, -dy


@register_layer
class Mul(_Binary):
    """y = a ⊙ b with broadcasting (gating, scaling by a learned or computed factor)."""

    op = staticmethod(np.multiply)

    @staticmethod
    def grads(dy, a, b, y):
        return dy * b, dy * a


@register_layer
class Div(_Binary):
    """y = a / b with broadcasting (ONNX Div, e.g. attention scores by √d).

    dL/db = −dy ⊙ a / b² = −dy ⊙ y / b, from the forward's y (no second division of a).
    """

    op = staticmethod(np.divide)

    @staticmethod
    def grads(dy, a, b, y):
        g = dy / b
        return g, -g * y
