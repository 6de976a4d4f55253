"""Percentile observer: clip the rarest tail values (docs/quantization.md §7.3).

    asymmetric:  lo = P_{100-p}(x),  hi = P_p(x)                           (12)
    symmetric:   T = min(P_p(|x|), max|x|),  lo = -T,  hi = T

with ``p`` e.g. 99.99. The percentiles are read from the accumulated
histogram (refcomp.quant.observers.histogram), interpolating linearly inside
a bin, so they are exact to one bin width and cost O(bins) memory however
many batches are observed; the result is clamped to the observed [min, max].

Source: Wu et al. 2020, "Integer Quantization for Deep Learning Inference:
Principles and Empirical Evaluation" (arXiv:2004.09602), who compare
percentile calibration at 99.9 ... 99.9999 with max, entropy and MSE; the
histogram follows NVIDIA pytorch-quantization's HistogramCalibrator.
"""

from __future__ import annotations

import numpy as np

from ...errors import ValidationError
from ._histogram_observer import HistogramObserver
from .histogram import _percentile

__all__ = ["PercentileObserver"]


class PercentileObserver(HistogramObserver):
    """Range from the ``percentile`` (and ``100 - percentile``) of the observed values (eq. 12).

    percentile : p in [50, 100]; 100 gives the min-max range (to one bin width).
    """

    def __init__(self, dtype="int8", *, percentile: float = 99.99, **kwargs):
        if isinstance(percentile, bool) or not isinstance(percentile, (int, float, np.floating)) or not (
            50 <= percentile <= 100
        ):
            raise ValidationError("percentile", "a number in [50, 100]", repr(percentile))
        self.percentile = float(percentile)
        super().__init__(dtype, **kwargs)

    def _select(self, channel, hist, data_min, data_max):
        p = self.percentile
        if self.symmetric:
            counts = hist.abs_counts()
            if hist.width is None:
                t = 0.0
            else:
                t = _percentile(counts, np.arange(counts.size + 1) * hist.width, p)
            t = min(t, max(-data_min, data_max))
            return -t, t
        lo = hist.percentile(100.0 - p)
        hi = hist.percentile(p)
        lo = min(max(lo, data_min), data_max)
        hi = min(max(hi, lo), data_max)
        return lo, hi
