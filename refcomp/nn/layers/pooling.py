"""Pooling over 2-D windows: MaxPool2d, AvgPool2d, GlobalAvgPool2d (NCHW).

Window geometry as for Conv2d (kernel k, stride s, padding p, floor mode):
OH = floor((H + 2p − k) / s) + 1. Window (i, j) covers rows i·s − p … i·s − p + k − 1.

MaxPool2d:  y[n,c,i,j] = max_{u,v} xp[n, c, i·s + u, j·s + v], xp padded with −∞.
    The gradient goes to the *first* maximum in row-major (u, v) order (the
    element PyTorch's index selects), so ties do not multiply the gradient:
    dL/dx[window argmax] += dy[n,c,i,j].
AvgPool2d:  y = (1/(kh·kw)) Σ_{u,v} xp[...], xp padded with 0 and the padding
    counted in the divisor (PyTorch count_include_pad=True, ONNX default).
    dL/dxp[i·s + u, j·s + v] += dy[i, j] / (kh·kw).
GlobalAvgPool2d: y[n, c] = mean_{h,w} x[n, c, h, w]  (ONNX GlobalAveragePool, flattened);
    dL/dx = dy / (H·W) broadcast.

All three loop over the kh·kw kernel offsets, each step a vectorised operation
on an (N, C, OH, OW) strided slice — never over samples or output positions.
"""

from __future__ import annotations

import numpy as np

from ...checks import float_tensor, int_pair
from ...errors import ShapeError, ValidationError
from ...formats.qtensor import QTensor
from ..module import Module, register_layer

__all__ = ["MaxPool2d", "AvgPool2d", "GlobalAvgPool2d"]


class _Pool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0):
        self.kernel_size = int_pair(kernel_size, "kernel_size", minimum=1)
        self.stride = self.kernel_size if stride is None else int_pair(stride, "stride", minimum=1)
        self.padding = int_pair(padding, "padding", minimum=0)
        if self.padding[0] * 2 > self.kernel_size[0] or self.padding[1] * 2 > self.kernel_size[1]:
            raise ValidationError("padding", "at most half the kernel size", self.padding)
        self._cache = None

    def config(self) -> dict:
        return {"kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": list(self.padding)}

    def _geometry(self, x):
        x = float_tensor(x, "x", 4)
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        oh = (x.shape[2] + 2 * ph - kh) // sh + 1
        ow = (x.shape[3] + 2 * pw - kw) // sw + 1
        if oh < 1 or ow < 1:
            raise ShapeError("x", f"H, W at least the kernel {self.kernel_size} after padding", x.shape)
        return x, oh, ow

    def _slices(self, oh, ow):
        """For each kernel offset (u, v): the (rows, cols) slices of xp it reads."""
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        for u in range(kh):
            for v in range(kw):
                yield (slice(u, u + sh * (oh - 1) + 1, sh), slice(v, v + sw * (ow - 1) + 1, sw))

    def _disjoint(self) -> bool:
        """Windows do not overlap (stride >= kernel): each input gets at most one
        contribution, so backward assigns instead of accumulating."""
        return self.stride[0] >= self.kernel_size[0] and self.stride[1] >= self.kernel_size[1]

    def _grad_buffer(self, xp_shape, oh, ow, dtype):
        """dL/dxp storage: uninitialised when the windows tile xp exactly (every
        element is then assigned once), zeros otherwise."""
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        if (sh, sw) == (kh, kw) and oh * kh == xp_shape[2] and ow * kw == xp_shape[3]:
            return np.empty(xp_shape, dtype=dtype)
        return np.zeros(xp_shape, dtype=dtype)

    def _pad(self, x, value):
        ph, pw = self.padding
        if ph or pw:
            return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)
        return x

    def _unpad(self, dxp):
        ph, pw = self.padding
        if ph or pw:
            return dxp[:, :, ph:dxp.shape[2] - ph, pw:dxp.shape[3] - pw]
        return dxp


@register_layer
class MaxPool2d(_Pool2d):
    """Max over kernel_size windows; stride defaults to kernel_size."""

    def forward(self, x):
        if isinstance(x, QTensor):
            # dequantization is increasing (s > 0): the max of the codes is the code of the max, same (s, z);
            # 8-bit codes are exact in float32
            return QTensor(self.forward(x.data.astype(np.float32)).astype(x.data.dtype), x.qparams)
        x, oh, ow = self._geometry(x)
        xp = self._pad(x, -np.inf)
        best = idx = None
        for t, (rs, cs) in enumerate(self._slices(oh, ow)):
            s = xp[:, :, rs, cs]
            if best is None:
                best = s.copy()
                small = self.kernel_size[0] * self.kernel_size[1] <= 127
                idx = np.zeros(best.shape, dtype=np.int8 if small else np.int32)
            else:
                take = s > best          # strict: the first maximum keeps the gradient
                np.maximum(best, s, out=best)
                np.copyto(idx, t, where=take)
        self._cache = (xp.shape, idx, (oh, ow))
        return best

    def backward(self, dy):
        self._require_forward(self._cache)
        xp_shape, idx, (oh, ow) = self._cache
        if dy.shape != idx.shape:
            raise ShapeError("dy", f"shape {idx.shape}", dy.shape)
        dxp = self._grad_buffer(xp_shape, oh, ow, dy.dtype)
        for t, (rs, cs) in enumerate(self._slices(oh, ow)):
            if self._disjoint():
                np.multiply(idx == t, dy, out=dxp[:, :, rs, cs])
            else:
                dxp[:, :, rs, cs] += np.where(idx == t, dy, 0)
        return self._unpad(dxp)


@register_layer
class AvgPool2d(_Pool2d):
    """Mean over kernel_size windows, zero padding included in the divisor."""

    def forward(self, x):
        x, oh, ow = self._geometry(x)
        xp = self._pad(x, 0)
        acc = None
        for rs, cs in self._slices(oh, ow):
            acc = xp[:, :, rs, cs].copy() if acc is None else acc + xp[:, :, rs, cs]
        self._cache = (xp.shape, (oh, ow))
        return acc * (1.0 / (self.kernel_size[0] * self.kernel_size[1]))

    def backward(self, dy):
        self._require_forward(self._cache)
        xp_shape, (oh, ow) = self._cache
        if dy.shape != (*xp_shape[:2], oh, ow):
            raise ShapeError("dy", f"shape {(*xp_shape[:2], oh, ow)}", dy.shape)
        g = dy * (1.0 / (self.kernel_size[0] * self.kernel_size[1]))
        dxp = self._grad_buffer(xp_shape, oh, ow, dy.dtype)
        for rs, cs in self._slices(oh, ow):
            if self._disjoint():
                dxp[:, :, rs, cs] = g
            else:
                dxp[:, :, rs, cs] += g
        return self._unpad(dxp)


@register_layer
class GlobalAvgPool2d(Module):
    """(N, C, H, W) -> (N, C): the mean over all spatial positions."""

    def __init__(self):
        self._shape = None

    def forward(self, x):
        x = float_tensor(x, "x", 4)
        self._shape = x.shape
        return x.mean(axis=(2, 3))

    def backward(self, dy):
        self._require_forward(self._shape)
        n, c, h, w = self._shape
        if dy.shape != (n, c):
            raise ShapeError("dy", f"shape {(n, c)}", dy.shape)
        return np.broadcast_to((dy / (h * w))[:, :, None, None], self._shape).copy()
