"""CSRMatrix validation and conversions; W @ X and sparse_linear on every backend vs references."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from refcomp.errors import OverflowRiskError, ShapeError, ValidationError
from refcomp.formats import CSRMatrix
from refcomp.ops import sparse_linear, sparse_linear_integer

from .._support.csr import sparse_dense
from .conftest import C_ISAS

U32 = 2.0**-24


# ------------------------------------------------------------------ validation
def test_c_wrapper_rejects_malformed_csr_before_c():
    if not C_ISAS:
        pytest.skip("C kernels not built")
    from refcomp.kernels import c

    X = np.ones((4, 2), np.float32)
    with pytest.raises(ValidationError, match="indices"):
        c.csr_spmm_f32([0, 1], [7], np.ones(1, np.float32), (1, 4), X)
    with pytest.raises(ValidationError, match="indptr"):
        c.csr_spmm_f32([0, 5], [1], np.ones(1, np.float32), (1, 4), X)
    with pytest.raises(ShapeError, match="X"):
        c.csr_spmm_f32([0, 1], [1], np.ones(1, np.float32), (1, 4), np.ones((3, 2), np.float32))


# ------------------------------------------------------------------ float products
def _bound(W, X, extra=0):
    """eq. S2: gamma_{m+extra} * sum |w x| per output."""
    m = np.diff(W.indptr).astype(np.float64)[:, None] + extra
    gamma = m * U32 / (1 - m * U32)
    return gamma * (np.abs(W.to_dense().astype(np.float64)) @ np.abs(X.astype(np.float64)))


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.integers(1, 40), cols=st.integers(1, 40), n=st.integers(1, 140),
       density=st.sampled_from([0.0, 0.05, 0.3, 1.0]), seed=st.integers(0, 2**32 - 1))
def test_spmm_within_bound(fast, rows, cols, n, density, seed):
    rng = np.random.default_rng(seed)
    W = CSRMatrix.from_dense(sparse_dense(rng, (rows, cols), density))
    X = (rng.standard_normal((cols, n)) * 10.0 ** rng.integers(-3, 4)).astype(np.float32)
    exact = W.to_dense().astype(np.float64) @ X.astype(np.float64)
    got = W.dot(X, backend=fast)
    assert got.dtype == np.float32 and got.shape == (rows, n)
    assert np.all(np.abs(got - exact) <= _bound(W, X)), np.abs(got - exact).max()


def test_sparse_linear_bound_bias_and_vector(fast):
    rng = np.random.default_rng(1)
    for sparsity in (0.5, 0.9, 0.98):
        Wd = sparse_dense(rng, (70, 130), 1 - sparsity)
        W = CSRMatrix.from_dense(Wd)
        x = rng.standard_normal((33, 130)).astype(np.float32)
        b = rng.standard_normal(70).astype(np.float32)
        exact = x.astype(np.float64) @ Wd.T.astype(np.float64) + b
        y = sparse_linear(x, W, b, backend=fast)
        bound = _bound(W, x.T, extra=1).T + np.abs(b) * 2 * U32
        assert np.all(np.abs(y - exact) <= bound)
        np.testing.assert_allclose(W.matmul(x), x @ Wd.T, rtol=1e-4, atol=1e-4)
        yv = sparse_linear(x[3], W, b, backend=fast)
        np.testing.assert_array_equal(yv, y[3])


def test_spmm_non_contiguous_input(fast):
    rng = np.random.default_rng(2)
    W = CSRMatrix.from_dense(sparse_dense(rng, (20, 30), 0.3))
    X = rng.standard_normal((60, 40)).astype(np.float32)[::2, ::3]  # (30, 14) strided
    np.testing.assert_allclose(W.dot(X, backend=fast), W.to_dense() @ X, rtol=1e-5, atol=1e-5)


def test_spmm_thread_invariance(fast, threads):
    rng = np.random.default_rng(3)
    W = CSRMatrix.from_dense(sparse_dense(rng, (300, 256), 0.2))
    X = rng.standard_normal((256, 150)).astype(np.float32)
    x = np.ascontiguousarray(X.T)
    b = rng.standard_normal(300).astype(np.float32)
    threads(1)
    one = W.dot(X, backend=fast)
    lin = sparse_linear(x, W, b, backend=fast)
    threads(2)
    np.testing.assert_array_equal(W.dot(X, backend=fast), one)
    np.testing.assert_array_equal(sparse_linear(x, W, b, backend=fast), lin)
    np.testing.assert_array_equal(lin, one.T + b)  # (W x^T)^T + b with one float32 add


# ------------------------------------------------------------------ int8 products
@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.integers(1, 30), cols=st.integers(1, 40), batch=st.integers(1, 20),
       xdt=st.sampled_from([np.int8, np.uint8]), extreme=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_sparse_linear_integer_exact(fast, rows, cols, batch, xdt, extreme, seed):
    rng = np.random.default_rng(seed)
    Wd = rng.integers(-128, 128, (rows, cols)).astype(np.int8)
    Wd[rng.random(Wd.shape) < 0.6] = 0
    info = np.iinfo(xdt)
    if extreme:
        Wd[Wd != 0] = -128
        x = np.full((batch, cols), info.max, xdt)
        zx = info.min
    else:
        x = rng.integers(info.min, info.max + 1, (batch, cols)).astype(xdt)
        zx = int(rng.integers(info.min, info.max + 1))
    bias = rng.integers(-(2**20), 2**20, rows).astype(np.int32)
    W = CSRMatrix.from_dense(Wd)
    want = (x.astype(np.int64) - zx) @ Wd.T.astype(np.int64) + bias
    got = sparse_linear_integer(x, W, bias, x_zero_point=zx, backend=fast)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(sparse_linear_integer(x, W, bias, x_zero_point=zx, backend="numpy"), want)


def test_sparse_linear_integer_overflow_policy(fast):
    # 70000 non-zeros of -128 times (255 - 0): beyond the int32 precondition
    W = CSRMatrix(np.array([0, 70000, 140000]), np.tile(np.arange(70000), 2),
                  np.concatenate([np.full(70000, -128), np.tile([127, -128], 35000)]).astype(np.int8), (2, 70000))
    x = np.full((1, 70000), 255, np.uint8)
    with pytest.raises(OverflowRiskError):
        sparse_linear_integer(x, W, backend=fast)
    W1 = CSRMatrix(W.indptr[1:] - 70000, W.indices[70000:], W.data[70000:], (1, 70000))
    assert sparse_linear_integer(x, W1, backend=fast)[0, 0] == -35000 * 255  # fits: exact via int64


@pytest.mark.skipif(not C_ISAS, reason="C kernels not built")
@pytest.mark.parametrize("isa", C_ISAS)
@pytest.mark.parametrize("density", [0.05, 0.2, 0.5])
def test_column_blocked_kernel_gives_the_same_bits(isa, density):
    from refcomp.kernels import c

    rng = np.random.default_rng(7)
    W = CSRMatrix.from_dense(sparse_dense(rng, (300, 700), density))
    X = rng.standard_normal((700, 128)).astype(np.float32)
    blocks = W.column_blocks(128)
    assert blocks is not None and blocks[0] >= 2
    flat = c.csr_spmm_f32(W.indptr, W.indices, W.data, W.shape, X, isa=isa)
    blocked = c.csr_spmm_f32(W.indptr, W.indices, W.data, W.shape, X, isa=isa, blocks=blocks)
    np.testing.assert_array_equal(blocked, flat)
    x = np.ascontiguousarray(X.T)
    np.testing.assert_array_equal(c.csr_linear_f32(W.indptr, W.indices, W.data, W.shape, x, isa=isa, blocks=blocks),
                                  flat.T)
    bad = (blocks[0], blocks[1].copy())
    bad[1][0, -1] += 1  # does not partition row 0: the C library refuses it
    with pytest.raises(ValidationError, match="blocks"):
        c.csr_spmm_f32(W.indptr, W.indices, W.data, W.shape, X, isa=isa, blocks=bad)


@pytest.mark.skipif(not C_ISAS, reason="C kernels not built")
@pytest.mark.parametrize("isa", C_ISAS)
def test_c_kernels_take_any_integer_indices_alike(isa):
    from refcomp.kernels import c

    rng = np.random.default_rng(4)
    W = CSRMatrix.from_dense(sparse_dense(rng, (50, 70), 0.3))
    X = rng.standard_normal((70, 33)).astype(np.float32)
    ref = c.csr_spmm_f32(W.indptr, W.indices, W.data, W.shape, X, isa=isa)
    for idx in (W.kernel_indices, W.indices.astype(np.int32), W.indices.astype(np.uint16)):
        np.testing.assert_array_equal(c.csr_spmm_f32(W.indptr, idx, W.data, W.shape, X, isa=isa), ref)
    # an int64 index that a narrower type would wrap into range is rejected before narrowing
    bad = W.indices.copy()
    bad[0] = 2**32 + int(bad[0])
    with pytest.raises(ValidationError, match="indices"):
        c.csr_spmm_f32(W.indptr, bad, W.data, W.shape, X, isa=isa)
    with pytest.raises(ShapeError, match="columns"):
        c.csr_spmm_f32(W.indptr, W.indices, W.data, (50, 2**31), X, isa=isa)


@pytest.mark.skipif(not C_ISAS, reason="C kernels not built")
def test_wide_matrix_uses_int32_indices_with_the_same_result():
    from refcomp.kernels import c

    rng = np.random.default_rng(5)
    cols = 70000  # past uint16
    indptr = np.array([0, 3, 5])
    indices = np.array([1, 40000, 69999, 0, 65536])
    W = CSRMatrix(indptr, indices, rng.standard_normal(5).astype(np.float32), (2, cols))
    X = np.zeros((cols, 4), np.float32)
    X[indices] = rng.standard_normal((5, 4)).astype(np.float32)
    got = c.csr_spmm_f32(W.indptr, W.kernel_indices, W.data, W.shape, X)
    np.testing.assert_allclose(got, W.to_dense() @ X, rtol=1e-6, atol=1e-6)
