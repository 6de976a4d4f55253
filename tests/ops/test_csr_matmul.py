"""csr_matmul: Y = W @ X (eq. S0) against scipy.sparse and Python ints on the NumPy definition, the
operand and dtype contract, the int32 overflow rule, the fast-kernel dispatch, and the kernels'
index type and column blocks (block_width's rule against the widths docs/kernels.md measured)."""

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp.errors import DTypeError, OverflowRiskError, ShapeError, ValidationError
from refcomp.formats import CSRMatrix
from refcomp.ops.csr_matmul import block_pointers, block_width, csr_matmul, csr_operand, kernel_index_dtype

from .._support.csr import sparse_dense
from .._support.helpers import recording_kernel

seeds = st.integers(0, 2**32 - 1)


def random_csr(rng, shape, density, dtype):
    if np.dtype(dtype) == np.int8:
        W = rng.integers(-128, 128, shape).astype(np.int8)
        W[rng.random(shape) >= density] = 0
        return CSRMatrix.from_dense(W)
    return CSRMatrix.from_dense(sparse_dense(rng, shape, density, dtype))


@settings(max_examples=30, deadline=None)
@given(seed=seeds, rows=st.integers(0, 6), cols=st.integers(1, 8), n=st.integers(0, 4),
       density=st.sampled_from([0.0, 0.3, 1.0]), wdt=st.sampled_from([np.float32, np.float64]),
       xdt=st.sampled_from([np.float32, np.float64]))
def test_float_product_equals_scipy(seed, rows, cols, n, density, wdt, xdt):
    # integer-valued floats: every product and sum is exact in float32, so any summation order agrees
    rng = np.random.default_rng(seed)
    W = CSRMatrix.from_dense(rng.integers(-9, 10, (rows, cols)).astype(wdt) * (rng.random((rows, cols)) < density))
    X = rng.integers(-9, 10, (cols, n)).astype(xdt)
    Y = csr_matmul(W, X, backend="numpy")
    want = sp.csr_array((W.data, W.indices, W.indptr), shape=W.shape) @ X
    assert Y.dtype == np.result_type(wdt, xdt) and Y.shape == (rows, n)
    np.testing.assert_array_equal(Y, want)


@settings(max_examples=30, deadline=None)
@given(seed=seeds, rows=st.integers(0, 6), cols=st.integers(1, 8), n=st.integers(0, 4),
       density=st.sampled_from([0.0, 0.3, 1.0]), xdt=st.sampled_from([np.int8, np.uint8, np.int16]))
def test_int8_product_equals_python_ints(seed, rows, cols, n, density, xdt):
    rng = np.random.default_rng(seed)
    W = random_csr(rng, (rows, cols), density, np.int8)
    i = np.iinfo(xdt)
    X = rng.integers(i.min, int(i.max) + 1, (cols, n)).astype(xdt)
    D = W.to_dense()
    want = [[sum(int(D[r, c]) * int(X[c, j]) for c in range(cols)) for j in range(n)] for r in range(rows)]
    Y = csr_matmul(W, X, backend="numpy")
    assert Y.dtype == np.int32 and Y.shape == (rows, n)
    assert Y.tolist() == want


def test_a_vector_x_gives_a_vector():
    W = CSRMatrix.from_dense(np.array([[1, 0, 2], [0, 0, 0], [0, 3, 0]], np.float32))
    y = csr_matmul(W, np.array([1, 10, 100], np.float32), backend="numpy")
    assert y.shape == (3,) and y.tolist() == [201, 0, 30]
    Wi = CSRMatrix.from_dense(np.array([[1, 0, -2], [0, 0, 0]], np.int8))
    yi = csr_matmul(Wi, np.array([1, 10, 100], np.int16), backend="numpy")
    assert yi.shape == (2,) and yi.dtype == np.int32 and yi.tolist() == [-199, 0]


def test_an_int32_overflow_is_refused():
    # 520 products of 127 * 32767: 2163932680 > 2**31 - 1 (the bound also sends it past the kernels)
    W = CSRMatrix.from_dense(np.full((1, 520), 127, np.int8))
    X = np.full((520, 1), 32767, np.int16)
    with pytest.raises(OverflowRiskError) as e:
        csr_matmul(W, X)
    assert e.value.argument == "W @ X" and "2163932680" in str(e.value)
    with pytest.raises(OverflowRiskError):
        csr_matmul(W, -X)
    # 516 such products fit: 516 * 4161409 = 2147287044
    assert csr_matmul(CSRMatrix.from_dense(np.full((1, 516), 127, np.int8)), X[:516]).tolist() == [[2147287044]]
    assert csr_matmul(CSRMatrix.from_dense(np.full((1, 516), 127, np.int8)), -X[:516]).tolist() == [[-2147287044]]


def test_bad_operands_are_refused():
    W = CSRMatrix.from_dense(np.eye(3, dtype=np.float32))
    Wi = CSRMatrix.from_dense(np.eye(3, dtype=np.int8))

    def refused(error, name, W, X):
        for backend in ("auto", "numpy"):  # the op refuses, not only a kernel's wrapper
            with pytest.raises(error) as e:
                csr_matmul(W, X, backend=backend)
            assert e.value.argument == name, (backend, str(e.value))

    refused(ShapeError, "X", W, np.ones((2, 2), np.float32))
    refused(ShapeError, "X", W, np.ones((3, 2, 1), np.float32))
    refused(DTypeError, "X", W, np.ones((3, 2), np.int8))
    refused(DTypeError, "X", W, np.ones((3, 2), np.float16))
    refused(ValidationError, "X", W, np.full((3, 2), np.nan, np.float32))
    refused(ValidationError, "X", W, np.full((3, 2), -np.inf))
    refused(DTypeError, "X", Wi, np.ones((3, 2), np.float32))
    refused(DTypeError, "X", Wi, np.ones((3, 2), np.int32))
    refused(ValidationError, "W", W.to_dense(), np.ones((3, 2), np.float32))


def test_only_a_validated_csr_is_an_operand():
    W = CSRMatrix.from_dense(np.eye(2, dtype=np.float32))
    assert csr_operand(W) is W

    class Truthy:  # canonical_csr must be the promise True itself, not merely truthy
        canonical_csr = 1

    for bad in (W.to_dense(), Truthy(), sp.csr_array(W.to_dense())):
        with pytest.raises(ValidationError) as e:
            csr_operand(bad, "weight")
        assert e.value.argument == "weight" and e.value.got == type(bad).__name__
    with pytest.raises(ValidationError) as e:
        csr_operand(None)
    assert e.value.argument == "W"


def test_kernel_index_type_is_the_narrowest_that_holds_every_column():
    assert kernel_index_dtype(1) == np.uint16
    assert kernel_index_dtype(65536) == np.uint16  # indices 0 .. 65535
    assert kernel_index_dtype(65537) == np.int32
    assert kernel_index_dtype(2**31 - 1) == np.int32
    with pytest.raises(ShapeError) as e:
        kernel_index_dtype(2**31)
    assert e.value.argument == "cols"


def test_block_width_picks_the_measured_widths():
    # docs/kernels.md, out = in = 1024, n = 128: 64 at 50 % sparsity, 64 at 80 %, 128 at 90 %, 256 at
    # 95 %, no blocking at 98 %
    size = 1024 * 1024
    for sparsity, kb in ((0.5, 64), (0.8, 64), (0.9, 128), (0.95, 256), (0.98, None)):
        assert block_width((1024, 1024), round((1 - sparsity) * size), 128) == kb, sparsity


def test_block_width_rule():
    # kb starts at the X rows filling 32 KiB: 32768 // (4 n), at least 16; it doubles while an average
    # row has fewer than 12 non-zeros in a block
    full = 1024 * 1024
    assert block_width((1024, 1024), full, 16) == 512
    assert block_width((1024, 1024), full, 2048) == 16
    assert block_width((1024, 1024), full, 4096) == 16
    assert block_width((1024, 1024), full * 12 // 64, 128) == 64  # exactly 12 per block of 64: enough
    assert block_width((1024, 1024), full * 12 // 64 - 1, 128) == 128
    # no blocking: fewer than 256 rows, no non-zero, fewer than 16 columns of X, or a block as wide as W
    assert block_width((255, 1024), full, 128) is None
    assert block_width((256, 1024), 256 * 1024, 128) == 64
    assert block_width((1024, 1024), 0, 128) is None
    assert block_width((1024, 1024), full, 15) is None
    assert block_width((256, 64), 256 * 64, 128) is None
    assert block_width((256, 65), 256 * 65, 128) == 64
    # 32768 // 400 = 81: the start width is a whole number of columns, not 81.92
    kb = block_width((1024, 1024), full // 2, 100)
    assert kb == 81 and type(kb) is int


@settings(max_examples=30, deadline=None)
@given(seed=seeds, rows=st.integers(1, 6), cols=st.integers(1, 40), kb=st.integers(1, 16),
       density=st.sampled_from([0.0, 0.2, 0.7, 1.0]))
def test_block_pointers_count_the_entries_before_each_block(seed, rows, cols, kb, density):
    rng = np.random.default_rng(seed)
    W = random_csr(rng, (rows, cols), density, np.float32)
    nb, bp = block_pointers(W.indptr, W.indices, W.shape, kb)
    assert nb == -(-cols // kb) and bp.shape == (rows, nb + 1) and bp.dtype == np.int64
    assert not bp.flags.writeable
    for r in range(rows):
        row = W.indices[W.indptr[r]:W.indptr[r + 1]]
        for b in range(nb + 1):
            assert bp[r, b] == W.indptr[r] + sum(1 for c in row if c < b * kb), (r, b)


def test_the_kernels_run_unless_numpy_is_asked_or_int32_could_overflow(kernel_registry):
    calls = []
    dense = lambda indptr, idx, data, shape, X, **kw: (  # noqa: E731
        CSRMatrix(indptr, np.asarray(idx, np.int64), data, shape).to_dense().astype(np.int64) @ X.astype(np.int64))
    kernel_registry({("csr_spmm_f32", "c"): recording_kernel(calls, "f32", lambda *a, **k: dense(*a, **k).astype(np.float32)),
                     ("csr_spmm_i8", "c"): recording_kernel(calls, "i8", lambda *a, **k: dense(*a, **k).astype(np.int32))})
    W = CSRMatrix.from_dense(np.array([[1, 0, 2], [0, 3, 0]], np.float32))
    X = np.arange(6, dtype=np.float32).reshape(3, 2)
    for backend, Wd, Xd, expected in (("auto", np.float32, np.float32, ["f32"]), ("numpy", np.float32, np.float32, []),
                                      ("auto", np.float64, np.float32, []), ("auto", np.float32, np.float64, [])):
        calls.clear()
        Y = csr_matmul(CSRMatrix.from_dense(W.to_dense().astype(Wd)), X.astype(Xd), backend=backend)
        assert Y.tolist() == [[8, 11], [6, 9]] and calls == expected, (backend, Wd, Xd)
    Wi = CSRMatrix.from_dense(np.array([[1, 0, -2], [0, 3, 0]], np.int8))
    for backend, expected in (("auto", ["i8"]), ("numpy", [])):
        calls.clear()
        assert csr_matmul(Wi, X.astype(np.int8), backend=backend).tolist() == [[-8, -9], [6, 9]]
        assert calls == expected, backend
    # the kernels accumulate in int32: they run only when max_row_nnz * max|data| * max|X| <= 2**31 - 1
    # (516 * 127 * 32767 is, 517 * 127 * 32767 is not) says no partial sum can leave it
    for nnz, expected in ((516, ["i8"]), (517, [])):
        calls.clear()
        X16 = np.zeros((nnz, 1), np.int16)
        X16[0] = 32767
        W16 = CSRMatrix.from_dense(np.full((1, nnz), 127, np.int8))
        assert csr_matmul(W16, X16).tolist() == [[127 * 32767]]
        assert calls == expected, nnz


def test_matrices_wider_than_int32_indices_never_reach_the_kernels(kernel_registry):
    calls = []
    kernel_registry({("csr_spmm_f32", "c"): recording_kernel(calls, "f32", None), ("csr_spmm_i8", "c"): recording_kernel(calls, "i8", None)})
    for dt, xdt in ((np.float32, np.float32), (np.int8, np.int8)):
        W = CSRMatrix([0, 0], np.zeros(0, np.int64), np.zeros(0, dt), (1, 2**31))  # no entry: an X of 2**31 rows and no column
        Y = csr_matmul(W, np.zeros((2**31, 0), xdt))
        assert Y.shape == (1, 0) and calls == []


def test_the_int32_result_is_exact_up_to_both_ends_and_refused_beyond():
    def product(w, x):
        return csr_matmul(CSRMatrix.from_dense(np.array([w], np.int8)), np.array(x, np.int16)[:, None], backend="numpy")

    # 512 * (-128) * (-32768) = 2**31 is one past the top; one more product of 1 * (-1) brings it back
    assert product([-128] * 512 + [1], [-32768] * 512 + [-1]).tolist() == [[2**31 - 1]]
    with pytest.raises(OverflowRiskError):
        product([-128] * 512, [-32768] * 512)
    # 1024 * (-128) * 16384 = -2**31 is the bottom; one more product of -1 * 1 is past it
    assert product([-128] * 1024, [16384] * 1024).tolist() == [[-(2**31)]]
    with pytest.raises(OverflowRiskError):
        product([-128] * 1024 + [-1], [16384] * 1024 + [1])


def test_the_kernels_are_told_w_is_validated_and_given_its_column_blocks(kernel_registry):
    # a CSRMatrix is validated once, at construction: the op says so (validated=True) so the kernel
    # wrappers skip their O(nnz) re-check, and the float kernel gets the blocks W caches for this n
    # (None when blocking does not pay), not blocks of its own making
    seen = []

    def record(result_dtype):
        def kernel(indptr, indices, data, shape, X, **kwargs):
            seen.append(kwargs)
            return np.zeros((shape[0], X.shape[1]), result_dtype)
        return kernel

    kernel_registry({("csr_spmm_f32", "c"): record(np.float32), ("csr_spmm_i8", "c"): record(np.int32)})
    rng = np.random.default_rng(0)
    W = random_csr(rng, (256, 64), 0.5, np.float32)  # kb would be >= its 64 columns: not blocked
    csr_matmul(W, np.ones((64, 16), np.float32))
    assert seen == [{"validated": True, "blocks": None}]
    Wb = random_csr(rng, (256, 1024), 0.5, np.float32)  # kb = 64 for n = 128: blocked
    seen.clear()
    csr_matmul(Wb, np.ones((1024, 128), np.float32))
    nb, bp = seen[0]["blocks"]
    assert nb == 1024 // 64 and np.array_equal(bp, block_pointers(Wb.indptr, Wb.indices, Wb.shape, 64)[1])
    seen.clear()
    csr_matmul(random_csr(rng, (3, 4), 0.5, np.int8), np.ones((4, 2), np.int8))
    assert seen == [{"validated": True}]
