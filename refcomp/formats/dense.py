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

from ..checks import bool_mask
from ..errors import DTypeError, ValidationError
from .base import WeightFormat

__all__ = ["Dense"]


class Dense(WeightFormat):
    """A float weight stored as is.

    Parameters
    ----------
    array : floating array of any rank >= 1 (float16/32/64); stored without a copy
        when it already is a C-contiguous floating array.

    mask : optional bool array of the array's shape, True = kept: a pruned
        weight while it trains (refcomp.compress.prune). Its pruned entries are
        zero, and the optimizer wrapper refcomp.compress.prune.model.MaskedOptimizer
        keeps them, their gradients and its state at zero.

    Attributes
    ----------
    data : the array itself (optimizers update it in place).
    grad : dL/d(data) of the same shape, or None before the first backward.
    trainable : True (set False to freeze the weight).
    mask : the pruning mask or None.
    """

    def __init__(self, array, *, trainable: bool = True, mask=None):
        a = np.asarray(array)
        if a.dtype.kind != "f":
            raise DTypeError("array", "a floating dtype (float16/32/64)", a.dtype)
        if a.ndim < 1:
            raise ValidationError("array", "rank >= 1", f"rank {a.ndim}")
        self.data = np.ascontiguousarray(a)
        self.grad: np.ndarray | None = None
        self.trainable = bool(trainable)
        self.mask = None if mask is None else bool_mask(mask, self.data.shape, "mask").copy()

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
        """data, and the pruning mask when there is one."""
        return {"data": self.data} if self.mask is None else {"data": self.data, "mask": self.mask}

    @classmethod
    def from_fields(cls, fields: dict[str, np.ndarray]) -> "Dense":
        """Inverse of :meth:`fields` (used by refcomp.io.model_file)."""
        if not isinstance(fields, dict) or set(fields) not in ({"data"}, {"data", "mask"}):
            got = sorted(fields) if isinstance(fields, dict) else type(fields).__name__
            raise ValidationError("fields", "{'data'} or {'data', 'mask'}", got)
        return cls(fields["data"], mask=fields.get("mask"))

    def __repr__(self) -> str:
        masked = "" if self.mask is None else f", kept={int(self.mask.sum())}"
        return f"Dense(shape={self.shape}, dtype={self.data.dtype}{masked})"
