"""TTLinear: the TT-matrix product (TT.3) entry by entry, gradients by finite differences, files."""

import itertools

import numpy as np
import pytest

from refcomp.errors import ShapeError
from refcomp.io import load_model, save_model
from refcomp.nn import Sequential
from refcomp.nn.layers import TTLinear

from .nn_gradcheck import check_layer

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
