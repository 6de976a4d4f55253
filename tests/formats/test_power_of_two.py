"""PowerOfTwo: ŵ = sign · 2^exponent, the window check, fields."""

import numpy as np
import pytest

from refcomp.errors import DTypeError, FileFormatError, ValidationError
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
