"""Model-level pruning: criteria fed from the model, scopes, masks that persist through fine-tuning."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp.compress.prune import (Cubic, Iterative, MaskedOptimizer, OneShot, layer_scores, masked_fine_tune,
                                    model_masks, model_sparsity, prunable_layers, prune_model, prune_with_schedule)
from refcomp.errors import ShapeError, ValidationError
from refcomp.nn import SGD, Adam

from ..._support.helpers import blobs, convnet, mlp


def test_prunable_layers_and_unknown_name():
    assert list(prunable_layers(mlp())) == ["fc1", "fc2", "fc3"]
    with pytest.raises(ValidationError, match=r"layers: expected names of prunable layers.*unknown \['fc9'\]"):
        prunable_layers(mlp(), ["fc1", "fc9"])
    with pytest.raises(ValidationError, match="unknown"):
        prune_model(mlp(), {"relu1": 0.5})


@settings(max_examples=25)
@given(s=st.floats(0.0, 0.99))
def test_global_magnitude_reaches_sparsity_within_one_weight(s):
    m = mlp()
    original = {k: l.weight.data.copy() for k, l in prunable_layers(m).items()}
    m, report = prune_model(m, s, scope="global")
    masks = report["masks"]
    n = sum(mk.size for mk in masks.values())
    removed = sum(int((~mk).sum()) for mk in masks.values())
    assert abs(removed - s * n) <= 1
    # one threshold: every kept |w| >= every removed |w|
    kept = np.concatenate([np.abs(w[masks[k]]) for k, w in original.items()])
    gone = np.concatenate([np.abs(w[~masks[k]]) for k, w in original.items()])
    if kept.size and gone.size:
        assert kept.min() >= gone.max()


def test_per_layer_ratios_and_granularities():
    m = mlp()
    pruned, report = prune_model(m, {"fc1": 0.5, "fc2": 0.25})
    masks = report["masks"]
    sp = model_sparsity(pruned)
    assert report["sparsity"]["fc1"] == sp["fc1"]
    assert model_sparsity(m)["fc1"] == 0.0  # the input model is untouched
    assert sp["fc1"] == pytest.approx(0.5) and sp["fc2"] == pytest.approx(0.25) and sp["fc3"] == 0.0
    assert set(masks) == {"fc1", "fc2"}
    nm = prune_model(mlp(), granularity="nm", n=2, m=4)[1]["masks"]
    for mk in nm.values():
        assert (mk.reshape(mk.shape[0], -1, 4).sum(axis=2) == 2).all()
    rows = prune_model(mlp(), {"fc1": 0.25}, granularity="row")[1]["masks"]["fc1"]
    assert rows.all(axis=1).sum() == 12 and (~rows).all(axis=1).sum() == 4
    ch = prune_model(convnet(), {"conv2": 0.5}, granularity="channel")[1]["masks"]["conv2"]
    assert (~ch).all(axis=(0, 2, 3)).sum() == 3
    blk = prune_model(mlp(), {"fc1": 0.5}, granularity="block", block_shape=(4, 4))[1]["masks"]["fc1"]
    tiles = blk.reshape(4, 4, 3, 4).transpose(0, 2, 1, 3).reshape(12, 16)
    assert set(tiles.sum(axis=1)) <= {0, 16} and (~blk).sum() == 96


@pytest.mark.parametrize("criterion", ["activation", "taylor", "snip"])
def test_data_driven_criteria(criterion):
    x, y = blobs()
    m = mlp()
    scores = layer_scores(m, criterion, data=(x, y), batch_size=50)
    for name, layer in prunable_layers(m).items():
        assert scores[name].shape == layer.weight.data.shape and (scores[name] >= 0).all()
    if criterion == "snip":
        assert sum(float(s.sum()) for s in scores.values()) == pytest.approx(1.0)
    if criterion == "activation":  # D.3 by hand for fc1: |w_ij| · mean_n |x_nj|
        np.testing.assert_allclose(scores["fc1"], np.abs(m["fc1"].weight.data) * np.abs(x).mean(axis=0),
                                   rtol=1e-5)
    with pytest.raises(ValidationError, match="data: expected calibration data"):
        layer_scores(m, criterion)


def test_activation_criterion_on_conv_runs_through_the_model():
    m = convnet()
    x = np.random.default_rng(1).normal(size=(4, 2, 8, 8)).astype(np.float32)
    s = layer_scores(m, "activation", data=(x, np.zeros(4, np.int64)), layers=["conv1", "conv2"])
    assert s["conv2"].shape == (5, 6, 3, 3)
    assert "forward" not in vars(m["conv1"])  # the capture hook is removed again


@pytest.mark.parametrize("make_opt", [lambda p: SGD(p, lr=0.1, momentum=0.9), lambda p: Adam(p, lr=0.01)])
def test_masks_persist_through_fine_tuning(make_opt):
    x, y = blobs()
    m = mlp()
    m, report = prune_model(m, {"fc1": 0.7, "fc2": 0.5, "fc3": 0.3})
    masks = report["masks"]
    opt = MaskedOptimizer(make_opt(m.parameters()), m)   # the masks the weights hold
    from refcomp.nn import train
    train(m, (x, y), epochs=3, batch_size=16, optimizer=opt, schedule=None, progress=False)
    for name, layer in prunable_layers(m).items():
        dead = ~masks[name]
        assert (layer.weight.data[dead] == 0).all()
        assert layer.weight.grad is None or (layer.weight.grad[dead] == 0).all()
        state = opt.state[id(layer.weight)]
        assert state, "the optimizer kept state for the weight"
        for buf in state.values():
            if isinstance(buf, np.ndarray):
                assert (buf[dead] == 0).all()
        assert (layer.weight.data[masks[name]] != 0).mean() > 0.95  # the kept ones did train


def test_without_the_wrapper_momentum_revives_pruned_weights():
    """The failure MaskedOptimizer prevents: a plain optimizer moves pruned weights off 0."""
    x, y = blobs()
    m = mlp()
    m, report = prune_model(m, {"fc1": 0.7})
    masks = report["masks"]
    from refcomp.nn import train
    train(m, (x, y), epochs=1, batch_size=16, optimizer=SGD(m.parameters(), lr=0.1, momentum=0.9),
          schedule=None, progress=False)
    assert (m["fc1"].weight.data[~masks["fc1"]] != 0).any()


def test_masked_fine_tune_improves_a_pruned_model():
    x, y = blobs(n=300)
    m = mlp()
    m, _ = prune_model(m, {"fc1": 0.8, "fc2": 0.8})
    tuned, h = masked_fine_tune(m, (x, y), epochs=5, lr=0.05)
    assert h[-1]["loss"] < h[0]["loss"]
    assert model_sparsity(tuned)["fc1"] >= 0.8 - 1e-9
    assert tuned["fc1"].weight.mask is not None and not np.shares_memory(tuned["fc1"].weight.data,
                                                                          m["fc1"].weight.data)


@pytest.mark.parametrize("schedule", [OneShot(0.8), Iterative([(0, 0.4), (2, 0.6), (4, 0.8)]),
                                      Cubic(0.8, num_steps=3, frequency=1)])
def test_schedules_reach_their_target_and_masks_only_shrink(schedule):
    x, y = blobs()
    m = mlp()
    seen = []
    m, report = prune_with_schedule(m, schedule, (x, y), epochs=5, lr=0.02,
                                    callback=lambda e, mk: seen.append({k: v.copy() for k, v in mk.items()}))
    masks = report["masks"]
    sp = model_sparsity(m, masks)
    assert sp["total"] == pytest.approx(0.8, abs=0.01)
    for before, after in zip(seen, seen[1:]):
        for k in before:
            assert not (after[k] & ~before[k]).any()


def test_model_bad_input():
    m = mlp()
    with pytest.raises(ValidationError, match=r"sparsity\['fc1'\]: expected a real number in \[0, 1\)"):
        prune_model(m, {"fc1": 1.0})
    with pytest.raises(ValidationError, match="sparsity"):
        prune_model(m, -0.1, scope="global")
    with pytest.raises(ValidationError, match="n: expected n <= m"):
        prune_model(m, granularity="nm", n=5, m=4)
    with pytest.raises(ShapeError, match=r"previous\['fc1'\]: expected shape \(16, 12\)"):
        model_masks({"fc1": np.ones((16, 12))}, 0.5, previous={"fc1": np.ones((3, 3), bool)})
    with pytest.raises(ValidationError, match="granularity"):
        prune_model(m, 0.5, granularity="diagonal")
    with pytest.raises(ValidationError, match="criterion"):
        prune_model(m, 0.5, criterion="random")
    with pytest.raises(ShapeError, match=r"masks\['fc2'\]"):
        MaskedOptimizer(SGD(m.parameters(), lr=0.1), m, {"fc2": np.ones((2, 2), bool)})


def test_block_granularity_on_a_conv_uses_the_im2col_matrix():
    m = convnet()
    mk = prune_model(m, {"conv2": 0.5}, granularity="block", block_shape=(1, 9))[1]["masks"]["conv2"]
    # (1, 9) blocks of the (5, 6·3·3) matrix = whole 3x3 kernels of one (filter, channel) pair
    per_kernel = mk.reshape(5, 6, 9).sum(axis=2)
    assert set(np.unique(per_kernel)) <= {0, 9} and (per_kernel == 0).sum() == 15
    with pytest.raises(ShapeError, match="block_shape"):
        prune_model(convnet(), {"conv2": 0.5}, granularity="block", block_shape=(2, 4))


def test_apply_model_masks_checks_shapes():
    from refcomp.compress.prune import apply_model_masks
    with pytest.raises(ShapeError, match=r"masks\['fc1'\]: expected shape \(16, 12\), got shape \(12, 16\)"):
        apply_model_masks(mlp(), {"fc1": np.ones((12, 16), bool)})
    with pytest.raises(ValidationError, match="unknown"):
        apply_model_masks(mlp(), {"bogus": np.ones((12, 16), bool)})
