"""Sparse deployment: pruned Linear / Conv2d weights converted to CSR.

A pruned weight W (out, in[, kh, kw]) is stored as the refcomp.formats.CSRMatrix of
its 2-D view W2 (out, in·kh·kw) — the im2col form refcomp.nn.Conv2d multiplies
by — holding only the kept (non-zero) entries. Inference then runs through
refcomp.ops.sparse_linear (CSR kernels: NumPy definition, Numba, C):

    Linear:  y = x · W2ᵀ + b                       = sparse_linear(x, W2) + b
    Conv2d:  y2 = cols · W2ᵀ + b  (groups = 1)      cols the im2col matrix (N·OH·OW, in·kh·kw)

Tolerance against the masked dense model: both compute the same sums of the
same products, in a different order (BLAS blocks vs CSR row order), so each
output differs by at most γ_m Σ_p |w_p x_p| (m = row length, γ_m ≈ m·u, u the
unit roundoff) from the exact value, twice that between the two; the tests
check |y_csr − y_dense| ≤ 4·m·u·(|W2|·|x|) elementwise (plus float32 bias rounding).
The converted weights are frozen (CSRMatrix is not trainable).
"""

from __future__ import annotations

import copy

import numpy as np

from ...errors import ValidationError
from ...formats.csr import CSRMatrix
from ...nn.layers import Conv2d
from .model import prunable_layers

__all__ = ["to_csr"]


def to_csr(model, layers=None, *, min_sparsity: float = 0.0):
    """(a copy of ``model`` whose chosen Linear / Conv2d (groups = 1) weights are CSRMatrix,
    report {name: {"nnz", "sparsity", "bytes", "dense_bytes"}}).

    layers : names (default: every prunable layer whose sparsity is >= ``min_sparsity``).
    The original model is untouched. Exact zeros are not stored (a kept weight
    that happens to be exactly 0 is dropped; the product is the same).
    """
    if not (0.0 <= float(min_sparsity) <= 1.0):
        raise ValidationError("min_sparsity", "a value in [0, 1]", min_sparsity)
    out = copy.deepcopy(model)
    chosen = prunable_layers(out, layers)
    report = {}
    for name, layer in chosen.items():
        w = layer.weight.data
        if isinstance(layer, Conv2d) and layer.groups != 1:
            raise ValidationError("layers", "Conv2d layers with groups=1 (im2col through the weight format)",
                                  f"{name} has groups={layer.groups}")
        sparsity = 1.0 - np.count_nonzero(w) / w.size
        if layers is None and sparsity < min_sparsity:
            continue
        w2 = w.reshape(w.shape[0], -1)
        if w2.dtype not in (np.float32, np.float64):
            w2 = w2.astype(np.float32)
        layer.weight = CSRMatrix.from_dense(np.ascontiguousarray(w2))
        report[name] = {"nnz": int(layer.weight.nnz), "sparsity": float(sparsity), "bytes": int(layer.weight.nbytes),
                        "dense_bytes": int(w.nbytes)}
    out.eval()
    return out, report

