"""im2col / col2im: the lowering of a 2-D convolution to one matrix product, and its adjoint.

Shapes (NCHW): xp the input padded with ph / pw on each side (N, C, Hp, Wp),
kernel (kh, kw), stride (sh, sw), dilation (dh, dw), output (OH, OW) with

    OH = floor((H + 2·ph − dh·(kh − 1) − 1) / sh) + 1                        (conv_output_size)

im2col lists every receptive field as a column (Chellapilla, Puri, Simard 2006):

    colsᵀ[(c, u, v), (n, i, j)] = xp[n, c, i·sh + u·dh, j·sw + v·dw]         (C·kh·kw, N·OH·OW)

so a convolution with weight W (O, C, kh, kw) is the product ``colsᵀᵀ · W2ᵀ``
with W2 its (O, C·kh·kw) matrix: in floats for refcomp.nn.Conv2d, in integers
(codes padded with the input zero point, then refcomp.ops.matmul_integer) for
the integer-only model, where it equals refcomp.ops.conv_integer exactly
(tested). col2im is the adjoint: it sums each entry of dL/dcolsᵀ back onto the
position of xp it was read from (Conv2d's backward). Exact copies and sums of
the given dtype; no rounding beyond the dtype's own additions in col2im.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

__all__ = ["conv_output_size", "im2col", "col2im"]


def conv_output_size(size: int, k: int, stride: int, pad: int, dilation: int) -> int:
    """floor((size + 2·pad − dilation·(k − 1) − 1) / stride) + 1."""
    return (size + 2 * pad - dilation * (k - 1) - 1) // stride + 1


def im2col(xp: np.ndarray, kernel, stride, dilation, out_hw) -> np.ndarray:
    """Receptive fields of padded xp (N, C, Hp, Wp) as the (C·kh·kw, N·OH·OW) matrix colsᵀ.

    Row (c, u, v), column (n, i, j) holds xp[n, c, i·sh + u·dh, j·sw + v·dw]. This
    transposed layout is copied with contiguous runs along j (the textbook
    (N·OH·OW, C·kh·kw) order would copy runs of kw); ``colsT.T`` is the textbook
    cols matrix, as a view. colsᵀ is a copy, except when the fields tile xp (a 1×1
    kernel at stride 1): then it is a read-only view of xp, never a writable one.
    """
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_hw
    n, c = xp.shape[:2]
    s_n, s_c, s_h, s_w = xp.strides
    view = as_strided(xp, shape=(c, kh, kw, n, oh, ow),
                      strides=(s_c, s_h * dh, s_w * dw, s_n, s_h * sh, s_w * sw), writeable=False)
    return view.reshape(c * kh * kw, n * oh * ow)


def col2im(dcolsT: np.ndarray, xp_shape, kernel, stride, dilation, out_hw) -> np.ndarray:
    """Adjoint of im2col: sum every entry of dL/dcolsᵀ back onto the xp position it was read from.

    ``dcolsT`` is (C·kh·kw, OH·OW·N) with its columns ordered (i, j, n) — sample
    index fastest — so that each kernel offset (u, v) adds one (C, OH, OW, N)
    slab into a (C, Hp, Wp, N) buffer whose innermost runs are OW·N elements
    long (NumPy's per-run overhead then vanishes). Returns dL/dxp (N, C, Hp, Wp),
    C-contiguous.
    """
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_hw
    n, c, hp, wp = xp_shape
    dxp = np.zeros((c, hp, wp, n), dtype=dcolsT.dtype)
    d6 = dcolsT.reshape(c, kh, kw, oh, ow, n)
    for u in range(kh):
        hs = u * dh
        for v in range(kw):
            ws = v * dw
            dxp[:, hs:hs + sh * (oh - 1) + 1:sh, ws:ws + sw * (ow - 1) + 1:sw, :] += d6[:, u, v]
    return np.ascontiguousarray(dxp.transpose(3, 0, 1, 2))
