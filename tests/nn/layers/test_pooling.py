"""MaxPool2d, AvgPool2d, GlobalAvgPool2d: the forward against window loops, the backward against the
rule of the module docstring (the first maximum takes the gradient; 1/(kh·kw) to each window
element) and central differences, for overlapping, tiling and gapped windows; codes; bad input."""

import numpy as np
import pytest

from refcomp.errors import DTypeError, ShapeError, ValidationError
from refcomp.formats import QTensor
from refcomp.nn import AvgPool2d, GlobalAvgPool2d, MaxPool2d
from refcomp.quant import QParams

from ..nn_gradcheck import check_layer


def windows(x, k, s, p, fill):
    """{(i, j): (rows, cols, the window of xp)} for every output position, by loops."""
    n, c, h, w = x.shape
    xp = np.full((n, c, h + 2 * p[0], w + 2 * p[1]), fill)
    xp[:, :, p[0]:p[0] + h, p[1]:p[1] + w] = x
    oh, ow = (h + 2 * p[0] - k[0]) // s[0] + 1, (w + 2 * p[1] - k[1]) // s[1] + 1
    return xp, {(i, j): (i * s[0], j * s[1], xp[:, :, i * s[0]:i * s[0] + k[0], j * s[1]:j * s[1] + k[1]])
                for i in range(oh) for j in range(ow)}, (oh, ow)


def reference_max(x, dy, k, s, p):
    """y = window max; dL/dx: dy to the first maximum of each window (row-major order)."""
    xp, win, (oh, ow) = windows(x, k, s, p, -np.inf)
    y = np.empty(x.shape[:2] + (oh, ow))
    dxp = np.zeros(xp.shape)
    for (i, j), (r, c, w) in win.items():
        for a in range(x.shape[0]):
            for b in range(x.shape[1]):
                flat = w[a, b].reshape(-1)
                t = int(np.argmax(flat))                    # numpy's argmax: the first maximum
                y[a, b, i, j] = flat[t]
                dxp[a, b, r + t // k[1], c + t % k[1]] += dy[a, b, i, j]
    return y, dxp[:, :, p[0]:p[0] + x.shape[2], p[1]:p[1] + x.shape[3]]


def reference_avg(x, dy, k, s, p):
    """y = window sum / (kh·kw) (padding counted); dL/dx: dy / (kh·kw) to every window element."""
    xp, win, (oh, ow) = windows(x, k, s, p, 0.0)
    y = np.empty(x.shape[:2] + (oh, ow))
    dxp = np.zeros(xp.shape)
    for (i, j), (r, c, w) in win.items():
        y[:, :, i, j] = w.sum(axis=(2, 3)) / (k[0] * k[1])
        dxp[:, :, r:r + k[0], c:c + k[1]] += dy[:, :, i, j, None, None] / (k[0] * k[1])
    return y, dxp[:, :, p[0]:p[0] + x.shape[2], p[1]:p[1] + x.shape[3]]


CASES = [  # kernel, stride, padding, input H × W
    ((2, 2), (2, 2), (0, 0), (4, 6)),       # windows tile the input exactly
    ((2, 2), (2, 2), (1, 1), (4, 4)),       # tile the padded input
    ((3, 2), (1, 1), (1, 0), (5, 4)),       # overlapping
    ((2, 3), (3, 4), (0, 1), (7, 9)),       # gaps between windows
    ((2, 2), (2, 2), (0, 0), (5, 5)),       # disjoint, the last row / column left out
    ((3, 3), (2, 2), (1, 1), (6, 5)),
    ((2, 2), (2, 2), (0, 0), (5, 4)),       # disjoint, the last row left out
    ((2, 3), (1, 3), (0, 0), (5, 9)),       # rows overlap, columns do not
    ((3, 1), (2, 1), (0, 0), (7, 4)),
]


@pytest.mark.parametrize("k, s, p, hw", CASES)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_forward_and_backward_are_the_window_rules(kind, k, s, p, hw):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, *hw))
    layer = (MaxPool2d if kind == "max" else AvgPool2d)(k, s, p)
    y = layer.forward(x)
    dy = rng.standard_normal(y.shape)
    want_y, want_dx = (reference_max if kind == "max" else reference_avg)(x, dy, k, s, p)
    np.testing.assert_allclose(y, want_y, rtol=1e-13, atol=1e-15)
    junk = np.full((2, 3, hw[0] + 2 * p[0], hw[1] + 2 * p[1]), np.nan)   # freed memory the gradient may reuse:
    del junk                                                              # every element must be written
    np.testing.assert_allclose(layer.backward(dy), want_dx, rtol=1e-13, atol=1e-15)
    y32 = layer.forward(x.astype(np.float32))
    assert y32.dtype == np.float32 and layer.backward(dy.astype(np.float32)).dtype == np.float32


@pytest.mark.parametrize("k, s, p, hw", CASES[2:4])
@pytest.mark.parametrize("kind", [MaxPool2d, AvgPool2d])
def test_gradients_match_finite_differences(kind, k, s, p, hw):
    rng = np.random.default_rng(1)
    # distinct values: a tie inside a max window has no derivative
    x = rng.permutation(2 * 2 * hw[0] * hw[1]).reshape(2, 2, *hw) * 0.01
    check_layer(kind(k, s, p), x, rng)


@pytest.mark.parametrize("s", [None, 2, 1])
def test_ties_send_the_gradient_to_the_first_maximum_once(s):
    layer = MaxPool2d(2, s)
    x = np.zeros((1, 1, 4, 4))
    y = layer.forward(x)
    _, want = reference_max(x, np.ones(y.shape), (2, 2), layer.stride, (0, 0))
    np.testing.assert_array_equal(layer.backward(np.ones(y.shape)), want)
    assert layer.backward(np.ones(y.shape)).sum() == y.size


def test_a_large_window_finds_its_maximum_past_offset_127():
    # 12 × 11 = 132 offsets: more than an int8 index holds
    x = np.zeros((1, 1, 12, 11))
    x[0, 0, 11, 10] = 1.0                               # offset 11·11 + 10 = 131
    layer = MaxPool2d((12, 11))
    assert layer.forward(x)[0, 0, 0, 0] == 1.0
    dx = layer.backward(np.full((1, 1, 1, 1), 3.0))
    assert dx[0, 0, 11, 10] == 3.0 and dx.sum() == 3.0


def test_max_padding_never_wins_and_avg_padding_counts():
    x = np.full((1, 1, 2, 2), -5.0)
    assert np.all(MaxPool2d(2, 1, 1).forward(x) == -5.0)            # −∞ padding
    np.testing.assert_array_equal(AvgPool2d(2, 1, 1).forward(x)[0, 0], [[-1.25, -2.5, -1.25],
                                                                           [-2.5, -5.0, -2.5],
                                                                           [-1.25, -2.5, -1.25]])


def test_global_average_is_the_mean_and_spreads_its_gradient():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 4, 5))
    layer = GlobalAvgPool2d()
    np.testing.assert_allclose(layer.forward(x), x.sum(axis=(2, 3)) / 20, rtol=1e-13)
    dy = rng.standard_normal((2, 3))
    dx = layer.backward(dy)
    np.testing.assert_allclose(dx, np.repeat(np.repeat(dy[:, :, None, None] / 20, 4, 2), 5, 3), rtol=1e-13)
    dx[0, 0, 0, 0] = 7.0                                # a writable array of its own
    check_layer(GlobalAvgPool2d(), x, rng)
    with pytest.raises(ShapeError, match="^dy:"):
        layer.backward(np.ones((2, 4)))
    with pytest.raises(ValidationError, match="^backward:"):
        GlobalAvgPool2d().backward(dy)


@pytest.mark.parametrize("dtype, z", [("uint8", 200), ("int8", -3)])
def test_max_of_codes_is_the_code_of_the_max(dtype, z):
    rng = np.random.default_rng(3)
    qp = QParams(np.float32(0.5), np.array(z, dtype), dtype)
    info = np.iinfo(dtype)
    codes = rng.integers(info.min, info.max + 1, (1, 2, 4, 4)).astype(dtype)
    y = MaxPool2d(2).forward(QTensor(codes, qp))
    assert isinstance(y, QTensor) and y.qparams is qp and y.data.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(y.data, codes.reshape(1, 2, 2, 2, 2, 2).max(axis=(3, 5)))


def test_geometry_and_config():
    layer = MaxPool2d((3, 2), padding=(1, 1))
    assert layer.stride == (3, 2)                                   # stride defaults to the kernel
    assert layer.config() == {"kernel_size": [3, 2], "stride": [3, 2], "padding": [1, 1]}
    assert AvgPool2d(2, (1, 3)).config() == {"kernel_size": [2, 2], "stride": [1, 3], "padding": [0, 0]}
    assert MaxPool2d(3).forward(np.ones((1, 1, 3, 3))).shape == (1, 1, 1, 1)  # the smallest input


def test_bad_input_is_named():
    np.testing.assert_array_equal(MaxPool2d(1).forward(np.arange(4.0).reshape(1, 1, 2, 2)),
                                  np.arange(4.0).reshape(1, 1, 2, 2))      # a 1 × 1 window is the identity
    for kind in (MaxPool2d, AvgPool2d, GlobalAvgPool2d):
        with pytest.raises(ShapeError, match="^x:"):
            (kind() if kind is GlobalAvgPool2d else kind(1)).forward(np.ones((1, 2, 2)))
        with pytest.raises(DTypeError, match="^x:"):
            (kind() if kind is GlobalAvgPool2d else kind(1)).forward(np.ones((1, 1, 2, 2), np.int32))
    for kind in (MaxPool2d, AvgPool2d):
        for name, args in (("kernel_size", (0,)), ("stride", (2, 0)), ("padding", (2, 1, -1))):
            with pytest.raises(ValidationError, match=f"^{name}:"):
                kind(*args)
        with pytest.raises(ValidationError, match="^padding:"):
            kind(2, padding=(2, 0))
        with pytest.raises(ValidationError, match="^padding:"):
            kind((4, 2), padding=(2, 2))
        kind((4, 2), padding=(2, 1))                                # half the kernel: allowed
        layer = kind(3)
        with pytest.raises(ValidationError, match="^backward:"):
            layer.backward(np.ones((1, 1, 1, 1)))
        with pytest.raises(ShapeError, match="^x:"):
            layer.forward(np.ones((1, 1, 2, 3)))
        with pytest.raises(ShapeError, match="^x:"):
            layer.forward(np.ones((1, 1, 3, 2)))
        layer.forward(np.ones((1, 1, 3, 3)))
        with pytest.raises(ShapeError, match="^dy:"):
            layer.backward(np.ones((1, 1, 1, 2)))
