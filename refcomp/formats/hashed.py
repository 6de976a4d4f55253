"""Hashed: HashedNets' weight, K real weights shared by hashing (Chen et al. 2015).

Chen, Wilson, Tyree, Weinberger, Chen, "Compressing Neural Networks with the
Hashing Trick", ICML 2015, arXiv:1504.04788, §4. Every virtual weight V_p
(p the row-major flat position in the logical shape: (i, j) of an (out, in)
weight, (o, c, u, v) of a kernel) reads one of K real weights w through a hash
h and carries a sign hash ξ:

    V_p = ξ(p) · w_{h(p)}                                       (H.1; paper eq. 6 with eq. 7's ξ)
    ∂L/∂w_k = Σ_{p : h(p) = k} ξ(p) · ∂L/∂V_p                   (H.2; paper eq. 12)

The hash (stated so that any implementation reproduces the buckets): the
splitmix64 finaliser (Steele, Lea, Flood 2014), all arithmetic mod 2^64,

    mix(z) = z' ^ (z' >> 31),  z' from  z ← z + 0x9E3779B97F4A7C15,
             z ← (z ^ (z >> 30))·0xBF58476D1CE4E5B9,  z ← (z ^ (z >> 27))·0x94D049BB133111EB
    a = mix(seed),  b = mix(a)                                  two salts from the one explicit seed
    h(p) = mix(p ^ a) mod K,   ξ(p) = 1 − 2·(mix(p ^ b) >> 63)   (H.3)

The paper uses xxHash; any well-mixed hash is its assumption. Storage is the
K real weights plus the seed: the buckets are recomputed, never stored.
The format is trainable (HashedNets trains w, not V): a layer's backward
hands dL/dV to :meth:`accumulate_grad`, which applies (H.2).
"""

from __future__ import annotations

import math

import numpy as np

from ..checks import integer
from ..errors import DTypeError, FileFormatError, ShapeError, ValidationError
from .base import WeightFormat, check_field_names

__all__ = ["Hashed", "splitmix64", "hash_buckets"]

_GOLDEN, _M1, _M2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def splitmix64(z: np.ndarray) -> np.ndarray:
    """mix(z) of (H.3) on a uint64 array (wrapping arithmetic, as the C original)."""
    z = np.asarray(z, dtype=np.uint64) + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def hash_buckets(shape, n_buckets: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(h, ξ) of (H.3) for every position of ``shape``: intp bucket indices in [0, K) and int8 signs ±1,
    both flat (row-major), length prod(shape). ``seed``: any 64-bit unsigned integer."""
    seed = integer(seed, "seed", minimum=0, maximum=2 ** 64 - 1)
    n = math.prod(shape)
    # every operand is an array of >= 1 element: NumPy wraps array arithmetic silently (only
    # scalar arithmetic warns of an overflow)
    a = splitmix64(np.array([seed], np.uint64))
    b = splitmix64(a)
    p = np.arange(n, dtype=np.uint64)
    h = (splitmix64(p ^ a) % np.uint64(n_buckets)).astype(np.intp)
    xi = 1 - 2 * (splitmix64(p ^ b) >> np.uint64(63)).astype(np.int8)  # int8: the Python ints adapt
    return h, xi


class Hashed(WeightFormat):
    """A weight of logical ``shape`` made of K real weights ``data`` by (H.1).

    data : (K,) float32 or float64, finite.  seed : int in [0, 2^63).
    shape : the logical weight shape ((out, in) or a conv kernel), any rank >= 1.
    ``trainable`` (default True): optimizers update ``data`` by ``grad`` (H.2).
    """

    def __init__(self, data, *, seed: int, shape, trainable: bool = True):
        d = np.asarray(data)
        if d.dtype not in (np.float32, np.float64):
            raise DTypeError("data", "float32 or float64", f"dtype {d.dtype}")
        if d.ndim != 1 or d.size == 0:
            raise ShapeError("data", "a non-empty 1-D array of real weights", f"shape {d.shape}")
        if not np.all(np.isfinite(d)):
            raise ValidationError("data", "finite values", "NaN or inf")
        seed = integer(seed, "seed", minimum=0, maximum=2 ** 63 - 1)
        shape = tuple(int(s) for s in shape)
        if not shape or min(shape) < 1:
            raise ShapeError("shape", "a non-empty shape of positive sizes", f"{shape}")
        self.data = np.array(d, copy=True)
        self.seed = int(seed)
        self.shape = shape
        self.trainable = bool(trainable)
        self.grad: np.ndarray | None = None
        self.buckets, self.signs = hash_buckets(shape, d.size, self.seed)

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def n_buckets(self) -> int:
        return int(self.data.size)

    def to_dense(self) -> np.ndarray:
        """V of (H.1), in data's dtype."""
        return (self.signs * self.data[self.buckets]).reshape(self.shape)  # int8 · float keeps the float dtype

    def matmul(self, x: np.ndarray) -> np.ndarray:
        """x @ V2ᵀ, V2 the (out, rest) matrix of V; x (batch, rest)."""
        return np.asarray(x) @ self.to_dense().reshape(self.shape[0], -1).T

    def accumulate_grad(self, g: np.ndarray) -> None:
        """grad += (H.2) from g = dL/dV (the logical shape, or its (out, rest) matrix)."""
        g = np.asarray(g)
        if g.size != self.signs.size:
            raise ShapeError("g", f"{self.signs.size} elements (shape {self.shape})", f"shape {g.shape}")
        gw = np.bincount(self.buckets, weights=self.signs * g.ravel().astype(np.float64),
                         minlength=self.data.size).astype(self.data.dtype)
        self.grad = gw if self.grad is None else self.grad + gw

    @property
    def nbytes(self) -> int:
        """The K real weights and the 8-byte seed."""
        return int(self.data.nbytes + 8)

    def fields(self) -> dict[str, np.ndarray]:
        return {"data": self.data, "seed": np.asarray([self.seed], np.int64),
                "shape": np.asarray(self.shape, np.int64)}

    @classmethod
    def from_fields(cls, fields: dict[str, np.ndarray]) -> "Hashed":
        """Inverse of :meth:`fields`; FileFormatError for anything it did not write."""
        check_field_names(fields, {"data", "seed", "shape"})
        seed, shape = np.asarray(fields["seed"]), np.asarray(fields["shape"])
        if seed.dtype != np.int64 or seed.shape != (1,) or shape.dtype != np.int64 or shape.ndim != 1:
            raise FileFormatError("fields: expected seed one int64 value and shape a 1-D int64 array")
        if shape.size == 0 or shape.min() < 1 or math.prod(int(s) for s in shape) > 2 ** 31:
            raise FileFormatError(f"fields['shape']: expected positive sizes, at most 2**31 weights, got {shape}")
        try:
            return cls(fields["data"], seed=int(seed[0]), shape=tuple(shape.tolist()))
        except ValidationError as exc:
            raise FileFormatError(f"fields: {exc}") from None

    def __repr__(self) -> str:
        return f"Hashed(shape={self.shape}, buckets={self.data.size}, seed={self.seed}, dtype={self.data.dtype})"
