"""StaticQuantized: an integer weight whose layer input is quantized with calibrated, fixed parameters.

The static counterpart of DynamicQuantized (refcomp/formats/dynamic.py): the
input's scale and zero point were chosen once, on calibration data, so
nothing about the range is computed at run time ("static W8A8" with a float
output, onnxruntime's QDQ MatMul whose output is not requantized). With an
optional per-input-channel smoothing vector m (SmoothQuant, Xiao et al. 2023,
arXiv:2211.10438 eq. 3: X·W = (X·diag(m)⁻¹)·(diag(m)·W)) whose inverse is
already folded into the stored weight::

    x̃   = x / m                                     float32 [batch, in]  (m = 1 without smoothing)
    q_x = QuantizeLinear(x̃, s_x, z_x)               uint8 [batch, in], per tensor, saturating
    acc = MatMulInteger(q_x, q_wᵀ, z_x, z_w)         int32 [batch, out], exact
    y   = float32(acc) · float32(s_x · s_w[o])       float32 [batch, out]                     (S1)

q_w (out, in) are the int8 codes of W·diag(m) (per output channel). A value of
x̃ outside the calibrated range saturates at 0 or 255: that clipping, and the
step s_x fixed for every input, are what static quantization trades for not
scanning the input (compare eq. D1).

Storage (:attr:`nbytes`): the QTensor's, plus s_x, z_x and m (float32 [in]).
Fields: ``weight`` (the QTensor), ``input_qparams`` ([s_x, z_x] as float64, both
exact) and, with smoothing, ``smooth`` (float32 [in]).

Source: ONNX QuantizeLinear-13 and MatMulInteger-10; Jacob et al. 2018 §2.
"""

from __future__ import annotations

import numpy as np

from ..checks import float_array
from ..errors import DTypeError, FileFormatError, ShapeError, ValidationError
from ..ops import matmul_integer, pack_weight, quantize_linear
from ..quant import QParams
from .base import WeightFormat, check_field_names
from .qtensor import QTensor

__all__ = ["StaticQuantized"]


class StaticQuantized(WeightFormat):
    """A 2-D int8 QTensor weight times the input quantized with fixed QParams (eq. S1).

    weight : QTensor (out, in), int8, QParams per tensor or per output channel (axis 0).
    input_qparams : QParams of the input, uint8, per tensor.
    smooth : optional float32 (in,) > 0, finite: the input is divided by it first.
    """

    trainable = False

    def __init__(self, weight: QTensor, input_qparams: QParams, *, smooth=None):
        if not isinstance(weight, QTensor):
            raise DTypeError("weight", "a refcomp.formats.QTensor", type(weight).__name__)
        qp = weight.qparams
        if qp.dtype.name != "int8" or len(weight.shape) != 2:
            raise ShapeError("weight", "a 2-D (out, in) int8 QTensor", f"{qp.dtype.name} {weight.shape}")
        if not (qp.per_tensor or (qp.per_axis and qp.axis == 0)):
            raise ValidationError("weight", "QParams per tensor or per output channel (axis 0)", qp.granularity)
        if not isinstance(input_qparams, QParams):
            raise DTypeError("input_qparams", "a refcomp.quant.QParams", type(input_qparams).__name__)
        if input_qparams.dtype.name != "uint8" or not input_qparams.per_tensor:
            raise ValidationError("input_qparams", "uint8 per-tensor QParams",
                                  f"{input_qparams.dtype.name} {input_qparams.granularity}")
        if smooth is not None:
            smooth = np.asarray(smooth)
            if smooth.dtype != np.float32 or smooth.shape != (weight.shape[1],):
                raise ShapeError("smooth", f"float32 ({weight.shape[1]},)", f"{smooth.dtype} {smooth.shape}")
            if not (np.isfinite(smooth).all() and (smooth > 0).all()):
                raise ValidationError("smooth", "finite values > 0", "a zero, negative or non-finite value")
            smooth = smooth.copy()
            smooth.flags.writeable = False
        self.weight, self.input_qparams, self.smooth = weight, input_qparams, smooth
        self.shape = weight.shape
        # B of MatMulInteger, q_wᵀ (in, out) with its zero point, packed once (a cache, as in DynamicQuantized)
        zp = qp.zero_point
        self._weight_t = pack_weight(weight.data.T, zp if np.any(zp.astype(np.int64) != 0) else None)
        self._scale = np.float32(input_qparams.scale) * qp.scale.astype(np.float32)  # float32 · float32

    def to_dense(self) -> np.ndarray:
        """The weight the product stands for, W ≈ (q_w − z_w)·s_w / m per column (float32 (out, in))."""
        w = self.weight.to_dense()
        return w if self.smooth is None else w / self.smooth  # float32 / float32

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """q_x of eq. (S1): uint8 (batch, in)."""
        xs = x if self.smooth is None else x / self.smooth
        return quantize_linear(xs, self.input_qparams.scale, self.input_qparams.zero_point)

    def matmul(self, x: np.ndarray) -> np.ndarray:
        """y of eq. (S1) for x (batch, in): float32 (batch, out), no bias."""
        x = float_array(x, "x", dtype=np.float32, ndim=2)
        if x.shape[1] != self.shape[1]:
            raise ShapeError("x", f"(batch, {self.shape[1]})", f"shape {x.shape}")
        acc = matmul_integer(self.quantize_input(x), self._weight_t, self.input_qparams.zero_point)
        return np.multiply(acc, self._scale, dtype=np.float32)  # float32(acc) · scale, one pass

    @property
    def nbytes(self) -> int:
        extra = 4 + 1 + (0 if self.smooth is None else self.smooth.nbytes)
        return self.weight.nbytes + extra

    def fields(self) -> dict:
        qp = self.input_qparams
        out = {"weight": self.weight,
               "input_qparams": np.array([float(np.float32(qp.scale)), float(qp.zero_point)], np.float64)}
        if self.smooth is not None:
            out["smooth"] = self.smooth
        return out

    @classmethod
    def from_fields(cls, fields: dict) -> StaticQuantized:
        """Inverse of :meth:`fields`; FileFormatError for anything it did not write."""
        smooth = isinstance(fields, dict) and "smooth" in fields
        check_field_names(fields, {"weight", "input_qparams", "smooth"} if smooth else {"weight", "input_qparams"})
        iq = fields["input_qparams"]
        if not isinstance(iq, np.ndarray) or iq.dtype != np.float64 or iq.shape != (2,):
            raise FileFormatError("fields['input_qparams']: expected float64 [scale, zero_point]")
        s, z = iq
        if not (np.isfinite(s) and s > 0 and float(np.float32(s)) == s and z == int(z) and 0 <= z <= 255):
            raise FileFormatError(f"fields['input_qparams']: not a float32 scale > 0 and a uint8 zero point: {iq}")
        try:
            return cls(fields["weight"], QParams(np.float32(s), np.uint8(z), "uint8"),
                       smooth=fields["smooth"] if smooth else None)
        except ValidationError as exc:
            raise FileFormatError(f"fields: {exc}") from None

    def __repr__(self) -> str:
        qp = self.input_qparams
        sm = "" if self.smooth is None else ", smoothed"
        return (f"StaticQuantized(shape={self.shape}, {self.weight.qparams!r}, "
                f"input scale={float(qp.scale):.6g} zero_point={int(qp.zero_point)}{sm})")
