"""PowerOfTwo: ŵ = sign · 2^exponent, the window check, fields."""

import numpy as np
import pytest

from refcomp.errors import DTypeError, FileFormatError, ShapeError, ValidationError
from refcomp.formats import PowerOfTwo


def test_values_written_out():
    sign = np.array([[1, -1, 0], [1, 1, -1]], np.int8)
    exponent = np.array([[0, -2, -5], [1, -5, -1]], np.int8)
    p = PowerOfTwo(sign, exponent, max_exponent=1, bits=4)  # window [-5, 1]
    assert p.min_exponent == -5
    np.testing.assert_array_equal(p.to_dense(), np.float32([[1, -0.25, 0], [2, 2.0 ** -5, -0.5]]))
    assert p.nbytes == -(-6 * 4 // 8) + 1
    back = PowerOfTwo.from_fields({k: v.copy() for k, v in p.fields().items()})
    assert back.to_dense().tobytes() == p.to_dense().tobytes() and (back.bits, back.max_exponent) == (4, 1)


def test_bad_input():
    s = np.zeros(3, np.int8)
    with pytest.raises(DTypeError, match="sign"):
        PowerOfTwo(s.astype(np.int16), s, 0, 4)
    with pytest.raises(ValidationError, match="bits"):
        PowerOfTwo(s, s, 0, 9)
    with pytest.raises(ValidationError, match="exponents in"):
        PowerOfTwo(np.ones(3, np.int8), np.array([0, 1, 2], np.int8), max_exponent=1, bits=4)
    with pytest.raises(ValidationError, match="signs"):
        PowerOfTwo(np.array([2, 0, 0], np.int8), s, max_exponent=0, bits=4)
    with pytest.raises(FileFormatError, match="window"):
        PowerOfTwo.from_fields({"sign": s, "exponent": s, "window": np.array([0, 4], np.int32)})
    with pytest.raises(FileFormatError, match="bits"):
        PowerOfTwo.from_fields({"sign": s, "exponent": s, "window": np.array([0, 12], np.int64)})


# --- every bad argument is refused naming it; the window's ends are inclusive
@pytest.mark.parametrize("args,cls,argument", [
    ((np.zeros(3, np.int8), np.zeros(3, np.int16), 0, 4), DTypeError, "exponent"),
    ((np.zeros(3, np.int8), np.zeros(2, np.int8), 0, 4), ShapeError, "exponent"),
    ((np.zeros(3, np.int8), np.zeros(3, np.int8), 0, 1), ValidationError, "bits"),
    ((np.zeros(3, np.int8), np.zeros(3, np.int8), 0, True), ValidationError, "bits"),
    ((np.zeros(3, np.int8), np.zeros(3, np.int8), 0, 4.0), ValidationError, "bits"),
    ((np.zeros(3, np.int8), np.zeros(3, np.int8), 0.0, 4), ValidationError, "max_exponent"),
    ((np.zeros(3, np.int8), np.zeros(3, np.int8), True, 4), ValidationError, "max_exponent"),
    ((np.zeros(3, np.int8), np.zeros(3, np.int8), 128, 2), ValidationError, "max_exponent"),
    ((np.zeros(3, np.int8), np.zeros(3, np.int8), -127, 2), ValidationError, "max_exponent"),  # min -127
    ((np.array([-2, 0, 0], np.int8), np.zeros(3, np.int8), 0, 4), ValidationError, "sign, exponent"),
])
def test_bad_arguments_are_refused_naming_them(args, cls, argument):
    with pytest.raises(cls) as info:
        PowerOfTwo(*args)
    assert info.value.argument == argument


def test_the_window_ends_are_inclusive():
    # bits b: 2^(b-1) - 1 exponents, [max - 2^(b-1) + 2, max]; the float32 range [-126, 127] is the limit
    assert PowerOfTwo(np.zeros(1, np.int8), np.array([-126], np.int8), max_exponent=-126, bits=2).min_exponent == -126
    top = PowerOfTwo(np.ones(1, np.int8), np.array([127], np.int8), max_exponent=127, bits=2)
    assert top.min_exponent == 127 and top.to_dense()[0] == np.float32(2.0**127)
    low = PowerOfTwo(np.array([-1, 1], np.int8), np.array([-126, -124], np.int8), max_exponent=-124, bits=3)
    assert low.min_exponent == -126
    np.testing.assert_array_equal(low.to_dense(), np.float32([-(2.0**-126), 2.0**-124]))
    wide = PowerOfTwo(np.array([1, -1], np.int8), np.array([-126, 0], np.int8), max_exponent=0, bits=8)
    assert wide.min_exponent == -126 and wide.nbytes == 2 + 1
    with pytest.raises(ValidationError, match="exponents in"):  # just below the window
        PowerOfTwo(np.ones(1, np.int8), np.array([-6], np.int8), max_exponent=1, bits=4)
    empty = PowerOfTwo(np.zeros(0, np.int8), np.zeros(0, np.int8), max_exponent=0, bits=3)
    assert empty.to_dense().shape == (0,) and empty.nbytes == 1
    assert repr(PowerOfTwo(np.zeros(2, np.int8), np.zeros(2, np.int8), 1, 4)) == \
        "PowerOfTwo(shape=(2,), bits=4, window=[-5, 1])"


# The shift kernels read sign and exponent as checked once: they must stay as checked
def test_codes_are_private_and_cannot_be_made_writeable():
    sign, exponent = np.array([1, -1, 0], np.int8), np.array([0, -1, -2], np.int8)
    p = PowerOfTwo(sign, exponent, max_exponent=0, bits=3)
    sign[0], exponent[0] = 5, 100                       # the caller's arrays change afterwards
    np.testing.assert_array_equal(p.to_dense(), np.float32([1.0, -0.5, 0.0]))
    for a in (p.sign, p.exponent):
        with pytest.raises(ValueError, match="WRITEABLE"):
            a.flags.writeable = True
