"""The integer-only model: QuantizeLinear / DequantizeLinear at its borders, QTensors inside.

An integer-only model is an ordinary model (Jacob et al. 2018 §2; PyTorch's
quantized tensors; ONNX's QuantizeLinear / DequantizeLinear pair):

* ``QuantizeLinear(qparams)`` turns the float input into a
  :class:`refcomp.formats.QTensor` — the codes with their (s, z).
* Between the borders every activation is a QTensor. A Linear or Conv2d
  whose weight is a per-output-channel symmetric QTensor and which holds the
  ``output_qparams`` of its activation maps input codes to output codes in
  integers (:func:`integer_forward`, eqs. I1-I4 of
  refcomp/ops/integer_linear.py). ReLU, MaxPool2d, Flatten and Dropout work
  on the codes themselves (each says why that is exact).
* ``DequantizeLinear()`` turns the last QTensor back into float32.

So the integer model is the float model with its weights swapped for
QTensors and activation parameters set; no parallel class tree.
"""

from __future__ import annotations

import numpy as np

from ...errors import DTypeError, ValidationError
from ...formats.qtensor import QTensor
from ...ops.integer_linear import check_requantize, integer_conv2d, integer_linear, requantization_params
from ...ops.matmul_integer import pack_weight
from ...quant import QParams, dequantize, quantize
from ..module import Module, register_layer

__all__ = ["QuantizeLinear", "DequantizeLinear", "integer_forward", "check_activation_qparams",
           "activation_config"]


def check_activation_qparams(qparams, argument: str) -> QParams:
    """An activation's QParams: per tensor, uint8 or int8 (what eqs. I1-I4 assume).

    Also accepts the JSON form a model file stores, {"scale", "zero_point",
    "dtype"} (:func:`activation_config`): the float32 scale survives JSON
    exactly (a double holds every float32).
    """
    if isinstance(qparams, dict):
        if set(qparams) != {"scale", "zero_point", "dtype"} or qparams["dtype"] not in ("uint8", "int8"):
            raise ValidationError(argument, "{'scale', 'zero_point', 'dtype': 'uint8' | 'int8'}", repr(qparams))
        dt = np.dtype(qparams["dtype"])
        zp = qparams["zero_point"]
        if isinstance(zp, bool) or not isinstance(zp, int) or not np.iinfo(dt).min <= zp <= np.iinfo(dt).max:
            raise ValidationError(f"{argument}['zero_point']", f"an int in the {dt} range", repr(zp))
        scale = qparams["scale"]
        if isinstance(scale, bool) or not isinstance(scale, (int, float)):
            raise ValidationError(f"{argument}['scale']", "a number", repr(scale))
        qparams = QParams(np.float32(scale), np.array(zp, dt), qparams["dtype"])
    if not isinstance(qparams, QParams):
        raise ValidationError(argument, "a refcomp.quant.QParams", type(qparams).__name__)
    if not qparams.per_tensor or qparams.dtype.name not in ("uint8", "int8"):
        raise ValidationError(argument, "per-tensor uint8 or int8 QParams", repr(qparams))
    return qparams


def activation_config(qparams: QParams) -> dict:
    """The JSON form of an activation's QParams (what a model file's graph holds)."""
    return {"scale": float(np.asarray(qparams.scale, np.float32).reshape(())),
            "zero_point": int(np.asarray(qparams.zero_point).reshape(())), "dtype": qparams.dtype.name}


@register_layer
class QuantizeLinear(Module):
    """float x -> QTensor(quantize(x, qparams), qparams) (ONNX QuantizeLinear).

    ``qparams``: per-tensor uint8 / int8 QParams, or their JSON form (check_activation_qparams).
    """

    def __init__(self, qparams):
        self.qparams = check_activation_qparams(qparams, "qparams")

    def config(self) -> dict:
        return {"qparams": activation_config(self.qparams)}

    def forward(self, x):
        if isinstance(x, QTensor) or np.asarray(x).dtype.kind != "f":
            got = "a QTensor" if isinstance(x, QTensor) else f"dtype {np.asarray(x).dtype}"
            raise DTypeError("x", "a float array (QuantizeLinear quantizes the model input)", got)
        return QTensor(quantize(np.asarray(x, dtype=np.float32), self.qparams), self.qparams)

    def backward(self, dy):
        raise ValidationError("QuantizeLinear", "inference only (train the float or QAT model)", "backward()")

    def __repr__(self) -> str:
        return f"QuantizeLinear({self.qparams!r})"


@register_layer
class DequantizeLinear(Module):
    """QTensor -> float32 (q − z)·s (ONNX DequantizeLinear); codes and scale come with the QTensor."""

    def forward(self, x):
        if not isinstance(x, QTensor):
            raise DTypeError("x", "a QTensor (the codes of the layer before)", type(x).__name__)
        return dequantize(x.data, x.qparams)

    def backward(self, dy):
        raise ValidationError("DequantizeLinear", "inference only (train the float or QAT model)", "backward()")


def _weight_codes(layer, name: str):
    """(int8 codes, float32 scales (O,)) of a per-output-channel symmetric QTensor weight."""
    w = layer.weight
    if not isinstance(w, QTensor):
        raise ValidationError(f"{name}.weight", "a QTensor for integer inputs", type(w).__name__)
    qp = w.qparams
    if qp.dtype.name != "int8" or qp.block_size is not None or np.any(qp.zero_point != 0) \
            or not (qp.per_axis and qp.axis == 0 or qp.per_tensor):
        raise ValidationError(f"{name}.weight", "int8 codes, symmetric (z = 0), per tensor or per output channel",
                              repr(qp))
    scales = np.broadcast_to(np.asarray(qp.scale, np.float32).reshape(-1), (w.shape[0],))
    return w.data, np.ascontiguousarray(scales)


def integer_forward(layer, x: QTensor, *, conv: dict | None = None) -> QTensor:
    """A Linear (``conv=None``) or Conv2d (``conv`` = strides, pads (ph, pw), dilations, group) on codes.

    The layer needs a QTensor weight (see :func:`_weight_codes`) and its
    ``output_qparams``; the bias is the layer's float bias, quantized to int32
    at s_x·s_w (eq. I2), so a corrected bias takes effect without a rebuild.
    The layer's ``requantize`` ("fixed_point", default: gemmlowp, eq. I4; or
    "float": ONNX QLinearMatMul / QLinearConv as onnxruntime runs them, eq. I4')
    chooses how the int32 sums become output codes.
    """
    name = type(layer).__name__
    codes, s_w = _weight_codes(layer, name)
    y_qp = layer.output_qparams
    if y_qp is None:
        raise ValidationError(f"{name}.output_qparams", "QParams for integer inputs (set by quantize_static)", None)
    x_qp = check_activation_qparams(x.qparams, "x.qparams")
    bias = None if layer.bias is None else layer.bias.data
    method = check_requantize(getattr(layer, "requantize", "fixed_point"), f"{name}.requantize")
    q_b, m, sh = requantization_params(x_qp.scale, s_w, y_qp.scale, bias, name=name, method=method)
    common = dict(y_dtype=y_qp.dtype, name=name)
    if conv is None:
        w_t = layer.__dict__.get("_codes_t")
        if w_t is None or w_t[0] is not codes:          # (K, O) once per weight: B of MatMulInteger,
            w_t = layer._codes_t = (codes, pack_weight(codes.T))  # packed once, not per call
        q = integer_linear(x.data, x_qp.zero_point, w_t[1], q_b, m, sh, y_qp.zero_point, **common)
    else:
        q = integer_conv2d(x.data, x_qp.zero_point, codes, q_b, m, sh, y_qp.zero_point, **conv, **common)
    return QTensor(q, y_qp)
