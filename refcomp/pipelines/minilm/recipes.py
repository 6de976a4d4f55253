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
w8a8-static *                      quantize_static_inputs(observer="mse"): every Linear's
                                   input quantized with calibrated QParams (formats.static S1)
w8a8-static-smoothquant *          the same after SmoothQuant (α = 0.5) of the inputs that
                                   come out of a LayerNorm (Q, K, V, fc1)
w4-rtn-g128                        weight-only int4, one scale per 128 inputs, rounded to nearest
w4-gptq-g128 *                     weight-only int4 g128 by GPTQ (Frantar et al. 2022)
w4w8-mixed-g128 *                  weight-only, each Linear int4 or int8 (RTN, g128) chosen by
                                   sensitivity under a budget of 5 bits per weight on average
                                   (refcomp.compress.precision.model.select_layer_bits)
ffn-sparse50-sparsegpt *           the FFN (fc1, fc2 of every block) 50 % unstructured by SparseGPT
                                   (Frantar & Alistarh 2023), stored CSR: the sparse kernels
ffn-2of4-sparsegpt *               the FFN 2:4 (2 kept of every 4 inputs) by SparseGPT, CSR
ffn-lowrank256-whitened *          the FFN factorized at rank 256 by the whitened SVD (the best
                                   rank for each layer's output on the calibration inputs)
=================================  ===========================================================

\\* needs calibration batches: ``(input_ids, attention_mask)`` tuples (e.g. from
:func:`calibration_batches` of some sentences). Every Linear of the int8
recipes runs through the exact integer product (MatMulInteger,
refcomp.ops.matmul_integer); attention scores, softmax, LayerNorm and GELU stay
float32, as in onnxruntime's quantized models.
"""

from __future__ import annotations

from ...compress.lowrank.model import factorize_model
from ...compress.precision.model import select_layer_bits
from ...compress.prune.deploy import to_csr
from ...compress.prune.sparsegpt import sparsegpt_model
from ...compress.quantize.dynamic import quantize_dynamic
from ...compress.quantize.embedding import quantize_embeddings
from ...compress.quantize.static_inputs import quantize_static_inputs
from ...compress.quantize.weight_only import quantize_weights
from ...errors import ValidationError
from ...models.minilm_l6 import tokenize

__all__ = ["RECIPES", "compress_minilm", "calibration_batches"]


def _per_token_int8_emb(m, calib):
    q, report = quantize_dynamic(m, per_token=True)
    q, emb = quantize_embeddings(q)
    return q, {**report, **emb}


def _mixed(m, calib):
    """Sensitivity on one calibration batch (the longest: the batches are sorted by length)."""
    alloc, sens = select_layer_bits(m, calib[-1], 5.0, bit_choices=(4, 8), group_size=128)
    q, report = quantize_weights(m, bits=alloc.bits, group_size=128)
    return q, {"bits": alloc.bits, "sensitivity": sens, "layers": report}


def _ffn(m):
    """fc1 and fc2 of every block: two thirds of the encoder's Linear weights."""
    return [n for n, _ in m.named_modules() if n.endswith((".fc1", ".fc2"))]


def _sparse_ffn(m, calib, **kind):
    pruned, report = sparsegpt_model(m, calibration_batches=calib, layers=_ffn(m), **kind)
    deployed, csr = to_csr(pruned, _ffn(m))
    return deployed, {name: {**report[name], **csr[name]} for name in report}


def _after_layernorm(m):
    """The Linear layers fed by a LayerNorm: Q, K, V and fc1 of every block (SmoothQuant §4)."""
    return [n for n, _ in m.named_modules() if n.endswith(("attn.q_proj", "attn.k_proj", "attn.v_proj", ".fc1"))]


#: recipe name -> (transform (model, calibration) -> (model, report), needs calibration, description)
RECIPES = {
    "fp32": (lambda m, c: (m, {}), False, "the pretrained float32 graph"),
    "w8a8-dynamic": (lambda m, c: quantize_dynamic(m), False,
                     "int8 weights per channel, uint8 activations per tensor"),
    "w8a8-dynamic-per-token": (lambda m, c: quantize_dynamic(m, per_token=True), False,
                               "int8 weights per channel, uint8 activations per token"),
    "w8a8-dynamic-per-token-int8-emb": (_per_token_int8_emb, False,
                                        "per-token W8A8 and int8 embedding tables (one scale per row)"),
    "w8a8-static": (lambda m, c: quantize_static_inputs(m, c, observer="mse"), True,
                    "int8 weights per channel, uint8 inputs with calibrated (MSE) ranges"),
    "w8a8-static-smoothquant": (lambda m, c: quantize_static_inputs(m, c, observer="mse", smooth_alpha=0.5,
                                                                    smooth_layers=_after_layernorm(m)), True,
                                "static W8A8 after SmoothQuant (alpha 0.5) of the LayerNorm outputs"),
    "w4-rtn-g128": (lambda m, c: quantize_weights(m, bits=4, group_size=128), False,
                    "weight-only int4, groups of 128, round to nearest"),
    "w4-gptq-g128": (lambda m, c: quantize_weights(m, bits=4, group_size=128, method="gptq",
                                                   calibration_batches=c), True,
                     "weight-only int4, groups of 128, GPTQ"),
    "w4w8-mixed-g128": (_mixed, True, "weight-only int4 / int8 per layer by sensitivity, 5 bits on average"),
    "ffn-sparse50-sparsegpt": (lambda m, c: _sparse_ffn(m, c, sparsity=0.5), True,
                               "FFN 50 % unstructured by SparseGPT, CSR (sparse kernels)"),
    "ffn-2of4-sparsegpt": (lambda m, c: _sparse_ffn(m, c, n_m=(2, 4)), True, "FFN 2:4 by SparseGPT, CSR"),
    "ffn-lowrank256-whitened": (lambda m, c: factorize_model(m, dict.fromkeys(_ffn(m), 256), calibration_batches=c),
                                True, "FFN at rank 256 by the whitened SVD"),
}


def calibration_batches(sentences, *, batch: int = 8, tok=None) -> list[tuple]:
    """(input_ids, attention_mask) batches of ``sentences``, sorted by length so that little
    padding enters the calibration statistics (padding rows are computed and seen too)."""
    order = sorted(sentences, key=len)
    return [tokenize(order[i:i + batch], tok=tok) for i in range(0, len(order), batch)]


def compress_minilm(model, recipe: str, calibration=None):
    """(compressed copy of ``model``, report) by the named recipe; ``model`` is untouched.

    calibration : batches for the recipes marked * (module docstring), else ignored.
    """
    if recipe not in RECIPES:
        raise ValidationError("recipe", f"one of {sorted(RECIPES)}", repr(recipe))
    fn, needs, _ = RECIPES[recipe]
    if needs and not calibration:
        raise ValidationError("calibration", f"calibration batches for the recipe {recipe!r}", "none")
    return fn(model, calibration)
