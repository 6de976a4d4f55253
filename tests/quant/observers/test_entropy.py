"""Entropy observer (refcomp.quant.observers.entropy): the KL thresholds of eqs. (14)-(16)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats

from refcomp.errors import ValidationError
from refcomp.quant import EntropyObserver
from refcomp.quant.observers import kl_thresholds

from .cases import check_ignores_outliers


def test_ignores_outliers_on_gaussian_data():
    # TensorRT's 2048 bins: the smallest candidate is 128/2048 of max|x|
    check_ignores_outliers(EntropyObserver("int8", symmetric=True, bins=2048, stride=4), "int8")


def test_kl_threshold_on_uniform_data_keeps_everything():
    # uniform magnitudes: no candidate below the last loses less information
    counts = np.full(512, 100)
    cand, div = kl_thresholds(counts, levels=128)
    assert cand[np.argmin(div)] == 512


def test_kl_threshold_clips_a_long_sparse_tail():
    # half-Gaussian bulk (sigma = 100 bins, zero beyond ~500 bins) and one far outlier
    j = np.arange(2048)
    counts = np.round(1e5 * np.exp(-0.5 * (j / 100.0) ** 2)).astype(np.int64)
    counts[2047] = 1
    cand, div = kl_thresholds(counts, levels=128)
    assert 300 <= cand[np.argmin(div)] <= 500
    assert div.min() < div[-1] / 5  # keeping the outlier costs resolution on the bulk


@pytest.mark.parametrize("kwargs,argument", [
    (dict(num_quantized_bins=1), "num_quantized_bins"),
    (dict(stride=0), "stride"),
])
def test_bad_options(kwargs, argument):
    with pytest.raises(ValidationError) as info:
        EntropyObserver(**kwargs)
    assert info.value.argument == argument


# ---- eqs. (14)-(16) written out, one candidate at a time, with scipy's KL divergence
def _smoothed(d):
    d = np.asarray(d, np.float64) / np.sum(d)
    if np.any(d == 0):
        d = d + 1e-4 * (d == 0)
        d = d / d.sum()
    return d


def _kl_by_hand(h, levels, stride):
    h = np.asarray(h, np.float64)
    n = h.size
    if n < levels or h.sum() == 0:
        return [n], [0.0]
    candidates = list(range(levels, n + 1, stride))
    if candidates[-1] != n:
        candidates.append(n)
    divergences = []
    for i in candidates:
        p = h[:i].copy()
        p[-1] += h[i:].sum()                                   # outliers saturate into the last bin
        q = np.zeros(i)
        for g in range(levels):
            members = [j for j in range(i) if j * levels // i == g]
            nonzero = [j for j in members if p[j] != 0]
            for j in nonzero:
                q[j] = h[members].sum() / len(nonzero)           # the group's mass, spread evenly
        if p.sum() == 0 or q.sum() == 0:
            divergences.append(np.inf)
            continue
        divergences.append(scipy_stats.entropy(_smoothed(p), _smoothed(q)))
    return candidates, divergences


@settings(max_examples=40, deadline=None)
@given(h=st.lists(st.integers(0, 50), min_size=1, max_size=24), levels=st.integers(2, 6), stride=st.integers(1, 3))
def test_kl_thresholds_match_the_equations(h, levels, stride):
    cand, div = kl_thresholds(np.array(h), levels, stride)
    want_cand, want_div = _kl_by_hand(h, levels, stride)
    assert cand.tolist() == want_cand
    np.testing.assert_allclose(div, want_div, rtol=1e-9, atol=1e-12)


def test_kl_threshold_of_mass_only_beyond_the_candidates_is_infinite():
    # candidates i = 2, 3 hold no mass below T: Q represents nothing, the divergence is infinite;
    # i = n keeps everything: P = Q
    cand, div = kl_thresholds(np.array([0, 0, 0, 5]), levels=2)
    assert cand.tolist() == [2, 3, 4] and div.tolist() == [np.inf, np.inf, 0.0]


# ---- L by scheme (module docstring) and the threshold T = i·w of the argmin, clamped to max|x|
@pytest.mark.parametrize("args,kwargs,data_min,levels", [
    ((), {}, -1.0, 128),
    (("uint8",), {}, 0.0, 256),                                 # asymmetric, data >= 0: every code
    (("uint8",), {}, -1.0, 128),
    (("uint8",), dict(symmetric=True), 0.0, 128),
    (("int8",), dict(restricted_range=True), -1.0, 127),        # (127 + 127 + 1) // 2
    (("uint8",), dict(reduce_range=True), 0.0, 128),            # 0..127
    (("int4",), {}, -1.0, 8),
    (("float8_e4m3fn",), {}, -1.0, 128),                         # 2^(bits - 1)
    (("int8",), dict(num_quantized_bins=10), -1.0, 10),
    (("int8",), dict(num_quantized_bins=2), -1.0, 2),           # the fewest levels accepted
])
def test_levels(args, kwargs, data_min, levels):
    assert EntropyObserver(*args, **kwargs).levels(data_min) == levels


@pytest.mark.parametrize("symmetric", [True, False])
def test_threshold_is_the_argmin_edge(symmetric):
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.normal(size=4000), [-30.0, 12.0]]).astype(np.float32)
    obs = EntropyObserver("int4", symmetric=symmetric, bins=64, stride=3).observe(x)
    hist = obs.histograms[0]
    cand, div = _kl_by_hand(hist.abs_counts(), 8, 3)
    t = min(cand[int(np.argmin(div))] * hist.width, 30.0)
    assert obs.threshold() == pytest.approx(t, rel=1e-12) and t < 15.0
    lo, hi = obs.range()
    assert (lo, hi) == ((-t, t) if symmetric else (max(-t, float(x.min())), min(t, float(x.max()))))
    # fewer bins than levels: T = max|x|
    assert EntropyObserver("int8", symmetric=symmetric, bins=16).observe(x).threshold() == 30.0


def test_defaults():
    obs = EntropyObserver()
    assert (obs.dtype.name, obs.num_quantized_bins, obs.stride, obs.bins) == ("int8", None, 1, 2048)


def test_only_zeros_give_threshold_zero():
    obs = EntropyObserver(bins=256).observe(np.zeros(4))
    assert obs.threshold() == 0.0 and obs.range() == (0.0, 0.0)


@pytest.mark.parametrize("kwargs,argument", [
    (dict(num_quantized_bins=True), "num_quantized_bins"),
    (dict(num_quantized_bins="8"), "num_quantized_bins"),
    (dict(num_quantized_bins=2.0), "num_quantized_bins"),
    (dict(stride=True), "stride"),
    (dict(stride="2"), "stride"),
])
def test_options_must_be_ints(kwargs, argument):
    with pytest.raises(ValidationError) as info:
        EntropyObserver(**kwargs)
    assert info.value.argument == argument
