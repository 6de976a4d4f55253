"""Small graph layers the importer needs around a transformer's attention mask.

A torch-exported BERT turns its ``attention_mask`` (N, T) into the additive
bias of the scores with ops on an *activation* (the mask is a graph input, so
nothing folds)::

    Unsqueeze(1, 2) → Cast(float) → Sub(1, m) → Mul(−10000 or finfo.min) → Add to the scores
    (or Equal(m, 0) → Where(·, min, 0) → Expand)

=========  ==========================================  ==========================================  =========
layer      forward                                     backward                                    ONNX
=========  ==========================================  ==========================================  =========
Unsqueeze  y = x with size-1 axes inserted at ``axes``  dL/dx = dy reshaped to x.shape              Unsqueeze
Cast       y = x as ``dtype``                           dy cast back when both are float, else None Cast
Equal      y = (a == b), bool, broadcasting             none (a comparison has no gradient)         Equal
Where      y = c ? a : b, broadcasting                  (None, dy where c, dy where not c), each    Where
                                                        summed to its operand's shape
Expand     y = x broadcast with the shape input         dL/dx = dy summed over the broadcast axes   Expand
                                                        (the shape input has none)
=========  ==========================================  ==========================================  =========

They are ordinary registered layers (saved in model files by name, like
refcomp.nn's) and are defined here, beside the importer, because only
imported graphs use them.
"""

from __future__ import annotations

import numpy as np

from ..errors import DTypeError, ShapeError, ValidationError
from ..nn.layers.arithmetic import unbroadcast
from ..nn.module import Module, register_layer

__all__ = ["Unsqueeze", "Cast", "Equal", "Where", "Expand", "CAST_DTYPES"]

#: the dtypes Cast produces (ONNX TensorProto names -> NumPy)
CAST_DTYPES = ("float32", "int64", "int32", "bool")


def _ints(value, argument):
    if not isinstance(value, (list, tuple)) or not value or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value):
        raise ValidationError(argument, "a non-empty list of ints", repr(value))
    return [int(v) for v in value]


def _broadcast(*shapes):
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        raise ShapeError("inputs", "shapes that broadcast", " and ".join(map(str, shapes))) from None


@register_layer
class Unsqueeze(Module):
    """Insert size-1 axes at ``axes`` (positions in the output, negative counted from its end)."""

    def __init__(self, axes):
        self.axes = _ints(axes, "axes")
        if len(set(self.axes)) != len(self.axes):
            raise ValidationError("axes", "distinct axes", repr(self.axes))
        self._shape = None

    def config(self) -> dict:
        return {"axes": self.axes}

    def forward(self, x):
        x = np.asarray(x)
        rank = x.ndim + len(self.axes)
        axes = sorted(a % rank if -rank <= a < rank else rank for a in self.axes)
        if axes and axes[-1] >= rank or len(set(axes)) != len(axes):
            raise ShapeError("x", f"a rank for which axes {self.axes} are valid", f"shape {x.shape}")
        self._shape = x.shape
        return np.expand_dims(x, tuple(axes))

    def backward(self, dy):
        self._require_forward(self._shape)
        return dy.reshape(self._shape)


@register_layer
class Cast(Module):
    """y = x converted to ``dtype`` (one of CAST_DTYPES)."""

    def __init__(self, dtype: str = "float32"):
        if str(dtype) not in CAST_DTYPES:
            raise DTypeError("dtype", f"one of {CAST_DTYPES}", repr(dtype))
        self.dtype = str(dtype)
        self._from = None

    def config(self) -> dict:
        return {"dtype": self.dtype}

    def forward(self, x):
        x = np.asarray(x)
        self._from = x.dtype
        return x.astype(self.dtype)

    def backward(self, dy):
        """dy cast back for a float-to-float cast; None (no gradient) from or to integers and bool."""
        self._require_forward(self._from)
        if self._from.kind == "f" and np.dtype(self.dtype).kind == "f":
            return dy.astype(self._from)
        return None


@register_layer
class Equal(Module):
    """y = (a == b) elementwise with broadcasting; inference only (no gradient)."""

    def __init__(self):
        self._ran = None

    def forward(self, a, b):
        a, b = np.asarray(a), np.asarray(b)
        _broadcast(a.shape, b.shape)
        self._ran = True
        return a == b

    def backward(self, dy):
        """(None, None): a comparison has no gradient."""
        self._require_forward(self._ran)
        return None, None


@register_layer
class Where(Module):
    """y = a where cond else b (cond bool), with broadcasting."""

    def __init__(self):
        self._cache = None

    def forward(self, cond, a, b):
        cond, a, b = np.asarray(cond), np.asarray(a), np.asarray(b)
        if cond.dtype != np.bool_:
            raise DTypeError("cond", "a bool array (e.g. Equal's output)", cond.dtype)
        if a.dtype != b.dtype:
            raise DTypeError("b", f"the dtype of a ({a.dtype})", b.dtype)
        y_shape = _broadcast(cond.shape, a.shape, b.shape)
        self._cache = (cond, a.shape, b.shape, y_shape)
        return np.where(cond, a, b)

    def backward(self, dy):
        self._require_forward(self._cache)
        cond, a_shape, b_shape, y_shape = self._cache
        if dy.shape != y_shape:
            raise ShapeError("dy", f"shape {y_shape}", dy.shape)
        zero = np.zeros((), dy.dtype)
        return (None, unbroadcast(np.where(cond, dy, zero), a_shape),
                unbroadcast(np.where(cond, zero, dy), b_shape))


@register_layer
class Expand(Module):
    """y = x broadcast together with the shape given as the second input (ONNX Expand)."""

    def __init__(self):
        self._cache = None

    def forward(self, x, shape):
        x, shape = np.asarray(x), np.asarray(shape)
        if shape.dtype.kind not in "iu" or shape.ndim != 1 or (shape < 0).any():
            raise DTypeError("shape", "a 1-D array of sizes >= 0", f"{shape.dtype} {shape.tolist()}")
        y_shape = _broadcast(x.shape, tuple(int(d) for d in shape))
        self._cache = (x.shape, y_shape)
        return np.array(np.broadcast_to(x, y_shape))

    def backward(self, dy):
        self._require_forward(self._cache)
        x_shape, y_shape = self._cache
        if dy.shape != y_shape:
            raise ShapeError("dy", f"shape {y_shape}", dy.shape)
        return unbroadcast(dy, x_shape), None
