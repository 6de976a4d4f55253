"""Conv2d: the forward against the cross-correlation written out (scipy.signal for the plain case,
kernel-offset sums for stride, padding, dilation and groups), dL/dx, dL/dW, dL/db against central
differences, the frozen / non-Dense weight, the output size, bad input."""

import numpy as np
import pytest
from scipy import signal

from refcomp.errors import DTypeError, ShapeError, ValidationError
from refcomp.formats import Dense, LowRank, QTensor
from refcomp.formats.base import WeightFormat
from refcomp.nn import Conv2d
from refcomp.quant import QParams

from ..nn_gradcheck import check_input_grad_false, check_layer
from ..._support.helpers import PlainFormat


def _layer(cin, cout, k, stride=1, pad=0, dil=1, groups=1, bias=True, seed=0):
    rng = np.random.default_rng(seed)
    layer = Conv2d(cin, cout, k, stride, pad, dil, groups, bias, dtype="float64")
    layer.weight.data[...] = rng.standard_normal(layer.weight.shape)
    if bias:
        layer.bias.data[...] = rng.standard_normal(cout)
    return layer


def reference_conv(x, w, b, stride, pad, dil, groups):
    """y[n,o,i,j] = b[o] + Σ_{c,u,v} w[o,c,u,v]·xp[n, γ·C/g + c, i·sh + u·dh, j·sw + v·dw], one kernel
    offset (u, v) at a time."""
    n, cin, h, wd = x.shape
    o, cg, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, pad, dil
    xp = np.zeros((n, cin, h + 2 * ph, wd + 2 * pw))
    xp[:, :, ph:ph + h, pw:pw + wd] = x
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    y = np.zeros((n, o, oh, ow)) + (0.0 if b is None else b[None, :, None, None])
    og = o // groups
    for gamma in range(groups):
        xs = xp[:, gamma * cg:(gamma + 1) * cg]
        ws = w[gamma * og:(gamma + 1) * og]
        for u in range(kh):
            for v in range(kw):
                patch = xs[:, :, u * dh:u * dh + sh * (oh - 1) + 1:sh, v * dw:v * dw + sw * (ow - 1) + 1:sw]
                y[:, gamma * og:(gamma + 1) * og] += np.einsum("nchw,oc->nohw", patch, ws[:, :, u, v])
    return y


def test_plain_convolution_is_scipy_correlate():
    layer = _layer(3, 2, (3, 2))
    x = np.random.default_rng(1).standard_normal((2, 3, 6, 5))
    w, b = layer.weight.data, layer.bias.data
    want = np.array([[sum(signal.correlate(x[n, c], w[o, c], mode="valid") for c in range(3)) + b[o]
                      for o in range(2)] for n in range(2)])
    np.testing.assert_allclose(layer.forward(x), want, rtol=1e-12, atol=1e-12)


CASES = [  # cin, cout, kernel, stride, padding, dilation, groups, bias
    (2, 3, (3, 3), (1, 1), (1, 1), (1, 1), 1, True),
    (2, 2, (2, 3), (2, 1), (0, 2), (1, 2), 1, False),
    (4, 6, (3, 2), (1, 2), (2, 1), (2, 1), 2, True),
    (3, 3, (3, 3), (2, 2), (1, 1), (1, 1), 3, True),    # depthwise
    (4, 2, (1, 1), (1, 1), (0, 0), (1, 1), 2, False),
]


@pytest.mark.parametrize("cin, cout, k, s, p, d, g, bias", CASES)
def test_forward_is_the_definition(cin, cout, k, s, p, d, g, bias):
    layer = _layer(cin, cout, k, s, p, d, g, bias, seed=cin + cout)
    x = np.random.default_rng(2).standard_normal((2, cin, 7, 6))
    y = layer.forward(x)
    want = reference_conv(x, layer.weight.data, layer.bias.data if bias else None, s, p, d, g)
    assert y.shape == want.shape == layer.output_shape(x.shape) and y.flags.c_contiguous
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cin, cout, k, s, p, d, g, bias", CASES)
def test_gradients_match_finite_differences(cin, cout, k, s, p, d, g, bias):
    rng = np.random.default_rng(3)
    layer = _layer(cin, cout, k, s, p, d, g, bias, seed=3)
    check_layer(layer, rng.standard_normal((2, cin, 6, 5)), rng, max_coords=40)
    assert layer.weight.grad.shape == layer.weight.shape


@pytest.mark.parametrize("groups", [1, 2])
def test_input_grad_false_gives_the_same_parameter_gradients(groups):
    rng = np.random.default_rng(4)
    layer = _layer(2, 4, 3, pad=1, groups=groups, seed=4)
    x, dy = rng.standard_normal((2, 2, 5, 5)), rng.standard_normal((2, 4, 5, 5))
    check_input_grad_false(layer, x, dy)


@pytest.mark.parametrize("groups", [1, 2])
def test_a_frozen_weight_gets_no_gradient_but_passes_dx(groups):
    rng = np.random.default_rng(5)
    layer = _layer(2, 2, 3, pad=1, groups=groups, seed=5)
    x, dy = rng.standard_normal((1, 2, 4, 4)), rng.standard_normal((1, 2, 4, 4))
    layer.forward(x)
    dx = layer.backward(dy)
    layer.zero_grad()
    layer.weight = Dense(layer.weight.data, trainable=False)
    layer.forward(x)
    np.testing.assert_array_equal(layer.backward(dy), dx)
    assert layer.weight.grad is None
    np.testing.assert_allclose(layer.bias.grad, dy.sum(axis=(0, 2, 3)), rtol=1e-13)
    layer.zero_grad()
    layer.bias = None
    assert layer.backward(dy, input_grad=False) is None and layer.weight.grad is None


def test_a_weight_format_of_kernel_shape_computes_with_its_dense_kernel():
    rng = np.random.default_rng(6)
    layer = _layer(2, 3, 3, pad=1, seed=6)
    x = rng.standard_normal((2, 2, 5, 4))
    layer.weight = LowRank(rng.standard_normal((3, 2)), rng.standard_normal((2, 18)), shape=(3, 2, 3, 3))
    w = layer.weight.to_dense()
    assert layer.weight.shape == (3, 2, 3, 3)
    want = reference_conv(x, w, layer.bias.data, (1, 1), (1, 1), (1, 1), 1)
    np.testing.assert_allclose(layer.forward(x), want, rtol=1e-10, atol=1e-10)


class _Spy(WeightFormat):
    """A 2-D (O, C·kh·kw) weight that records which of its methods a layer calls."""

    def __init__(self, w):
        self.w, self.shape, self.used = w, w.shape, []

    def to_dense(self):
        self.used.append("to_dense")
        return self.w

    def matmul(self, x):
        self.used.append("matmul")
        return x @ self.w.T

    nbytes = property(lambda self: self.w.nbytes)


class _SpyDense(Dense):
    def matmul(self, x):
        self.used = "matmul"
        return super().matmul(x)


def test_the_forward_product_goes_through_the_format():
    """g = 1: W.matmul(cols) for a Dense kernel or a format stored as the (O, C·kh·kw) matrix."""
    rng = np.random.default_rng(7)
    w = rng.standard_normal((3, 2, 3, 3))
    x = rng.standard_normal((2, 2, 5, 4))
    want = reference_conv(x, w, None, (1, 1), (1, 1), (1, 1), 1)
    layer = Conv2d(2, 3, 3, padding=1, bias=False, dtype="float64")
    layer.weight = _Spy(w.reshape(3, 18))
    np.testing.assert_allclose(layer.forward(x), want, rtol=1e-12, atol=1e-12)
    assert layer.weight.used == ["matmul"]
    layer.weight = _SpyDense(w)
    np.testing.assert_allclose(layer.forward(x), want, rtol=1e-12, atol=1e-12)
    assert layer.weight.used == "matmul"


@pytest.mark.parametrize("groups", [1, 2])
def test_a_format_without_dtype_or_trainable_flag(groups):
    rng = np.random.default_rng(8)
    layer = Conv2d(2, 2, 3, padding=1, groups=groups, dtype="float64")
    w = rng.standard_normal(layer.weight.shape)
    layer.weight = PlainFormat(w)
    assert layer.config()["dtype"] == "float32"                    # the default
    x, dy = rng.standard_normal((1, 2, 4, 4)), rng.standard_normal((1, 2, 4, 4))
    want = reference_conv(x, w, layer.bias.data, (1, 1), (1, 1), (1, 1), groups)
    np.testing.assert_allclose(layer.forward(x), want, rtol=1e-12, atol=1e-12)
    layer.backward(dy)
    assert not hasattr(layer.weight, "grad")                      # not trainable unless it says so


def test_codes_in_codes_out():
    """A QTensor input runs the integer layer with the layer's stride, padding, dilation and groups."""
    layer = Conv2d(2, 2, (1, 2), stride=(1, 2), padding=(1, 0), dilation=(1, 2), groups=2, bias=False,
                   output_qparams={"scale": 1.0, "zero_point": 0, "dtype": "int8"})
    layer.weight = QTensor(np.array([[[[1, 2]]], [[[-1, 1]]]], np.int8),
                           QParams(np.float32(1), np.array(0, np.int8), "int8"))
    codes = np.arange(1, 17, dtype=np.int8).reshape(1, 2, 2, 4)
    y = layer.forward(QTensor(codes, QParams(np.float32(1), np.array(0, np.int8), "int8")))
    assert isinstance(y, QTensor) and y.data.dtype == np.int8
    want = reference_conv(codes.astype(np.float64), layer.weight.data.astype(np.float64), None,
                          (1, 2), (1, 0), (1, 2), 2)
    np.testing.assert_array_equal(y.data, want)


def test_output_size_and_config():
    layer = Conv2d(2, 4, (3, 5), stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2)
    # OH = ⌊(H + 2·ph − dh·(kh − 1) − 1) / sh⌋ + 1
    assert layer.output_shape((3, 2, 9, 12)) == (3, 4, (9 + 2 - 2 - 1) // 2 + 1, (12 - 8 - 1) // 1 + 1)
    assert layer.config() == {"in_channels": 2, "out_channels": 4, "kernel_size": [3, 5], "stride": [2, 1],
                              "padding": [1, 0], "dilation": [1, 2], "groups": 2, "bias": True,
                              "dtype": "float32"}
    qp = {"scale": 0.5, "zero_point": 3, "dtype": "uint8"}
    c = Conv2d(1, 1, 1, bias=False, dtype="float64", output_qparams=qp, requantize="float").config()
    assert c["output_qparams"] == qp and c["requantize"] == "float" and c["dtype"] == "float64"
    assert c["bias"] is False and Conv2d(1, 1, 1, bias=False).bias is None
    assert Conv2d(1, 1, 1).output_qparams is None and Conv2d(1, 1, 1).requantize == "fixed_point"


def test_initial_weights():
    for layer in (Conv2d(2, 4, 3), Conv2d(2, 4, 3, rng=0)):
        assert layer.weight.dtype == np.float32 and layer.bias.data.dtype == np.float32
    one = Conv2d(1, 1, 1, rng=0)                                   # the smallest layer
    assert one.forward(np.ones((1, 1, 1, 1), np.float32)).shape == (1, 1, 1, 1)
    z = Conv2d(2, 4, 3, groups=2)
    assert z.weight.shape == (4, 1, 3, 3) and np.all(z.weight.data == 0) and np.all(z.bias.data == 0)
    a = Conv2d(4, 6, 3, groups=2, rng=0)
    bound = 1 / np.sqrt(2 * 9)                     # fan_in = C/g·kh·kw
    assert 0.9 * bound < np.abs(a.weight.data).max() <= bound and 0 < np.abs(a.bias.data).max() <= bound
    g = Conv2d(4, 6, 3, groups=2, rng=0, init="glorot_uniform")
    bound = np.sqrt(6 / (2 * 9 + 3 * 9))           # fan_out = O/g·kh·kw
    assert 0.9 * bound < np.abs(g.weight.data).max() <= bound


def test_bad_input_is_named():
    with pytest.raises(ValidationError, match="^groups:"):
        Conv2d(4, 6, 3, groups=4)
    with pytest.raises(ValidationError, match="^groups:"):
        Conv2d(6, 4, 3, groups=4)
    with pytest.raises(ValidationError, match="^output_qparams:"):
        Conv2d(2, 2, 1, output_qparams={"scale": 0.5, "zero_point": 0, "dtype": "int32"})
    for name, kw in (("in_channels", {"in_channels": 0}), ("out_channels", {"out_channels": 0}),
                     ("groups", {"groups": 0}), ("kernel_size", {"kernel_size": 0}), ("stride", {"stride": 0}),
                     ("padding", {"padding": -1}), ("dilation", {"dilation": 0})):
        with pytest.raises(ValidationError, match=f"^{name}"):
            Conv2d(**{"in_channels": 2, "out_channels": 2, "kernel_size": 1, **kw})
    layer = _layer(2, 2, 3)
    with pytest.raises(ValidationError, match="^backward:"):
        layer.backward(np.ones((1, 2, 1, 1)))
    with pytest.raises(ShapeError, match="^x:"):
        layer.forward(np.ones((1, 3, 5, 5)))
    with pytest.raises(ShapeError, match="^x:"):
        layer.forward(np.ones((1, 2, 2, 5)))
    with pytest.raises(ShapeError, match="^x:"):
        layer.forward(np.ones((1, 2, 5, 2)))
    with pytest.raises(ShapeError, match="^x:"):
        layer.forward(np.ones((2, 5, 5)))
    with pytest.raises(DTypeError, match="^x:"):
        layer.forward(np.ones((1, 2, 5, 5), np.int32))
    layer.forward(np.ones((1, 2, 3, 3)))                # the smallest input: a 1 × 1 output
    with pytest.raises(ShapeError, match="^dy:"):
        layer.backward(np.ones((1, 2, 2, 1)))
