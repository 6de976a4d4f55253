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
