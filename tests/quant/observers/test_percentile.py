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


# ---- the options: p in [50, 100] both ends included, 99.99 and int8 by default
def test_defaults_and_dtype():
    obs = PercentileObserver()
    assert obs.percentile == 99.99
    assert obs.dtype.name == "int8"
    assert PercentileObserver("uint8").dtype.name == "uint8"


@pytest.mark.parametrize("p", [True, "99", None])
def test_percentile_must_be_a_number(p):
    with pytest.raises(ValidationError) as info:
        PercentileObserver(percentile=p)
    assert info.value.argument == "percentile"


# ---- the ends of the range of p: 100 is min-max, 50 the median
def test_percentile_100_is_the_min_max_range():
    # the extremes on the negative side: the symmetric T is max|x| = -min x, not max x
    x = np.random.default_rng(4).normal(size=3000)
    x[0], x[1] = -25.0, 3.0
    x = np.clip(x, -25.0, 3.0)
    sym = PercentileObserver(percentile=100, symmetric=True).observe(x)
    w = sym.histograms[0].width
    assert abs(sym.range()[1] - 25.0) <= w and sym.range()[1] <= 25.0
    asym = PercentileObserver(percentile=100).observe(x)
    lo, hi = asym.range()
    w = asym.histograms[0].width
    assert abs(lo - x.min()) <= w and abs(hi - x.max()) <= w


def test_percentile_50_is_the_median():
    x = np.random.default_rng(5).normal(size=4001) + 1.0
    obs = PercentileObserver(percentile=50).observe(x)
    lo, hi = obs.range()
    w = obs.histograms[0].width
    assert abs(lo - np.median(x)) <= w and abs(hi - np.median(x)) <= w


def test_only_zeros_give_the_zero_range():
    # no width yet: T = +0, so the symmetric range is (-0, +0), as for any T
    lo, hi = PercentileObserver(symmetric=True).observe(np.zeros(5, np.float32)).range()
    assert lo == hi == 0.0 and not np.signbit(hi)
    assert PercentileObserver().observe(np.zeros(5, np.float32)).range() == (0.0, 0.0)
