"""Add, Sub, Mul, Div with NumPy broadcasting: the forward against the element formula and the
backward against each element's partial derivatives (1, 1; 1, −1; b, a; 1/b, −a/b²) times dy,
accumulated by Python loops over every output position an operand element was stretched to;
unbroadcast against the same loops; bad input."""

import itertools

import numpy as np
import pytest

from refcomp.errors import DTypeError, ShapeError, ValidationError
from refcomp.nn import Add, Div, Mul, Sub
from refcomp.nn.layers.arithmetic import unbroadcast

# y = f(a, b) and (∂y/∂a, ∂y/∂b) of one element, written out
_FORMULAS = {
    Add: (lambda a, b: a + b, lambda a, b: (1.0, 1.0)),
    Sub: (lambda a, b: a - b, lambda a, b: (1.0, -1.0)),
    Mul: (lambda a, b: a * b, lambda a, b: (b, a)),
    Div: (lambda a, b: a / b, lambda a, b: (1.0 / b, -a / (b * b))),
}


def _source(index, shape):
    """The element of an operand of ``shape`` that broadcasting places at output ``index``."""
    lead = len(index) - len(shape)
    return tuple(0 if n == 1 else i for i, n in zip(index[lead:], shape))


def _loops(layer_type, a, b, dy):
    f, partials = _FORMULAS[layer_type]
    out = np.broadcast_shapes(a.shape, b.shape)
    y, da, db = np.zeros(out), np.zeros(a.shape), np.zeros(b.shape)
    for t in itertools.product(*map(range, out)):
        ia, ib = _source(t, a.shape), _source(t, b.shape)
        y[t] = f(a[ia], b[ib])
        pa, pb = partials(a[ia], b[ib])
        da[ia] += dy[t] * pa          # the chain rule for a fan-out: one term per use
        db[ib] += dy[t] * pb
    return y, da, db


SHAPES = [((2, 3), (2, 3)), ((2, 3), (3,)), ((3,), (2, 3)), ((2, 1, 4), (3, 1)), ((1, 3), (2, 1)),
          ((2, 3), ()), ((), (2, 2)), ((4, 1, 2), (1, 1, 1))]


@pytest.mark.parametrize("layer_type", [Add, Sub, Mul, Div])
@pytest.mark.parametrize("a_shape,b_shape", SHAPES)
def test_values_and_gradients_are_the_element_formulas_summed_over_each_fan_out(layer_type, a_shape, b_shape):
    rng = np.random.default_rng(len(a_shape) * 10 + len(b_shape))
    a = rng.standard_normal(a_shape)
    b = rng.uniform(0.5, 2.0, b_shape) * rng.choice([-1.0, 1.0], b_shape)    # away from 0 (Div)
    layer = layer_type()
    y = layer.forward(a, b)
    dy = rng.standard_normal(y.shape)
    want_y, want_da, want_db = _loops(layer_type, a, b, dy)
    np.testing.assert_allclose(y, want_y, rtol=1e-14, atol=0)
    da, db = layer.backward(dy)
    assert np.shape(da) == a_shape and np.shape(db) == b_shape
    np.testing.assert_allclose(da, want_da, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(db, want_db, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("g_shape,shape", [((2, 3), (2, 3)), ((2, 3), (3,)), ((2, 3), (1, 3)), ((2, 3), (2, 1)),
                                           ((4, 2, 3), (2, 1)), ((4, 2, 3), ()), ((4, 2, 3), (1, 1, 1)),
                                           ((2, 1, 3), (1, 1, 3))])
def test_unbroadcast_sums_the_stretched_positions(g_shape, shape):
    g = np.arange(np.prod(g_shape), dtype=np.float64).reshape(g_shape) ** 2
    want = np.zeros(shape)
    for t in itertools.product(*map(range, g_shape)):
        want[_source(t, shape)] += g[t]
    got = unbroadcast(g, shape)
    assert np.shape(got) == shape
    np.testing.assert_array_equal(got, want)


def test_float32_in_float32_out():
    a, b = np.full((2, 3), 3.0, np.float32), np.full(3, 2.0, np.float32)
    for layer_type in (Add, Sub, Mul, Div):
        layer = layer_type()
        assert layer.forward(a, b).dtype == np.float32
        assert [g.dtype for g in layer.backward(np.ones((2, 3), np.float32))] == [np.float32] * 2


def test_bad_input_raises_named_errors():
    with pytest.raises(ShapeError, match="^b:"):
        Mul().forward(np.zeros((2, 3)), np.zeros((4,)))
    with pytest.raises(DTypeError, match="^a:"):
        Sub().forward(np.zeros(3, dtype=int), np.zeros(3))
    with pytest.raises(DTypeError, match="^b:"):
        Div().forward(np.zeros(3), np.zeros(3, dtype=bool))
    with pytest.raises(ShapeError, match="^a:"):
        Add().forward(np.zeros((1,) * 9), np.zeros(1))
    assert Add().forward(np.float64(1.0), np.float64(2.0)) == 3.0          # rank 0 is fine
    with pytest.raises(ValidationError, match="^backward:"):
        Div().backward(np.zeros(3))
    layer = Mul()
    layer.forward(np.zeros((2, 3)), np.zeros(3))
    with pytest.raises(ShapeError, match="^dy:"):
        layer.backward(np.zeros(3))
