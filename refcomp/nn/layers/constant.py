"""Constant: a stored tensor as a graph value (ONNX Constant, or an initializer used as an operand).

Shapes: y = value, of the shape and dtype given at construction; the input x
is ignored.

A Graph node needs at least one input (that is how the graph knows where the
node sits), so a Constant takes one, typically the graph's first input, and
does not read it. Its value is a buffer: saved in model files, not trained
(a weight that should be trained belongs in a Linear, Conv2d, LayerNorm ...).

A 0-d value (a scalar such as √d) is kept as a (1,) buffer, because model
files store no 0-d tensors, and returned with its own shape ().

Backward: y does not depend on x, so dL/dx is None (no contribution), as for
Shape.
"""

from __future__ import annotations

import numpy as np

from ...checks import integer
from ...errors import DTypeError, ValidationError
from ..init import allocate
from ..module import Module, register_layer

__all__ = ["Constant"]

_DTYPES = ("float32", "float64", "int64", "int32", "bool")


@register_layer
class Constant(Module):
    """Outputs ``value`` (a buffer); built empty from ``shape`` and ``dtype`` when loading a file."""

    _buffer_names = ("value",)

    def __init__(self, value=None, *, shape=None, dtype=None):
        if value is None:
            if shape is None or not isinstance(shape, (list, tuple)):
                raise ValidationError("shape", "a list of sizes when value is None", repr(shape))
            dtype = "float32" if dtype is None else str(np.dtype(dtype))
            value = allocate([integer(s, "shape", minimum=0) for s in shape], dtype)
        value = np.array(value)      # a copy: the caller's array may change later
        if value.dtype.name not in _DTYPES:
            raise DTypeError("value", f"one of the dtypes {', '.join(_DTYPES)}", value.dtype)
        self.shape = value.shape
        self.value = value.reshape(value.shape or (1,))
        self._ran = None

    def config(self) -> dict:
        return {"shape": list(self.shape), "dtype": self.value.dtype.name}

    def forward(self, x=None):
        self._ran = True
        return self.value.reshape(self.shape)

    def backward(self, dy):
        """None: the output does not depend on the input."""
        self._require_forward(self._ran)
        return None
