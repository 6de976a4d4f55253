"""Weight sharing: k-means clustering of one layer's weights (Deep Compression §3).

Han, Mao, Dally 2016, "Deep Compression" (arXiv:1510.00149) §3.1: the n
surviving weights W = {w_1…w_n} of a layer are partitioned into k = 2^b
clusters C = {c_1…c_k} minimising the within-cluster sum of squares

    argmin_C Σ_{i=1}^{k} Σ_{w ∈ c_i} |w − c_i|²                      (D.13; paper eq. 1)

and each weight is then stored as a b-bit index into the codebook of the k
centroids. Pruned weights (``mask`` False) are not clustered: they stay 0 and
are not stored at all by the sparse format.

In one dimension Lloyd's algorithm is cheap: sort the weights once; the
clusters of sorted centroids are contiguous runs of the sorted weights, cut at
the midpoints between neighbouring centroids. So one iteration costs a binary
search per centroid plus one pass of sums: O(k log n + n) after the
O(n log n) sort.

Trained quantization (§3.3): the weights are tied to their centroid, so the
gradient of the loss with respect to a centroid is the sum of the gradients
of its weights (D.16; paper eq. 3) and the centroids are updated with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...checks import bool_mask, float_array, integer
from ...errors import ShapeError, ValidationError
from ...formats.clustered import Clustered

__all__ = [
    "INITS",
    "KMeansResult",
    "initial_centroids",
    "lloyd_step",
    "within_cluster_sse",
    "kmeans",
    "cluster_weight",
    "assign",
    "centroid_gradients",
    "update_centroids",
]

INITS = ("linear", "density", "random")


@dataclass
class KMeansResult:
    """Output of :func:`kmeans`.

    codebook : (2^bits,) float, sorted ascending, in the weights' float dtype.
    indices : uint8 array of the weights' shape; codebook[indices] is the
        shared weight. Pruned positions (mask False) hold 0 and mean nothing.
    sse_history : within-cluster SSE (D.13) after the initialisation and after
        each Lloyd iteration (float64); never increases (up to float rounding).
    n_iter : Lloyd iterations run; converged: assignments stopped changing.
    """

    codebook: np.ndarray
    indices: np.ndarray
    bits: int
    sse_history: list[float] = field(default_factory=list)
    n_iter: int = 0
    converged: bool = False

    def shared_weights(self, mask=None) -> np.ndarray:
        """codebook[indices], with pruned positions set to 0 when ``mask`` is given."""
        w = self.codebook[self.indices]
        if mask is not None:
            w[~bool_mask(mask, self.indices.shape)] = 0
        return w


def initial_centroids(values, k: int, init: str = "linear", *, rng=None) -> np.ndarray:
    """The k starting centroids (sorted ascending, float64) — Deep Compression §3.2  (D.14):

    linear   c_j = min + j·(max − min)/(k − 1): evenly spaced over the weight range
             (the paper's best: large weights, though rare, keep their own centroids);
    density  c_j = F⁻¹((j + 1/2)/k): evenly spaced on the y-axis of the empirical CDF F
             (the paper's "density-based"; we take the mid-levels (j + 1/2)/k,
             so the centroids are the k mid-quantiles);
    random   (Forgy) k distinct weights drawn with ``rng`` (a numpy Generator or
             an int seed; required), all weights if fewer than k.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        raise ShapeError("weights", "at least one non-pruned weight to cluster", "none")
    if init == "linear":
        lo, hi = float(v.min()), float(v.max())
        return np.linspace(lo, hi, k) if k > 1 else np.array([(lo + hi) / 2])
    if init == "density":
        levels = (np.arange(k) + 0.5) / k
        return np.quantile(v, levels)
    if init == "random":
        if rng is None:
            raise ValidationError("rng", "a numpy Generator or int seed for init='random'", None)
        g = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(integer(rng, "rng"))
        take = g.choice(v.size, size=min(k, v.size), replace=False)
        c = np.sort(v[take])
        if c.size < k:  # fewer weights than clusters: the extra centroids stay unused
            c = np.concatenate([c, np.full(k - c.size, c[-1])])
        return c
    raise ValidationError("init", f"one of {INITS}", repr(init))


def _boundaries(codebook_sorted: np.ndarray) -> np.ndarray:
    """Decision boundaries: midpoints between neighbouring sorted centroids."""
    return 0.5 * (codebook_sorted[:-1] + codebook_sorted[1:])


def _run_ends(sorted_values: np.ndarray, codebook_sorted: np.ndarray) -> np.ndarray:
    """End (exclusive) of each cluster's run in the sorted weights.

    A weight exactly on a midpoint goes to the lower centroid (side="right").
    """
    ends = np.searchsorted(sorted_values, _boundaries(codebook_sorted), side="right")
    return np.concatenate([ends, [sorted_values.size]])


def within_cluster_sse(sorted_values: np.ndarray, codebook_sorted: np.ndarray) -> float:
    """Σ_i Σ_{w ∈ c_i} (w − c_i)² with every weight at its nearest centroid  (D.13)."""
    ends = _run_ends(sorted_values, codebook_sorted)
    counts = np.diff(np.concatenate([[0], ends]))
    centre = np.repeat(codebook_sorted, counts)
    return float(np.sum(np.square(sorted_values - centre)))


def lloyd_step(sorted_values: np.ndarray, codebook_sorted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One Lloyd iteration on sorted 1-D data  (D.15):

        assignment  a(w) = argmin_j |w − c_j|             (runs cut at midpoints)
        update      c_j ← mean{w : a(w) = j}              for every non-empty cluster
        relocation  an empty cluster's centroid moves onto the weight farthest
                    from its own (updated) centroid, the farthest first (equally
                    far: the smaller weight first, whatever the sort algorithm)

    The assignment cannot raise the SSE (each weight moves to a nearer or equally
    near centroid), nor can the update (the mean minimises Σ (w − c)²), nor the
    relocation (an unused centroid put anywhere can only offer nearer choices),
    so the SSE never increases. Relocation keeps all 2^b codes in use; without
    it a centroid that linear initialisation puts into the gap left by pruning
    (no surviving weight near 0) would stay there, wasted. Only weights at a
    positive distance from their centroid are candidates, so identical weights
    never attract two centroids. Returns (new sorted codebook, run ends used).
    """
    ends = _run_ends(sorted_values, codebook_sorted)
    starts = np.concatenate([[0], ends[:-1]])
    counts = ends - starts
    new = codebook_sorted.copy()
    nonempty = counts > 0
    if np.any(nonempty):
        # reduceat sums each run; only non-empty runs (an empty run's start would read its neighbour)
        sums = np.add.reduceat(sorted_values, starts[nonempty])
        new[nonempty] = sums / counts[nonempty]
    empty = np.flatnonzero(~nonempty)
    if empty.size:
        distance = np.abs(sorted_values - np.repeat(new, counts))
        order = np.argsort(-distance, kind="stable")[: empty.size]
        order = order[distance[order] > 0]
        new[empty[: order.size]] = sorted_values[order]
    # Means of ordered runs are ordered, relocated centroids are not: sort so
    # the runs of the next assignment stay contiguous.
    return np.sort(new), ends


def assign(weights, codebook) -> np.ndarray:
    """Index of the nearest centroid for every weight (ties -> the smaller centroid).

    codebook must be sorted ascending (as :func:`kmeans` returns it). Returns
    uint8 for up to 256 centroids, uint16 above.
    """
    w = float_array(weights, "weights")
    c = float_array(codebook, "codebook", allow_empty=False)
    if c.ndim != 1 or np.any(np.diff(c) < 0):
        raise ValidationError("codebook", "a 1-D array sorted ascending", f"shape {c.shape}")
    idx = np.searchsorted(_boundaries(c.astype(np.float64)), w.astype(np.float64), side="left")
    return idx.astype(np.uint8 if c.size <= 256 else np.uint16)


def kmeans(weights, bits: int, *, mask=None, init: str = "linear", rng=None,
           max_iter: int = 100) -> KMeansResult:
    """k-means weight sharing of one weight array with k = 2^bits centroids.

    weights : float array, any shape.  mask : optional bool array of the same
    shape, True = kept; only kept weights are clustered (D.13).
    bits : 1…8.  init : "linear" (default, best in the paper) | "density" | "random"
    (needs ``rng``).  max_iter : Lloyd iterations at most; stops earlier when the
    assignment no longer changes.

    The returned codebook has the weights' float dtype; indices are assigned to
    that (rounded) codebook.
    """
    w = float_array(weights, "weights")
    b = integer(bits, "bits", minimum=1, maximum=8)
    integer(max_iter, "max_iter", minimum=0)
    if init not in INITS:
        raise ValidationError("init", f"one of {INITS}", repr(init))
    k = 1 << b
    if mask is not None:
        m = bool_mask(mask, w.shape)
        values = w[m]
    else:
        m = None
        values = w.ravel()
    sorted_values = np.sort(values.astype(np.float64))
    codebook = np.sort(initial_centroids(sorted_values, k, init, rng=rng))
    history = [within_cluster_sse(sorted_values, codebook)]
    previous_ends = None
    converged = False
    n_iter = 0
    for _ in range(max_iter):
        new, ends = lloyd_step(sorted_values, codebook)
        if previous_ends is not None and np.array_equal(ends, previous_ends):
            converged = True  # same assignment twice: the update reproduced the same means
            break
        codebook, previous_ends = new, ends
        n_iter += 1
        history.append(within_cluster_sse(sorted_values, codebook))
    codebook = np.sort(codebook.astype(w.dtype))
    indices = assign(w, codebook)
    if m is not None:
        indices[~m] = 0
    return KMeansResult(codebook=codebook, indices=indices, bits=b, sse_history=history,
                        n_iter=n_iter, converged=converged)


def cluster_weight(weight, bits: int, *, mask=None, init: str = "linear", rng=None,
                   max_iter: int = 100) -> Clustered:
    """k-means weight sharing of one weight, returned as its stored format (a Clustered).

    Arguments as :func:`kmeans`; pruned weights (mask False) stay 0 in the format.
    """
    result = kmeans(weight, bits, mask=mask, init=init, rng=rng, max_iter=max_iter)
    return Clustered(result.codebook, result.indices, mask, bits=result.bits)


def centroid_gradients(grad, indices, n_clusters: int, *, mask=None) -> np.ndarray:
    """∂L/∂c_k = Σ_{i,j} ∂L/∂W_ij · 1(I_ij = k)  — Deep Compression §3.3, eq. (3)  (D.16).

    grad : ∂L/∂W, the weights' gradient (any shape).  indices : cluster index of
    every weight (same shape).  mask : kept weights (pruned ones contribute
    nothing).  Returns float64 (n_clusters,).
    """
    g = float_array(grad, "grad")
    idx = np.asarray(indices)
    if not np.issubdtype(idx.dtype, np.integer):
        raise ValidationError("indices", "an integer array", f"dtype {idx.dtype}")
    if idx.shape != g.shape:
        raise ShapeError("indices", f"shape {g.shape} (the gradient's)", f"shape {idx.shape}")
    k = integer(n_clusters, "n_clusters", minimum=1)
    if idx.size and (idx.min() < 0 or idx.max() >= k):
        raise ValidationError("indices", f"values in [0, {k - 1}]", f"range [{idx.min()}, {idx.max()}]")
    if mask is not None:
        m = bool_mask(mask, g.shape)
        g, idx = g[m], idx[m]
    return np.bincount(idx.ravel().astype(np.intp), weights=g.ravel().astype(np.float64), minlength=k)


def update_centroids(codebook, centroid_grad, lr: float) -> np.ndarray:
    """One SGD step on the codebook: c_k ← c_k − lr · ∂L/∂c_k  (D.17). Returns a new array.

    The codebook may leave sorted order after the step; :func:`assign` needs it
    sorted, the stored indices do not (they keep pointing at their centroid).
    """
    c = float_array(codebook, "codebook", allow_empty=False)
    g = float_array(centroid_grad, "centroid_grad")
    if g.shape != c.shape:
        raise ShapeError("centroid_grad", f"shape {c.shape}", f"shape {g.shape}")
    lr = float(lr)
    if not np.isfinite(lr) or lr < 0:
        raise ValidationError("lr", "a finite learning rate >= 0", lr)
    return (c - lr * g).astype(c.dtype)
