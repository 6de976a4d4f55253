"""Concat, Reshape, Transpose, Shape: the forwards against index maps written out, the backwards
their inverses (a slice of dy per input, dy reshaped back, dy transposed by perm⁻¹), Reshape's
0 and -1 (ONNX allowzero=0) and its second input, the attribute checks and bad input."""

import itertools

import numpy as np
import pytest

from refcomp.errors import DTypeError, ShapeError, ValidationError
from refcomp.nn import Concat, Reshape, Shape, Transpose


# -- Concat -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("axis,shapes", [(1, [(2, 3), (2, 1), (2, 2)]), (0, [(1, 3), (2, 3)]),
                                         (-1, [(2, 2, 1), (2, 2, 3)]), (-2, [(1, 2), (3, 2)]),
                                         (1, [(2, 4)])])
def test_concat_places_each_input_after_the_previous_and_backward_slices_dy(axis, shapes):
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal(s) for s in shapes]
    layer = Concat(axis)
    y = layer.forward(*xs)
    ax = axis % len(shapes[0])
    offset = 0
    for x in xs:                     # y at offset + j along ax is x at j
        for idx in itertools.product(*map(range, x.shape)):
            shifted = idx[:ax] + (idx[ax] + offset,) + idx[ax + 1:]
            assert y[shifted] == x[idx]
        offset += x.shape[ax]
    assert y.shape[ax] == offset and y.shape[:ax] + y.shape[ax + 1:] == xs[0].shape[:ax] + xs[0].shape[ax + 1:]
    dy = rng.standard_normal(y.shape)
    grads = layer.backward(dy)
    assert isinstance(grads, tuple) and len(grads) == len(xs)
    offset = 0
    for x, g in zip(xs, grads):
        assert g.shape == x.shape
        for idx in itertools.product(*map(range, x.shape)):
            assert g[idx] == dy[idx[:ax] + (idx[ax] + offset,) + idx[ax + 1:]]
        offset += x.shape[ax]


def test_concat_axis_defaults_to_one_and_must_be_an_int():
    assert Concat().config() == {"axis": 1} and Concat(np.int64(-1)).config() == {"axis": -1}
    assert Concat().forward(np.ones((2, 1)), np.zeros((2, 2))).tolist() == [[1, 0, 0], [1, 0, 0]]
    for axis in (1.0, True, "1", None):
        with pytest.raises(ValidationError, match="^axis:"):
            Concat(axis)


def test_concat_refuses_mismatched_inputs_by_their_position():
    with pytest.raises(ValidationError, match="^inputs:"):
        Concat(0).forward()
    ok = np.zeros((2, 3, 4))
    for i in (1, 2):
        for bad in (np.zeros((3, 3, 4)), np.zeros((2, 3, 5)), np.zeros((2, 3)), np.zeros((2, 3, 4, 1))):
            xs = [ok, ok, ok]
            xs[i] = bad
            with pytest.raises(ShapeError, match=rf"^inputs\[{i}\]:"):
                Concat(1).forward(*xs)
    for axis in (3, -4):
        with pytest.raises(ShapeError, match=r"^inputs\[0\]:"):
            Concat(axis).forward(ok, ok)
    assert Concat(2).forward(ok, ok).shape == (2, 3, 8) and Concat(-3).forward(ok, ok).shape == (4, 3, 4)
    with pytest.raises(ShapeError, match=r"^inputs\[0\]:"):
        Concat(0).forward(np.float64(1.0))                      # rank 0 has no axis to join along
    with pytest.raises(ShapeError, match=r"^inputs\[0\]:"):
        Concat(0).forward(np.ones((1,) * 9))
    assert Concat(0).forward(np.ones((1,) * 8), np.ones((1,) * 8)).shape == (2,) + (1,) * 7
    with pytest.raises(DTypeError, match=r"^inputs\[1\]:"):
        Concat(0).forward(np.ones(2), np.ones(2, int))


def test_concat_backward_needs_a_forward_and_dy_of_ys_shape():
    with pytest.raises(ValidationError, match="^backward:"):
        Concat().backward(np.ones((2, 2)))
    layer = Concat(1)
    layer.forward(np.ones((2, 1)), np.ones((2, 2)))
    with pytest.raises(ShapeError, match="^dy:"):
        layer.backward(np.ones((2, 4)))


# -- Reshape ------------------------------------------------------------------------------------------
def test_reshape_keeps_c_order_and_backward_restores_the_shape():
    x = np.arange(24.0).reshape(2, 3, 4)
    layer = Reshape([4, 6])
    y = layer.forward(x)
    assert y.shape == (4, 6) and y.ravel().tolist() == list(range(24))
    dx = layer.backward(np.arange(24.0).reshape(4, 6) * 2)
    assert dx.shape == (2, 3, 4) and dx.ravel().tolist() == [2.0 * i for i in range(24)]
    with pytest.raises(ShapeError, match="^dy:"):
        layer.backward(np.ones((6, 4)))
    with pytest.raises(ValidationError, match="^backward:"):
        Reshape([4, 6]).backward(np.ones((4, 6)))


def test_zero_copies_the_input_axis_and_minus_one_is_inferred():
    x = np.zeros((2, 3, 4))
    assert Reshape([0, -1]).forward(x).shape == (2, 12)
    assert Reshape([0, 0, 2, 2]).forward(x).shape == (2, 3, 2, 2)
    assert Reshape([-1, 0]).forward(x).shape == (8, 3)           # 0 at axis 1: the input's 3
    assert Reshape([1, -1, 4]).forward(x).shape == (1, 6, 4)
    # a 0 past the input's rank has no size to copy: it is a literal 0 (an empty tensor stays empty)
    assert Reshape([2, 0, 0]).forward(np.zeros((2, 0))).shape == (2, 0, 0)
    assert Reshape([2, 0]).forward(np.zeros((2, 0))).shape == (2, 0)
    with pytest.raises(ShapeError, match="^x:"):
        Reshape([5]).forward(np.zeros(4))
    with pytest.raises(ShapeError, match="^x:"):
        Reshape([0, 0, 0]).forward(np.zeros((2, 3)))            # the literal 0: 6 elements cannot fit


def test_reshape_attribute_checks():
    assert Reshape((2, np.int64(3))).config() == {"shape": [2, 3]}
    assert Reshape([0, -1]).config() == {"shape": [0, -1]} and Reshape().config() == {"shape": None}
    for shape in ([-1, -1], [-2, 3], [2, -3], [True, 2], [2.0], "12", np.array([2, 3]), 6):
        with pytest.raises(ValidationError, match="^shape:"):
            Reshape(shape)


def test_reshape_from_a_second_input():
    rows = np.arange(24.0).reshape(6, 4)
    for dtype in (np.int64, np.int32, np.uint8):
        layer = Reshape()
        y = layer.forward(rows, np.array([2, 3, 4], dtype))
        assert y.shape == (2, 3, 4) and y.ravel().tolist() == list(range(24))
        dx, dshape = layer.backward(np.ones((2, 3, 4)))        # the target gets no gradient
        assert dx.shape == (6, 4) and dshape is None
    assert Reshape().forward(rows, Shape().forward(np.zeros((2, 12)))).shape == (2, 12)
    assert Reshape().forward(rows, np.array([0, -1])).shape == (6, 4)
    for bad in (np.array([2.0, 12.0]), np.array([[2, 12]]), np.array(24), np.array([True, False])):
        with pytest.raises(DTypeError, match="^shape:"):
            Reshape().forward(rows, bad)
    with pytest.raises(ValidationError, match="^shape:"):
        Reshape([24]).forward(rows, np.array([24]))           # both the attribute and the input
    with pytest.raises(ValidationError, match="^shape:"):
        Reshape().forward(rows)                               # neither


# -- Transpose ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("perm", [[2, 0, 1], [1, 2, 0], [0, 2, 1], None])
def test_transpose_moves_axis_perm_i_to_i_and_backward_moves_it_back(perm):
    x = np.arange(24.0).reshape(2, 3, 4)
    p = [2, 1, 0] if perm is None else perm              # None reverses the axes (ONNX default)
    layer = Transpose(perm)
    y = layer.forward(x)
    assert y.shape == tuple(x.shape[k] for k in p)
    for idx in itertools.product(*map(range, x.shape)):
        assert y[tuple(idx[k] for k in p)] == x[idx]
    dy = np.sqrt(y + 1)
    dx = layer.backward(dy)
    assert dx.shape == x.shape
    for idx in itertools.product(*map(range, x.shape)):
        assert dx[idx] == dy[tuple(idx[k] for k in p)]


def test_transpose_checks():
    assert Transpose().config() == {"perm": None} and Transpose((1, 0)).config() == {"perm": [1, 0]}
    assert Transpose().forward(np.zeros((2, 3, 4, 5))).shape == (5, 4, 3, 2)
    for perm in ([0, 0], [1, 2], [0, 1, 3], [True, False], "10", [1.0, 0.0]):
        with pytest.raises(ValidationError, match="^perm:"):
            Transpose(perm)
    with pytest.raises(ShapeError, match="^x:"):
        Transpose([1, 0]).forward(np.zeros((2, 3, 4)))
    with pytest.raises(ValidationError, match="^backward:"):
        Transpose([1, 0]).backward(np.zeros((2, 3)))
    layer = Transpose([1, 0])
    layer.forward(np.zeros((2, 3)))
    with pytest.raises(ShapeError, match="^dy:"):
        layer.backward(np.zeros((3, 2, 1)))


# -- Shape --------------------------------------------------------------------------------------------
def test_shape_is_an_int64_vector_without_gradient():
    for shape in ((2, 3, 4), (0,), (), (1,) * 9):
        y = Shape().forward(np.zeros(shape))
        assert y.dtype == np.int64 and y.shape == (len(shape),) and y.tolist() == list(shape)
    assert Shape().forward([[1, 2]]).tolist() == [1, 2]
    with pytest.raises(ValidationError, match="^backward:"):
        Shape().backward(np.zeros(3))
    layer = Shape()
    layer.forward(np.zeros((2, 3)))
    assert layer.backward(np.zeros(2)) is None
