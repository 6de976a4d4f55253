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
