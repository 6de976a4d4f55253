"""Dropout (inverted): in training each element is kept when its uniform draw u ∈ [0, 1) is >= p
(probability 1 − p) and scaled by 1/(1 − p); eval mode and p = 0 are the identity; the backward
applies the same mask. The draws are the layer's explicit rng's (checked against a Generator
seeded alike, and a stub rng whose draws are chosen), and the values against the formulas."""

import numpy as np
import pytest

from refcomp.errors import DTypeError, ShapeError, ValidationError
from refcomp.formats.qtensor import QTensor
from refcomp.nn import Dropout
from refcomp.quant import QParams


class _Draws:
    """A stand-in rng whose ``random(shape)`` returns the given draws (so a draw can equal p exactly)."""

    def __init__(self, u):
        self.u = np.asarray(u, dtype=np.float64)

    def random(self, shape):
        assert tuple(shape) == self.u.shape
        return self.u.copy()


def test_p_must_be_a_probability_below_one():
    assert Dropout().p == 0.5 and Dropout().config() == {"p": 0.5}
    for p in (0, 0.0, 0.25, 0.999):
        assert Dropout(p).config() == {"p": float(p)} and type(Dropout(p).p) is float
    for p in (-0.1, 1.0, 1.5, float("nan")):
        with pytest.raises(ValidationError, match="^p:"):
            Dropout(p)


def test_training_keeps_draws_at_or_above_p_and_scales_by_one_over_one_minus_p():
    layer = Dropout(0.25)
    layer.rng = _Draws([[0.0, 0.2499, 0.25, 0.9], [0.5, 0.1, 0.26, 0.999]])
    x = np.array([[1.0, 2.0, 3.0, 4.0], [-1.0, -2.0, -3.0, -4.0]])
    y = layer.forward(x)
    keep = np.array([[0, 0, 1, 1], [1, 0, 1, 1]])            # u >= p, written out (u == p is kept)
    np.testing.assert_array_equal(y, x * keep * (4 / 3))     # 1 / (1 − 0.25) = 4/3
    dy = np.array([[10.0, 20.0, 30.0, 40.0], [1.0, 2.0, 3.0, 4.0]])
    np.testing.assert_array_equal(layer.backward(dy), dy * keep * (4 / 3))


def test_the_mask_comes_from_the_layers_generator():
    x = np.ones((3, 5, 7))
    seeded = Dropout(0.5, rng=123)
    y = seeded.forward(x)
    u = np.random.default_rng(123).random((3, 5, 7))          # the same Generator, the same draws
    np.testing.assert_array_equal(y, np.where(u >= 0.5, 2.0, 0.0))
    gen = np.random.default_rng(7)
    layer = Dropout(0.3, rng=gen)
    assert layer.rng is gen                                    # a Generator is used as is
    # a second forward draws again: a different mask from the same Generator stream
    assert not np.array_equal(seeded.forward(x), y)


def test_float32_stays_float32_and_the_scale_is_rounded_once():
    layer = Dropout(0.1, rng=0)
    x = np.random.default_rng(1).standard_normal((4, 6)).astype(np.float32)
    y = layer.forward(x)
    assert y.dtype == np.float32
    u = np.random.default_rng(0).random((4, 6))
    np.testing.assert_array_equal(y, np.where(u >= 0.1, x * np.float32(1 / 0.9), np.float32(0)))
    dy = np.ones((4, 6), np.float32)
    g = layer.backward(dy)
    assert g.dtype == np.float32
    np.testing.assert_array_equal(g, np.where(u >= 0.1, np.float32(1 / 0.9), np.float32(0)))


def test_eval_mode_and_p_zero_are_the_identity():
    x = np.random.default_rng(2).standard_normal((2, 3)).astype(np.float32)
    layer = Dropout(0.5)                      # no rng needed: nothing is drawn
    layer.eval()
    assert layer.forward(x) is x
    dy = np.full((2, 3), 3.0, np.float32)
    g = layer.backward(dy)
    assert g.dtype == np.float32 and np.array_equal(g, dy)
    zero = Dropout(0.0)                       # training, but p = 0 drops nothing and draws nothing
    assert zero.training and zero.forward(x) is x
    assert np.array_equal(zero.backward(dy), dy)
    assert Dropout(0.5).eval().forward(np.float64(2.0)) == 2.0      # any rank from 0 ...
    assert Dropout(0.5).eval().forward(np.ones((1,) * 8)).shape == (1,) * 8      # ... to 8
    with pytest.raises(ShapeError, match="^x:"):
        Dropout(0.5).eval().forward(np.ones((1,) * 9))


def test_eval_mode_passes_quantized_codes_through():
    qt = QTensor(np.array([[1, 2]], np.uint8), QParams(np.float32(0.5), np.array(0, np.uint8), "uint8"))
    layer = Dropout(0.5, rng=0)
    layer.eval()
    assert layer.forward(qt) is qt
    layer.train()
    with pytest.raises(DTypeError, match="^x:"):              # training needs float activations
        layer.forward(qt)


def test_a_training_forward_needs_an_rng():
    with pytest.raises(ValidationError, match="^rng:"):
        Dropout(0.5).forward(np.ones(3))
    with pytest.raises(ValidationError, match="^rng:"):
        Dropout(0.5, rng="seed")


def test_backward_needs_a_forward_and_dy_of_the_masks_shape():
    with pytest.raises(ValidationError, match="^backward:"):
        Dropout(0.5).backward(np.ones(3))
    layer = Dropout(0.5, rng=0)
    layer.forward(np.ones((2, 3)))
    with pytest.raises(ShapeError, match="^dy:"):
        layer.backward(np.ones((3, 2)))
