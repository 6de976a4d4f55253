"""MSE observer (refcomp.quant.observers.mse): eq. (13)'s argmin, clipping only when it pays."""

import numpy as np
import pytest

from refcomp.errors import ValidationError
from refcomp.quant import MSEObserver

from .cases import check_ignores_outliers, gaussian_with_outliers


def test_ignores_outliers_on_gaussian_data():
    # int8 steps are small enough that MSE keeps 10 outliers (their clipping error would dominate);
    # with int4's 16 levels it clips them.
    check_ignores_outliers(MSEObserver("int4", symmetric=True, num_candidates=40), "int4")


def test_mse_keeps_few_outliers_at_int8():
    # 10 values at ±40 clipped to t ~ 10 would cost ~10·30² = 9000; int8 rounding over
    # [-40, 40] costs ~20000·(40/127.5)²/12 ~ 160: the MSE optimum (almost) does not clip.
    x = gaussian_with_outliers()
    assert MSEObserver("int8", symmetric=True).observe(x).range()[1] >= 0.95 * 40.0


def test_mse_picks_the_minimum_of_its_error_curve():
    x = gaussian_with_outliers(5000)
    obs = MSEObserver("int4", symmetric=True, num_candidates=50).observe(x)
    alphas, errors = obs.candidate_errors()
    amax = float(np.abs(x).max())
    assert obs.range()[1] == pytest.approx(alphas[np.argmin(errors)] * amax, rel=1e-12)
    assert errors[np.argmin(errors)] < errors[-1]


def test_bad_num_candidates():
    with pytest.raises(ValidationError) as info:
        MSEObserver(num_candidates=0)
    assert info.value.argument == "num_candidates"


# ---- eq. (13) by brute force: every candidate's histogram-weighted error, written out
def _brute_force(obs, x, qmin, qmax):
    """(alphas, errors, ranges) of eq. (13): each alpha's range, its QParams (eqs. 4-6, 8) and
    fake quantization (eq. 17) of the float32 bin centers, one candidate at a time."""
    hist = obs.histograms[0]
    keep = hist.counts > 0
    centers = hist.centers()[keep].astype(np.float32).astype(np.float64)
    counts = hist.counts[keep]
    mn, mx = float(x.min()), float(x.max())
    n = obs.num_candidates
    alphas, errors, ranges = [], [], []
    for k in range(1, n + 1):
        a = k / n
        if obs.symmetric:
            t = a * max(-mn, mx)
            lo, hi = -t, t
        else:
            lo = min(max(a * min(mn, 0.0), mn), mx)
            hi = min(max(a * max(mx, 0.0), mn), mx)
        lo0, hi0 = min(lo, 0.0), max(hi, 0.0)
        if obs.symmetric:
            s = float(np.float32(max(-lo0, hi0) / ((qmax - qmin) / 2)))
            z = (qmin + qmax + 1) // 2
        else:
            s = float(np.float32((hi0 - lo0) / (qmax - qmin)))
            z = int(np.clip(qmin - np.rint(lo0 / s), qmin, qmax))
        fq = (np.clip(np.rint(centers / s) + z, qmin, qmax) - z) * s
        alphas.append(a)
        errors.append(float(np.sum(counts * (fq - centers) ** 2)))
        ranges.append((lo, hi))
    return np.array(alphas), np.array(errors), ranges


@pytest.mark.parametrize("dtype,kwargs,qmin,qmax,data", [
    ("int4", dict(symmetric=True), -8, 7, "negative_tail"),             # max|x| on the negative side
    ("uint8", {}, 0, 255, "outliers"),
    ("int4", {}, -8, 7, "outliers"),
    ("int4", {}, -8, 7, "negative_tail"),                               # 0 < max x < 1
    ("int4", {}, -8, 7, "positive"),                                    # lo > 0: the range keeps lo
    ("int4", {}, -8, 7, "negative"),                                    # hi < 0: the range keeps hi
    ("int8", dict(symmetric=True, restricted_range=True), -127, 127, "outliers"),
    ("uint8", dict(reduce_range=True), 0, 127, "outliers"),
])
def test_mse_range_is_the_brute_force_argmin(dtype, kwargs, qmin, qmax, data):
    rng = np.random.default_rng(11)
    x = rng.laplace(size=3000)
    x[:6] = [-30.0, 25.0, -12.0, 18.0, 40.0, -9.0]
    x = {"outliers": x, "negative_tail": -np.abs(x) * 2 + 0.5, "positive": np.abs(x) + 3.0,
         "negative": -np.abs(x) - 3.0}[data].astype(np.float32)
    obs = MSEObserver(dtype, num_candidates=30, bins=64, **kwargs).observe(x)
    alphas, errors, ranges = _brute_force(obs, x.astype(np.float64), qmin, qmax)
    got_alphas, got_errors = obs.candidate_errors()
    np.testing.assert_array_equal(got_alphas, alphas)
    np.testing.assert_allclose(got_errors, errors, rtol=1e-6)
    best = int(np.flatnonzero(errors <= errors.min() * (1 + 1e-9))[-1])   # ties: the largest alpha
    assert obs.range() == pytest.approx(ranges[best], rel=1e-12, abs=0)
    assert best < alphas.size - 1 or dtype != "int4"                         # 16 levels: it clips


# ---- the options: N = 100 and int8 by default; N = 1 is min-max; only zeros: every candidate exact
def test_defaults():
    obs = MSEObserver()
    assert obs.num_candidates == 100 and obs.dtype.name == "int8"
    assert obs.observe(np.array([-1.0, 2.0])).candidate_errors()[0].size == 100


def test_one_candidate_is_the_min_max_range():
    x = gaussian_with_outliers(2000)
    assert MSEObserver("int4", num_candidates=1).observe(x).range() == (x.min(), x.max())


def test_only_zeros_cost_nothing():
    obs = MSEObserver(num_candidates=5, symmetric=True).observe(np.zeros(4))
    alphas, errors = obs.candidate_errors()
    assert alphas.tolist() == [0.2, 0.4, 0.6, 0.8, 1.0] and errors.tolist() == [0.0] * 5
    assert obs.range() == (0.0, 0.0)


@pytest.mark.parametrize("n", [True, "5", 2.0])
def test_num_candidates_must_be_an_int(n):
    with pytest.raises(ValidationError) as info:
        MSEObserver(num_candidates=n)
    assert info.value.argument == "num_candidates"
