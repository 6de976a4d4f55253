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
