"""PCA-based low-rank quantization of Linear layers: project onto the inputs' principal components, quantize the factors.

Source: issue 14 names "the PCA-based low-rank quantization the first
article describes"; no such article is in docs/ or the shared design folder,
so this is our statement of the method (an assumption, not a paper's
algorithm). A Linear y = W x + b sees inputs x with mean μ and covariance
C = E[(x − μ)(x − μ)ᵀ] estimated on a calibration set X (n, in). With P (in, k)
the k leading eigenvectors of C (eigenvalues λ_1 ≥ … ≥ λ_in), replace x by its
projection μ + P Pᵀ(x − μ):

    y ≈ (W P)(Pᵀ x) + b + W (I − P Pᵀ) μ  =  L (R x) + b',   L = W P (out, k),  R = Pᵀ (k, in)     (P.1)

The expected squared output error of (P.1) on that distribution is exactly

    E‖W x − W(μ + P Pᵀ (x − μ))‖² = Σ_{i>k} λ_i ‖W p_i‖²                                           (P.2)

(the discarded directions, weighted by how much W amplifies them). The
factors L and R are then quantized by round-to-nearest, int<bits> per output
row (refcomp.compress.quantize.rtn), and the layer holds
LowRank(QTensor(L), QTensor(R)) with the corrected bias b'. PCA minimises the
input's reconstruction error, not (P.2) itself (the whitened SVD of
docs/lowrank.md §6 does that for the output); what PCA buys is factors R
that are orthonormal rows, well conditioned for quantization.
"""

from __future__ import annotations

import numpy as np

from ...checks import float_array, integer
from ...errors import ShapeError, ValidationError
from ...formats.lowrank import LowRank
from ...nn.layers import Linear
from ...nn.module import Parameter, run_with_hooks
from ..quantize.model_graph import prepare
from ..quantize.rtn import rtn_quantize

__all__ = ["pca_factors", "pca_lowrank_quantize"]


def pca_factors(w, x, k: int) -> tuple:
    """(L (out, k), R (k, in), bias shift (out,), predicted MSE (P.2) per output) for W (out, in) and inputs x (n, in).

    float64 throughout; eigenvectors of the biased covariance (1/n) by numpy.linalg.eigh.
    """
    w = float_array(w, "w", ndim=2, dtype=np.float64)
    x = float_array(x, "x", ndim=2, dtype=np.float64)
    if x.shape[1] != w.shape[1]:
        raise ShapeError("x", f"(n, {w.shape[1]}) inputs of the layer", f"shape {x.shape}")
    if x.shape[0] < 2:
        raise ShapeError("x", "at least 2 calibration rows", f"shape {x.shape}")
    k = integer(k, "k", minimum=1, maximum=w.shape[1])
    mu = x.mean(axis=0)
    c = (x - mu).T @ (x - mu) / x.shape[0]
    lam, vec = np.linalg.eigh(c)                       # ascending
    lam, vec = lam[::-1], vec[:, ::-1]
    p = vec[:, :k]
    left, right = w @ p, p.T                                                                     # (P.1)
    shift = w @ (mu - p @ (p.T @ mu))
    wp = w @ vec[:, k:]
    mse = float(np.sum(np.clip(lam[k:], 0, None) * np.sum(wp * wp, axis=0))) / w.shape[0]      # (P.2)
    return left, right, shift, mse


def pca_lowrank_quantize(model, ranks: dict, calibration, *, bits: int = 8) -> tuple:
    """A copy of ``model`` (BatchNorm folded) whose named Linear layers hold LowRank(QTensor L, QTensor R) by (P.1).

    ranks : {name: k}.  calibration : an array of model inputs (n, …); each layer's
    inputs are recorded on it in model order, each layer seeing the already-compressed
    layers before it.  bits : 2…8 for the RTN factors.
    Returns (model, {name: {"k", "bytes", "float_bytes", "predicted_mse", "output_mse"}}),
    output_mse the measured mean squared output error of the quantized layer on its
    calibration inputs, predicted_mse (P.2) before quantization.
    """
    m = prepare(model)
    if not isinstance(ranks, dict) or not ranks:
        raise ValidationError("ranks", "a non-empty dict {Linear layer name: k}", repr(ranks))
    modules = dict(m.named_modules())
    for name in ranks:
        if not isinstance(modules.get(name), Linear):
            raise ValidationError("ranks", "names of Linear layers", repr(name))
    x_cal = float_array(calibration, "calibration", allow_empty=False)
    report = {}
    for name, layer in ((n, modules[n]) for n in modules if n in ranks):
        seen = []
        run_with_hooks(m, [(layer, lambda mod, inputs, out: seen.append(np.array(inputs[0])))], [x_cal])
        x = np.concatenate(seen)
        w = layer.weight.to_dense()
        left, right, shift, mse = pca_factors(w, x, ranks[name])
        dense_bytes = w.nbytes
        layer.weight = LowRank(rtn_quantize(left, bits=bits), rtn_quantize(right, bits=bits), shape=w.shape)
        bias = np.zeros(w.shape[0]) if layer.bias is None else layer.bias.data.astype(np.float64)
        layer.bias = Parameter((bias + shift).astype(w.dtype))
        d = layer.weight.matmul(x.astype(w.dtype)) + layer.bias.data - (x @ w.T + bias)
        report[name] = {"k": int(ranks[name]), "bytes": int(layer.weight.nbytes), "float_bytes": int(dense_bytes),
                        "predicted_mse": mse, "output_mse": float(np.mean(d.astype(np.float64) ** 2))}
    return m, report
