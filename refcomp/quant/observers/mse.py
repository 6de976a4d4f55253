"""MSE observer: the clipping range that minimizes the quantization error (docs/quantization.md §7.4).

Clipping trades two errors (Banner, Nahshan & Soudry 2019, "Post-training 4-bit
quantization of convolutional networks for rapid-deployment", NeurIPS,
arXiv:1810.05723, ACIQ): a narrow range makes the rounding step small but
saturates the tails; a wide one does the opposite. Banner et al. minimize the
sum in closed form for a Laplace / Gaussian prior; here the minimum is found
by search over the observed distribution itself, as NVIDIA's
pytorch-quantization MSE calibrator does (Wu et al. 2020, arXiv:2004.09602)::

    alpha* = argmin_{alpha in {1/N, 2/N, ..., 1}}  sum_b n_b · (fq_alpha(c_b) - c_b)^2      (13)
    range  = clamp(alpha* · (min(min x, 0), max(max x, 0)), min x, max x)
             (symmetric: ±alpha* · max|x|)

where c_b are the centers of the accumulated histogram's bins, n_b their
counts, and fq_alpha is fake quantization (eq. 17, the refcomp.ops
definition) with the QParams that choose_qparams gives for the candidate
range. So the error is exact up to the bin width. Ties go to the largest
alpha (the least clipping).
"""

from __future__ import annotations

import numpy as np

from ...errors import ValidationError
from ..choose import choose_qparams
from ..fake_quant import fake_quantize
from ._histogram_observer import HistogramObserver

__all__ = ["MSEObserver"]


class MSEObserver(HistogramObserver):
    """Range minimizing the histogram-weighted squared fake-quantization error (eq. 13).

    num_candidates : N, the number of clipping ratios alpha = k/N tried (k = 1..N).
    """

    def __init__(self, dtype="int8", *, num_candidates: int = 100, **kwargs):
        if isinstance(num_candidates, bool) or not isinstance(num_candidates, (int, np.integer)) or num_candidates < 1:
            raise ValidationError("num_candidates", "an int >= 1", repr(num_candidates))
        self.num_candidates = int(num_candidates)
        super().__init__(dtype, **kwargs)

    def candidate_errors(self, channel: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(alphas, weighted squared errors) of eq. (13) for one channel (for plots and tests)."""
        hist = self.histograms[channel]
        lo, hi = self._bounds(float(self.min_val[channel]), float(self.max_val[channel]))
        return self._errors(hist, lo, hi)

    def _bounds(self, data_min, data_max):
        if self.symmetric:
            amax = max(-data_min, data_max)
            return -amax, amax
        return data_min, data_max

    def _candidates(self, lo, hi):
        """alphas and their ranges; asymmetric ranges scale the 0-including range, clamped to the data.

        The last alpha is N/N = 1.0 exactly, so its range is exactly the min-max range (1.0·x == x).
        The clamped ends never cross: with lo <= 0 <= hi they straddle 0; data of one sign pins the
        end nearer 0 to the data's own end, which the other end's clamp keeps on its side.
        """
        alphas = np.arange(1, self.num_candidates + 1) / self.num_candidates
        if self.symmetric:
            return alphas, alphas * lo, alphas * hi
        return alphas, np.clip(alphas * min(lo, 0.0), lo, hi), np.clip(alphas * max(hi, 0.0), lo, hi)

    def _errors(self, hist, lo, hi):
        alphas, c_lo, c_hi = self._candidates(lo, hi)
        if hist.width is None:  # only zeros seen: every candidate is exact
            return alphas, np.zeros_like(alphas)
        keep = hist.counts > 0
        centers = hist.centers()[keep].astype(np.float32)
        counts = hist.counts[keep].astype(np.float64)
        # One QParams per candidate, laid out per-axis over a [candidates, bins] grid,
        # so a single fake_quantize call evaluates every candidate.
        qp = choose_qparams(
            c_lo,
            c_hi,
            self.dtype,
            symmetric=self.symmetric,
            restricted_range=self.restricted_range,
            reduce_range=self.reduce_range,
            axis=0,
        )
        grid = np.broadcast_to(centers, (alphas.size, centers.size))
        err = fake_quantize(np.ascontiguousarray(grid), qp).astype(np.float64) - grid
        return alphas, (err**2 * counts).sum(axis=1)

    def _select(self, channel, hist, data_min, data_max):
        lo, hi = self._bounds(data_min, data_max)
        alphas, errors = self._errors(hist, lo, hi)
        best = int(np.flatnonzero(errors == errors.min())[-1])
        _, c_lo, c_hi = self._candidates(lo, hi)
        return float(c_lo[best]), float(c_hi[best])
