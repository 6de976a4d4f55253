"""Observers (calibrators): choose a quantization range from batches of data.

=============================  ===================  ============================
observer                        keeps                range (docs/quantization.md)
=============================  ===================  ============================
MinMaxObserver                  running min / max    eq. (10)
MovingAverageMinMaxObserver     EMA of min / max     eq. (11)
PercentileObserver              histogram            eq. (12)
MSEObserver                     histogram            eq. (13)
EntropyObserver                 histogram            eqs. (14)-(16)
=============================  ===================  ============================

Every observer: ``observe(x)`` per batch (returns self), ``range()``,
``qparams()``, ``reset()``; per-tensor or per-channel (``axis=``).
"""

from .base import Observer
from .entropy import EntropyObserver, kl_thresholds
from .histogram import Histogram
from .minmax import MinMaxObserver, MovingAverageMinMaxObserver
from .mse import MSEObserver
from .percentile import PercentileObserver

__all__ = [
    "Observer",
    "Histogram",
    "MinMaxObserver",
    "MovingAverageMinMaxObserver",
    "PercentileObserver",
    "MSEObserver",
    "EntropyObserver",
    "kl_thresholds",
]
