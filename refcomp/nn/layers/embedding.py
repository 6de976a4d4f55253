"""Embedding: a table lookup y[..., :] = W[idx[...], :]; BertEmbeddings: BERT's three tables summed.

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
from ..init import allocate
from ..module import Module, _accumulate, as_rng, register_layer

__all__ = ["Embedding", "BertEmbeddings"]


@register_layer
class Embedding(Module):
    """Lookup table; initial rows N(0, 1) as in PyTorch (zeros when rng is None)."""

    def __init__(self, num_embeddings: int, embedding_dim: int, *, rng=None, dtype="float32"):
        self.num_embeddings = integer(num_embeddings, "num_embeddings", minimum=1)
        self.embedding_dim = integer(embedding_dim, "embedding_dim", minimum=1)
        shape = (self.num_embeddings, self.embedding_dim)
        w = allocate(shape, dtype) if rng is None else as_rng(rng).standard_normal(shape).astype(dtype)
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
        return self.weight.take_rows(idx)

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


@register_layer
class BertEmbeddings(Module):
    """BERT's input embedding: token + segment + position (Devlin et al. 2019, §3, Fig. 2).

    Shapes: input_ids (N, T) integer, 0 <= id < vocab_size; token_type_ids (N, T)
    in [0, type_vocab_size) or None (all 0, one segment, as sentence encoders
    use); T <= max_positions; y (N, T, dim)::

        y[n, t] = (word[input_ids[n, t]] + token_type[token_type_ids[n, t]]) + position[t]

    summed in that order (Hugging Face's BertEmbeddings), so float32 results
    match it bit for bit. The three tables are Embedding children (``word``,
    ``position``, ``token_type``): compression sees ``word.weight``, the
    30,522 × 384 table that is a third of MiniLM's parameters. The LayerNorm
    that follows in BERT is a separate node of the model graph.

    Backward scatters dy into the three tables (Embedding.backward); the ids
    have no gradient, so it returns None.

    ONNX: Gather(word, ids) + Gather(token_type, types) + Gather(position, Range(0, T)).
    """

    def __init__(self, vocab_size: int, dim: int, max_positions: int = 512, type_vocab_size: int = 2, *,
                 rng=None, dtype="float32"):
        g = None if rng is None else as_rng(rng)
        self.word = Embedding(vocab_size, dim, rng=g, dtype=dtype)
        self.position = Embedding(max_positions, dim, rng=g, dtype=dtype)
        self.token_type = Embedding(type_vocab_size, dim, rng=g, dtype=dtype)
        self._types_given = False

    def config(self) -> dict:
        return {"vocab_size": self.word.num_embeddings, "dim": self.word.embedding_dim,
                "max_positions": self.position.num_embeddings,
                "type_vocab_size": self.token_type.num_embeddings, "dtype": self.word.config()["dtype"]}

    def forward(self, input_ids, token_type_ids=None):
        ids = np.asarray(input_ids)
        if ids.ndim != 2:
            raise ShapeError("input_ids", "(N, T) token ids", f"shape {ids.shape}")
        t = ids.shape[1]
        if t > self.position.num_embeddings:
            raise ShapeError("input_ids", f"at most {self.position.num_embeddings} tokens (max_positions)",
                             f"{t} tokens")
        self._types_given = token_type_ids is not None
        if token_type_ids is None:
            token_type_ids = np.zeros(ids.shape, np.int64)
        elif np.shape(token_type_ids) != ids.shape:
            raise ShapeError("token_type_ids", f"shape {ids.shape} (that of input_ids)",
                             f"shape {np.shape(token_type_ids)}")
        y = self.word(ids) + self.token_type(token_type_ids)
        y += self.position(np.arange(t)[None, :])
        return y

    def backward(self, dy):
        self.word.backward(dy)
        self.token_type.backward(dy)
        self.position.backward(dy.sum(axis=0, keepdims=True))
        return (None, None) if self._types_given else None
