"""The Numba eq. DQ3 of dynamic_quantize_linear gives the NumPy definition's bytes (ties, clipping, threads)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import refcomp
from refcomp import backend
from refcomp.ops import dynamic_quantize_linear

pytestmark = pytest.mark.skipif("numba" not in backend.available("dynamic_quantize_linear"),
                                reason="numba not installed")


def _case(seed, shape, kind):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 10 ** rng.uniform(-4, 4) + rng.uniform(-3, 3)).astype(np.float32)
    if kind == "ties":  # half steps of the scale the op will choose: rint's half-to-even decides
        f32 = np.float32
        hi, lo = max(f32(0), x.max()), min(f32(0), x.min())
        s = f32(f32(hi - lo) / f32(255)) if hi != lo else f32(1) / f32(255)
        x = ((np.floor(x / s) + f32(0.5)) * s).astype(np.float32)
    elif kind == "positive":  # r_min = 0: zero point 0, only the upper clip bites
        x = np.abs(x)
    elif kind == "constant":
        x = np.full(shape, x.flat[0], np.float32)
    return x


@settings(max_examples=80)
@given(seed=st.integers(0, 2**32 - 1), shape=st.sampled_from([(1,), (13,), (3, 70), (2, 3, 257), (300, 257)]),
       kind=st.sampled_from(["random", "ties", "positive", "constant"]))
def test_numba_equals_numpy(seed, shape, kind):
    x = _case(seed, shape, kind)
    want = dynamic_quantize_linear(x, backend="numpy")
    got = dynamic_quantize_linear(x, backend="numba")
    assert got[0].dtype == np.uint8 and got[0].shape == x.shape
    np.testing.assert_array_equal(got[0], want[0])
    assert got[1] == want[1] and got[1].dtype == np.float32 and got[2] == want[2] and got[2].dtype == np.uint8


def test_thread_count_and_layout_do_not_matter():
    x = _case(3, (700, 513), "ties")
    before = refcomp.get_num_threads()
    try:
        outs = []
        for n in (1, 2):
            refcomp.set_num_threads(n)
            outs.append(dynamic_quantize_linear(x, backend="numba")[0])
            outs.append(dynamic_quantize_linear(np.asfortranarray(x), backend="numba")[0])
            outs.append(dynamic_quantize_linear(x[:, ::2], backend="numba")[0])
    finally:
        refcomp.set_num_threads(before)
    want = dynamic_quantize_linear(x, backend="numpy")[0]
    for y in outs[0::3] + outs[1::3]:
        np.testing.assert_array_equal(y, want)
    for y in outs[2::3]:
        np.testing.assert_array_equal(y, dynamic_quantize_linear(x[:, ::2], backend="numpy")[0])


def test_bad_input_is_refused_before_the_kernel():
    with pytest.raises(refcomp.errors.ValidationError, match="x"):
        dynamic_quantize_linear(np.array([1.0, np.nan], np.float32), backend="numba")
    with pytest.raises(refcomp.errors.ShapeError, match="x"):
        dynamic_quantize_linear(np.zeros(0, np.float32), backend="numba")
