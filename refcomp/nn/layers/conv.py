"""Conv2d: 2-D cross-correlation with stride, zero padding, dilation and groups.

Shapes (NCHW): x (N, C, H, W), weight (O, C/g, kh, kw), bias (O,), y (N, O, OH, OW)
with, per spatial axis (PyTorch / ONNX Conv with explicit pads),

    OH = floor((H + 2·ph − dh·(kh − 1) − 1) / sh) + 1.

Definition (group γ = o // (O/g) reads input channels γ·C/g … (γ+1)·C/g − 1):

    y[n, o, i, j] = b[o] + Σ_{c, u, v} w[o, c, u, v] · xp[n, γ·C/g + c, i·sh + u·dh, j·sw + v·dw]

where xp is x padded with ph / pw zeros on each side.

How it is computed (im2col, Chellapilla et al. 2006; refcomp.ops.im2col): a strided view of xp
lists every receptive field, copied once into the matrix

    cols[(n, i, j), (c, u, v)] = xp[n, c, i·sh + u·dh, j·sw + v·dw]     (N·OH·OW, C·kh·kw)

so the convolution is one BLAS matrix product ``y = cols · W2ᵀ`` with W2 the
(O, C/g·kh·kw) weight matrix (one product per group when g > 1).

Backward, dy of shape (N, O, OH, OW) flattened to dy2 (N·OH·OW, O):

    dL/dW2   = dy2ᵀ · cols
    dL/db    = Σ_{n,i,j} dy[n, :, i, j]
    dL/dcols = dy2 · W2
    dL/dx    = col2im(dL/dcols): each (u, v) kernel offset adds its column slab
               back onto the strided positions it was read from — a loop over
               the kh·kw offsets (not over samples), the adjoint of im2col.
               (dL/dcols is formed with columns in (i, j, n) order for speed;
               see col2im.)

The weight is a WeightFormat; with g = 1 the forward product goes through
``W.matmul(cols)`` (im2col form, see refcomp.formats.dense).

Given a QTensor input (inside an integer-only model), a layer with a QTensor
weight and ``output_qparams`` maps codes to codes in integers
(refcomp.nn.layers.quantize).
"""

from __future__ import annotations

import numpy as np

from ...checks import float_tensor, int_pair, integer
from ...errors import ShapeError, ValidationError
from ...formats.base import WeightFormat
from ...formats.dense import Dense
from ...formats.qtensor import QTensor
from ...ops.im2col import col2im, conv_output_size, im2col
from ..init import allocate, init_bias, init_weight
from ..module import Module, Parameter, _accumulate, as_rng, register_layer
from ...ops.integer_linear import check_requantize
from .quantize import activation_config, check_activation_qparams, integer_forward

__all__ = ["Conv2d"]


@register_layer
class Conv2d(Module):
    """2-D convolution (cross-correlation), NCHW.

    Parameters
    ----------
    in_channels, out_channels : both divisible by ``groups``.
    kernel_size, stride, dilation : int or (h, w) pair, >= 1.
    padding : int or (h, w) pair, >= 0, zeros added on both sides.
    groups : 1 = dense, in_channels = depthwise.
    bias, rng, init, dtype, output_qparams, requantize : as for Linear (rng None gives zeros).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, *, rng=None,
                 init: str = "uniform_fan_in", dtype="float32", output_qparams=None,
                 requantize: str = "fixed_point"):
        self.in_channels = integer(in_channels, "in_channels", minimum=1)
        self.out_channels = integer(out_channels, "out_channels", minimum=1)
        self.groups = integer(groups, "groups", minimum=1)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValidationError("groups", "a divisor of in_channels and out_channels",
                                  f"groups={groups}, in={in_channels}, out={out_channels}")
        self.kernel_size = int_pair(kernel_size, "kernel_size", minimum=1)
        self.stride = int_pair(stride, "stride", minimum=1)
        self.padding = int_pair(padding, "padding", minimum=0)
        self.dilation = int_pair(dilation, "dilation", minimum=1)
        dtype = np.dtype(dtype)
        kh, kw = self.kernel_size
        cg = self.in_channels // self.groups
        shape = (self.out_channels, cg, kh, kw)
        fan_in = cg * kh * kw
        fan_out = self.out_channels // self.groups * kh * kw
        if rng is None:
            w, b = allocate(shape, dtype), allocate(self.out_channels, dtype)
        else:
            g = as_rng(rng)
            w = init_weight(shape, fan_in, fan_out, init, g, dtype)
            b = init_bias(self.out_channels, fan_in, init, g, dtype)
        self.weight: WeightFormat = Dense(w)
        self.bias = Parameter(b) if bias else None
        # the QParams of the output codes when the layer runs on QTensor inputs (integer-only model)
        self.output_qparams = None if output_qparams is None else check_activation_qparams(output_qparams,
                                                                                           "output_qparams")
        self.requantize = check_requantize(requantize)
        self._cache = None

    accepts_input_grad = True
    requantize = "fixed_point"  # class default, as for output_qparams
    output_qparams = None       # set in __init__; the class default keeps copies made without it valid

    def config(self) -> dict:
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": list(self.padding), "dilation": list(self.dilation),
                "groups": self.groups, "bias": self.bias is not None,
                "dtype": str(getattr(self.weight, "dtype", np.dtype(np.float32))),
                **({} if self.output_qparams is None else {"output_qparams": activation_config(self.output_qparams)}),
                **({} if self.requantize == "fixed_point" else {"requantize": self.requantize})}

    def output_shape(self, x_shape) -> tuple[int, int, int, int]:
        n, _, h, w = x_shape
        oh = conv_output_size(h, self.kernel_size[0], self.stride[0], self.padding[0], self.dilation[0])
        ow = conv_output_size(w, self.kernel_size[1], self.stride[1], self.padding[1], self.dilation[1])
        return n, self.out_channels, oh, ow

    def _weight_matmul(self, cols):
        """cols · W2ᵀ through the format when it can (Dense, or any format stored as the
        2-D (O, C·kh·kw) matrix); a format of logical shape (O, C, kh, kw) whose matmul
        only knows 2-D weights is decoded with to_dense()."""
        w = self.weight
        if isinstance(w, Dense) or len(w.shape) == 2:
            return w.matmul(cols)
        return cols @ w.to_dense().reshape(self.out_channels, -1).T

    def forward(self, x):
        if isinstance(x, QTensor):
            return integer_forward(self, x, conv={"strides": self.stride, "pads": self.padding,
                                                  "dilations": self.dilation, "group": self.groups})
        x = float_tensor(x, "x", 4)
        if x.shape[1] != self.in_channels:
            raise ShapeError("x", f"(N, {self.in_channels}, H, W)", f"shape {x.shape}")
        n, o, oh, ow = self.output_shape(x.shape)
        if oh < 1 or ow < 1:
            raise ShapeError("x", "spatial size at least the dilated kernel after padding", f"shape {x.shape}")
        ph, pw = self.padding
        xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x
        colsT = im2col(xp, self.kernel_size, self.stride, self.dilation, (oh, ow))  # (K, N·OH·OW)
        g = self.groups
        if g == 1:
            # through the weight format: (N·OH·OW, K) · W2ᵀ -> (N·OH·OW, O)
            y2 = self._weight_matmul(colsT.T)
            if self.bias is not None:
                y2 += self.bias.data
            y = y2.reshape(n, oh, ow, o).transpose(0, 3, 1, 2)
        else:
            wg = self.weight.to_dense().reshape(g, o // g, -1)              # (g, O/g, Kg)
            yT = np.matmul(wg, colsT.reshape(g, -1, colsT.shape[1]))         # (g, O/g, N·OH·OW)
            yT = yT.reshape(o, n, oh, ow)
            if self.bias is not None:
                yT += self.bias.data.reshape(o, 1, 1, 1)
            y = yT.transpose(1, 0, 2, 3)
        self._cache = (colsT, xp.shape, (oh, ow))
        return np.ascontiguousarray(y)

    def backward(self, dy, *, input_grad: bool = True):
        """dL/dx (None when ``input_grad`` is False: the first layer's dx is not needed)."""
        self._require_forward(self._cache)
        colsT, xp_shape, (oh, ow) = self._cache
        n = xp_shape[0]
        o, g = self.out_channels, self.groups
        if dy.shape != (n, o, oh, ow):
            raise ShapeError("dy", f"shape {(n, o, oh, ow)}", dy.shape)
        dyT = dy.transpose(1, 0, 2, 3).reshape(o, -1)                        # (O, N·OH·OW)
        trainable = getattr(self.weight, "trainable", False)
        if self.bias is not None:
            _accumulate(self.bias, dyT.sum(axis=1))
        if not (trainable or input_grad):
            return None
        w = self.weight.to_dense()
        # dL/dcols is produced with its columns in (i, j, n) order, the layout col2im adds fastest
        dy_ijn = dy.transpose(1, 2, 3, 0).reshape(o, -1) if input_grad else None
        if g == 1:
            if trainable:
                _accumulate(self.weight, (dyT @ colsT.T).reshape(w.shape))
            if not input_grad:
                return None
            dcolsT = w.reshape(o, -1).T @ dy_ijn                             # (K, OH·OW·N)
        else:
            wg = w.reshape(g, o // g, -1)
            if trainable:
                dyg = dyT.reshape(g, o // g, -1)                              # (g, O/g, N·OH·OW)
                cg = colsT.reshape(g, -1, colsT.shape[1])                      # (g, Kg, N·OH·OW)
                _accumulate(self.weight, np.matmul(dyg, cg.transpose(0, 2, 1)).reshape(w.shape))
            if not input_grad:
                return None
            dcolsT = np.matmul(wg.transpose(0, 2, 1), dy_ijn.reshape(g, o // g, -1)).reshape(colsT.shape[0], -1)
        dxp = col2im(dcolsT, xp_shape, self.kernel_size, self.stride, self.dilation, (oh, ow))
        ph, pw = self.padding
        return dxp[:, :, ph:xp_shape[2] - ph, pw:xp_shape[3] - pw] if ph or pw else dxp
