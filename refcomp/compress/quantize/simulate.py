"""Fake-quant simulation of an IntegerModel: float layers, the same codes.

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
   so (S1)'s accumulator goes through integer_model.requantize_codes — the
   one definition both paths share. Its codes are
   dequantized again (ŷ = s_y·(q_y − z_y)) for the next float layer; the
   fused ReLU is the float ReLU on ŷ.

Everything else — the convolution or matrix product, zero points, padding,
bias, pooling, flattening, the fused ReLU — is computed independently of
refcomp.ops, so equality checks the integer kernels, not a copy of them.
"""

from __future__ import annotations

import numpy as np

from ...errors import ValidationError
from ...formats.dense import Dense
from ...nn.layers import Conv2d, Flatten, Linear, MaxPool2d
from ...nn.module import Module, Parameter
from ...quant import quantize
from .integer_model import IntegerCompute, IntegerModel, requantize_codes

__all__ = ["SimulatedModel", "simulate"]


def _dequant64(q, qp) -> np.ndarray:
    """(q − z)·s in float64: exact for 8-bit codes and a float32 scale."""
    s = np.float64(np.asarray(qp.scale, dtype=np.float32))
    return (q.astype(np.float64) - np.float64(np.asarray(qp.zero_point).astype(np.int64))) * s


def _float_layer(stage: IntegerCompute):
    """The float64 refcomp.nn layer with ŵ = q_w·s_w and b̂ = q_b·s_x·s_w."""
    s_w = stage.weight_scale.astype(np.float64)
    w_hat = stage.weight.astype(np.float64) * s_w.reshape((-1,) + (1,) * (stage.weight.ndim - 1))
    s_x = np.float64(np.asarray(stage.x_qparams.scale, dtype=np.float32))
    o = stage.out_channels
    if stage.conv is None:
        layer = Linear(stage.weight.shape[1], o, bias=stage.bias is not None, dtype="float64")
    else:
        c = stage.conv
        ph, pw = c["pads"][0], c["pads"][1]
        layer = Conv2d(stage.weight.shape[1] * c["group"], o, tuple(stage.weight.shape[2:]), stride=tuple(c["strides"]),
                       padding=(ph, pw), dilation=tuple(c["dilations"]), groups=c["group"],
                       bias=stage.bias is not None, dtype="float64")
    layer.weight = Dense(w_hat, trainable=False)
    if stage.bias is not None:
        layer.bias = Parameter(stage.bias.astype(np.float64) * (s_x * s_w))
    return layer


class SimulatedModel(Module):
    """The fake-quant float twin of an IntegerModel (module docstring).

    ``forward_codes(x)`` returns the output codes (to compare with
    IntegerModel.forward_int); ``forward(x)`` the dequantized logits (float64).
    """

    def __init__(self, model: IntegerModel):
        if not isinstance(model, IntegerModel):
            raise ValidationError("model", "an IntegerModel", type(model).__name__)
        self.integer_model = model
        self._steps = []
        for s in model.stages:
            if isinstance(s, IntegerCompute):
                self._steps.append(("compute", s, _float_layer(s)))
            elif s.kind == "maxpool":
                self._steps.append(("maxpool", s, MaxPool2d(**s.pool)))
            elif s.kind == "flatten":
                self._steps.append(("flatten", s, Flatten()))
            else:
                self._steps.append((s.kind, s, None))

    def _run(self, x):
        m = self.integer_model
        q = quantize(np.asarray(x, dtype=np.float32), m.input_qparams)
        xh = _dequant64(q, m.input_qparams)
        for kind, s, layer in self._steps:
            if kind == "compute":
                y = layer.forward(xh)
                unit = (np.float64(np.asarray(s.x_qparams.scale, dtype=np.float32))
                        * s.weight_scale.astype(np.float64)).reshape((-1,) + (1,) * (y.ndim - 2))
                a = y / unit
                acc = np.rint(a)                                                # eq. (S1)
                if a.size and np.max(np.abs(a - acc)) > 1e-3:
                    raise ValidationError(f"{s.name} simulation", "accumulators within 1e-3 of an integer",
                                          float(np.max(np.abs(a - acc))))
                codes = requantize_codes(acc.astype(np.int32), s, 1, fuse_relu=False)
                xh = _dequant64(codes, s.y_qparams)
                if s.relu:
                    xh = np.maximum(xh, 0.0)     # the float ReLU; the integer path clamps codes at z_y
            elif kind in ("maxpool", "flatten"):
                xh = layer.forward(xh)
            elif kind == "relu":
                xh = np.maximum(xh, 0.0)
        return xh

    def forward_codes(self, x) -> np.ndarray:
        """Output codes: round(ŷ / s_y) + z_y (exact: ŷ is a code times s_y in float64)."""
        qp = self.integer_model.output_qparams
        s = np.float64(np.asarray(qp.scale, dtype=np.float32))
        z = np.int64(np.asarray(qp.zero_point).astype(np.int64))
        return (np.rint(self._run(x) / s).astype(np.int64) + z).astype(qp.dtype.np_dtype)

    def forward(self, x):
        return self._run(x)

    def backward(self, dy):
        raise ValidationError("SimulatedModel", "inference only", "backward()")


def simulate(model: IntegerModel) -> SimulatedModel:
    """The fake-quant simulation of ``model`` (module docstring)."""
    return SimulatedModel(model)
