"""C (every ISA path) and Numba matmul_integer equal the NumPy int64 definition, bit for bit."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import refcomp
from refcomp.errors import BackendUnavailableError, OverflowRiskError, ValidationError
from refcomp.ops import matmul_integer, pack_weight

from .conftest import C_ISAS, int_array

DTYPES = (np.uint8, np.int8)
MODES = ("random", "max", "min", "extremes")


def reference(a, b, za=0, zb=0):
    return (a.astype(np.int64) - np.asarray(za, np.int64)) @ (b.astype(np.int64) - np.asarray(zb, np.int64))


@st.composite
def problems(draw, max_dim=17, max_k=70):
    m = draw(st.integers(1, max_dim))
    k = draw(st.integers(1, max_k))
    n = draw(st.integers(1, max_dim))
    adt = draw(st.sampled_from(DTYPES))
    bdt = draw(st.sampled_from(DTYPES))
    amode = draw(st.sampled_from(MODES))
    bmode = draw(st.sampled_from(MODES))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    a = int_array(rng, (m, k), adt, amode)
    b = int_array(rng, (k, n), bdt, bmode)
    zp_kind = draw(st.sampled_from(["none", "scalar", "vector", "extreme"]))
    if zp_kind == "none":
        za = zb = None
    elif zp_kind == "scalar":
        za, zb = int_array(rng, (), adt), int_array(rng, (), bdt)
    elif zp_kind == "vector":
        za, zb = int_array(rng, (m,), adt), int_array(rng, (n,), bdt)
    else:  # zero points at the opposite extreme: the largest |a - za|
        za = np.array(np.iinfo(adt).max if amode == "min" else np.iinfo(adt).min, adt)
        zb = np.array(np.iinfo(bdt).max if bmode == "min" else np.iinfo(bdt).min, bdt)
    return a, b, za, zb


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(problems())
def test_fast_equals_numpy(fast, p):
    a, b, za, zb = p
    want = matmul_integer(a, b, za, zb, backend="numpy")
    got = matmul_integer(a, b, za, zb, backend=fast)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(want, reference(a, b, 0 if za is None else za.reshape(-1, 1) if np.ndim(za) else za,
                                                  0 if zb is None else zb))


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(problems(max_dim=70), st.booleans())
def test_packed_weight_equals_the_plain_call(fast, p, batched):
    """ops.matmul_integer(A, pack_weight(B, zb), za) == ops.matmul_integer(A, B, za, zb) on every backend / ISA path."""
    a, b, za, zb = p
    if batched:  # a batch of A against one packed B: the packed form is shared by every matrix
        a = np.stack([a, a[::-1]])
        za = None if za is None or np.ndim(za) else za
    pw = pack_weight(b, zb)
    want = matmul_integer(a, b, za, zb, backend="numpy")
    got = matmul_integer(a, pw, za, backend=fast)
    np.testing.assert_array_equal(got, want)
    assert set(pw._packed) == {fast}  # made for this backend, on first use
    cached = pw._packed[fast]
    np.testing.assert_array_equal(matmul_integer(a, pw, za, backend=fast), want)
    assert pw._packed[fast] is cached  # ... and only once


def test_packed_weight_caches_the_backends_own_packed_b(fast):
    from refcomp import backend

    rng = np.random.default_rng(8)
    a, b = int_array(rng, (9, 70), np.uint8), int_array(rng, (70, 130), np.int8)
    pw = pack_weight(b, np.int8(-7))
    want = reference(a, b, 128, -7)
    np.testing.assert_array_equal(matmul_integer(a, pw, np.uint8(128), backend=fast), want)
    assert type(pw._packed[fast]) is backend.lookup("pack_b", fast)  # c.PackedB / numba PackedB, not the array
    np.testing.assert_array_equal(matmul_integer(a, pw, np.uint8(128), backend="numpy"), want)


@pytest.mark.parametrize("adt,bdt", [(np.uint8, np.int8), (np.int8, np.int8), (np.uint8, np.uint8), (np.int8, np.uint8)])
@pytest.mark.parametrize("mode", ["max-min", "min-max", "extremes"])
def test_long_k_extremes(fast, adt, bdt, mode):
    """K = 65536 (u8 255 x s8 -128 still fits int32) and K = 4099, all-extreme operands."""
    rng = np.random.default_rng(1)
    for K in (4099, 65536):
        amode, bmode = {"max-min": ("max", "min"), "min-max": ("min", "max"), "extremes": ("extremes", "extremes")}[mode]
        a = int_array(rng, (3, K), adt, amode)
        b = int_array(rng, (K, 5), bdt, bmode)
        bound = K * int(np.abs(a.astype(np.int64)).max()) * int(np.abs(b.astype(np.int64)).max())
        want = reference(a, b)
        if bound <= 2**31 - 1 or np.abs(want).max() <= 2**31 - 1:
            np.testing.assert_array_equal(matmul_integer(a, b, backend=fast), want)
        else:
            with pytest.raises(OverflowRiskError):
                matmul_integer(a, b, backend=fast)


def test_k65536_edge_of_precondition(fast):
    """65536 * 255 * 128 = 2**31 - 2**23 <= 2**31 - 1: the fast kernel itself runs, and is exact."""
    a = np.full((2, 65536), 255, np.uint8)
    b = np.full((65536, 3), -128, np.int8)
    got = matmul_integer(a, b, backend=fast)
    assert (got == -65536 * 255 * 128).all()


def test_sizes_around_vector_width(fast):
    rng = np.random.default_rng(2)
    for m, k, n in [(1, 1, 1), (5, 3, 63), (6, 4, 64), (7, 5, 65), (13, 129, 127), (2, 260, 130), (12, 31, 200)]:
        a = int_array(rng, (m, k), np.uint8)
        b = int_array(rng, (k, n), np.int8)
        za = int_array(rng, (m,), np.uint8)
        zb = int_array(rng, (n,), np.int8)
        np.testing.assert_array_equal(matmul_integer(a, b, za, zb, backend=fast),
                                      matmul_integer(a, b, za, zb, backend="numpy"))


def test_non_contiguous_transposed_and_batched(fast):
    rng = np.random.default_rng(3)
    a = int_array(rng, (40, 30), np.int8)[::2, 1::2]  # strided view (20, 15)
    bt = int_array(rng, (9, 15), np.uint8)
    b = bt.T  # transposed view (15, 9), Fortran order
    assert not a.flags.c_contiguous and not b.flags.c_contiguous
    np.testing.assert_array_equal(matmul_integer(a, b, backend=fast), reference(a, b))
    a3 = int_array(rng, (3, 4, 10), np.uint8)
    b3 = int_array(rng, (10, 6), np.int8)
    np.testing.assert_array_equal(matmul_integer(a3, b3, np.uint8(7), np.int8(-3), backend=fast),
                                  reference(a3, b3, 7, -3))


def test_overflow_policy(fast):
    """Above the int32 precondition: the int64 path runs; an exact value outside int32 raises."""
    # bound 70000 * 255 * 128 > 2**31 - 1 but the exact result fits (alternating signs)
    a = np.full((1, 70000), 255, np.uint8)
    b = np.tile(np.array([[127], [-128]], np.int8), (35000, 2))
    np.testing.assert_array_equal(matmul_integer(a, b, backend=fast), reference(a, b))
    # exact result 70000 * 255 * 255 does not fit int32
    b = np.full((70000, 2), 255, np.uint8)
    with pytest.raises(OverflowRiskError, match="int32"):
        matmul_integer(a, b, backend=fast)


def test_thread_count_invariance(fast, threads):
    rng = np.random.default_rng(4)
    a = int_array(rng, (130, 200), np.uint8)
    b = int_array(rng, (200, 150), np.int8)
    za = int_array(rng, (130,), np.uint8)
    threads(1)
    one = matmul_integer(a, b, za, np.int8(5), backend=fast)
    threads(2)
    two = matmul_integer(a, b, za, np.int8(5), backend=fast)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(one, reference(a, b, za[:, None], 5))


@pytest.mark.skipif(not C_ISAS, reason="C kernels not built")
@pytest.mark.parametrize("isa", C_ISAS)
def test_c_packed_b_and_bias(isa):
    from refcomp.kernels import c

    rng = np.random.default_rng(5)
    for adt, bdt in [(np.uint8, np.int8), (np.int8, np.uint8)]:
        a = int_array(rng, (17, 33), adt)
        b = int_array(rng, (33, 70), bdt)
        za = int_array(rng, (17,), adt).astype(np.int32)
        zb = int_array(rng, (70,), bdt).astype(np.int32)
        bias = rng.integers(-1000, 1000, 70).astype(np.int32)
        want = reference(a, b, za[:, None], zb) + bias
        packed = c.PackedB(b)
        np.testing.assert_array_equal(c.matmul_integer(a, packed, za, zb, bias, isa=isa), want)
        np.testing.assert_array_equal(c.matmul_integer(a, packed, za, zb, bias, isa=isa, threads=2), want)
        np.testing.assert_array_equal(c.matmul_integer(a, b, za, zb, bias, isa=isa), want)


@pytest.mark.skipif(not C_ISAS, reason="C kernels not built")
@pytest.mark.parametrize("isa", C_ISAS)
@pytest.mark.parametrize("m", range(1, 8))
def test_c_packed_layout_edges(isa, m):
    """The packed layouts' edges on every path: M = 1..7 (each short last 6-row panel), K odd and
    K mod 4 = 1..3 (the zero-padded last k group / pair), N around the 16-column strip of the AVX2
    pair layout and the 64-column panel of the byte layout; B packed once (the best path's layout,
    which every isa multiplies) and per call (the isa's own layout), per-tensor and vector zero points."""
    from refcomp.kernels import c

    rng = np.random.default_rng(100 + m)
    for k in (1, 2, 3, 5, 6, 7, 9, 13):
        for n in (1, 8, 15, 16, 17, 33, 48, 63, 64, 65, 80):
            adt, bdt = (np.uint8, np.int8) if (k + n) % 2 else (np.int8, np.uint8)
            a = int_array(rng, (m, k), adt, MODES[(m + k) % 4])
            b = int_array(rng, (k, n), bdt, MODES[(n + k) % 4])
            if n % 2:  # per-tensor zero points: the fused epilogue
                za = np.full(m, int_array(rng, (), adt), np.int32)
                zb = np.full(n, int_array(rng, (), bdt), np.int32)
            else:
                za, zb = int_array(rng, (m,), adt).astype(np.int32), int_array(rng, (n,), bdt).astype(np.int32)
            want = reference(a, b, za[:, None], zb)
            np.testing.assert_array_equal(c.matmul_integer(a, c.PackedB(b), za, zb, isa=isa), want)
            np.testing.assert_array_equal(c.matmul_integer(a, b, za, zb, isa=isa), want)


@pytest.mark.skipif(not C_ISAS, reason="C kernels not built")
def test_c_wrapper_validates_before_calling_c(monkeypatch):
    from refcomp.kernels import c

    a = np.zeros((2, 3), np.uint8)
    with pytest.raises(ValidationError, match="b"):
        c.matmul_integer(a, np.zeros((4, 2), np.int8))
    with pytest.raises(ValidationError, match="a"):
        c.matmul_integer(a.astype(np.int16), np.zeros((3, 2), np.int8))
    with pytest.raises(ValidationError, match="b_zero_point"):
        c.matmul_integer(a, np.zeros((3, 2), np.int8), None, np.zeros(5, np.int32))
    monkeypatch.setenv("REFCOMP_ISA", "sse9")
    with pytest.raises(ValidationError, match="REFCOMP_ISA"):
        c.matmul_integer(a, np.zeros((3, 2), np.int8))
    monkeypatch.setenv("REFCOMP_ISA", "avx512vnni")
    if "avx512vnni" not in C_ISAS:
        with pytest.raises(BackendUnavailableError):
            c.matmul_integer(a, np.zeros((3, 2), np.int8))


def test_auto_prefers_c_then_numba():
    from refcomp import backend

    avail = backend.available("matmul_integer")
    fn = backend.implementation("matmul_integer", "auto")
    if "c" in avail:
        assert fn.__module__ == "refcomp.kernels.c"
    elif "numba" in avail:
        assert fn.__module__.startswith("refcomp.kernels.numba")
    assert refcomp.get_num_threads() >= 1


@pytest.mark.parametrize("m", [1, 31, 32, 45])  # 1-row and 4-row numba tiles, remainders 1 and 3
@pytest.mark.parametrize("adt,bdt", [(np.uint8, np.int8), (np.int8, np.uint8)])
def test_extremes_with_vector_zero_points_across_row_counts(fast, m, adt, bdt):
    rng = np.random.default_rng(6)
    a = int_array(rng, (m, 300), adt, "extremes")
    b = int_array(rng, (300, 70), bdt, "extremes")
    za = int_array(rng, (m,), adt, "extremes")
    zb = int_array(rng, (70,), bdt, "extremes")
    np.testing.assert_array_equal(matmul_integer(a, b, za, zb, backend=fast), reference(a, b, za[:, None], zb))
