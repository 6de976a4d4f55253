"""Both Numba int8 GEMM paths (VNNI tiles, portable 4 x 4 blocks) equal the int64 sum modulo 2**32.

The op tests (tests/kernels/test_matmul_integer.py) run the path "auto" picks; here
each path is forced, on the sizes where its blocking has edges: rows not a
multiple of 4 (1-row tiles, over 4 panels = 256 columns or 1), columns not a
multiple of 64 (a padded panel) or of 4, K not a multiple of 4 (zero-padded bytes), and sums that wrap.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import refcomp
from refcomp.errors import BackendUnavailableError, ValidationError
from refcomp.kernels.numba import matmul_integer as nbm

from ..conftest import int_array

PATHS = ["portable"] + (["vnni"] if nbm.best_path() == "vnni" else [])
DTYPES = (np.uint8, np.int8)
MODES = ("random", "max", "min", "extremes")


def wrapped(a, b, za, zb):
    """The exact int64 product reduced modulo 2**32 into int32."""
    za = np.asarray(za, np.int64).reshape(-1, 1) if np.ndim(za) else np.int64(za)
    r = (a.astype(np.int64) - za) @ (b.astype(np.int64) - np.asarray(zb, np.int64))
    return ((r + 2**31) % 2**32 - 2**31).astype(np.int32)


@pytest.mark.parametrize("path", PATHS)
@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 17), k=st.integers(1, 70), n=st.integers(1, 300),
       adt=st.sampled_from(DTYPES), bdt=st.sampled_from(DTYPES),
       amode=st.sampled_from(MODES), bmode=st.sampled_from(MODES),
       zp=st.sampled_from(["none", "scalar", "vector"]), seed=st.integers(0, 2**32 - 1))
def test_path_equals_reference(path, m, k, n, adt, bdt, amode, bmode, zp, seed):
    rng = np.random.default_rng(seed)
    a = int_array(rng, (m, k), adt, amode)
    b = int_array(rng, (k, n), bdt, bmode)
    if zp == "none":
        za, zb = np.int32(0), np.int32(0)
    elif zp == "scalar":
        za, zb = np.int32(int_array(rng, (), adt)), np.int32(int_array(rng, (), bdt))
    else:
        za, zb = int_array(rng, (m,), adt).astype(np.int32), int_array(rng, (n,), bdt).astype(np.int32)
    got = nbm.matmul_integer(a, b, za, zb, path=path, threads=1)
    assert got.dtype == np.int32 and got.shape == (m, n)
    np.testing.assert_array_equal(got, wrapped(a, b, za, zb))


@pytest.mark.parametrize("path", PATHS)
def test_sums_beyond_int32_wrap_like_the_int64_result(path):
    # 255 * -128 * 70001 < -2**31: the kernels add modulo 2**32 (vpdpbusd, not the saturating vpdpbusds)
    k = 70001
    a = np.full((5, k), 255, np.uint8)
    b = np.full((k, 3), -128, np.int8)
    np.testing.assert_array_equal(nbm.matmul_integer(a, b, 0, 0, path=path), wrapped(a, b, 0, 0))


@pytest.mark.parametrize("path", PATHS)
def test_packed_b_is_reusable_and_equals_unpacked(path):
    rng = np.random.default_rng(3)
    b = int_array(rng, (37, 70), np.uint8)
    pb = nbm.PackedB(b, path=path)
    zb = int_array(rng, (70,), np.uint8).astype(np.int32)
    for m in (1, 4, 9):
        a = int_array(rng, (m, 37), np.int8)
        want = nbm.matmul_integer(a, b, 5, zb, path=path)
        np.testing.assert_array_equal(nbm.matmul_integer(a, pb, 5, zb), want)
        np.testing.assert_array_equal(want, wrapped(a, b, 5, zb))


@pytest.mark.parametrize("path", PATHS)
def test_one_and_two_threads_give_the_same_integers(path, threads):
    rng = np.random.default_rng(4)
    # 45 * 400 * 130 = 2.3e6 multiply-adds: above the size below which one thread runs anyway
    a = int_array(rng, (45, 400), np.uint8)
    b = int_array(rng, (400, 130), np.int8)
    assert 45 * 400 * 130 >= nbm._SERIAL_BELOW
    one = nbm.matmul_integer(a, b, 7, -3, path=path, threads=1)
    two = nbm.matmul_integer(a, b, 7, -3, path=path, threads=2)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(one, wrapped(a, b, 7, -3))


def test_bad_path_and_mismatched_packed_b_are_rejected():
    with pytest.raises(ValidationError, match="path"):
        nbm.matmul_integer(np.zeros((2, 3), np.uint8), np.zeros((3, 2), np.int8), 0, 0, path="avx9")
    pb = nbm.PackedB(np.zeros((4, 2), np.int8))
    with pytest.raises(ValidationError, match="b"):
        nbm.matmul_integer(np.zeros((2, 3), np.uint8), pb, 0, 0)
    with pytest.raises(ValidationError, match="b"):
        nbm.PackedB(np.zeros((4, 2), np.int16))
    with pytest.raises(ValidationError, match="a"):
        nbm.matmul_integer(np.zeros((2, 4), np.int16), pb, 0, 0)
    with pytest.raises(ValidationError, match="zero_point"):
        nbm.matmul_integer(np.zeros((2, 4), np.uint8), pb, np.zeros(3, np.int32), 0)


def test_vnni_path_is_refused_where_the_jit_cannot_emit_it(monkeypatch):
    from refcomp.kernels.numba import _vnni

    monkeypatch.setattr(nbm, "vnni_usable", lambda: False)
    assert nbm.best_path() == "portable"
    with pytest.raises(BackendUnavailableError):
        nbm.matmul_integer(np.zeros((2, 3), np.uint8), np.zeros((3, 2), np.int8), 0, 0, path="vnni")
    assert isinstance(_vnni.vnni_usable(), bool)
    assert refcomp.get_num_threads() >= 1


def test_generic_numba_target_uses_the_portable_path(tmp_path):
    """With NUMBA_CPU_NAME=generic the VNNI intrinsic must never be compiled (LLVM would abort)."""
    import os
    import subprocess
    import sys

    code = ("import numpy as np\n"
            "from refcomp.ops import matmul_integer\n"
            "from refcomp.kernels.numba import matmul_integer as nbm\n"
            "assert nbm.best_path() == 'portable', nbm.best_path()\n"
            "a = np.arange(35, dtype=np.uint8).reshape(5, 7); b = (np.arange(21, dtype=np.int8) - 10).reshape(7, 3)\n"
            "want = (a.astype(np.int64) - 3) @ (b.astype(np.int64) + 2)\n"
            "got = matmul_integer(a, b, np.uint8(3), np.int8(-2), backend='numba')\n"
            "assert (got == want).all(), (got, want)\n"
            "print('portable ok')\n")
    env = dict(os.environ, NUMBA_CPU_NAME="generic", NUMBA_CACHE_DIR=str(tmp_path))
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "portable ok" in res.stdout
