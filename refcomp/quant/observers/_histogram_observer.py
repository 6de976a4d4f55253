"""Observers that keep one Histogram per channel (percentile, MSE, entropy)."""

from __future__ import annotations

from ...errors import ValidationError
from .base import Observer
from .histogram import Histogram

__all__ = ["HistogramObserver"]


class HistogramObserver(Observer):
    """Base of the histogram-based observers.

    bins : bins per side of 0 set by the first non-zero batch (width = max|x| / bins).
    max_bins : grid size at which neighbouring bins merge (default 4·bins).
    """

    def __init__(self, dtype="int8", *, bins: int = 2048, max_bins: int | None = None, **kwargs):
        Histogram(bins, max_bins)  # validates bins / max_bins now, not at the first batch
        self.bins = bins
        self.max_bins = max_bins
        super().__init__(dtype, **kwargs)

    def _reset(self):
        self.histograms: list[Histogram] = []

    def _update(self, rows, batch_min, batch_max):
        if not self.histograms:
            self.histograms = [Histogram(self.bins, self.max_bins) for _ in range(rows.shape[0])]
        for hist, row in zip(self.histograms, rows):
            hist.add(row)

    def _range(self):
        lows, highs = [], []
        for c, hist in enumerate(self.histograms):
            lo, hi = self._select(c, hist, float(self.min_val[c]), float(self.max_val[c]))
            mn, mx = float(self.min_val[c]), float(self.max_val[c])
            inside = (0 <= hi == -lo <= max(-mn, mx)) if self.symmetric else (mn <= lo <= hi <= mx)
            if not inside:  # pragma: no cover - a bug, not bad input
                raise ValidationError("range", f"inside the observed range [{mn}, {mx}]", (lo, hi))
            lows.append(lo)
            highs.append(hi)
        return lows, highs

    def _select(self, channel: int, hist: Histogram, data_min: float, data_max: float) -> tuple[float, float]:
        """The (lo, hi) this method picks for one channel.

        Asymmetric: data_min <= lo <= hi <= data_max. Symmetric: (-t, t) with 0 <= t <= max|x|.
        """
        raise NotImplementedError
