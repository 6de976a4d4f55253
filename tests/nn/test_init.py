"""Weight initialisation (refcomp.nn.init): each distribution of the table is the same draw from
the same seed with the bound or standard deviation written out here, and the allocation budget
charges exactly the bytes asked for."""

import math

import numpy as np
import pytest

from refcomp.errors import ValidationError
from refcomp.nn.init import INITS, allocate, allocation_budget, init_bias, init_weight

FAN_IN, FAN_OUT = 12, 20        # distinct, so a formula reading the wrong one changes the bound
SHAPE = (4, 3, 2, 2)

# name -> (kind, bound of U(−b, b) or standard deviation of N(0, σ²)), from the module's table
TABLE = {
    "uniform_fan_in": ("uniform", 1 / math.sqrt(FAN_IN)),
    "he_normal": ("normal", math.sqrt(2 / FAN_IN)),
    "he_uniform": ("uniform", math.sqrt(6 / FAN_IN)),
    "glorot_uniform": ("uniform", math.sqrt(6 / (FAN_IN + FAN_OUT))),
    "glorot_normal": ("normal", math.sqrt(2 / (FAN_IN + FAN_OUT))),
}


def test_the_table_names_every_init():
    assert set(INITS) == set(TABLE)


def _draw(name, seed, shape):
    """The table's distribution for ``name``, drawn from a fresh Generator seeded ``seed``."""
    kind, v = TABLE[name]
    g = np.random.default_rng(seed)
    return g.uniform(-v, v, size=shape) if kind == "uniform" else g.normal(0.0, v, size=shape)


@pytest.mark.parametrize("name", sorted(TABLE))
def test_init_weight_draws_the_tabled_distribution(name):
    w = init_weight(SHAPE, FAN_IN, FAN_OUT, name, np.random.default_rng(7), "float64")
    assert w.shape == SHAPE and w.dtype == np.float64
    np.testing.assert_allclose(w, _draw(name, 7, SHAPE), rtol=1e-15, atol=0)


@pytest.mark.parametrize("name", sorted(TABLE))
def test_init_weight_in_float32(name):
    w = init_weight((3, 5), FAN_IN, FAN_OUT, name, np.random.default_rng(1), "float32")
    assert w.dtype == np.float32
    np.testing.assert_allclose(w, _draw(name, 1, (3, 5)).astype(np.float32), rtol=1e-7, atol=0)


def test_unknown_init_is_refused():
    for bad in ("kaiming", "HE_NORMAL", ""):
        with pytest.raises(ValidationError, match="^init:"):
            init_weight((2, 2), 2, 2, bad, np.random.default_rng(0), "float32")


def test_bias_is_uniform_fan_in_as_pytorch_else_zeros():
    b = init_bias(6, FAN_IN, "uniform_fan_in", np.random.default_rng(3), "float32")
    v = 1 / math.sqrt(FAN_IN)
    assert b.dtype == np.float32
    np.testing.assert_array_equal(b, np.random.default_rng(3).uniform(-v, v, size=6).astype(np.float32))
    for name in ("he_normal", "he_uniform", "glorot_uniform", "glorot_normal"):
        z = init_bias(6, FAN_IN, name, np.random.default_rng(3), "float32")
        assert z.dtype == np.float32 and z.shape == (6,) and not z.any()


def test_allocate_fills_without_a_budget():
    a = allocate((2, 3), "float32")
    assert a.dtype == np.float32 and a.shape == (2, 3) and not a.any()
    # a fill keeps the dtype asked for (not the fill's own: 1 and -3 are Python ints)
    ones = allocate(4, np.float64, 1)
    assert ones.dtype == np.float64
    np.testing.assert_array_equal(ones, np.ones(4))
    fives = allocate([2], "float32", 0.5)
    assert fives.dtype == np.float32
    np.testing.assert_array_equal(fives, [0.5, 0.5])
    neg = allocate([2], "int32", -3)
    assert neg.dtype == np.int32
    np.testing.assert_array_equal(neg, [-3, -3])


class _TooBig(Exception):
    pass


def test_allocation_budget_charges_each_request_in_bytes():
    with allocation_budget(100, _TooBig):
        allocate((3, 4), "float64")            # 96 bytes
        allocate(np.int64(1), "int32")         # 4 bytes: exactly the 100
        with pytest.raises(_TooBig, match="more than the 0 bytes"):
            allocate(1, "int8")
    # an exact fit passes; one byte more fails before anything is allocated (or charged)
    with allocation_budget(12, _TooBig):
        with pytest.raises(_TooBig, match="13 bytes"):
            allocate(13, "uint8")
        allocate((3,), "float32", 2)
        with pytest.raises(_TooBig):
            allocate(1, "uint8")


def test_allocation_budget_ends_with_its_block():
    with allocation_budget(8, _TooBig):
        with allocation_budget(1000, _TooBig):
            allocate(100, "float64")           # the inner budget: 800 of 1000
        with pytest.raises(_TooBig):
            allocate(2, "float64")             # the outer one again: 16 > 8
    assert allocate(1000, "float64").shape == (1000,)   # no budget after the block
