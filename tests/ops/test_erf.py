"""refcomp.ops.erf against scipy.special.erf (an independent implementation) and Erf's fixed points."""

import numpy as np
import pytest

from refcomp.errors import DTypeError
from refcomp.ops import erf

special = pytest.importorskip("scipy.special")


@pytest.mark.parametrize("dtype, ulps", [(np.float32, 1), (np.float64, 4)])
def test_within_ulps_of_scipy(dtype, ulps):
    x = np.concatenate([np.linspace(-6, 6, 20001), np.geomspace(1e-30, 1e-3, 200)]).astype(dtype)
    x = np.concatenate([x, -x])
    got = erf(x, backend="numpy")
    want = special.erf(x.astype(np.float64))
    assert got.dtype == dtype
    assert np.all(np.abs(got - want) <= ulps * np.spacing(np.abs(want).astype(dtype)))


def test_special_values():
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan], np.float32)
    y = erf(x, backend="numpy")
    np.testing.assert_array_equal(y[:4], [0, 0, 1, -1])
    assert np.signbit(y[1]) and np.isnan(y[4])


def test_odd_and_bounded():
    x = np.random.default_rng(0).standard_normal(1000).astype(np.float32) * 3
    y = erf(x, backend="numpy")
    np.testing.assert_array_equal(erf(-x, backend="numpy"), -y)
    assert np.all(np.abs(y) <= 1)


def test_integer_input_is_refused():
    with pytest.raises(DTypeError, match="x"):
        erf(np.arange(3))


# ---------------------------------------------------------------- dispatch, and the NumPy path's edges
def test_the_registered_kernel_runs_by_default_and_for_its_name_never_for_numpy(kernel_registry):
    calls = []

    def fake(x):
        calls.append(x.shape)
        return np.full_like(x, 7)

    kernel_registry({("erf", "numba"): fake})
    x = np.array([0.5, -1.0], np.float32)
    for backend, n_calls in ((None, 1), ("auto", 1), ("numba", 1), ("numpy", 0)):
        calls.clear()
        y = erf(x) if backend is None else erf(x, backend=backend)
        assert calls == [(2,)] * n_calls, backend
        np.testing.assert_array_equal(y, [7, 7] if n_calls else special.erf(x.astype(np.float64)).astype(np.float32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(0,), (1,), (2, 0, 3), (), (2, 3)])
def test_numpy_path_keeps_shape_and_dtype_for_empty_single_and_0d(shape, dtype):
    x = np.full(shape, 0.75, dtype)
    y = erf(x, backend="numpy")
    assert y.shape == shape and y.dtype == dtype
    np.testing.assert_array_equal(y, np.full(shape, dtype(special.erf(0.75))))


def test_float64_result_is_a_new_array():
    x = np.array([0.1, 0.2])
    y = erf(x, backend="numpy")
    assert not np.shares_memory(x, y) and np.all(x == [0.1, 0.2])
