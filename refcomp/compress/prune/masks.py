"""Pruning masks from importance scores: which weights survive.

A mask is a boolean array of the weight's shape, True = kept. Every function
here keeps the *highest* scores and removes an exact count, so results are
reproducible:

- the number removed is k = floor(s·n + 1/2) for sparsity s over n candidates
  (|k − s·n| ≤ 1/2);
- ties are broken deterministically: among equal scores the candidate with the
  smaller row-major index is kept.

Granularities: unstructured (any element), N:M (N kept in every group of M
consecutive weights along the input dimension), blocks, whole rows
(neurons/filters) and channels. Scope: one tensor, per layer (each its own
ratio) or global (one threshold across several tensors).
Equation numbers (D.n) refer to docs/deep_compression.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from ...checks import float_array, integer, normalize_axis, ratio
from ...errors import ShapeError, ValidationError

__all__ = [
    "unstructured_mask",
    "nm_mask",
    "block_mask",
    "row_mask",
    "filter_mask",
    "channel_mask",
    "global_masks",
    "layerwise_masks",
    "sparsity_of",
]


def keep_top(scores: np.ndarray, n_keep: int) -> np.ndarray:
    """Boolean array of ``scores``' shape with exactly ``n_keep`` True: the largest scores.

    Ties are broken deterministically: among equal scores the element with the
    smaller row-major (C order) flat index is kept. (A stable sort of the
    negated scores puts equal scores in index order.)
    """
    flat = np.asarray(scores, dtype=np.float64).ravel()
    keep = np.zeros(flat.size, dtype=bool)
    if n_keep > 0:
        order = np.argsort(-flat, kind="stable")
        keep[order[:n_keep]] = True
    return keep.reshape(np.shape(scores))


def n_pruned(size: int, sparsity: float) -> int:
    """Number of elements to remove so that ``pruned / size`` is nearest ``sparsity``.

    k = floor(s·n + 1/2), so |k − s·n| ≤ 1/2: the requested sparsity within half a weight.
    """
    return min(size, int(np.floor(sparsity * size + 0.5)))


def unstructured_mask(scores, sparsity: float) -> np.ndarray:
    """Keep the n − k highest-scoring elements of ``scores`` (any shape)  (D.7).

    k = floor(sparsity·n + 1/2); with magnitude scores this is the layer-wise
    threshold pruning of Han et al. 2015 §3 with the threshold set by a ratio.
    sparsity : in [0, 1).  Returns bool array of ``scores``' shape.
    """
    s = float_array(scores, "scores")
    r = ratio(sparsity, "sparsity")
    return keep_top(s, s.size - n_pruned(s.size, r))


def nm_mask(scores, n: int, m: int, *, axis: int = 1) -> np.ndarray:
    """N:M semi-structured mask: exactly ``n`` kept in every group of ``m``  (D.8).

    Groups are ``m`` consecutive elements along ``axis`` (the input dimension:
    axis 1 of a Linear (out, in) or Conv2d (out, in, kh, kw) weight; for a conv
    each group is m input channels at one (filter, kh, kw) position, as NVIDIA's
    ASP does). The length along ``axis`` must be a multiple of ``m``.
    2:4 is the pattern the NVIDIA Ampere sparse tensor cores execute:
    Mishra et al. 2021, "Accelerating Sparse Deep Neural Networks"
    (arXiv:2104.08378).

    Within a group the n highest scores survive; ties keep the earlier element.
    """
    s = float_array(scores, "scores")
    m = integer(m, "m", minimum=1)
    n = integer(n, "n", minimum=0)
    if n > m:
        raise ValidationError("n", f"n <= m (= {m})", n)
    if s.ndim == 0:
        raise ShapeError("scores", "an array of >= 1 dims", "a scalar")
    axis = normalize_axis(axis, s.ndim)
    length = s.shape[axis]
    if length % m:
        raise ShapeError("scores", f"a length along axis {axis} divisible by m = {m}", f"shape {s.shape}")
    moved = np.moveaxis(s, axis, -1)
    groups = moved.reshape(-1, m).astype(np.float64)
    # stable argsort of −score: within a group the earlier of equal scores comes first
    order = np.argsort(-groups, axis=1, kind="stable")
    keep = np.zeros(groups.shape, dtype=bool)
    np.put_along_axis(keep, order[:, :n], True, axis=1)
    return np.moveaxis(keep.reshape(moved.shape), -1, axis)


def _expand_blocks(keep_blocks: np.ndarray, block_shape: tuple[int, int]) -> np.ndarray:
    return np.repeat(np.repeat(keep_blocks, block_shape[0], axis=0), block_shape[1], axis=1)


def block_mask(block_scores, sparsity: float, block_shape) -> np.ndarray:
    """Remove whole (bh, bw) blocks of a 2-D weight  (D.9).

    block_scores : (out // bh, in // bw), one score per block, e.g.
        ``structure_norms(w, "block", block_shape=(bh, bw))``, which also checks
        that the block shape divides the weight (a shape that does not divide
        is an error, not silently padded).
    Returns the (out, in) element mask; 1×4 blocks remove runs of 4 inputs of
    one neuron, 4×4 tiles suit blocked sparse GEMM.
    """
    s = float_array(block_scores, "block_scores")
    if s.ndim != 2:
        raise ShapeError("block_scores", "a 2-D array (out // bh, in // bw)", f"shape {s.shape}")
    if not (isinstance(block_shape, (tuple, list)) and len(block_shape) == 2):
        raise ValidationError("block_shape", "a pair (bh, bw) of positive ints", repr(block_shape))
    bs = (integer(block_shape[0], "block_shape[0]", minimum=1), integer(block_shape[1], "block_shape[1]", minimum=1))
    return _expand_blocks(unstructured_mask(s, sparsity), bs)


def _structure_mask(scores, sparsity: float, weight_shape, axis: int, what: str) -> np.ndarray:
    s = float_array(scores, "scores")
    shape = tuple(integer(d, "weight_shape", minimum=0) for d in weight_shape)
    if len(shape) < 2:
        raise ShapeError("weight_shape", "a shape of >= 2 dims (out, in, ...)", repr(tuple(weight_shape)))
    if s.shape != (shape[axis],):
        raise ShapeError("scores", f"one score per {what}: shape ({shape[axis]},)", f"shape {s.shape}")
    keep = unstructured_mask(s, sparsity)
    view = [1] * len(shape)
    view[axis] = shape[axis]
    return np.broadcast_to(keep.reshape(view), shape).copy()


def row_mask(scores, sparsity: float, weight_shape) -> np.ndarray:
    """Remove whole rows: Linear neurons / Conv2d filters (axis 0)  (D.10).

    scores : (out,), e.g. ``structure_norms(w, "row")`` (Li et al. 2017, arXiv:1608.08710).
    Returns the element mask of ``weight_shape``; the later structured shrink
    deletes these rows and the next layer's matching inputs.
    """
    return _structure_mask(scores, sparsity, weight_shape, 0, "row")


#: Conv2d filters are the rows (axis 0) of an (out, in, kh, kw) weight.
filter_mask = row_mask


def channel_mask(scores, sparsity: float, weight_shape) -> np.ndarray:
    """Remove whole input channels (axis 1 of (out, in[, kh, kw]))  (D.10).

    scores : (in,), e.g. ``structure_norms(w, "channel")``.
    """
    return _structure_mask(scores, sparsity, weight_shape, 1, "channel")


def _check_names(names: Iterable[str], known: Mapping, argument: str) -> None:
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ValidationError(argument, f"layer names among {sorted(known)}", f"unknown {unknown}")


def global_masks(scores: Mapping[str, np.ndarray], sparsity: float, *, exclude: Iterable[str] = ()) -> dict:
    """One threshold across several tensors (global scope)  (D.11).

    All candidate scores (every tensor in ``scores`` not in ``exclude``) are
    ranked together and exactly k = floor(s·n + 1/2) of the n candidates are
    removed, so the overall sparsity of the candidates is s within half a
    weight. Ties are broken by (tensor order in ``scores``, row-major index).
    Excluded tensors get an all-True mask. Compare scores that are comparable
    across layers (magnitudes of similarly scaled layers, SNIP, Taylor).

    Returns {name: bool mask} for every name in ``scores``.
    """
    if not isinstance(scores, Mapping) or not scores:
        raise ValidationError("scores", "a non-empty mapping name -> score array", type(scores).__name__)
    r = ratio(sparsity, "sparsity")
    exclude = list(exclude)
    _check_names(exclude, scores, "exclude")
    arrays = {name: float_array(v, f"scores[{name!r}]") for name, v in scores.items()}
    chosen = [name for name in arrays if name not in exclude]
    if not chosen:
        raise ValidationError("exclude", "to leave at least one tensor to prune", exclude)
    flat = np.concatenate([arrays[name].ravel().astype(np.float64) for name in chosen])
    keep = keep_top(flat, flat.size - n_pruned(flat.size, r))
    masks, start = {}, 0
    for name, a in arrays.items():
        if name in exclude:
            masks[name] = np.ones(a.shape, dtype=bool)
        else:
            masks[name] = keep[start: start + a.size].reshape(a.shape)
            start += a.size
    return masks


def layerwise_masks(scores: Mapping[str, np.ndarray], sparsity) -> dict:
    """Per-layer scope: each tensor pruned unstructured to its own ratio.

    sparsity : one ratio for all, or a mapping name -> ratio (e.g. from a
        sensitivity sweep); names missing from it are left dense; a name that
        is not in ``scores`` is an error.
    """
    if not isinstance(scores, Mapping) or not scores:
        raise ValidationError("scores", "a non-empty mapping name -> score array", type(scores).__name__)
    if isinstance(sparsity, Mapping):
        _check_names(sparsity, scores, "sparsity")
        ratios = {name: sparsity.get(name, 0.0) for name in scores}
    else:
        ratios = {name: sparsity for name in scores}
    masks = {}
    for name, a in scores.items():
        masks[name] = unstructured_mask(float_array(a, f"scores[{name!r}]"),
                                        ratio(ratios[name], f"sparsity[{name!r}]"))
    return masks


def sparsity_of(x) -> float:
    """Fraction of zeros (or of False in a mask): 1 − nnz / size."""
    a = np.asarray(x)
    if a.size == 0:
        raise ShapeError("x", "a non-empty array", f"shape {a.shape}")
    return 1.0 - np.count_nonzero(a) / a.size
