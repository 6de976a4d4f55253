"""RTN on the grid: codes, rounding, groups, bad input."""

import numpy as np
import pytest
from hypothesis import given, settings

from refcomp.compress.quantize import rtn_quantize
from refcomp.compress.quantize.grid import code_range
from refcomp.errors import ShapeError, ValidationError
from refcomp.formats import QTensor
from refcomp.quant import QParams

from .cases import _weights, grids


@settings(max_examples=60)
@given(grids)
def test_rtn_codes_lie_on_the_grid_and_round_to_nearest(case):
    out, n_in, bits, gs, sym, seed = case
    w = _weights(out, n_in, seed)
    q = rtn_quantize(w, bits=bits, group_size=gs, symmetric=sym)
    qmin, qmax = code_range(bits, sym)
    assert isinstance(q, QTensor) and q.shape == w.shape
    width = {2: 2, 3: 4, 4: 4, 8: 8}[bits]  # the smallest dtype that holds b-bit codes
    assert q.qparams.dtype.name == ("int" if sym else "uint") + str(width)
    assert (q.qparams.qmin, q.qparams.qmax) == (qmin, qmax)
    codes = q.data.astype(np.int64)
    assert codes.min() >= qmin and codes.max() <= qmax
    s, z = q.qparams.expand(w.shape)
    s, z = np.broadcast_to(s.astype(np.float64), w.shape), np.broadcast_to(z, w.shape)
    w_hat = q.to_dense().astype(np.float64)
    # on the grid: ŵ/s is an integer minus z (up to the float32 rounding of ŵ)
    k = w_hat / s
    assert np.all(np.abs(k - np.rint(k)) <= 2.0**-22 * (1 + np.abs(k)))
    assert np.all((np.rint(k) + z >= qmin) & (np.rint(k) + z <= qmax))
    # nearest grid point: |w − ŵ| <= s/2 (plus the float32 rounding of s, which can clip the extreme by ~1e-7·s)
    err = np.abs(w.astype(np.float64) - w_hat)
    assert np.all(err <= s * (0.5 + 1e-5) + 1e-30)
    if sym:
        assert np.all(q.qparams.zero_point.astype(np.int64) == 0)
        assert codes.min() >= -(2 ** (bits - 1) - 1)  # symmetric scale never reaches −2^(b−1)


def test_rtn_int8_per_channel_by_hand():
    w = np.array([[1.27, -0.5, 0.005], [0.0, 0.0, 0.0]], dtype=np.float32)
    q = rtn_quantize(w, bits=8)
    assert q.qparams.per_axis and q.qparams.axis == 0  # per channel: one scale per row
    assert q.qparams.scale.shape == (2,) and q.qparams.scale[0] == np.float32(1.27 / 127)
    assert q.qparams.scale[1] == 1.0  # all-zero row: scale 1, codes 0
    assert q.data.dtype == np.int8
    np.testing.assert_array_equal(q.data, [[127, -50, 0], [0, 0, 0]])


def test_rtn_round_half_to_even_and_asymmetric_zero_point():
    # s = 1 exactly (max |w| = 7 at 4 bits): 2.5 -> 2, 3.5 -> 4, -0.5 -> -0
    q = rtn_quantize(np.array([[7.0, 2.5, 3.5, -0.5]]), bits=4)
    np.testing.assert_array_equal(q.data.astype(np.int64), [[7, 2, 4, 0]])
    # asymmetric [-1, 14] at 4 bits: s = 1, z = 1; 0 is exact
    qa = rtn_quantize(np.array([[-1.0, 0.0, 14.0, 6.5]]), bits=4, symmetric=False)
    assert int(qa.qparams.zero_point[0]) == 1 and qa.qparams.scale[0] == 1.0
    np.testing.assert_array_equal(qa.data.astype(np.int64), [[0, 1, 15, 7]])
    np.testing.assert_array_equal(qa.to_dense(), [[-1.0, 0.0, 14.0, 6.0]])



# saturation: with half-to-even rounding the two ends of an asymmetric range can round apart, so
# the top of the range lands one code past qmax and must be clipped back onto the grid
@pytest.mark.parametrize("bits, hi", [(4, 13.5), (8, 253.5)])
def test_rtn_asymmetric_top_of_range_saturates_at_qmax(bits, hi):
    # [-1.5, hi] spans 2^b − 1 steps of s = 1 exactly; z = 0 − rint(−1.5) = 2, and rint(hi) + 2 = 2^b
    q = rtn_quantize(np.array([[-1.5, 0.0, hi]]), bits=bits, symmetric=False)
    assert q.qparams.scale[0] == 1.0 and int(q.qparams.zero_point[0]) == 2
    qmax = 2**bits - 1
    np.testing.assert_array_equal(q.data.astype(np.int64), [[0, 2, qmax]])
    np.testing.assert_array_equal(q.to_dense(), [[-2.0, 0.0, qmax - 2.0]])  # hi − 0.5: still within s/2


# the input: only read, and its float dtype does not matter (the codes are those of its values)
def test_rtn_leaves_w_untouched_and_ignores_its_dtype():
    def same(a, b):
        for x, y in ((a.data, b.data), (a.qparams.scale, b.qparams.scale), (a.qparams.zero_point, b.qparams.zero_point)):
            np.testing.assert_array_equal(x, y)

    w = _weights(5, 40, 3)
    before = w.copy()
    q = rtn_quantize(w, bits=4, group_size=8, symmetric=False)
    np.testing.assert_array_equal(w, before)
    same(q, rtn_quantize(w.astype(np.float64), bits=4, group_size=8, symmetric=False))
    w16 = w.astype(np.float16)
    same(rtn_quantize(w16, bits=4), rtn_quantize(w16.astype(np.float64), bits=4))
    wi = np.array([[-3, 0, 5, 12]], dtype=np.int32)
    same(rtn_quantize(wi, bits=4, symmetric=False), rtn_quantize(wi.astype(np.float64), bits=4, symmetric=False))

def test_rtn_int4_groups_layout_and_bytes():
    w = _weights(16, 300, 1)
    q = rtn_quantize(w, bits=4, group_size=128)
    qp = q.qparams
    assert qp.per_block and (qp.axis, qp.block_size) == (1, 128)  # the ONNX blocked layout
    assert qp.scale.shape == (16, 3)  # 128 + 128 + 44 columns
    scale, _ = qp.expand(w.shape)
    assert scale.shape == w.shape
    # columns 0, 127 | 128, 255 | 256, 299 use scales 0 | 1 | 2
    np.testing.assert_array_equal(scale[0, [0, 127, 128, 255, 256, 299]], qp.scale[0, [0, 0, 1, 1, 2, 2]])
    # group 2 gets its scale from its own 44 columns only
    assert qp.scale[0, 2] == np.float32(np.max(np.abs(w[0, 256:].astype(np.float64))) / 7)
    assert q.nbytes == 16 * 300 * 4 // 8 + 16 * 3 * 4


@pytest.mark.parametrize("kwargs, exc", [
    (dict(bits=9), ValidationError),
    (dict(bits=1), ValidationError),
    (dict(group_size=0), ValidationError),
    (dict(group_size=2.5), ValidationError),
])
def test_rtn_rejects_bad_arguments(kwargs, exc):
    with pytest.raises(exc, match=next(iter(kwargs))):
        rtn_quantize(np.ones((2, 4)), **kwargs)


def test_rtn_rejects_bad_weights():
    with pytest.raises(ShapeError, match="w"):
        rtn_quantize(np.ones(4))
    with pytest.raises(ValidationError, match="finite"):
        rtn_quantize(np.array([[1.0, np.nan]]))
    with pytest.raises(ShapeError, match="w"):
        rtn_quantize(np.ones((2, 0)))
    # a range whose scale overflows float32 is the weights' fault, named as such (not choose_qparams' max_val)
    with pytest.raises(ValidationError, match=r"^w: .*float32 scale") as e:
        rtn_quantize(np.array([[1e39, 0.0]]), bits=2)
    assert e.value.argument == "w"
    # the layout RTN returns is checked where it is built: a scale per (row, group) of 4 columns
    with pytest.raises(ShapeError, match="block_size"):
        QTensor(np.zeros((2, 4), np.int8), QParams(np.ones((2, 2), np.float32), None, "int8", axis=1, block_size=4))
