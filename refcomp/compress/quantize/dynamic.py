"""Dynamic quantization: int8 weights stored, activations quantized per batch at run time.

For each Conv2d / Linear (docs/gptq_and_ptq.md §6; onnxruntime's
"dynamic quantization", MatMulInteger + DynamicQuantizeLinear graph)::

    (q_x, s_x, z_x) = DynamicQuantizeLinear(x)        uint8, range of this batch incl. 0
    acc             = MatMulInteger(q_x, q_wᵀ, z_x, 0)   (a Conv2d: of its im2col rows)  int32
    y               = float32(acc) · (s_x · s_w[o]) + b[o]                  (D1)

Weights: symmetric per output channel, int8 in [−127, 127] (eq. 6 of
docs/quantization.md on the restricted range, as ptq.quantize_weight_per_channel).
The product is the weight format refcomp.formats.DynamicQuantized; the layer
is unchanged and adds its float bias. No calibration is needed; the output
stays float, so there is no output scale.
"""

from __future__ import annotations

import numpy as np

from ...errors import ValidationError
from ...formats.dynamic import DynamicQuantized
from ...formats.qtensor import QTensor
from ...nn.layers import Conv2d, Linear
from ...nn.module import Module
from ...quant import choose_qparams
from .model_graph import prepare

__all__ = ["dynamic_weight", "quantize_dynamic"]


def dynamic_weight(w, *, per_token: bool = False) -> DynamicQuantized:
    """The int8 per-output-channel weight of eq. (D1) (or D2, ``per_token``) for ``w`` (out, ...),
    held as its (out, rest) matrix."""
    w2 = np.asarray(w, dtype=np.float32).reshape(len(w), -1)
    qp = choose_qparams(w2.min(axis=1), w2.max(axis=1), "int8", symmetric=True, restricted_range=True, axis=0)
    return DynamicQuantized(QTensor.quantize(w2, qp), per_token=per_token)


def quantize_dynamic(model, *, per_token: bool = False) -> tuple[Module, dict]:
    """(a copy of ``model`` (BatchNorm folded) whose Conv2d / Linear layers hold DynamicQuantized weights,
    report {layer name: {"shape", "bytes", "float_bytes"}}).

    per_token : quantize each input row (a transformer's token) with its own
        range (refcomp.formats.dynamic, eq. D2) instead of one range per call.
        Only for Linear layers: a convolution's rows are receptive fields, not tokens.

    Any refcomp.nn graph; a grouped Conv2d (groups > 1) raises ValidationError
    (its product is not one matrix product with the weight). ``model`` is not modified.
    """
    m = prepare(model)
    report = {}
    for name, layer in m.named_modules():
        if isinstance(layer, Conv2d) and layer.groups != 1:
            raise ValidationError(f"layer {name!r}", "groups=1 for dynamic quantization", layer.groups)
        if isinstance(layer, Conv2d) and per_token:
            raise ValidationError(f"layer {name!r}", "Linear layers only for per_token=True", "a Conv2d")
        if isinstance(layer, (Conv2d, Linear)):
            w = layer.weight.to_dense()
            layer.weight = dynamic_weight(w, per_token=per_token)
            report[name] = {"shape": list(w.shape), "bytes": int(layer.weight.nbytes), "float_bytes": int(w.nbytes)}
    return m, report
