"""refcomp.ops.shift_linear / rshift_round against Python integers and fractions (eqs. P1-P2)."""

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp.errors import DTypeError, ShapeError, ValidationError
from refcomp.ops import rshift_round, shift_linear


def round_half_up(q: Fraction) -> int:
    return math.floor(q + Fraction(1, 2))


@settings(max_examples=200, deadline=None)
@given(a=st.integers(-(2**40), 2**40), r=st.integers(-10, 20))
def test_rshift_is_nearest_ties_up(a, r):
    want = a * 2 ** -r if r <= 0 else round_half_up(Fraction(a, 2**r))
    assert int(rshift_round(np.array([a]), r)[0]) == want


def test_rshift_ties():
    a = np.array([-7, -5, -3, -1, 1, 3, 5, 7])  # a / 2 = ±0.5, ±1.5 ...: every one a tie
    np.testing.assert_array_equal(rshift_round(a, 1), [-3, -2, -1, 0, 1, 2, 3, 4])
    np.testing.assert_array_equal(rshift_round(np.array([-6, 6, -2, 2]), 2), [-1, 2, 0, 1])


@settings(max_examples=60, deadline=None)
@given(m=st.integers(1, 4), n=st.integers(1, 4), k=st.integers(1, 30), r=st.integers(-3, 12),
       seed=st.integers(0, 2**32 - 1), relu=st.booleans())
def test_equals_python_integers(m, n, k, r, seed, relu):
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (m, k))
    sign = rng.integers(-1, 2, (n, k)).astype(np.int8)
    shift = rng.integers(0, 8, (n, k))
    bias = rng.integers(-5000, 5000, n)
    lo, hi = (0, 255) if relu else (-128, 127)
    got = shift_linear(x, sign, shift, bias, r, qmin=lo, qmax=hi)
    for i in range(m):
        for j in range(n):
            acc = sum(int(sign[j, t]) * int(x[i, t]) * 2 ** int(shift[j, t]) for t in range(k)) + int(bias[j])
            y = acc * 2 ** -r if r <= 0 else round_half_up(Fraction(acc, 2**r))
            assert got[i, j] == min(max(y, lo), hi)


def test_int64_path_beyond_float64():
    # K·max|x|·2^max(shift) >= 2^53: summed in int64 (a float64 sum would round)
    x = np.array([[2**45 + 1, 2**45 + 3, -(2**44) - 1]])
    sign = np.array([[1, 1, -1], [1, 0, 1]], np.int8)
    shift = np.array([[7, 7, 8], [0, 3, 9]])
    got = shift_linear(x, sign, shift, np.array([1, -1]), 3, qmin=-(2**61), qmax=2**61)
    for j in range(2):
        acc = sum(int(sign[j, t]) * int(x[0, t]) * 2 ** int(shift[j, t]) for t in range(3)) + [1, -1][j]
        assert got[0, j] == round_half_up(Fraction(acc, 8))


def test_bad_arguments_name_themselves():
    x, s, e = np.ones((2, 3), np.int64), np.ones((4, 3), np.int8), np.zeros((4, 3), np.int64)
    with pytest.raises(DTypeError, match="x"):
        shift_linear(x.astype(np.float32), s, e, None, 0, qmin=0, qmax=1)
    with pytest.raises(DTypeError, match="sign"):
        shift_linear(x, s.astype(np.int16), e, None, 0, qmin=0, qmax=1)
    with pytest.raises(ValidationError, match="sign"):
        shift_linear(x, s * 2, e, None, 0, qmin=0, qmax=1)
    with pytest.raises(ShapeError, match="shift"):
        shift_linear(x, s, e[:, :2], None, 0, qmin=0, qmax=1)
    with pytest.raises(ValidationError, match="shift"):
        shift_linear(x, s, e + 63, None, 0, qmin=0, qmax=1)
    with pytest.raises(ShapeError, match="bias"):
        shift_linear(x, s, e, np.zeros(3, np.int64), 0, qmin=0, qmax=1)
    with pytest.raises(ValidationError, match="r"):
        shift_linear(x, s, e, None, 63, qmin=0, qmax=1)
    with pytest.raises(ValidationError, match="qmin"):
        shift_linear(x, s, e, None, 0, qmin=2, qmax=1)
    with pytest.raises(ValidationError, match="2\\^62"):
        shift_linear(x * 2**40, s, e + 30, None, 0, qmin=0, qmax=1)


# each bad argument is refused with an error naming it first; the edges of every bound
def _ok():
    return np.ones((2, 3), np.int64), np.ones((4, 3), np.int8), np.zeros((4, 3), np.int64)


@pytest.mark.parametrize("which, error, bad", [
    ("x", DTypeError, np.array([["a", "b", "c"]])),
    ("x", DTypeError, np.ones((2, 3), np.uint64)),
    ("x", ShapeError, np.ones(3, np.int64)),
    ("shift", DTypeError, np.array([["a", "b", "c"]] * 4)),
    ("shift", DTypeError, np.zeros((4, 3), np.float64)),
    ("shift", ShapeError, np.zeros((4, 3, 1), np.int64)),
    ("bias", DTypeError, np.array(["a"] * 4)),
    ("bias", DTypeError, np.zeros(4, np.float64)),
    ("bias", ShapeError, np.zeros((4, 1), np.int64)),
])
def test_each_bad_array_is_refused_naming_itself(which, error, bad):
    args = dict(zip(("x", "sign", "shift"), _ok()), bias=None)
    args[which] = bad
    with pytest.raises(error, match=f"^{which}: "):
        shift_linear(args["x"], args["sign"], args["shift"], args["bias"], 0, qmin=0, qmax=1)


def test_sign_must_be_two_dimensional():
    x, s, e = _ok()
    for bad in (s[0], s[:, :, None]):
        with pytest.raises(ShapeError, match="^sign: "):
            shift_linear(x, bad, e, None, 0, qmin=0, qmax=1)


def test_shift_and_r_edges():
    x0, s = np.zeros((2, 3), np.int64), np.ones((4, 3), np.int8)
    # shift 62 and r = -62 are allowed (x = 0 keeps the sum within the bound); -1, 63 and r = -63 are not
    np.testing.assert_array_equal(shift_linear(x0, s, np.full((4, 3), 62), None, 0, qmin=-9, qmax=9), 0)
    np.testing.assert_array_equal(shift_linear(x0, s, np.zeros((4, 3), np.int64), None, -62, qmin=-9, qmax=9), 0)
    for bad in (-1, 63):
        with pytest.raises(ValidationError, match="^shift: "):
            shift_linear(x0, s, np.full((4, 3), bad), None, 0, qmin=-9, qmax=9)
    with pytest.raises(ValidationError, match="^r: "):
        shift_linear(x0, s, np.zeros((4, 3), np.int64), None, -63, qmin=-9, qmax=9)


def test_qmin_equal_to_qmax_is_a_constant_output():
    x, s, e = _ok()
    np.testing.assert_array_equal(shift_linear(x, s, e, None, 0, qmin=5, qmax=5), np.full((2, 4), 5))


def test_overflow_bound_at_and_just_beyond_its_edge():
    x, s, e = np.array([[1]]), np.array([[1]], np.int8), np.array([[61]])
    lim = dict(qmin=-(2**62), qmax=2**62)
    # K·max|x|·2^max(shift) + max|bias| = 2^61 + 2^61 - 1 = 2^62 - 1: accepted, exact, for r >= 0
    for r in (0, 3):
        got = shift_linear(x, s, e, np.array([2**61 - 1]), r, **lim)
        assert int(got[0, 0]) == round_half_up(Fraction(2**62 - 1, 2**r))
    with pytest.raises(ValidationError, match="2\\^62"):  # the bound reached: 2^61 + 2^61
        shift_linear(x, s, e, np.array([2**61]), 0, **lim)
    # r < 0 multiplies the bound by 2^-r: 1 · 2^61 passes, 1 · 2^62 does not
    assert int(shift_linear(x, s, np.array([[0]]), None, -61, **lim)[0, 0]) == 2**61
    with pytest.raises(ValidationError, match="2\\^62"):
        shift_linear(x, s, np.array([[0]]), None, -62, **lim)


def test_float_path_ends_at_2_pow_53_and_big_bias_stays_exact():
    s, e = np.array([[1]], np.int8), np.array([[0]])
    lim = dict(qmin=-(2**62), qmax=2**62)
    # 2^53 + 1 is no float64: it must be summed in int64, without bias and with two rows
    x = np.array([[2**53 + 1], [-(2**53) - 1]])
    got = shift_linear(x, s, e, None, 0, **lim)
    assert got.shape == (2, 1) and got.dtype == np.int64
    assert [int(v) for v in got[:, 0]] == [2**53 + 1, -(2**53) - 1]
    # a small product plus a bias beyond 2^53: the bias is added in int64
    assert int(shift_linear(np.array([[1]]), s, e, np.array([2**61 + 1]), 0, **lim)[0, 0]) == 2**61 + 2


def test_empty_shapes():
    lim = dict(qmin=-(2**62), qmax=2**62)
    # x with no columns: every output is the bias alone (rounded and clipped)
    got = shift_linear(np.zeros((3, 0), np.int64), np.zeros((2, 0), np.int8), np.zeros((2, 0), np.int64),
                       np.array([5, -6]), 1, **lim)
    np.testing.assert_array_equal(got, [[3, -3]] * 3)
    # no rows of x: nothing is computed, whatever the shifts
    got = shift_linear(np.zeros((0, 2), np.int64), np.ones((2, 2), np.int8), np.full((2, 2), 62), None, 0, **lim)
    assert got.shape == (0, 2)
    # no outputs: any x within the bound (here 2^62 - 1) is accepted
    got = shift_linear(np.array([[2**62 - 1]]), np.zeros((0, 1), np.int8), np.zeros((0, 1), np.int64), None, 0, **lim)
    assert got.shape == (1, 0)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int32, np.uint64])
def test_rshift_works_in_int64_whatever_the_integer_input_dtype(dtype):
    a = np.array([100, 7], dtype)
    assert rshift_round(a, -4).dtype == np.int64 and list(rshift_round(a, -4)) == [1600, 112]  # 1600 > int8
    assert rshift_round(a, 1).dtype == np.int64 and list(rshift_round(a, 1)) == [50, 4]
