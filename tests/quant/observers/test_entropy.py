"""Entropy observer (refcomp.quant.observers.entropy): the KL thresholds of eqs. (14)-(16)."""

import numpy as np
import pytest

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
