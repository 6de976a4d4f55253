"""mixed_bits_model: per-layer widths under a budget of stored bytes, against brute force over every
assignment with the bytes of the model each one really produces."""

import itertools

import numpy as np
import pytest

from refcomp.compress.precision.model import mixed_bits_model, model_bytes
from refcomp.compress.quantize.weight_only import quantize_weights
from refcomp.errors import ValidationError

from ..models_for_tests import small_mlp

CHOICES = (2, 3, 4, 8)  # 3 and 4 store alike (int4 containers): the tie must go to the smaller error


@pytest.fixture(scope="module")
def setup():
    m = small_mlp(0, (24, 64, 32, 10))
    x = np.random.default_rng(0).standard_normal((64, 24)).astype(np.float32)
    return m, x


def _brute_force(m, sens, budget):
    names = list(sens)
    best = None
    for combo in itertools.product(CHOICES, repeat=len(names)):
        bits = dict(zip(names, combo))
        size = model_bytes(quantize_weights(m, bits=bits, group_size=16)[0])  # the bytes, measured
        err = sum(sens[n][b] for n, b in bits.items())
        if size <= budget and (best is None or err < best[0]):
            best = (err, bits)
    return best


@pytest.mark.parametrize("fraction", [0.17, 0.22, 0.3])  # 2 bits everywhere: 0.156, 8 bits: 0.339
def test_optimal_under_the_measured_bytes(setup, fraction):
    m, x = setup
    budget = int(fraction * model_bytes(m))
    q, rep = mixed_bits_model(m, x, budget, bit_choices=CHOICES)
    assert rep["bytes"] == model_bytes(q) <= budget
    err, bits = _brute_force(m, rep["sensitivity"], budget)
    assert sum(rep["sensitivity"][n][b] for n, b in rep["bits"].items()) == pytest.approx(err, rel=1e-12)
    assert rep["float_bytes"] == model_bytes(m)


def test_bigger_budget_never_worse(setup):
    m, x = setup
    errs = []
    for f in (0.16, 0.2, 0.25, 0.34):
        _, rep = mixed_bits_model(m, x, int(f * model_bytes(m)), bit_choices=CHOICES)
        errs.append(sum(rep["sensitivity"][n][b] for n, b in rep["bits"].items()))
    assert errs == sorted(errs, reverse=True)


def test_budget_below_everything_at_the_narrowest_width(setup):
    m, x = setup
    with pytest.raises(ValidationError, match="budget_bytes"):
        mixed_bits_model(m, x, 100, bit_choices=CHOICES)
    with pytest.raises(ValidationError, match="bit_choices"):
        mixed_bits_model(m, x, 10**6, bit_choices=(1, 4))
