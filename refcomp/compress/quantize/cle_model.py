"""Cross-layer equalization of a whole model (DFQ §4.1 applied along a Sequential).

Nagel, van Baalen, Blankevoort, Welling, "Data-Free Quantization Through
Weight Equalization and Bias Correction", ICCV 2019, arXiv:1906.04721, §4.1;
the array-level math is cle.py (eqs. 12-13), docs/gptq_and_ptq.md §4.

Two compute layers (Conv2d / Linear, BatchNorm folded first) form an
equalizable pair when everything between them commutes with a positive
per-channel scale S = diag(s), s > 0:

- ReLU (fused or not) and the identity: f(s·z) = s·f(z);
- MaxPool2d: max_j(s_c·z_j) = s_c·max_j(z_j) within one channel c
  (the padding value, −inf or 0, is unchanged by s_c > 0);
- Dropout in eval mode (the identity);
- Flatten after a Conv2d with C output channels: channel c becomes the
  contiguous block of in/C features c·(in/C) … (c+1)·(in/C) − 1 of the next
  Linear, so that Linear's weight (out, in) is read as (out, C, in/C, 1) and
  its input channel c is scaled by s_c as a whole.

The second layer must read every channel of the first (a grouped Conv2d,
groups > 1, cannot take the role of W2 and breaks the chain). Maximal runs
of such pairs are equalized together by cle.equalize_chain (repeated sweeps).
Outputs are unchanged up to float rounding: W1 / s, b1 / s and W2·s are
computed in float64 and rounded once to the model's dtype.
"""

from __future__ import annotations

import numpy as np

from ...formats.dense import Dense
from ...nn.layers import Conv2d, Linear
from ...nn.module import Parameter
from .cle import equalize_chain
from .model_graph import prepare, stages_of

__all__ = ["equalizable_chains", "equalize_model"]

_HOMOGENEOUS = ("maxpool", "relu", "identity", "flatten")


def _view(prev, layer, flattened: bool):
    """The shape W2 is read in as the second layer of a pair, or None if the pair is not equalizable."""
    c = prev.out_channels if isinstance(prev, Conv2d) else prev.out_features
    if isinstance(layer, Conv2d):
        if flattened or layer.groups != 1 or layer.in_channels != c or not isinstance(prev, Conv2d):
            return None
        return tuple(layer.weight.shape)
    if flattened:
        if not isinstance(prev, Conv2d) or layer.in_features % c:
            return None
        return (layer.out_features, c, layer.in_features // c, 1)
    if not isinstance(prev, Linear) or layer.in_features != c:
        return None
    return tuple(layer.weight.shape)


def equalizable_chains(model) -> list[list[tuple[str, object, tuple]]]:
    """Maximal chains of equalizable compute layers of a folded model, each of length >= 2.

    Every entry is (stage name, layer, the weight shape the layer is read in).
    """
    chains, current, prev, between_ok, flattened = [], [], None, True, False
    for s in stages_of(model):
        if s.kind != "compute":
            between_ok &= s.kind in _HOMOGENEOUS
            flattened |= s.kind == "flatten"
            continue
        view = _view(prev.layer, s.layer, flattened) if prev is not None and between_ok else None
        if view is None:
            if len(current) >= 2:
                chains.append(current)
            current = [(s.name, s.layer, tuple(s.layer.weight.shape))]
        else:
            current.append((s.name, s.layer, view))
        prev, between_ok, flattened = s, True, False
    if len(current) >= 2:
        chains.append(current)
    return chains


def equalize_model(model, *, max_iter: int = 20, tol: float = 1e-6):
    """An eval-mode copy of ``model`` (BatchNorm folded) with every equalizable chain equalized.

    Returns (model, report) where report maps each chain, as a tuple of
    stage names, to the number of sweeps equalize_chain did. ``model`` is not modified.
    """
    m = prepare(model)
    report = {}
    for chain in equalizable_chains(m):
        weights = [layer.weight.to_dense().reshape(view) for _, layer, view in chain]
        biases = [None if layer.bias is None else layer.bias.data for _, layer, _ in chain]
        new_w, new_b, sweeps = equalize_chain(weights, biases, max_iter=max_iter, tol=tol)
        for (_, layer, _), w, b in zip(chain, new_w, new_b):
            dt = layer.weight.to_dense().dtype
            layer.weight = Dense(np.ascontiguousarray(w.reshape(layer.weight.shape).astype(dt)))
            if b is not None:
                layer.bias = Parameter(b.astype(dt))
        report[tuple(name for name, _, _ in chain)] = sweeps
    return m, report
