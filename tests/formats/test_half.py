"""HalfPrecision: 16-bit storage, float32 compute, fields bit for bit."""

import ml_dtypes
import numpy as np
import pytest

from refcomp.errors import DTypeError, FileFormatError
from refcomp.formats import HalfPrecision

BF16 = np.dtype(ml_dtypes.bfloat16)


@pytest.mark.parametrize("dtype", [np.dtype(np.float16), BF16])
def test_widening_is_exact_and_fields_round_trip(dtype):
    w = np.random.default_rng(0).standard_normal((5, 7)).astype(np.float32).astype(dtype)
    h = HalfPrecision(w)
    assert h.nbytes == 2 * w.size and h.shape == (5, 7)
    dense = h.to_dense()
    assert dense.dtype == np.float32
    # widening is exact: back to 16 bits gives the same bits
    assert dense.astype(dtype).view(np.uint16).tobytes() == w.view(np.uint16).tobytes()
    x = np.random.default_rng(1).standard_normal((3, 7)).astype(np.float32)
    np.testing.assert_array_equal(h.matmul(x), x @ dense.T)
    back = HalfPrecision.from_fields({k: v.copy() for k, v in h.fields().items()})
    assert back.data.dtype == dtype and back.data.view(np.uint16).tobytes() == w.view(np.uint16).tobytes()


def test_bad_input():
    with pytest.raises(DTypeError, match="data"):
        HalfPrecision(np.zeros(3, np.float32))
    with pytest.raises(DTypeError, match="data"):
        HalfPrecision(np.zeros(3, np.int16))  # 2 bytes, but not a float
    with pytest.raises(FileFormatError, match="float16"):
        HalfPrecision.from_fields({"float16": np.zeros(3, np.uint16)})
    with pytest.raises(FileFormatError):
        HalfPrecision.from_fields({"data": np.zeros(3, np.float16)})


# Refusals say what came: the dtype of a wrong array, the type of a non-array, each field's dtype
def test_refusals_name_what_came():
    with pytest.raises(DTypeError, match="got dtype float32"):
        HalfPrecision(np.zeros(3, np.float32))
    with pytest.raises(DTypeError, match="got list"):
        HalfPrecision([1.0, 2.0])  # a list is not an array, even of floats
    with pytest.raises(FileFormatError, match=r"got \{'float16': 'uint16'\}"):
        HalfPrecision.from_fields({"float16": np.zeros(3, np.uint16)})
    with pytest.raises(FileFormatError, match="got list"):
        HalfPrecision.from_fields([np.zeros(3, np.float16)])


# matmul of a rank > 2 weight uses its (out, rest) matrix
def test_matmul_of_a_kernel_uses_its_out_rest_matrix():
    w = np.random.default_rng(2).standard_normal((4, 3, 2, 2)).astype(np.float16)
    x = np.random.default_rng(3).standard_normal((5, 12)).astype(np.float32)
    expected = x @ w.astype(np.float32).reshape(4, 12).T
    np.testing.assert_array_equal(HalfPrecision(w).matmul(x), expected)
