"""quantize / dequantize with QParams: thin wrappers over the ONNX golden ops.

The affine map has ONE definition in refcomp: refcomp.ops.quantize_linear
(eq. 1, ONNX QuantizeLinear) and refcomp.ops.dequantize_linear (eq. 2, ONNX
DequantizeLinear). These wrappers only translate a :class:`QParams` into the
ops' inputs and attributes, and add the one thing QParams may carry beyond
ONNX: a narrower integer range (restricted range, reduce_range), applied as a
second saturation (docs/quantization.md eq. 3)::

    q = clip(quantize_linear(x, scale, zero_point), qmin, qmax)

Input policy (the ops'): x must be a float array; float64 is first rounded to
float32 (the ONNX input type). NaN in x raises ValidationError for integer and
float4 outputs; ±Inf saturates to qmin / qmax; empty x gives empty q.

int32 (biases), float16 and bfloat16 are storage types, not outputs of
QuantizeLinear: quantize() rejects them (DTypeError).
"""

from __future__ import annotations

import numpy as np

from ..errors import DTypeError, ValidationError
from ..ops import dequantize_linear, quantize_linear
from .qparams import QParams

__all__ = ["quantize", "dequantize"]

_NOT_QUANTIZE_OUTPUTS = ("int32", "float16", "bfloat16")


def _check_qparams(qparams) -> QParams:
    if not isinstance(qparams, QParams):
        raise DTypeError("qparams", "a refcomp.quant.QParams", type(qparams).__name__)
    return qparams


def _op_layout(qp: QParams) -> dict:
    return {"axis": 1 if qp.axis is None else qp.axis, "block_size": qp.block_size or 0}


def quantize(x, qparams: QParams, *, rounding: str = "half_to_even", saturate: bool = True, backend: str = "auto"):
    """Codes of ``x`` under ``qparams`` (eq. 1 and 3), via refcomp.ops.quantize_linear.

    Parameters
    ----------
    x : float32 / float16 / bfloat16 / float64 array (float64 is rounded to float32 first).
    qparams : the QParams; their layout must fit x.shape.
    rounding : "half_to_even" (ONNX) or "half_away" (TFLite, gemmlowp); integer dtypes.
    saturate : float8 dtypes only: False follows ONNX's non-saturating cast (overflow -> NaN / Inf).

    Returns
    -------
    Array of x's shape and qparams.dtype's storage dtype (ml_dtypes for sub-byte / float8 / float4).
    """
    qp = _check_qparams(qparams)
    if qp.dtype.name in _NOT_QUANTIZE_OUTPUTS:
        raise DTypeError("qparams.dtype", "a QuantizeLinear output type (int2..int16, uint2..uint16, float8, float4)",
                         qp.dtype.name)
    if not isinstance(saturate, (bool, np.bool_)):
        raise ValidationError("saturate", "True or False", repr(saturate))
    x = _float_input(x)
    qp.check_shape(x.shape, "x")
    q = quantize_linear(x, qp.scale, qp.zero_point, saturate=int(saturate), rounding=rounding, backend=backend,
                        **_op_layout(qp))
    if qp.narrowed:
        q = np.clip(q.astype(np.int64), qp.qmin, qp.qmax).astype(qp.dtype.np_dtype)
    return q


def dequantize(q, qparams: QParams, *, backend: str = "auto") -> np.ndarray:
    """Real values ``(q - zero_point)·scale`` (eq. 2), via refcomp.ops.dequantize_linear.

    q must have qparams.dtype's storage dtype. Returns float32 (the scale's dtype
    if the scale is float16 / bfloat16).
    """
    qp = _check_qparams(qparams)
    if not isinstance(q, np.ndarray):
        raise DTypeError("q", "a numpy.ndarray", type(q).__name__)
    if q.dtype != qp.dtype.np_dtype:
        raise DTypeError("q", f"an array of dtype {qp.dtype.name} (qparams.dtype)", f"dtype {q.dtype}")
    qp.check_shape(q.shape, "q")
    # ONNX DequantizeLinear has no int32 zero point (biases are symmetric): said here, where the
    # user's argument is qparams, rather than by the op about its x_zero_point
    if qp.dtype.name == "int32" and qp.zero_point.any():
        raise ValidationError("qparams.zero_point", "0 for int32 codes (ONNX DequantizeLinear)",
                              f"{int(np.count_nonzero(qp.zero_point))} non-zero")
    return dequantize_linear(q, qp.scale, qp.zero_point, backend=backend, **_op_layout(qp))


def _float_input(x) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise DTypeError("x", "a numpy.ndarray", type(x).__name__)
    if x.dtype == np.float64:
        return x.astype(np.float32)
    return x
