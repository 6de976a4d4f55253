"""The integer-only model: a copy of the float model whose layers hold QTensors and activation qparams.

Jacob et al. 2018 (arXiv:1712.05877) §2 runs a network on 8-bit codes with
int32 accumulators. Here that network is the float model itself, transformed
(torchao's pattern: the weight is swapped, the layer stays):

=====================  =====================================================================
float model            integer-only model
=====================  =====================================================================
(input)                ``QuantizeLinear(s_x, z_x)``: float -> QTensor codes
Conv2d / Linear        the same layer; weight = per-channel symmetric int8 QTensor,
                       ``output_qparams`` = (s_y, z_y) of its activation; float bias kept
                       (quantized to int32 at s_x·s_w[o] when it runs, eq. I2)
ReLU, MaxPool2d,       the same layers, run on the codes (exact; see
Flatten, Dropout       refcomp.nn.layers.quantize)
(output)               ``DequantizeLinear()``: codes -> float32 logits
=====================  =====================================================================

A layer given a QTensor computes eqs. (I1)-(I4) of refcomp/ops/integer_linear.py:
int32 sums through MatMulInteger (a Conv2d as im2col of the codes), then
gemmlowp's fixed-point requantization. A ReLU after a compute layer is the
clamp at z_y, applied to the codes.

**Per-layer integer islands** (``qdq_model``, ``quantize_static(...,
integer_only=False)``): on any graph — residual Adds, attention, LayerNorm,
average pooling — each Conv2d / Linear becomes its own
``QuantizeLinear -> layer -> DequantizeLinear`` (the ONNX QDQ pattern) and
runs eqs. I1-I4 inside; everything between the islands stays float.

Where the activation parameters come from: ``quantize_static`` (PTQ,
calibration observers) and ``to_integer`` (QAT, the trained quantizers).
``simulate`` (simulate.py) computes the same codes with float layers.
"""

from __future__ import annotations

import copy

import numpy as np

from ...errors import ValidationError
from ...formats.qtensor import QTensor
from ...nn.layers import Conv2d, DequantizeLinear, Linear, QuantizeLinear
from ...nn.graph import replace_module
from ...nn.module import Module, Parameter, Sequential
from ...quant import QParams
from .model_graph import stages_of

__all__ = ["integer_model", "qdq_model", "integer_layers", "integer_bytes", "output_codes"]


def _weight_qtensor(codes: np.ndarray, scales: np.ndarray) -> QTensor:
    """Symmetric int8 codes (O, ...) with one float32 scale per output channel (z_w = 0)."""
    s = np.asarray(scales, dtype=np.float32).reshape(-1)
    return QTensor(np.asarray(codes, dtype=np.int8), QParams(s, np.zeros(s.shape, np.int8), "int8", axis=0))


def integer_model(model: Module, qparams: dict, weights: dict, *, biases: dict | None = None) -> Sequential:
    """The integer-only model of a folded float ``model`` (module table).

    ``qparams``: {"input": QParams of the model input, compute stage name:
    QParams of that stage's output (after its ReLU)}, per tensor, uint8 or int8.
    ``weights``: {compute stage name: (int8 codes shaped like the weight,
    float32 scales (O,))}. ``biases``: optional {stage name: float bias}
    replacing the layer's (bias correction). ``model`` is not modified.
    """
    body = copy.deepcopy(model).eval()
    for s in stages_of(body):
        if s.kind != "compute":
            continue
        for key, table in (("weights", weights), ("qparams", qparams)):
            if s.name not in table:
                raise ValidationError(key, f"an entry for compute layer {s.name!r}", sorted(table))
        layer = s.layer
        layer.weight = _weight_qtensor(*weights[s.name])
        if biases is not None and s.name in biases:     # also gives a bias-free layer its correction
            layer.bias = Parameter(np.asarray(biases[s.name], dtype=np.float32))
        layer.output_qparams = qparams[s.name]
    return Sequential(("quantize", QuantizeLinear(qparams["input"])), ("model", body),
                      ("dequantize", DequantizeLinear())).eval()


def qdq_model(model: Module, input_qparams: dict, output_qparams: dict, weights: dict) -> Module:
    """A copy of ``model`` in which each named Conv2d / Linear runs on codes between its own
    QuantizeLinear (``input_qparams[name]``) and DequantizeLinear, with ``weights[name]`` =
    (int8 codes, float32 scales (O,)) and ``output_qparams[name]``; the rest stays float.

    The wrapped layer keeps its name inside a Sequential ``quantize / layer / dequantize``
    that takes its place. ``model`` is not modified.
    """
    body = copy.deepcopy(model).eval()
    modules = dict(body.named_modules())
    for name, (codes, scales) in weights.items():
        layer = modules.get(name)
        if not isinstance(layer, (Conv2d, Linear)) or not name:
            raise ValidationError("weights", "names of Conv2d / Linear layers inside the model", repr(name))
        layer.weight = _weight_qtensor(codes, scales)
        layer.output_qparams = output_qparams[name]
        replace_module(body, name, Sequential(("quantize", QuantizeLinear(input_qparams[name])), ("layer", layer),
                                        ("dequantize", DequantizeLinear())))
    return body


def integer_layers(model: Module) -> list[tuple[str, Module]]:
    """(name, layer) of every Conv2d / Linear that runs on codes (its ``output_qparams`` set)."""
    return [(n, m) for n, m in model.named_modules()
            if isinstance(m, (Conv2d, Linear)) and m.output_qparams is not None]


def integer_bytes(model: Module) -> int:
    """Bytes a runtime stores: one byte per weight code, an int32 bias per channel, and the requantization
    per channel: int32 multiplier and shift (fixed point, eq. I3) or one float32 M (``requantize="float"``, I3')."""
    total = 0
    for _, layer in integer_layers(model):
        o = layer.weight.shape[0]
        requant = 4 * o if layer.requantize == "float" else 8 * o
        total += layer.weight.data.size + requant + (4 * o if layer.bias is not None else 0)
    return int(total)


def output_codes(model: Module, x) -> np.ndarray:
    """The codes the integer model hands to its DequantizeLinear (seen by a forward hook)."""
    exits = [m for _, m in model.named_modules() if isinstance(m, DequantizeLinear)]
    if len(exits) != 1:
        raise ValidationError("model", "an integer-only model with one DequantizeLinear", f"{len(exits)}")
    seen = []
    handle = exits[0].register_forward_hook(lambda _m, inputs, _y: seen.append(inputs[0].data))
    try:
        model.forward(np.asarray(x, dtype=np.float32))
    finally:
        handle.remove()
    return seen[0]
