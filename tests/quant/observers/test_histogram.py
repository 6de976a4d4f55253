"""The zero-anchored histogram (refcomp.quant.observers.histogram): exact counts under growth and
merging, however wide a later batch; zeros seen before the width is known are kept."""

import numpy as np
import pytest

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
