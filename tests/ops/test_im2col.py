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
