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
