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

The stored values (``values=``, refcomp.formats.csr's table):

- ``None``: the weight's own values. A Dense gives float values; a Clustered
  (refcomp.compress.share, k-means weight sharing) gives the clustered CSR,
  its kept cluster indices and codebook as a 1-D Clustered: the same matrix
  exactly, ceil(nnz·b / 8) + 4k value bytes instead of 4·nnz.
- ``"int8"`` (or another signed integer dtype of refcomp.numerics.dtypes,
  e.g. ``"int4"``): the quantized CSR, per-tensor symmetric codes of the kept
  values (a 1-D QTensor)::

      s = max_p |w_p| / ((qmax − qmin) / 2),   q_p = clip(round_half_even(w_p / s), qmin, qmax),
      ŵ_p = s·q_p                                                                           (C1)

  (refcomp.quant.choose_qparams, symmetric, eq. 6 of docs/quantization.md:
  int8 s = max|w| / 127.5, zero point 0; one scale, so int8 codes run the
  exact integer product CSRMatrix.matmul_integer). Each |ŵ_p − w_p| <= s / 2
  (the largest magnitude lands on qmax + 1/2 and saturates), and the product
  with float inputs is x·Ŵᵀ.
"""

from __future__ import annotations

import copy

import numpy as np

from ...errors import DTypeError, ShapeError, ValidationError
from ...formats.base import WeightFormat
from ...formats.clustered import Clustered
from ...formats.csr import CSRMatrix
from ...formats.dense import Dense
from ...formats.qtensor import QTensor
from ...nn.layers import Conv2d, Linear
from ...numerics.dtypes import qdtype
from ...quant import choose_qparams

__all__ = ["to_csr", "csr_weight"]


def _values_dtype(values):
    """The QDType of ``values``: a signed integer dtype (symmetric codes, zero point 0), else ValidationError."""
    dt = qdtype(values, "values")
    if dt.is_float or not dt.signed:
        raise ValidationError("values", "None or a signed integer dtype such as 'int8' (symmetric codes)",
                              repr(values))
    return dt


def csr_weight(weight, *, values: str | None = None) -> CSRMatrix:
    """The CSRMatrix of one weight's 2-D view (out, rest), its non-zeros stored as ``values`` asks.

    weight : float32 / float64 array or a Dense / Clustered, shape (out, ...);
        a kernel is read as its im2col matrix (out, C·kh·kw).
    values : None (the weight's own values; a Clustered keeps its codebook and
        indices) or a signed integer dtype name, e.g. "int8" (eq. C1).

    Exact zeros are not stored; a masked Clustered keeps only its kept entries.
    """
    if isinstance(weight, Clustered):
        clustered = weight
        dense = weight.to_dense()
    elif isinstance(weight, Dense):
        clustered, dense = None, weight.data
    elif isinstance(weight, WeightFormat):
        raise DTypeError("weight", "an array, a Dense or a Clustered", type(weight).__name__)
    else:
        clustered, dense = None, np.asarray(weight)
    if dense.ndim < 2:
        raise ShapeError("weight", "a weight of rank >= 2 (out, ...)", f"shape {dense.shape}")
    w2 = np.ascontiguousarray(dense.reshape(dense.shape[0], -1))
    if w2.dtype not in (np.float32, np.float64):
        w2 = w2.astype(np.float32)
    csr = CSRMatrix.from_dense(w2)
    if values is None:
        if clustered is None:
            return csr
        # the kept entries' cluster indices, in CSR order (row-major, as from_dense keeps them)
        kept = clustered.indices.reshape(w2.shape)[csr.row_ids(), csr.indices]
        return csr.with_values(Clustered(clustered.codebook, kept, bits=clustered.bits))
    dt = _values_dtype(values)
    m = float(np.abs(csr.data).max()) if csr.nnz else 0.0
    qp = choose_qparams(-m, m, dt.name, symmetric=True)
    return csr.with_values(QTensor.quantize(csr.data, qp))


def _sparse_layers(model, names) -> dict:
    """{name: layer} of the Linear / Conv2d layers holding a Dense or Clustered weight, in model order."""
    if not hasattr(model, "named_modules"):
        raise ValidationError("model", "a refcomp.nn.Module", type(model).__name__)
    found = {name: m for name, m in model.named_modules()
             if isinstance(m, (Linear, Conv2d)) and isinstance(m.weight, (Dense, Clustered))}
    if names is None:
        return found
    names = [names] if isinstance(names, str) else list(names)
    unknown = [n for n in names if n not in found]
    if unknown:
        raise ValidationError("layers", f"names of Linear / Conv2d layers with a Dense or Clustered weight among "
                              f"{list(found)}", f"unknown {unknown}")
    return {n: found[n] for n in names}


def to_csr(model, layers=None, *, min_sparsity: float = 0.0, values: str | None = None):
    """(a copy of ``model`` whose chosen Linear / Conv2d (groups = 1) weights are CSRMatrix,
    report {name: {"nnz", "sparsity", "bytes", "dense_bytes"}}).

    layers : names (default: every Linear / Conv2d with a Dense or Clustered
        weight whose sparsity is >= ``min_sparsity``).
    values : how the non-zeros are stored (module docstring): None, the
        weight's own values (float, or a Clustered's codebook + indices), or
        a signed integer dtype name such as "int8" (per-tensor symmetric codes).
    The original model is untouched. Exact zeros are not stored (a kept weight
    that happens to be exactly 0 is dropped; the product is the same).
    "bytes" is the CSR's nbytes (pattern + stored values), "dense_bytes" the
    dense float weight's.
    """
    if not (0.0 <= float(min_sparsity) <= 1.0):
        raise ValidationError("min_sparsity", "a value in [0, 1]", min_sparsity)
    if values is not None:
        _values_dtype(values)  # before the copy
    out = copy.deepcopy(model)
    chosen = _sparse_layers(out, layers)
    report = {}
    for name, layer in chosen.items():
        if isinstance(layer, Conv2d) and layer.groups != 1:
            raise ValidationError("layers", "Conv2d layers with groups=1 (im2col through the weight format)",
                                  f"{name} has groups={layer.groups}")
        dense = layer.weight.to_dense()
        sparsity = 1.0 - np.count_nonzero(dense) / dense.size
        if layers is None and sparsity < min_sparsity:
            continue
        layer.weight = csr_weight(layer.weight, values=values)
        report[name] = {"nnz": int(layer.weight.nnz), "sparsity": float(sparsity), "bytes": int(layer.weight.nbytes),
                        "dense_bytes": int(dense.nbytes)}
    out.eval()
    return out, report
