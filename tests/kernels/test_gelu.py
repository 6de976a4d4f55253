"""The fast GELU kernels (C on every ISA path, Numba) against refcomp.ops.gelu's NumPy definition.

The contract is eq. G2 of refcomp.ops.gelu, not bit-exactness:
    |y_fast − y_def| ≤ 2^-24 |x| + ulp(y_def)   for every float32 x,
NaN exactly where the definition has NaN (never for finite x), y = x for
large x and −0 for very negative x. benchmarks/check_gelu_exhaustive.py
checks the same on all 2^32 inputs; these tests check it on random and
extreme inputs and on every forced ISA path (the ``fast`` fixture).
"""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from refcomp.ops import gelu

from .conftest import C_ISAS


def assert_g2(x, got):
    """eq. G2 of refcomp.ops.gelu, and the NaN pattern of the definition."""
    with np.errstate(invalid="ignore", over="ignore"):
        want = gelu(x, backend="numpy")
    assert got.dtype == np.float32 and got.shape == x.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    assert not np.any(np.isnan(got) & np.isfinite(x)), "NaN for a finite x"
    ok = np.isfinite(want)
    np.testing.assert_array_equal(got[~ok], want[~ok])  # ±inf, NaN
    x64, w64 = x[ok].astype(np.float64), want[ok].astype(np.float64)
    # ulp(y_def) in float32, taken in float64 so that ulp(FLT_MAX) = 2^104 does not overflow
    ulp = np.ldexp(1.0, np.where(w64 == 0, -149, np.maximum(np.frexp(w64)[1] - 24, -149)))
    bound = np.ldexp(np.abs(x64), -24) + ulp
    err = np.abs(got[ok].astype(np.float64) - w64)
    assert np.all(err <= bound), f"eq. G2 fails at x = {x[ok][np.argmax(err / bound)]!r}"


# every exponent: denormals, tiny, huge, ±inf, NaN
ANY_F32 = st.floats(width=32, allow_nan=True, allow_infinity=True, allow_subnormal=True)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(x=arrays(np.float32, st.integers(0, 200), elements=ANY_F32))
def test_any_float32(fast, x):
    with np.errstate(invalid="ignore"):
        assert_g2(x, gelu(x, backend=fast))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(x=arrays(np.float32, st.integers(1, 100), elements=st.floats(-8, 8, width=32)))
def test_where_erf_is_not_yet_one(fast, x):
    assert_g2(x, gelu(x, backend=fast))


def test_dense_grid_and_branch_points(fast):
    s2 = math.sqrt(2)
    edges = np.array([0.9 * s2, 3.9375 * s2, 5.57], np.float32)  # the erf's branch point, its clamp, y = x
    near = np.concatenate([np.nextafter(edges, np.float32(np.inf) * k) for k in (-1, 1)] + [edges])
    x = np.concatenate([np.linspace(-12, 12, 300_001, dtype=np.float32), near, -near,
                        np.float32(2.0) ** np.arange(-149, 128, dtype=np.float32),
                        -np.float32(2.0) ** np.arange(-149, 128, dtype=np.float32),
                        np.array([np.finfo(np.float32).max, -np.finfo(np.float32).max,
                                  np.finfo(np.float32).tiny, -np.finfo(np.float32).tiny], np.float32)])
    assert_g2(x, gelu(x, backend=fast))


def test_fixed_points(fast):
    x = np.array([0.0, -0.0, 5.57, 6.0, 100.0, 3e38, -5.57, -6.0, -100.0, -3e38, np.inf, np.nan, -np.inf], np.float32)
    with np.errstate(invalid="ignore"):
        y = gelu(x, backend=fast)
    assert y[0] == 0 and not np.signbit(y[0]) and y[1] == 0 and np.signbit(y[1])
    np.testing.assert_array_equal(y[2:6], x[2:6])  # GELU(x) = x for large x
    assert np.all(y[6:10] == 0)  # and 0 (−0) for very negative x
    assert y[10] == np.inf and np.isnan(y[11]) and np.isnan(y[12])  # −∞ · 0, as the definition


def test_every_tail_length_and_a_strided_view(fast):
    rng = np.random.default_rng(1)
    for n in range(0, 40):
        x = (rng.standard_normal(n) * 3).astype(np.float32)
        assert_g2(x, gelu(x, backend=fast))
    x = np.linspace(-5, 5, 600, dtype=np.float32).reshape(20, 30)[:, ::7]
    assert_g2(x, gelu(x, backend=fast))


def test_float64_and_tanh_run_the_definition(fast):
    x = np.random.default_rng(2).standard_normal(300) * 3
    np.testing.assert_array_equal(gelu(x, backend=fast), gelu(x, backend="numpy"))
    x32 = x.astype(np.float32)
    np.testing.assert_array_equal(gelu(x32, approximate="tanh", backend=fast),
                                  gelu(x32, approximate="tanh", backend="numpy"))


@pytest.mark.skipif(not C_ISAS, reason="C kernels not built")
def test_numba_equals_the_c_scalar_path_bit_for_bit():
    pytest.importorskip("numba")
    from refcomp.kernels import c
    from refcomp.kernels.numba import gelu as nb
    rng = np.random.default_rng(3)
    x = np.concatenate([(rng.standard_normal(100_000) * 4).astype(np.float32),
                        rng.integers(0, 2**32, 100_000, dtype=np.uint64).astype(np.uint32).view(np.float32)])
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(nb.gelu(x).view(np.uint32), c.gelu(x, isa="scalar").view(np.uint32))


@pytest.mark.skipif(not C_ISAS, reason="C kernels not built")
@pytest.mark.parametrize("isa", C_ISAS)
def test_threads_do_not_change_the_bits(isa):
    from refcomp.kernels import c
    x = (np.random.default_rng(4).standard_normal(200_003) * 3).astype(np.float32)
    np.testing.assert_array_equal(c.gelu(x, isa=isa, threads=2), c.gelu(x, isa=isa, threads=1))


@pytest.mark.skipif(not C_ISAS, reason="C kernels not built")
def test_c_wrapper_refuses_other_dtypes():
    from refcomp.errors import DTypeError
    from refcomp.kernels import c
    with pytest.raises(DTypeError, match="x"):
        c.gelu(np.ones(3))
