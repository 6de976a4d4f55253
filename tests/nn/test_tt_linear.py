"""TTLinear: the TT-matrix product (TT.3) entry by entry, gradients by finite differences, files."""

import itertools

import numpy as np
import pytest

from refcomp.errors import ShapeError, ValidationError
from refcomp.io import load_model, save_model
from refcomp.nn import Sequential
from refcomp.nn.layers import TTLinear

from .nn_gradcheck import check_input_grad_false, check_layer

SHAPES = ((1, 2, 3, 2), (2, 3, 2, 3), (3, 2, 2, 1))   # out modes (2, 3, 2), in modes (3, 2, 2), ranks (2, 3)


def _layer(seed, dtype="float64"):
    rng = np.random.default_rng(seed)
    layer = TTLinear((3, 2, 2), (2, 3, 2), (2, 3), cores=[rng.standard_normal(s) for s in SHAPES], dtype=dtype)
    layer.bias.data[...] = rng.standard_normal(12)
    return layer


def test_forward_is_the_tt_matrix_product():
    layer = _layer(2)
    cores = [g.data for g in layer.cores()]
    w = np.empty((12, 12))
    for i, j in itertools.product(range(12), range(12)):   # (TT.3) element by element
        ii, jj = np.unravel_index(i, (2, 3, 2)), np.unravel_index(j, (3, 2, 2))
        p = np.eye(1)
        for g, a, b in zip(cores, ii, jj):
            p = p @ g[:, a, b, :]
        w[i, j] = p[0, 0]
    x = np.random.default_rng(0).standard_normal((5, 12))
    np.testing.assert_allclose(layer.forward(x), x @ w.T + layer.bias.data, atol=1e-12)
    np.testing.assert_allclose(layer.to_dense(), w, atol=1e-12)
    assert layer.num_core_parameters() == sum(np.prod(s) for s in SHAPES)


def test_gradients_match_finite_differences():
    rng = np.random.default_rng(3)
    check_layer(_layer(3), rng.standard_normal((4, 12)), rng)


def test_saves_and_loads(tmp_path):
    m = Sequential(("tt", _layer(4, "float32")))
    x = np.random.default_rng(1).standard_normal((3, 12)).astype(np.float32)
    back = load_model(save_model(m, tmp_path / "tt.npz"))
    assert back.forward(x).tobytes() == m.forward(x).tobytes()


def test_bad_arguments():
    with pytest.raises(ShapeError, match="ranks"):
        TTLinear((2, 2), (2, 2), (1, 1))
    with pytest.raises(ShapeError, match="out_modes"):
        TTLinear((2, 2), (4,), (1,))
    with pytest.raises(ShapeError, match=r"cores\[0\]"):
        TTLinear((2, 2), (2, 2), (1,), cores=[np.ones((1, 2, 2, 2)), np.ones((1, 2, 2, 1))])
    with pytest.raises(ShapeError, match="x"):
        _layer(0).forward(np.ones((2, 5)))


def _dense_tt(in_modes, out_modes, ranks, seed, bias=True):
    """A TTLinear with random cores and, by (TT.3) element by element, its weight."""
    rng = np.random.default_rng(seed)
    r = [1, *ranks, 1]
    cores = [rng.standard_normal((r[k], out_modes[k], in_modes[k], r[k + 1])) for k in range(len(in_modes))]
    layer = TTLinear(in_modes, out_modes, ranks, bias, cores=cores, dtype="float64")
    m, n = int(np.prod(out_modes)), int(np.prod(in_modes))
    w = np.empty((m, n))
    for i, j in itertools.product(range(m), range(n)):
        p = np.eye(1)
        for g, a, b in zip(cores, np.unravel_index(i, out_modes), np.unravel_index(j, in_modes)):
            p = p @ g[:, a, b, :]
        w[i, j] = p[0, 0]
    return layer, w


@pytest.mark.parametrize("in_modes, out_modes, ranks", [
    ((2, 3), (3, 1), (2,)),               # d = 2, a mode of 1
    ((1, 2, 2, 3), (2, 1, 3, 1), (2, 1, 3)),   # d = 4, a rank of 1
    ((4, 2), (2, 5), (3,)),
])
@pytest.mark.parametrize("bias", [True, False])
def test_other_shapes_are_the_tt_matrix_product_with_exact_gradients(in_modes, out_modes, ranks, bias):
    layer, w = _dense_tt(in_modes, out_modes, ranks, seed=5, bias=bias)
    rng = np.random.default_rng(6)
    if bias:
        layer.bias.data[...] = rng.standard_normal(layer.out_features)
    x = rng.standard_normal((3, layer.in_features))
    b = layer.bias.data if bias else 0.0
    np.testing.assert_allclose(layer.forward(x), x @ w.T + b, atol=1e-12)
    np.testing.assert_allclose(layer.to_dense(), w, atol=1e-12)
    dy = rng.standard_normal((3, layer.out_features))
    np.testing.assert_allclose(layer.backward(dy), dy @ w, atol=1e-12)       # dL/dx = dy·W
    if bias:
        np.testing.assert_allclose(layer.bias.grad, dy.sum(axis=0), atol=1e-12)
    layer.zero_grad()
    check_layer(layer, x, rng)


def test_input_grad_false_gives_the_same_core_gradients():
    rng = np.random.default_rng(7)
    layer = _layer(7)
    x, dy = rng.standard_normal((3, 12)), rng.standard_normal((3, 12))
    check_input_grad_false(layer, x, dy, rtol=1e-12)


def test_zero_cores_config_and_sizes():
    layer = TTLinear((3, 2, 2), (2, 3, 2), (2, 3))
    assert layer.in_features == 12 and layer.out_features == 12 and layer.core0.dtype == np.float32
    assert layer.bias.data.dtype == np.float32 and layer.forward(np.ones((2, 12), np.float32)).dtype == np.float32
    assert [g.data.shape for g in layer.cores()] == list(SHAPES)
    assert all(np.all(g.data == 0) for g in layer.cores()) and np.all(layer.bias.data == 0)
    assert layer.config() == {"in_modes": [3, 2, 2], "out_modes": [2, 3, 2], "ranks": [2, 3], "bias": True,
                              "dtype": "float32"}
    small = TTLinear((2, 5), (3, 1), (4,), bias=False, dtype="float64")
    assert small.bias is None and (small.in_features, small.out_features) == (10, 3)
    assert small.config() == {"in_modes": [2, 5], "out_modes": [3, 1], "ranks": [4], "bias": False,
                              "dtype": "float64"}
    assert small.num_core_parameters() == 1 * 3 * 2 * 4 + 4 * 1 * 5 * 1


def test_more_bad_arguments():
    with pytest.raises(ShapeError, match="out_modes"):
        TTLinear((4,), (4,), ())                                # one mode: not a TT-matrix
    with pytest.raises(ShapeError, match="out_modes"):
        TTLinear((2, 2), (2, 2, 2), (1,))
    with pytest.raises(ShapeError, match="ranks"):
        TTLinear((2, 2, 2), (2, 2, 2), (1,))
    with pytest.raises(ShapeError, match="cores"):
        TTLinear((2, 2), (2, 2), (1,), cores=[np.ones((1, 2, 2, 1))])
    for bad in ((0, 2), (2, -1)):
        with pytest.raises(ValidationError, match="in_modes"):
            TTLinear(bad, (2, 2), (1,))
        with pytest.raises(ValidationError, match="out_modes"):
            TTLinear((2, 2), bad, (1,))
    with pytest.raises(ValidationError, match="ranks"):
        TTLinear((2, 2), (2, 2), (0,))
    layer = _layer(0)
    with pytest.raises(ValidationError, match="backward"):
        layer.backward(np.ones((2, 12)))
    with pytest.raises(ShapeError, match="^x:"):
        layer.forward(np.ones(12))
    layer.forward(np.ones((2, 12)))
    with pytest.raises(ShapeError, match="dy"):
        layer.backward(np.ones((2, 11)))
    with pytest.raises(ShapeError, match="dy"):
        layer.backward(np.ones((3, 12)))
