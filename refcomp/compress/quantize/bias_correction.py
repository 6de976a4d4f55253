"""Bias correction: remove the mean output shift that weight quantization causes.

Nagel, van Baalen, Blankevoort, Welling, "Data-Free Quantization Through
Weight Equalization and Bias Correction", ICCV 2019, arXiv:1906.04721, §4.2;
Finkelstein, Almog, Grobman, "Fighting Quantization Bias With Bias",
arXiv:1906.03193. Math: docs/gptq_and_ptq.md §3, eqs. (10)-(11).

A layer y = W x + b quantized to Ŵ has error ε = Ŵ − W and output
ŷ = y + ε x. Its mean shifts by ε E[x], which a new bias cancels::

    E[ŷ] = E[y] + ε E[x]     ⇒     b̂ = b − ε E[x] = b + (W − Ŵ) E[x]      (10)

For a Conv2d (out, in, kh, kw) with a per-channel input mean (constant over
space, which ignores the zero padding at the borders), ε E[x] sums ε over the
kernel window first. E[x] comes from data (``input_mean``) or, data-free,
from the preceding BatchNorm + ReLU: if the pre-activation of channel c is
N(β_c, γ_c²) (BN's shift and scale), then (DFQ §4.2)::

    E[ReLU(z_c)] = |γ_c| φ(β_c/|γ_c|) + β_c Φ(β_c/|γ_c|)                     (11)

with φ, Φ the standard normal density and distribution function.
"""

from __future__ import annotations

import math

import numpy as np

from ...checks import float_array
from ...errors import ShapeError

__all__ = ["expected_output_shift", "correct_bias", "input_mean", "relu_gaussian_mean"]


def _check_pair(w, w_hat):
    w = float_array(w, "w", ndim=(2, 4), dtype=np.float64, copy=True)
    w_hat = float_array(w_hat, "w_hat", ndim=(2, 4), dtype=np.float64, copy=True)
    if w_hat.shape != w.shape:
        raise ShapeError("w_hat", f"the shape of w {w.shape}", f"shape {w_hat.shape}")
    return w, w_hat


def expected_output_shift(w, w_hat, input_mean) -> np.ndarray:
    """ε E[x] = (Ŵ − W) E[x], shape (out,), for w, w_hat (out, in) or (out, in, kh, kw)."""
    w, w_hat = _check_pair(w, w_hat)
    mu = float_array(input_mean, "input_mean", ndim=1, dtype=np.float64, copy=True)
    if mu.shape[0] != w.shape[1]:
        raise ShapeError("input_mean", f"shape ({w.shape[1]},) (one mean per input channel of w)",
                         f"shape {mu.shape}")
    eps = w_hat - w
    if eps.ndim == 4:
        eps = eps.sum(axis=(2, 3))  # every kernel tap sees the same channel mean
    return eps @ mu


def correct_bias(w, w_hat, bias, input_mean) -> np.ndarray:
    """b̂ = b − (Ŵ − W) E[x] (eq. 10); float32 (out,). ``bias`` may be None (zeros)."""
    shift = expected_output_shift(w, w_hat, input_mean)
    b = np.zeros_like(shift) if bias is None else float_array(bias, "bias", ndim=1, dtype=np.float64, copy=True)
    if b.shape != shift.shape:
        raise ShapeError("bias", f"shape {shift.shape} (one per output channel)", f"shape {b.shape}")
    return (b - shift).astype(np.float32)


def input_mean(x, *, channel_axis: int = 1) -> np.ndarray:
    """Per-channel mean of a batch of layer inputs: (N, in) or (N, C, H, W) -> (in,) / (C,)."""
    x = float_array(x, "x", ndim=(2, 3, 4, 5), dtype=np.float64, copy=True)
    axis = channel_axis % x.ndim
    return x.mean(axis=tuple(a for a in range(x.ndim) if a != axis))


_erf = np.vectorize(math.erf, otypes=[np.float64])


def relu_gaussian_mean(beta, gamma) -> np.ndarray:
    """E[max(z, 0)] for z ~ N(beta, gamma²), elementwise (eq. 11). gamma = 0 gives max(beta, 0)."""
    beta = float_array(beta, "beta", dtype=np.float64, copy=True)
    gamma = np.abs(float_array(gamma, "gamma", dtype=np.float64, copy=True))
    beta, gamma = np.broadcast_arrays(beta, gamma)
    out = np.maximum(beta, 0.0).astype(np.float64)
    pos = gamma > 0
    t = beta[pos] / gamma[pos]
    pdf = np.exp(-0.5 * t * t) / math.sqrt(2.0 * math.pi)
    cdf = 0.5 * (1.0 + _erf(t / math.sqrt(2.0)))
    out[pos] = gamma[pos] * pdf + beta[pos] * cdf
    return out
