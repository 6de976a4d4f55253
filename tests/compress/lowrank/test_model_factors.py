"""The layers factorize_linear / factorize_conv / tucker2_conv / factorize_model build, weight by weight,
against numpy's SVD and the whitened SVD written out (docs/lowrank.md eqs. 1, 6, 11): fast, no training."""

import numpy as np
import pytest

from refcomp.compress.lowrank.model import factorize_conv, factorize_linear, factorize_model, tucker2_conv
from refcomp.errors import ValidationError
from refcomp.nn import Conv2d, Flatten, Linear, ReLU, Sequential

from ..models_for_tests import small_mlp


def _best_rank(w, r):
    """Eckart-Young: the rank-r truncated SVD of w (numpy, float64)."""
    u, s, vt = np.linalg.svd(np.asarray(w, np.float64), full_matrices=False)
    return (u[:, :r] * s[:r]) @ vt[:r]


def _whitened_best_rank(w, h, r, percdamp):
    """Eq. (11) written out with a symmetric square root (eigh) instead of a Cholesky factor: the best rank-r
    W' for ||(W − W') C||_F with C Cᵀ = H + percdamp·mean(diag H)·I; W' = (W C)_r C⁻¹ for any such C."""
    h = h + percdamp * np.mean(np.diag(h)) * np.eye(len(h))
    lam, e = np.linalg.eigh(h)
    c = e * np.sqrt(lam)
    return _best_rank(w @ c, r) @ np.linalg.inv(c)


def _product(seq, first="first", second="second"):
    a = seq[second].weight.to_dense()
    b = seq[first].weight.to_dense()
    return a.reshape(a.shape[0], -1).astype(np.float64) @ b.reshape(b.shape[0], -1).astype(np.float64)


def _hessian(n, seed):
    x = np.random.default_rng(seed).normal(size=(4 * n, n)) * np.exp(np.random.default_rng(seed + 1).normal(size=n))
    return 2 * x.T @ x / len(x)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_linear_becomes_first_r_by_in_then_out_by_r_with_the_bias(dtype):
    """first = Linear(in → r, no bias), second = Linear(r → out) with a copy of the bias, in the layer's dtype,
    and second·first is the rank-r truncated SVD."""
    layer = Linear(7, 5, rng=np.random.default_rng(0), dtype=dtype)
    layer.bias.data[...] = np.arange(5)
    seq = factorize_linear(layer, 3)
    first, second = seq["first"], seq["second"]
    assert (first.in_features, first.out_features, first.bias) == (7, 3, None)
    assert (second.in_features, second.out_features) == (3, 5)
    assert first.weight.to_dense().dtype == second.weight.to_dense().dtype == second.bias.data.dtype == dtype
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(_product(seq), _best_rank(layer.weight.to_dense(), 3), atol=tol)
    np.testing.assert_array_equal(second.bias.data, np.arange(5))
    second.bias.data[...] = -1                              # a copy: training the new layer leaves the old one
    np.testing.assert_array_equal(layer.bias.data, np.arange(5))
    assert factorize_linear(Linear(7, 5, bias=False, rng=0), 2)["second"].bias is None
    with pytest.raises(ValidationError, match="layer"):
        factorize_linear(Conv2d(2, 2, 1, rng=0), 1)


@pytest.mark.parametrize("percdamp", [None, 0.5])
def test_linear_with_a_hessian_is_the_whitened_svd(percdamp):
    """hessian and percdamp reach the SVD (eq. 11); the default percdamp is 0.01."""
    layer = Linear(6, 5, rng=np.random.default_rng(1), dtype="float64")
    h = _hessian(6, 2)
    kw = {} if percdamp is None else {"percdamp": percdamp}
    seq = factorize_linear(layer, 2, hessian=h, **kw)
    want = _whitened_best_rank(layer.weight.to_dense(), h, 2, 0.01 if percdamp is None else percdamp)
    np.testing.assert_allclose(_product(seq), want, atol=1e-10)


def test_conv_svd_keeps_the_geometry_in_the_first_conv_and_the_bias_in_the_1x1():
    """first: Conv2d(in → r, kh×kw) with the layer's stride / padding / dilation, no bias; second: a plain
    1×1 Conv2d(r → out) with a copy of the bias; second·first is the SVD of the (out, in·kh·kw) kernel."""
    rng = np.random.default_rng(0)
    conv = Conv2d(3, 6, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(1, 2), rng=rng, dtype="float64")
    conv.bias.data[...] = rng.normal(size=6)
    seq = factorize_conv(conv, 4)
    first, second = seq["first"], seq["second"]
    assert (first.in_channels, first.out_channels, first.kernel_size) == (3, 4, (3, 2))
    assert (first.stride, first.padding, first.dilation, first.bias) == ((2, 1), (1, 2), (1, 2), None)
    assert (second.in_channels, second.out_channels, second.kernel_size) == (4, 6, (1, 1))
    assert (second.stride, second.padding, second.dilation) == ((1, 1), (0, 0), (1, 1))
    assert first.weight.to_dense().dtype == second.weight.to_dense().dtype == np.float64
    w2 = conv.weight.to_dense().reshape(6, -1)
    np.testing.assert_allclose(_product(seq), _best_rank(w2, 4), atol=1e-12)
    np.testing.assert_array_equal(second.bias.data, conv.bias.data)
    second.bias.data[...] = 0.0
    assert np.all(conv.bias.data != 0)                       # a copy
    h = _hessian(3 * 3 * 2, 5)                               # of the im2col rows
    np.testing.assert_allclose(_product(factorize_conv(conv, 4, hessian=h, percdamp=0.3)),
                               _whitened_best_rank(w2, h, 4, 0.3), atol=1e-10)
    np.testing.assert_allclose(_product(factorize_conv(conv, 4, hessian=h)), _whitened_best_rank(w2, h, 4, 0.01),
                               atol=1e-10)
    assert factorize_conv(Conv2d(3, 6, 3, bias=False, rng=0), 2)["second"].bias is None


def test_tucker2_conv_layers():
    """first: 1×1 (in → r_in), core: kh×kw (r_in → r_out) with the geometry, last: 1×1 (r_out → out) with a
    copy of the bias; only last has a bias; a list of ranks reads as the tuple."""
    rng = np.random.default_rng(0)
    conv = Conv2d(4, 5, 3, stride=2, padding=1, dilation=2, rng=rng, dtype="float64")
    conv.bias.data[...] = rng.normal(size=5)
    seq = tucker2_conv(conv, [3, 2])
    first, core, last = seq["first"], seq["core"], seq["last"]
    assert (first.in_channels, first.out_channels, first.kernel_size, first.bias) == (4, 2, (1, 1), None)
    assert (core.in_channels, core.out_channels, core.kernel_size, core.bias) == (2, 3, (3, 3), None)
    assert (core.stride, core.padding, core.dilation) == ((2, 2), (1, 1), (2, 2))
    assert (first.stride, first.padding, last.stride, last.padding) == ((1, 1), (0, 0), (1, 1), (0, 0))
    assert (last.in_channels, last.out_channels, last.kernel_size) == (3, 5, (1, 1))
    assert core.weight.to_dense().dtype == np.float64
    np.testing.assert_array_equal(last.bias.data, conv.bias.data)
    last.bias.data[...] = 0.0
    assert np.all(conv.bias.data != 0)
    as_tuple = tucker2_conv(conv, (3, 2))
    for name in ("first", "core", "last"):
        np.testing.assert_array_equal(seq[name].weight.to_dense(), as_tuple[name].weight.to_dense())
    # HOSVD written out: U_out, U_in the leading left singular vectors of the two unfoldings, W ≈ C ×₀ U_out ×₁ U_in
    w = conv.weight.to_dense()
    u_out = np.linalg.svd(w.reshape(5, -1))[0][:, :3]
    u_in = np.linalg.svd(w.transpose(1, 0, 2, 3).reshape(4, -1))[0][:, :2]
    proj = np.einsum("oikl,op,pq,ij,js->qskl", w, u_out, u_out.T, u_in, u_in.T)   # (U Uᵀ) on both modes
    got = np.einsum("rskl,or,si->oikl", core.weight.to_dense(), last.weight.to_dense()[:, :, 0, 0],
                    first.weight.to_dense()[:, :, 0, 0])
    np.testing.assert_allclose(got, proj, atol=1e-12)
    assert tucker2_conv(Conv2d(4, 5, 3, bias=False, rng=0), (2, 2))["last"].bias is None
    with pytest.raises(ValidationError, match="groups"):
        tucker2_conv(Conv2d(4, 4, 3, groups=2, rng=0), (2, 2))
    with pytest.raises(ValidationError, match="layer"):
        tucker2_conv(Linear(4, 4, rng=0), (2, 2))


def test_factorize_model_reports_bytes_and_leaves_the_model():
    """Each entry: the rank asked, the factorized layers' bytes and the original's (4 bytes a float32)."""
    rng = np.random.default_rng(0)
    m = Sequential(("conv", Conv2d(2, 6, 3, rng=rng)), ("relu", ReLU()), ("flatten", Flatten()),
                   ("fc", Linear(6 * 3 * 3, 4, rng=rng)))
    before = m["fc"].weight.to_dense().copy()
    f, report = factorize_model(m, {"conv": 2, "fc": 3})
    assert report == {"conv": {"rank": 2, "bytes": 4 * (2 * 2 * 9 + 6 * 2 + 6), "float_bytes": 4 * (6 * 2 * 9 + 6)},
                      "fc": {"rank": 3, "bytes": 4 * (3 * (54 + 4) + 4), "float_bytes": 4 * (54 * 4 + 4)}}
    np.testing.assert_allclose(_product(f["fc"]), _best_rank(before, 3), atol=1e-5)
    assert isinstance(m["fc"], Linear) and np.array_equal(m["fc"].weight.to_dense(), before)
    _, report = factorize_model(m, {"conv": [2, 2]})                  # a list is Tucker-2 ranks too
    assert report["conv"]["bytes"] == 4 * (2 * 2 + 2 * 2 * 9 + 6 * 2 + 6)
    with pytest.raises(ValidationError, match="ranks"):
        factorize_model(m, [("fc", 3)])
    with pytest.raises(ValidationError, match="Tucker-2"):
        factorize_model(m, {"fc": [2, 2]})


def test_an_unknown_name_lists_at_most_eight_layers():
    m = small_mlp(0, sizes=(4,) * 10)                                 # fc0 … fc8: one too many
    with pytest.raises(ValidationError, match=r"\['fc0', .*'fc7', '\.\.\.'\]") as err:
        factorize_model(m, {"nope": 1})
    assert "fc8" not in str(err.value)
    small = small_mlp(0, sizes=(4,) * 9)                              # fc0 … fc7: all eight shown
    with pytest.raises(ValidationError, match=r"'fc7'\]") as err:
        factorize_model(small, {"nope": 1})
    assert "..." not in str(err.value)


def test_calibration_whitens_the_first_layer_by_its_inputs_and_reports_the_conv_output_error():
    """The first layer sees the batches themselves: its factors are eq. (11) with H ∝ XᵀX and the percdamp
    given; output_mse is the mean of (X_rows (W_r − W)ᵀ)² over the first batch's rows (a Conv2d's: im2col rows)."""
    rng = np.random.default_rng(0)
    m = small_mlp(0, sizes=(6, 5, 3))
    x = (rng.normal(size=(40, 6)) * np.exp(rng.normal(size=6))).astype(np.float32)
    f, report = factorize_model(m, {"fc0": 2}, calibration_batches=[x[:20], x[20:]], percdamp=0.5)
    x64 = x.astype(np.float64)
    w = m["fc0"].weight.to_dense().astype(np.float64)
    want = _whitened_best_rank(w, x64.T @ x64, 2, 0.5)
    np.testing.assert_allclose(_product(f["fc0"]), want, rtol=1e-4, atol=1e-5)
    d = x64[:20] @ (_product(f["fc0"]) - w).T
    np.testing.assert_allclose(report["fc0"]["output_mse"], np.mean(d * d), rtol=1e-6)

    default, _ = factorize_model(m, {"fc0": 2}, calibration_batches=[x[:20], x[20:]])     # percdamp 0.01
    np.testing.assert_allclose(_product(default["fc0"]), _whitened_best_rank(w, x64.T @ x64, 2, 0.01),
                               rtol=1e-4, atol=1e-5)

    conv = Sequential(("conv", Conv2d(1, 3, 2, rng=rng)))
    xc = rng.normal(size=(2, 1, 3, 3)).astype(np.float32)
    rows = np.array([xc[n, 0, i:i + 2, j:j + 2].ravel() for n in range(2) for i in range(2) for j in range(2)],
                    np.float64)                                        # the im2col rows, written out
    w = conv["conv"].weight.to_dense().reshape(3, -1).astype(np.float64)
    for kw, damp in (({"percdamp": 0.5}, 0.5), ({}, 0.01)):            # whitened by the rows, percdamp passed on
        f, _ = factorize_model(conv, {"conv": 2}, calibration_batches=[xc], **kw)
        np.testing.assert_allclose(_product(f["conv"]), _whitened_best_rank(w, rows.T @ rows, 2, damp),
                                   rtol=1e-4, atol=1e-5)
    f, report = factorize_model(conv, {"conv": 1}, calibration_batches=[xc])
    d = rows @ (_product(f["conv"]) - conv["conv"].weight.to_dense().reshape(3, -1).astype(np.float64)).T
    np.testing.assert_allclose(report["conv"]["output_mse"], np.mean(d * d), rtol=1e-6)
