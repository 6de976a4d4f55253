"""Embedding: a table lookup y[..., :] = W[idx[...], :].

Shapes: idx integer (any shape) with 0 <= idx < num_embeddings, W (num, dim),
y idx.shape + (dim,). Backward scatters: dL/dW[k] = Σ_{positions with idx = k} dy;
the indices have no gradient, so backward returns None.
"""

from __future__ import annotations

import numpy as np

from ...checks import integer
from ...errors import DTypeError, ShapeError, ValidationError
from ...formats.base import WeightFormat
from ...formats.dense import Dense
from ..module import Module, _accumulate, as_rng, register_layer

__all__ = ["Embedding"]


@register_layer
class Embedding(Module):
    """Lookup table; initial rows N(0, 1) as in PyTorch (zeros when rng is None)."""

    def __init__(self, num_embeddings: int, embedding_dim: int, *, rng=None, dtype="float32"):
        self.num_embeddings = integer(num_embeddings, "num_embeddings", minimum=1)
        self.embedding_dim = integer(embedding_dim, "embedding_dim", minimum=1)
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
        self._require_forward(self._idx)
        want = self._idx.shape + (self.embedding_dim,)
        if dy.shape != want:
            raise ShapeError("dy", f"shape {want}", dy.shape)
        if getattr(self.weight, "trainable", False):
            g = np.zeros(self.weight.shape, dtype=self.weight.data.dtype)
            np.add.at(g, self._idx.reshape(-1), dy.reshape(-1, self.embedding_dim))
            _accumulate(self.weight, g)
        return None
