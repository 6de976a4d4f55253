"""A histogram that accumulates over batches without ever re-binning inexactly.

Bins sit on a grid anchored at 0 with a fixed width ``w``: bin ``k`` holds the
values with ``floor(x / w) == k``, i.e. ``[k·w, (k + 1)·w)`` (up to the rounding
of ``x / w``). The width is set by the first batch that is not all zeros,
``w = max|x| / bins``, so that batch spans ``bins`` bins on each side of 0.

A later batch with larger values extends the grid with new bins of the same
width (as NVIDIA pytorch-quantization's HistogramCalibrator does), so earlier
counts never move. When the grid would exceed ``max_bins`` bins, neighbouring
pairs are merged (width doubles); since the grid is anchored at 0 the merged
bins are again grid bins, so counts stay exact, only coarser. The merging
happens before a batch is counted, so the grid never exceeds ``max_bins``.

Used by the percentile, MSE and entropy observers (docs/quantization.md §7).
"""

from __future__ import annotations

import math

import numpy as np

from ...errors import ValidationError

__all__ = ["Histogram"]


class Histogram:
    """Counts of values on the zero-anchored grid ``[k·w, (k+1)·w)``.

    Attributes
    ----------
    width : bin width ``w`` (None until a batch with a non-zero value arrives).
    start : grid index ``k`` of ``counts[0]``.
    counts : int64 counts of bins ``start .. start + len(counts) - 1``.
    """

    def __init__(self, bins: int = 2048, max_bins: int | None = None):
        if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
            raise ValidationError("bins", "an int >= 1", repr(bins))
        max_bins = 4 * int(bins) if max_bins is None else max_bins
        if isinstance(max_bins, bool) or not isinstance(max_bins, (int, np.integer)) or max_bins < 2 * bins:
            raise ValidationError("max_bins", f"an int >= 2·bins = {2 * bins}", repr(max_bins))
        self.bins = int(bins)
        self.max_bins = int(max_bins)
        self.width: float | None = None
        self.start = 0
        self.counts = np.zeros(0, dtype=np.int64)
        self._pending_zeros = 0  # zeros seen before the width was known

    @property
    def total(self) -> int:
        return int(self.counts.sum()) + self._pending_zeros

    def add(self, values: np.ndarray) -> None:
        """Count the finite float64 values of a 1-D array (the observer checked them)."""
        if values.size == 0:
            return
        if self.width is None:
            amax = float(np.max(np.abs(values)))
            if amax == 0.0:
                self._pending_zeros += values.size
                return
            self.width = amax / self.bins
        self._fit(float(values.min()), float(values.max()))
        k = np.floor(values / self.width).astype(np.int64)
        lo, hi = int(k.min()), int(k.max())
        if self.counts.size == 0:
            self.start, self.counts = min(lo, 0), np.zeros(max(hi, 0) + 1 - min(lo, 0), dtype=np.int64)
        else:
            end = self.start + self.counts.size
            new_start, new_end = min(self.start, lo), max(end, hi + 1)
            if (new_start, new_end) != (self.start, end):
                self.counts = np.pad(self.counts, (self.start - new_start, new_end - end))
                self.start = new_start
        self.counts += np.bincount(k - self.start, minlength=self.counts.size)
        if self._pending_zeros:
            self.counts[-self.start] += self._pending_zeros
            self._pending_zeros = 0

    def _fit(self, vmin: float, vmax: float) -> None:
        """Double the width (merging pairs) until old and new values fit in max_bins bins.

        Done before any index is computed, so a batch 1e30 times wider than the
        first one costs ~100 merges, not an int64 overflow or a huge array.
        """
        while True:
            lo, hi = vmin / self.width, vmax / self.width
            if np.isfinite(lo) and np.isfinite(hi):
                k_lo = min(math.floor(lo), self.start)
                k_hi = max(math.floor(hi), self.start + max(self.counts.size, 1) - 1)
                if k_hi - k_lo + 1 <= self.max_bins:
                    return
            self._merge_pairs()

    def _merge_pairs(self) -> None:
        # Align to an even grid index so bins 2j, 2j+1 merge into bin j of the coarser grid.
        if self.start % 2:
            self.counts = np.concatenate([[0], self.counts])
            self.start -= 1
        if self.counts.size % 2:
            self.counts = np.concatenate([self.counts, [0]])
        self.counts = self.counts.reshape(-1, 2).sum(axis=1)
        self.start //= 2
        self.width *= 2

    # ---- views -----------------------------------------------------------
    def edges(self) -> np.ndarray:
        """Bin edges, ``len(counts) + 1`` values."""
        if self.width is None:
            return np.zeros(1)
        return (self.start + np.arange(self.counts.size + 1)) * self.width

    def centers(self) -> np.ndarray:
        e = self.edges()
        return (e[:-1] + e[1:]) / 2

    def abs_counts(self) -> np.ndarray:
        """Counts of |x| on bins ``[j·w, (j+1)·w)``: negative bin ``k`` folds onto ``-k-1``."""
        if self.width is None:
            return np.array([self._pending_zeros], dtype=np.int64)
        k = self.start + np.arange(self.counts.size)
        j = np.where(k >= 0, k, -k - 1)
        return np.bincount(j, weights=self.counts, minlength=int(j.max()) + 1).astype(np.int64)

    def percentile(self, p: float) -> float:
        """Value below which ``p`` % of the counts lie, linear inside the bin (exact to one bin width)."""
        if self.width is None:
            return 0.0
        return _percentile(self.counts, self.edges(), p)


def _percentile(counts: np.ndarray, edges: np.ndarray, p: float) -> float:
    cum = np.cumsum(counts)
    target = p / 100.0 * cum[-1]
    i = int(np.searchsorted(cum, target, side="left"))
    i = min(i, counts.size - 1)
    before = cum[i] - counts[i]
    frac = 0.0 if counts[i] == 0 else (target - before) / counts[i]
    return float(edges[i] + frac * (edges[i + 1] - edges[i]))
