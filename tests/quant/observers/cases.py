"""Shared cases for the observer tests: every observer class, quick settings, data with outliers."""

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from refcomp.quant import (
    EntropyObserver,
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    MSEObserver,
    PercentileObserver,
    dequantize,
    quantize,
)

ALL = [MinMaxObserver, MovingAverageMinMaxObserver, PercentileObserver, MSEObserver, EntropyObserver]
CLIPPING = [PercentileObserver, MSEObserver, EntropyObserver]


def make(cls, dtype="int8", **kw):
    if cls is EntropyObserver:
        kw.setdefault("bins", 256)  # fewer candidates: keeps the tests quick
        kw.setdefault("stride", 4)
    if cls is MSEObserver:
        kw.setdefault("num_candidates", 40)
    return cls(dtype, **kw)


batches = st.lists(hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=2, max_side=20),
                              elements=st.floats(-1e3, 1e3, width=32)), min_size=1, max_size=3)


def gaussian_with_outliers(n=20000, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    x[:10] = rng.choice([-1, 1], size=10) * 40.0  # far outliers
    return x.astype(np.float32)


def check_ignores_outliers(obs, dtype):
    """A clipping observer on N(0, 1) with 10 outliers at ±40 in 20000 values (0.05 %): its symmetric
    range lies far below the outliers, above the bulk, and quantizes the bulk better than min-max."""
    x = gaussian_with_outliers()
    obs.observe(x)
    t = obs.range()[1]
    assert 2.5 < t < 20.0, t
    mm = MinMaxObserver(dtype, symmetric=True).observe(x).qparams()
    bulk = x[10:]
    err = lambda qp: np.mean((dequantize(quantize(bulk, qp), qp) - bulk) ** 2)  # noqa: E731
    assert err(obs.qparams()) < err(mm)
