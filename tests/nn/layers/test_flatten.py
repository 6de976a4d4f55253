"""Flatten: (N, d1, d2, ...) -> (N, d1·d2·...) in C order, the backward the inverse reshape, codes
of a QTensor flattened with their quantization parameters, bad input."""

import numpy as np
import pytest

from refcomp.errors import ShapeError, ValidationError
from refcomp.formats.qtensor import QTensor
from refcomp.nn import Flatten
from refcomp.quant import QParams


def test_forward_keeps_the_batch_axis_and_joins_the_rest_in_c_order():
    x = np.arange(2 * 3 * 4, dtype=np.float64).reshape(2, 3, 4)
    y = Flatten().forward(x)
    assert y.shape == (2, 12)
    # row n is sample n's elements in C order: x[n, i, j] lands at column 4·i + j
    for n in range(2):
        for i in range(3):
            for j in range(4):
                assert y[n, 4 * i + j] == x[n, i, j]


def test_rank_one_becomes_one_column_and_rank_zero_is_refused():
    y = Flatten().forward(np.array([1.0, 2.0, 3.0]))
    assert y.shape == (3, 1) and y[:, 0].tolist() == [1.0, 2.0, 3.0]
    assert Flatten().forward(np.ones((5, 1, 1, 2))).shape == (5, 2)
    with pytest.raises(ShapeError, match="^x:"):
        Flatten().forward(np.float64(1.0))


def test_backward_restores_the_input_shape():
    layer = Flatten()
    x = np.zeros((2, 3, 4))
    layer.forward(x)
    dy = np.arange(24.0).reshape(2, 12)
    dx = layer.backward(dy)
    assert dx.shape == (2, 3, 4)
    assert dx[1, 2, 3] == dy[1, 4 * 2 + 3] and dx[0, 1, 0] == dy[0, 4]     # the forward's index map, inverted
    # any dy with the right element count is accepted (the reshape is all backward does)
    assert layer.backward(np.ones(24)).shape == (2, 3, 4)


def test_backward_needs_a_forward_and_the_right_size():
    with pytest.raises(ValidationError, match="^backward:"):
        Flatten().backward(np.ones((2, 3)))
    layer = Flatten()
    layer.forward(np.zeros((2, 3, 4)))
    for bad in (np.ones((2, 11)), np.ones((2, 13))):
        with pytest.raises(ShapeError, match="^dy:"):
            layer.backward(bad)


def test_qtensor_codes_are_flattened_with_their_parameters():
    qp = QParams(np.float32(0.5), np.array(3, np.uint8), "uint8")
    codes = np.arange(2 * 2 * 3, dtype=np.uint8).reshape(2, 2, 3)
    y = Flatten().forward(QTensor(codes, qp))
    assert isinstance(y, QTensor) and y.qparams is qp
    assert y.data.dtype == np.uint8 and y.data.shape == (2, 6)
    assert y.data.tolist() == [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]]
