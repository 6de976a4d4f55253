"""CSRMatrix whose nnz values are a format: a QTensor (quantized CSR) or a Clustered (clustered CSR).

Every product is checked against an independent oracle: the dense matrix built
here from the stored arrays with NumPy (codes scattered, dequantized by the
affine formula or looked up in the codebook), float64 sums for floats and
int64 sums, bit for bit, for the integer path.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp.backend import available
from refcomp.errors import DTypeError, FileFormatError, ShapeError, ValidationError
from refcomp.formats import Clustered, CSRMatrix, Dense, QTensor
from refcomp.quant import QParams, choose_qparams

from .._support.csr import sparse_dense

U32 = 2.0**-24
INTEGER_BACKENDS = available("csr_spmm_i8")
FLOAT_BACKENDS = available("csr_linear_f32")


def _pattern(seed=0, shape=(37, 53), density=0.2):
    return CSRMatrix.from_dense(sparse_dense(np.random.default_rng(seed), shape, density))


def _int8_values(W: CSRMatrix) -> QTensor:
    """Per-tensor symmetric int8 codes of W's values (zero point 0)."""
    m = float(np.abs(W.data).max())
    return QTensor.quantize(W.data, choose_qparams(-m, m, "int8", symmetric=True))


def _scatter(W: CSRMatrix, values: np.ndarray) -> np.ndarray:
    """The dense matrix holding ``values`` at W's pattern, by a plain loop over rows (the oracle's CSR)."""
    out = np.zeros(W.shape, values.dtype)
    for r in range(W.shape[0]):
        for p in range(W.indptr[r], W.indptr[r + 1]):
            out[r, W.indices[p]] = values[p]
    return out


def _affine_oracle(q: QTensor) -> np.ndarray:
    """(q − z)·s in float32, one rounding, for one scale: docs/quantization.md eq. 2."""
    qp = q.qparams
    z = qp.zero_point.astype(np.int64).reshape(())
    return ((q.data.astype(np.int64) - z).astype(np.float32) * np.float32(qp.scale.reshape(())))


def _within_s2(y, W_dense, x):
    """|y − x·Wᵀ| within eq. S2 (gamma_m with m the row length) of the float64 product."""
    exact = x.astype(np.float64) @ W_dense.astype(np.float64).T
    m = np.count_nonzero(W_dense, axis=1).astype(np.float64)[None, :] + 1
    bound = m * U32 / (1 - m * U32) * (np.abs(x.astype(np.float64)) @ np.abs(W_dense.astype(np.float64)).T)
    assert (np.abs(y - exact) <= bound + 1e-30).all()


# ------------------------------------------------------------------ quantized values
def test_qtensor_values_are_the_dequantized_matrix():
    W = _pattern()
    Q = W.with_values(_int8_values(W))
    assert isinstance(Q.values, QTensor) and Q.values.shape == (W.nnz,)
    want = _scatter(W, _affine_oracle(Q.values))
    np.testing.assert_array_equal(Q.to_dense(), want)
    assert Q.to_dense().dtype == np.float32 and Q.dtype == np.float32
    assert np.abs(Q.to_dense() - W.to_dense()).max() <= Q.values.qparams.scale.item() / 2 * (1 + 1e-6)


@pytest.mark.parametrize("backend", FLOAT_BACKENDS)
def test_qtensor_values_matmul_is_the_float_product(backend):
    from refcomp.ops import sparse_linear

    W = _pattern(1)
    Q = W.with_values(_int8_values(W))
    x = np.random.default_rng(2).standard_normal((9, W.shape[1])).astype(np.float32)
    dense = _scatter(W, _affine_oracle(Q.values))
    _within_s2(sparse_linear(x, Q, backend=backend), dense, x)
    _within_s2(Q.matmul(x), dense, x)


@pytest.mark.parametrize("backend", INTEGER_BACKENDS)
@pytest.mark.parametrize("x_dtype,zero_point", [(np.uint8, 131), (np.int8, -5), (np.int8, 0)])
def test_int8_qtensor_values_run_the_exact_integer_path(backend, x_dtype, zero_point):
    rng = np.random.default_rng(3)
    W = _pattern(3)
    Q = W.with_values(_int8_values(W))
    info = np.iinfo(x_dtype)
    q_x = rng.integers(info.min, info.max + 1, (6, W.shape[1])).astype(x_dtype)
    bias = rng.integers(-1000, 1000, W.shape[0]).astype(np.int32)
    acc = Q.matmul_integer(q_x, x_zero_point=zero_point, bias=bias, backend=backend)
    codes = _scatter(W, Q.values.data).astype(np.int64)  # the oracle: int64 dense NumPy
    want = (q_x.astype(np.int64) - zero_point) @ codes.T + bias
    assert acc.dtype == np.int32
    np.testing.assert_array_equal(acc, want)
    # scaled once, the integers are the product of the dequantized operands
    s_x, s_w = 0.02, float(Q.values.qparams.scale.reshape(()))
    x_hat = (q_x.astype(np.float64) - zero_point) * s_x
    y = s_x * s_w * (acc - bias).astype(np.float64)
    np.testing.assert_allclose(y, x_hat @ (codes * s_w).T, rtol=1e-12, atol=1e-9)
    # a vector input, as sparse_linear_integer takes it
    np.testing.assert_array_equal(Q.matmul_integer(q_x[0], x_zero_point=zero_point, backend=backend),
                                  (q_x[0].astype(np.int64) - zero_point) @ codes.T)


def test_codes_operand_is_made_once_and_shares_the_pattern():
    W = _pattern(4)
    Q = W.with_values(_int8_values(W))
    codes = Q._integer_codes()
    assert codes is Q._integer_codes()
    assert codes.indices is W.indices and codes.indptr is W.indptr
    assert codes.data.dtype == np.int8 and not codes.data.flags.writeable
    # a plain int8 CSR is its own integer operand
    assert codes._integer_codes() is codes


def test_integer_path_refuses_values_it_cannot_run_exactly():
    W = _pattern(5)
    x = np.zeros((2, W.shape[1]), np.uint8)
    with pytest.raises(DTypeError, match="W.data"):
        W.matmul_integer(x)  # float values
    lo, hi = float(W.data.min()), float(W.data.max())
    asym = W.with_values(QTensor.quantize(W.data, choose_qparams(lo, hi, "int8")))
    assert asym.values.qparams.zero_point.item() != 0
    with pytest.raises(ValidationError, match="zero point 0"):
        asym.matmul_integer(x)
    u8 = W.with_values(QTensor.quantize(W.data, choose_qparams(lo, hi, "uint8")))
    with pytest.raises(DTypeError, match="int8 QTensor"):
        u8.matmul_integer(x)
    per_element = W.with_values(QTensor.quantize(W.data, choose_qparams(
        np.minimum(W.data, 0), np.maximum(W.data, 0), "int8", symmetric=True, axis=0)))
    np.testing.assert_allclose(per_element.to_dense(), W.to_dense(), rtol=1e-2, atol=0)  # float semantics hold
    with pytest.raises(ValidationError, match="one scale"):
        per_element.matmul_integer(x)


@pytest.mark.parametrize("dtype", ["int4", "uint8", "float8e4m3fn"])
def test_any_1d_qtensor_values_compute_with_their_dequantized_values(dtype):
    W = _pattern(6)
    lo, hi = float(W.data.min()), float(W.data.max())
    Q = W.with_values(QTensor.quantize(W.data, choose_qparams(lo, hi, dtype)))
    want = _scatter(W, Q.values.to_dense())
    np.testing.assert_array_equal(Q.to_dense(), want)
    x = np.random.default_rng(7).standard_normal((5, W.shape[1])).astype(np.float32)
    _within_s2(Q.matmul(x), want, x)


# ------------------------------------------------------------------ clustered values
def _clustered_values(W: CSRMatrix, k=4, seed=0) -> Clustered:
    rng = np.random.default_rng(seed)
    codebook = np.sort(rng.standard_normal(k)).astype(np.float32)
    return Clustered(codebook, rng.integers(0, k, W.nnz))


def test_clustered_values_are_the_codebook_lookup():
    W = _pattern(8)
    K = W.with_values(_clustered_values(W))
    c, i = K.values.codebook, K.values.indices
    want = np.zeros(W.shape, np.float32)
    want[np.repeat(np.arange(W.shape[0]), np.diff(W.indptr)), W.indices] = [c[j] for j in i]
    np.testing.assert_array_equal(K.to_dense(), want)
    x = np.random.default_rng(9).standard_normal((7, W.shape[1])).astype(np.float32)
    _within_s2(K.matmul(x), want, x)
    with pytest.raises(DTypeError, match="W.data"):
        K.matmul_integer(np.zeros((1, W.shape[1]), np.int8))


def test_clustered_values_keep_the_codebook_dtype():
    W = CSRMatrix.from_dense(sparse_dense(np.random.default_rng(10), (6, 9), 0.4, np.float64))
    K = W.with_values(Clustered(np.array([-0.5, 0.25], np.float64), np.arange(W.nnz) % 2))
    assert K.dtype == np.float64
    x = np.ones((2, 9))
    np.testing.assert_allclose(K.matmul(x), x @ K.to_dense().T, rtol=1e-14)


# ------------------------------------------------------------------ sizes
def test_nbytes_count_the_pattern_and_the_stored_values_never_the_decoded_ones():
    W = _pattern(11)
    rows, nnz = W.shape[0], W.nnz
    pattern = 8 * (rows + 1) + 8 * nnz
    assert W.nbytes == pattern + 4 * nnz
    Q = W.with_values(_int8_values(W))
    assert Q.nbytes == pattern + nnz + 4          # int8 codes + one float32 scale (zero point 0 not stored)
    assert Q.storage_bits == 8 * Q.nbytes
    K = W.with_values(_clustered_values(W, k=4))  # 2-bit indices + 4 float32 centroids
    assert K.storage_bits == 8 * pattern + 2 * nnz + 4 * 32
    assert K.nbytes == pattern + -(-2 * nnz // 8) + 4 * 4
    q4 = W.with_values(QTensor.quantize(W.data, choose_qparams(-3.0, 3.0, "int4", symmetric=True)))
    assert q4.nbytes == pattern + -(-nnz // 2) + 4


# ------------------------------------------------------------------ one canonical CSR
def test_with_values_shares_the_checked_pattern_and_leaves_the_matrix_alone():
    W = _pattern(12)
    ki = W.kernel_indices
    before = W.data.copy()
    Q = W.with_values(_int8_values(W))
    assert Q.indptr is W.indptr and Q.indices is W.indices and Q.kernel_indices is ki
    np.testing.assert_array_equal(W.data, before)
    assert W.values is W.data
    assert not Q.data.flags.writeable and not Q.indices.flags.writeable
    # the constructor takes a values format as well, checking the pattern first
    R = CSRMatrix(W.indptr, W.indices, Q.values, W.shape)
    np.testing.assert_array_equal(R.to_dense(), Q.to_dense())
    with pytest.raises(ValidationError, match="indices"):
        CSRMatrix(W.indptr, W.indices[::-1].copy(), Q.values, W.shape)


@pytest.mark.parametrize("make_values,cls,match", [
    (lambda W: _int8_values(_pattern(13, (37, 53), 0.1)), ShapeError, "nnz"),       # another pattern's values
    (lambda W: QTensor.quantize(W.to_dense(), choose_qparams(-3.0, 3.0, "int8", symmetric=True)),
     ShapeError, "1-D"),                                                              # a 2-D QTensor
    (lambda W: Clustered(np.array([0.5], np.float32), np.zeros(W.nnz, int), np.ones(W.nnz, bool)),
     ValidationError, "without mask"),
    (lambda W: Dense(W.data.copy()), DTypeError, "QTensor / Clustered"),
    (lambda W: W.data[:, None], ShapeError, "1-D"),
    (lambda W: W.data.astype(np.int32), DTypeError, "int8"),
])
def test_malformed_values_are_rejected_naming_data(make_values, cls, match):
    W = _pattern(12)
    with pytest.raises(cls, match=match) as info:
        W.with_values(make_values(W))
    assert "data" in str(info.value)
    with pytest.raises(cls, match=match):
        CSRMatrix(W.indptr, W.indices, make_values(W), W.shape)


def test_non_finite_decoded_values_are_rejected():
    W = _pattern(14)
    qp = QParams(np.float32(1.0), dtype="float8e4m3fn")
    codes = np.zeros(W.nnz, qp.dtype.np_dtype)
    codes[3] = np.nan
    with pytest.raises(ValidationError, match="finite"):
        W.with_values(QTensor(codes, qp))


# ------------------------------------------------------------------ fields
@pytest.mark.parametrize("kind", ["qtensor", "clustered"])
def test_fields_hold_the_values_format_as_a_part(kind):
    W = _pattern(15)
    C = W.with_values(_int8_values(W) if kind == "qtensor" else _clustered_values(W))
    f = C.fields()
    assert set(f) == {"indptr", "indices", "data", "shape"} and f["data"] is C.values
    back = CSRMatrix.from_fields(dict(f))
    assert type(back.values) is type(C.values)
    assert back.to_dense().tobytes() == C.to_dense().tobytes() and back.nbytes == C.nbytes
    bad = dict(f, indices=f["indices"][::-1].copy())
    with pytest.raises(FileFormatError, match="indices"):
        CSRMatrix.from_fields(bad)
    short = dict(f, indptr=np.array([0] * W.shape[0] + [W.nnz - 1]), indices=f["indices"][:-1])
    with pytest.raises(FileFormatError, match="nnz"):
        CSRMatrix.from_fields(short)


def test_a_model_file_with_values_of_the_wrong_length_is_refused(tmp_path):
    import json

    from refcomp import models
    from refcomp.io import load_model, save_model

    m = models.lenet_300_100().eval()
    W = CSRMatrix.from_dense(np.where(np.abs(m["fc2"].weight.data) > 0.03, m["fc2"].weight.data, 0))
    m["fc2"].weight = W.with_values(_int8_values(W))
    path = save_model(m, tmp_path / "m.npz")
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(arrays.pop("__refcomp_header__").tobytes())
    assert header["weights"]["fc2.weight"]["parts"]["data"]["format"] == "QTensor"
    key = "fc2.weight.data.data"
    arrays[key] = arrays[key][:-1]
    header["tensors"][key]["shape"] = list(arrays[key].shape)
    header.pop("checksum")      # as a file written before the checksum: what is tested is the check behind it
    text = np.frombuffer(json.dumps(header).encode(), np.uint8)
    np.savez(tmp_path / "bad.npz", __refcomp_header__=text, **arrays)
    with pytest.raises(FileFormatError, match="fc2.weight"):
        load_model(tmp_path / "bad.npz")


# ------------------------------------------------------------------ property
@settings(max_examples=60, deadline=None)
@given(rows=st.integers(0, 7), cols=st.integers(1, 9), density=st.floats(0, 1), seed=st.integers(0, 2**16),
       zero_point=st.integers(0, 255))
def test_integer_path_equals_the_int64_oracle(rows, cols, density, seed, zero_point):
    rng = np.random.default_rng(seed)
    dense = sparse_dense(rng, (rows, cols), density)
    W = CSRMatrix.from_dense(dense)
    if W.nnz == 0:
        qp = choose_qparams(0.0, 0.0, "int8", symmetric=True)
    else:
        m = float(np.abs(W.data).max())
        qp = choose_qparams(-m, m, "int8", symmetric=True)
    Q = W.with_values(QTensor.quantize(W.data, qp))
    q_x = rng.integers(0, 256, (3, cols)).astype(np.uint8)
    want = (q_x.astype(np.int64) - zero_point) @ _scatter(W, Q.values.data).astype(np.int64).T
    np.testing.assert_array_equal(Q.matmul_integer(q_x, x_zero_point=zero_point), want)
    np.testing.assert_array_equal(Q.to_dense(), _scatter(W, _affine_oracle(Q.values)))
