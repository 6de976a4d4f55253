"""The Clustered weight format."""

import numpy as np
import pytest

from refcomp.errors import DTypeError, ShapeError, ValidationError
from refcomp.formats import Clustered, WeightFormat


def test_to_dense_matmul_and_sizes():
    codebook = np.array([-1.0, 0.5, 2.0], dtype=np.float32)
    idx = np.array([[0, 1, 2], [2, 2, 0]])
    mask = np.array([[True, False, True], [True, True, True]])
    c = Clustered(codebook, idx, mask)
    assert isinstance(c, WeightFormat) and c.bits == 2 and c.shape == (2, 3)
    dense = c.to_dense()
    np.testing.assert_array_equal(dense, [[-1.0, 0.0, 2.0], [2.0, 2.0, -1.0]])
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.testing.assert_allclose(c.matmul(x), x @ dense.T)
    assert c.storage_bits == 6 * 2 + 3 * 32 + 6 and c.nbytes == -(-c.storage_bits // 8)
    assert set(c.fields()) == {"codebook", "indices", "bits", "mask"}


def test_validation():
    cb = np.zeros(4, dtype=np.float32)
    with pytest.raises(ValidationError, match="bits"):
        Clustered(cb, np.zeros(3, dtype=int), bits=9)
    with pytest.raises(ValidationError, match="bits"):
        Clustered(cb, np.zeros(3, dtype=int), bits=0)
    with pytest.raises(ValidationError, match="codebook"):
        Clustered(np.zeros(8, dtype=np.float32), np.zeros(3, dtype=int), bits=2)
    with pytest.raises(ValidationError, match="indices"):
        Clustered(cb, np.array([0, 4]))
    with pytest.raises(DTypeError, match="mask"):
        Clustered(cb, np.zeros(3, dtype=int), np.ones(3))
    with pytest.raises(ShapeError, match="mask"):
        Clustered(cb, np.zeros(3, dtype=int), np.ones(4, dtype=bool))
    with pytest.raises(DTypeError, match="codebook"):
        Clustered(np.zeros(4, dtype=int), np.zeros(3, dtype=int))
    with pytest.raises(ShapeError, match="x"):
        Clustered(cb, np.zeros((2, 3), dtype=int)).matmul(np.ones((1, 2)))
