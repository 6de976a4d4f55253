"""Int8 embedding tables: each row quantized on its own grid.

An embedding table E (vocab, dim) is read one row per token, never multiplied
as a whole, so each row r gets its own symmetric scale (per-row, i.e. per
output channel on axis 0; restricted range −127..127, docs/quantization.md
eq. 6)::

    s[r] = max_j |E[r, j]| / 127,    q[r, j] = clip(round(E[r, j] / s[r]), −127, 127)     int8
    Ê[r] = q[r] · s[r]                                                                 (eq. 2)

A lookup decodes only the rows it reads (QTensor.take_rows), so the table stays
int8 in memory: for all-MiniLM-L6-v2 the 30,522 × 384 word table goes from
46.9 MB to 11.7 MB + 0.1 MB of scales. Per-row scales matter here: rare
tokens' rows are several times wider than frequent ones', and one scale for
the table would give the frequent ones a handful of levels. (Per-row int8
embeddings as in bitsandbytes / LLM.int8()'s "row-wise" quantization;
torch.ao's quantized EmbeddingBag uses the same per-row affine layout.)
"""

from __future__ import annotations

import copy

import numpy as np

from ...formats.qtensor import QTensor
from ...nn.layers import Embedding
from ...nn.module import Module
from ...quant import choose_qparams

__all__ = ["quantize_embedding_table", "quantize_embeddings"]


def quantize_embedding_table(table) -> QTensor:
    """The int8 per-row QTensor of the module docstring for ``table`` (vocab, dim) float."""
    t = np.asarray(table, np.float32)
    qp = choose_qparams(t.min(axis=1), t.max(axis=1), "int8", symmetric=True, restricted_range=True, axis=0)
    return QTensor.quantize(t, qp)


def quantize_embeddings(model) -> tuple[Module, dict]:
    """(a copy of ``model`` whose Embedding tables are int8 per row, report {name: {"shape", "bytes",
    "float_bytes"}}). Any refcomp.nn model; Embeddings inside other layers (BertEmbeddings' word,
    position and token-type tables) included. ``model`` is not modified."""
    m = copy.deepcopy(model)
    report = {}
    for name, layer in m.named_modules():
        if isinstance(layer, Embedding):
            w = layer.weight.to_dense()
            layer.weight = quantize_embedding_table(w)
            report[name] = {"shape": list(w.shape), "bytes": int(layer.weight.nbytes), "float_bytes": int(w.nbytes)}
    return m, report
