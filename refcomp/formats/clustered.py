"""Clustered (weight-shared) weight: a codebook of k floats and one b-bit index per weight.

Deep Compression §3 (Han, Mao, Dally 2016, arXiv:1510.00149): after k-means
weight sharing (refcomp.compress.share.cluster) a layer of n weights is stored as
n·b bits of indices plus k·32 bits of codebook (k ≤ 2^b), compression
rate n·32 / (n·b + k·32) (paper eq. 2). The optional ``mask`` marks pruned
weights (False), whose value is 0 whatever their index says; how pruned
weights are *not* stored at all is refcomp.formats.relative_csr's business.

    W[i, j] = codebook[indices[i, j]]   if mask[i, j]   else 0
"""

from __future__ import annotations

import numpy as np

from ..errors import DTypeError, FileFormatError, ShapeError, ValidationError
from .._frozen import frozen
from .base import WeightFormat

__all__ = ["Clustered"]


class Clustered(WeightFormat):
    """A weight stored as codebook + per-weight cluster indices (+ optional sparsity mask).

    codebook : (k,) float32 or float64, finite, k ≤ 2^bits.
    indices : integer array (logical shape of the weight), values in [0, k).
    mask : optional bool array of the same shape, True = kept.
    bits : bits per stored index, 1…8; default: the fewest that address k entries.

    A layer computes with codebook[indices]·mask. While ``trainable`` is set
    (trained quantization, refcomp.compress.share.trained_quantization) the
    layer's backward leaves dL/dW of that dense weight in ``grad``, which an
    optimizer turns into centroid gradients; otherwise the weight is frozen.
    """

    trainable = False

    def __init__(self, codebook, indices, mask=None, *, bits: int | None = None):
        c = np.asarray(codebook)
        if c.dtype not in (np.float32, np.float64):
            raise DTypeError("codebook", "float32 or float64", f"dtype {c.dtype}")
        if c.ndim != 1 or c.size == 0:
            raise ShapeError("codebook", "a non-empty 1-D array", f"shape {c.shape}")
        if not np.all(np.isfinite(c)):
            raise ValidationError("codebook", "finite values", "NaN or inf")
        idx = np.asarray(indices)
        if not np.issubdtype(idx.dtype, np.integer):
            raise DTypeError("indices", "an integer array", f"dtype {idx.dtype}")
        if idx.size and (idx.min() < 0 or idx.max() >= c.size):
            raise ValidationError("indices", f"values in [0, {c.size - 1}] (codebook size {c.size})",
                                  f"range [{idx.min()}, {idx.max()}]")
        if bits is None:  # the fewest bits that address every codebook entry
            bits = max(1, (c.size - 1).bit_length())
        if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= 8:
            raise ValidationError("bits", "an integer in [1, 8]", repr(bits))
        if c.size > (1 << int(bits)):
            raise ValidationError("codebook", f"at most 2**bits = {1 << int(bits)} entries", f"{c.size} entries")
        if mask is not None:
            m = np.asarray(mask)
            if m.dtype != bool:
                raise DTypeError("mask", "a boolean array (True = kept)", f"dtype {m.dtype}")
            if m.shape != idx.shape:
                raise ShapeError("mask", f"shape {idx.shape} (the indices')", f"shape {m.shape}")
            mask = frozen(m)
        # the codebook is what centroid fine-tuning trains; the indices and mask were validated
        # against it once and stay valid (refcomp._frozen)
        self.codebook = c.copy()
        self.indices = frozen(idx, np.uint8)
        self.mask = mask
        self.bits = int(bits)
        self.shape = tuple(idx.shape)
        self.grad: np.ndarray | None = None

    @property
    def dtype(self) -> np.dtype:
        return self.codebook.dtype

    def to_dense(self) -> np.ndarray:
        w = self.codebook[self.indices]
        if self.mask is not None:
            w[~self.mask] = 0
        return w

    def matmul(self, x: np.ndarray) -> np.ndarray:
        """y = x · Wᵀ for a 2-D (out, in) weight and x of shape (batch, in)."""
        if len(self.shape) != 2:
            raise ShapeError("self", "a 2-D (out, in) weight for matmul", f"shape {self.shape}")
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.shape[1]:
            raise ShapeError("x", f"shape (batch, {self.shape[1]})", f"shape {x.shape}")
        return x @ self.to_dense().T

    @property
    def storage_bits(self) -> int:
        """n·bits (indices) + k·(bits of a codebook float) + n (mask, 1 bit each, if any)."""
        n = int(np.prod(self.shape, dtype=np.int64))
        bits = n * self.bits + self.codebook.size * 8 * self.codebook.itemsize
        if self.mask is not None:
            bits += n
        return int(bits)

    @property
    def nbytes(self) -> int:
        return (self.storage_bits + 7) // 8

    def fields(self) -> dict[str, np.ndarray]:
        """codebook, indices, bits (one int64) and the mask if any -- what a file stores."""
        out = {"codebook": self.codebook, "indices": self.indices, "bits": np.asarray([self.bits], np.int64)}
        if self.mask is not None:
            out["mask"] = self.mask
        return out

    @classmethod
    def from_fields(cls, fields: dict[str, np.ndarray]) -> "Clustered":
        """Inverse of :meth:`fields`, with the constructor's validation; FileFormatError otherwise."""
        need, optional = {"codebook", "indices", "bits"}, {"mask"}
        if not isinstance(fields, dict) or not need <= set(fields) <= need | optional:
            got = sorted(fields) if isinstance(fields, dict) else type(fields).__name__
            raise FileFormatError(f"fields: expected keys {sorted(need)} (+ mask), got {got}")
        bits = np.asarray(fields["bits"])
        if bits.dtype != np.int64 or bits.shape != (1,):
            raise FileFormatError(f"fields['bits']: expected one int64 value, got {bits.dtype} {bits.shape}")
        try:
            return cls(fields["codebook"], fields["indices"], fields.get("mask"), bits=int(bits[0]))
        except ValidationError as exc:
            raise FileFormatError(f"fields: {exc}") from None

    def __repr__(self) -> str:
        return (f"Clustered(shape={self.shape}, bits={self.bits}, codebook={self.codebook.size} "
                f"x {self.codebook.dtype}, masked={self.mask is not None})")
