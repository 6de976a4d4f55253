"""Embedding: a table lookup y[..., :] = W[idx[...], :].

Shapes: idx integer (any shape) with 0 <= idx < num_embeddings, W (num, dim),
y idx.shape + (dim,). Backward scatters: dL/dW[k] = Σ_{positions with idx = k} dy;
the indices have no gradient, so backward returns None.
"""

from __future__ import annotations

import numpy as np

from ...errors import DTypeError, ShapeError, ValidationError
from ...formats.base import WeightFormat
from ...formats.dense import Dense
from ..module import Module, _accumulate, as_rng, register_layer
from ._common import need_cache, pos_int

__all__ = ["Embedding"]


@register_layer
class Embedding(Module):
    """Lookup table; initial rows N(0, 1) as in PyTorch (zeros when rng is None)."""

    def __init__(self, num_embeddings: int, embedding_dim: int, *, rng=None, dtype="float32"):
        self.num_embeddings = pos_int(num_embeddings, "num_embeddings")
        self.embedding_dim = pos_int(embedding_dim, "embedding_dim")
        shape = (self.num_embeddings, self.embedding_dim)
        w = np.zeros(shape, dtype) if rng is None else as_rng(rng).standard_normal(shape).astype(dtype)
        self.weight: WeightFormat = Dense(w)
        self._idx = None

    def config(self) -> dict:
        return {"num_embeddings": self.num_embeddings, "embedding_dim": self.embedding_dim,
                "dtype": str(getattr(self.weight, "dtype", "float32"))}

    def forward(self, idx):
        idx = np.asarray(idx)
        if idx.dtype.kind not in "iu":
            raise DTypeError("idx", "an integer array", idx.dtype)
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_embeddings):
            raise ValidationError("idx", f"values in [0, {self.num_embeddings})",
                                  f"range [{idx.min()}, {idx.max()}]")
        self._idx = idx
        return self.weight.to_dense()[idx]

    def backward(self, dy):
        need_cache(self._idx, self)
        want = self._idx.shape + (self.embedding_dim,)
        if dy.shape != want:
            raise ShapeError("dy", f"shape {want}", dy.shape)
        if getattr(self.weight, "trainable", False):
            g = np.zeros(self.weight.shape, dtype=self.weight.data.dtype)
            np.add.at(g, self._idx.reshape(-1), dy.reshape(-1, self.embedding_dim))
            _accumulate(self.weight, g)
        return None
