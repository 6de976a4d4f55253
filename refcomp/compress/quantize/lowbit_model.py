"""Binary and ternary models, retrained with the straight-through estimator.

Every Conv2d / Linear keeps a float "latent" weight W that the optimizer
updates; the forward pass uses its low-bit version Ŵ, the backward pass
sends the gradient computed with Ŵ back to W (docs/gptq_and_ptq.md §5):

* binary, XNOR-Net weights (Rastegari et al. 2016, arXiv:1603.05279 §3.1):
  Ŵ_c = α_c · sign(W_c), α_c = mean|W_c| per output channel; gradient
  refcomp.compress.quantize.lowbit.xnor_grad (exact through α, STE through
  sign with the |W| <= 1 cut of Hubara et al. 2016).
* ternary, TWN (Li & Liu 2016, arXiv:1605.04711 §2): Δ = 0.7·mean|W|,
  Ŵ = α·t with t in {−1, 0, 1}, α per layer; gradient passed straight to W
  (TWN Algorithm 1, lowbit.ternarize_grad).

Activations stay float. Evaluating the trained model uses Ŵ (eval forward
is the same as training forward). ``lowbit_bytes`` counts the size a packed
file would have: 1 bit per binary and 2 bits per ternary weight, the float32
α's and the float32 biases.
"""

from __future__ import annotations

from ...errors import ValidationError
from ...nn.layers import Conv2d, Linear
from ...nn.module import Sequential
from .lowbit import ternarize, ternarize_grad, xnor_binarize, xnor_grad
from .model_graph import flat_layers, prepare
from .qat import FakeQuantized, fake_quantized_model

__all__ = ["BinaryWeight", "TernaryWeight", "prepare_lowbit", "lowbit_bytes", "KINDS"]


class BinaryWeight:
    """Ŵ = α·sign(W) per output channel (forward), xnor_grad (backward)."""

    bits = 1

    def forward(self, w):
        codes, alpha = xnor_binarize(w)
        self._w = w
        return (codes * alpha.reshape((-1,) + (1,) * (w.ndim - 1))).astype(w.dtype)

    def backward(self, g):
        return xnor_grad(self._w, g).astype(g.dtype)


class TernaryWeight:
    """Ŵ = α·t, TWN (forward), straight-through (backward)."""

    bits = 2

    def forward(self, w):
        codes, alpha = ternarize(w)
        self._w = w
        return (codes * alpha).astype(w.dtype)

    def backward(self, g):
        return ternarize_grad(self._w, g).astype(g.dtype)


KINDS = {"binary": BinaryWeight, "ternary": TernaryWeight}


def prepare_lowbit(model, kind: str) -> tuple[Sequential, dict]:
    """(a trainable copy of ``model`` (BatchNorm folded) whose Conv2d / Linear weights are ``kind``
    (FakeQuantized weights with a binary or ternary quantizer, qat.py), report {"kind", "bytes"})."""
    if kind not in KINDS:
        raise ValidationError("kind", f"one of {sorted(KINDS)}", repr(kind))
    m = fake_quantized_model(prepare(model), lambda _name: KINDS[kind]())
    return m, {"kind": kind, "bytes": lowbit_bytes(m)}


def lowbit_bytes(model) -> int:
    """Packed size: bits per weight, float32 α per channel (binary) / per layer (ternary), float32 biases."""
    total = 0
    for _, layer in flat_layers(model):
        if not isinstance(layer, (Conv2d, Linear)):
            continue
        w = layer.weight
        if not (isinstance(w, FakeQuantized) and isinstance(w.quantizer, (BinaryWeight, TernaryWeight))):
            raise ValidationError("model", "a model from prepare_lowbit", repr(w))
        total += -(-w.data.size * w.quantizer.bits // 8)
        total += 4 * (w.data.shape[0] if isinstance(w.quantizer, BinaryWeight) else 1)
        total += 0 if layer.bias is None else layer.bias.data.nbytes
    return int(total)
