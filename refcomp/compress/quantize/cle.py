"""Cross-layer equalization (CLE) of two consecutive layers around a ReLU.

Nagel, van Baalen, Blankevoort, Welling, "Data-Free Quantization Through
Weight Equalization and Bias Correction", ICCV 2019, arXiv:1906.04721, §4.1.
Math: docs/gptq_and_ptq.md §4, eqs. (12)-(13).

For y = W2 f(W1 x + b1) + b2 with f positively homogeneous (ReLU, PReLU,
identity: f(s·z) = s·f(z) for s > 0) and any positive S = diag(s)::

    W2 f(W1 x + b1) = (W2 S) f(S⁻¹ W1 x + S⁻¹ b1)                          (12)

so W1 ← S⁻¹ W1, b1 ← S⁻¹ b1, W2 ← W2 S changes no output. Let r1_i be the
range max|·| of output channel i of W1 and r2_i that of input channel i of W2.
After scaling they are r1_i / s_i and r2_i·s_i; the choice that makes them
equal (and maximises the sum of per-channel precisions, DFQ §4.1) is::

    s_i = (1 / r2_i) · sqrt(r1_i · r2_i) = sqrt(r1_i / r2_i)                (13)

after which both ranges are sqrt(r1_i r2_i). A channel with r1_i = 0 or
r2_i = 0 is left as it is (s_i = 1). Shapes: W1 (out1, in1) or
(out1, in1, kh, kw); W2 (out2, out1) or (out2, out1, kh, kw) — W2 must read
W1's outputs as its input channels (no grouped/depthwise W2 here).
"""

from __future__ import annotations

import numpy as np

from ...checks import float_array, integer
from ...errors import ShapeError

__all__ = ["equalization_scales", "equalize_pair", "equalize_chain"]


def _ranges(w1: np.ndarray, w2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if w2.shape[1] != w1.shape[0]:
        raise ShapeError("w2", f"input channels (axis 1) = output channels of w1 ({w1.shape[0]})",
                         f"shape {w2.shape}")
    r1 = np.max(np.abs(w1), axis=tuple(a for a in range(w1.ndim) if a != 0))
    r2 = np.max(np.abs(w2), axis=tuple(a for a in range(w2.ndim) if a != 1))
    return r1, r2


def equalization_scales(w1, w2) -> np.ndarray:
    """s (out1,) of eq. (13), float64, all > 0."""
    w1 = float_array(w1, "w1", ndim=(2, 4), dtype=np.float64, copy=True)
    w2 = float_array(w2, "w2", ndim=(2, 4), dtype=np.float64, copy=True)
    r1, r2 = _ranges(w1, w2)
    s = np.ones_like(r1)
    ok = (r1 > 0) & (r2 > 0)
    s[ok] = np.sqrt(r1[ok] * r2[ok]) / r2[ok]
    return s


def equalize_pair(w1, b1, w2) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """Apply eq. (12) with s of eq. (13).

    Returns (W1 / s, b1 / s, W2 · s, s): float32 weights of the input shapes
    (b1 None stays None) and the float64 scales.
    """
    w1, b1, w2, s = _equalize(w1, b1, w2)
    return w1.astype(np.float32), None if b1 is None else b1.astype(np.float32), w2.astype(np.float32), s


def _equalize(w1, b1, w2):
    """equalize_pair in float64 (no rounding between sweeps of equalize_chain)."""
    w1 = float_array(w1, "w1", ndim=(2, 4), dtype=np.float64, copy=True)
    w2 = float_array(w2, "w2", ndim=(2, 4), dtype=np.float64, copy=True)
    s = equalization_scales(w1, w2)
    w1_new = w1 / s.reshape((-1,) + (1,) * (w1.ndim - 1))
    w2_new = w2 * s.reshape((1, -1) + (1,) * (w2.ndim - 2))
    b1_new = None
    if b1 is not None:
        b = float_array(b1, "b1", ndim=1, dtype=np.float64, copy=True)
        if b.shape != (w1.shape[0],):
            raise ShapeError("b1", f"shape ({w1.shape[0]},)", f"shape {b.shape}")
        b1_new = b / s
    return w1_new, b1_new, w2_new, s


def equalize_chain(weights, biases, *, max_iter: int = 20, tol: float = 1e-6):
    """Equalize every consecutive pair of a chain of layers, repeatedly (DFQ §4.1).

    Equalizing pair (k, k+1) changes layer k+1's ranges and so the optimum of
    pair (k+1, k+2); sweeping the chain until max_i |log s_i| < tol converges
    (each sweep does not increase the objective of DFQ). Returns new lists
    (weights float32, biases float32 or None) and the number of sweeps done.
    """
    ws = [float_array(w, f"weights[{i}]", ndim=(2, 4), dtype=np.float64, copy=True) for i, w in enumerate(weights)]
    bs = [None if b is None else float_array(b, f"biases[{i}]", ndim=1, dtype=np.float64, copy=True) for i, b in enumerate(biases)]
    if len(bs) != len(ws):
        raise ShapeError("biases", f"{len(ws)} entries (one per weight, None allowed)", f"{len(bs)}")
    max_iter = integer(max_iter, "max_iter", minimum=1)
    sweeps = 0
    for sweeps in range(1, max_iter + 1):
        worst = 0.0
        for k in range(len(ws) - 1):
            ws[k], bs[k], ws[k + 1], s = _equalize(ws[k], bs[k], ws[k + 1])
            worst = max(worst, float(np.max(np.abs(np.log(s)))) if s.size else 0.0)
        if worst < tol:
            break
    return [w.astype(np.float32) for w in ws], [None if b is None else np.asarray(b, np.float32) for b in bs], sweeps
