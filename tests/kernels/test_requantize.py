"""C and Numba requantization equal refcomp.ops.requantize's NumPy definition, bit for bit."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from refcomp.ops import quantize_multiplier, requantize

from .conftest import C_ISAS

OUT = ("int8", "uint8", "int16", "uint16")


def _acc(rng, shape, kind):
    if kind == "extreme":
        return rng.choice(np.array([-(2**31), 2**31 - 1, 0, -1, 1, 2**24 + 1, -(2**24) - 3], np.int32), shape)
    if kind == "small":
        return rng.integers(-3000, 3000, shape).astype(np.int32)
    return rng.integers(-(2**31), 2**31, shape, dtype=np.int64).astype(np.int32)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(m=st.integers(1, 9), n=st.integers(1, 21), out=st.sampled_from(OUT), kind=st.sampled_from(["random", "small", "extreme"]),
       per_channel=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_float_method(fast, m, n, out, kind, per_channel, seed):
    rng = np.random.default_rng(seed)
    acc = _acc(rng, (m, n), kind)
    size = n if per_channel else 1
    mult = (rng.random(size) * 2.0 ** rng.integers(-20, 2, size)).astype(np.float32) + np.float32(1e-9)
    info = np.iinfo(out)
    zp = rng.integers(info.min, info.max + 1, size)
    args = dict(output_dtype=out, method="float", axis=1 if per_channel else None)
    want = requantize(acc, mult, zp, backend="numpy", **args)
    got = requantize(acc, mult, zp, backend=fast, **args)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


def test_float_ties_round_half_to_even(fast):
    acc = np.arange(-9, 10, dtype=np.int32).reshape(1, -1)  # acc * 0.5 lands on every tie
    want = requantize(acc, np.float32(0.5), 0, output_dtype="int8", backend="numpy")
    got = requantize(acc, np.float32(0.5), 0, output_dtype="int8", backend=fast)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(want[0, :5], [-4, -4, -4, -3, -2])  # -4.5 -4 -3.5 -3 -2.5


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(m=st.integers(1, 9), n=st.integers(1, 21), out=st.sampled_from(OUT), kind=st.sampled_from(["random", "small", "extreme"]),
       per_channel=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_fixed_point_method(fast, m, n, out, kind, per_channel, seed):
    rng = np.random.default_rng(seed)
    acc = _acc(rng, (m, n), kind)
    size = n if per_channel else 1
    real = rng.random(size) * 2.0 ** rng.integers(-30, 0, size) + 1e-12  # multipliers < 1: shift <= 0
    info = np.iinfo(out)
    zp = rng.integers(info.min, info.max + 1, size)
    args = dict(output_dtype=out, method="fixed_point", axis=1 if per_channel else None)
    want = requantize(acc, real, zp, backend="numpy", **args)
    got = requantize(acc, real, zp, backend=fast, **args)
    np.testing.assert_array_equal(got, want)
    m_, s_ = quantize_multiplier(real)
    np.testing.assert_array_equal(requantize(acc, (m_, s_), zp, backend=fast, **args), want)


@pytest.mark.skipif(not C_ISAS, reason="C kernels not built")
def test_c_gemmlowp_primitives_match_numpy():
    from refcomp.kernels.c import lib
    from refcomp.ops.requantize import rounding_divide_by_pot, saturating_rounding_doubling_high_mul

    rng = np.random.default_rng(0)
    a = np.concatenate([rng.integers(-(2**31), 2**31, 300), [-(2**31), 2**31 - 1, 0, -1]]).astype(np.int32)
    b = np.concatenate([rng.integers(-(2**31), 2**31, 300), [-(2**31), 2**31 - 1, 1, 2**30]]).astype(np.int32)
    want = saturating_rounding_doubling_high_mul(a, b)
    got = [lib.refcomp_saturating_rounding_doubling_high_mul(int(x), int(y)) for x, y in zip(a, b)]
    np.testing.assert_array_equal(got, want)
    e = rng.integers(0, 32, a.size)
    want = rounding_divide_by_pot(a, e)
    got = [lib.refcomp_rounding_divide_by_pot(int(x), int(k)) for x, k in zip(a, e)]
    np.testing.assert_array_equal(got, want)
