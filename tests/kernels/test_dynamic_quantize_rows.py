"""The C kernel of refcomp.ops.dynamic_quantize_rows, on every ISA path, equals the NumPy definition bit for bit.

csrc/dynamic_quantize.c does eqs. DQ1–DQ3 per row with the same float32 operations (one IEEE
operation per step, round half to even): scale, zero point and codes must be identical, not close.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from refcomp.errors import BackendUnavailableError
from refcomp.ops import dynamic_quantize_rows

from .conftest import C_ISAS

pytestmark = pytest.mark.skipif(not C_ISAS, reason="C kernels not built")


def assert_same(x, isa, threads=None):
    from refcomp.kernels import c

    want = dynamic_quantize_rows(x, backend="numpy")
    got = c.dynamic_quantize_rows(x, isa=isa, threads=threads)
    for g, w, name in zip(got, want, ("y", "scale", "zero_point")):
        assert g.dtype == w.dtype and g.shape == w.shape, name
        np.testing.assert_array_equal(g, w, err_msg=name)
        if name == "scale":
            assert np.array_equal(g.view(np.uint32), w.view(np.uint32))  # the same bits


finite_f32 = st.floats(width=32, allow_nan=False, allow_infinity=False)


@st.composite
def matrices(draw):
    m = draw(st.integers(1, 9))
    k = draw(st.integers(1, 80))  # around the 8- and 32-lane steps of the AVX2 path
    kind = draw(st.sampled_from(["any", "small", "halves", "signed", "zeros"]))
    if kind == "any":  # the whole float32 range, subnormals and huge spans included
        return draw(arrays(np.float32, (m, k), elements=finite_f32))
    if kind == "small":
        return draw(arrays(np.float32, (m, k), elements=st.floats(-4, 4, width=32)))
    if kind == "halves":  # x / scale lands on n + 0.5 often: the ties of the rounding
        return draw(arrays(np.int16, (m, k), elements=st.integers(-255, 255))).astype(np.float32) * np.float32(0.5)
    if kind == "signed":  # rows of one sign: zero point 0 or 255
        x = draw(arrays(np.float32, (m, k), elements=st.floats(0, 1e6, width=32)))
        return np.where(np.arange(m)[:, None] % 2 == 0, x, -x).astype(np.float32)
    return np.zeros((m, k), np.float32)


@pytest.mark.parametrize("isa", C_ISAS)
@settings(max_examples=80, deadline=None)
@given(x=matrices())
def test_c_equals_numpy(isa, x):
    assert_same(x, isa)


@pytest.mark.parametrize("isa", C_ISAS)
def test_c_equals_numpy_large_and_threaded(isa):
    """Many rows (several tasks, two threads) and a non-contiguous x."""
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((300, 1537)) * rng.uniform(1e-3, 50, (300, 1))).astype(np.float32)
    x[7] = 0
    x[8] = np.abs(x[8])
    x[9] = -np.abs(x[9])
    assert_same(x, isa, threads=2)
    assert_same(x[::3, 5:700], isa)


def test_op_dispatches_to_c(monkeypatch):
    from refcomp import backend

    assert "c" in backend.available("dynamic_quantize_rows")
    fn = backend.implementation("dynamic_quantize_rows", "auto")
    assert fn.__module__ == "refcomp.kernels.c"
    rng = np.random.default_rng(12)
    x = rng.standard_normal((5, 40)).astype(np.float32)
    for got, want in zip(dynamic_quantize_rows(x, backend="c"), dynamic_quantize_rows(x, backend="numpy")):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(BackendUnavailableError):  # no Numba twin of this op
        dynamic_quantize_rows(x, backend="numba")
