"""Packing sub-byte codes (int4, uint4, int2, uint2, float4 e2m1) into bytes, ONNX's layout.

ONNX stores 4-bit tensors two elements per byte and 2-bit tensors four per
byte, the first element in the least significant bits (ONNX IR spec, "4-bit
and 2-bit data types"; the flattened tensor is packed in row-major order and
the last byte is padded with zero bits)::

    byte j = Σ_i code[j·n + i] << (bits·i),   n = 8 / bits,  i = 0 .. n-1

A code is the element's bit pattern: two's complement for the signed
integers (-1 -> 0b1111), the e2m1 encoding for float4. ml_dtypes keeps each
element in one byte with the code in the low bits, which is what
``view(np.uint8)`` shows.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import DTypeError, ShapeError, ValidationError
from ..numerics.dtypes import qdtype

__all__ = ["pack_bits", "unpack_bits", "packed_size"]


def _sub_byte(dtype, argument: str):
    dt = qdtype(dtype, argument)
    if dt.bits not in (2, 4):
        raise DTypeError(argument, "a 2- or 4-bit dtype (int4, uint4, int2, uint2, float4_e2m1fn)", dt.name)
    return dt


def packed_size(n: int, bits: int) -> int:
    """Bytes that hold ``n`` codes of ``bits`` bits: ceil(n·bits / 8)."""
    return math.ceil(n * bits / 8)


def pack_bits(q: np.ndarray) -> np.ndarray:
    """The 1-D uint8 array packing the codes of ``q`` (row-major), ``packed_size(q.size, bits)`` bytes."""
    if not isinstance(q, np.ndarray):
        raise DTypeError("q", "a numpy.ndarray", type(q).__name__)
    dt = _sub_byte(q.dtype, "q")
    per_byte = 8 // dt.bits
    codes = q.reshape(-1).view(np.uint8) & np.uint8((1 << dt.bits) - 1)
    pad = (-codes.size) % per_byte
    codes = np.concatenate([codes, np.zeros(pad, np.uint8)]).reshape(-1, per_byte)
    shifts = (np.arange(per_byte) * dt.bits).astype(np.uint8)
    return np.bitwise_or.reduce(codes << shifts, axis=1).astype(np.uint8)


def unpack_bits(packed: np.ndarray, dtype, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of :func:`pack_bits`: an array of ``dtype`` and ``shape``."""
    dt = _sub_byte(dtype, "dtype")
    if not isinstance(packed, np.ndarray) or packed.dtype != np.uint8 or packed.ndim != 1:
        raise DTypeError("packed", "a 1-D uint8 array", getattr(packed, "dtype", type(packed).__name__))
    try:
        shape = tuple(int(d) for d in shape)
    except (TypeError, ValueError):
        raise ValidationError("shape", "a tuple of ints", repr(shape)) from None
    if any(d < 0 for d in shape):
        raise ValidationError("shape", "non-negative sizes", shape)
    n = math.prod(shape)
    if packed.size != packed_size(n, dt.bits):
        raise ShapeError("packed", f"{packed_size(n, dt.bits)} bytes for {n} {dt.name} values", f"{packed.size}")
    per_byte = 8 // dt.bits
    shifts = (np.arange(per_byte) * dt.bits).astype(np.uint8)
    codes = ((packed[:, None] >> shifts) & np.uint8((1 << dt.bits) - 1)).reshape(-1)[:n]
    return codes.view(dt.np_dtype).reshape(shape)
