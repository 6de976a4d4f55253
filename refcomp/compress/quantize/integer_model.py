"""Integer-only inference: int8/uint8 codes in, codes out, int32 accumulators.

Jacob et al. 2018 (arXiv:1712.05877) §2: with per-tensor activation
parameters (s_x, z_x), (s_y, z_y) and per-output-channel symmetric weights
(s_w[o], z_w = 0), a Conv2d / Linear layer y = W x + b becomes, in integers
(docs/gptq_and_ptq.md §7, eqs. I1-I4)::

    acc[o]  = Σ_k (q_x[k] − z_x) · q_w[o, k]  +  q_b[o]                     (I1)
    q_b[o]  = round_half_even(b[o] / (s_x · s_w[o]))          int32          (I2)
    M[o]    = s_x · s_w[o] / s_y  ≈  m[o] · 2^(shift[o] − 31)                (I3)
    q_y[o]  = clip(MultiplyByQuantizedMultiplier(acc[o], m[o], shift[o]) + z_y,
                   lo, q_max),   lo = z_y if a ReLU is fused else q_min       (I4)

(I1) runs through refcomp.ops.matmul_integer (exact, int32; its fast kernels
are used when the accumulator provably fits int32) — a Conv2d as im2col of
the codes times the kernel matrix, or refcomp.ops.conv_integer itself
(``conv_impl``; the two are equal, integer sums either way) — and (I4)
through refcomp.ops.requantize(method="fixed_point") — gemmlowp's
SaturatingRoundingDoublingHighMul then RoundingDivideByPOT. The fused ReLU
is the clamp at z_y: the code z_y is the real 0, so max(q, z_y) is exactly
the quantization of relu(dequantized value).

MaxPool2d works on codes directly: dequantization x = s·(q − z) is strictly
increasing (s > 0), so the maximum of the codes is the code of the maximum,
and the pooled tensor keeps its (s, z). Flatten reshapes codes. The logits'
codes dequantize to float (a monotone map again: argmax is the same).

refcomp.compress.quantize.simulate computes the same codes with float layers
(the fake-quant simulation); tests/compress/quantize/test_integer_model.py
checks that both give identical codes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...errors import DTypeError, OverflowRiskError, ShapeError, ValidationError
from ...nn.layers.pooling import MaxPool2d
from ...nn.module import Module
from ...ops import conv_integer, matmul_integer
from ...ops.im2col import im2col
from ...ops.requantize import quantize_multiplier, requantize
from ...quant import QParams, dequantize, quantize

__all__ = ["IntegerCompute", "IntegerStage", "IntegerModel", "requantize_codes"]

_I32_MIN, _I32_MAX = -(2**31), 2**31 - 1


def requantize_codes(acc: np.ndarray, stage: "IntegerCompute", channel_axis: int, *, fuse_relu: bool | None = None
                     ) -> np.ndarray:
    """Eq. (I4): int32 accumulators (channel along ``channel_axis``) -> output codes.

    ``fuse_relu`` (default: the stage's ``relu``) applies the clamp at z_y.

    The channel axis is moved last and the rest flattened, so the 2-D
    per-column requantization kernel (refcomp.kernels) is used when registered.
    """
    moved = np.moveaxis(acc, channel_axis, -1)
    shape = moved.shape
    flat = np.ascontiguousarray(moved.reshape(-1, shape[-1]))
    y = requantize(flat, (stage.multiplier, stage.shift), stage.y_qparams.zero_point.astype(np.int64).reshape(()),
                   output_dtype=stage.y_qparams.dtype, method="fixed_point", axis=1)
    if stage.relu if fuse_relu is None else fuse_relu:
        y = np.maximum(y, stage.y_qparams.zero_point)
    return np.moveaxis(y.reshape(shape), -1, channel_axis)


@dataclass
class IntegerCompute:
    """A Conv2d or Linear stage in integers, eqs. (I1)-(I4).

    weight : int8 codes, (O, K) for Linear, (O, C/groups, kh, kw) for Conv2d (z_w = 0)
    weight_scale : float32 (O,), s_w per output channel
    bias : int32 (O,) (eq. I2) or None
    x_qparams, y_qparams : per-tensor QParams (int8 or uint8) of input and output
    multiplier, shift : int32 (O,), eq. (I3) from refcomp.ops.quantize_multiplier
    relu : a ReLU fused as the clamp at z_y
    conv : None for Linear; dict(strides, pads, dilations, group) for Conv2d
    conv_impl : "matmul" (im2col + matmul_integer, the kernel route; groups=1)
        or "conv_integer" (refcomp.ops.conv_integer); both exact, equal results
    """

    name: str
    weight: np.ndarray
    weight_scale: np.ndarray
    bias: np.ndarray | None
    x_qparams: QParams
    y_qparams: QParams
    multiplier: np.ndarray
    shift: np.ndarray
    relu: bool = False
    conv: dict | None = None
    conv_impl: str = "matmul"
    kind: str = field(default="compute", init=False)

    @classmethod
    def build(cls, name, weight_codes, weight_scale, bias_float, x_qparams, y_qparams, *, relu, conv=None):
        """Quantize the bias (I2) and the multiplier (I3) for the given weight codes and scales."""
        s_w = np.asarray(weight_scale, dtype=np.float32)
        s_x = np.float64(np.asarray(x_qparams.scale, dtype=np.float32))
        s_y = np.float64(np.asarray(y_qparams.scale, dtype=np.float32))
        unit = s_x * s_w.astype(np.float64)            # the real value of one accumulator step
        q_b = None
        if bias_float is not None:
            qb = np.rint(np.asarray(bias_float, dtype=np.float64) / unit)
            if np.any(qb < _I32_MIN) or np.any(qb > _I32_MAX):
                raise OverflowRiskError(f"{name}.bias", "b / (s_x·s_w) within int32", f"range [{qb.min()}, {qb.max()}]")
            q_b = qb.astype(np.int32)
        m, sh = quantize_multiplier(unit / s_y)
        return cls(name, np.ascontiguousarray(weight_codes), s_w, q_b, x_qparams, y_qparams,
                   np.asarray(m, np.int32).reshape(-1), np.asarray(sh, np.int32).reshape(-1), bool(relu), conv)

    @property
    def out_channels(self) -> int:
        return self.weight.shape[0]

    def accumulate(self, q: np.ndarray) -> np.ndarray:
        """Eq. (I1): int32 accumulators, bias included (channel axis 1)."""
        zp = np.asarray(self.x_qparams.zero_point).reshape(())
        if self.conv is None:
            if q.ndim != 2 or q.shape[1] != self.weight.shape[1]:
                raise ShapeError(f"{self.name} input", f"(N, {self.weight.shape[1]}) codes", q.shape)
            acc = matmul_integer(q, self._weight_t(), zp, None)
        elif self.conv_impl == "matmul" and self.conv["group"] == 1:
            acc = self._conv_by_matmul(q, zp)
        else:
            acc = conv_integer(q, self.weight, zp, None, **self.conv)
        if self.bias is None:
            return acc
        b = self.bias.reshape((-1,) + (1,) * (acc.ndim - 2))
        total = acc.astype(np.int64) + b
        if total.size and (total.min() < _I32_MIN or total.max() > _I32_MAX):
            raise OverflowRiskError(f"{self.name} accumulator", "acc + bias within int32",
                                    f"range [{total.min()}, {total.max()}]")
        return total.astype(np.int32)

    def _weight_t(self) -> np.ndarray:
        wt = getattr(self, "_wt", None)
        if wt is None:
            # (K, O): B of MatMulInteger; a kernel (O, C, kh, kw) as its im2col matrix (O, C·kh·kw)
            wt = self._wt = np.ascontiguousarray(self.weight.reshape(self.weight.shape[0], -1).T)
        return wt

    def _conv_by_matmul(self, q: np.ndarray, zp) -> np.ndarray:
        """ConvInteger (eq. CI1 of refcomp.ops.conv_integer) as im2col + MatMulInteger.

        The input is padded with the code z_x (the real 0, contributing 0 to
        every sum, as ConvInteger pads); each output position's receptive
        field becomes a row of the (N·OH·OW, C·kh·kw) code matrix. The sums are
        the same integers, so the result equals conv_integer exactly (tested);
        this route reaches the registered matmul_integer kernels.
        """
        if q.ndim != 4 or q.shape[1] != self.weight.shape[1]:
            raise ShapeError(f"{self.name} input", f"(N, {self.weight.shape[1]}, H, W) codes", q.shape)
        kh, kw = self.weight.shape[2:]
        (sh, sw), (dh, dw) = self.conv["strides"], self.conv["dilations"]
        ph, pw = self.conv["pads"][:2]
        n, _, h, w = q.shape
        oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
        ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        if oh < 1 or ow < 1:
            raise ShapeError(f"{self.name} input", "spatial size at least the dilated kernel", q.shape)
        qp = np.pad(q, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=zp) if ph or pw else q
        cols = np.ascontiguousarray(im2col(qp, (kh, kw), (sh, sw), (dh, dw), (oh, ow)).T)   # (N·OH·OW, K)
        acc = matmul_integer(cols, self._weight_t(), zp, None)                            # (N·OH·OW, O)
        return np.ascontiguousarray(acc.reshape(n, oh, ow, -1).transpose(0, 3, 1, 2))

    def forward_int(self, q: np.ndarray) -> np.ndarray:
        return requantize_codes(self.accumulate(q), self, 1)

    @property
    def nbytes(self) -> int:
        """Stored bytes: int8 weights, int32 bias, int32 multiplier and shift (the runtime's view)."""
        n = self.weight.size + self.multiplier.nbytes + self.shift.nbytes
        return int(n + (self.bias.nbytes if self.bias is not None else 0))


@dataclass
class IntegerStage:
    """A stage without arithmetic on values: "maxpool" (kernel, stride, padding), "relu", "flatten", "identity".

    The codes keep the stage input's QParams (``qparams``).
    """

    kind: str
    name: str
    qparams: QParams
    pool: dict | None = None

    def forward_int(self, q: np.ndarray) -> np.ndarray:
        if self.kind == "maxpool":
            # the pool works on floats; codes of 8-bit types are exact in float32
            y = MaxPool2d(**self.pool).forward(q.astype(np.float32))
            return y.astype(q.dtype)
        if self.kind == "relu":
            return np.maximum(q, self.qparams.zero_point)
        if self.kind == "flatten":
            return q.reshape(q.shape[0], -1)
        return q

    nbytes = 0


class IntegerModel(Module):
    """Integer-only network: ``forward_int`` maps input codes to output codes.

    ``forward(x)`` (what refcomp.nn.evaluate calls) quantizes the float input
    with ``input_qparams``, runs the integer stages and dequantizes the output
    codes to float32 logits. There is nothing to train (no parameters).
    """

    def __init__(self, input_qparams: QParams, stages: list):
        if not stages:
            raise ValidationError("stages", "a non-empty list", stages)
        self.input_qparams = input_qparams
        self.stages = list(stages)

    @property
    def output_qparams(self) -> QParams:
        last = self.stages[-1]
        return last.y_qparams if isinstance(last, IntegerCompute) else last.qparams

    def quantize_input(self, x) -> np.ndarray:
        return quantize(np.asarray(x, dtype=np.float32), self.input_qparams)

    def forward_int(self, q: np.ndarray) -> np.ndarray:
        if q.dtype != self.input_qparams.dtype.np_dtype:
            raise DTypeError("q", f"codes of dtype {self.input_qparams.dtype.name}", q.dtype)
        for s in self.stages:
            q = s.forward_int(q)
        return q

    def forward(self, x):
        return dequantize(self.forward_int(self.quantize_input(x)), self.output_qparams)

    def backward(self, dy):
        raise ValidationError("IntegerModel", "inference only (train the float or QAT model)", "backward()")

    @property
    def nbytes(self) -> int:
        """Bytes of everything a runtime stores: codes, int32 biases, multipliers, shifts."""
        return int(sum(s.nbytes for s in self.stages))

    def __repr__(self) -> str:
        rows = [f"  {s.name}: {s.kind}" + (f" {s.weight.shape} relu={s.relu}" if isinstance(s, IntegerCompute) else "")
                for s in self.stages]
        return "IntegerModel(\n" + "\n".join(rows) + "\n)"
