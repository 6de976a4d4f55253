"""sparse_linear (eq. S1) and sparse_linear_integer (eq. S3) against Python ints, their dtypes, shapes, int32
range and refusals, and the fast-kernel dispatch; sparse_linear and CSRMatrix.dot reject bad input."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp.errors import DTypeError, OverflowRiskError, ShapeError, ValidationError
from refcomp.formats import CSRMatrix
from refcomp.ops import sparse_linear, sparse_linear_integer

from .._support.csr import make
from .._support.helpers import recording_kernel

seeds = st.integers(0, 2**32 - 1)


def test_sparse_linear_rejects_bad_input():
    W = make()
    with pytest.raises(ShapeError, match="x"):
        sparse_linear(np.ones((2, 3), np.float32), W)
    with pytest.raises(DTypeError, match="x"):
        sparse_linear(np.ones((2, 4), np.int32), W)
    with pytest.raises(ValidationError, match="W"):
        sparse_linear(np.ones((2, 4), np.float32), W.to_dense())
    with pytest.raises(ShapeError, match="bias"):
        sparse_linear(np.ones((2, 4), np.float32), W, np.ones(4, np.float32))
    with pytest.raises(ValidationError, match="finite"):
        W.dot(np.full((4, 1), np.inf, np.float32))


def test_integer_dot_rejects_float_x():
    W = CSRMatrix.from_dense(np.eye(3, dtype=np.int8))
    with pytest.raises(DTypeError, match="X"):
        W.dot(np.ones((3, 2), np.float32))
    with pytest.raises(DTypeError, match="W"):
        sparse_linear(np.ones((2, 3), np.float32), W)


def _int_valued(rng, shape, density, dtype):
    """Small integers in a float dtype: every product and partial sum is exact, so any order of summation
    gives the exact value and the comparison can be bit for bit."""
    W = rng.integers(-9, 10, shape).astype(dtype)
    W[rng.random(shape) >= density] = 0
    return W


@settings(max_examples=30, deadline=None)
@given(seed=seeds, batch=st.integers(1, 4), n_in=st.integers(1, 7), n_out=st.integers(1, 6),
       density=st.sampled_from([0.0, 0.4, 1.0]), wdt=st.sampled_from([np.float32, np.float64]),
       xdt=st.sampled_from([np.float32, np.float64]), bdt=st.sampled_from([None, np.float32, np.float64]))
def test_float_layer_is_x_times_w_transposed_plus_bias(seed, batch, n_in, n_out, density, wdt, xdt, bdt):
    rng = np.random.default_rng(seed)
    D = _int_valued(rng, (n_out, n_in), density, wdt)
    x = rng.integers(-9, 10, (batch, n_in)).astype(xdt)
    b = None if bdt is None else rng.integers(-50, 50, n_out).astype(bdt)
    y = sparse_linear(x, CSRMatrix.from_dense(D), b, backend="numpy")
    want = [[sum(int(x[i, k]) * int(D[o, k]) for k in range(n_in)) + (0 if b is None else int(b[o]))
             for o in range(n_out)] for i in range(batch)]
    dt = np.result_type(xdt, wdt, *(() if bdt is None else (bdt,)))
    assert y.dtype == dt and y.shape == (batch, n_out) and y.flags.c_contiguous
    assert y.tolist() == want
    v = sparse_linear(x[0], CSRMatrix.from_dense(D), b, backend="numpy")
    assert v.shape == (n_out,) and v.tolist() == want[0]


@settings(max_examples=30, deadline=None)
@given(seed=seeds, batch=st.integers(1, 4), n_in=st.integers(1, 7), n_out=st.integers(1, 6),
       xdt=st.sampled_from([np.int8, np.uint8]), bias=st.booleans())
def test_integer_layer_equals_python_ints(seed, batch, n_in, n_out, xdt, bias):
    rng = np.random.default_rng(seed)
    D = rng.integers(-128, 128, (n_out, n_in)).astype(np.int8)
    D[rng.random((n_out, n_in)) < 0.4] = 0
    i = np.iinfo(xdt)
    x = rng.integers(i.min, int(i.max) + 1, (batch, n_in)).astype(xdt)
    zx = int(rng.integers(i.min, int(i.max) + 1))
    b = rng.integers(-(2**20), 2**20, n_out).astype(np.int32) if bias else None
    y = sparse_linear_integer(x, CSRMatrix.from_dense(D), b, x_zero_point=xdt(zx), backend="numpy")
    want = [[sum((int(x[j, k]) - zx) * int(D[o, k]) for k in range(n_in)) + (int(b[o]) if bias else 0)
             for o in range(n_out)] for j in range(batch)]
    assert y.dtype == np.int32 and y.shape == (batch, n_out) and y.flags.c_contiguous
    assert y.tolist() == want
    v = sparse_linear_integer(x[0], CSRMatrix.from_dense(D), b, x_zero_point=zx, backend="numpy")
    assert v.shape == (n_out,) and v.tolist() == want[0]


def test_integer_bias_that_leaves_int32_is_refused():
    # acc = 127 * 127 = 16129; + bias 2**31 - 1 - 16129 is the largest int32, one more is not
    W = CSRMatrix.from_dense(np.array([[127]], np.int8))
    x = np.array([[127]], np.int8)
    top = 2**31 - 1 - 16129
    assert sparse_linear_integer(x, W, np.array([top], np.int32)).tolist() == [[2**31 - 1]]
    with pytest.raises(OverflowRiskError) as e:
        sparse_linear_integer(x, W, np.array([top + 1], np.int32))
    assert e.value.argument == "y" and "2147483648" in str(e.value)
    bottom = -(2**31) + 16129
    assert sparse_linear_integer(-x, W, np.array([bottom], np.int32)).tolist() == [[-(2**31)]]
    with pytest.raises(OverflowRiskError):
        sparse_linear_integer(-x, W, np.array([bottom - 1], np.int32))


def test_integer_zero_point_must_be_a_scalar_integer_in_the_range_of_x():
    W = CSRMatrix.from_dense(np.eye(2, dtype=np.int8))
    for x, good, bad in ((np.zeros((1, 2), np.uint8), (0, 255), (-1, 256)), (np.zeros((1, 2), np.int8), (-128, 127), (-129, 128))):
        for z in good:
            assert sparse_linear_integer(x, W, x_zero_point=z).tolist() == [[-z, -z]]
        for z in bad + (1.0, np.array([0]), np.bool_(True)):
            with pytest.raises(ValidationError) as e:
                sparse_linear_integer(x, W, x_zero_point=z)
            assert e.value.argument == "x_zero_point"


def test_integer_input_and_bias_dtypes_are_refused():
    W = CSRMatrix.from_dense(np.eye(2, dtype=np.int8))
    for x in (np.zeros((1, 2), np.int16), np.zeros((1, 2), np.float32)):
        with pytest.raises(DTypeError) as e:
            sparse_linear_integer(x, W)
        assert e.value.argument == "x"
    with pytest.raises(DTypeError) as e:
        sparse_linear_integer(np.zeros((1, 2), np.int8), W, np.zeros(2, np.int64))
    assert e.value.argument == "bias"
    with pytest.raises(DTypeError) as e:
        sparse_linear_integer(np.zeros((1, 2), np.int8), CSRMatrix.from_dense(np.eye(2, dtype=np.float32)))
    assert e.value.argument == "W"
    with pytest.raises(ShapeError) as e:
        sparse_linear_integer(np.zeros((1, 2, 1), np.int8), W)
    assert e.value.argument == "x"


def test_float_bias_must_be_finite_float_of_shape_out():
    W = CSRMatrix.from_dense(np.eye(2, dtype=np.float32))
    x = np.ones((1, 2), np.float32)
    for bad, error in ((np.array([0, np.nan], np.float32), ValidationError), (np.array([np.inf, 0]), ValidationError),
                       (np.zeros(2, np.int32), DTypeError), (np.zeros((2, 1), np.float32), ShapeError)):
        with pytest.raises(error) as e:
            sparse_linear(x, W, bad)
        assert e.value.argument == "bias"
    with pytest.raises(DTypeError) as e:
        sparse_linear(np.ones((1, 2), np.float16), W)
    assert e.value.argument == "x"


def test_the_kernels_run_unless_numpy_is_asked(kernel_registry):
    calls = []

    def linear(indptr, idx, data, shape, x, b, **kw):
        y = x @ CSRMatrix(indptr, np.asarray(idx, np.int64), data, shape).to_dense().T
        return y if b is None else y + b

    def spmm(indptr, idx, data, shape, X, **kw):
        D = CSRMatrix(indptr, np.asarray(idx, np.int64), data, shape).to_dense()
        return (D.astype(np.int64) @ X.astype(np.int64)).astype(np.int32) if D.dtype == np.int8 else D @ X

    kernel_registry({("csr_linear_f32", "c"): recording_kernel(calls, "linear", linear), ("csr_spmm_f32", "c"): recording_kernel(calls, "f32", spmm),
                     ("csr_spmm_i8", "c"): recording_kernel(calls, "i8", spmm)})
    W = CSRMatrix.from_dense(np.array([[1, 0, 2], [0, 3, 0]], np.float32))
    x = np.array([[1, 2, 3]], np.float32)
    # float32 x, W and bias: the fused layer kernel; a float64 bias: W @ x^T by the SpMM kernel, then + bias
    for backend, b, expected in (("auto", None, ["linear"]), ("auto", np.ones(2, np.float32), ["linear"]),
                                 ("numpy", None, []), ("auto", np.ones(2), ["f32"]),
                                 ("numpy", np.ones(2), [])):
        calls.clear()
        y = sparse_linear(x, W, b, backend=backend)
        assert y.tolist() == [[7 + (b is not None), 6 + (b is not None)]] and calls == expected, (backend, b)
    calls.clear()
    assert sparse_linear(x[0], W).tolist() == [7, 6] and calls == ["linear"]
    Wi = CSRMatrix.from_dense(np.array([[1, 0, -2], [0, 3, 0]], np.int8))
    for backend, expected in (("auto", ["i8"]), ("numpy", [])):
        calls.clear()
        y = sparse_linear_integer(x.astype(np.uint8), Wi, np.array([5, 0], np.int32), x_zero_point=1, backend=backend)
        assert y.tolist() == [[5 - 4, 3]] and calls == expected, backend


def test_dtype_errors_name_the_dtypes_each_function_takes():
    # the message says what would have been accepted: float32 / float64 for the float layer, int8 / uint8
    # inputs and an int32 bias for the integer one
    Wf = CSRMatrix.from_dense(np.eye(2, dtype=np.float32))
    Wi = CSRMatrix.from_dense(np.eye(2, dtype=np.int8))
    cases = ((lambda: sparse_linear(np.ones((1, 2), np.int32), Wf), "x", "dtype float32 or float64"),
             (lambda: sparse_linear(np.ones((1, 2), np.float32), Wf, np.ones(2, np.int32)), "bias",
              "dtype float32 or float64"),
             (lambda: sparse_linear_integer(np.ones((1, 2), np.int16), Wi), "x", "dtype int8 or uint8"),
             (lambda: sparse_linear_integer(np.ones((1, 2), np.int8), Wi, np.ones(2, np.int64)), "bias", "dtype int32"))
    for call, argument, want in cases:
        with pytest.raises(DTypeError, match=rf"^{argument}: expected {want}, got dtype") as e:
            call()
        assert e.value.argument == argument


def test_the_fused_kernel_gets_the_validated_operand_and_the_blocks_for_the_batch_width(kernel_registry):
    # the op has checked W (a CSRMatrix) and x, so the kernel may skip its own checks (validated=True);
    # the column blocks are tuned to the batch width n of x^T: for n = 16, 32 KiB of float32 X rows is
    # 32768 / (4 * 16) = 512 columns, and a dense row has >= 12 non-zeros per block, so kb = 512 and each
    # of the 256 rows of 1024 non-zeros splits at 512 (csr_matmul.block_width; blocks for n = in = 1024
    # would be 16 columns wide)
    seen = []

    def linear(indptr, idx, data, shape, x, b, **kw):
        seen.append(kw)
        return x @ CSRMatrix(indptr, np.asarray(idx, np.int64), data, shape).to_dense().T

    kernel_registry({("csr_linear_f32", "c"): linear})
    W = CSRMatrix.from_dense(np.ones((256, 1024), np.float32))
    y = sparse_linear(np.ones((16, 1024), np.float32), W)
    assert y.shape == (16, 256) and np.all(y == 1024)
    (kw,) = seen
    assert kw["validated"] is True
    nb, bp = kw["blocks"]
    rows = np.arange(256)[:, None] * 1024
    assert nb == 2 and np.array_equal(bp, rows + np.array([0, 512, 1024]))


def test_only_matrices_whose_columns_fit_int32_indices_reach_the_fused_kernel(kernel_registry):
    # 2**31 - 1 columns is the widest an int32 column index addresses: that one still goes to the
    # kernel, 2**31 goes to the NumPy definition (no entry, a batch of 0 rows: nothing is allocated)
    calls = []
    kernel_registry({("csr_linear_f32", "c"): recording_kernel(calls, "linear", lambda *a, **k: np.zeros((0, 1), np.float32)),
                     ("csr_spmm_f32", "c"): recording_kernel(calls, "f32", None)})
    for cols, expected in ((2**31 - 1, ["linear"]), (2**31, [])):
        calls.clear()
        W = CSRMatrix([0, 0], np.zeros(0, np.int64), np.zeros(0, np.float32), (1, cols))
        y = sparse_linear(np.zeros((0, cols), np.float32), W)
        assert y.shape == (0, 1) and calls == expected, cols
