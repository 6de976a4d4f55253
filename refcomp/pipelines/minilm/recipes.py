"""Named compression recipes for all-MiniLM-L6-v2 (docs/minilm.md has each one's measured row).

=================================  ===========================================================
recipe                             transforms of the fp32 graph
=================================  ===========================================================
fp32                               none
w8a8-dynamic                       quantize_dynamic: int8 weights per channel, uint8
                                   activations per tensor (refcomp.formats.dynamic eq. D1)
w8a8-dynamic-per-token             quantize_dynamic(per_token=True): activations per token (D2)
w8a8-dynamic-per-token-int8-emb    the above, and the embedding tables int8 per row
                                   (refcomp.compress.quantize.embedding)
=================================  ===========================================================

Every Linear of the int8 recipes runs through the exact integer product
(MatMulInteger, refcomp.ops.matmul_integer); attention scores, softmax,
LayerNorm and GELU stay float32, as in onnxruntime's dynamic quantization.
"""

from __future__ import annotations

from ...compress.quantize.dynamic import quantize_dynamic
from ...compress.quantize.embedding import quantize_embeddings
from ...errors import ValidationError

__all__ = ["RECIPES", "compress_minilm"]


def _fp32(m):
    return m, {}


def _dynamic(m):
    return quantize_dynamic(m)


def _per_token(m):
    return quantize_dynamic(m, per_token=True)


def _per_token_int8_emb(m):
    q, report = quantize_dynamic(m, per_token=True)
    q, emb = quantize_embeddings(q)
    return q, {**report, **emb}


#: recipe name -> (transform (model) -> (model, report), one-line description)
RECIPES = {
    "fp32": (_fp32, "the pretrained float32 graph"),
    "w8a8-dynamic": (_dynamic, "int8 weights per channel, uint8 activations per tensor"),
    "w8a8-dynamic-per-token": (_per_token, "int8 weights per channel, uint8 activations per token"),
    "w8a8-dynamic-per-token-int8-emb": (_per_token_int8_emb,
                                        "per-token W8A8 and int8 embedding tables (one scale per row)"),
}


def compress_minilm(model, recipe: str):
    """(compressed copy of ``model``, report {layer: sizes}) by the named recipe; ``model`` is untouched."""
    if recipe not in RECIPES:
        raise ValidationError("recipe", f"one of {sorted(RECIPES)}", repr(recipe))
    return RECIPES[recipe][0](model)
