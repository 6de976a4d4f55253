"""Quantized data types: the one table every part of refcomp reads.

A quantized dtype is described by a :class:`QDType`: its name, its ONNX
``TensorProto`` enum value, the NumPy dtype that stores it (ml_dtypes for the
sub-byte integers and the small floats, as ``onnx.numpy_helper.to_array``
returns them) and its representable range.

Integer types (two's complement for signed)::

    name    bits  qmin      qmax      storage
    int2    2     -2        1         ml_dtypes.int2
    uint2   2     0         3         ml_dtypes.uint2
    int4    4     -8        7         ml_dtypes.int4
    uint4   4     0         15        ml_dtypes.uint4
    int8    8     -128      127       numpy.int8
    uint8   8     0         255       numpy.uint8
    int16   16    -32768    32767     numpy.int16
    uint16  16    0         65535     numpy.uint16
    int32   32    -2^31     2^31-1    numpy.int32   (biases)

Float types: float16, bfloat16, float8 e4m3fn / e4m3fnuz / e5m2 / e5m2fnuz
(Micikevicius et al. 2022, "FP8 Formats for Deep Learning"; ONNX opset 19) and
float4 e2m1 (OCP Microscaling spec v1.0; ONNX opset 23). For these ``qmin`` /
``qmax`` are the most negative / largest finite values.
"""

from __future__ import annotations

from dataclasses import dataclass

import ml_dtypes
import numpy as np

from ..errors import DTypeError

__all__ = ["QDType", "QDTYPES", "qdtype", "ONNX_FLOAT_TYPES"]


@dataclass(frozen=True)
class QDType:
    name: str
    onnx: int  # onnx.TensorProto.DataType value
    np_dtype: np.dtype
    is_float: bool
    bits: int
    qmin: float
    qmax: float

    @property
    def signed(self) -> bool:
        return self.qmin < 0

    def __repr__(self) -> str:  # short, for error messages
        return self.name


def _int(name: str, onnx: int, dt, bits: int, signed: bool) -> QDType:
    if signed:
        lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    else:
        lo, hi = 0, 2**bits - 1
    return QDType(name, onnx, np.dtype(dt), False, bits, lo, hi)


def _flt(name: str, onnx: int, dt, bits: int) -> QDType:
    fi = ml_dtypes.finfo(dt)
    return QDType(name, onnx, np.dtype(dt), True, bits, float(fi.min), float(fi.max))


QDTYPES: dict[str, QDType] = {
    q.name: q
    for q in [
        _int("int2", 26, ml_dtypes.int2, 2, True),
        _int("uint2", 25, ml_dtypes.uint2, 2, False),
        _int("int4", 22, ml_dtypes.int4, 4, True),
        _int("uint4", 21, ml_dtypes.uint4, 4, False),
        _int("int8", 3, np.int8, 8, True),
        _int("uint8", 2, np.uint8, 8, False),
        _int("int16", 5, np.int16, 16, True),
        _int("uint16", 4, np.uint16, 16, False),
        _int("int32", 6, np.int32, 32, True),
        _flt("float16", 10, np.float16, 16),
        _flt("bfloat16", 16, ml_dtypes.bfloat16, 16),
        _flt("float8_e4m3fn", 17, ml_dtypes.float8_e4m3fn, 8),
        _flt("float8_e4m3fnuz", 18, ml_dtypes.float8_e4m3fnuz, 8),
        _flt("float8_e5m2", 19, ml_dtypes.float8_e5m2, 8),
        _flt("float8_e5m2fnuz", 20, ml_dtypes.float8_e5m2fnuz, 8),
        _flt("float4_e2m1fn", 23, ml_dtypes.float4_e2m1fn, 4),
    ]
}

_BY_ONNX = {q.onnx: q for q in QDTYPES.values()}
_BY_NP = {q.np_dtype: q for q in QDTYPES.values()}
_ALIASES = {
    "float8e4m3fn": "float8_e4m3fn",
    "float8e4m3fnuz": "float8_e4m3fnuz",
    "float8e5m2": "float8_e5m2",
    "float8e5m2fnuz": "float8_e5m2fnuz",
    "float4e2m1": "float4_e2m1fn",
    "float4_e2m1": "float4_e2m1fn",
    "fp16": "float16",
    "bf16": "bfloat16",
}

# ONNX enum values of the float tensors a scale / a dequantized output may have.
ONNX_FLOAT_TYPES = {1: np.dtype(np.float32), 10: np.dtype(np.float16), 16: np.dtype(ml_dtypes.bfloat16)}


def qdtype(spec, argument: str = "dtype") -> QDType:
    """Resolve a quantized dtype from a QDType, a name, an ONNX enum int or a NumPy dtype.

    Raises DTypeError naming ``argument`` for anything that is not a quantized dtype.
    """
    if isinstance(spec, QDType):
        return spec
    if isinstance(spec, str):
        key = _ALIASES.get(spec.lower(), spec.lower())
        if key in QDTYPES:
            return QDTYPES[key]
    elif isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        if int(spec) in _BY_ONNX:
            return _BY_ONNX[int(spec)]
    else:
        try:
            dt = np.dtype(spec)
        except TypeError:
            dt = None
        if dt is not None and dt in _BY_NP:
            return _BY_NP[dt]
    raise DTypeError(argument, f"a quantized dtype ({', '.join(QDTYPES)}) or its ONNX enum", repr(spec))
