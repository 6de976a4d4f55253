"""Dynamic quantization: int8 weights stored, activations quantized per batch at run time.

For each Conv2d / Linear (docs/gptq_and_ptq.md §6; onnxruntime's
"dynamic quantization", MatMulInteger + DynamicQuantizeLinear graph)::

    (q_x, s_x, z_x) = DynamicQuantizeLinear(x)        uint8, range of this batch incl. 0
    acc             = MatMulInteger(q_x, q_wᵀ, z_x, 0)   (ConvInteger for Conv2d)  int32
    y               = float32(acc) · (s_x · s_w[o]) + b[o]                  (D1)

Weights: symmetric per output channel, int8 in [−127, 127] (ptq.quantize_weight_per_channel).
No calibration is needed; the output stays float, so there is no output scale.
"""

from __future__ import annotations

import copy

import numpy as np

from ...errors import ShapeError, ValidationError
from ...nn.layers import Conv2d, Linear
from ...nn.module import Module, Sequential
from ...ops import conv_integer, dynamic_quantize_linear, matmul_integer
from .model_graph import prepare
from .ptq import _conv_attrs, quantize_weight_per_channel

__all__ = ["DynamicQuantLinear", "DynamicQuantConv2d", "quantize_dynamic"]


class _DynamicBase(Module):
    def __init__(self, layer):
        w = layer.weight.to_dense()
        self.weight_codes, self.weight_scale = quantize_weight_per_channel(w)
        self.bias_data = None if layer.bias is None else np.asarray(layer.bias.data, dtype=np.float32)

    def _finish(self, acc, s_x, channel_axis):
        shape = [1] * acc.ndim
        shape[channel_axis] = -1
        scale = (np.float32(s_x) * self.weight_scale).reshape(shape)
        y = acc.astype(np.float32) * scale
        if self.bias_data is not None:
            y = y + self.bias_data.reshape(shape)
        return y

    def backward(self, dy):
        raise ValidationError(type(self).__name__, "inference only", "backward()")

    @property
    def nbytes(self) -> int:
        b = 0 if self.bias_data is None else self.bias_data.nbytes
        return int(self.weight_codes.size + self.weight_scale.nbytes + b)


class DynamicQuantLinear(_DynamicBase):
    """Linear with int8 weights and per-batch uint8 activations (eq. D1)."""

    def __init__(self, layer: Linear):
        super().__init__(layer)
        self._wt = np.ascontiguousarray(self.weight_codes.T)

    def forward(self, x):
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self._wt.shape[0]:
            raise ShapeError("x", f"(N, {self._wt.shape[0]})", x.shape)
        q, s, z = dynamic_quantize_linear(x)
        return self._finish(matmul_integer(q, self._wt, z, None), s, 1)


class DynamicQuantConv2d(_DynamicBase):
    """Conv2d with int8 weights and per-batch uint8 activations (eq. D1)."""

    def __init__(self, layer: Conv2d):
        super().__init__(layer)
        self.attrs = _conv_attrs(layer)

    def forward(self, x):
        x = np.asarray(x, dtype=np.float32)
        q, s, z = dynamic_quantize_linear(x)
        return self._finish(conv_integer(q, self.weight_codes, z, None, **self.attrs), s, 1)


def _replace(seq: Sequential) -> Sequential:
    for name, layer in list(seq.layers.items()):
        if isinstance(layer, Linear):
            seq[name] = DynamicQuantLinear(layer)
        elif isinstance(layer, Conv2d):
            seq[name] = DynamicQuantConv2d(layer)
        elif isinstance(layer, Sequential):
            _replace(layer)
    return seq


def quantize_dynamic(model) -> Module:
    """A copy of ``model`` (BatchNorm folded) with every Conv2d / Linear dynamically quantized."""
    m = prepare(model)
    if not isinstance(m, Sequential):
        raise ValidationError("model", "a refcomp.nn.Sequential", type(model).__name__)
    return _replace(copy.copy(m))
