"""Structured pruning shrinks the model for real and keeps its outputs (issue 5, shown 1)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp.compress.prune import apply_structured, shrink, structured_keep
from refcomp.errors import ShapeError, ValidationError
from refcomp.nn import Linear, Sequential, Sigmoid

from ..._support.helpers import convnet, mlp


def _keep_strategy(sizes):
    return st.tuples(*[st.lists(st.booleans(), min_size=n, max_size=n).filter(any) for n in sizes])


@settings(max_examples=30)
@given(keep=_keep_strategy([16, 8]), seed=st.integers(0, 2**16))
def test_mlp_shrink_equals_masked(keep, seed):
    m = mlp(seed, dtype="float64")
    k = {"fc1": np.array(keep[0]), "fc2": np.array(keep[1])}
    m, _ = apply_structured(m, k)
    small, _ = shrink(m, k)
    x = np.random.default_rng(seed).normal(size=(5, 12))
    np.testing.assert_allclose(small.forward(x), m.forward(x), rtol=1e-12, atol=1e-12)
    assert small["fc1"].weight.shape == (sum(keep[0]), 12)
    assert small["fc2"].weight.shape == (sum(keep[1]), sum(keep[0]))
    assert small["fc3"].weight.shape == (3, sum(keep[1]))
    assert small.num_parameters() < m.num_parameters() or all(keep[0]) and all(keep[1])


@settings(max_examples=20)
@given(keep=_keep_strategy([6, 5, 7]), seed=st.integers(0, 2**16))
def test_conv_batchnorm_flatten_shrink_equals_masked(keep, seed):
    """conv1 -> BatchNorm -> ReLU -> pool -> conv2 -> Flatten -> fc1 -> fc2: every boundary kind."""
    m = convnet(seed, dtype="float64")
    k = {"conv1": np.array(keep[0]), "conv2": np.array(keep[1]), "fc1": np.array(keep[2])}
    m, _ = apply_structured(m, k)
    small, _ = shrink(m, k)
    x = np.random.default_rng(seed).normal(size=(3, 2, 8, 8))
    np.testing.assert_allclose(small.forward(x), m.forward(x), rtol=1e-10, atol=1e-10)
    assert small["bn1"].running_mean.shape == (sum(keep[0]),)
    assert small["conv2"].weight.shape == (sum(keep[1]), sum(keep[0]), 3, 3)
    assert small["fc1"].weight.shape == (sum(keep[2]), 4 * sum(keep[1]))


def test_float32_model_within_rounding_and_norm_based_choice():
    m = mlp(3)
    k = structured_keep(m, {"fc1": 0.5, "fc2": 0.25})
    assert k["fc1"].sum() == 8 and k["fc2"].sum() == 6
    norms = np.abs(m["fc1"].weight.data).sum(axis=1)
    assert norms[k["fc1"]].min() >= norms[~k["fc1"]].max()
    m, _ = apply_structured(m, k)
    small, _ = shrink(m, k)
    x = np.random.default_rng(0).normal(size=(7, 12)).astype(np.float32)
    np.testing.assert_allclose(small.forward(x), m.forward(x), rtol=1e-5, atol=1e-5)


def test_structured_bad_input():
    m = mlp()
    with pytest.raises(ValidationError, match="output layer keeps all its outputs"):
        m, _ = apply_structured(m, {"fc3": np.array([True, False, True])})
    with pytest.raises(ShapeError, match=r"keep\['fc1'\]: expected shape \(16,\)"):
        shrink(m, {"fc1": np.ones(5, bool)})
    with pytest.raises(ValidationError, match=r"keep\['fc1'\]: expected at least one kept row"):
        shrink(m, {"fc1": np.zeros(16, bool)})
    with pytest.raises(ValidationError, match="unknown"):
        structured_keep(m, {"fc7": 0.5})
    sig = Sequential(("fc1", Linear(4, 4, rng=0)), ("act", Sigmoid()), ("fc2", Linear(4, 2, rng=0)))
    with pytest.raises(ValidationError, match="map 0 to 0"):
        sig, _ = apply_structured(sig, {"fc1": np.array([True, False, True, True])})
