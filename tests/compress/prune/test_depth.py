"""Depth pruning (P.18): the merged layer against the two maps written out, exactness, the greedy trade-off."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp.compress.prune import depth_tradeoff, drop_layer, merge_linear_pair, removable_layers
from refcomp.errors import ShapeError, ValidationError
from refcomp.nn import Linear, ReLU, Sequential

from ..._support.helpers import blobs, mlp


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), dims=st.tuples(st.integers(1, 5), st.integers(1, 5), st.integers(1, 5)))
def test_merged_pair_applies_both_maps(seed, dims):
    i, h, o = dims
    rng = np.random.default_rng(seed)
    w1, b1, w2, b2 = rng.normal(size=(h, i)), rng.normal(size=h), rng.normal(size=(o, h)), rng.normal(size=o)
    w, b = merge_linear_pair(w1, b1, w2, b2)
    x = rng.normal(size=i)
    hidden = [sum(w1[k, c] * x[c] for c in range(i)) + b1[k] for k in range(h)]
    expected = [sum(w2[r, k] * hidden[k] for k in range(h)) + b2[r] for r in range(o)]
    np.testing.assert_allclose(w @ x + b, expected, rtol=1e-10, atol=1e-10)


def test_merge_checks_shapes():
    with pytest.raises(ShapeError, match="w2"):
        merge_linear_pair(np.ones((3, 2)), None, np.ones((4, 2)), None)


def _always_active_mlp():
    """mlp whose fc2 pre-activations are all > 0 on blobs(n <= 80): relu2 is the identity on that data."""
    m = mlp(dtype="float64")
    x = blobs(n=80)[0].astype(np.float64)
    a1 = np.maximum(x @ m["fc1"].weight.data.T + m["fc1"].bias.data, 0)
    m["fc2"].bias.data[...] = -(a1 @ m["fc2"].weight.data.T).min(axis=0) + 0.01   # just above 0, not dominant
    return m


def test_dropping_a_layer_whose_relu_never_clips_changes_nothing():
    m = _always_active_mlp()
    x, _ = blobs(n=80)
    x = x.astype(np.float64)
    assert removable_layers(m) == ["fc1", "fc2"]
    small, report = drop_layer(m, "fc2")
    assert list(small.layers) == ["fc1", "relu1", "fc3"]
    assert report["removed"] == ["fc2", "relu2"] and report["merged_into"] == "fc3"
    assert report["parameters"] == (m.num_parameters(), 12 * 16 + 16 + 16 * 3 + 3)
    np.testing.assert_allclose(small.forward(x), m.forward(x), rtol=1e-10, atol=1e-9)
    with pytest.raises(ValidationError, match="name"):
        drop_layer(m, "fc3")


def test_depth_tradeoff_greedy_rows():
    m = mlp()
    x, y = blobs(n=200)
    final, report = depth_tradeoff(m, (x[:150], y[:150]), (x[150:], y[150:]), fine_tune_epochs=2, lr=0.05)
    rows = report["rows"]
    assert [r["removed"] for r in rows] == [0, 1, 2]
    assert len(rows[2]["layers"]) == 2 and list(final.layers) == ["fc3"]   # one Linear left: logistic regression
    assert rows[0]["parameters"] > rows[1]["parameters"] > rows[2]["parameters"] == 12 * 3 + 3
    assert all(0.0 <= r["val_accuracy"] <= 1.0 for r in rows)
    _, capped = depth_tradeoff(m, (x, y), (x, y), fine_tune_epochs=0, max_removed=1)
    assert len(capped["rows"]) == 2


def test_a_deeper_mlp_loses_layers_one_by_one():
    g = np.random.default_rng(0)
    deep = Sequential(*[item for k in range(4) for item in
                        ((f"fc{k}", Linear(12 if k == 0 else 10, 10, rng=g)), (f"relu{k}", ReLU()))],
                      ("out", Linear(10, 3, rng=g)))
    assert removable_layers(deep) == ["fc0", "fc1", "fc2", "fc3"]
    small, _ = drop_layer(deep, "fc1")
    assert list(small.layers) == ["fc0", "relu0", "fc2", "relu2", "fc3", "relu3", "out"]   # fc1 folded into fc2
    assert removable_layers(small) == ["fc0", "fc2", "fc3"]


def test_greedy_round_removes_the_layer_that_keeps_validation_best():
    m = _always_active_mlp()
    x, _ = blobs(n=80)
    x = x.astype(np.float64)
    y = m.forward(x).argmax(1)          # labels = the model's own answers: dropping fc2 is lossless, fc1 is not
    _, report = depth_tradeoff(m, (x, y), (x, y), fine_tune_epochs=0, max_removed=1)
    row = report["rows"][1]
    assert row["layers"] == ["fc2"] and row["val_accuracy"] == 1.0 and row["tried"]["fc1"] < 1.0


def test_depth_transforms_leave_their_input_alone():
    m = mlp()
    x, y = blobs(n=64)
    before = {k: v.copy() for k, v in m.state_dict().items()}
    drop_layer(m, "fc1")
    depth_tradeoff(m, (x, y), (x, y), fine_tune_epochs=1)
    assert list(m.layers) == ["fc1", "relu1", "fc2", "relu2", "fc3"]
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
