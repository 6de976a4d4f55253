"""matmul_integer: eq. M1 against an independent Python-int definition, broadcasting, the x86 emulation,
the packed weight (pack_weight) and the fast-kernel dispatch contract."""

import copy
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import refcomp.backend
from refcomp.errors import DTypeError, OverflowRiskError, ShapeError, ValidationError
from refcomp.ops import PackedWeight, matmul_integer, pack_weight

U8, S8 = np.uint8, np.int8
seeds = st.integers(0, 2**32 - 1)


def ints(rng, dt, shape):
    i = np.iinfo(dt)
    return rng.integers(i.min, int(i.max) + 1, size=shape).astype(dt)


def python_ints(A, B, az, bz):
    """Eq. M1 with Python integers (unbounded), one output at a time."""
    M, K = A.shape
    N = B.shape[1]
    az = np.broadcast_to(np.asarray(az, np.int64).reshape(-1, 1), (M, 1))
    bz = np.broadcast_to(np.asarray(bz, np.int64).reshape(1, -1), (1, N))
    return np.array([[sum((int(A[m, k]) - int(az[m, 0])) * (int(B[k, n]) - int(bz[0, n])) for k in range(K))
                      for n in range(N)] for m in range(M)], dtype=np.int64).reshape(M, N)


@settings(max_examples=60)
@given(seed=seeds, m=st.integers(1, 5), k=st.integers(0, 30), n=st.integers(1, 5),
       adt=st.sampled_from([U8, S8]), bdt=st.sampled_from([U8, S8]), per_row=st.booleans(), per_col=st.booleans())
def test_equals_python_integers(seed, m, k, n, adt, bdt, per_row, per_col):
    rng = np.random.default_rng(seed)
    A, B = ints(rng, adt, (m, k)), ints(rng, bdt, (k, n))
    az = ints(rng, adt, (m,) if per_row else ())
    bz = ints(rng, bdt, (n,) if per_col else ())
    y = matmul_integer(A, B, az, bz, backend="numpy")
    assert y.dtype == np.int32 and y.shape == (m, n)
    np.testing.assert_array_equal(y, python_ints(A, B, az, bz))


@settings(max_examples=30)
@given(seed=seeds)
def test_batch_broadcasting_and_vectors_follow_numpy_matmul(seed):
    rng = np.random.default_rng(seed)
    A, B = ints(rng, U8, (2, 1, 3, 4)), ints(rng, S8, (5, 4, 2))
    y = matmul_integer(A, B, U8(9), S8(-2))
    want = np.matmul(A.astype(np.int64) - 9, B.astype(np.int64) + 2)
    np.testing.assert_array_equal(y, want)
    assert y.shape == (2, 5, 3, 2)
    a1, b1 = A[0, 0, 0], B[0, :, 0]
    assert matmul_integer(a1, b1).shape == ()
    assert matmul_integer(a1, B[0]).shape == (2,)
    assert matmul_integer(A[0, 0], b1).shape == (3,)
    assert int(matmul_integer(a1, b1)) == int(a1.astype(np.int64) @ b1.astype(np.int64))


def test_nd_zero_points():
    rng = np.random.default_rng(0)
    A, B = ints(rng, U8, (2, 3, 4)), ints(rng, S8, (2, 4, 5))
    az, bz = ints(rng, U8, (2, 3, 1)), ints(rng, S8, (2, 1, 5))
    want = np.matmul(A.astype(np.int64) - az, B.astype(np.int64) - bz)
    np.testing.assert_array_equal(matmul_integer(A, B, az, bz), want)


def test_result_outside_int32_raises():
    # K * 255 * 255 > 2**31 - 1 needs K > 33025; all terms +65025
    K = 33100
    A = np.full((1, K), 0, U8)
    B = np.full((K, 1), 0, U8)
    with pytest.raises(OverflowRiskError, match="Y"):
        matmul_integer(A, B, U8(255), U8(255))


def test_empty_dimensions():
    assert matmul_integer(np.zeros((0, 3), U8), np.zeros((3, 2), S8)).shape == (0, 2)
    y = matmul_integer(np.zeros((2, 0), U8), np.zeros((0, 3), S8), U8(4), S8(1))
    np.testing.assert_array_equal(y, np.zeros((2, 3), np.int32))


# ---------------------------------------------------------------- x86 int16-saturating emulation


def emulate_loop(A, B, az, bz):
    """Eq. M2 + M3 written as the kernel runs: pairs of k, int16 saturation, int32 sums."""
    M, K = A.shape
    N = B.shape[1]
    out = np.zeros((M, N), np.int64)
    for m in range(M):
        for n in range(N):
            acc = 0
            for k in range(0, K, 2):
                pair = int(A[m, k]) * int(B[k, n])
                if k + 1 < K:
                    pair += int(A[m, k + 1]) * int(B[k + 1, n])
                acc += max(-32768, min(32767, pair))
            acc -= int(az) * int(B[:, n].astype(np.int64).sum()) + int(bz) * int(A[m].astype(np.int64).sum())
            acc += K * int(az) * int(bz)
            out[m, n] = acc
    return out


@settings(max_examples=60)
@given(seed=seeds, k=st.integers(1, 24), big=st.booleans())
def test_emulation_matches_its_loop_definition(seed, k, big):
    rng = np.random.default_rng(seed)
    A = rng.integers(200 if big else 0, 256, (3, k)).astype(U8)
    B = ints(rng, S8, (k, 4))
    az, bz = ints(rng, U8, ()), ints(rng, S8, ())
    y = matmul_integer(A, B, az, bz, numerics="x86_u8s8_int16_saturating")
    np.testing.assert_array_equal(y, emulate_loop(A, B, az, bz))


@settings(max_examples=60)
@given(seed=seeds, k=st.integers(1, 40))
def test_emulation_equals_exact_when_no_pair_saturates(seed, k):
    # u8 < 128: |a0*b0 + a1*b1| <= 2 * 127 * 128 = 32512 < 32767, no pair can saturate
    rng = np.random.default_rng(seed)
    A = rng.integers(0, 128, (4, k)).astype(U8)
    B = ints(rng, S8, (k, 3))
    az, bz = ints(rng, U8, ()), ints(rng, S8, (3,))
    np.testing.assert_array_equal(matmul_integer(A, B, az, bz, numerics="x86_u8s8_int16_saturating"),
                                  matmul_integer(A, B, az, bz))


def test_emulation_documented_case():
    A = np.full((1, 64), 255, U8)
    B = np.full((64, 1), -128, S8)
    assert matmul_integer(A, B).item() == -2088960
    assert matmul_integer(A, B, numerics="x86_u8s8_int16_saturating").item() == -1048576
    # odd K: the last k pairs with padding, so it never saturates alone
    assert matmul_integer(A[:, :1], B[:1], numerics="x86_u8s8_int16_saturating").item() == -32640


# ---------------------------------------------------------------- fast-kernel dispatch contract


def test_fast_kernel_called_only_within_int32_bound(monkeypatch):
    calls = []

    def fake(a, b, a_zp, b_zp):
        assert a.flags.c_contiguous and b.flags.c_contiguous
        assert a_zp.dtype == np.int32 and a_zp.shape == (a.shape[0],)
        assert b_zp.dtype == np.int32 and b_zp.shape == (b.shape[1],)
        calls.append(a.shape)
        return np.matmul(a.astype(np.int64) - a_zp[:, None], b.astype(np.int64) - b_zp[None, :]).astype(np.int32)

    monkeypatch.setattr(refcomp.backend, "implementation", lambda op, backend=None: fake)
    rng = np.random.default_rng(1)
    A, B = ints(rng, U8, (2, 3, 8)), ints(rng, S8, (8, 5))
    y = matmul_integer(A, B, U8(3), ints(rng, S8, (5,)))
    assert calls == [(3, 8), (3, 8)]
    calls.clear()
    K = 70000  # 70000 * 255 * 128 > 2**31 - 1: the fast kernel must not be used for extreme values
    matmul_integer(np.ones((1, K), U8), np.ones((K, 1), S8), U8(0), S8(0))  # small values: bound fits
    assert calls == [(1, K)]
    calls.clear()
    with pytest.raises(OverflowRiskError):
        matmul_integer(np.full((1, K), 255, U8), np.full((K, 1), -128, S8))
    assert calls == []
    assert y.shape == (2, 3, 5)


def test_fast_kernel_with_a_packed_weight_keeps_the_bound_and_packs_once(monkeypatch):
    """The precondition reads max|B - b_zp| from the PackedWeight; "pack_b" runs once per backend."""
    calls, packs = [], []

    def fake(a, b, a_zp, b_zp):
        assert isinstance(b, tuple) and b[0] == "packed"  # what the fake "pack_b" made, not the array
        assert a_zp.dtype == np.int32 and b_zp.dtype == np.int32 and b_zp.shape == (b[1].shape[1],)
        calls.append(a.shape)
        return np.matmul(a.astype(np.int64) - a_zp[:, None], b[1].astype(np.int64) - b_zp[None, :]).astype(np.int32)

    def fake_pack(b):
        packs.append(b.shape)
        return ("packed", b)

    monkeypatch.setattr(refcomp.backend, "resolve", lambda op, backend=None: ("c", fake))
    monkeypatch.setattr(refcomp.backend, "lookup", lambda op, backend: fake_pack if (op, backend) == ("pack_b", "c") else None)
    rng = np.random.default_rng(1)
    A, B, zb = ints(rng, U8, (2, 3, 8)), ints(rng, S8, (8, 5)), ints(rng, S8, (5,))
    p = pack_weight(B, zb)
    for _ in range(3):
        np.testing.assert_array_equal(matmul_integer(A, p, U8(3)), matmul_integer(A, B, U8(3), zb, backend="numpy"))
    assert calls == [(3, 8)] * 6 and packs == [(8, 5)]
    calls.clear()
    K = 70000  # 70000 * 255 * 128 > 2**31 - 1
    small = pack_weight(np.ones((K, 1), S8), S8(0))
    assert small.max_deviation == 1
    matmul_integer(np.ones((1, K), U8), small, U8(0))
    assert calls == [(1, K)]
    calls.clear()
    big = pack_weight(np.full((K, 1), -128, S8))
    assert big.max_deviation == 128
    with pytest.raises(OverflowRiskError):
        matmul_integer(np.full((1, K), 255, U8), big)
    assert calls == []


# ---------------------------------------------------------------- packed weight


@settings(max_examples=60)
@given(seed=seeds, m=st.integers(1, 6), k=st.integers(0, 40), n=st.integers(1, 7), adt=st.sampled_from([U8, S8]),
       bdt=st.sampled_from([U8, S8]), zb_kind=st.sampled_from(["none", "scalar", "vector", "row"]),
       a_shape=st.sampled_from(["2d", "1d", "batch"]), backend=st.sampled_from(["numpy", "auto"]))
def test_packed_weight_equals_the_plain_call(seed, m, k, n, adt, bdt, zb_kind, a_shape, backend):
    rng = np.random.default_rng(seed)
    B = ints(rng, bdt, (k, n))
    zb = {"none": None, "scalar": ints(rng, bdt, ()), "vector": ints(rng, bdt, (n,)),
          "row": ints(rng, bdt, (1, n))}[zb_kind]
    A = ints(rng, adt, {"2d": (m, k), "1d": (k,), "batch": (2, m, k)}[a_shape])
    az = ints(rng, adt, (m,) if a_shape == "2d" else ())
    p = pack_weight(B, zb)
    want = matmul_integer(A, B, az, zb, backend=backend)
    got = matmul_integer(A, p, az, backend=backend)
    assert got.dtype == np.int32 and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(matmul_integer(A, p, az, backend=backend), want)  # the cached packed form
    if adt == U8 and bdt == S8 and a_shape == "2d":
        np.testing.assert_array_equal(matmul_integer(A, p, az, numerics="x86_u8s8_int16_saturating"),
                                      matmul_integer(A, B, az, zb, numerics="x86_u8s8_int16_saturating"))


def test_packed_weight_holds_a_read_only_copy_and_its_statistic():
    rng = np.random.default_rng(3)
    B = ints(rng, S8, (6, 4))
    zb = np.array([1, -2, 3, 0], S8)
    p = pack_weight(B, zb)
    assert isinstance(p, PackedWeight) and p.shape == (6, 4) and p.dtype == np.int8
    assert p.max_deviation == int(np.abs(B.astype(np.int64) - zb).max())
    assert not p.B.flags.writeable and not p.b_zero_point.flags.writeable
    want = matmul_integer(np.ones((2, 6), U8), B, None, zb)
    B[:] = 0  # the caller's array changes; the packed weight must not
    zb[:] = 0
    np.testing.assert_array_equal(matmul_integer(np.ones((2, 6), U8), p), want)
    # and nobody can make the copy writeable again (refcomp._frozen): max_deviation, the kernels'
    # int32 precondition, was measured on it once
    for a in (p.B, p.b_zero_point, p._b_zp_int32):
        with pytest.raises(ValueError, match="WRITEABLE"):
            a.flags.writeable = True
    assert pack_weight(np.zeros((0, 3), U8)).max_deviation == 0
    np.testing.assert_array_equal(matmul_integer(np.zeros((2, 0), U8), pack_weight(np.zeros((0, 3), U8))),
                                  np.zeros((2, 3), np.int32))


def test_packed_weight_copies_and_pickles_without_its_cache():
    rng = np.random.default_rng(4)
    A, B = ints(rng, U8, (5, 9)), ints(rng, S8, (9, 70))
    p = pack_weight(B, S8(-3))
    want = matmul_integer(A, p, U8(128))  # fills the cache of the fast backend, if any
    for q in (copy.deepcopy(p), copy.copy(p), pickle.loads(pickle.dumps(p))):
        assert q._packed == {} and not q.B.flags.writeable
        for a in (q.B, q._b_zp_int32):  # copied arrays come back writeable: frozen again
            with pytest.raises(ValueError, match="WRITEABLE"):
                a.flags.writeable = True
        np.testing.assert_array_equal(q.B, B)
        np.testing.assert_array_equal(matmul_integer(A, q, U8(128)), want)


def test_packed_weight_bad_input_names_the_argument():
    B = np.zeros((3, 2), S8)
    p = pack_weight(B)
    with pytest.raises(ValidationError, match="b_zero_point"):
        matmul_integer(np.zeros((1, 3), U8), p, None, S8(0))
    with pytest.raises(ShapeError, match="B"):
        pack_weight(np.zeros(3, S8))
    with pytest.raises(ShapeError, match="B"):
        pack_weight(np.zeros((2, 3, 2), S8))
    with pytest.raises(DTypeError, match="B"):
        pack_weight(np.zeros((3, 2), np.int16))
    with pytest.raises(DTypeError, match="b_zero_point"):
        pack_weight(B, U8(0))
    with pytest.raises(ShapeError, match="b_zero_point"):
        pack_weight(B, np.zeros(3, S8))
    with pytest.raises(ShapeError, match="b_zero_point"):
        pack_weight(B, np.zeros((2, 1, 2), S8))
    with pytest.raises(ShapeError, match="B"):
        matmul_integer(np.zeros((1, 4), U8), p)


# ---------------------------------------------------------------- packed weight: its statistic, errors, kernels without a layout


def test_packed_max_deviation_is_taken_column_by_column():
    """max |B - b_zp| pairs each column with its own zero point: not the whole B's extremes with every zero point."""
    B = np.array([[0, 100], [10, 110]], S8)
    zb = np.array([-100, 105], S8)
    # column 0: |10 + 100| = 110; column 1: |100 - 105| = 5 (B's max 110 against zb[0] would give 210)
    assert pack_weight(B, zb).max_deviation == 110
    assert pack_weight(B, S8(-20)).max_deviation == 130
    assert pack_weight(B).max_deviation == 110
    assert pack_weight(np.array([[-100], [20]], S8), S8(30)).max_deviation == 130


def test_packed_weight_errors_name_b_zero_point():
    B = np.zeros((3, 2), S8)
    for zb, error in ((U8(0), DTypeError), (np.zeros(3, S8), ShapeError), (np.zeros((2, 1, 2), S8), ShapeError)):
        with pytest.raises(error) as e:
            pack_weight(B, zb)
        assert e.value.argument == "b_zero_point"
    with pytest.raises(ShapeError, match="per-column vector of length 2"):
        pack_weight(B, np.zeros(3, S8))


def test_a_backend_without_a_packed_layout_gets_the_plain_weight(monkeypatch):
    """A kernel whose backend has no "pack_b" multiplies the PackedWeight's own B array."""
    seen = []

    def fake(a, b, a_zp, b_zp):
        seen.append(b)
        return np.matmul(a.astype(np.int64) - a_zp[:, None], b.astype(np.int64) - b_zp[None, :]).astype(np.int32)

    monkeypatch.setattr(refcomp.backend, "resolve", lambda op, backend=None: ("plain", fake))
    monkeypatch.setattr(refcomp.backend, "lookup", lambda op, backend: None)
    rng = np.random.default_rng(2)
    A, B, zb = ints(rng, U8, (3, 8)), ints(rng, S8, (8, 5)), ints(rng, S8, (5,))
    p = pack_weight(B, zb)
    np.testing.assert_array_equal(matmul_integer(A, p, U8(7)), python_ints(A, B, U8(7), zb))
    assert len(seen) == 1 and seen[0] is p.B


def test_fast_kernel_bound_pairs_each_row_with_its_zero_point(monkeypatch):
    """For K > 33025 the bound reads max |A - a_zp| row by row, each row against its own zero point
    (batched A too): rows equal to their zero points deviate by 0, so the kernel runs."""
    calls = []

    def fake(a, b, a_zp, b_zp):
        calls.append(a.shape)
        return np.matmul(a.astype(np.int64) - a_zp[:, None], b.astype(np.int64) - b_zp[None, :]).astype(np.int32)

    monkeypatch.setattr(refcomp.backend, "implementation", lambda op, backend=None: fake)
    K = 70000  # 70000 * 255 * 128 > 2**31 - 1: A's whole range against any zero point would not fit
    levels = np.array([255, 0, 128], U8)
    A = np.broadcast_to(levels[:, None], (2, 3, K)).copy()
    y = matmul_integer(A, np.full((K, 1), -128, S8), levels, S8(0))
    assert calls == [(3, K), (3, K)]
    np.testing.assert_array_equal(y, np.zeros((2, 3, 1), np.int32))


# ---------------------------------------------------------------- which kernel runs, and when


def _spy(calls):
    def fake(a, b, a_zp, b_zp):
        b = b[1] if isinstance(b, tuple) else b
        calls.append((a.shape, b.shape))
        return np.matmul(a.astype(np.int64) - a_zp[:, None], b.astype(np.int64) - b_zp[None, :]).astype(np.int32)
    return fake


def test_the_kernel_registered_for_matmul_integer_runs_unless_numpy_is_asked(kernel_registry):
    calls = []
    registry = {("matmul_integer", "c"): _spy(calls), ("pack_b", "c"): lambda b: ("packed", b)}
    kernel_registry(registry)
    rng = np.random.default_rng(6)
    A, B, zb = ints(rng, U8, (3, 8)), ints(rng, S8, (8, 5)), ints(rng, S8, (5,))
    want = python_ints(A, B, U8(9), zb)
    for b in (B, pack_weight(B, zb)):
        for backend, n_calls in (("auto", 1), ("c", 1), ("numpy", 0)):
            calls.clear()
            zp = zb if isinstance(b, np.ndarray) else None
            np.testing.assert_array_equal(matmul_integer(A, b, U8(9), zp, backend=backend), want)
            assert calls == [((3, 8), (8, 5))] * n_calls, (backend, type(b))


def test_kernel_runs_for_every_nonempty_sum_within_the_bound(monkeypatch):
    """K = 1 is a product like any other; K = 0 (an empty sum, 0) and empty outputs need no kernel."""
    calls = []
    monkeypatch.setattr(refcomp.backend, "implementation", lambda op, backend=None: _spy(calls))
    matmul_integer(np.ones((2, 1), U8), np.ones((1, 3), S8))
    assert calls == [((2, 1), (1, 3))]
    calls.clear()
    y = matmul_integer(np.ones((2, 0), U8), np.ones((0, 3), S8), U8(1), S8(1))
    assert calls == [] and y.dtype == np.int32
    np.testing.assert_array_equal(y, np.zeros((2, 3), np.int32))
    # empty outputs, also when K is large enough for the bound to read the data (there is none)
    K = 40000
    for a_shape, b_shape, out in (((0, K), (K, 2), (0, 2)), ((2, K), (K, 0), (2, 0)),
                                  ((0, 2, K), (K, 3), (0, 2, 3))):
        y = matmul_integer(np.ones(a_shape, U8), np.ones(b_shape, S8))
        assert y.shape == out and y.dtype == np.int32
    assert calls == []


def test_a_batch_dimension_of_one_is_a_batch_like_any_other():
    rng = np.random.default_rng(8)
    A, B = ints(rng, U8, (1, 3, 4)), ints(rng, S8, (1, 4, 2))
    for backend in ("numpy", "auto"):
        y = matmul_integer(A, B, U8(5), S8(-1), backend=backend)
        assert y.shape == (1, 3, 2) and y.dtype == np.int32
        np.testing.assert_array_equal(y[0], python_ints(A[0], B[0], U8(5), S8(-1)))


def test_batched_product_over_a_long_k_keeps_the_bound(monkeypatch):
    """The bound's K is the summed dimension A.shape[-1], not a batch or row count: a batched
    A of 70000 extreme columns goes to the exact check and is refused, never to the kernel."""
    calls = []
    monkeypatch.setattr(refcomp.backend, "implementation", lambda op, backend=None: _spy(calls))
    K = 70000
    with pytest.raises(OverflowRiskError):
        matmul_integer(np.full((2, 1, K), 255, U8), np.full((K, 1), -128, S8))
    assert calls == []


# ---------------------------------------------------------------- zero-point shapes, bad input, the emulation's edges


def test_zero_point_shapes_are_read_as_the_spec_says():
    rng = np.random.default_rng(12)
    A, B = ints(rng, U8, (2, 3, 4)), ints(rng, S8, (4, 2))
    want = matmul_integer(A, B, U8(5), S8(-3))
    # one value, as a scalar or a 1-element vector, is per tensor (also when M, N > 1)
    np.testing.assert_array_equal(matmul_integer(A, B, np.array([5], U8), np.array([-3], S8)), want)
    # N-D zero points must be [..., M, 1] / [..., 1, N]; a 1-D operand takes none of them
    for az in (np.zeros((2, 1, 3), U8), np.zeros((1, 1), U8)):
        a = A if az.ndim == 3 else A[0, 0]
        with pytest.raises(ShapeError) as e:
            matmul_integer(a, B, az, None)
        assert e.value.argument == "a_zero_point"
    with pytest.raises(ShapeError, match="per-row vector of length 3"):
        matmul_integer(A, B, np.zeros(2, U8), None)
    with pytest.raises(ShapeError, match="per-column vector of length 2") as e:
        matmul_integer(A, B, None, np.zeros(3, S8))
    assert e.value.argument == "b_zero_point"
    with pytest.raises(DTypeError) as e:
        matmul_integer(A, B, None, U8(0))
    assert e.value.argument == "b_zero_point"


def test_scalars_and_other_emulated_types_are_refused():
    with pytest.raises(ShapeError) as e:
        matmul_integer(U8(3), np.zeros(3, U8))
    assert e.value.argument == "A"
    with pytest.raises(ShapeError) as e:
        matmul_integer(np.zeros(3, U8), U8(3))
    assert e.value.argument == "B"
    for a, b in ((U8, U8), (S8, S8), (S8, U8)):
        with pytest.raises(DTypeError):
            matmul_integer(np.zeros((1, 2), a), np.zeros((2, 1), b), numerics="x86_u8s8_int16_saturating")


@settings(max_examples=20)
@given(seed=seeds, k=st.integers(1, 9))
def test_emulation_of_a_batch_is_the_emulation_of_each_matrix(seed, k):
    rng = np.random.default_rng(seed)
    A = rng.integers(150, 256, (2, 3, k)).astype(U8)
    B = ints(rng, S8, (2, k, 4))
    az, bz = ints(rng, U8, ()), ints(rng, S8, ())
    y = matmul_integer(A, B, az, bz, numerics="x86_u8s8_int16_saturating")
    assert y.shape == (2, 3, 4) and y.dtype == np.int32
    for i in range(2):
        np.testing.assert_array_equal(y[i], emulate_loop(A[i], B[i], az, bz))


def test_emulation_wraps_its_int32_sum_both_ways():
    """Saturated pairs summed over K = 140000 leave int32: the kernel's int32 adds wrap (two's complement)."""
    K = 140000
    A = np.full((1, K), 255, U8)
    for b, pair in ((127, 32767), (-128, -32768)):
        y = matmul_integer(A, np.full((K, 1), b, S8), numerics="x86_u8s8_int16_saturating")
        total = K // 2 * pair                                   # outside int32
        assert y.dtype == np.int32 and y.item() == (total + 2**31) % 2**32 - 2**31
