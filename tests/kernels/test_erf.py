"""Numba's erf equals refcomp.ops.erf's NumPy definition bit for bit."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from refcomp.ops import erf

pytest.importorskip("numba")


@settings(max_examples=60, deadline=None)
@given(x=arrays(st.sampled_from([np.float32, np.float64]), st.integers(0, 300),
                elements=st.floats(width=32, allow_nan=True, allow_infinity=True)))
def test_numba_equals_definition(x):
    want = erf(x, backend="numpy")
    got = erf(x, backend="numba")
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_numba_keeps_the_shape_of_a_strided_view():
    x = np.linspace(-5, 5, 60, dtype=np.float32).reshape(6, 10)[:, ::3]
    np.testing.assert_array_equal(erf(x, backend="numba"), erf(x, backend="numpy"))
