"""LowRank: a weight stored as the product of two thin factors.

    W ≈ L R,   L = U_r Σ_r  (out, r),   R = V_rᵀ  (r, in)

(refcomp.compress.lowrank.factorize.truncated_svd makes them; docs/lowrank.md eq. (1).)
The layer product y = x Wᵀ is computed factor by factor, never forming W::

    y = (x Rᵀ) Lᵀ = (x V_r) (U_r Σ_r)ᵀ                                   (docs/lowrank.md eq. 5)

costing r·(in + out) multiply-adds per row of x instead of in·out; storage is
r·(in + out) values instead of in·out, a saving when r < in·out / (in + out).

A conv kernel (out, c, kh, kw) can be held too (``shape=``): the factors then
approximate its im2col matrix (out, c·kh·kw), ``matmul`` works on that matrix
(the convention of refcomp.formats.Dense for rank > 2) and ``to_dense``
reshapes to the kernel. Like every format but Dense it is not trainable.

Composition: each factor may itself be a 2-D weight format instead of an array,
e.g. QTensors for quantized low-rank factors (``LowRank(QTensor(L), QTensor(R))``);
the product then runs through the factors' own ``matmul`` and the storage is
theirs. A model file stores such factors as parts (refcomp.io.model_file).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import DTypeError, FileFormatError, ShapeError, ValidationError
from .base import WeightFormat, check_field_names

__all__ = ["LowRank"]


class LowRank(WeightFormat):
    """W = left @ right with left (out, r) and right (r, in), float32 or float64.

    shape : the logical weight shape, (out, in) by default, or any
        (out, d1, d2, ...) with d1·d2·... = in (e.g. a conv kernel).
    """

    trainable = False

    def __init__(self, left, right, *, shape=None):
        factors = []
        for name, a in (("left", left), ("right", right)):
            if not isinstance(a, WeightFormat):
                a = np.asarray(a)
                if a.dtype not in (np.float32, np.float64):
                    raise DTypeError(name, "a float32 or float64 array (or a 2-D weight format)", f"dtype {a.dtype}")
                a = np.ascontiguousarray(a)
            if len(a.shape) != 2:
                raise ShapeError(name, "a 2-D array or weight format", f"shape {tuple(a.shape)}")
            factors.append(a)
        left, right = factors
        if left.shape[1] != right.shape[0]:
            raise ShapeError("right", f"{left.shape[1]} rows (the columns of left {tuple(left.shape)})",
                             f"shape {tuple(right.shape)}")
        arrays = isinstance(left, np.ndarray) and isinstance(right, np.ndarray)
        if arrays and left.dtype != right.dtype:
            raise DTypeError("right", f"the dtype of left ({left.dtype})", f"dtype {right.dtype}")
        matrix_shape = (left.shape[0], right.shape[1])
        if shape is None:
            shape = matrix_shape
        shape = tuple(int(d) for d in shape)
        if len(shape) < 2 or shape[0] != matrix_shape[0] or math.prod(shape[1:]) != matrix_shape[1]:
            raise ShapeError("shape", f"(out={matrix_shape[0]}, ...) with the trailing dims multiplying to "
                             f"{matrix_shape[1]}", f"{shape}")
        self.left = left
        self.right = right
        self.shape = shape

    @property
    def rank(self) -> int:
        return self.left.shape[1]

    def to_dense(self) -> np.ndarray:
        return (_dense(self.left) @ _dense(self.right)).reshape(self.shape)

    def matmul(self, x: np.ndarray) -> np.ndarray:
        """x @ W2.T = (x @ right.T) @ left.T for x (..., in), W2 the (out, in) matrix."""
        x = np.asarray(x)
        if x.ndim < 1 or x.shape[-1] != self.right.shape[1]:
            raise ShapeError("x", f"an array (..., {self.right.shape[1]})", f"shape {x.shape}")
        if isinstance(self.left, np.ndarray) and isinstance(self.right, np.ndarray):
            return (x @ self.right.T) @ self.left.T
        h = self.right.matmul(x) if isinstance(self.right, WeightFormat) else x @ self.right.T
        return self.left.matmul(h) if isinstance(self.left, WeightFormat) else h @ self.left.T

    @property
    def nbytes(self) -> int:
        return int(self.left.nbytes + self.right.nbytes)

    def fields(self) -> dict:
        """left, right (arrays, or weight formats: parts of a composition) and the logical shape (int64)."""
        return {"left": self.left, "right": self.right, "shape": np.asarray(self.shape, dtype=np.int64)}

    @classmethod
    def from_fields(cls, fields: dict[str, np.ndarray]) -> "LowRank":
        """Inverse of :meth:`fields`; FileFormatError for anything it did not write."""
        check_field_names(fields, {"left", "right", "shape"})
        shape = np.asarray(fields["shape"])
        if shape.dtype != np.int64 or shape.ndim != 1:
            raise FileFormatError(f"fields['shape']: expected a 1-D int64 array, got {shape.dtype} {shape.shape}")
        try:
            return cls(fields["left"], fields["right"], shape=tuple(shape.tolist()))
        except ValidationError as exc:
            raise FileFormatError(f"fields: {exc}") from None

    def __repr__(self) -> str:
        kind = (f"dtype={self.left.dtype}" if isinstance(self.left, np.ndarray)
                else f"factors={type(self.left).__name__}, {type(self.right).__name__}")
        return f"LowRank(shape={self.shape}, rank={self.rank}, {kind})"


def _dense(factor) -> np.ndarray:
    return factor.to_dense() if isinstance(factor, WeightFormat) else factor
