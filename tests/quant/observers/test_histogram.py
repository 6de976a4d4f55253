"""The zero-anchored histogram (refcomp.quant.observers.histogram): exact counts under growth and
merging, however wide a later batch; zeros seen before the width is known are kept."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp.errors import ValidationError
from refcomp.quant import EntropyObserver
from refcomp.quant.observers import Histogram


def test_histogram_is_exact_under_growth_and_merging():
    rng = np.random.default_rng(1)
    h = Histogram(bins=8, max_bins=32)
    xs = [rng.normal(size=100), rng.normal(size=100) * 10, np.zeros(5), rng.normal(size=100) * 100]
    for x in xs:
        h.add(x)
    allx = np.concatenate(xs)
    assert h.total == allx.size
    edges = h.edges()
    assert h.counts.size <= 32
    expected = np.histogram(allx, bins=edges)[0]
    np.testing.assert_array_equal(h.counts, expected)
    assert h.abs_counts().sum() == allx.size


def test_histogram_survives_a_batch_far_wider_than_the_first():
    h = Histogram(bins=16)
    h.add(np.array([1e-30, -1e-30]))
    h.add(np.array([3e30, 0.5]))
    h.add(np.array([-1e300]))
    assert h.total == 5 and h.counts.size <= h.max_bins
    np.testing.assert_array_equal(h.counts, np.histogram([1e-30, -1e-30, 3e30, 0.5, -1e300], bins=h.edges())[0])


def test_histogram_zeros_before_width():
    h = Histogram(bins=4)
    h.add(np.zeros(3))
    h.add(np.array([1.0, -1.0]))
    assert h.total == 5 and h.abs_counts()[0] >= 3


def test_histogram_observer_checks_bins_at_construction():
    with pytest.raises(ValidationError) as info:
        EntropyObserver(bins=0)
    assert info.value.argument == "bins"


# ---- the grid, stated from its definition: bin k holds floor(x / w) == k; the smallest grid that
# holds 0 and every value; the finest width w0·2^m (w0 = max|first non-zero batch| / bins) that fits
def _check_grid(h, xs, w0):
    allx = np.concatenate(xs)
    k = np.floor(allx / h.width).astype(np.int64)
    assert h.counts.dtype == np.int64 and h.total == allx.size
    assert h.start == min(k.min(), 0) and h.start + h.counts.size - 1 == max(k.max(), 0)
    np.testing.assert_array_equal(h.counts, np.bincount(k - h.start, minlength=h.counts.size))
    m = np.log2(h.width / w0)
    assert m == round(m) >= 0 and h.counts.size <= h.max_bins
    if m > 0:       # merged: at half the width the grid would not fit
        fine = np.floor(allx / (h.width / 2)).astype(np.int64)
        assert max(fine.max(), 0) - min(fine.min(), 0) + 1 > h.max_bins
    # |x| on bins of width w: a value x >= 0 in bin floor(x / w), a negative one (bin k) in -k - 1,
    # i.e. ceil(|x| / w) - 1 (its bins hold ((j)·w, (j+1)·w], the mirror of [k·w, (k+1)·w))
    a = h.abs_counts()
    assert a.dtype == np.int64 and a.size == max(h.start + h.counts.size - 1, -h.start - 1) + 1
    j = np.where(allx >= 0, np.floor(allx / h.width), np.ceil(-allx / h.width) - 1).astype(np.int64)
    np.testing.assert_array_equal(a, np.bincount(j, minlength=a.size))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), bins=st.integers(1, 5), extra=st.integers(0, 3),
       signs=st.lists(st.sampled_from([-1.0, 1.0, 0.0, 2.0]), min_size=1, max_size=4),
       scales=st.lists(st.sampled_from([0.0, 0.3, 1.0, 7.0, 50.0]), min_size=1, max_size=5))
def test_grid_against_its_definition(seed, bins, extra, signs, scales):
    rng = np.random.default_rng(seed)
    h = Histogram(bins, 2 * bins + extra)
    xs, w0 = [], None
    for i, scale in enumerate(scales):
        sign = signs[i % len(signs)]            # 2.0: both signs, else one sign (or zeros)
        x = rng.random(rng.integers(1, 6)) * scale * (rng.choice([-1.0, 1.0], 1) if sign == 2.0 else sign)
        x = x + 0.0                             # no -0.0: floor(-0.0 / w) is -0.0, bin 0 either way
        h.add(x)
        xs.append(x)
        if w0 is None and np.any(x != 0):
            w0 = float(np.max(np.abs(x))) / bins
            if np.all(x >= 0) or np.all(x <= 0):
                assert h.width == w0            # a one-signed first batch spans bins + 1 <= max_bins bins
    if w0 is None:
        assert h.width is None and h.total == sum(x.size for x in xs)
        return
    _check_grid(h, xs, w0)


def test_zeros_before_a_negative_batch_land_in_bin_zero():
    h = Histogram(bins=4)
    h.add(np.zeros(2))
    h.add(np.zeros(3))
    h.add(np.array([-1.0, -0.5]))
    assert h.start == -4 and h.counts.tolist() == [1, 0, 1, 0, 5]


def test_a_fresh_histogram_has_no_bins():
    h = Histogram(bins=4)
    assert h.width is None and h.start == 0 and h.counts.dtype == np.int64 and h.counts.size == 0
    h.add(np.zeros(3))
    assert h.edges().tolist() == [0.0] and h.centers().size == 0
    a = h.abs_counts()
    assert a.dtype == np.int64 and a.tolist() == [3] and h.percentile(50) == 0.0


def test_a_batch_of_finite_and_overflowing_ratios():
    # x / w overflows for 1e300 only: the grid still merges until both ends fit
    h = Histogram(bins=4)
    h.add(np.array([1e-300]))
    h.add(np.array([1e300, 1e-300]))
    assert h.total == 3 and h.counts.size <= h.max_bins and h.counts.sum() == 3


# ---- the options: bins >= 1, max_bins >= 2·bins (default 4·bins), both ints
def test_bins_and_max_bins_options():
    assert Histogram(8).max_bins == 32 and Histogram(8, 20).max_bins == 20
    assert Histogram(1).bins == 1 and Histogram(8, 16).max_bins == 16
    for bins, max_bins, argument in [(True, None, "bins"), ("4", None, "bins"), (1.5, None, "bins"),
                                     (0, None, "bins"), (8, 15, "max_bins"), (8, True, "max_bins"),
                                     (8, "20", "max_bins"), (8, 20.0, "max_bins")]:
        with pytest.raises(ValidationError) as info:
            Histogram(bins, max_bins)
        assert info.value.argument == argument
