"""Layers that move values without arithmetic: Concat, Reshape, Transpose, Shape.

=========  ========================================  ===============================  =========
layer      forward                                   backward                         ONNX
=========  ========================================  ===============================  =========
Concat     y = concat(x₁, ..., x_k; axis)            dL/dxᵢ = the slice of dy xᵢ      Concat
                                                     filled (a tuple of k)
Reshape    y = x reshaped to ``shape``               dL/dx = dy reshaped to x.shape   Reshape
Transpose  y = xᵀ: y.shape[i] = x.shape[perm[i]]     dL/dx = dy transposed by perm⁻¹  Transpose
Shape      y = x.shape as int64 (rank,)              none (y does not depend on the   Shape
                                                     values of x)
=========  ========================================  ===============================  =========

Reshape takes its target either from its ``shape`` attribute or, as ONNX does,
from a second input holding it (int64, e.g. the output of a Shape node), which
lets a graph restore a shape only known at run time:
``Reshape((-1, d))`` turns (N, T, d) tokens into (N·T, d) rows for a Linear,
and ``Reshape()(rows, Shape()(tokens))`` turns them back. In the target, -1
(at most once) is inferred from the element count and 0 copies the input's
size on that axis (ONNX ``allowzero=0``).
"""

from __future__ import annotations

import numpy as np

from ...checks import float_tensor
from ...errors import DTypeError, ShapeError, ValidationError
from ..module import Module, register_layer

__all__ = ["Concat", "Reshape", "Transpose", "Shape"]

_ANY_RANK = tuple(range(0, 9))


def _int_list(value, argument: str) -> list[int]:
    if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value):
        raise ValidationError(argument, "a list of ints", repr(value))
    return [int(v) for v in value]


@register_layer
class Concat(Module):
    """Join k >= 1 inputs along ``axis``; the other axes must agree."""

    def __init__(self, axis: int = 1):
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise ValidationError("axis", "an int", repr(axis))
        self.axis = int(axis)
        self._sizes = None

    def config(self) -> dict:
        return {"axis": self.axis}

    def forward(self, *xs):
        if not xs:
            raise ValidationError("inputs", "at least one array", "none")
        xs = [float_tensor(x, f"inputs[{i}]", tuple(range(1, 9))) for i, x in enumerate(xs)]
        nd = xs[0].ndim
        if not -nd <= self.axis < nd:
            raise ShapeError("inputs[0]", f"a rank that has axis {self.axis}", f"shape {xs[0].shape}")
        ax = self.axis % nd
        for i, x in enumerate(xs[1:], 1):
            if x.ndim != nd or x.shape[:ax] + x.shape[ax + 1:] != xs[0].shape[:ax] + xs[0].shape[ax + 1:]:
                raise ShapeError(f"inputs[{i}]", f"shape {xs[0].shape} except on axis {self.axis}",
                                 f"shape {x.shape}")
        y = np.concatenate(xs, axis=ax)
        self._sizes = (ax, [x.shape[ax] for x in xs], y.shape)
        return y

    def backward(self, dy):
        self._require_forward(self._sizes)
        ax, sizes, y_shape = self._sizes
        if dy.shape != y_shape:
            raise ShapeError("dy", f"shape {y_shape}", dy.shape)
        return tuple(np.split(dy, np.cumsum(sizes)[:-1], axis=ax))


@register_layer
class Reshape(Module):
    """Reshape to ``shape`` (an attribute) or to the values of a second input (``shape=None``)."""

    def __init__(self, shape=None):
        if shape is not None:
            shape = _int_list(shape, "shape")
            if any(s < -1 for s in shape) or shape.count(-1) > 1:
                raise ValidationError("shape", "sizes >= 0 with at most one -1", repr(shape))
        self.shape = shape
        self._cache = None

    def config(self) -> dict:
        return {"shape": self.shape}

    def forward(self, x, shape=None):
        x = np.asarray(x)
        if (shape is None) == (self.shape is None):
            raise ValidationError("shape", "exactly one of the attribute and the second input",
                                  "both" if shape is not None else "neither")
        if shape is None:
            target = self.shape
        else:
            shape = np.asarray(shape)
            if shape.dtype.kind not in "iu" or shape.ndim != 1:
                raise DTypeError("shape", "a 1-D integer array", f"{shape.dtype} {shape.shape}")
            target = [int(s) for s in shape]
        # 0 copies the input's size on that axis (ONNX allowzero=0); -1 is left to NumPy
        target = [x.shape[i] if s == 0 and i < x.ndim else s for i, s in enumerate(target)]
        try:
            y = x.reshape(target)
        except ValueError:
            raise ShapeError("x", f"{x.size} elements fitting shape {target}", f"shape {x.shape}") from None
        self._cache = (x.shape, y.shape, shape is not None)
        return y

    def backward(self, dy):
        self._require_forward(self._cache)
        x_shape, y_shape, two_inputs = self._cache
        if dy.shape != y_shape:
            raise ShapeError("dy", f"shape {y_shape}", dy.shape)
        dx = dy.reshape(x_shape)
        return (dx, None) if two_inputs else dx


@register_layer
class Transpose(Module):
    """Permute the axes: y.shape[i] = x.shape[perm[i]]; perm=None reverses them (ONNX default)."""

    def __init__(self, perm=None):
        if perm is not None:
            perm = _int_list(perm, "perm")
            if sorted(perm) != list(range(len(perm))):
                raise ValidationError("perm", "a permutation of 0..rank-1", repr(perm))
        self.perm = perm
        self._perm = None

    def config(self) -> dict:
        return {"perm": self.perm}

    def forward(self, x):
        x = np.asarray(x)
        perm = list(range(x.ndim))[::-1] if self.perm is None else self.perm
        if len(perm) != x.ndim:
            raise ShapeError("x", f"rank {len(perm)} (the length of perm)", f"shape {x.shape}")
        self._perm = perm
        return x.transpose(perm)

    def backward(self, dy):
        self._require_forward(self._perm)
        if dy.ndim != len(self._perm):
            raise ShapeError("dy", f"rank {len(self._perm)}", f"shape {dy.shape}")
        return dy.transpose(np.argsort(self._perm))


@register_layer
class Shape(Module):
    """The shape of x as an int64 vector; it carries no gradient."""

    def __init__(self):
        self._ran = None

    def forward(self, x):
        x = np.asarray(x)
        self._ran = True
        return np.asarray(x.shape, dtype=np.int64)

    def backward(self, dy):
        """None: the output depends on x's shape only, never on its values."""
        self._require_forward(self._ran)
        return None
