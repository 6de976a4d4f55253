"""sparse_linear and CSRMatrix.dot reject bad input."""

import numpy as np
import pytest

from refcomp.errors import DTypeError, ShapeError, ValidationError
from refcomp.formats import CSRMatrix
from refcomp.ops import sparse_linear

from .._support.csr import make


def test_sparse_linear_rejects_bad_input():
    W = make()
    with pytest.raises(ShapeError, match="x"):
        sparse_linear(np.ones((2, 3), np.float32), W)
    with pytest.raises(DTypeError, match="x"):
        sparse_linear(np.ones((2, 4), np.int32), W)
    with pytest.raises(ValidationError, match="W"):
        sparse_linear(np.ones((2, 4), np.float32), W.to_dense())
    with pytest.raises(ShapeError, match="bias"):
        sparse_linear(np.ones((2, 4), np.float32), W, np.ones(4, np.float32))
    with pytest.raises(ValidationError, match="finite"):
        W.dot(np.full((4, 1), np.inf, np.float32))


def test_integer_dot_rejects_float_x():
    W = CSRMatrix.from_dense(np.eye(3, dtype=np.int8))
    with pytest.raises(DTypeError, match="X"):
        W.dot(np.ones((3, 2), np.float32))
    with pytest.raises(DTypeError, match="W"):
        sparse_linear(np.ones((2, 3), np.float32), W)
