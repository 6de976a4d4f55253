"""PCA low-rank quantization (P.1, P.2): the principal subspace, the exact output error, the quantized model."""

import numpy as np
import pytest

from refcomp.compress.lowrank.pca import pca_factors, pca_lowrank_quantize
from refcomp.errors import ShapeError, ValidationError
from refcomp.formats import LowRank, QTensor
from refcomp.nn import evaluate, train

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
    with pytest.raises(ValidationError, match="ranks"):
        pca_lowrank_quantize(mlp(), {"relu1": 2}, np.ones((5, 12), np.float32))
    with pytest.raises(ValidationError, match="calibration"):
        pca_lowrank_quantize(mlp(), {"fc1": 2}, np.full((5, 12), np.nan, np.float32))
