"""Fake-quant simulation of an integer-only model: float layers, the same codes.

The simulation is the float network a QAT graph computes (Jacob et al. 2018
§3, Krishnamoorthi 2018 §2.4): every tensor holds dequantized values
x̂ = s·(q − z) and every layer is the float refcomp.nn layer (Conv2d's im2col,
Linear's matmul, MaxPool2d, ReLU, Flatten) run on them. Two details make it
reproduce the integer network bit for bit (docs/gptq_and_ptq.md §7):

1. Float64 with exact inputs. x̂ = (q − z)·s and ŵ = q_w·s_w are products of an
   8-bit integer and a 24-bit float32 significand: exact in float64. The layer
   output is then y = s_x·s_w[o]·acc[o] up to the rounding of the float64
   products and sums, an error below about K·2^-53·Σ|terms| (for LeNet-5's
   K = 800 and |terms| <= 255·127: about 2e-6 of one accumulator step), so

       acc[o] = round(y[o] / (s_x·s_w[o]))                                 (S1)

   recovers the integer accumulator of eq. (I1) exactly; the simulation
   checks that the distance to the nearest integer is below 1e-3 and raises
   otherwise.
2. The same requantization. Eq. (I4) rounds twice (gemmlowp's high multiply
   and the rounding shift) on products up to 2^62, which float64 cannot hold,
   so (S1)'s accumulator goes through refcomp.ops.integer_linear's
   requantize_accumulators — the one definition both paths share (with
   requantization_params, eqs. I2-I3). Its codes are
   dequantized again (ŷ = s_y·(q_y − z_y)) for the next float layer; a ReLU
   is the float ReLU on ŷ.

Everything else — the convolution or matrix product, zero points, padding,
bias, pooling, flattening, the fused ReLU — is computed independently of
refcomp.ops, so equality checks the integer kernels, not a copy of them.
"""

from __future__ import annotations

import numpy as np

from ...errors import ValidationError
from ...formats.dense import Dense
from ...nn.layers import Conv2d, DequantizeLinear, Dropout, Flatten, Linear, MaxPool2d, QuantizeLinear, ReLU
from ...nn.module import Parameter
from ...ops.integer_linear import requantization_params, requantize_accumulators
from ...quant import quantize
from .model_graph import flat_layers

__all__ = ["simulate"]


def _dequant64(q, qp) -> np.ndarray:
    """(q − z)·s in float64: exact for 8-bit codes and a float32 scale."""
    s = np.float64(np.asarray(qp.scale, dtype=np.float32))
    return (q.astype(np.float64) - np.float64(np.asarray(qp.zero_point).astype(np.int64))) * s


def _float_layer(layer, s_w: np.ndarray, w_codes: np.ndarray, q_b):
    """A float64 refcomp.nn layer like ``layer`` with ŵ = q_w·s_w and b̂ = q_b·s_x·s_w (passed scaled)."""
    w_hat = w_codes.astype(np.float64) * s_w.astype(np.float64).reshape((-1,) + (1,) * (w_codes.ndim - 1))
    o = w_codes.shape[0]
    if isinstance(layer, Linear):
        twin = Linear(w_codes.shape[1], o, bias=q_b is not None, dtype="float64")
    else:
        twin = Conv2d(w_codes.shape[1] * layer.groups, o, tuple(w_codes.shape[2:]), stride=layer.stride,
                      padding=layer.padding, dilation=layer.dilation, groups=layer.groups,
                      bias=q_b is not None, dtype="float64")
    twin.weight = Dense(w_hat, trainable=False)
    return twin


def simulate(model, x) -> np.ndarray:
    """The output codes of the integer-only ``model`` on float input ``x``, computed in float64 (docstring).

    ``model`` is what quantize_static / to_integer return (QuantizeLinear,
    the layers, DequantizeLinear, in order).
    """
    layers = flat_layers(model)
    if not layers or not isinstance(layers[0][1], QuantizeLinear) or not isinstance(layers[-1][1], DequantizeLinear):
        raise ValidationError("model", "an integer-only model (QuantizeLinear ... DequantizeLinear)",
                              [type(m).__name__ for _, m in layers[:1] + layers[-1:]])
    qp = layers[0][1].qparams
    xh = _dequant64(quantize(np.asarray(x, dtype=np.float32), qp), qp)
    for name, layer in layers[1:-1]:
        if isinstance(layer, (Linear, Conv2d)) and layer.output_qparams is not None:
            y_qp = layer.output_qparams
            w = layer.weight
            s_w = np.broadcast_to(np.asarray(w.qparams.scale, np.float32).reshape(-1), (w.shape[0],))
            bias = None if layer.bias is None else layer.bias.data
            q_b, m, sh = requantization_params(qp.scale, s_w, y_qp.scale, bias, name=name)
            twin = _float_layer(layer, s_w, w.data, q_b)
            unit = np.float64(np.asarray(qp.scale, dtype=np.float32)) * s_w.astype(np.float64)
            if q_b is not None:
                twin.bias = Parameter(q_b.astype(np.float64) * unit)
            y = twin.forward(xh)
            a = y / unit.reshape((-1,) + (1,) * (y.ndim - 2))
            acc = np.rint(a)                                                    # eq. (S1)
            if a.size and np.max(np.abs(a - acc)) > 1e-3:
                raise ValidationError(f"{name} simulation", "accumulators within 1e-3 of an integer",
                                      float(np.max(np.abs(a - acc))))
            codes = requantize_accumulators(acc.astype(np.int32), m, sh, y_qp.zero_point, y_dtype=y_qp.dtype)
            xh, qp = _dequant64(codes, y_qp), y_qp
        elif isinstance(layer, (MaxPool2d, Flatten)):
            xh = layer.forward(xh)
        elif isinstance(layer, ReLU):
            xh = np.maximum(xh, 0.0)          # the float ReLU; the integer path clamps codes at z_y
        elif not isinstance(layer, Dropout):
            raise ValidationError(f"model layer {name!r}", "a layer of an integer-only model", type(layer).__name__)
    s = np.float64(np.asarray(qp.scale, dtype=np.float32))
    z = np.int64(np.asarray(qp.zero_point).astype(np.int64))
    return (np.rint(xh / s).astype(np.int64) + z).astype(qp.dtype.np_dtype)
