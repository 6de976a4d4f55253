"""CSRMatrix validation, conversions and kernel indices."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import refcomp.errors
from refcomp.errors import DTypeError, ReadOnlyError, ShapeError, ValidationError
from refcomp.formats import CSRMatrix, WeightFormat

from .._support.csr import make, sparse_dense


def test_valid_matrix_round_trips():
    W = make()
    assert isinstance(W, WeightFormat)
    np.testing.assert_array_equal(W.to_dense(), [[1, 0, 0, 2], [0, 0, 0, 0], [0, 3, 0, 0]])
    assert W.nnz == 3 and W.nbytes == 4 * 8 + 3 * 8 + 3 * 4
    assert set(W.fields()) == {"indptr", "indices", "data", "shape"}


@pytest.mark.parametrize("kw,cls,match", [
    (dict(indices=[3, 0, 1]), ValidationError, "sorted"),              # unsorted within row 0
    (dict(indices=[2, 2, 1]), ValidationError, "unique"),              # duplicate within row 0
    (dict(indices=[0, 4, 1]), ValidationError, r"\[0, 4\)"),          # column out of range
    (dict(indices=[0, -1, 1]), ValidationError, "non-negative"),       # negative index
    (dict(indptr=[0, 2, 1, 3]), ValidationError, "non-decreasing"),    # indptr goes back
    (dict(indptr=[1, 2, 2, 3]), ValidationError, r"indptr\[0\]"),      # does not start at 0
    (dict(indptr=[0, 2, 2, 4]), ValidationError, "nnz"),               # does not end at nnz
    (dict(indptr=[0, 2, 3]), ShapeError, "rows \\+ 1"),                # wrong length
    (dict(data=np.array([1, 2], np.float32)), ShapeError, "nnz"),
    (dict(data=np.array([1, 2, 3], np.int32)), DTypeError, "int8"),
    (dict(data=np.array([1, np.nan, 3], np.float32)), ValidationError, "finite"),
    (dict(indices=np.array([0.0, 3.0, 1.0])), DTypeError, "integer"),
    (dict(shape=(3, -4)), ShapeError, "non-negative"),
])
def test_malformed_csr_rejected(kw, cls, match):
    with pytest.raises(cls, match=match):
        make(**kw)


def test_rows_boundary_is_not_an_unsorted_step():
    W = CSRMatrix([0, 1, 1, 3, 4], [3, 0, 2, 0], np.ones(4, np.float32), (4, 4))  # 3 -> 0 crosses a row
    assert W.nnz == 4


# ------------------------------------------------------------------ conversions
def test_scipy_round_trip_and_product():
    sp = pytest.importorskip("scipy.sparse")
    rng = np.random.default_rng(0)
    W = sparse_dense(rng, (30, 40), 0.2)
    C = CSRMatrix.from_dense(W)
    S = C.to_scipy()
    np.testing.assert_array_equal(S.toarray(), W)
    C2 = CSRMatrix.from_scipy(sp.coo_array(W))
    np.testing.assert_array_equal(C2.indptr, C.indptr)
    np.testing.assert_array_equal(C2.indices, C.indices)
    X = rng.standard_normal((40, 7)).astype(np.float32)
    np.testing.assert_allclose(C.dot(X, backend="numpy"), S @ X, rtol=1e-5, atol=1e-5)
    # scipy duplicates are summed, unsorted indices sorted
    D = sp.csr_array((np.array([1.0, 2.0, 3.0]), np.array([2, 0, 2]), np.array([0, 3])), shape=(1, 3))
    np.testing.assert_array_equal(CSRMatrix.from_scipy(D).to_dense(), [[2.0, 0.0, 4.0]])


def _canonical(indptr, indices, rows, cols):
    """The CSR invariants, checked the slow obvious way."""
    if len(indptr) != rows + 1 or indptr[0] != 0 or indptr[-1] != len(indices):
        return False
    for r in range(rows):
        if indptr[r + 1] < indptr[r]:
            return False
        row = indices[indptr[r]:indptr[r + 1]]
        if any(c < 0 or c >= cols for c in row) or any(b <= a for a, b in zip(row, row[1:])):
            return False
    return True


@settings(max_examples=150)
@given(rows=st.integers(0, 5), cols=st.integers(1, 6), data=st.data())
def test_validator_accepts_exactly_canonical_csr(rows, cols, data):
    nnz = data.draw(st.integers(0, 8))
    indices = data.draw(st.lists(st.integers(-1, cols), min_size=nnz, max_size=nnz))
    inner = sorted(data.draw(st.lists(st.integers(0, nnz), min_size=max(rows - 1, 0), max_size=max(rows - 1, 0))))
    if data.draw(st.booleans()) and inner:  # sometimes break the order of indptr
        inner = inner[::-1]
    indptr = [0, *inner, nnz][: rows + 1] if rows else [data.draw(st.sampled_from([0, nnz]))]
    if rows and len(indptr) < rows + 1:
        indptr = indptr + [nnz] * (rows + 1 - len(indptr))
    ok = _canonical(indptr, indices, rows, cols)
    args = (np.array(indptr, np.int64), np.array(indices, np.int64), np.ones(nnz, np.float32), (rows, cols))
    if ok:
        W = CSRMatrix(*args)
        sp = pytest.importorskip("scipy.sparse")
        assert sp.csr_array((args[2], args[1], args[0]), shape=(rows, cols)).has_canonical_format
        np.testing.assert_array_equal(CSRMatrix.from_dense(W.to_dense()).indices, W.indices)
    else:
        with pytest.raises(ValidationError):
            CSRMatrix(*args)


def test_kernel_indices_are_the_narrowest_type_cached_read_only_and_exact():
    rng = np.random.default_rng(3)
    W = CSRMatrix.from_dense(sparse_dense(rng, (40, 90), 0.2))
    k = W.kernel_indices
    assert k.dtype == np.uint16 and not k.flags.writeable
    assert k is W.kernel_indices  # made once
    np.testing.assert_array_equal(k.astype(np.int64), W.indices)
    wide = CSRMatrix(np.array([0, 2]), np.array([3, 70000]), np.ones(2, np.float32), (1, 70001))
    assert wide.kernel_indices.dtype == np.int32
    np.testing.assert_array_equal(wide.kernel_indices, [3, 70000])


# ------------------------------------------------------------------ immutability
# The kernels trust what the constructor checked (csrc/refcomp.h: indices in [0, cols), indptr
# non-decreasing); a CSRMatrix that could change after the checks would send out-of-range
# indices to C (a segfault, found by the audit of issue 13).

def _immutable_matrix():
    rng = np.random.default_rng(5)
    dense = sparse_dense(rng, (300, 1024), 0.3)  # rows >= 256, n >= 16: the column-blocked C kernel
    indptr = np.zeros(301, np.int64)
    np.cumsum((dense != 0).sum(axis=1), out=indptr[1:])
    rows, cols = np.nonzero(dense)
    data = dense[rows, cols].copy()
    return CSRMatrix(indptr, cols, data, dense.shape), dense, (indptr, cols, data)


def _every_array(W, X):
    W.column_blocks(X.shape[1])
    codes = W.with_values(np.clip(np.rint(W.data * 20), -127, 127).astype(np.int8))
    arrays = {"indptr": W.indptr, "indices": W.indices, "data": W.data, "values": W.values,
              "kernel_indices": W.kernel_indices, "codes.data": codes.data}
    for kb, (_, bp) in W.__dict__["_column_blocks"].items():
        arrays[f"block_ptr[{kb}]"] = bp
    return arrays


def test_a_validated_matrix_cannot_be_made_writeable():
    W, dense, _ = _immutable_matrix()
    X = np.ones((1024, 32), np.float32)
    for name, a in _every_array(W, X).items():
        assert not a.flags.writeable, name
        with pytest.raises(ValueError, match="WRITEABLE"):
            a.flags.writeable = True
        with pytest.raises(ValueError):
            a.setflags(write=True)
        with pytest.raises(ValueError):
            a[0] = 0
        np.testing.assert_array_equal(a, a.copy())  # unchanged
    _computes_dense_on_every_backend(W, dense, X)


def _computes_dense_on_every_backend(W, dense, X):
    for backend in ("numpy", "numba", "c"):
        try:
            Y = W.dot(X, backend=backend)
        except refcomp.errors.BackendUnavailableError:
            continue
        np.testing.assert_allclose(Y, dense @ X, rtol=1e-5, atol=1e-4)


def test_the_callers_arrays_stay_the_callers():
    # the matrix holds private copies: the caller's arrays stay writeable, and writing to them
    # (an index still in range, so an old aliasing bug shows as a wrong answer, not a crash)
    # changes nothing the matrix computes with
    W, dense, (indptr, indices, data) = _immutable_matrix()
    assert indptr.flags.writeable and indices.flags.writeable and data.flags.writeable
    indices[:] = indices[::-1].copy()
    indptr[1:-1] = indptr[-1]
    data[:] = 7
    X = np.ones((1024, 1), np.float32)
    np.testing.assert_array_equal(W.to_dense(), dense)
    _computes_dense_on_every_backend(W, dense, X)


@pytest.mark.parametrize("name", ["indptr", "indices", "data", "values", "shape", "_kernel_indices",
                                  "_column_blocks", "_codes"])
def test_validated_attributes_cannot_be_rebound(name):
    W, dense, _ = _immutable_matrix()
    with pytest.raises(ReadOnlyError, match=name):
        setattr(W, name, np.zeros(3, np.int64))
    with pytest.raises(AttributeError):  # ReadOnlyError is one, as a Python user expects
        delattr(W, name)
    W.note = "other attributes are free"
    np.testing.assert_array_equal(W.to_dense(), dense)


def test_copies_and_pickles_are_validated_and_frozen_again():
    import copy
    import pickle

    W, dense, _ = _immutable_matrix()
    W.kernel_indices  # a cache: a copy makes its own
    X = np.ones((1024, 16), np.float32)
    for twin in (copy.copy(W), copy.deepcopy(W), pickle.loads(pickle.dumps(W))):
        assert type(twin) is CSRMatrix and "_kernel_indices" not in twin.__dict__
        for name, a in _every_array(twin, X).items():
            with pytest.raises(ValueError, match="WRITEABLE"):
                a.flags.writeable = True
        np.testing.assert_array_equal(twin.to_dense(), dense)
    # a pickle is outside data: one whose indices were changed on the way is refused on load
    bad = W.indices.copy()
    bad[W.indptr[1] - 1] = 10**6  # the last index of row 0: still sorted, out of range
    blob = pickle.dumps(W)
    assert blob.count(W.indices.tobytes()) == 1
    blob = blob.replace(W.indices.tobytes(), bad.tobytes())
    with pytest.raises(ValidationError, match="indices"):
        pickle.loads(blob)


# ------------------------------------------------------------------ the arguments a user can get wrong
# Each bad argument is refused with the refcomp.errors class a user catches, naming the argument.
@pytest.mark.parametrize("shape", ["ab", (3,), (3, 4, 1), (-1, 4), (3, -1), None])
def test_a_bad_shape_is_refused_naming_shape(shape):
    with pytest.raises(ShapeError) as info:
        make(shape=shape)
    assert info.value.argument == "shape"


@pytest.mark.parametrize("kw,cls,argument", [
    (dict(indices=np.array([[0, 3, 1]])), ShapeError, "indices"),             # 2-D
    (dict(indptr=np.array([[0, 2, 2, 3]])), ShapeError, "indptr"),             # 2-D
    (dict(indptr=np.array([0.0, 2.0, 2.0, 3.0])), DTypeError, "indptr"),      # float offsets
    (dict(indices=np.array([0, 2**63, 1], np.uint64)), ValidationError, "indices"),  # wraps negative as int64
    (dict(indptr=[-1, 2, 2, 3]), ValidationError, "indptr"),
    (dict(data=np.ones((3, 1), np.float32)), ShapeError, "data"),
    (dict(data=np.array([1, 2, 3], np.float16)), DTypeError, "data"),
    (dict(data=np.array([1, np.inf, 3], np.float64)), ValidationError, "data"),
])
def test_malformed_arrays_are_refused_naming_the_argument(kw, cls, argument):
    with pytest.raises(cls) as info:
        make(**kw)
    assert info.value.argument == argument


def test_a_format_that_is_not_a_values_format_is_refused_naming_data():
    from refcomp.formats import Dense

    with pytest.raises(DTypeError) as info:
        make(data=Dense(np.ones(3, np.float32)))
    assert info.value.argument == "data"


def test_an_empty_matrix_is_valid():
    # [] arrives from NumPy as float64: an empty pattern is still integer offsets
    W = CSRMatrix([0, 0, 0], [], np.zeros(0, np.float32), (2, 5))
    assert W.nnz == 0 and W.indices.dtype == np.int64 and W.density == 0.0
    np.testing.assert_array_equal(W.to_dense(), np.zeros((2, 5), np.float32))
    assert CSRMatrix([0], [], np.zeros(0, np.float32), (0, 0)).density == 0.0
    assert CSRMatrix([0, 0, 0], [], np.zeros(0, np.float32), (2, 0)).shape == (2, 0)  # no columns


def test_from_dense_and_from_scipy_refuse_what_they_cannot_hold():
    with pytest.raises(ShapeError) as info:
        CSRMatrix.from_dense(np.ones(4, np.float32))
    assert info.value.argument == "W"
    with pytest.raises(DTypeError) as info:
        CSRMatrix.from_dense(np.ones((2, 2), np.int32))
    assert info.value.argument == "W"
    with pytest.raises(ValidationError) as info:
        CSRMatrix.from_scipy(np.ones((2, 2)))
    assert info.value.argument == "m"


# ------------------------------------------------------------------ what a user reads off a matrix
def test_from_dense_keeps_the_nonzeros_in_the_dtype_asked_for():
    W = np.array([[0.0, -0.0, 1.5], [2.0, 0.0, 0.0]])
    C = CSRMatrix.from_dense(W, dtype=np.float32)  # -0.0 is a zero: dropped
    assert C.dtype == np.float32 and C.data.dtype == np.float32
    np.testing.assert_array_equal(C.indptr, [0, 1, 2])
    np.testing.assert_array_equal(C.indices, [2, 0])
    np.testing.assert_array_equal(C.data, [1.5, 2.0])
    assert CSRMatrix.from_dense(np.array([[1, 0]], np.int32), dtype=np.int8).dtype == np.int8
    assert C.density == 2 / 6


def test_to_scipy_shares_nothing_with_the_matrix():
    W = make()
    S = W.to_scipy()
    wide = make(shape=(3, 7)).to_scipy()  # trailing empty columns: the shape is not read off the indices
    assert wide.shape == (3, 7)
    np.testing.assert_array_equal(wide.toarray(), make(shape=(3, 7)).to_dense())
    S.data[:] = 9
    S.indices[:] = 0
    S.indptr[:] = 0
    np.testing.assert_array_equal(W.to_dense(), [[1, 0, 0, 2], [0, 0, 0, 0], [0, 3, 0, 0]])


def test_repr_names_the_shape_the_count_and_the_dtype():
    assert repr(make()) == "CSRMatrix(shape=(3, 4), nnz=3, dtype=float32)"


def test_matmul_is_x_times_w_transposed_float_or_exact_integer():
    dense = np.array([[1, 0, 0, 2], [0, 0, 0, 0], [0, 3, 0, 0]], np.float32)
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    np.testing.assert_allclose(make().matmul(x), x @ dense.T)
    q = make(data=np.array([1, -2, 3], np.int8))
    qx = np.array([[1, -1, 2, 3], [-128, 127, 0, 1]], np.int8)
    y = q.matmul(qx)
    assert y.dtype == np.int32
    np.testing.assert_array_equal(y, qx.astype(np.int64) @ q.to_dense().astype(np.int64).T)


def test_fields_round_trip_and_a_bad_file_is_a_file_format_error():
    from refcomp.errors import FileFormatError

    W = make()
    back = CSRMatrix.from_fields(W.fields())
    assert back.shape == W.shape
    np.testing.assert_array_equal(back.to_dense(), W.to_dense())
    for shape in (np.array([3, 4], np.int32), np.array([3, 4, 1], np.int64)):
        with pytest.raises(FileFormatError, match="shape"):
            CSRMatrix.from_fields({**W.fields(), "shape": shape})
    with pytest.raises(FileFormatError, match="indices"):  # out of range: the constructor's check
        CSRMatrix.from_fields({**W.fields(), "indices": np.array([0, 9, 1], np.int64)})


def test_the_largest_int64_index_is_accepted():
    # a column index may be any int64 below cols (uint64 beyond int64 is refused above)
    W = CSRMatrix([0, 1], np.array([2**63 - 1], np.uint64), np.ones(1, np.float32), (1, 2**63))
    assert W.indices[0] == 2**63 - 1


def test_a_non_finite_value_is_reported_at_its_position():
    with pytest.raises(ValidationError, match=r"data\[1\] = nan"):
        make(data=np.array([1, np.nan, 3], np.float32))
    with pytest.raises(ValidationError, match=r"data\[0\] = inf"):  # every value non-finite
        make(data=np.full(3, np.inf, np.float32))


def test_half_precision_scales_decode_to_float32():
    # float16 / bfloat16 scales dequantize to their own dtype; the products run on float32
    from refcomp.formats import QTensor
    from refcomp.quant import QParams

    q = QTensor.quantize(np.array([1.0, -2.0, 3.0], np.float32), QParams(np.float16(0.5), dtype="int8"))
    W = make(data=q)
    assert W.data.dtype == np.float32 and W.dtype == np.float32
    np.testing.assert_array_equal(W.data, [1.0, -2.0, 3.0])


def test_with_values_shares_the_pattern_caches():
    # the column blocks depend on the pattern only: a composition does not make them again
    W, _, _ = _immutable_matrix()
    blocks = W.column_blocks(32)
    assert blocks is not None
    assert W.with_values(W.data.astype(np.float64)).column_blocks(32) is blocks


def test_free_attributes_can_be_deleted():
    W = make()
    W.note = "a label"
    del W.note
    assert not hasattr(W, "note")


def test_products_honour_the_backend_argument_and_default_to_auto():
    dense = np.array([[1, 0, 0, 2], [0, 0, 0, 0], [0, 3, 0, 0]], np.float32)
    X = np.arange(8, dtype=np.float32).reshape(4, 2)
    W = make()
    np.testing.assert_allclose(W @ X, dense @ X)  # backend "auto"
    np.testing.assert_allclose(W.dot(X), dense @ X)
    with pytest.raises(ValidationError) as info:
        W.dot(X, backend="fortran")
    assert info.value.argument == "backend"
    q = make(data=np.array([1, -2, 3], np.int8))
    qx = np.array([[1, -1, 2, 3]], np.int8)
    want = qx.astype(np.int64) @ q.to_dense().astype(np.int64).T
    np.testing.assert_array_equal(q.matmul_integer(qx), want)  # x_zero_point 0 by default
    np.testing.assert_array_equal(q.matmul_integer(qx, x_zero_point=1), (qx.astype(np.int64) - 1) @ q.to_dense().astype(np.int64).T)
    with pytest.raises(ValidationError) as info:
        q.matmul_integer(qx, backend="fortran")
    assert info.value.argument == "backend"


def test_the_integer_product_refusal_says_what_the_values_are():
    from refcomp.formats import Clustered

    with pytest.raises(DTypeError, match="float32 values") as info:
        make().matmul_integer(np.zeros((1, 4), np.int8))
    assert info.value.argument == "W.data"
    clustered = make(data=Clustered(np.array([1.0, 2.0], np.float32), np.array([0, 1, 1])))
    with pytest.raises(DTypeError, match="Clustered"):
        clustered.matmul_integer(np.zeros((1, 4), np.int8))


def test_the_pattern_is_stored_as_int64_whatever_integers_come_in():
    W = make(indptr=np.array([0, 2, 2, 3], np.int32), indices=np.array([0, 3, 1], np.uint16))
    assert W.indptr.dtype == np.int64 and W.indices.dtype == np.int64
    np.testing.assert_array_equal(W.to_dense(), make().to_dense())


def test_a_malformed_pattern_is_reported_where_it_breaks():
    with pytest.raises(ValidationError, match=r"indptr\[3\] = 1 < indptr\[2\] = 2"):  # after an empty row
        make(indptr=[0, 2, 2, 1])
    with pytest.raises(ValidationError, match=r"indices\[1\] = 4"):
        make(indices=[0, 4, 1])
    with pytest.raises(ValidationError, match=r"indices\[0\] = 3 then indices\[1\] = 0"):
        make(indices=[3, 0, 1])
