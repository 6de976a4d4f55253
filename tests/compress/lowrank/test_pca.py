"""PCA low-rank quantization (P.1, P.2): the principal subspace, the exact output error, the quantized model."""

import numpy as np
import pytest

from refcomp.compress.lowrank.pca import pca_factors, pca_lowrank_quantize
from refcomp.errors import ShapeError, ValidationError
from refcomp.formats import LowRank, QTensor
from refcomp.nn import Linear, ReLU, Sequential, evaluate, train

from ..._support.helpers import blobs, mlp


def _inputs(n=500, d=10, seed=0):
    g = np.random.default_rng(seed)
    return g.standard_normal((n, d)) @ g.standard_normal((d, d)) * np.linspace(2, 0.1, d) + g.normal(size=d) * 3


def test_the_subspace_is_the_inputs_principal_one_and_the_error_is_p2():
    x = _inputs()
    w = np.random.default_rng(1).standard_normal((4, 10))
    left, right, shift, mse = pca_factors(w, x, 3)
    np.testing.assert_allclose(right @ right.T, np.eye(3), atol=1e-12)
    vt = np.linalg.svd(x - x.mean(axis=0), full_matrices=False)[2]   # oracle: the centred data's SVD
    np.testing.assert_allclose(right.T @ right, vt[:3].T @ vt[:3], atol=1e-10)
    y, y_hat = x @ w.T, (x @ right.T) @ left.T + shift
    assert np.isclose(np.mean((y - y_hat) ** 2), mse, rtol=1e-10)      # (P.2), measured on the same x
    full = pca_factors(w, x, 10)
    np.testing.assert_allclose((x @ full[1].T) @ full[0].T + full[2], y, atol=1e-9)
    assert full[3] < 1e-20


def test_float32_inputs_are_computed_in_float64():
    """The docstring's "float64 throughout": float32 inputs give the float64 factors of their exact widening."""
    x = _inputs().astype(np.float32)
    w = np.random.default_rng(1).standard_normal((4, 10)).astype(np.float32)
    got, want = pca_factors(w, x, 3), pca_factors(w.astype(np.float64), x.astype(np.float64), 3)
    for a, b in zip(got[:3], want[:3]):
        assert a.dtype == np.float64
        np.testing.assert_allclose(np.abs(a), np.abs(b), rtol=1e-12, atol=1e-12)   # eigenvector signs aside
    assert got[3] == pytest.approx(want[3], rel=1e-12)


def test_the_subspace_and_the_error_do_not_depend_on_the_inputs_mean():
    """PCA works on the centred inputs: moving every input by the same 10^6 changes neither the
    projector P Pᵀ nor (P.2) (only the bias shift W (I − P Pᵀ) μ, which follows μ)."""
    x = _inputs()
    w = np.random.default_rng(1).standard_normal((4, 10))
    left, right, shift, mse = pca_factors(w, x, 3)
    left2, right2, shift2, mse2 = pca_factors(w, x + 1e6, 3)
    np.testing.assert_allclose(right2.T @ right2, right.T @ right, atol=1e-9)
    assert mse2 == pytest.approx(mse, rel=1e-8)
    mu2 = x.mean(axis=0) + 1e6
    np.testing.assert_allclose(shift2, w @ (mu2 - right.T @ (right @ mu2)), rtol=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_the_predicted_error_is_never_negative(seed):
    """(P.2) is an expected square: inputs spanning a 2-D subspace leave it ~0 at k = 2, never below 0
    (eigh's rounding makes the discarded eigenvalues ±1e-16; they are clipped at 0)."""
    g = np.random.default_rng(seed)
    x = g.standard_normal((50, 2)) @ g.standard_normal((2, 8))
    _, _, _, mse = pca_factors(g.standard_normal((3, 8)), x, 2)
    assert 0.0 <= mse < 1e-12


def test_two_calibration_rows_are_enough_and_k_may_be_one():
    """The smallest accepted arguments: n = 2 rows (a covariance of rank 1) and k = 1, which is exact
    then: two points always lie on a line."""
    x = np.array([[1.0, 2.0, 3.0], [3.0, 1.0, 0.0]])
    w = np.array([[1.0, 0.0, -1.0], [2.0, 1.0, 1.0]])
    left, right, shift, mse = pca_factors(w, x, 1)
    assert left.shape == (2, 1) and right.shape == (1, 3)
    np.testing.assert_allclose((x @ right.T) @ left.T + shift, x @ w.T, atol=1e-12)
    assert mse < 1e-12


def _biased_and_bias_free():
    g = np.random.default_rng(4)
    m = Sequential(("fc1", Linear(6, 5, rng=0, dtype="float64")), ("relu1", ReLU()),
                   ("fc2", Linear(5, 3, bias=False, rng=1, dtype="float64")))
    m["fc1"].bias.data[...] = 10 + g.standard_normal(5)           # a bias far above the weights' scale
    return m, g.standard_normal((64, 6)) * np.linspace(2, 0.5, 6) + 1.0


def test_full_rank_keeps_the_bias_and_a_bias_free_layer_gets_the_shift():
    """At k = in, P Pᵀ = I: the shift W (I − P Pᵀ) μ is 0, so the new bias is the old one (fc1) and a layer
    without one gets a zero bias of its output size (fc2, 3 outputs from 5 inputs)."""
    m, x = _biased_and_bias_free()
    qm, report = pca_lowrank_quantize(m, {"fc1": 6, "fc2": 5}, x, bits=8)
    np.testing.assert_allclose(qm["fc1"].bias.data, m["fc1"].bias.data, atol=1e-9)
    assert qm["fc2"].bias.data.shape == (3,)
    np.testing.assert_allclose(qm["fc2"].bias.data, 0.0, atol=1e-9)
    assert report["fc1"]["k"] == 6 and report["fc2"]["k"] == 5


def test_a_truncated_bias_free_layer_gets_the_p1_shift_and_the_weight_dtype():
    """(P.1)'s b' = b + W (I − P Pᵀ) μ with P from numpy's SVD of the centred inputs (oracle), in the
    layer's dtype (float32 stays float32)."""
    g = np.random.default_rng(5)
    m = Sequential(("fc", Linear(6, 4, bias=False, rng=0)))
    x = (g.standard_normal((80, 6)) * np.linspace(3, 0.2, 6) + g.normal(size=6) * 2).astype(np.float32)
    qm, _ = pca_lowrank_quantize(m, {"fc": 2}, x, bits=8)
    w, xd = m["fc"].weight.to_dense().astype(np.float64), x.astype(np.float64)
    p = np.linalg.svd(xd - xd.mean(axis=0), full_matrices=False)[2][:2].T
    mu = xd.mean(axis=0)
    assert qm["fc"].bias.data.dtype == np.float32
    np.testing.assert_allclose(qm["fc"].bias.data, w @ (mu - p @ (p.T @ mu)), rtol=1e-5, atol=1e-6)


def test_the_reported_output_error_is_the_quantized_layers_measured_one():
    """output_mse = mean((ŷ − y)²) over the calibration inputs, ŷ the new layer's output (oracle: its forward
    against the original layer's, in float64)."""
    m, x = _biased_and_bias_free()
    qm, report = pca_lowrank_quantize(m, {"fc1": 3}, x, bits=8)
    d = qm["fc1"].forward(x) - m["fc1"].forward(x)
    assert report["fc1"]["output_mse"] == pytest.approx(float(np.mean(d ** 2)), rel=1e-9)
    assert report["fc1"]["output_mse"] > 0


def test_bits_reach_both_factors():
    """bits = 4: both factors are int4 codes, each in [−8, 7], and the layer stores fewer bytes than at 8."""
    m, x = _biased_and_bias_free()
    q4, r4 = pca_lowrank_quantize(m, {"fc1": 3}, x, bits=4)
    _, r8 = pca_lowrank_quantize(m, {"fc1": 3}, x, bits=8)
    for f in (q4["fc1"].weight.left, q4["fc1"].weight.right):
        assert f.qparams.dtype.bits == 4
        assert -8 <= int(f.data.astype(np.int64).min()) and int(f.data.astype(np.int64).max()) <= 7
    assert r4["fc1"]["bytes"] < r8["fc1"]["bytes"]
    q_default, _ = pca_lowrank_quantize(m, {"fc1": 3}, x)          # bits = 8 by default
    assert q_default["fc1"].weight.left.qparams.dtype.bits == 8 == q_default["fc1"].weight.right.qparams.dtype.bits


def test_the_model_holds_quantized_factors_and_keeps_its_accuracy():
    x, y = blobs(n=400)
    m = mlp()
    train(m, (x, y), epochs=8, batch_size=40, progress=False, rng=0)
    qm, report = pca_lowrank_quantize(m, {"fc1": 6, "fc2": 4}, x[:200], bits=8)
    for name in ("fc1", "fc2"):
        wf = qm[name].weight
        assert isinstance(wf, LowRank) and isinstance(wf.left, QTensor) and isinstance(wf.right, QTensor)
        r = report[name]
        assert r["bytes"] < r["float_bytes"] and r["output_mse"] <= 1.5 * r["predicted_mse"] + 1e-4
    assert evaluate(qm, (x, y))["accuracy"] >= evaluate(m, (x, y))["accuracy"] - 0.05
    _, coarse = pca_lowrank_quantize(m, {"fc1": 2}, x[:200], bits=8)
    assert coarse["fc1"]["predicted_mse"] > report["fc1"]["predicted_mse"]


def test_bad_arguments():
    w, x = np.ones((3, 4)), _inputs(d=4)
    with pytest.raises(ValidationError, match="k"):
        pca_factors(w, x, 5)
    with pytest.raises(ShapeError, match="x"):
        pca_factors(w, x[:, :3], 2)
    with pytest.raises(ShapeError, match="x"):
        pca_factors(w, x[:1], 2)
    with pytest.raises(ValidationError, match="k"):
        pca_factors(w, x, 0)
    with pytest.raises(ShapeError, match="w"):
        pca_factors(np.ones(4), x, 2)
    with pytest.raises(ShapeError, match="x"):
        pca_factors(w, x[:, 0], 1)
    with pytest.raises(ValidationError, match="ranks"):
        pca_lowrank_quantize(mlp(), {}, np.ones((5, 12), np.float32))
    with pytest.raises(ShapeError, match="^calibration: expected a non-empty"):   # not x's "2 rows" later
        pca_lowrank_quantize(mlp(), {"fc1": 2}, np.ones((0, 12), np.float32))
    with pytest.raises(ValidationError, match="ranks"):
        pca_lowrank_quantize(mlp(), {"relu1": 2}, np.ones((5, 12), np.float32))
    with pytest.raises(ValidationError, match="calibration"):
        pca_lowrank_quantize(mlp(), {"fc1": 2}, np.full((5, 12), np.nan, np.float32))
