"""Observers: scale > 0, coverage, the documented formulas, per-channel = per-tensor per slice, bad input."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from refcomp.errors import DTypeError, ShapeError, ValidationError
from refcomp.quant import (
    EntropyObserver,
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    MSEObserver,
    PercentileObserver,
    dequantize,
    quantize,
)
from refcomp.quant.observers import Histogram, kl_thresholds

ALL = [MinMaxObserver, MovingAverageMinMaxObserver, PercentileObserver, MSEObserver, EntropyObserver]
CLIPPING = [PercentileObserver, MSEObserver, EntropyObserver]


def _make(cls, dtype="int8", **kw):
    if cls is EntropyObserver:
        kw.setdefault("bins", 256)  # fewer candidates: keeps the tests quick
        kw.setdefault("stride", 4)
    if cls is MSEObserver:
        kw.setdefault("num_candidates", 40)
    return cls(dtype, **kw)


batches = st.lists(hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=2, max_side=20),
                              elements=st.floats(-1e3, 1e3, width=32)), min_size=1, max_size=3)


@settings(max_examples=25)
@given(xs=batches, cls=st.sampled_from(ALL), symmetric=st.booleans(), dtype=st.sampled_from(["int8", "uint8", "int4"]))
def test_scale_positive_and_range_inside_the_data(xs, cls, symmetric, dtype):
    obs = _make(cls, dtype, symmetric=symmetric)
    for x in xs:
        obs.observe(x)
    lo, hi = obs.range()
    qp = obs.qparams()
    assert np.all(qp.scale > 0) and np.all(np.isfinite(qp.scale))
    mn = min(float(x.min()) for x in xs)
    mx = max(float(x.max()) for x in xs)
    assert lo <= hi
    if cls is MovingAverageMinMaxObserver:
        return  # an average of batch extremes: inside [mn, mx] too, checked below with the formula
    if symmetric and cls in CLIPPING:
        assert 0 <= hi == -lo <= max(-mn, mx)
    else:
        assert mn <= lo and hi <= mx


@settings(max_examples=25)
@given(xs=batches, symmetric=st.booleans(), dtype=st.sampled_from(["int8", "uint8", "int4", "float8_e4m3fn"]))
def test_minmax_covers_every_observed_value(xs, symmetric, dtype):
    obs = MinMaxObserver(dtype, symmetric=symmetric)
    for x in xs:
        obs.observe(x)
    qp = obs.qparams()
    for x in xs:
        if qp.dtype.is_float:
            assert np.all(np.abs(x) <= qp.representable_range()[1] * (1 + 1e-6))
            continue
        # covered: no value is clipped beyond what rounding does
        err = np.abs(dequantize(quantize(x, qp), qp).astype(np.float64) - x)
        assert np.all(err <= 0.5 * float(qp.scale) * (1 + 1e-5) + 1e-6 * np.abs(x))


def test_moving_average_formula():
    c = 0.25
    obs = MovingAverageMinMaxObserver("int8", averaging_constant=c)
    batches = [np.array([-1.0, 2.0]), np.array([-3.0, 1.0]), np.array([0.5, 4.0])]
    m_min, m_max = -1.0, 2.0
    for x in batches[1:]:
        m_min += c * (x.min() - m_min)
        m_max += c * (x.max() - m_max)
    for x in batches:
        obs.observe(x)
    lo, hi = obs.range()
    assert lo == pytest.approx(m_min, abs=0) and hi == pytest.approx(m_max, abs=0)


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


def _gaussian_with_outliers(n=20000, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    x[:10] = rng.choice([-1, 1], size=10) * 40.0  # far outliers
    return x.astype(np.float32)


@pytest.mark.parametrize("cls", CLIPPING)
def test_clipping_observers_ignore_outliers_on_gaussian_data(cls):
    x = _gaussian_with_outliers()  # 10 outliers in 20000 values = 0.05 %
    kw = {"percentile": 99.9} if cls is PercentileObserver else {}
    # int8 steps are small enough that MSE keeps 10 outliers (their clipping error would dominate);
    # with int4's 16 levels it clips them.
    dtype = "int4" if cls is MSEObserver else "int8"
    if cls is EntropyObserver:
        kw["bins"] = 2048  # TensorRT's: the smallest candidate is 128/2048 of max|x|
    obs = _make(cls, dtype, symmetric=True, **kw)
    obs.observe(x)
    t = obs.range()[1]
    assert 2.5 < t < 20.0, t  # far below the outliers (40), above the bulk of N(0, 1)
    # and the clipped quantization has a smaller error on the bulk than min-max
    mm = MinMaxObserver(dtype, symmetric=True).observe(x).qparams()
    bulk = x[10:]
    err = lambda qp: np.mean((dequantize(quantize(bulk, qp), qp) - bulk) ** 2)  # noqa: E731
    assert err(obs.qparams()) < err(mm)


def test_mse_keeps_few_outliers_at_int8():
    # 10 values at ±40 clipped to t ~ 10 would cost ~10·30² = 9000; int8 rounding over
    # [-40, 40] costs ~20000·(40/127.5)²/12 ~ 160: the MSE optimum (almost) does not clip.
    x = _gaussian_with_outliers()
    assert MSEObserver("int8", symmetric=True).observe(x).range()[1] >= 0.95 * 40.0


def test_mse_picks_the_minimum_of_its_error_curve():
    x = _gaussian_with_outliers(5000)
    obs = MSEObserver("int4", symmetric=True, num_candidates=50).observe(x)
    alphas, errors = obs.candidate_errors()
    amax = float(np.abs(x).max())
    assert obs.range()[1] == pytest.approx(alphas[np.argmin(errors)] * amax, rel=1e-12)
    assert errors[np.argmin(errors)] < errors[-1]


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


@pytest.mark.parametrize("cls", ALL)
def test_per_channel_equals_per_tensor_per_slice(cls):
    rng = np.random.default_rng(3)
    batches = [rng.normal(size=(3, 4, 40)) * np.array([1.0, 5.0, 0.1, 2.0])[None, :, None] for _ in range(2)]
    per_ch = _make(cls, "int8", axis=1)
    for b in batches:
        per_ch.observe(b.astype(np.float32))
    qp = per_ch.qparams()
    assert qp.axis == 1 and qp.scale.shape == (4,)
    for c in range(4):
        one = _make(cls, "int8")
        for b in batches:
            one.observe(np.ascontiguousarray(b[:, c, :]).astype(np.float32))
        assert qp.scale[c] == one.qparams().scale
        assert int(qp.zero_point[c]) == int(one.qparams().zero_point)


@pytest.mark.parametrize("cls", ALL)
def test_bad_input(cls):
    obs = _make(cls, "int8", axis=0)
    with pytest.raises(ValidationError) as info:
        obs.qparams()  # nothing observed
    assert info.value.argument == "observer"
    for bad, exc, arg in [
        ([1.0, 2.0], DTypeError, "x"),
        (np.array([1, 2]), DTypeError, "x"),
        (np.zeros((0, 3), np.float32), ShapeError, "x"),
        (np.array([[1.0, np.nan]], np.float32), ValidationError, "x"),
        (np.array([[1.0, np.inf]], np.float32), ValidationError, "x"),
        (np.ones((), np.float32), ValidationError, "axis"),  # rank 0 has no axis 0
    ]:
        with pytest.raises(exc) as info:
            obs.observe(bad)
        assert info.value.argument == arg
    obs.observe(np.ones((2, 3), np.float32))
    with pytest.raises(ShapeError) as info:
        obs.observe(np.ones((3, 3), np.float32))  # channel count changed
    assert info.value.argument == "x"


@pytest.mark.parametrize("make,argument", [
    (lambda: MovingAverageMinMaxObserver(averaging_constant=0.0), "averaging_constant"),
    (lambda: MovingAverageMinMaxObserver(averaging_constant=1.5), "averaging_constant"),
    (lambda: PercentileObserver(percentile=10), "percentile"),
    (lambda: PercentileObserver(percentile=100.5), "percentile"),
    (lambda: MSEObserver(num_candidates=0), "num_candidates"),
    (lambda: EntropyObserver(num_quantized_bins=1), "num_quantized_bins"),
    (lambda: EntropyObserver(stride=0), "stride"),
    (lambda: EntropyObserver(bins=0), "bins"),
    (lambda: MinMaxObserver("int9"), "dtype"),
    (lambda: MinMaxObserver(axis="0"), "axis"),
    (lambda: MinMaxObserver("float8_e4m3fn", reduce_range=True), "reduce_range"),
])
def test_bad_options(make, argument):
    with pytest.raises(ValidationError) as info:
        make()
    assert info.value.argument == argument


def test_reset_forgets():
    obs = MinMaxObserver().observe(np.array([-5.0, 5.0]))
    obs.reset()
    obs.observe(np.array([-1.0, 1.0]))
    assert obs.range() == (-1.0, 1.0)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, "bfloat16"])
def test_accepts_every_float_input_dtype(dtype):
    import ml_dtypes

    dt = ml_dtypes.bfloat16 if dtype == "bfloat16" else dtype
    x = np.array([-2.0, 0.5, 3.0]).astype(dt)
    for cls in ALL:
        lo, hi = _make(cls, "int8").observe(x).range()
        assert -2.0 <= lo <= hi <= 3.0
