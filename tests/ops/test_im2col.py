"""im2col against the definition written out as loops; col2im is its adjoint."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp.ops.im2col import col2im, conv_output_size, im2col

geometry = st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(3, 7), st.integers(3, 7),   # n, c, hp, wp
                     st.integers(1, 3), st.integers(1, 3), st.integers(1, 2), st.integers(1, 2),   # kh, kw, sh, sw
                     st.integers(1, 2), st.integers(1, 2), st.integers(0, 2**31 - 1))              # dh, dw, seed


def _case(g):
    n, c, hp, wp, kh, kw, sh, sw, dh, dw, seed = g
    oh, ow = conv_output_size(hp, kh, sh, 0, dh), conv_output_size(wp, kw, sw, 0, dw)
    xp = np.random.default_rng(seed).standard_normal((n, c, hp, wp))
    return xp, (kh, kw), (sh, sw), (dh, dw), (oh, ow)


@settings(max_examples=60)
@given(geometry)
def test_im2col_is_the_receptive_fields(g):
    xp, (kh, kw), (sh, sw), (dh, dw), (oh, ow) = _case(g)
    if oh < 1 or ow < 1:
        return
    n, c = xp.shape[:2]
    want = np.empty((c * kh * kw, n * oh * ow))
    for ci in range(c):
        for u in range(kh):
            for v in range(kw):
                for ni in range(n):
                    for i in range(oh):
                        for j in range(ow):
                            want[(ci * kh + u) * kw + v, (ni * oh + i) * ow + j] = xp[ni, ci, i * sh + u * dh, j * sw + v * dw]
    np.testing.assert_array_equal(im2col(xp, (kh, kw), (sh, sw), (dh, dw), (oh, ow)), want)


@settings(max_examples=60)
@given(geometry)
def test_col2im_is_the_adjoint(g):
    """<im2col(x), d> = <x, col2im(d)> for every x and d (d's columns in col2im's (i, j, n) order)."""
    xp, kernel, stride, dilation, (oh, ow) = _case(g)
    if oh < 1 or ow < 1:
        return
    n, c = xp.shape[:2]
    cols = im2col(xp, kernel, stride, dilation, (oh, ow))                       # (C·kh·kw, (n, i, j))
    d = np.random.default_rng(1).standard_normal(cols.shape)
    d_ijn = d.reshape(-1, n, oh, ow).transpose(0, 2, 3, 1).reshape(cols.shape[0], -1)
    back = col2im(d_ijn, xp.shape, kernel, stride, dilation, (oh, ow))
    np.testing.assert_allclose(np.sum(cols * d), np.sum(xp * back), rtol=1e-10, atol=1e-10)


# --- conv_output_size counts the windows; col2im keeps the dtype; im2col never aliases xp writably

@given(st.integers(1, 12), st.integers(1, 4), st.integers(1, 3), st.integers(0, 3), st.integers(1, 3))
def test_conv_output_size_counts_the_windows_that_fit(size, k, stride, pad, dilation):
    """The number of i ≥ 0 whose window i·s, i·s + d, …, i·s + d·(k − 1) lies inside the padded size
    (below 1 when none fits: the callers refuse that geometry)."""
    fits = [i for i in range(size + 2 * pad + 1) if i * stride + dilation * (k - 1) <= size + 2 * pad - 1]
    got = conv_output_size(size, k, stride, pad, dilation)
    assert got == len(fits) if fits else got < 1


def test_conv_output_size_hand_cases():
    assert conv_output_size(5, 3, 1, 1, 1) == 5          # "same" padding
    assert conv_output_size(7, 3, 2, 0, 1) == 3
    assert conv_output_size(7, 3, 1, 0, 2) == 3          # dilated: the window spans 5
    assert conv_output_size(4, 2, 2, 1, 1) == 3


def test_col2im_keeps_the_dtype_and_sums_exactly():
    """col2im of all-ones counts how many receptive fields read each position, in the given dtype."""
    n, c, hp, wp, kh, kw, sh, sw = 2, 1, 5, 4, 3, 2, 1, 2
    oh, ow = conv_output_size(hp, kh, sh, 0, 1), conv_output_size(wp, kw, sw, 0, 1)
    count = np.zeros((n, c, hp, wp), np.int64)
    for i in range(oh):
        for j in range(ow):
            count[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw] += 1
    for dtype in (np.float32, np.int32, np.float64):
        back = col2im(np.ones((c * kh * kw, oh * ow * n), dtype), (n, c, hp, wp), (kh, kw), (sh, sw), (1, 1), (oh, ow))
        assert back.dtype == dtype and back.flags.c_contiguous
        np.testing.assert_array_equal(back, count)


def test_im2col_result_is_never_a_writable_view_of_the_input():
    """A 1×1 kernel at stride 1 tiles xp: the reshape may then return a view, which must be read-only."""
    for shape in ((1, 1, 3, 4), (2, 3, 3, 4)):
        xp = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
        cols = im2col(xp, (1, 1), (1, 1), (1, 1), shape[2:])
        assert not (np.shares_memory(cols, xp) and cols.flags.writeable)
        np.testing.assert_array_equal(cols, xp.transpose(1, 0, 2, 3).reshape(shape[1], -1))
