"""Min-max observers: the range is the data's extremes (docs/quantization.md §7.1-7.2).

MinMaxObserver (Jacob et al. 2018 §3.1 for weights; Krishnamoorthi 2018 §3.2)::

    min_val = min over all batches of min(x),   max_val = max of max(x)      (10)

MovingAverageMinMaxObserver (Jacob et al. 2018 §3.1 for activations, an
exponential moving average over batches; the update is PyTorch's
``MovingAverageMinMaxObserver`` with ``c = averaging_constant``)::

    first batch:  m_1 = min(x_1)
    then:         m_t = m_{t-1} + c · (min(x_t) - m_{t-1})                   (11)

and the same for the max. Its range may not cover every batch: it follows the
typical batch rather than the most extreme one.
"""

from __future__ import annotations

import numpy as np

from ...errors import ValidationError
from .base import Observer

__all__ = ["MinMaxObserver", "MovingAverageMinMaxObserver"]


class MinMaxObserver(Observer):
    """Running min and max (eq. 10). Its range covers every value observed."""

    def _update(self, rows, batch_min, batch_max):
        pass  # the base class keeps the exact running min / max

    def _range(self):
        return self.min_val, self.max_val


class MovingAverageMinMaxObserver(Observer):
    """Exponential moving average of the batch min and max (eq. 11).

    averaging_constant : c in (0, 1]; c = 1 keeps only the last batch.
    """

    def __init__(self, dtype="int8", *, averaging_constant: float = 0.01, **kwargs):
        c = averaging_constant
        if isinstance(c, bool) or not isinstance(c, (int, float, np.floating)) or not 0 < c <= 1:
            raise ValidationError("averaging_constant", "a number in (0, 1]", repr(averaging_constant))
        self.averaging_constant = float(averaging_constant)
        super().__init__(dtype, **kwargs)

    def _reset(self):
        self.avg_min = None
        self.avg_max = None

    def _update(self, rows, batch_min, batch_max):
        c = self.averaging_constant
        if self.avg_min is None:
            self.avg_min, self.avg_max = batch_min.copy(), batch_max.copy()
        else:
            self.avg_min = self.avg_min + c * (batch_min - self.avg_min)
            self.avg_max = self.avg_max + c * (batch_max - self.avg_max)

    def _range(self):
        return self.avg_min, self.avg_max
