"""refcomp.ops.binary_matmul / pack_signs against a written-out ±1 float matmul.

The oracle shares nothing with the op: it maps x to ±1 with np.where and
multiplies float64 matrices, and it reads packed words bit by bit in Python.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp.errors import DTypeError, ShapeError, ValidationError
from refcomp.ops import binary_matmul, pack_signs


def pm1(x):
    return np.where(np.asarray(x) < 0, -1.0, 1.0)


def oracle(x, w):
    """Σ_k sign(x[i,k])·sign(w[j,k]) in float64 (exact: |sum| <= K < 2^53)."""
    return pm1(x) @ pm1(w).T


@settings(max_examples=60, deadline=None)
@given(m=st.integers(1, 5), n=st.integers(1, 5), k=st.integers(1, 200), seed=st.integers(0, 2**32 - 1))
def test_equals_pm1_float_matmul(m, n, k, seed):
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal((m, k)), rng.standard_normal((n, k))
    got = binary_matmul(pack_signs(x), pack_signs(w), k, backend="numpy")
    assert got.dtype == np.int32 and got.shape == (m, n)
    np.testing.assert_array_equal(got, oracle(x, w))


@pytest.mark.parametrize("k", [1, 63, 64, 65, 127, 128, 129, 300])
def test_k_around_word_edges(k):
    # all +1 against all -1 gives -k exactly: the pad bits (k..64W-1) must count for nothing
    pos, neg = np.ones((1, k)), -np.ones((1, k))
    assert binary_matmul(pack_signs(pos), pack_signs(neg), k, backend="numpy")[0, 0] == -k
    assert binary_matmul(pack_signs(neg), pack_signs(neg), k, backend="numpy")[0, 0] == k
    assert binary_matmul(pack_signs(pos), pack_signs(pos), k, backend="numpy")[0, 0] == k


def test_pack_layout_bit_by_bit():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 130))
    x[0, 5] = 0.0  # zero counts as +1
    p = pack_signs(x)
    assert p.dtype == np.uint64 and p.shape == (3, 3)
    for i in range(3):
        for kk in range(192):
            bit = (int(p[i, kk // 64]) >> (kk % 64)) & 1
            assert bit == (kk < 130 and x[i, kk] < 0)


def test_bad_arguments_name_themselves():
    a = pack_signs(np.ones((2, 70)))
    with pytest.raises(ValidationError, match="k"):
        binary_matmul(a, a, 0)
    with pytest.raises(ShapeError, match="b"):
        binary_matmul(a, a[:, :1], 70)
    with pytest.raises(DTypeError, match="a"):
        binary_matmul(a.astype(np.int64), a, 70)
    bad = a.copy()
    bad[0, 1] |= np.uint64(1) << np.uint64(63)  # a pad bit of the last word
    with pytest.raises(ValidationError, match="pad bits"):
        binary_matmul(bad, a, 70)
    with pytest.raises(ShapeError, match="x"):
        pack_signs(np.ones(5))


# ---------------------------------------------------------------- k's range, each operand named, dispatch
def test_k_is_an_int32_from_1():
    for k in (0, -1, 2**31, 2**32 - 1):
        with pytest.raises(ValidationError, match="^k: "):
            binary_matmul(np.zeros((1, 1), np.uint64), np.zeros((1, 1), np.uint64), k)
    # the largest k: no rows, so nothing is allocated for its 2^25 words
    empty = np.zeros((0, 2**25), np.uint64)
    assert binary_matmul(empty, empty, 2**31 - 1).shape == (0, 0)


def test_each_operand_is_named():
    a = pack_signs(np.ones((2, 70)))
    for bad in (a[0], a[:, :1], a.astype(np.int64), np.array([["x", "y"]])):
        with pytest.raises(ValidationError, match="^a: "):
            binary_matmul(bad, a, 70)
        with pytest.raises(ValidationError, match="^b: "):
            binary_matmul(a, bad, 70)


def test_the_registered_kernel_gets_the_checked_operands_unless_numpy_is_asked(kernel_registry):
    calls = []

    def fake(a, b, k):
        calls.append((a, b, k))
        return np.full((a.shape[0], b.shape[0]), -7, np.int32)

    kernel_registry({("binary_matmul", "c"): fake})
    x, w = np.array([[1.0, -2.0, 3.0]]), np.array([[-1.0, -1.0, 1.0], [1.0, 1.0, 1.0]])
    a, b = pack_signs(x), pack_signs(w)
    for backend, fast in ((None, True), ("auto", True), ("c", True), ("numpy", False)):
        calls.clear()
        got = binary_matmul(a, b, 3) if backend is None else binary_matmul(a, b, 3, backend=backend)
        if fast:
            assert len(calls) == 1 and calls[0][0] is a and calls[0][1] is b and calls[0][2] == 3
            np.testing.assert_array_equal(got, [[-7, -7]])
        else:
            assert calls == []
            np.testing.assert_array_equal(got, oracle(x, w))
