"""HalfPrecision: a weight stored in 16 bits, float16 or bfloat16.

The float32 weight is rounded once to the 16-bit type, round to nearest even
(refcomp.compress.precision.casts.cast_weights, docs/precision.md eq. 1), and
kept in it: half the bytes of float32. Computation stays float32: ``matmul``
widens the 16-bit values to float32, which is exact (every float16 and bfloat16
value is a float32 value), as a runtime with 16-bit weight storage and float32
arithmetic does.

Fields (what a model file stores): ``{"float16": data}`` or, since neither
NumPy's npz nor safetensors' NumPy binding has a bfloat16 type,
``{"bfloat16_bits": data.view(uint16)}``: the same 16 bits, bit for bit.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from ..errors import DTypeError, FileFormatError
from .base import WeightFormat

__all__ = ["HalfPrecision"]

_BF16 = np.dtype(ml_dtypes.bfloat16)


class HalfPrecision(WeightFormat):
    """A weight stored as float16 or bfloat16 (``data``); ``to_dense()`` is its float32 value."""

    trainable = False

    def __init__(self, data: np.ndarray):
        if not isinstance(data, np.ndarray) or data.dtype not in (np.dtype(np.float16), _BF16):
            got = f"dtype {data.dtype}" if isinstance(data, np.ndarray) else type(data).__name__
            raise DTypeError("data", "a float16 or bfloat16 array", got)
        self.data = data
        self.shape = data.shape

    def to_dense(self) -> np.ndarray:
        return self.data.astype(np.float32)

    def matmul(self, x):
        return x @ self.to_dense().reshape(self.shape[0], -1).T

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes)

    def fields(self) -> dict[str, np.ndarray]:
        if self.data.dtype == _BF16:
            return {"bfloat16_bits": self.data.view(np.uint16)}
        return {"float16": self.data}

    @classmethod
    def from_fields(cls, fields: dict[str, np.ndarray]) -> "HalfPrecision":
        """Inverse of :meth:`fields`; FileFormatError for anything else."""
        if isinstance(fields, dict) and set(fields) == {"float16"} and fields["float16"].dtype == np.float16:
            return cls(fields["float16"])
        if isinstance(fields, dict) and set(fields) == {"bfloat16_bits"} and fields["bfloat16_bits"].dtype == np.uint16:
            return cls(fields["bfloat16_bits"].view(_BF16))
        got = {k: str(np.asarray(v).dtype) for k, v in fields.items()} if isinstance(fields, dict) else type(fields).__name__
        raise FileFormatError(f"fields: expected {{'float16': float16}} or {{'bfloat16_bits': uint16}}, got {got}")

    def __repr__(self) -> str:
        return f"HalfPrecision(shape={self.shape}, dtype={self.data.dtype})"
