"""Structured pruning shrinks the model for real and keeps its outputs (issue 5, shown 1)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp.compress.prune import apply_structured, shrink, structured_keep
from refcomp.errors import ShapeError, ValidationError
from refcomp.nn import Conv2d, Flatten, Linear, ReLU, Sequential, Sigmoid
from refcomp.nn.module import Module

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


def test_norm_two_ranks_rows_by_their_euclidean_length():
    # row 0 = (3, 0): L1 3, L2 3; row 1 = (2, 2): L1 4, L2 √8 ≈ 2.83 — the two norms keep different rows
    m = Sequential(("fc1", Linear(2, 2, rng=0, dtype="float64")), ("fc2", Linear(2, 1, rng=0, dtype="float64")))
    m["fc1"].weight.data[...] = [[3.0, 0.0], [2.0, 2.0]]
    assert structured_keep(m, {"fc1": 0.5})["fc1"].tolist() == [False, True]            # L1 by default
    assert structured_keep(m, {"fc1": 0.5}, norm=1)["fc1"].tolist() == [False, True]
    assert structured_keep(m, {"fc1": 0.5}, norm=2)["fc1"].tolist() == [True, False]


def test_reports_count_kept_and_removed_rows_and_the_input_model_is_left_alone():
    m = mlp(1, dtype="float64")
    before = {n: w.data.copy() for n, w in m.named_parameters()}
    k = {"fc1": np.array([True] * 5 + [False] * 11), "fc2": np.array([False, True] * 4)}
    masked, report = apply_structured(m, k)
    assert report == {"fc1": 5, "fc2": 4}
    for n, w in m.named_parameters():               # apply_structured zeroes rows of a copy only
        np.testing.assert_array_equal(w.data, before[n])
    assert not masked["fc1"].weight.data[5:].any() and masked["fc1"].weight.data[:5].any()
    small, report = shrink(masked, k)
    assert report == {"fc1": {"kept": 5, "removed": 11}, "fc2": {"kept": 4, "removed": 4}}
    assert (small["fc1"].out_features, small["fc2"].in_features, small["fc2"].out_features,
            small["fc3"].in_features) == (5, 5, 4, 4)
    assert masked["fc1"].out_features == 16 and masked["fc1"].weight.shape == (16, 12)      # shrink copies too


def test_the_next_layer_must_take_exactly_the_pruned_outputs():
    # fc2 reads 6 inputs from a layer of 3 outputs: no Flatten between, so no channel-major spread either
    m = Sequential(("fc1", Linear(4, 3, rng=0)), ("relu", ReLU()), ("fc2", Linear(6, 2, rng=0)))
    with pytest.raises(ShapeError, match=r"^fc2\.weight:"):
        shrink(m, {"fc1": np.array([True, False, True])})
    # behind a Flatten, the in_features must split evenly into the conv's channels
    c = Sequential(("conv", Conv2d(1, 3, 1, rng=0)), ("flat", Flatten()), ("fc", Linear(7, 2, rng=0)))
    with pytest.raises(ShapeError, match=r"^fc\.weight:"):
        shrink(c, {"conv": np.array([True, False, True])})


def test_a_grouped_next_conv_is_refused():
    m = Sequential(("conv1", Conv2d(2, 4, 1, rng=0)), ("conv2", Conv2d(4, 4, 1, groups=2, rng=0)))
    with pytest.raises(ValidationError, match="groups=1"):
        apply_structured(m, {"conv1": np.array([True, False, True, True])})


def test_keep_and_sparsity_must_be_non_empty_mappings():
    m = mlp()
    for bad in ({}, [("fc1", 0.5)], None):
        with pytest.raises(ValidationError, match="^sparsity:"):
            structured_keep(m, bad)
    for bad in ({}, [("fc1", np.ones(16, bool))], None):
        for fn in (apply_structured, shrink):
            with pytest.raises(ValidationError, match="^keep:"):
                fn(m, bad)


class _Pair(Module):
    """Two Linears as attributes: prunable by name, but with no layer order to follow."""

    def __init__(self):
        self.fc1, self.fc2 = Linear(4, 3, rng=0), Linear(3, 2, rng=0)

    def forward(self, x):
        return self.fc2.forward(self.fc1.forward(x))


def test_only_a_sequential_has_the_layer_order_shrink_follows():
    for fn in (apply_structured, shrink):
        with pytest.raises(ValidationError, match="^model:"):
            fn(_Pair(), {"fc1": np.array([True, False, True])})
