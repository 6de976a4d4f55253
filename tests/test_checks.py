"""refcomp.checks: what each check accepts, converts (dtype, copy or not) and raises."""

import ml_dtypes
import numpy as np
import pytest

from refcomp import checks
from refcomp.errors import DTypeError, ShapeError, ValidationError


def _raises(cls, argument, fn, *args, **kwargs):
    with pytest.raises(cls) as info:
        fn(*args, **kwargs)
    assert type(info.value) is cls and info.value.argument == argument
    return info.value


def test_float_array_keeps_float32_and_float64_without_copying():
    for dt in (np.float32, np.float64):
        a = np.arange(3, dtype=dt)
        assert checks.float_array(a, "a") is a
    for a in (np.arange(3, dtype=np.int8), np.ones(2, bool), np.ones(2, np.float16),
              np.ones(2, ml_dtypes.bfloat16), [1, 2]):
        out = checks.float_array(a, "a")
        assert out.dtype == np.float64 and not np.shares_memory(out, np.asarray(a))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_float_array_with_a_dtype_converts_and_copies_when_asked(dtype):
    a = np.arange(3, dtype=dtype)
    assert checks.float_array(a, "a", dtype=dtype) is a
    out = checks.float_array(a, "a", dtype=dtype, copy=True)
    assert out.dtype == dtype and out is not a and not np.shares_memory(out, a)
    np.testing.assert_array_equal(out, a)
    assert checks.float_array(np.arange(3, dtype=np.int64), "a", dtype=dtype).dtype == dtype


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("kwargs", [{}, {"dtype": np.float64, "copy": True}, {"dtype": np.float32}])
def test_float_array_rejects_non_finite_values(bad, kwargs):
    e = _raises(ValidationError, "w", checks.float_array, [1.0, bad, 2.0], "w", **kwargs)
    assert e.expected == "finite values (no NaN or inf)" and "flat index 1" in e.got
    assert checks.float_array([1.0, bad], "w", finite=False, **kwargs).shape == (2,)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_float_array_rejects_an_overflowing_float32_cast():
    _raises(ValidationError, "w", checks.float_array, [1e300], "w", dtype=np.float32)


@pytest.mark.parametrize("x", [np.ones(2, np.complex64), np.array(["a"]), np.array([None]),
                               np.ones(2, "m8[s]"), np.ones(2, ml_dtypes.int4)])
def test_float_array_rejects_non_real_dtypes(x):
    e = _raises(DTypeError, "w", checks.float_array, x, "w")
    assert e.expected == "a real numeric array" and e.got == f"dtype {x.dtype}"


def test_float_array_ndim_and_empty():
    e = _raises(ShapeError, "w", checks.float_array, np.ones(3), "w", ndim=(2, 4))
    assert e.expected == "a 2-D or 4-D array" and e.got == "shape (3,)"
    assert checks.float_array(np.ones((2, 2)), "w", ndim=2).shape == (2, 2)
    assert checks.float_array([], "w").size == 0
    _raises(ShapeError, "w", checks.float_array, [], "w", allow_empty=False)


def test_float_tensor_passes_floating_arrays_through():
    a = np.ones((2, 3), np.float32)
    assert checks.float_tensor(a, "x", 2) is a
    assert checks.float_tensor([[np.nan]], "x", (1, 2)).dtype == np.float64   # no finite check
    _raises(DTypeError, "x", checks.float_tensor, np.ones((2, 3), np.int64), "x", 2)
    e = _raises(ShapeError, "x", checks.float_tensor, a, "x", (1, 3))
    assert e.expected == "rank 1 or 3"


def test_numeric_array_dtype_in_and_finite():
    a = np.ones(3, np.int8)
    assert checks.numeric_array(a, "A") is a
    assert checks.numeric_array(np.ones(2, ml_dtypes.int4), "A").dtype == ml_dtypes.int4
    _raises(ValidationError, "A", checks.numeric_array, None, "A")
    _raises(DTypeError, "A", checks.numeric_array, np.array(["x"]), "A")
    checks.dtype_in(a, "A", (np.uint8, np.int8))
    e = _raises(DTypeError, "A", checks.dtype_in, a, "A", (np.uint8,))
    assert e.expected == "dtype in (uint8)" and e.got == "dtype int8"
    checks.finite(np.ones(2, ml_dtypes.bfloat16), "x")
    e = _raises(ValidationError, "x", checks.finite, np.array([1, 2, np.inf, np.nan], np.float16), "x")
    assert e.got == "inf at flat index 2 (2 non-finite)"


def test_bool_mask_and_same_shape():
    m = np.ones((2, 3), bool)
    assert checks.bool_mask(m, (2, 3)) is m
    _raises(DTypeError, "mask", checks.bool_mask, m.astype(np.int8), (2, 3))
    _raises(ShapeError, "keep", checks.bool_mask, m, (3, 2), "keep")
    checks.same_shape(m, [2, 3], "grad")
    _raises(ShapeError, "grad", checks.same_shape, m, (2,), "grad")


@pytest.mark.parametrize("kwargs, expected", [
    ({}, "an integer"),
    ({"minimum": 1}, "an integer >= 1"),
    ({"maximum": 8}, "an integer <= 8"),
    ({"minimum": 1, "maximum": 8}, "an integer in [1, 8]"),
])
def test_integer(kwargs, expected):
    assert checks.integer(np.int64(5), "n", **kwargs) == 5 and type(checks.integer(np.int8(5), "n", **kwargs)) is int
    for bad in (True, 2.0, "3", None, 0 if "minimum" in kwargs else 1.5, 9 if "maximum" in kwargs else [1]):
        e = _raises(ValidationError, "n", checks.integer, bad, "n", **kwargs)
        assert e.expected == expected and e.got == repr(bad)


def test_int_pair_and_normalize_axis():
    assert checks.int_pair(3, "stride", minimum=1) == (3, 3)
    assert checks.int_pair([2, np.int64(0)], "padding", minimum=0) == (2, 0)
    _raises(ValidationError, "stride", checks.int_pair, (1, 2, 3), "stride", minimum=1)
    _raises(ValidationError, "stride", checks.int_pair, (1, 0), "stride", minimum=1)
    assert checks.normalize_axis(-1, 3) == 2 and checks.normalize_axis(np.int64(1), 3) == 1
    for bad in (3, -4, 1.0, True):
        e = _raises(ValidationError, "axis", checks.normalize_axis, bad, 3)
        assert e.expected == "an integer in [-3, 2] for a 3-D array"


def test_real_ratio_and_one_of():
    assert checks.real(np.float32(0.5), "alpha", low=0, high=1) == 0.5
    assert checks.real(10**30, "x", low=0) == 1e30
    for bad in (0.0, np.nan, np.inf, True, "1", None):
        e = _raises(ValidationError, "t", checks.real, bad, "t", low=0, low_open=True)
        assert e.expected == "a real number in (0, inf)"
    assert checks.ratio(0, "sparsity") == 0.0
    for bad in (1, 1.0, -0.1, np.nan, True):
        e = _raises(ValidationError, "sparsity", checks.ratio, bad, "sparsity")
        assert e.expected == "a real number in [0, 1)"
    assert checks.one_of("exact", "method", ("exact", "greedy")) == "exact"
    e = _raises(ValidationError, "method", checks.one_of, "fast", "method", ("exact", "greedy"))
    assert e.expected == "one of ('exact', 'greedy')" and e.got == "'fast'"
