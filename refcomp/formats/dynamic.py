"""DynamicQuantized: an integer weight whose layer input is quantized per call ("dynamic quantization").

The weight is stored as a 2-D QTensor, int8 (or uint8) codes q_w (out, in)
with a float32 scale s_w per output channel (or one per tensor) and zero
point z_w; the input x (batch, in) float32 is quantized when the product
runs, from its own range, and the product is integer (onnxruntime's
dynamic quantization: the DynamicQuantizeLinear + MatMulInteger graph;
docs/gptq_and_ptq.md §6)::

    (q_x, s_x, z_x) = DynamicQuantizeLinear(x)      uint8 [batch, in], float32 [], uint8 []:
                                                     range of x widened to contain 0
    acc = MatMulInteger(q_x, q_wᵀ, z_x, z_w)         int32 [batch, out], exact
    y   = float32(acc) · float32(s_x · s_w[o])       float32 [batch, out]          (D1)

With ``per_token=True`` each row of x (a token of a transformer) gets its own
range: (q_x, s_x[b], z_x[b]) = refcomp.ops.dynamic_quantize_rows(x), MatMulInteger
takes z_x as its per-row a_zero_point, and y[b, o] = float32(acc[b, o]) ·
float32(s_x[b] · s_w[o])                                                      (D2)

``matmul`` returns y without a bias: the layer adds its float bias (Linear,
Conv2d), as the graph's Add after the Mul does. Both ops run through
refcomp.ops (one definition each: ONNX DynamicQuantizeLinear-11 and
MatMulInteger-10). No calibration is needed and the output is float, so
there is no output scale.

A Conv2d (groups = 1) holds the weight as its (out, C·kh·kw) im2col matrix
and multiplies the im2col rows of its padded input. DynamicQuantizeLinear
then sees the receptive fields instead of x; their range is the range of x
widened to contain 0 (the padding is 0) whenever every input pixel lies in
some receptive field (always with stride 1, as in the LeNets), so s_x and
z_x and therefore y equal ConvInteger on the quantized x. A convolution that
skips pixels (a stride beyond the dilated kernel, a last row the stride steps
over) quantizes only the pixels it reads.

Storage (:attr:`nbytes`) is the QTensor's: codes, scales, zero points if not
all 0. Fields (a file): the QTensor as the part ``weight``. q_wᵀ is held as a
:class:`refcomp.ops.PackedWeight`, made once per weight (the C / Numba kernels'
packed layout on the first product), so no product re-packs it; that is a
cache, not storage: it is neither counted, saved nor copied.

Source: ONNX operator specs DynamicQuantizeLinear (opset 11) and
MatMulInteger (opset 10); onnxruntime.quantization.quantize_dynamic.
"""

from __future__ import annotations

import numpy as np

from ..checks import float_array
from ..errors import DTypeError, FileFormatError, ShapeError, ValidationError
from ..ops import (
    dynamic_quantize_linear,
    dynamic_quantize_rows,
    matmul_integer,
    pack_weight,
)
from .base import WeightFormat, check_field_names
from .qtensor import QTensor

__all__ = ["DynamicQuantized"]


class DynamicQuantized(WeightFormat):
    """A 2-D int8 / uint8 QTensor weight multiplied by the per-call quantized input (eq. D1).

    weight : QTensor (out, in), dtype int8 or uint8, QParams per tensor or per
        output channel (axis 0), full or narrowed range.
    per_token : quantize each input row with its own range (eq. D2) instead of
        one range for the whole input (eq. D1).
    """

    trainable = False

    def __init__(self, weight: QTensor, *, per_token: bool = False):
        if not isinstance(per_token, (bool, np.bool_)):
            raise DTypeError("per_token", "a bool", type(per_token).__name__)
        self.per_token = bool(per_token)
        if not isinstance(weight, QTensor):
            raise DTypeError("weight", "a refcomp.formats.QTensor", type(weight).__name__)
        qp = weight.qparams
        if qp.dtype.name not in ("int8", "uint8"):
            raise DTypeError("weight", "int8 or uint8 codes (MatMulInteger's weight types)", qp.dtype.name)
        if len(weight.shape) != 2:
            raise ShapeError("weight", "a 2-D (out, in) QTensor (a kernel as its im2col matrix)",
                             f"shape {weight.shape}")
        if not (qp.per_tensor or (qp.per_axis and qp.axis == 0)):
            raise ValidationError("weight", "QParams per tensor or per output channel (axis 0)", qp.granularity)
        self.weight = weight
        self.shape = weight.shape
        # B of MatMulInteger is q_wᵀ (in, out); its zero point runs along the columns (one per output).
        # Packed once here, not per product: a cache beside the QTensor, never stored (fields, nbytes)
        # and dropped by copies (PackedWeight.__getstate__), so a deep copy rebuilds it on first use.
        zp = qp.zero_point
        self._weight_t = pack_weight(weight.data.T, zp if np.any(zp.astype(np.int64) != 0) else None)
        self._scale = qp.scale.astype(np.float32)

    def to_dense(self) -> np.ndarray:
        """The dequantized weight (q_w − z_w)·s_w, float32 (out, in): what the product approximates."""
        return self.weight.to_dense()

    def matmul(self, x: np.ndarray) -> np.ndarray:
        """y of eq. (D1), or (D2) per token, for x (batch, in): float32 (batch, out), no bias."""
        # finiteness is checked once, by the input quantizer (ValidationError naming x)
        x = float_array(x, "x", dtype=np.float32, ndim=2, finite=False)
        if x.shape[1] != self.shape[1]:
            raise ShapeError("x", f"(batch, {self.shape[1]})", f"shape {x.shape}")
        if self.per_token:
            q_x, s_x, z_x = dynamic_quantize_rows(x)
            s = s_x[:, None] * self._scale
        else:
            q_x, s_x, z_x = dynamic_quantize_linear(x)
            s = s_x * self._scale
        acc = matmul_integer(q_x, self._weight_t, z_x)
        # float32(acc) · float32(s_x · s_w): the cast happens inside the multiply (the same
        # int32 -> float32 conversion as astype), one pass over acc instead of two
        return np.multiply(acc, s, dtype=np.float32)

    @property
    def nbytes(self) -> int:
        return self.weight.nbytes

    @property
    def storage_bits(self) -> int:
        return self.weight.storage_bits

    def fields(self) -> dict:
        """The QTensor, stored as the part ``weight`` (refcomp.io.model_file), and
        ``per_token`` (a uint8 scalar 1) when the input is quantized per row."""
        if self.per_token:
            return {"weight": self.weight, "per_token": np.array(1, np.uint8)}
        return {"weight": self.weight}

    @classmethod
    def from_fields(cls, fields: dict) -> DynamicQuantized:
        """Inverse of :meth:`fields`; FileFormatError for anything it did not write."""
        per_token = isinstance(fields, dict) and "per_token" in fields
        check_field_names(fields, {"weight", "per_token"} if per_token else {"weight"})
        if per_token:
            flag = fields["per_token"]
            if not isinstance(flag, np.ndarray) or flag.shape != () or flag.dtype != np.uint8 or flag != 1:
                raise FileFormatError("fields['per_token']: expected the uint8 scalar 1")
        try:
            return cls(fields["weight"], per_token=per_token)
        except ValidationError as exc:
            raise FileFormatError(f"fields: {exc}") from None

    def __repr__(self) -> str:
        tokens = ", per_token=True" if self.per_token else ""
        return f"DynamicQuantized(shape={self.shape}, {self.weight.qparams!r}{tokens})"
