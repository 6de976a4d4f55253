"""Power-of-two (logarithmic) models with shift-only integer inference.

Weights: every Conv2d / Linear weight is rounded to ±2^e in the log domain
(lowbit.power_of_two_quantize, Miyashita, Lee, Murmann 2016, arXiv:1603.01025
§3: ``bits`` − 1 bits of exponent, one of sign), per layer, e_max from
max|W|. ``prepare_power_of_two`` gives a trainable copy (the weight computes
as its power-of-two rounding; gradient lowbit.power_of_two_grad, the
saturating STE) for ``refcomp.nn.train`` to fine-tune.

Activations: integer codes with power-of-two scales 2^f (``act_bits`` bits,
unsigned after a ReLU, signed otherwise), f = ceil(log2(max|v| / qmax)) from
the calibration batch run through the power-of-two float model, so the
largest calibrated value lands on a code <= qmax. The input is quantized once
(round half to even, the only float step); then every compute stage is
refcomp.ops.shift_linear (eqs. P1-P2): products are shifts, the bias is an
int64 at the accumulator's scale 2^(f_x + e_min), the requantization a
rounding right shift by r = f_y − f_x − e_min, the ReLU the clip at 0.
Convolutions run the same op on im2col's columns (padding is code 0, the
real 0); max-pooling compares codes. The last layer returns its accumulator
times 2^(f_x + e_min), exact in float64.
"""

from __future__ import annotations

import math

import numpy as np

from ...checks import integer
from ...errors import OverflowRiskError, ValidationError
from ...formats.dense import Dense
from ...nn.layers import Linear
from ...ops import shift_linear
from ...ops.im2col import im2col
from .lowbit import power_of_two_grad, power_of_two_quantize
from .model_graph import prepare, stages_of
from .qat import FakeQuantized, fake_quantized_model

__all__ = ["PowerOfTwoWeight", "prepare_power_of_two", "power_of_two_model", "ShiftModel"]


class PowerOfTwoWeight:
    """ŵ = power_of_two_quantize(W, bits) (forward), the saturating STE of power_of_two_grad (backward)."""

    def __init__(self, bits: int):
        self.bits = bits

    def forward(self, w):
        self._w, p = w, power_of_two_quantize(w, bits=self.bits)
        self._e_max = p.max_exponent
        return p.to_dense().astype(w.dtype)

    def backward(self, g):
        return power_of_two_grad(self._w, g, max_exponent=self._e_max).astype(g.dtype)


def prepare_power_of_two(model, bits: int = 4):
    """A trainable copy of ``model`` (BatchNorm folded) whose Conv2d / Linear weights compute as ±2^e."""
    b = integer(bits, "bits", minimum=2, maximum=8)
    return fake_quantized_model(prepare(model), lambda _name: PowerOfTwoWeight(b))


def _latent(layer):
    w = layer.weight
    return w.data if isinstance(w, FakeQuantized) else w.to_dense()


def _exponent(peak: float, qmax: int) -> int:
    """f with max|v| / 2^f <= qmax: the smallest power-of-two scale that does not clip the calibration."""
    return math.ceil(math.log2(peak / qmax)) if peak > 0 else 0


class ShiftModel:
    """The integer model: ``forward(x)`` → float64 logits; ``stages`` holds each stage's integers."""

    def __init__(self, stages, f_in, in_range):
        self.stages, self.f_in, self.in_range = stages, f_in, in_range

    def quantize_input(self, x):
        return np.clip(np.rint(np.asarray(x, np.float64) * 2.0 ** -self.f_in), *self.in_range).astype(np.int64)

    def forward(self, x):
        q = self.quantize_input(x)
        for st in self.stages:
            kind = st["kind"]
            if kind == "compute":
                q = _compute(st, q)
            elif kind == "maxpool":
                q = st["layer"].forward(q.astype(np.float64)).astype(np.int64)  # max of codes is exact
            elif kind == "relu":
                q = np.maximum(q, 0)
            elif kind == "flatten":
                q = q.reshape(q.shape[0], -1)
        return q

    __call__ = forward


def _compute(st, q):
    layer = st["layer"]
    lo, hi = st["range"]
    if isinstance(layer, Linear):
        acc = shift_linear(q, st["sign"], st["shift"], st["bias"], st["r"], qmin=lo, qmax=hi)
    else:
        n, o, oh, ow = layer.output_shape(q.shape)
        ph, pw = layer.padding
        qp = np.pad(q, ((0, 0), (0, 0), (ph, ph), (pw, pw)))  # code 0 is the real 0
        cols = im2col(qp, layer.kernel_size, layer.stride, layer.dilation, (oh, ow)).T
        acc = shift_linear(cols, st["sign"], st["shift"], st["bias"], st["r"], qmin=lo, qmax=hi)
        acc = acc.reshape(n, oh, ow, o).transpose(0, 3, 1, 2)
    return acc * 2.0 ** st["acc_exponent"] if st["last"] else acc


def power_of_two_model(model, calibration_x, *, bits: int = 4, act_bits: int = 8):
    """(ShiftModel of ``model`` (plain or from prepare_power_of_two), report {"bytes", "layers"})."""
    b = integer(bits, "bits", minimum=2, maximum=8)
    ab = integer(act_bits, "act_bits", minimum=2, maximum=16)
    folded = prepare(model)
    stages = stages_of(folded)
    for s in stages:
        if s.kind == "compute" and getattr(s.layer, "groups", 1) != 1:
            raise ValidationError(f"model layer {s.name!r}", "a Conv2d with groups=1", f"groups {s.layer.groups}")
    pots = {}
    for s in stages:  # the float model the integer one computes: weights ±2^e
        if s.kind == "compute":
            pots[s.name] = power_of_two_quantize(_latent(s.layer), bits=b)
            s.layer.weight = Dense(pots[s.name].to_dense())
    x = np.asarray(calibration_x, np.float32)
    if x.size == 0:
        raise ValidationError("calibration_x", "a non-empty batch", f"shape {x.shape}")
    unsigned = float(x.min()) >= 0
    in_range = (0, 2**ab - 1) if unsigned else (-(2 ** (ab - 1)), 2 ** (ab - 1) - 1)
    f = f_in = _exponent(float(np.abs(x).max()), in_range[1])
    v = x
    out, nbytes, last = [], 1, max(i for i, s in enumerate(stages) if s.kind == "compute")
    for i, s in enumerate(stages):
        v = s.forward_float(v)
        if s.kind != "compute":
            out.append({"kind": s.kind, "layer": s.layer})
            continue
        p = pots[s.name]
        w_sign = p.sign.reshape(p.shape[0], -1)
        shift = (p.exponent.astype(np.int64) - p.min_exponent).reshape(p.shape[0], -1)
        acc_e = f + p.min_exponent
        bias = s.layer.bias
        bias_int = None
        if bias is not None:
            scaled = np.rint(bias.data.astype(np.float64) * 2.0 ** -acc_e)
            # shift_linear refuses |bias| >= 2^62 (eq. P1's exact int64 sum): say so here, where the
            # layer is named, instead of casting past int64 and reporting a meaningless size
            if not np.all(np.abs(scaled) < 2.0**62):
                raise OverflowRiskError(f"model layer {s.name!r} bias", "|bias| / 2^acc_exponent < 2^62",
                                        f"max |bias| {float(np.max(np.abs(bias.data))):.3g} at accumulator "
                                        f"scale 2^{acc_e} (fewer bits or act_bits give a coarser scale)")
            bias_int = scaled.astype(np.int64)
        st = {"kind": "compute", "name": s.name, "layer": s.layer, "sign": w_sign, "shift": shift, "bias": bias_int,
              "e_min": p.min_exponent, "f_in": f, "acc_exponent": acc_e, "last": i == last}
        if i == last:
            st.update(r=0, range=(-(2**62), 2**62 - 1), f_out=None)
        else:
            rng_ = (0, 2**ab - 1) if s.relu else (-(2 ** (ab - 1)), 2 ** (ab - 1) - 1)
            f_out = _exponent(float(np.abs(v).max()), rng_[1])
            st.update(r=f_out - acc_e, range=rng_, f_out=f_out)
            f = f_out
            nbytes += 1
        # bias stored as int32 when it fits (it does unless the accumulator's scale is tiny), else int64
        nbytes += p.nbytes + (0 if bias is None else bias.data.size * (4 if np.abs(bias_int).max() < 2**31 else 8))
        out.append(st)
    return ShiftModel(out, f_in, in_range), {"bytes": int(nbytes), "bits": b, "act_bits": ab,
                                             "layers": [s["name"] for s in out if s["kind"] == "compute"]}
