"""Entropy (KL-divergence) observer: TensorRT's calibration (docs/quantization.md §7.5).

Source: Migacz 2017, "8-bit Inference with TensorRT", GTC talk (slides
"Calibration"); the same algorithm is in MXNet's ``_get_optimal_threshold``
and NVIDIA pytorch-quantization's ``compute_amax_entropy``.

The threshold T is the clipping point whose quantized distribution loses the
least information about the observed one. On the histogram of |x| (bins of
width w, counts h_0 .. h_{n-1}, here accumulated over every batch) and for
L quantization levels (128 for int8: the magnitudes of one sign), every
candidate i = L .. n (T_i = i·w) is scored::

    P_i = (h_0, ..., h_{i-2}, h_{i-1} + sum_{j>=i} h_j)           reference: outliers folded   (14)
          into the last bin, because clipping saturates them there
    Q_i = h_0 .. h_{i-1} merged into L groups of near-equal size (bin j -> group floor(j·L/i)),
          each group's total spread evenly over those of its bins where P_i != 0          (15)
    D_i = KL(P_i || Q_i) = sum_j p_j log(p_j / q_j)   (P, Q normalized, zeros smoothed)   (16)

    T = T_m,  m = argmin_i D_i    (ties: the smallest i)

Q_i holds no outliers, so clipping too much is penalized through the last
bin; a large i leaves few bins per level, penalized through the merging.
Smoothing: a distribution with zero bins gets eps = 1e-4 (relative to its
total) added to each of them and is renormalized, so log(p/q) stays finite.

Refcomp's choices, where sources differ: T is the bin edge i·w (MXNet and
pytorch-quantization; the GTC slide writes (m + 0.5)·w, half a bin more);
the groups split the i bins evenly (MXNet gives the remainder to the last
group). Asymmetric schemes clip both tails at T: range = (clamp(-T), clamp(T))
with clamp to [min x, max x]. L is (qmax - qmin + 1) // 2 for the scheme's integer range
(symmetric, or data of both signs), qmax - qmin + 1 when the data are all
>= 0 and the scheme is asymmetric (e.g. uint8 after ReLU), and 2^(bits-1)
for float dtypes. If the histogram has fewer than L bins, T = max|x|.
"""

from __future__ import annotations

import numpy as np

from ...errors import ValidationError
from ..choose import quant_range
from ._histogram_observer import HistogramObserver

__all__ = ["EntropyObserver", "kl_thresholds"]

_SMOOTH = 1e-4


def _smooth(d: np.ndarray) -> np.ndarray:
    """Normalize; give zero bins eps and renormalize (eq. 16's smoothing)."""
    d = d / d.sum()
    zeros = d == 0
    if zeros.any():
        d = d + _SMOOTH * zeros
        d = d / d.sum()
    return d


def kl_thresholds(abs_counts: np.ndarray, levels: int, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(candidate bin counts i, divergences D_i) of eqs. (14)-(16) for a histogram of |x|.

    abs_counts : counts h_0 .. h_{n-1} of |x| on equal-width bins starting at 0.
    levels : L. Candidates are i = L, L + stride, ..., n (n always included).
    """
    h = np.asarray(abs_counts, dtype=np.float64)
    n = h.size
    if n < levels or h.sum() == 0:
        return np.array([n]), np.zeros(1)
    candidates = np.arange(levels, n + 1, stride)
    if candidates[-1] != n:
        candidates = np.append(candidates, n)
    tail = np.concatenate([np.cumsum(h[::-1])[::-1], [0.0]])  # tail[i] = sum_{j>=i} h_j
    divergences = np.empty(candidates.size)
    for c, i in enumerate(candidates):
        raw = h[:i]
        p = raw.copy()
        p[-1] += tail[i]  # eq. (14); p holds all the mass, so p.sum() == h.sum() > 0
        group = (np.arange(i) * levels) // i  # eq. (15)
        nonzero = p != 0
        total = np.bincount(group, weights=raw, minlength=levels)
        members = np.bincount(group, weights=nonzero, minlength=levels)
        q = np.where(nonzero, total[group] / np.maximum(members[group], 1), 0.0)
        if q.sum() == 0:  # all mass was outliers: nothing is represented
            divergences[c] = np.inf
            continue
        p, q = _smooth(p), _smooth(q)
        divergences[c] = float(np.sum(p * np.log(p / q)))  # eq. (16)
    return candidates, divergences


class EntropyObserver(HistogramObserver):
    """Clipping threshold minimizing KL(P || Q) over the |x| histogram (eqs. 14-16).

    num_quantized_bins : L; None derives it from the scheme (see module docstring).
    stride : step between candidate thresholds (1 = every bin, as TensorRT).
    """

    def __init__(self, dtype="int8", *, num_quantized_bins: int | None = None, stride: int = 1, **kwargs):
        def is_int(v, least):
            return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= least

        if num_quantized_bins is not None and not is_int(num_quantized_bins, 2):
            raise ValidationError("num_quantized_bins", "None or an int >= 2", repr(num_quantized_bins))
        if not is_int(stride, 1):
            raise ValidationError("stride", "an int >= 1", repr(stride))
        self.num_quantized_bins = num_quantized_bins
        self.stride = int(stride)
        super().__init__(dtype, **kwargs)

    def levels(self, data_min: float = -1.0) -> int:
        """L for this scheme and data (module docstring)."""
        if self.num_quantized_bins is not None:
            return int(self.num_quantized_bins)
        if self.dtype.is_float:
            return 2 ** (self.dtype.bits - 1)
        lo, hi = quant_range(self.dtype, restricted_range=self.restricted_range, reduce_range=self.reduce_range)
        if not self.symmetric and data_min >= 0:
            return hi - lo + 1
        return (hi - lo + 1) // 2

    def threshold(self, channel: int = 0) -> float:
        """T for one channel (eq. 16's argmin), in the units of x."""
        hist = self.histograms[channel]
        amax = max(-float(self.min_val[channel]), float(self.max_val[channel]))
        if hist.width is None:
            return 0.0
        candidates, div = kl_thresholds(hist.abs_counts(), self.levels(float(self.min_val[channel])), self.stride)
        m = int(np.argmin(div))
        return min(float(candidates[m]) * hist.width, amax)

    def _select(self, channel, hist, data_min, data_max):
        t = self.threshold(channel)
        if self.symmetric:
            return -t, t
        return min(max(-t, data_min), data_max), min(max(t, data_min), data_max)
