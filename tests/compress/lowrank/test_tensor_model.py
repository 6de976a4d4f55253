"""CP / TT of layers: the four convolutions equal their kernels' formulas, gradients by finite differences."""

import numpy as np
import pytest

from refcomp.compress.lowrank.tensor import cp_als
from refcomp.compress.lowrank.tensor_model import cp_conv, decompose_model, tt_conv, tt_linear
from refcomp.errors import ShapeError, ValidationError
from refcomp.nn import Conv2d, Linear, evaluate, train
from refcomp.nn.layers import TTLinear

from ..._support.helpers import blobs, convnet
from ...nn.nn_gradcheck import check_layer


def _kernel_of(seq, cp):
    """K̂[o,c,u,v] from the four convolutions' weights: Σ last[o,b'] horiz[b',b,v] vert[b,a,u] first[a,c]."""
    f = seq["first"].weight.data[:, :, 0, 0]
    v = seq["vert"].weight.data[:, :, :, 0]
    h = seq["horiz"].weight.data[:, :, 0, :]
    last = seq["last"].weight.data[:, :, 0, 0]
    if cp:  # depthwise middle convolutions: one channel r throughout
        return np.einsum("or,rc,ru,rv->ocuv", last, f, v[:, 0], h[:, 0])
    return np.einsum("oz,zyv,yau,ac->ocuv", last, h, v, f)


def _conv_with(layer, kernel):
    c = Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
               padding=layer.padding, dilation=layer.dilation, dtype="float64")
    c.weight.data[...] = kernel
    c.bias.data[...] = layer.bias.data
    return c


@pytest.mark.parametrize("geometry", [dict(), dict(stride=2, padding=1), dict(padding=(2, 1), dilation=(1, 2)),
                                      dict(padding=(2, 0), dilation=(2, 1))])
def test_four_convolutions_equal_the_conv_of_their_kernel(geometry):
    rng = np.random.default_rng(0)
    layer = Conv2d(3, 5, (3, 2), rng=0, dtype="float64", **geometry)
    layer.bias.data[...] = rng.standard_normal(5)
    x = rng.standard_normal((2, 3, 9, 8))
    cp, _ = cp_conv(layer, 4, rng=0)
    np.testing.assert_allclose(cp.forward(x), _conv_with(layer, _kernel_of(cp, True)).forward(x), atol=1e-10)
    tt, err, discarded = tt_conv(layer, eps=0.0)
    np.testing.assert_allclose(tt.forward(x), layer.forward(x), atol=1e-10)   # eps 0: the original conv
    assert err < 1e-12 and max(discarded) < 1e-10


def test_cp_conv_is_exact_on_a_rank_r_kernel_and_tt_conv_keeps_its_bound():
    rng = np.random.default_rng(1)
    a, b, c, d = (rng.standard_normal((n, 3)) for n in (6, 4, 3, 3))
    layer = Conv2d(4, 6, 3, padding=1, rng=0, dtype="float64")
    layer.weight.data[...] = np.einsum("or,cr,ur,vr->ocuv", a, b, c, d)   # (CP.1) of rank 3, written out
    x = rng.standard_normal((2, 4, 7, 7))
    cp, err = cp_conv(layer, 3, n_iter=500)
    assert err < 1e-6
    np.testing.assert_allclose(cp.forward(x), layer.forward(x), atol=1e-5 * np.abs(layer.forward(x)).max())
    layer.weight.data[...] = rng.standard_normal(layer.weight.data.shape)
    tt, err, _ = tt_conv(layer, eps=0.4)
    k, k_hat = layer.weight.data, _kernel_of(tt, False)
    assert np.linalg.norm(k_hat - k) <= 0.4 * np.linalg.norm(k) * (1 + 1e-9)
    assert np.isclose(err, np.linalg.norm(k_hat - k) / np.linalg.norm(k))
    assert tt_conv(layer, max_rank=2)[0].num_parameters() < layer.num_parameters()


def test_the_four_convolutions_count_and_type_their_weights():
    """(CP.3): in·R + kh·R + kw·R + R·out weights, a bias only on the last one and only if the layer has one;
    every weight in the layer's dtype (float32 stays float32 though cp_als computes in float64)."""
    for bias, dtype in ((True, "float32"), (False, "float64")):
        layer = Conv2d(3, 5, (3, 2), bias=bias, rng=0, dtype=dtype)
        cp, _ = cp_conv(layer, 4, rng=0)
        assert cp.num_parameters() == 3 * 4 + 3 * 4 + 2 * 4 + 4 * 5 + (5 if bias else 0)
        assert [c.bias is None for _, c in cp.named_children()] == [True, True, True, not bias]
        assert all(c.weight.to_dense().dtype == np.dtype(dtype) for _, c in cp.named_children())
        tt, _, _ = tt_conv(layer, max_rank=2)
        assert [c.bias is None for _, c in tt.named_children()] == [True, True, True, not bias]
        assert all(c.weight.to_dense().dtype == np.dtype(dtype) for _, c in tt.named_children())


def test_cp_conv_reports_the_error_of_its_kernel_after_n_iter_sweeps():
    """The error is ‖K − K̂‖_F/‖K‖_F of the kernel the four convolutions hold (oracle: _kernel_of);
    more sweeps, lower error."""
    layer = Conv2d(4, 6, 3, rng=0, dtype="float64")
    errs = []
    for n_iter in (1, 50):
        cp, err = cp_conv(layer, 3, n_iter=n_iter)
        k = layer.weight.data
        assert err == pytest.approx(np.linalg.norm(_kernel_of(cp, True) - k) / np.linalg.norm(k), rel=1e-9)
        errs.append(err)
    assert errs[1] < errs[0]
    slow = Conv2d(5, 5, (5, 5), rng=0, dtype="float64")     # ALS is still improving after 200 sweeps here
    assert cp_conv(slow, 4)[1] == cp_als(slow.weight.data, 4, n_iter=200)[2][-1]   # cp_als's 200 by default
    with pytest.raises(ValidationError, match="^layer"):
        cp_conv(Conv2d(4, 4, 3, groups=2, rng=0), 2)


def test_tt_linear_keeps_the_dtype_the_bias_and_the_rank_cap():
    lin = Linear(12, 12, bias=False, rng=0)
    tt, _ = tt_linear(lin, (2, 3, 2), (3, 2, 2), max_rank=1)
    assert tt.bias is None and tt.ranks == [1, 1]
    assert tt.forward(np.ones((2, 12), np.float32)).dtype == np.float32


def test_tt_linear_from_a_linear_at_eps_zero_is_the_linear():
    x = np.random.default_rng(2).standard_normal((5, 12))
    lin = Linear(12, 12, rng=0, dtype="float64")
    exact, discarded = tt_linear(lin, (2, 3, 2), (3, 2, 2), eps=0.0)
    np.testing.assert_allclose(exact.forward(x), lin.forward(x), atol=1e-12)
    assert max(discarded) < 1e-10 and exact.ranks == [g.data.shape[3] for g in exact.cores()[:-1]]


def test_four_convolution_gradients_match_finite_differences():
    rng = np.random.default_rng(3)
    layer = Conv2d(2, 3, 3, padding=1, stride=2, rng=0, dtype="float64")
    x = rng.standard_normal((2, 2, 6, 6))
    check_layer(cp_conv(layer, 2)[0], x, rng)
    check_layer(tt_conv(layer, max_rank=2)[0], x, rng)


def test_decompose_model_replaces_trains_and_reports():
    m = convnet(dtype="float64")
    x, y = blobs(n=60, d=2 * 8 * 8, classes=3)
    x = x.reshape(-1, 2, 8, 8).astype(np.float64)
    dm, report = decompose_model(m, {"conv1": {"method": "tt", "eps": 0.0}, "conv2": {"method": "cp", "rank": 2},
                                     "fc1": {"method": "tt", "out_modes": (7, 1), "in_modes": (4, 5),
                                             "eps": 0.0}})
    assert set(report) == {"conv1", "conv2", "fc1"} and report["conv1"]["rel_error"] < 1e-12
    assert isinstance(dm["fc1"], TTLinear) and isinstance(m["fc1"], Linear)
    assert report["conv2"]["params"] < report["conv2"]["dense_params"]
    before = evaluate(dm, (x, y))["loss"]
    train(dm, (x, y), epochs=5, batch_size=20, progress=False, rng=0)
    assert evaluate(dm, (x, y))["loss"] < before
    with pytest.raises(ValidationError, match=r"specs\['fc2'\]"):
        decompose_model(m, {"fc2": {"method": "cp", "rank": 2}})
    with pytest.raises(ValidationError, match="specs"):
        decompose_model(m, [("fc2", "tt")])
    with pytest.raises(ValidationError, match=r"specs\['conv2'\]: expected options"):
        decompose_model(m, {"conv2": {"method": "cp", "rnk": 2}})
    with pytest.raises(ShapeError, match="in_modes"):
        decompose_model(m, {"fc1": {"method": "tt", "out_modes": (7, 1), "in_modes": (4, 4), "eps": 0.1}})
    for specs in ({"conv1": "tt"}, {"nope": {"method": "tt", "eps": 0.1}}, {"conv1": {"method": "tt", "rank": 2}},
                  {"fc1": {"method": "tt", "out_modes": (7, 1), "in_modes": (4, 5), "rank": 2}}):
        with pytest.raises(ValidationError, match=r"^specs\["):
            decompose_model(m, specs)


def test_decompose_model_takes_every_option_of_each_method_and_reports_the_relative_error():
    """All the options a method allows at once; a Linear's rel_error is ‖W − Ŵ‖_F/‖W‖_F with Ŵ read from
    the TTLinear's outputs on the identity (oracle)."""
    m = convnet(dtype="float64")
    dm, report = decompose_model(m, {"conv1": {"method": "tt", "eps": 0.1, "max_rank": 3},
                                     "conv2": {"method": "cp", "rank": 2, "rng": 0, "n_iter": 5},
                                     "fc1": {"method": "tt", "out_modes": (7, 1), "in_modes": (4, 5), "eps": 0.0,
                                             "max_rank": 2}})
    assert report["conv1"]["method"] == "tt" and report["conv2"]["method"] == "cp"
    w = m["fc1"].weight.data
    w_hat = (dm["fc1"].forward(np.eye(20)) - m["fc1"].bias.data).T
    assert report["fc1"]["rel_error"] == pytest.approx(np.linalg.norm(w_hat - w) / np.linalg.norm(w), rel=1e-9)
    assert 0 < report["fc1"]["rel_error"] < 1
