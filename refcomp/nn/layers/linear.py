"""Linear: y = x·Wᵀ + b.

Shapes: x (N, in), W (out, in), b (out,), y (N, out).

Backward (dy = dL/dy, shape (N, out)):

    dL/dx = dy · W          (N, in)
    dL/dW = dyᵀ · x         (out, in)     only for a trainable (Dense) weight
    dL/db = Σ_n dy[n, :]    (out,)

The weight is a :class:`refcomp.formats.WeightFormat`: forward calls
``W.matmul(x)``, so a quantized / sparse / factorized weight can replace the
Dense one. Backward needs W itself for dL/dx and uses ``W.to_dense()``; a
non-trainable format receives no gradient.

Given a QTensor input (inside an integer-only model), a layer with a QTensor
weight and ``output_qparams`` maps codes to codes in integers
(refcomp.nn.layers.quantize).
"""

from __future__ import annotations

import numpy as np

from ...checks import float_tensor, integer
from ...errors import ShapeError
from ...formats.base import WeightFormat
from ...formats.dense import Dense
from ...formats.qtensor import QTensor
from ..init import allocate, init_bias, init_weight
from ..module import Module, Parameter, _accumulate, as_rng, register_layer
from ...ops.integer_linear import check_requantize
from .quantize import activation_config, check_activation_qparams, integer_forward

__all__ = ["Linear"]


@register_layer
class Linear(Module):
    """Fully connected layer.

    Parameters
    ----------
    in_features, out_features : sizes.
    bias : add a learnable bias.
    rng : Generator or int seed for the initial weights; None gives zeros
        (used when the weights are loaded afterwards).
    init : one of refcomp.nn.init.INITS.
    dtype : float32 (default) or float64 (gradient checks).
    output_qparams : None, or the per-tensor QParams of the output codes when the layer
        runs on QTensor inputs (set by the integer-only transforms; saved in model files).
    requantize : how the int32 sums become output codes on QTensor inputs: "fixed_point"
        (gemmlowp, default) or "float" (ONNX QLinear* as onnxruntime runs it); saved in model files.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, rng=None,
                 init: str = "uniform_fan_in", dtype="float32", output_qparams=None,
                 requantize: str = "fixed_point"):
        self.in_features = integer(in_features, "in_features", minimum=1)
        self.out_features = integer(out_features, "out_features", minimum=1)
        dtype = np.dtype(dtype)
        shape = (self.out_features, self.in_features)
        if rng is None:
            w, b = allocate(shape, dtype), allocate(self.out_features, dtype)
        else:
            g = as_rng(rng)
            w = init_weight(shape, self.in_features, self.out_features, init, g, dtype)
            b = init_bias(self.out_features, self.in_features, init, g, dtype)
        self.weight: WeightFormat = Dense(w)
        self.bias = Parameter(b) if bias else None
        # the QParams of the output codes when the layer runs on QTensor inputs (integer-only model)
        self.output_qparams = None if output_qparams is None else check_activation_qparams(output_qparams,
                                                                                           "output_qparams")
        self.requantize = check_requantize(requantize)
        self._x = None

    accepts_input_grad = True
    requantize = "fixed_point"  # class default, as for output_qparams
    output_qparams = None       # set in __init__; the class default keeps copies made without it valid

    def config(self) -> dict:
        return {"in_features": self.in_features, "out_features": self.out_features,
                "bias": self.bias is not None, "dtype": str(self.weight_dtype()),
                **({} if self.output_qparams is None else {"output_qparams": activation_config(self.output_qparams)}),
                **({} if self.requantize == "fixed_point" else {"requantize": self.requantize})}

    def weight_dtype(self):
        return getattr(self.weight, "dtype", np.dtype(np.float32))

    def forward(self, x):
        if isinstance(x, QTensor):
            return integer_forward(self, x)
        x = float_tensor(x, "x", 2)
        if x.shape[1] != self.in_features:
            raise ShapeError("x", f"(N, {self.in_features})", f"shape {x.shape}")
        y = self.weight.matmul(x)
        if self.bias is not None:
            y += self.bias.data
        self._x = x
        return y

    def backward(self, dy, *, input_grad: bool = True):
        """dL/dx (None when ``input_grad`` is False: the first layer's dx is not needed)."""
        self._require_forward(self._x)
        x = self._x
        if dy.shape != (x.shape[0], self.out_features):
            raise ShapeError("dy", f"shape {(x.shape[0], self.out_features)}", dy.shape)
        if getattr(self.weight, "trainable", False):
            _accumulate(self.weight, dy.T @ x)
        if self.bias is not None:
            _accumulate(self.bias, dy.sum(axis=0))
        if not input_grad:
            return None
        return dy @ self.weight.to_dense()
