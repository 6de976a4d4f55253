"""The two rounding rules, against Python's own exact rounding (decimal / round on the exact value)."""

from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refcomp.errors import ValidationError
from refcomp.numerics.rounding import half_away, half_to_even, round_with

# every float64 below 2^53 in magnitude, ties (k + 1/2) over-represented
finite = st.one_of(st.floats(-2.0**53, 2.0**53, allow_nan=False),
                   st.integers(-2**20, 2**20).map(lambda k: k + 0.5))


def away_oracle(v: float) -> float:
    # Decimal(v) is v's exact binary value: ROUND_HALF_UP rounds ties away from zero
    return float(Decimal(v).quantize(Decimal(1), rounding=ROUND_HALF_UP))


@given(st.lists(finite, min_size=1, max_size=20))
def test_half_away_is_decimal_round_half_up(xs):
    x = np.array(xs)
    np.testing.assert_array_equal(half_away(x), [away_oracle(v) for v in xs])


@given(st.lists(finite, min_size=1, max_size=20))
def test_half_to_even_is_python_round(xs):
    x = np.array(xs)
    np.testing.assert_array_equal(half_to_even(x), [float(round(v)) for v in xs])


def test_the_float_just_below_one_half():
    # floor(|x| + 0.5) would give 1 here: the sum rounds up in float64
    x = np.nextafter(0.5, 0.0)
    assert half_away(np.array([x, -x])).tolist() == [0.0, 0.0]


def test_round_with_dispatches_and_defaults_to_half_to_even():
    x = np.array([0.5, 1.5, 2.5, -0.5, -2.5])
    np.testing.assert_array_equal(round_with(x), [0.0, 2.0, 2.0, -0.0, -2.0])
    np.testing.assert_array_equal(round_with(x, "half_to_even"), half_to_even(x))
    np.testing.assert_array_equal(round_with(x, "half_away"), [1.0, 2.0, 3.0, -1.0, -3.0])


@pytest.mark.parametrize("mode", ["HALF_AWAY", "nearest", "", None])
def test_round_with_refuses_an_unknown_mode_naming_rounding(mode):
    with pytest.raises(ValidationError, match="^rounding: "):
        round_with(np.array([0.5]), mode)
