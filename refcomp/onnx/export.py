"""Export a refcomp model graph to an ONNX file: float, QDQ or QOperator style.

``export(model, path, style=..., input_shape=..., opset=...)`` walks the
model (Sequential / Graph, nested) once and emits one ONNX node group per
layer. What each layer becomes depends on the style and on what flows into
it: a float tensor, or *codes* (uint8 / int8 with a per-tensor (s, z)),
which is what the integer-only model and the integer islands pass between
their QuantizeLinear and DequantizeLinear layers (docs/architecture.md §3).

=====================  ===========================================================================
style                  emitted for a Conv2d / Linear on codes (integer layer)
=====================  ===========================================================================
"float"                (integer models refused) Conv / MatMul + Add, weights dense (to_dense())
"qdq"                  DequantizeLinear(x codes), DequantizeLinear(int8 W, axis = output channel),
                       DequantizeLinear(int32 bias, scale s_x·s_w), Conv / MatMul + Add, then
                       QuantizeLinear(s_y, z_y): the float-op-between-QDQ form (ONNX "QDQ")
"qoperator"            QLinearConv (int32 bias input) for a Conv2d; MatMulInteger + Add(int32 bias)
                       + the float32 requantization Cast·Mul·Round·Add·Clip·Cast for a Linear
                       (not QLinearMatMul: no bias input, and neither runtime computes it as
                       eq. I4', docs/deviations.md D3, D6)
=====================  ===========================================================================

Weights in other formats: a QTensor on a float layer (weight-only RTN / GPTQ)
is a DequantizeLinear of its codes (per tensor, per axis, or blocked with
``block_size``, opset >= 21) in the "qdq" and "qoperator" styles;
DynamicQuantized becomes DynamicQuantizeLinear + MatMulInteger / ConvInteger
+ Cast + Mul(s_x·s_w) + Add(bias) in "qoperator" style (eq. D1 of
refcomp/formats/dynamic.py, node for node) and DynamicQuantizeLinear +
DequantizeLinear around a float MatMul / Conv in "qdq" style; every other
format (Dense, CSRMatrix, LowRank, Clustered, HalfPrecision, PowerOfTwo) is
written dense, float32, from ``to_dense()`` — CSR included: onnxruntime
1.32 runs a MatMul whose B is a sparse initializer, but
``onnx.checker.check_model(full_check=True)`` refuses the model (shape
inference does not see a sparse initializer's shape: "Input tensors of
wrong rank (0)") and onnx.reference 1.23 cannot read it ("SparseTensorProto
has no data_location field"), so the export would fail its own contract
(docs/onnx.md, "Sparse weights").

Numerics (the contract, docs/onnx.md "Export"): the QOperator graph of an
integer model made with ``requantize="float"`` computes eqs. (I1), (I2),
(I3'), (I4') of refcomp/ops/integer_linear.py, so its codes equal refcomp's
bit for bit; the QDQ graph computes float32 dequantize -> float op ->
QuantizeLinear, whose codes differ from the integer model's only where a
float32 sum lands on the other side of a rounding boundary.

Opsets 13-23 (default 21): per-axis DequantizeLinear needs 13, blocked needs
21, Gelu 20, LayerNormalization 17; ir_version 10 (onnxruntime 1.32 reads it).

Sources: ONNX operator specs (QuantizeLinear-21, DequantizeLinear-21,
QLinearConv-10, QLinearMatMul-21, MatMulInteger-10, ConvInteger-10,
DynamicQuantizeLinear-11); onnxruntime.quantization's QDQ and QOperator
formats.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .._version import __version__
from ..errors import DTypeError, MissingDependencyError, ValidationError
from ..io.atomic import write_atomic
from ..formats.dynamic import DynamicQuantized
from ..formats.qtensor import QTensor
from ..formats.static import StaticQuantized
from ..nn.graph import Graph
from ..nn.layers import (GELU, Add, AvgPool2d, BatchNorm1d, BatchNorm2d, BertEmbeddings, Concat, Conv2d,
                         DequantizeLinear, Dropout, Embedding, Flatten, GlobalAvgPool2d, LayerNorm, Linear, MatMul,
                         MaxPool2d, Mul, MultiHeadAttention, QuantizeLinear, ReLU, ReLU6, Reshape, Shape, Sigmoid, Softmax, Tanh,
                         Transpose)
from ..nn.module import Module, Sequential
from ..ops.requantize import real_multiplier
from ..quant import QParams

__all__ = ["export", "STYLES", "OPSETS"]

STYLES = ("float", "qdq", "qoperator")
OPSETS = range(13, 24)
_IR_VERSION = 10


def _onnx():
    try:
        import onnx
    except ImportError:  # pragma: no cover - the test environment has it
        raise MissingDependencyError("refcomp.onnx", "onnx", "interop") from None
    return onnx


@dataclass(frozen=True)
class _Value:
    """A tensor of the graph: its name, and the per-tensor QParams when it holds codes (None: float32)."""
    name: str
    qparams: QParams | None = None


class _Builder:
    """Collects nodes and initializers with unique names; one per export."""

    def __init__(self, style: str, opset: int):
        self.onnx = _onnx()
        self.style, self.opset = style, opset
        self.nodes, self.initializers, self._used = [], [], set()
        self.dequantized = {}   # output of a DequantizeLinear layer -> the codes it read
        self.input_dtypes = {}  # graph input name -> its NumPy dtype

    def name(self, base: str) -> str:
        base = base.replace("/", ".") or "t"
        n, i = base, 1
        while n in self._used:
            n, i = f"{base}_{i}", i + 1
        self._used.add(n)
        return n

    def const(self, base: str, array) -> str:
        """An initializer holding ``array`` exactly (dtype kept)."""
        n = self.name(base)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.asarray(array), n))
        return n

    def node(self, op: str, inputs, base: str, n_out: int = 1, **attrs):
        outs = [self.name(base if n_out == 1 else f"{base}_{k}") for k in range(n_out)]
        self.nodes.append(self.onnx.helper.make_node(op, list(inputs), outs, name=self.name(f"{base}.{op}"),
                                                     **attrs))
        return outs[0] if n_out == 1 else outs

    # -- quantization nodes ---------------------------------------------------------------------
    def quantize(self, x: str, qp: QParams, base: str) -> _Value:
        """QuantizeLinear(x, s, z) -> codes (per tensor: the activations of an integer layer)."""
        s, z = self.qparams_consts(qp, base)
        return _Value(self.node("QuantizeLinear", [x, s, z], base), qp)

    def dequantize(self, v: _Value, base: str) -> str:
        s, z = self.qparams_consts(v.qparams, base)
        return self.node("DequantizeLinear", [v.name, s, z], base)

    def qparams_consts(self, qp: QParams, base: str):
        return (self.const(f"{base}.scale", np.asarray(qp.scale, np.float32)),
                self.const(f"{base}.zero_point", np.asarray(qp.zero_point).astype(qp.dtype.np_dtype)))


# -- weights ----------------------------------------------------------------------------------------

def _check_weight(layer, name: str):
    w = layer.weight
    if type(w).__name__ == "FakeQuantized":     # compress.quantize.qat lives above this layer: by name
        raise ValidationError(f"{name}.weight", "an inference weight (convert QAT with to_integer first)",
                              "a training-time FakeQuantized weight")
    return w


def _dense_weight(w, shape) -> np.ndarray:
    """The float32 weight in the layer's logical shape (a conv kernel stored as its im2col matrix reshaped)."""
    return np.asarray(w.to_dense(), np.float32).reshape(shape)


def _weight_dq(b: _Builder, qt: QTensor, shape, name: str, *, transpose: bool) -> str:
    """DequantizeLinear of a QTensor weight; ``transpose``: the (out, in) matrix as MatMul's (in, out) B."""
    qp = qt.qparams
    if qp.dtype.name not in ("int8", "uint8"):
        raise DTypeError(f"{name}.weight", "int8 or uint8 codes (the QDQ export writes 8-bit initializers)",
                         qp.dtype.name)
    codes = np.asarray(qt.data).astype(qp.dtype.np_dtype)
    scale = np.asarray(qp.scale, np.float32)
    zp = np.asarray(qp.zero_point).astype(qp.dtype.np_dtype)
    attrs = {}
    if qp.per_block:
        if b.opset < 21:
            raise ValidationError("opset", ">= 21 for blocked weights (DequantizeLinear-21 block_size)", b.opset)
        if len(codes.shape) != 2:
            raise ValidationError(f"{name}.weight", "a 2-D weight for blocked quantization", codes.shape)
        attrs = {"axis": 1 - qp.axis if transpose else qp.axis, "block_size": qp.block_size}
        if transpose:
            codes, scale, zp = codes.T, scale.T, zp.T
    else:
        codes = codes.reshape(shape)
        if transpose:
            codes = codes.T
        if qp.per_axis:
            if qp.axis != 0:
                raise ValidationError(f"{name}.weight", "per-axis QParams along the output channel (axis 0)", qp.axis)
            attrs = {"axis": 1 if transpose else 0}
    return b.node("DequantizeLinear", [b.const(f"{name}.weight_q", np.ascontiguousarray(codes)),
                                       b.const(f"{name}.weight_scale", scale),
                                       b.const(f"{name}.weight_zero_point", zp)], f"{name}.weight", **attrs)


def _float_weight(b: _Builder, layer, shape, name: str, *, transpose: bool) -> str:
    """The weight as a float tensor of the graph: an initializer, or a DequantizeLinear of codes."""
    w = _check_weight(layer, name)
    if isinstance(w, QTensor) and b.style != "float":
        return _weight_dq(b, w, shape, name, transpose=transpose)
    dense = _dense_weight(w, shape)
    return b.const(f"{name}.weight", np.ascontiguousarray(dense.T if transpose else dense))


def _conv_attrs(layer: Conv2d) -> dict:
    ph, pw = layer.padding
    return {"kernel_shape": list(layer.kernel_size), "strides": list(layer.stride), "pads": [ph, pw, ph, pw],
            "dilations": list(layer.dilation), "group": layer.groups}


def _conv_shape(layer: Conv2d):
    return (layer.out_channels, layer.in_channels // layer.groups, *layer.kernel_size)


# -- layers -----------------------------------------------------------------------------------------

def _float_compute(b: _Builder, layer, x: str, name: str) -> str:
    """Conv (W, B) or MatMul + Add on a float tensor; a DynamicQuantized weight runs eq. D1."""
    w = _check_weight(layer, name)
    if isinstance(w, DynamicQuantized):
        return _dynamic(b, layer, w, x, name)
    if isinstance(w, StaticQuantized):
        return _static_input(b, layer, w, x, name)
    if isinstance(layer, Conv2d):
        wn = _float_weight(b, layer, _conv_shape(layer), name, transpose=False)
        ins = [x, wn] + ([] if layer.bias is None else [b.const(f"{name}.bias", np.asarray(layer.bias.data, np.float32))])
        return b.node("Conv", ins, name, **_conv_attrs(layer))
    y = b.node("MatMul", [x, _float_weight(b, layer, (layer.out_features, layer.in_features), name, transpose=True)],
               f"{name}.matmul")
    if layer.bias is None:
        return y
    return b.node("Add", [y, b.const(f"{name}.bias", np.asarray(layer.bias.data, np.float32))], name)


def _reduce(b: _Builder, op: str, x: str, name: str) -> str:
    """Reduce{Min,Max} over the last axis of a matrix, kept as a column (axes: an attribute before opset 18)."""
    if b.opset >= 18:
        return b.node(op, [x, b.const(f"{name}.axes", np.asarray([1], np.int64))], name, keepdims=1)
    return b.node(op, [x], name, axes=[1], keepdims=1)


def _dynamic_rows(b: _Builder, x: str, name: str):
    """refcomp.ops.dynamic_quantize_rows on the (M, K) matrix x, op for op in float32:
    (codes uint8 (M, K), scale float32 (M, 1), zero point uint8 (M,))."""
    f32 = lambda v, k: b.const(f"{name}.{k}", np.float32(v))   # noqa: E731
    zero = f32(0, "zero")
    r_max = b.node("Max", [_reduce(b, "ReduceMax", x, f"{name}.row_max"), zero], f"{name}.r_max")
    r_min = b.node("Min", [_reduce(b, "ReduceMin", x, f"{name}.row_min"), zero], f"{name}.r_min")
    span = b.node("Where", [b.node("Equal", [r_max, r_min], f"{name}.flat"), f32(1, "one"),
                            b.node("Sub", [r_max, r_min], f"{name}.range")], f"{name}.span")
    scale = b.node("Div", [span, f32(255, "qmax")], f"{name}.scale")
    zp = b.node("Round", [b.node("Clip", [b.node("Sub", [zero, b.node("Div", [r_min, scale], f"{name}.min_steps")],
                                                 f"{name}.zp_real"), zero, f32(255, "zp_max")], f"{name}.zp_clip")],
                f"{name}.zp")
    q = b.node("Clip", [b.node("Add", [b.node("Round", [b.node("Div", [x, scale], f"{name}.steps")], f"{name}.rounded"),
                                       zp], f"{name}.shifted"), zero, f32(255, "q_max")], f"{name}.clipped")
    u8 = b.onnx.TensorProto.UINT8
    zp_rows = b.node("Reshape", [b.node("Cast", [zp], f"{name}.zp_u8", to=u8),
                                 b.const(f"{name}.rows", np.asarray([-1], np.int64))], f"{name}.zp_rows")
    return b.node("Cast", [q], f"{name}.codes", to=u8), scale, zp_rows


def _integer_weight(qt: QTensor):
    """(codes (out, ...) in the QTensor's dtype, zero point: a scalar when every output channel's agrees,
    else one per output channel) for MatMulInteger / ConvInteger. One scalar when it can be: onnxruntime's
    ConvInteger takes only a scalar w_zero_point."""
    qp = qt.qparams
    codes = np.asarray(qt.data).astype(qp.dtype.np_dtype)
    zp = np.asarray(qp.zero_point).astype(qp.dtype.np_dtype).reshape(-1)
    zp = zp[:1].reshape(()) if np.all(zp == zp[0]) else np.ascontiguousarray(np.broadcast_to(zp, (codes.shape[0],)))
    return codes, zp


def _dynamic_per_token(b: _Builder, layer, w: DynamicQuantized, x: str, name: str) -> str:
    """Eq. D2 of refcomp.formats.dynamic: x as rows (M, K), per-row codes, MatMulInteger with the (M,)
    zero point, y = f32(acc) · (s_x[:, None] · s_w), back to x's leading shape."""
    qp = w.weight.qparams
    o, k = w.shape
    shape = b.node("Shape", [x], f"{name}.x_shape")
    rows = b.node("Reshape", [x, b.const(f"{name}.as_rows", np.asarray([-1, k], np.int64))], f"{name}.x_rows")
    q_x, s_x, z_x = _dynamic_rows(b, rows, f"{name}.x_q")
    codes, zp = _integer_weight(w.weight)
    codes = np.ascontiguousarray(codes.T)
    # Σ_k (a − z_a)(b − z_b) = Σ_k a·(b − z_b) − z_a · Σ_k (b − z_b): onnxruntime's MatMulInteger takes
    # only a scalar a_zero_point, so the per-row one is applied after, exactly, in int32
    acc = b.node("MatMulInteger", [q_x, b.const(f"{name}.weight_q", codes), b.const(f"{name}.zero_u8", np.uint8(0)),
                                   b.const(f"{name}.weight_zero_point", zp)], f"{name}.acc_a")
    col_sums = (codes.astype(np.int64) - zp.astype(np.int64)).sum(axis=0).astype(np.int32)
    z_a = b.node("Cast", [z_x], f"{name}.zp_i32", to=b.onnx.TensorProto.INT32)
    shift = b.node("Mul", [b.node("Unsqueeze", [z_a, b.const(f"{name}.col_axis", np.asarray([1], np.int64))],
                                  f"{name}.zp_col"), b.const(f"{name}.weight_col_sums", col_sums)], f"{name}.zp_shift")
    acc = b.node("Sub", [acc, shift], f"{name}.acc")
    s_w = np.ascontiguousarray(np.broadcast_to(np.asarray(qp.scale, np.float32).reshape(-1), (o,)))
    s = b.node("Mul", [s_x, b.const(f"{name}.weight_scale", s_w)], f"{name}.scale")
    y = b.node("Mul", [b.node("Cast", [acc], f"{name}.acc_f", to=b.onnx.TensorProto.FLOAT), s], f"{name}.y")
    if layer.bias is not None:
        y = b.node("Add", [y, b.const(f"{name}.bias", np.asarray(layer.bias.data, np.float32))], f"{name}.biased")
    lead = b.node("Slice", [shape, b.const(f"{name}.lead_start", np.asarray([0], np.int64)),
                            b.const(f"{name}.lead_end", np.asarray([-1], np.int64))], f"{name}.lead")
    out_shape = b.node("Concat", [lead, b.const(f"{name}.out_features", np.asarray([o], np.int64))],
                       f"{name}.out_shape", axis=0)
    return b.node("Reshape", [y, out_shape], name)


def _static_input(b: _Builder, layer, w: StaticQuantized, x: str, name: str) -> str:
    """Eq. S1 of refcomp.formats.static: [Div by m,] QuantizeLinear with the calibrated QParams,
    MatMulInteger, y = f32(acc) · f32(s_x · s_w) [+ bias]; x of any rank (..., in)."""
    if isinstance(layer, Conv2d):
        raise ValidationError(f"layer {name!r}", "a Linear for a StaticQuantized weight", "a Conv2d")
    if b.style != "qoperator":
        raise ValidationError("style", "'qoperator' for StaticQuantized weights", repr(b.style))
    o = w.shape[0]
    if w.smooth is not None:
        x = b.node("Div", [x, b.const(f"{name}.smooth", w.smooth)], f"{name}.smoothed")
    iq = w.input_qparams
    z_x = b.const(f"{name}.x_zero_point", np.asarray(iq.zero_point, np.uint8).reshape(()))
    q_x = b.node("QuantizeLinear", [x, b.const(f"{name}.x_scale", np.asarray(iq.scale, np.float32).reshape(())), z_x],
                 f"{name}.x_q")
    codes, zp = _integer_weight(w.weight)
    acc = b.node("MatMulInteger", [q_x, b.const(f"{name}.weight_q", np.ascontiguousarray(codes.T)), z_x,
                                   b.const(f"{name}.weight_zero_point", zp)], f"{name}.acc")
    # f32(s_x · s_w[o]) as StaticQuantized forms it, one constant
    y = b.node("Mul", [b.node("Cast", [acc], f"{name}.acc_f", to=b.onnx.TensorProto.FLOAT),
                       b.const(f"{name}.scale", np.ascontiguousarray(np.broadcast_to(w._scale, (o,))))], f"{name}.y")
    return y if layer.bias is None else b.node("Add", [y, b.const(f"{name}.bias",
                                                                  np.asarray(layer.bias.data, np.float32))], name)


def _dynamic(b: _Builder, layer, w: DynamicQuantized, x: str, name: str) -> str:
    """Dynamic quantization (eq. D1): DynamicQuantizeLinear, then the integer product and the float scaling."""
    if w.per_token:
        if b.style != "qoperator":
            raise ValidationError(f"layer {name!r}", "style='qoperator' for per-token dynamic quantization "
                                  "(QDQ has no per-row run-time scale)", repr(b.style))
        return _dynamic_per_token(b, layer, w, x, name)
    qp = w.weight.qparams
    o = w.shape[0]
    is_conv = isinstance(layer, Conv2d)
    shape = _conv_shape(layer) if is_conv else w.shape
    q_x, s_x, z_x = b.node("DynamicQuantizeLinear", [x], f"{name}.x_q", n_out=3)
    bias = None if layer.bias is None else np.asarray(layer.bias.data, np.float32)
    if b.style == "qdq":
        xf = b.node("DequantizeLinear", [q_x, s_x, z_x], f"{name}.x_dq")
        if is_conv:
            y = b.node("Conv", [xf, _weight_dq(b, w.weight, shape, name, transpose=False)]
                       + ([] if bias is None else [b.const(f"{name}.bias", bias)]), name, **_conv_attrs(layer))
            return y
        y = b.node("MatMul", [xf, _weight_dq(b, w.weight, shape, name, transpose=True)], f"{name}.matmul")
        return y if bias is None else b.node("Add", [y, b.const(f"{name}.bias", bias)], name)
    codes, zp = _integer_weight(w.weight)
    scale = np.broadcast_to(np.asarray(qp.scale, np.float32).reshape(-1), (o,))
    if is_conv:
        if layer.groups != 1:
            raise ValidationError(f"{name}", "groups = 1 for a dynamic convolution", layer.groups)
        attrs = {k: v for k, v in _conv_attrs(layer).items() if k != "group"}
        acc = b.node("ConvInteger", [q_x, b.const(f"{name}.weight_q", codes.reshape(shape)), z_x,
                                     b.const(f"{name}.weight_zero_point", np.ascontiguousarray(zp))],
                     f"{name}.acc", **attrs)
        bshape = (1, o, 1, 1)
    else:
        acc = b.node("MatMulInteger", [q_x, b.const(f"{name}.weight_q", np.ascontiguousarray(codes.T)), z_x,
                                       b.const(f"{name}.weight_zero_point", np.ascontiguousarray(zp))],
                     f"{name}.acc")
        bshape = (o,)
    # y = f32(acc) · f32(s_x · s_w): the product of the scales first, as DynamicQuantized.matmul forms it
    s = b.node("Mul", [s_x, b.const(f"{name}.weight_scale", np.ascontiguousarray(scale).reshape(bshape))],
               f"{name}.scale")
    y = b.node("Mul", [b.node("Cast", [acc], f"{name}.acc_f", to=b.onnx.TensorProto.FLOAT), s], f"{name}.y")
    return y if bias is None else b.node("Add", [y, b.const(f"{name}.bias", bias.reshape(bshape))], name)


def _integer_compute(b: _Builder, layer, x: _Value, name: str) -> _Value:
    """A Conv2d / Linear on codes (eqs. I1-I4) in QDQ or QOperator form."""
    w = _check_weight(layer, name)
    if not isinstance(w, QTensor) or layer.output_qparams is None:
        raise ValidationError(f"{name}", "a QTensor weight and output_qparams for an input of codes",
                              type(w).__name__)
    x_qp, y_qp = x.qparams, layer.output_qparams
    wq = w.qparams
    if wq.dtype.name != "int8" or wq.per_block or np.any(np.asarray(wq.zero_point) != 0):
        raise ValidationError(f"{name}.weight", "int8, symmetric, per tensor or per output channel", repr(wq))
    o = w.shape[0]
    s_w = np.ascontiguousarray(np.broadcast_to(np.asarray(wq.scale, np.float32).reshape(-1), (o,)))
    is_conv = isinstance(layer, Conv2d)
    shape = _conv_shape(layer) if is_conv else (layer.out_features, layer.in_features)
    codes = np.asarray(w.data, np.int8).reshape(shape)
    q_b = None
    if layer.bias is not None:   # eq. I2, formed in float64 from the stored float32 scales
        unit = np.float64(np.asarray(x_qp.scale, np.float32)) * s_w.astype(np.float64)
        q_b = np.rint(np.asarray(layer.bias.data, np.float64) / unit).astype(np.int32)
    if b.style == "qdq":
        xf = b.dequantize(x, f"{name}.x_dq")
        wq_per_channel = QTensor(codes, QParams(s_w, np.zeros(o, np.int8), "int8", axis=0))
        if q_b is not None:
            # the bias as ONNX quantizers store it: int32 codes at scale s_x·s_w (float32), axis 0
            bs = (np.float32(np.asarray(x_qp.scale, np.float32)) * s_w).astype(np.float32)
            bias = b.node("DequantizeLinear", [b.const(f"{name}.bias_q", q_b), b.const(f"{name}.bias_scale", bs),
                                               b.const(f"{name}.bias_zero_point", np.zeros(o, np.int32))],
                          f"{name}.bias", axis=0)
        if is_conv:
            y = b.node("Conv", [xf, _weight_dq(b, wq_per_channel, shape, name, transpose=False)]
                       + ([] if q_b is None else [bias]), f"{name}.conv", **_conv_attrs(layer))
        else:
            y = b.node("MatMul", [xf, _weight_dq(b, wq_per_channel, shape, name, transpose=True)], f"{name}.matmul")
            if q_b is not None:
                y = b.node("Add", [y, bias], f"{name}.add")
        return b.quantize(y, y_qp, f"{name}.y_q")
    # QOperator
    if is_conv:
        xs, xz = b.qparams_consts(x_qp, f"{name}.x")
        ys, yz = b.qparams_consts(y_qp, f"{name}.y")
        ws = b.const(f"{name}.weight_scale", s_w)
        wz = b.const(f"{name}.weight_zero_point", np.zeros(o, np.int8))
        ins = [x.name, xs, xz, b.const(f"{name}.weight_q", codes), ws, wz, ys, yz]
        if q_b is not None:
            ins.append(b.const(f"{name}.bias_q", q_b))
        return _Value(b.node("QLinearConv", ins, name, **_conv_attrs(layer)), y_qp)
    # Not QLinearMatMul: it has no bias input, onnx.reference requantizes it in float64 (deviations D3)
    # and onnxruntime 1.32 runs it with saturating u8 x s8 pairs on AVX2-only CPUs even with
    # session.x64quantprecision=1 (D6). The int32 sums, the int32 bias, then eq. (I4') node for node.
    xz = b.const(f"{name}.x.zero_point", np.asarray(x_qp.zero_point).astype(x_qp.dtype.np_dtype))
    wt = b.const(f"{name}.weight_q", np.ascontiguousarray(codes.T))
    acc = b.node("MatMulInteger", [x.name, wt, xz], f"{name}.acc")
    if q_b is not None:
        acc = b.node("Add", [acc, b.const(f"{name}.bias_q", q_b)], f"{name}.acc_b")
    M = np.asarray(real_multiplier(x_qp.scale, s_w, y_qp.scale), np.float32).reshape(-1)
    f = b.node("Cast", [acc], f"{name}.acc_f", to=b.onnx.TensorProto.FLOAT)
    r = b.node("Round", [b.node("Mul", [f, b.const(f"{name}.multiplier", M)], f"{name}.scaled")], f"{name}.rounded")
    z = b.node("Add", [r, b.const(f"{name}.y_zero_point_f", np.float32(np.asarray(y_qp.zero_point)))],
               f"{name}.shifted")
    c = b.node("Clip", [z, b.const(f"{name}.qmin", np.float32(y_qp.dtype.qmin)),
                        b.const(f"{name}.qmax", np.float32(y_qp.dtype.qmax))], f"{name}.clipped")
    return _Value(b.node("Cast", [c], name, to=int(y_qp.dtype.onnx)), y_qp)


def _on_codes(b: _Builder, layer, x: _Value, name: str) -> _Value:
    """ReLU, MaxPool2d, Flatten, Dropout on codes: exact on the codes themselves (refcomp.nn.layers.quantize)."""
    if b.style == "qdq" and isinstance(layer, (ReLU, MaxPool2d)):
        # QDQ form: DequantizeLinear -> float op -> QuantizeLinear with the same (s, z); exact (see ReLU, MaxPool2d)
        y = _float_layer(b, layer, [b.dequantize(x, f"{name}.x_dq")], name)
        return b.quantize(y, x.qparams, f"{name}.y_q")
    if isinstance(layer, ReLU):     # max(q, z): z is the code of the real 0
        return _Value(b.node("Max", [x.name, b.qparams_consts(x.qparams, f"{name}.x")[1]], name), x.qparams)
    if isinstance(layer, MaxPool2d):
        return _Value(_float_layer(b, layer, [x.name], name), x.qparams)
    if isinstance(layer, Flatten):
        return _Value(b.node("Flatten", [x.name], name, axis=1), x.qparams)
    if isinstance(layer, Dropout):
        return x
    raise ValidationError(name, "ReLU, MaxPool2d, Flatten or Dropout on codes (or a Conv2d / Linear)",
                          type(layer).__name__)


def _float_layer(b: _Builder, layer, xs: list[str], name: str) -> str:
    """The float ONNX node(s) of one refcomp layer (eval mode)."""
    x = xs[0]
    if isinstance(layer, (Conv2d, Linear)):
        return _float_compute(b, layer, x, name)
    if isinstance(layer, ReLU):
        return b.node("Relu", [x], name)
    if isinstance(layer, ReLU6):
        return b.node("Clip", [x, b.const(f"{name}.min", np.float32(0)), b.const(f"{name}.max", np.float32(6))], name)
    if isinstance(layer, Tanh):
        return b.node("Tanh", [x], name)
    if isinstance(layer, Sigmoid):
        return b.node("Sigmoid", [x], name)
    if isinstance(layer, GELU):
        if b.opset < 20:
            raise ValidationError("opset", ">= 20 for GELU (Gelu-20)", b.opset)
        return b.node("Gelu", [x], name, approximate=layer.approximate)
    if isinstance(layer, Softmax):
        return b.node("Softmax", [x], name, axis=layer.axis)
    if isinstance(layer, MaxPool2d):
        ph, pw = layer.padding
        return b.node("MaxPool", [x], name, kernel_shape=list(layer.kernel_size), strides=list(layer.stride),
                      pads=[ph, pw, ph, pw])
    if isinstance(layer, AvgPool2d):
        ph, pw = layer.padding
        return b.node("AveragePool", [x], name, kernel_shape=list(layer.kernel_size), strides=list(layer.stride),
                      pads=[ph, pw, ph, pw], count_include_pad=1)
    if isinstance(layer, GlobalAvgPool2d):
        return b.node("Flatten", [b.node("GlobalAveragePool", [x], f"{name}.pool")], name, axis=1)
    if isinstance(layer, Flatten):
        return b.node("Flatten", [x], name, axis=1)
    if isinstance(layer, Dropout):
        return b.node("Identity", [x], name)
    if isinstance(layer, (BatchNorm1d, BatchNorm2d)):
        c = layer.num_features
        gamma = np.ones(c, np.float32) if layer.weight is None else layer.weight.data
        beta = np.zeros(c, np.float32) if layer.bias is None else layer.bias.data
        ins = [x] + [b.const(f"{name}.{k}", np.asarray(a, np.float32)) for k, a in
                     (("scale", gamma), ("bias", beta), ("mean", layer.running_mean), ("var", layer.running_var))]
        return b.node("BatchNormalization", ins, name, epsilon=layer.eps)
    if isinstance(layer, LayerNorm):
        if b.opset < 17:
            raise ValidationError("opset", ">= 17 for LayerNorm (LayerNormalization-17)", b.opset)
        shape = layer.normalized_shape
        gamma = np.ones(shape, np.float32) if layer.weight is None else layer.weight.data
        beta = np.zeros(shape, np.float32) if layer.bias is None else layer.bias.data
        return b.node("LayerNormalization", [x, b.const(f"{name}.scale", np.asarray(gamma, np.float32)),
                                             b.const(f"{name}.bias", np.asarray(beta, np.float32))],
                      name, axis=-len(shape), epsilon=layer.eps)
    if isinstance(layer, Add):
        return b.node("Add", xs, name)
    if isinstance(layer, Mul):
        return b.node("Mul", xs, name)
    if isinstance(layer, MatMul):
        return b.node("MatMul", xs, name)
    if isinstance(layer, BertEmbeddings):
        return _bert_embeddings(b, layer, x, name)
    if isinstance(layer, Embedding):
        return _lookup(b, layer, x, name)
    if isinstance(layer, Reshape):
        target = xs[1] if len(xs) > 1 else b.const(f"{name}.shape", np.asarray(layer.shape, np.int64))
        return b.node("Reshape", [x, target], name)
    if isinstance(layer, Transpose):
        return b.node("Transpose", [x], name, **({} if layer.perm is None else {"perm": list(layer.perm)}))
    if isinstance(layer, Shape):
        return b.node("Shape", [x], name)
    if isinstance(layer, Concat):
        return b.node("Concat", xs, name, axis=layer.axis)
    if isinstance(layer, MultiHeadAttention):
        return _attention(b, layer, xs, name)
    raise ValidationError(f"layer {name!r}", "a layer the exporter supports (docs/onnx.md, Export)",
                          type(layer).__name__)


def _lookup(b: _Builder, layer: Embedding, ids: str, name: str) -> str:
    """Gather rows ``ids`` of an Embedding's table. A QTensor table quantized per row (or per tensor)
    stays integer in the file: Gather the codes and the rows' scales, then eq. 2 as
    refcomp.ops.dequantize_linear computes it: f32(q − z) · s."""
    w = _check_weight(layer, name)
    qp = getattr(w, "qparams", None)
    if not isinstance(w, QTensor) or qp.block_size or qp.dtype.name not in ("int8", "uint8") or not (
            qp.per_tensor or qp.axis % 2 == 0):
        table = np.ascontiguousarray(np.asarray(w.to_dense(), np.float32))
        return b.node("Gather", [b.const(f"{name}.weight", table), ids], name, axis=0)
    codes = b.node("Gather", [b.const(f"{name}.weight_q", np.ascontiguousarray(w.data)), ids], f"{name}.codes", axis=0)
    d = codes
    if np.any(qp.zero_point != 0):
        zp = np.asarray(qp.zero_point).astype(np.int32)
        z = b.const(f"{name}.zero_point", zp) if qp.per_tensor else b.node(
            "Gather", [b.const(f"{name}.zero_point", zp), ids], f"{name}.row_zero_point", axis=0)
        if not qp.per_tensor:
            z = b.node("Unsqueeze", [z, b.const(f"{name}.z_axis", np.asarray([-1], np.int64))], f"{name}.z_col")
        d = b.node("Sub", [b.node("Cast", [codes], f"{name}.codes_i32", to=b.onnx.TensorProto.INT32), z],
                   f"{name}.centred")
    d = b.node("Cast", [d], f"{name}.codes_f", to=b.onnx.TensorProto.FLOAT)
    scale = np.asarray(qp.scale, np.float32)
    if qp.per_tensor:
        s = b.const(f"{name}.scale", scale.reshape(()))
    else:
        s = b.node("Unsqueeze", [b.node("Gather", [b.const(f"{name}.scale", scale), ids], f"{name}.row_scale", axis=0),
                                 b.const(f"{name}.s_axis", np.asarray([-1], np.int64))], f"{name}.s_col")
    return b.node("Mul", [d, s], name)


def _bert_embeddings(b: _Builder, layer: BertEmbeddings, ids: str, name: str) -> str:
    """(word[ids] + token_type[0]) + position[Range(0, T)], refcomp/nn/layers/embedding.py's order."""
    word = _lookup(b, layer.word, ids, f"{name}.word")
    segment = _lookup(b, layer.token_type, b.const(f"{name}.segment", np.int64(0)), f"{name}.token_type")
    t = b.node("Gather", [b.node("Shape", [ids], f"{name}.ids_shape"), b.const(f"{name}.time_axis", np.int64(1))],
               f"{name}.length", axis=0)
    positions = b.node("Range", [b.const(f"{name}.start", np.int64(0)), t, b.const(f"{name}.step", np.int64(1))],
                       f"{name}.positions")
    pos = _lookup(b, layer.position, positions, f"{name}.position")
    return b.node("Add", [b.node("Add", [word, segment], f"{name}.word_segment"), pos], name)


def _attention(b: _Builder, layer: MultiHeadAttention, xs: list[str], name: str) -> str:
    """MultiHeadAttention as the standard subgraph (refcomp/nn/layers/attention.py, op for op).

    Q, K, V = x·Wᵀ + b (MatMul + Add on (N, T, D); eq. D1 for DynamicQuantized weights, whose
    per-tensor input range over (N, T, D) is the range over the N·T rows refcomp quantizes);
    heads: Reshape (0, 0, H, d) → Transpose (0, 2, 1, 3) (K: (0, 2, 3, 1), i.e. Kᵀ);
    S = MatMul(Q, Kᵀ) · f32(1/√d); mask: Where(Equal(mask, 0), finfo(float32).min, 0) unsqueezed to
    (N, 1, 1, T) and added; P = Softmax(S, -1); O = MatMul(P, V) → Transpose (0, 2, 1, 3) →
    Reshape (0, 0, D) → out_proj.
    """
    x = xs[0]
    h, d = layer.num_heads, layer.head_dim
    split = b.const(f"{name}.heads_shape", np.asarray([0, 0, h, d], np.int64))

    def proj(p, key):
        linear = getattr(layer, p)
        if not isinstance(linear, Linear):
            # an integer island (static W8A8 per layer) inside attention: not written yet
            raise ValidationError(f"{name}.{p}", "a Linear with a float, QTensor or DynamicQuantized weight",
                                  type(linear).__name__)
        y = _float_compute(b, linear, x, f"{name}.{p}")
        r = b.node("Reshape", [y, split], f"{name}.{key}_heads")
        return b.node("Transpose", [r], f"{name}.{key}_t", perm=[0, 2, 3, 1] if key == "k" else [0, 2, 1, 3])

    q, k, v = proj("q_proj", "q"), proj("k_proj", "k"), proj("v_proj", "v")
    s = b.node("Mul", [b.node("MatMul", [q, k], f"{name}.qk"), b.const(f"{name}.scale", np.float32(layer.scale))],
               f"{name}.scores")
    if len(xs) > 1 and xs[1] is not None:
        m = xs[1]
        zero = b.const(f"{name}.mask_zero", np.zeros((), b.input_dtypes.get(m, np.float32)))
        neg = b.node("Where", [b.node("Equal", [m, zero], f"{name}.padding"),
                               b.const(f"{name}.mask_min", np.float32(np.finfo(np.float32).min)),
                               b.const(f"{name}.mask_keep", np.float32(0))], f"{name}.mask_bias")
        neg = b.node("Unsqueeze", [neg, b.const(f"{name}.mask_axes", np.asarray([1, 2], np.int64))],
                     f"{name}.mask_bias4")
        s = b.node("Add", [s, neg], f"{name}.masked")
    p = b.node("Softmax", [s], f"{name}.probs", axis=-1)
    o = b.node("Transpose", [b.node("MatMul", [p, v], f"{name}.context")], f"{name}.context_t", perm=[0, 2, 1, 3])
    o = b.node("Reshape", [o, b.const(f"{name}.merge_shape", np.asarray([0, 0, layer.d_model], np.int64))],
               f"{name}.merged")
    return _float_compute(b, layer.out_proj, o, f"{name}.out_proj")


def _emit(b: _Builder, module: Module, inputs: list[_Value], name: str) -> list[_Value]:
    """The ONNX nodes of ``module`` applied to ``inputs``; returns its outputs."""
    if isinstance(module, Sequential):
        vals = inputs
        for child_name, child in module.named_children():
            vals = _emit(b, child, vals, f"{name}.{child_name}" if name else child_name)
        return vals
    if isinstance(module, Graph):
        if len(inputs) != len(module.inputs):
            raise ValidationError(f"graph {name or 'model'!r}", f"{len(module.inputs)} inputs", len(inputs))
        env = dict(zip(module.inputs, inputs))
        for node_name, child in module.nodes.items():
            out = _emit(b, child, [env[i] for i in module.node_inputs[node_name]],
                        f"{name}.{node_name}" if name else node_name)
            if len(out) != 1:
                raise ValidationError(f"node {node_name!r}", "a module with one output", len(out))
            env[node_name] = out[0]
        return [env[o] for o in module.outputs]
    if isinstance(module, QuantizeLinear):
        _float_inputs(inputs, name, module)
        if b.style == "float":
            raise ValidationError("style", "'qdq' or 'qoperator' for a model with QuantizeLinear layers", "'float'")
        return [b.quantize(inputs[0].name, module.qparams, name)]
    if isinstance(module, DequantizeLinear):
        if inputs[0].qparams is None:
            raise DTypeError(name, "codes as the input of DequantizeLinear", "a float tensor")
        out = b.dequantize(inputs[0], name)
        b.dequantized[out] = inputs[0]
        return [_Value(out)]
    if inputs and inputs[0].qparams is not None:
        if isinstance(module, (Conv2d, Linear)):
            return [_integer_compute(b, module, inputs[0], name)]
        return [_on_codes(b, module, inputs[0], name)]
    _float_inputs(inputs, name, module)
    return [_Value(_float_layer(b, module, [v.name for v in inputs], name))]


def _float_inputs(inputs, name, module):
    if any(v.qparams is not None for v in inputs):
        raise DTypeError(name, f"float inputs for {type(module).__name__}", "codes")


def _dim_ok(d, first: bool) -> bool:
    if isinstance(d, str):                      # a symbolic dimension (not the batch: that is always "N")
        return not first and d.isidentifier() and d != "N"
    return not isinstance(d, bool) and isinstance(d, (int, np.integer)) and d >= 1


def _check_shape(input_shape, argument):
    if not isinstance(input_shape, (tuple, list)) or not input_shape or any(
            not _dim_ok(d, i == 0) for i, d in enumerate(input_shape)):
        raise ValidationError(argument, "a tuple of ints >= 1, batch first, e.g. (1, 1, 28, 28); a later "
                              "dimension may be a name such as \"T\" (symbolic)", repr(input_shape))


_INPUT_DTYPES = ("float32", "int64", "int32")


def _input_specs(model, input_shape, input_dtypes) -> list[tuple[str, tuple, np.dtype]]:
    """(name, shape, dtype) of each graph input: ``input_shape`` a tuple for one input, else a dict."""
    names = list(model.inputs) if isinstance(model, Graph) else ["x"]
    if isinstance(input_shape, dict):
        if sorted(input_shape) != sorted(names):
            raise ValidationError("input_shape", f"a shape for each input {names}", repr(sorted(input_shape)))
        shapes = [input_shape[n] for n in names]
    elif len(names) == 1:
        shapes = [input_shape]
    else:
        raise ValidationError("input_shape", f"a dict {{name: shape}} for the inputs {names}", repr(input_shape))
    for n, s in zip(names, shapes):
        _check_shape(s, "input_shape" if len(names) == 1 else f"input_shape[{n!r}]")
    input_dtypes = {} if input_dtypes is None else input_dtypes
    if not isinstance(input_dtypes, dict) or any(k not in names for k in input_dtypes):
        raise ValidationError("input_dtypes", f"a dict whose keys are among the inputs {names}", repr(input_dtypes))
    dtypes = []
    for n in names:
        try:
            dt = np.dtype(input_dtypes.get(n, "float32")).name
        except TypeError:
            dt = None
        if dt not in _INPUT_DTYPES:
            raise DTypeError(f"input_dtypes[{n!r}]", f"one of {_INPUT_DTYPES}", repr(input_dtypes.get(n)))
        dtypes.append(np.dtype(dt))
    return list(zip(names, [tuple(d if isinstance(d, str) else int(d) for d in s) for s in shapes], dtypes))


def _check_arguments(model, path, style, opset):
    if not isinstance(model, Module):
        raise ValidationError("model", "a refcomp.nn.Module", type(model).__name__)
    if style not in STYLES:
        raise ValidationError("style", f"one of {STYLES}", repr(style))
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) or int(opset) not in OPSETS:
        raise ValidationError("opset", f"an int in [{OPSETS.start}, {OPSETS.stop - 1}]", repr(opset))
    if path is not None:
        folder = os.path.dirname(os.path.abspath(os.fspath(path)))
        if not os.path.isdir(folder):
            raise ValidationError("path", "a file in an existing folder", repr(os.fspath(path)))


def export(model: Module, path=None, *, style: str = "float", input_shape, opset: int = 21,
           expose_codes: bool = True, input_dtypes=None):
    """Write ``model`` as an ONNX file; returns the onnx.ModelProto.

    Parameters
    ----------
    model : a refcomp model (Sequential / Graph of supported layers, eval mode semantics);
        not modified.
    path : the .onnx file (its folder must exist), or None to only return the proto.
    style : "float" | "qdq" | "qoperator" (module docstring).
    input_shape : the input's shape, batch first; the batch axis is written as the
        symbolic dimension "N" so any batch size runs, and a later dimension given
        as a name (e.g. ``(1, "T")`` for token ids) is symbolic too: any length runs. A Graph with several inputs
        (a transformer's x and mask) takes a dict {input name: shape}.
    input_dtypes : optional dict {input name: "float32" | "int64" | "int32"} (default
        float32): token ids for an Embedding, an integer padding mask.
    opset : the default-domain opset, 13-23 (default 21).
    expose_codes : for a model whose output comes out of a DequantizeLinear, also
        output the codes it dequantizes (graph output "<output>.codes") so a runtime's
        integer result can be compared bit for bit.

    Graph inputs: the Graph's input names ("x" for any other model), float32 unless
    ``input_dtypes`` says otherwise; output "y" float32 (plus the codes).
    ``onnx.checker.check_model(full_check=True)`` is run before anything is written.
    """
    _check_arguments(model, path, style, opset)
    specs = _input_specs(model, input_shape, input_dtypes)
    onnx = _onnx()
    b = _Builder(style, int(opset))
    inputs = [_Value(n) for n, _, _ in specs]
    b.input_dtypes = {n: dt for n, _, dt in specs}
    b._used.update(v.name for v in inputs)
    b._used.add("y")
    outs = _emit(b, model, inputs, "")
    if len(outs) != 1 or outs[0].qparams is not None:
        raise ValidationError("model", "one float output (end an integer model with DequantizeLinear)",
                              f"{len(outs)} outputs" if len(outs) != 1 else "codes")
    helper, TP = onnx.helper, onnx.TensorProto
    b.nodes.append(helper.make_node("Identity", [outs[0].name], ["y"], name=b.name("output.Identity")))
    graph_outputs = [helper.make_tensor_value_info("y", TP.FLOAT, None)]
    codes = b.dequantized.get(outs[0].name)
    if expose_codes and codes is not None:
        b.nodes.append(helper.make_node("Identity", [codes.name], ["y.codes"], name=b.name("codes.Identity")))
        graph_outputs.append(helper.make_tensor_value_info("y.codes", int(codes.qparams.dtype.onnx), None))
    graph_inputs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(dt), ["N", *shape[1:]])
                    for n, shape, dt in specs]
    graph = helper.make_graph(b.nodes, "refcomp", graph_inputs, graph_outputs, initializer=b.initializers)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", int(opset))],
                              producer_name="refcomp", producer_version=__version__,
                              ir_version=_IR_VERSION)
    proto = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    onnx.checker.check_model(proto, full_check=True)
    if path is not None:
        # atomic (a complete file or none, even on Ctrl-C), with the usual permissions
        write_atomic(os.fspath(path), proto.SerializeToString())
    return proto

