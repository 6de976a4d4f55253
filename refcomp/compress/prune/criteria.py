"""Importance scores: how much each weight (or structure of weights) matters.

A criterion maps a weight array (and, for some, the data it sees) to a score
array; a mask function in :mod:`refcomp.compress.prune.masks` then keeps the
highest scores. Element-wise criteria return an array of the weight's shape;
structure criteria return one score per structure:

===========  ============================  ==========================
structure    weight (out, in[, kh, kw])    score shape
===========  ============================  ==========================
``"row"``    Linear neuron / Conv filter    (out,)
``"channel"`` input channel (axis 1)        (in,)
``"block"``  (bh, bw) tile of a 2-D weight (out // bh, in // bw)
===========  ============================  ==========================

Equation numbers (D.n) refer to docs/deep_compression.md, (P.n) to docs/pruning.md.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ...checks import float_array, int_pair, integer, same_shape
from ...errors import ShapeError, ValidationError

__all__ = [
    "STRUCTURES",
    "magnitude",
    "structure_norms",
    "activation_importance",
    "taylor_first_order",
    "snip",
    "gradient_magnitude",
    "grasp",
]

STRUCTURES = ("row", "channel", "block")


def magnitude(weight) -> np.ndarray:
    """Magnitude importance, s_ij = |w_ij|  (D.1).

    Han, Pool, Tran, Dally 2015, "Learning both Weights and Connections for
    Efficient Neural Networks" (arXiv:1506.02626) §3: connections whose weight
    is below a threshold are removed.

    weight : any shape, real.  Returns float array of the same shape.
    """
    return np.abs(float_array(weight, "weight"))


def _block_view(a: np.ndarray, block_shape, argument: str) -> np.ndarray:
    """(R, C) -> (R/bh, bh, C/bw, bw) view; the block shape must divide the weight."""
    if a.ndim != 2:
        raise ShapeError(argument, "a 2-D (out, in) array for block structures "
                         "(reshape a conv weight to (out, in*kh*kw) first)", f"shape {a.shape}")
    if not (isinstance(block_shape, (tuple, list)) and len(block_shape) == 2):
        raise ValidationError("block_shape", "a pair (bh, bw) of positive ints", repr(block_shape))
    bh = integer(block_shape[0], "block_shape[0]", minimum=1)
    bw = integer(block_shape[1], "block_shape[1]", minimum=1)
    r, c = a.shape
    if r % bh or c % bw:
        raise ShapeError("block_shape", f"a block shape dividing the weight shape {a.shape}",
                         repr(tuple(block_shape)))
    return a.reshape(r // bh, bh, c // bw, bw)


def _reduce_structure(a: np.ndarray, structure: str, block_shape, fn, argument: str) -> np.ndarray:
    """Apply ``fn(array, axes)`` over every element of each structure."""
    if structure == "row":
        if a.ndim < 2:
            raise ShapeError(argument, "an array of >= 2 dims (out, in, ...)", f"shape {a.shape}")
        return fn(a, tuple(range(1, a.ndim)))
    if structure == "channel":
        if a.ndim < 2:
            raise ShapeError(argument, "an array of >= 2 dims (out, in, ...)", f"shape {a.shape}")
        return fn(a, (0,) + tuple(range(2, a.ndim)))
    if structure == "block":
        return fn(_block_view(a, block_shape, argument), (1, 3))
    raise ValidationError("structure", f"one of {STRUCTURES}", repr(structure))


def structure_norms(x, structure: str, *, ord: int = 1, block_shape=None) -> np.ndarray:
    """L1 or L2 norm of each structure of ``x``  (D.2).

        s_S = ( Σ_{i∈S} |x_i|^p )^{1/p},  p ∈ {1, 2}

    With ``x`` a weight this is the filter-norm criterion of Li et al. 2017,
    "Pruning Filters for Efficient ConvNets" (arXiv:1608.08710) §3 (p = 1),
    and the group-lasso norm of Wen et al. 2016 (p = 2). With ``x`` an
    element-wise score (e.g. :func:`taylor_first_order`), ord=1 sums the scores.

    structure : "row" (neurons / filters, axis 0), "channel" (axis 1) or
        "block" (``block_shape`` = (bh, bw) tiles of a 2-D array; must divide it).
    """
    a = float_array(x, "x")
    if ord not in (1, 2):
        raise ValidationError("ord", "1 or 2", repr(ord))
    if ord == 1:
        def fn(v, axes):
            return np.sum(np.abs(v), axis=axes, dtype=np.float64)
    else:
        def fn(v, axes):
            return np.sqrt(np.sum(np.square(v, dtype=np.float64), axis=axes))
    return _reduce_structure(a, structure, block_shape, fn, "x")


def _conv_input_abs_mean(x: np.ndarray, kernel_hw, stride, padding, dilation) -> np.ndarray:
    """A[c, kh, kw] = mean over samples and output positions of |x| at the tap (kh, kw).

    Zero padding contributes zeros, exactly as in the convolution.
    """
    n, c, h, w = x.shape
    kh, kw = kernel_hw
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    xp = np.pad(np.abs(x), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    if oh < 1 or ow < 1:
        raise ShapeError("inputs", f"spatial size large enough for a {kh}x{kw} kernel", f"shape {x.shape}")
    out = np.empty((c, kh, kw), dtype=np.float64)
    for i in range(kh):
        for j in range(kw):
            tap = xp[:, :, i * dh: i * dh + sh * (oh - 1) + 1: sh, j * dw: j * dw + sw * (ow - 1) + 1: sw]
            out[:, i, j] = tap.mean(axis=(0, 2, 3), dtype=np.float64)
    return out


def activation_importance(weight, inputs, *, stride=1, padding=0, dilation=1) -> np.ndarray:
    """Mean |activation × weight| over a calibration set  (D.3).

    Linear, weight (out, in), inputs (..., in) — every leading index is a sample:

        s_ij = (1/N) Σ_n |x_nj · w_ij| = |w_ij| · (1/N) Σ_n |x_nj|

    Conv2d, weight (out, C, kh, kw), inputs (N, C, H, W): the mean also runs over
    the P output positions p, with x_{n,c}(p, kh, kw) the input under tap (kh, kw)
    (zero padding included, as the convolution sees it):

        s_ockl = |w_ockl| · (1/(N·P)) Σ_{n,p} |x_{n,c}(p, k, l)|

    The contribution of one connection to the next layer's pre-activation,
    averaged over data: the criterion of Sun et al. 2024 "Wanda"
    (arXiv:2306.11695) uses ‖x_j‖₂ in place of the mean |x_j|.

    inputs : one array, or a sequence of calibration batches (joined along axis 0).
    Returns float64 array of the weight's shape.
    """
    w = float_array(weight, "weight")
    if isinstance(inputs, (list, tuple)):
        if not inputs:
            raise ValidationError("inputs", "an array or a non-empty sequence of batches", "[]")
        batches = [float_array(b, f"inputs[{i}]") for i, b in enumerate(inputs)]
        if len({b.shape[1:] for b in batches}) != 1:
            raise ShapeError("inputs", "batches that differ only in their first dim",
                             [b.shape for b in batches])
        inputs = np.concatenate(batches, axis=0)
    x = float_array(inputs, "inputs", allow_empty=False)
    if w.ndim == 2:
        if x.ndim < 1 or x.shape[-1] != w.shape[1]:
            raise ShapeError("inputs", f"shape (..., {w.shape[1]}) (last axis = weight's in)", f"shape {x.shape}")
        mean_abs = np.mean(np.abs(x.reshape(-1, w.shape[1])), axis=0, dtype=np.float64)
        return np.abs(w) * mean_abs[None, :]
    if w.ndim == 4:
        if x.ndim != 4 or x.shape[1] != w.shape[1]:
            raise ShapeError("inputs", f"shape (N, {w.shape[1]}, H, W)", f"shape {x.shape}")
        a = _conv_input_abs_mean(x, w.shape[2:], int_pair(stride, "stride", minimum=1),
                                 int_pair(padding, "padding", minimum=0), int_pair(dilation, "dilation", minimum=1))
        return np.abs(w) * a[None]
    raise ShapeError("weight", "a Linear (out, in) or Conv2d (out, in, kh, kw) weight", f"shape {w.shape}")


def _gradient_list(weight: np.ndarray, grad) -> list[np.ndarray]:
    if isinstance(grad, (list, tuple)):
        if not grad:
            raise ValidationError("grad", "an array or a non-empty sequence of per-batch arrays", "[]")
        gs = [float_array(g, f"grad[{i}]") for i, g in enumerate(grad)]
        for i, g in enumerate(gs):
            same_shape(g, weight.shape, f"grad[{i}]")
        return gs
    g = float_array(grad, "grad")
    same_shape(g, weight.shape, "grad")
    return [g]


def taylor_first_order(weight, grad, *, structure: str | None = None, block_shape=None) -> np.ndarray:
    """First-order Taylor importance, from the weight and ∂L/∂w  (D.4, D.5).

    Removing w_i (setting it to 0) changes the loss by ≈ −g_i·w_i to first order
    (g = ∂L/∂w), so the score is the size of that change. ``grad`` is one
    gradient array or a sequence of per-batch gradients g⁽¹⁾…g⁽ᴮ⁾ (accumulated):

        element-wise (structure=None):  s_i = (1/B) Σ_b |w_i · g⁽ᵇ⁾_i|          (D.4)
        per structure S:                s_S = (1/B) Σ_b (Σ_{i∈S} w_i · g⁽ᵇ⁾_i)²   (D.5)

    (D.4): Molchanov et al. 2017, "Pruning Convolutional Neural Networks for
    Resource Efficient Inference" (arXiv:1611.06440), the Taylor-expansion
    criterion written for weights instead of activations.
    (D.5): Molchanov et al. 2019, "Importance Estimation for Neural Network
    Pruning" (arXiv:1906.10771), the squared first-order group contribution
    averaged over mini-batches.
    """
    w = float_array(weight, "weight")
    gs = _gradient_list(w, grad)
    if structure is None:
        return sum(np.abs(w.astype(np.float64) * g) for g in gs) / len(gs)

    def fn(v, axes):
        return np.sum(v, axis=axes, dtype=np.float64)

    total = None
    for g in gs:
        s = np.square(_reduce_structure(w.astype(np.float64) * g, structure, block_shape, fn, "weight"))
        total = s if total is None else total + s
    return total / len(gs)


def snip(weights, grads):
    """SNIP connection sensitivity at initialisation  (D.6).

    Lee, Ajanthan, Torr 2019, "SNIP: Single-shot Network Pruning based on
    Connection Sensitivity" (arXiv:1810.02340) §4.1, eq. (6): with a mask c
    multiplying the weights, g_j = ∂L(c ⊙ w)/∂c_j at c = 1 equals w_j · ∂L/∂w_j, and

        s_j = |g_j| / Σ_k |g_k|

    The sum runs over every connection considered together: pass Mappings
    name -> array for several layers (one normalisation across all of them, as
    SNIP prunes globally), or a single weight/gradient pair.
    Returns scores of the same structure (array or dict); they sum to 1.
    """
    if isinstance(weights, Mapping) != isinstance(grads, Mapping):
        raise ValidationError("grads", "the same kind as weights (both arrays or both mappings)",
                              type(grads).__name__)
    if isinstance(weights, Mapping):
        if set(weights) != set(grads):
            raise ValidationError("grads", f"the same names as weights {sorted(weights)}", sorted(grads))
        raw = {}
        for name in weights:
            w = float_array(weights[name], f"weights[{name!r}]")
            g = float_array(grads[name], f"grads[{name!r}]")
            same_shape(g, w.shape, f"grads[{name!r}]")
            raw[name] = np.abs(w.astype(np.float64) * g)
        total = sum(float(np.sum(v)) for v in raw.values())
        if total == 0.0:
            raise ValidationError("grads", "at least one non-zero w·∂L/∂w (else SNIP is undefined)", "all zero")
        return {name: v / total for name, v in raw.items()}
    w = float_array(weights, "weights")
    g = float_array(grads, "grads")
    same_shape(g, w.shape, "grads")
    raw = np.abs(w.astype(np.float64) * g)
    total = float(np.sum(raw))
    if total == 0.0:
        raise ValidationError("grads", "at least one non-zero w·∂L/∂w (else SNIP is undefined)", "all zero")
    return raw / total



def gradient_magnitude(weight, grad) -> np.ndarray:
    """Plain gradient magnitude, s_i = |ḡ_i|,  ḡ = (1/B) Σ_b g⁽ᵇ⁾  (P.1).

    The score of a weight is how fast the loss moves when that weight moves,
    whatever the weight's own size (so, unlike Taylor (D.4), a large weight in
    a flat direction scores low). ``grad`` is one gradient array or a sequence
    of per-batch gradients g⁽¹⁾…g⁽ᴮ⁾ of equal-sized batches; their mean is the
    gradient of the mean loss, so the absolute value is taken *after* the mean
    (noise that cancels between batches does not count).

    weight : any shape, real (only its shape is used: the criterion ignores its values).
    grad : array or sequence of arrays of the weight's shape.
    Returns float64 array of the weight's shape.
    """
    w = float_array(weight, "weight")
    gs = _gradient_list(w, grad)
    return np.abs(sum(g.astype(np.float64) for g in gs) / len(gs))


def grasp(weight, hg) -> np.ndarray:
    """GraSP score, S(−θ) = −θ ⊙ Hg  (P.2).

    Wang, Zhang, Grosse 2020, "Picking Winning Tickets Before Training by
    Preserving Gradient Flow" (arXiv:2002.07376), §4, the score S(−θ). The gradient
    norm ΔL(θ) = gᵀg changes, to first order, by −2 δᵀHg when the weights
    move by δ; removing weight i (δ_i = −θ_i) changes it by about
    2 θ_i (Hg)_i. A *large* S_i = −θ_i (Hg)_i means removing i *raises* the
    gradient flow least (or lowers it), so GraSP **removes the weights with
    the largest scores** — the opposite of the other criteria here, which keep
    the largest. :func:`grasp_keep_scores` turns S into scores to keep.

    weight : θ, any shape, real.   hg : Hg, the Hessian-gradient product of the
    loss restricted to these weights, the weight's shape (e.g. from
    refcomp.compress.prune.gradflow.hessian_gradient_product).
    Returns float64 array of the weight's shape (any sign).
    """
    w = float_array(weight, "weight")
    h = float_array(hg, "hg")
    same_shape(h, w.shape, "hg")
    return -(w.astype(np.float64) * h)


def grasp_keep_scores(scores: Mapping) -> dict:
    """GraSP scores {name: S} as non-negative scores where larger = keep: K = max S − S.

    One shift for every tensor together, so the order across layers (global
    scope, as GraSP prunes) is kept and the largest S is removed first.
    """
    if not isinstance(scores, Mapping) or not scores:
        raise ValidationError("scores", "a non-empty mapping name -> GraSP scores", type(scores).__name__)
    s = {k: float_array(v, f"scores[{k!r}]") for k, v in scores.items()}
    top = max(float(np.max(v)) for v in s.values() if v.size) if any(v.size for v in s.values()) else 0.0
    return {k: top - v.astype(np.float64) for k, v in s.items()}
