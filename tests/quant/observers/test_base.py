"""What every observer shares (refcomp.quant.observers.base): scale > 0 and a range inside the data,
per-channel = per-tensor per slice, the input policy, reset, the scheme's options."""

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp.errors import DTypeError, ShapeError, ValidationError
from refcomp.quant import MinMaxObserver, MovingAverageMinMaxObserver

from .cases import ALL, CLIPPING, batches, make


@settings(max_examples=25)
@given(xs=batches, cls=st.sampled_from(ALL), symmetric=st.booleans(), dtype=st.sampled_from(["int8", "uint8", "int4"]))
def test_scale_positive_and_range_inside_the_data(xs, cls, symmetric, dtype):
    obs = make(cls, dtype, symmetric=symmetric)
    for x in xs:
        obs.observe(x)
    lo, hi = obs.range()
    qp = obs.qparams()
    assert np.all(qp.scale > 0) and np.all(np.isfinite(qp.scale))
    mn = min(float(x.min()) for x in xs)
    mx = max(float(x.max()) for x in xs)
    assert lo <= hi
    if cls is MovingAverageMinMaxObserver:
        return  # an average of batch extremes: its formula is checked in test_minmax
    if symmetric and cls in CLIPPING:
        assert 0 <= hi == -lo <= max(-mn, mx)
    else:
        assert mn <= lo and hi <= mx


@pytest.mark.parametrize("cls", ALL)
def test_per_channel_equals_per_tensor_per_slice(cls):
    rng = np.random.default_rng(3)
    batches = [rng.normal(size=(3, 4, 40)) * np.array([1.0, 5.0, 0.1, 2.0])[None, :, None] for _ in range(2)]
    per_ch = make(cls, "int8", axis=1)
    for b in batches:
        per_ch.observe(b.astype(np.float32))
    qp = per_ch.qparams()
    assert qp.axis == 1 and qp.scale.shape == (4,)
    for c in range(4):
        one = make(cls, "int8")
        for b in batches:
            one.observe(np.ascontiguousarray(b[:, c, :]).astype(np.float32))
        assert qp.scale[c] == one.qparams().scale
        assert int(qp.zero_point[c]) == int(one.qparams().zero_point)


@pytest.mark.parametrize("cls", ALL)
def test_bad_input(cls):
    obs = make(cls, "int8", axis=0)
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


@pytest.mark.parametrize("make_observer,argument", [
    (lambda: MinMaxObserver("int9"), "dtype"),
    (lambda: MinMaxObserver(axis="0"), "axis"),
    (lambda: MinMaxObserver("float8_e4m3fn", reduce_range=True), "reduce_range"),
])
def test_bad_options(make_observer, argument):
    with pytest.raises(ValidationError) as info:
        make_observer()
    assert info.value.argument == argument


def test_reset_forgets():
    obs = MinMaxObserver().observe(np.array([-5.0, 5.0]))
    obs.reset()
    obs.observe(np.array([-1.0, 1.0]))
    assert obs.range() == (-1.0, 1.0)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, ml_dtypes.bfloat16])
def test_accepts_every_float_input_dtype(dtype):
    x = np.array([-2.0, 0.5, 3.0]).astype(dtype)
    for cls in ALL:
        lo, hi = make(cls, "int8").observe(x).range()
        assert -2.0 <= lo <= hi <= 3.0


# ---- the scheme reaches the QParams: eqs. (5)-(7) written out for x in [-1, 3]
@pytest.mark.parametrize("args,kwargs,scale,zero_point", [
    ((), {}, 4 / 255, -128 + 64),                                           # int8, asymmetric, full range
    (("uint8",), {}, 4 / 255, 0 + 64),                                      # zp = qmin - round(-1 / (4/255))
    (("uint8",), dict(reduce_range=True), 4 / 127, 0 + 32),                 # 0..127
    (("int8",), dict(symmetric=True), 3 / 127.5, 0),                        # max|x| / ((qmax - qmin) / 2)
    (("int8",), dict(symmetric=True, restricted_range=True), 3 / 127, 0),   # -127..127
    (("int4",), dict(symmetric=True), 3 / 7.5, 0),
])
def test_qparams_follow_the_scheme(args, kwargs, scale, zero_point):
    obs = MinMaxObserver(*args, **kwargs).observe(np.array([-1.0, 0.5, 3.0], np.float32))
    qp = obs.qparams()
    assert qp.dtype.name == (args[0] if args else "int8")
    assert qp.scale == np.float32(scale) and int(qp.zero_point) == zero_point


def test_a_bad_scheme_is_refused_at_construction():
    # before any batch is seen: a float dtype has no restricted (nor reduced) integer range
    with pytest.raises(ValidationError) as info:
        MinMaxObserver("float8_e4m3fn", restricted_range=True)
    assert info.value.argument == "restricted_range"


# ---- the running state: extremes over every batch, the batch count, float64 ranges
def test_running_extremes_and_batch_count():
    obs = MinMaxObserver()
    for x in (np.array([-5.0, 1.0]), np.array([-1.0, 7.0]), np.array([-2.0, 3.0])):
        obs.observe(x)
    assert obs.batches == 3 and (obs.min_val, obs.max_val) == (-5.0, 7.0)
    assert repr(obs) == "MinMaxObserver(int8, asymmetric, per-tensor, batches=3)"
    assert repr(MinMaxObserver("uint8", symmetric=True, axis=1)) == "MinMaxObserver(uint8, symmetric, axis=1, batches=0)"
    per_channel = MinMaxObserver(axis=0)
    for x in (np.array([[-5.0, 1.0], [0.0, 2.0]]), np.array([[-1.0, 7.0], [-3.0, 1.0]])):
        per_channel.observe(x)
    lo, hi = per_channel.range()
    assert lo.tolist() == [-5.0, -3.0] and hi.tolist() == [7.0, 2.0]


def test_range_is_float64_whatever_a_subclass_returns():
    class Fixed(MinMaxObserver):
        def _range(self):
            return np.array([-1], np.int32), np.array([2], np.float32)

    for axis in (None, 0):
        lo, hi = Fixed(axis=axis).observe(np.ones(1)).range()
        assert lo.dtype == hi.dtype == np.float64 and (lo.item(), hi.item()) == (-1.0, 2.0)


def test_axis_counts_from_the_end():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    first = MinMaxObserver(axis=-2).observe(x).range()
    np.testing.assert_array_equal(first[0], [0.0, 4.0, 8.0])
    np.testing.assert_array_equal(first[1], [3.0, 7.0, 11.0])


def test_nan_error_counts_the_bad_values():
    with pytest.raises(ValidationError) as info:
        MinMaxObserver().observe(np.array([1.0, np.nan, np.inf, 2.0, 3.0]))
    assert info.value.got == "2 NaN/Inf"


# ---- the histogram observers' options reach each channel's histogram; bad ones fail at construction
@pytest.mark.parametrize("cls", CLIPPING)
def test_histogram_options_reach_every_channel(cls):
    obs = make(cls, "int8", bins=8, max_bins=20, axis=0)
    assert obs.histograms == []
    obs.observe(np.array([[-1.0, 2.0], [3.0, 0.5]], np.float32))
    assert [(h.bins, h.max_bins) for h in obs.histograms] == [(8, 20), (8, 20)]
    assert [(h.bins, h.max_bins) for h in make(cls, "int8", bins=8).observe(np.ones(2)).histograms] == [(8, 32)]
    with pytest.raises(ValidationError) as info:
        make(cls, "int8", bins=8, max_bins=15)
    assert info.value.argument == "max_bins"
