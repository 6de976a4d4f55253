"""Percentile observer (refcomp.quant.observers.percentile): eq. (12) to one bin width, outliers clipped."""

import numpy as np
import pytest

from refcomp.errors import ValidationError
from refcomp.quant import PercentileObserver

from .cases import check_ignores_outliers


def test_percentile_matches_numpy_to_one_bin():
    rng = np.random.default_rng(2)
    x = rng.standard_t(3, size=20000)
    obs = PercentileObserver("int8", percentile=99.0)
    for part in np.array_split(x, 4):
        obs.observe(part)
    lo, hi = obs.range()
    w = obs.histograms[0].width
    assert abs(hi - np.percentile(x, 99.0)) <= w
    assert abs(lo - np.percentile(x, 1.0)) <= w
    sym = PercentileObserver("int8", percentile=99.0, symmetric=True).observe(x)
    assert abs(sym.range()[1] - np.percentile(np.abs(x), 99.0)) <= sym.histograms[0].width


def test_ignores_outliers_on_gaussian_data():
    check_ignores_outliers(PercentileObserver("int8", symmetric=True, percentile=99.9), "int8")


@pytest.mark.parametrize("p", [10, 100.5])
def test_bad_percentile(p):
    with pytest.raises(ValidationError) as info:
        PercentileObserver(percentile=p)
    assert info.value.argument == "percentile"
