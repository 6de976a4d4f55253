"""Multi-input and shape layers: finite-difference gradients (float64), forward values, bad input."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from .graph_gradcheck import check_module
from refcomp import nn
from refcomp.errors import DTypeError, ShapeError, ValidationError


@st.composite
def broadcast_pair(draw):
    """Two shapes that broadcast: b drops leading axes of a and sets some of the rest to 1 (or the reverse)."""
    shape = draw(st.lists(st.integers(1, 4), min_size=1, max_size=4))
    keep = draw(st.integers(0, len(shape)))
    other = [1 if draw(st.booleans()) else s for s in shape[len(shape) - keep:]]
    a, b = tuple(shape), tuple(other)
    return (b, a) if draw(st.booleans()) else (a, b)


@settings(max_examples=30, deadline=None)
@given(shapes=broadcast_pair(), op=st.sampled_from([nn.Add, nn.Mul]), seed=st.integers(0, 2**31))
def test_add_mul_broadcast_gradients(shapes, op, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(shapes[0]), rng.standard_normal(shapes[1])
    layer = op()
    y = layer.forward(a, b)
    np.testing.assert_array_equal(y, a + b if op is nn.Add else a * b)
    check_module(layer, [a, b], rng)


@settings(max_examples=30, deadline=None)
@given(shapes=broadcast_pair(), op=st.sampled_from([nn.Sub, nn.Div]), seed=st.integers(0, 2**31))
def test_sub_div_broadcast_gradients(shapes, op, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(shapes[0])
    # divisors kept away from 0, where a / b and its finite differences blow up
    b = rng.uniform(0.5, 2.0, shapes[1]) * rng.choice([-1, 1], shapes[1])
    layer = op()
    y = layer.forward(a, b)
    np.testing.assert_array_equal(y, a - b if op is nn.Sub else a / b)
    check_module(layer, [a, b], rng)


def test_leaky_relu_values_and_gradients():
    rng = np.random.default_rng(0)
    # values away from the kink at 0, where the finite difference straddles two slopes
    x = rng.uniform(0.1, 2.0, (3, 4)) * rng.choice([-1, 1], (3, 4))
    layer = nn.LeakyReLU(0.2)
    np.testing.assert_array_equal(layer.forward(x), np.where(x >= 0, x, 0.2 * x))
    assert layer.forward(x.astype(np.float32)).dtype == np.float32
    check_module(layer, [x], rng)
    with pytest.raises(ValidationError, match="^alpha:"):
        nn.LeakyReLU(float("nan"))


def test_constant_ignores_its_input_and_has_no_gradient():
    value = np.arange(6, dtype=np.float32).reshape(2, 3)
    layer = nn.Constant(value)
    value[0, 0] = 9                                   # the layer kept its own copy
    y = layer.forward(np.zeros(5))
    assert y.shape == (2, 3) and y[0, 0] == 0
    assert layer.backward(np.ones((2, 3))) is None
    assert [n for n, _ in layer.named_buffers()] == ["value"] and not list(layer.named_parameters())
    empty = nn.Constant(**layer.config())
    assert empty.value.shape == (2, 3) and empty.value.dtype == np.float32
    scalar = nn.Constant(np.float32(2.0))
    assert scalar.forward(None).shape == () and scalar.value.shape == (1,)     # files hold no 0-d tensors
    assert nn.Constant(**scalar.config()).forward(None).shape == ()
    with pytest.raises(DTypeError, match="^value:"):
        nn.Constant(np.array(["a"]))
    with pytest.raises(ValidationError, match="^shape:"):
        nn.Constant()


@settings(max_examples=20, deadline=None)
@given(batch_a=st.sampled_from([(), (3,), (1,), (2, 3), (2, 1)]), batch_b=st.sampled_from([(), (3,), (2, 3)]),
       m=st.integers(1, 3), k=st.integers(1, 4), p=st.integers(1, 3), seed=st.integers(0, 2**31))
def test_matmul_batched_gradients(batch_a, batch_b, m, k, p, seed):
    try:
        np.broadcast_shapes(batch_a, batch_b)
    except ValueError:
        return
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(batch_a + (m, k)), rng.standard_normal(batch_b + (k, p))
    np.testing.assert_array_equal(nn.MatMul().forward(a, b), a @ b)
    check_module(nn.MatMul(), [a, b], rng)


@pytest.mark.parametrize("axis,shape", [(-1, (3, 5)), (1, (2, 4, 3)), (0, (4, 2))])
def test_softmax_values_and_gradients(axis, shape):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape) * 3
    y = nn.Softmax(axis).forward(x)
    e = np.exp(x)   # small values: the textbook formula without the max shift is exact enough here
    np.testing.assert_allclose(y, e / e.sum(axis=axis, keepdims=True), rtol=1e-13)
    check_module(nn.Softmax(axis), [x], rng)


def test_softmax_large_logits_do_not_overflow():
    y = nn.Softmax().forward(np.array([[1000.0, 0.0, -1000.0]], dtype=np.float32))
    assert np.isfinite(y).all() and y[0, 0] == 1.0


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concat_gradients(axis):
    rng = np.random.default_rng(1)
    shapes = {0: [(2, 3), (1, 3), (4, 3)], 1: [(2, 3), (2, 1), (2, 2)], -1: [(2, 3), (2, 4)]}[axis]
    xs = [rng.standard_normal(s) for s in shapes]
    np.testing.assert_array_equal(nn.Concat(axis).forward(*xs), np.concatenate(xs, axis=axis))
    check_module(nn.Concat(axis), xs, rng)


def test_reshape_transpose_shape():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 4))
    check_module(nn.Reshape([0, -1]), [x], rng)                 # 0 copies the size of axis 0
    assert nn.Reshape([0, -1]).forward(x).shape == (2, 12)
    check_module(nn.Transpose([2, 0, 1]), [x], rng)
    assert nn.Transpose().forward(x).shape == (4, 3, 2)          # default: reverse the axes
    shape = nn.Shape().forward(x)
    assert shape.dtype == np.int64 and shape.tolist() == [2, 3, 4]
    rows = rng.standard_normal((6, 4))
    check_module(nn.Reshape(), [rows, shape], rng)               # second input: the target, no gradient
    assert nn.Reshape().forward(rows, shape).shape == (2, 3, 4)


def test_bad_inputs_raise_named_errors():
    with pytest.raises(ShapeError, match="^b:"):
        nn.Add().forward(np.zeros((2, 3)), np.zeros((4,)))
    with pytest.raises(DTypeError, match="^a:"):
        nn.Add().forward(np.zeros(3, dtype=int), np.zeros(3))
    with pytest.raises(ShapeError, match="^b:"):
        nn.MatMul().forward(np.zeros((2, 3)), np.zeros((4, 2)))
    with pytest.raises(ShapeError, match="^a:"):
        nn.MatMul().forward(np.zeros(3), np.zeros((3, 2)))
    with pytest.raises(ShapeError, match=r"^inputs\[1\]:"):
        nn.Concat(1).forward(np.zeros((2, 3)), np.zeros((3, 3)))
    with pytest.raises(ValidationError, match="^axis:"):
        nn.Softmax(1.5)
    with pytest.raises(ValidationError, match="^shape:"):
        nn.Reshape([-1, -1])
    with pytest.raises(ValidationError, match="^shape:"):
        nn.Reshape().forward(np.zeros(4))                        # neither attribute nor input
    with pytest.raises(ShapeError, match="^x:"):
        nn.Reshape([5]).forward(np.zeros(4))
    with pytest.raises(ValidationError, match="^perm:"):
        nn.Transpose([0, 0])
    with pytest.raises(ValidationError, match="^backward:"):
        nn.Add().backward(np.zeros(3))
    layer = nn.Add()
    layer.forward(np.zeros((2, 3)), np.zeros(3))
    with pytest.raises(ShapeError, match="^dy:"):
        layer.backward(np.zeros(3))


def test_configs_rebuild_the_layers():
    for layer in (nn.Add(), nn.Sub(), nn.Mul(), nn.Div(), nn.LeakyReLU(0.1), nn.Constant(np.zeros(2)), nn.MatMul(), nn.Softmax(1), nn.Concat(-1), nn.Reshape([0, -1]),
                  nn.Reshape(), nn.Transpose([1, 0]), nn.Shape(), nn.MultiHeadAttention(8, 2, bias=False)):
        assert nn.LAYER_TYPES[type(layer).__name__] is type(layer)
        assert repr(type(layer)(**layer.config())) == repr(layer)
