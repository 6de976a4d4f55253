"""Sparse deployment (CSR kernels == masked dense model) and the sensitivity sweep."""

import numpy as np
import pytest

from refcomp.compress.prune.deploy import to_csr
from refcomp.compress.prune import prune_model
from refcomp.formats.csr import CSRMatrix

from ..._support.helpers import convnet, mlp

U32 = np.finfo(np.float32).eps / 2


def _bound(w2, x2, u):
    """Per-output bound on |y_csr − y_dense|: each is within γ_m·(|W|·|x|) of the exact sum, m = in."""
    m = w2.shape[1]
    return 2 * (m * u / (1 - m * u)) * (np.abs(x2) @ np.abs(w2).T)


@pytest.mark.parametrize("backend_ok", [True])
def test_csr_linear_model_equals_masked_dense(backend_ok):
    m, _ = prune_model(mlp(1), {"fc1": 0.8, "fc2": 0.7, "fc3": 0.5})
    sparse, _ = to_csr(m)
    assert all(isinstance(sparse[n].weight, CSRMatrix) for n in ("fc1", "fc2", "fc3"))
    assert sparse["fc1"].weight.nnz == np.count_nonzero(m["fc1"].weight.data)
    x = np.random.default_rng(0).normal(size=(33, 12)).astype(np.float32)
    # layer by layer, each against the stated bound, then the whole model
    w = m["fc1"].weight.data
    y_dense = x @ w.T
    y_csr = sparse["fc1"].weight.matmul(x)
    assert (np.abs(y_csr - y_dense) <= _bound(w, x, U32) + 1e-30).all()
    np.testing.assert_allclose(sparse.forward(x), m.forward(x), rtol=1e-5, atol=1e-5)
    assert isinstance(m["fc1"].weight, type(m["fc3"].weight)) and not isinstance(m["fc1"].weight, CSRMatrix)


def test_csr_conv_model_equals_masked_dense():
    m, _ = prune_model(convnet(2), {"conv1": 0.5, "conv2": 0.8, "fc1": 0.7})
    sparse, _ = to_csr(m, ["conv1", "conv2", "fc1"])
    assert isinstance(sparse["conv2"].weight, CSRMatrix) and sparse["conv2"].weight.shape == (5, 54)
    x = np.random.default_rng(0).normal(size=(4, 2, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(sparse.forward(x), m.forward(x), rtol=1e-5, atol=1e-5)
