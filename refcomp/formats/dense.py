"""Dense: a weight stored as a plain float array, the trainable format.

Every layer starts with a Dense weight. It is the only format a layer computes
dL/dW for: ``Dense`` carries ``.data`` (the array, updated in place by the
optimizers) and ``.grad`` (written by the layer's backward). Other formats
(QTensor, CSRMatrix, LowRank, ...) have ``trainable = False``: a layer holding
one still propagates dL/dx through it but leaves the weight unchanged.

Convention for weights of rank > 2 (convolution kernels, shape
``(out, in/groups, kh, kw)``): ``matmul`` uses the weight viewed as the 2-D
matrix ``(out, in/groups*kh*kw)``, the im2col form.
"""

from __future__ import annotations

import numpy as np

from ..errors import DTypeError, ValidationError
from .base import WeightFormat

__all__ = ["Dense"]


class Dense(WeightFormat):
    """A float weight stored as is.

    Parameters
    ----------
    array : floating array of any rank >= 1 (float16/32/64); stored without a copy
        when it already is a C-contiguous floating array.

    Attributes
    ----------
    data : the array itself (optimizers update it in place).
    grad : dL/d(data) of the same shape, or None before the first backward.
    trainable : True (set False to freeze the weight).
    """

    def __init__(self, array, *, trainable: bool = True):
        a = np.asarray(array)
        if a.dtype.kind != "f":
            raise DTypeError("array", "a floating dtype (float16/32/64)", a.dtype)
        if a.ndim < 1:
            raise ValidationError("array", "rank >= 1", f"rank {a.ndim}")
        self.data = np.ascontiguousarray(a)
        self.grad: np.ndarray | None = None
        self.trainable = bool(trainable)

    @property
    def shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    def to_dense(self) -> np.ndarray:
        """The stored array itself (no copy: do not modify it in place)."""
        return self.data

    def matrix(self) -> np.ndarray:
        """The weight as a 2-D ``(out, rest)`` matrix (a view)."""
        return self.data.reshape(self.data.shape[0], -1)

    def matmul(self, x: np.ndarray) -> np.ndarray:
        """``x @ W2.T`` where W2 is the ``(out, rest)`` matrix; x: (batch, rest) -> (batch, out)."""
        return x @ self.matrix().T

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes)

    def fields(self) -> dict[str, np.ndarray]:
        return {"data": self.data}

    @classmethod
    def from_fields(cls, fields: dict[str, np.ndarray]) -> "Dense":
        """Inverse of :meth:`fields` (used by refcomp.io.model_file)."""
        if set(fields) != {"data"}:
            raise ValidationError("fields", "exactly {'data'}", sorted(fields))
        return cls(fields["data"])

    def __repr__(self) -> str:
        return f"Dense(shape={self.shape}, dtype={self.data.dtype})"
