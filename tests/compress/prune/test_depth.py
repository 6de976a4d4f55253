"""Depth pruning (P.18): the merged layer against the two maps written out, exactness, the greedy trade-off."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp.compress.prune import depth_tradeoff, drop_layer, merge_linear_pair, removable_layers
from refcomp.errors import ShapeError, ValidationError
from refcomp.nn import Linear, ReLU, Sequential

from ..._support.helpers import blobs, mlp
from ..._support.terminal import TerminalStream


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


def test_merge_needs_matrices_and_missing_biases_are_zeros_of_the_weights_dtype():
    for bad, name in (((np.ones(3), None, np.ones((2, 3)), None), "w1"), ((np.ones((3, 2)), None, np.ones(3), None), "w2")):
        with pytest.raises(ValidationError) as e:
            merge_linear_pair(*bad)
        assert e.value.argument == name
    rng = np.random.default_rng(0)
    w1, w2 = rng.normal(size=(3, 2)).astype(np.float32), rng.normal(size=(4, 3)).astype(np.float32)
    w, b = merge_linear_pair(w1, None, w2, None)
    np.testing.assert_array_equal(w, w2 @ w1)
    assert b.dtype == np.float32 and b.shape == (4,) and not b.any()


def test_removable_means_followed_through_elementwise_layers_by_a_linear():
    g = np.random.default_rng(0)
    direct = Sequential(("fc1", Linear(3, 4, rng=g)), ("fc2", Linear(4, 2, rng=g)))
    assert removable_layers(direct) == ["fc1"]
    ends_in_relu = Sequential(("fc1", Linear(3, 4, rng=g)), ("relu1", ReLU()), ("fc2", Linear(4, 2, rng=g)),
                              ("relu2", ReLU()))
    assert removable_layers(ends_in_relu) == ["fc1"]


def test_dropping_merges_into_the_very_next_linear_with_its_bias_and_dtype():
    # three affine maps in a row, no activation: dropping any hidden one is exact
    g = np.random.default_rng(1)
    m = Sequential(("fc1", Linear(3, 4, rng=g, bias=False)), ("fc2", Linear(4, 5, rng=g, bias=False)),
                   ("fc3", Linear(5, 2, rng=g)))
    x = g.normal(size=(6, 3)).astype(np.float32)
    small, report = drop_layer(m, "fc1")
    assert list(small.layers) == ["fc2", "fc3"] and report["merged_into"] == "fc2"
    assert small["fc2"].bias is None and small["fc2"].weight.data.dtype == np.float32
    np.testing.assert_allclose(small.forward(x), m.forward(x), rtol=1e-5, atol=1e-6)
    small2, _ = drop_layer(m, "fc2")
    np.testing.assert_allclose(small2.forward(x), m.forward(x), rtol=1e-5, atol=1e-6)
    for out in (small, small2):                     # the new model shares no array with m
        before = {k: v.copy() for k, v in m.state_dict().items()}
        for p in out.parameters():
            p.data[...] = 0
        for k, v in m.state_dict().items():
            np.testing.assert_array_equal(v, before[k])


@pytest.mark.parametrize("kw", [{}, {"fine_tune_epochs": 2, "lr": 0.03, "rng": 3}])
def test_fine_tuning_is_sgd_with_momentum_at_the_documented_defaults(kw):
    # defaults: 1 epoch, lr 0.01, rng 0; each candidate: drop_layer, then SGD(lr, momentum 0.9) for the epochs
    from refcomp.nn import SGD, train
    m = mlp()
    x, y = blobs(n=120)
    _, report = depth_tradeoff(m, (x, y), (x, y), max_removed=1, **kw)
    name = report["rows"][1]["layers"][0]
    ref, _ = drop_layer(m, name)
    train(ref, (x, y), epochs=kw.get("fine_tune_epochs", 1),
          optimizer=SGD(ref.parameters(), lr=kw.get("lr", 0.01), momentum=0.9), rng=kw.get("rng", 0), progress=False)
    for k, v in ref.state_dict().items():
        np.testing.assert_array_equal(report["models"][1].state_dict()[k], v)


def _all_relus_identity_mlp():
    """mlp with every hidden pre-activation > 0 on blobs(n <= 80): dropping either hidden layer is exact."""
    m = mlp(dtype="float64")
    x = blobs(n=80)[0].astype(np.float64)
    m["fc1"].bias.data[...] = -(x @ m["fc1"].weight.data.T).min(axis=0) + 0.01
    a1 = x @ m["fc1"].weight.data.T + m["fc1"].bias.data
    m["fc2"].bias.data[...] = -(a1 @ m["fc2"].weight.data.T).min(axis=0) + 0.01
    return m


def test_a_tie_goes_to_the_earlier_layer_and_the_report_is_complete():
    m = _all_relus_identity_mlp()
    x, _ = blobs(n=80)
    x = x.astype(np.float64)
    y = m.forward(x).argmax(1)
    final, report = depth_tradeoff(m, (x, y), (x, y), fine_tune_epochs=0, max_removed=1)
    row0, row1 = report["rows"]
    assert row1["tried"] == {"fc1": 1.0, "fc2": 1.0} and row1["layers"] == ["fc1"]
    assert set(report) == {"rows", "models"} and report["models"][1] is final
    assert set(row0) == {"removed", "layers", "val_accuracy", "parameters", "seconds"} and row0["seconds"] == 0.0
    assert set(row1) == set(row0) | {"tried"}
    assert isinstance(row1["seconds"], float) and 0 <= row1["seconds"] < 60 and row1["seconds"] == round(row1["seconds"], 2)
    for p in report["models"][0].parameters():      # row 0's model is a copy of the input
        p.data[...] = 0
    assert np.any(m["fc1"].weight.data != 0)


def test_depth_tradeoff_counts_must_be_non_negative():
    m = mlp()
    x, y = blobs(n=20)
    for kw in ({"fine_tune_epochs": -1}, {"max_removed": -1}):
        with pytest.raises(ValidationError, match=next(iter(kw))):
            depth_tradeoff(m, (x, y), (x, y), **kw)
    _, report = depth_tradeoff(m, (x, y), (x, y), max_removed=0)
    assert len(report["rows"]) == 1



def test_fine_tuning_draws_no_bar_even_on_a_terminal(monkeypatch):
    monkeypatch.setenv("TERM", "xterm-256color")
    term = TerminalStream()
    monkeypatch.setattr("sys.stdout", term)
    x, y = blobs(n=40)
    depth_tradeoff(mlp(), (x, y), (x, y), max_removed=1)
    assert term.getvalue() == ""
