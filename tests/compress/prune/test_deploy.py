"""Sparse deployment (CSR kernels == masked dense model) and the sensitivity sweep."""

import copy

import numpy as np
import pytest

from refcomp.compress.prune.deploy import csr_weight, to_csr
from refcomp.compress.prune import prune_model
from refcomp.compress.share.trained_quantization import cluster_model
from refcomp.errors import DTypeError, ValidationError
from refcomp.formats import Clustered, Dense, QTensor
from refcomp.formats.csr import CSRMatrix
from refcomp.quant import choose_qparams

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


# ------------------------------------------------------------------ stored values: quantized, clustered
def _scatter(csr, values):
    out = np.zeros(csr.shape, values.dtype)
    out[np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr)), csr.indices] = values
    return out


def test_int8_values_are_per_tensor_symmetric_codes_of_the_kept_weights():
    m, _ = prune_model(convnet(3), {"conv1": 0.5, "conv2": 0.8, "fc1": 0.7})
    q, report = to_csr(m, ["conv2", "fc1"], values="int8")
    for name in ("conv2", "fc1"):
        w2 = m[name].weight.data.reshape(m[name].weight.shape[0], -1)
        W = q[name].weight
        assert isinstance(W, CSRMatrix) and isinstance(W.values, QTensor)
        assert W.nnz == np.count_nonzero(w2) and W.values.qparams.dtype.name == "int8"
        # the oracle, eq. (C1): s = max|w| / 127.5 (float32), codes rounded half to even, saturated
        kept = w2[w2 != 0]
        s = np.float32(np.abs(kept).max() / 127.5)
        codes = np.clip(np.rint(kept / s), -128, 127).astype(np.int8)
        np.testing.assert_array_equal(W.values.data, codes)
        assert W.values.qparams.scale.item() == s and not W.values.qparams.zero_point.any()
        np.testing.assert_array_equal(W.to_dense(), _scatter(W, codes.astype(np.float32) * s))
        assert np.abs(W.to_dense() - w2).max() <= s / 2 * (1 + 1e-6)
        assert report[name]["bytes"] == W.nbytes and report[name]["nnz"] == W.nnz
    assert q["conv1"].weight is not None and not isinstance(q["conv1"].weight, CSRMatrix)
    # the model computes with the dequantized weights (float semantics)
    x = np.random.default_rng(1).normal(size=(3, 2, 8, 8)).astype(np.float32)
    ref = copy.deepcopy(m)
    ref["conv2"].weight = Dense(q["conv2"].weight.to_dense().reshape(m["conv2"].weight.shape))
    ref["fc1"].weight = Dense(q["fc1"].weight.to_dense())
    np.testing.assert_allclose(q.forward(x), ref.forward(x), rtol=1e-5, atol=1e-5)
    assert isinstance(m["fc1"].weight, Dense)  # the input model is untouched


def test_clustered_layers_become_the_clustered_csr_exactly():
    m, _ = prune_model(mlp(2), {"fc1": 0.8, "fc2": 0.7, "fc3": 0.5})
    shared, _ = cluster_model(m, 3, layers=["fc1", "fc2"], rng=0)
    sparse, _ = to_csr(shared)
    for name in ("fc1", "fc2"):
        c, W = shared[name].weight, sparse[name].weight
        assert isinstance(W.values, Clustered) and W.values.bits == 3
        np.testing.assert_array_equal(W.values.codebook, c.codebook)
        assert W.to_dense().tobytes() == c.to_dense().tobytes()
        assert W.nbytes < to_csr(m, [name])[0][name].weight.nbytes
    assert isinstance(sparse["fc3"].weight, CSRMatrix) and sparse["fc3"].weight.values is sparse["fc3"].weight.data
    x = np.random.default_rng(4).normal(size=(5, 12)).astype(np.float32)
    np.testing.assert_allclose(sparse.forward(x), shared.forward(x), rtol=1e-5, atol=1e-5)


def test_values_must_be_a_signed_integer_dtype():
    m, _ = prune_model(mlp(1), {"fc1": 0.5})
    for bad in ("uint8", "float8e4m3fn"):
        with pytest.raises(ValidationError, match="values"):
            to_csr(m, values=bad)
    with pytest.raises(ValidationError, match="values"):
        to_csr(m, values="int9")
    with pytest.raises(DTypeError, match="weight"):
        csr_weight(QTensor.quantize(np.ones((2, 2), np.float32), choose_qparams(0.0, 1.0, "int8")))
    W = csr_weight(m["fc1"].weight, values="int4")
    assert W.values.qparams.dtype.name == "int4" and W.nbytes == 8 * 17 + 8 * W.nnz + -(-W.nnz // 2) + 4


def test_a_plain_array_is_stored_as_its_2d_view_in_a_float_dtype():
    rng = np.random.default_rng(3)
    w = rng.normal(size=(3, 2, 2, 2)) * (rng.random((3, 2, 2, 2)) < 0.5)
    for dtype in (np.float64, np.float32):
        csr = csr_weight(w.astype(dtype))
        assert csr.to_dense().dtype == dtype
        np.testing.assert_array_equal(csr.to_dense(), w.astype(dtype).reshape(3, 8))
        assert csr.nnz == np.count_nonzero(w)
    ints = csr_weight(np.array([[0, 2], [-3, 0]], np.int64))            # other dtypes become float32
    assert ints.to_dense().dtype == np.float32 and ints.to_dense().tolist() == [[0.0, 2.0], [-3.0, 0.0]]


def test_a_clustered_kernel_keeps_its_bits_and_its_kept_indices():
    codebook = np.array([0.0, -0.5, 0.25, 1.0], np.float32)
    idx = np.random.default_rng(4).integers(0, 4, size=(2, 3, 2, 2)).astype(np.uint8)
    csr = csr_weight(Clustered(codebook, idx, bits=5))
    assert isinstance(csr.values, Clustered) and csr.values.bits == 5
    np.testing.assert_array_equal(csr.to_dense(), codebook[idx].reshape(2, 12))
    assert csr.nnz == np.count_nonzero(idx)                     # index 0 is the codebook's 0: not stored


def test_an_all_zero_weight_quantizes_to_no_codes():
    csr = csr_weight(np.zeros((2, 3), np.float32), values="int8")
    assert csr.nnz == 0 and not csr.to_dense().any()


def test_layers_by_one_name_and_unknown_names_refused():
    m, _ = prune_model(mlp(1), {"fc1": 0.8, "fc2": 0.5})
    sparse, report = to_csr(m, "fc2")
    assert list(report) == ["fc2"] and isinstance(sparse["fc2"].weight, CSRMatrix)
    assert not isinstance(sparse["fc1"].weight, CSRMatrix)
    for bad in (["fc9"], "fc9", ["fc1", "nope"]):
        with pytest.raises(ValidationError, match="^layers:"):
            to_csr(m, bad)


def test_min_sparsity_picks_layers_and_the_report_states_each():
    m, _ = prune_model(mlp(1), {"fc1": 0.75, "fc2": 0.5})     # fc3 unpruned: sparsity 0 (a float32 init)
    w = {n: m[n].weight.data for n in ("fc1", "fc2", "fc3")}
    s = {n: 1 - np.count_nonzero(v) / v.size for n, v in w.items()}
    assert s["fc1"] == 0.75 and s["fc2"] == 0.5 and s["fc3"] == 0.0
    _, report = to_csr(m, min_sparsity=0.5)                    # fc2 exactly at the threshold is taken
    assert list(report) == ["fc1", "fc2"]
    for n in report:
        assert report[n] == {"nnz": np.count_nonzero(w[n]), "sparsity": s[n],
                             "bytes": report[n]["bytes"], "dense_bytes": w[n].nbytes}
    m2 = copy.deepcopy(m)
    m2.layers["fc1"], m2.layers["fc3"] = m2.layers["fc3"], m2.layers["fc1"]   # a skipped layer first
    assert list(to_csr(m2, min_sparsity=0.6)[1]) == ["fc3"]
    # named layers are converted whatever their sparsity
    assert list(to_csr(m, ["fc3"], min_sparsity=0.9)[1]) == ["fc3"]
    assert list(to_csr(m, min_sparsity=1.0)[1]) == []
    for bad in (-0.1, 1.5):
        with pytest.raises(ValidationError, match="^min_sparsity:"):
            to_csr(m, min_sparsity=bad)


def test_int8_codes_are_symmetric_whatever_the_largest_magnitude():
    # max|w| = 1: s = 1 / 127.5 (float32), zero point 0 — an asymmetric choice on [-1, 1] would shift it
    csr = csr_weight(np.array([[1.0, 0.0, -0.5]], np.float32), values="int8")
    s = np.float32(1 / 127.5)
    assert csr.values.qparams.scale.item() == s and not csr.values.qparams.zero_point.any()
    # 1 / s = 127.5 rounds to 128 and saturates at 127; −0.5 / s = −63.75 rounds to −64
    assert csr.values.data.tolist() == [127, -64]
    # an all-zero weight: the empty range's scale 1 (choose_qparams eq. 8), nothing stored
    empty = csr_weight(np.zeros((2, 3), np.float32), values="int8")
    assert empty.values.qparams.scale.item() == 1.0 and not empty.values.qparams.zero_point.any()
