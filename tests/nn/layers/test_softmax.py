"""Softmax: the forward against scipy.special.softmax along each axis (huge logits included), the
backward against the Jacobian y_i(δ_ij − y_j) written out and central differences, bad input."""

import numpy as np
import pytest
from scipy import special

from refcomp.errors import DTypeError, ShapeError, ValidationError
from refcomp.nn import Softmax
from refcomp.nn.layers.softmax import softmax, softmax_backward

from ..nn_gradcheck import check_layer


@pytest.mark.parametrize("axis", [-1, 0, 1, 2, -2])
def test_forward_is_scipy_softmax_and_backward_the_jacobian(axis):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 5)) * 4
    layer = Softmax(axis)
    y = layer.forward(x)
    np.testing.assert_allclose(y, special.softmax(x, axis=axis), rtol=1e-13, atol=1e-16)
    dy = rng.standard_normal(x.shape)
    # dL/dx_j = Σ_i dy_i · y_i (δ_ij − y_j), the Jacobian of each slice along the axis applied to dy
    ym, dym = np.moveaxis(y, axis, -1), np.moveaxis(dy, axis, -1)
    jac = np.einsum("...i,ij->...ij", ym, np.eye(ym.shape[-1])) - ym[..., :, None] * ym[..., None, :]
    want = np.moveaxis(np.einsum("...i,...ij->...j", dym, jac), -1, axis)
    np.testing.assert_allclose(layer.backward(dy), want, rtol=1e-12, atol=1e-15)
    check_layer(Softmax(axis), x, rng)


def test_huge_logits_do_not_overflow():
    x = np.array([[1000.0, 999.0, -1000.0], [-800.0, -800.0, -801.0], [0.0, 0.0, 0.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):     # underflow to 0 is fine
        y = Softmax().forward(x)
    np.testing.assert_allclose(y, special.softmax(x, axis=-1), rtol=1e-14)
    assert y[0, 0] == 1 / (1 + np.exp(-1))                # the largest term is exactly e⁰ = 1


def test_float32_and_the_function_form():
    x = np.random.default_rng(1).standard_normal((2, 6)).astype(np.float32)
    y = Softmax().forward(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, special.softmax(x.astype(np.float64), axis=-1), rtol=1e-6)
    copy = x.copy()
    np.testing.assert_array_equal(softmax(x), y)
    np.testing.assert_array_equal(x, copy)                  # x left alone
    out = softmax(copy, 0, overwrite_x=True)
    assert out is copy
    np.testing.assert_allclose(out, special.softmax(x.astype(np.float64), axis=0), rtol=1e-6)
    dy = np.ones_like(y)
    np.testing.assert_allclose(softmax_backward(y, dy), 0, atol=1e-7)   # Σ y = 1: a constant shift


def test_config_and_bad_input():
    assert Softmax().config() == {"axis": -1} and Softmax(np.int64(2)).config() == {"axis": 2}
    for axis in (1.0, True, "1", None):
        with pytest.raises(ValidationError, match="^axis:"):
            Softmax(axis)
    with pytest.raises(ValidationError, match="^backward:"):
        Softmax().backward(np.ones(3))
    for axis, shape in ((2, (3, 4)), (-3, (3, 4))):
        with pytest.raises(ShapeError, match="^x:"):
            Softmax(axis).forward(np.ones(shape))
    Softmax(-2).forward(np.ones((3, 4)))
    Softmax(1).forward(np.ones((3, 4)))
    layer = Softmax()
    layer.forward(np.ones((2, 3)))
    with pytest.raises(ShapeError, match="^dy:"):
        layer.backward(np.ones((3, 2)))


def test_ranks_one_to_eight_of_floats():
    x = np.array([0.5, -1.0, 2.0])
    np.testing.assert_allclose(Softmax().forward(x), special.softmax(x), rtol=1e-14)     # a lone vector
    assert Softmax(3).forward(np.zeros((1,) * 7 + (4,))).shape == (1,) * 7 + (4,)        # rank 8
    with pytest.raises(ShapeError, match="^x:"):
        Softmax().forward(np.zeros((1,) * 8 + (4,)))                                     # rank 9
    with pytest.raises(ShapeError, match="^x:"):
        Softmax().forward(np.float64(1.0))
    for x in (np.arange(3), np.array([True, False])):
        with pytest.raises(DTypeError, match="^x:"):
            Softmax().forward(x)
