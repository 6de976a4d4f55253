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


class _TrainSpy:
    """Stands for refcomp.nn.train inside prune_with_schedule: records what each epoch is given."""

    def __init__(self):
        self.calls = []

    def __call__(self, model, data, **kw):
        opt = kw["optimizer"]
        names = {id(layer.weight): name for name, layer in prunable_layers(model).items()}
        self.calls.append(dict(kw, model=model, data=data, opt_id=id(opt), inner=opt.inner, lr=opt.inner.lr,
                               params={id(p) for p in opt.inner.params} == {id(p) for p in model.parameters()},
                               masks={names[id(p)]: mk.copy() for p, mk in opt.pairs}))
        return []


def test_prune_with_schedule_runs_one_masked_sgd_epoch_per_step_with_the_cosine_lr(monkeypatch):
    # the algorithm written out: at each pruning step t recompute the masks at s_t, then one epoch of SGD
    # (momentum, weight decay) under those masks at lr_t = lr (1 + cos(pi t / epochs)) / 2, one generator
    # seeded once for every epoch's shuffle; before the first pruning step, the dense model trains
    import refcomp.compress.prune.model as prune_model_module
    spy = _TrainSpy()
    monkeypatch.setattr(prune_model_module, "train", spy)
    original = mlp()
    before = {k: l.weight.data.copy() for k, l in prunable_layers(original).items()}
    seen, regularizer, data = [], object(), blobs()
    m, report = prune_with_schedule(original, Iterative([(2, 0.5), (3, 0.75)]), data, epochs=4, lr=0.04,
                                    momentum=0.5, weight_decay=0.001, batch_size=32, rng=7, regularizer=regularizer,
                                    callback=lambda t, mk: seen.append((t, {k: v.copy() for k, v in mk.items()})))
    assert [t for t, _ in seen] == [0, 1, 2, 3] and len(spy.calls) == 4
    rng = spy.calls[0]["rng"]
    assert isinstance(rng, np.random.Generator)
    assert rng.bit_generator.state == np.random.default_rng(7).bit_generator.state  # (the spy draws nothing)
    for t, call in enumerate(spy.calls):
        assert call["epochs"] == 1 and call["batch_size"] == 32 and call["schedule"] is None
        assert call["progress"] is False and call["regularizer"] is regularizer and call["rng"] is rng
        assert call["model"] is m and call["data"] is data and call["params"]
        inner = call["inner"]
        assert type(inner) is SGD and (inner.momentum, inner.weight_decay) == (0.5, 0.001)
        assert call["lr"] == pytest.approx(0.04 * (1 + np.cos(np.pi * t / 4)) / 2, rel=1e-12)
        sparsity = {0: 0.0, 1: 0.0, 2: 0.5, 3: 0.75}[t]
        assert set(call["masks"]) == {"fc1", "fc2", "fc3"}
        for name, mk in call["masks"].items():
            assert abs((~mk).sum() - sparsity * mk.size) <= 1, (t, name)
            assert np.array_equal(mk, seen[t][1][name])  # the callback gets the masks in force
    # the dense epochs share one optimizer; each pruning step starts a fresh one (no stale momentum)
    ids = [c["opt_id"] for c in spy.calls]
    assert ids[0] == ids[1] and len({ids[1], ids[2], ids[3]}) == 3
    for name, mk in report["masks"].items():
        assert np.array_equal(mk, seen[-1][1][name]) and not m[name].weight.data[~mk].any()
    for k, w in before.items():  # the input model is untouched
        assert np.array_equal(original[k].weight.data, w) and original[k].weight.mask is None


def test_prune_with_schedule_defaults(monkeypatch):
    import refcomp.compress.prune.model as prune_model_module
    spy = _TrainSpy()
    monkeypatch.setattr(prune_model_module, "train", spy)
    prune_with_schedule(mlp(), OneShot(0.5), blobs(), epochs=1)
    (call,) = spy.calls
    assert (call["lr"], call["inner"].momentum, call["inner"].weight_decay, call["batch_size"]) == (0.01, 0.9, 0.0, 64)
    assert call["regularizer"] is None
    assert call["rng"].bit_generator.state == np.random.default_rng(0).bit_generator.state
    g = np.random.default_rng(3)
    prune_with_schedule(mlp(), OneShot(0.5), blobs(), epochs=1, rng=g)
    assert spy.calls[-1]["rng"] is g  # a Generator is used as given
    with pytest.raises(ValidationError, match="epochs"):
        prune_with_schedule(mlp(), OneShot(0.5), blobs(), epochs=0)
    with pytest.raises(ValidationError, match="schedule"):
        prune_with_schedule(mlp(), 0.5, blobs(), epochs=1)


def test_prune_with_schedule_per_layer_targets_scale_the_schedule(monkeypatch):
    # sparsity_of_layer: layer n gets s_t * r_n / max r, so each reaches r_n when s_t reaches max r;
    # the layers not named stay dense
    import refcomp.compress.prune.model as prune_model_module
    monkeypatch.setattr(prune_model_module, "train", _TrainSpy())
    _, report = prune_with_schedule(mlp(), OneShot(0.6), blobs(), epochs=1, sparsity_of_layer={"fc1": 0.8, "fc2": 0.4})
    masks = report["masks"]
    assert set(masks) == {"fc1", "fc2"}
    assert abs((~masks["fc1"]).sum() - 0.6 * masks["fc1"].size) <= 1
    assert abs((~masks["fc2"]).sum() - 0.3 * masks["fc2"].size) <= 1
    _, report = prune_with_schedule(mlp(), OneShot(0.6), blobs(), epochs=1, sparsity_of_layer={"fc1": 0.0, "fc2": 0.0})
    assert all(mk.all() for mk in report["masks"].values()) and set(report["masks"]) == {"fc1", "fc2"}
    _, report = prune_with_schedule(mlp(), OneShot(0.5), blobs(), epochs=1, layers=["fc2"])
    assert set(report["masks"]) == {"fc2"}


def test_prune_with_schedule_passes_the_mask_options_on(monkeypatch):
    import refcomp.compress.prune.model as prune_model_module
    monkeypatch.setattr(prune_model_module, "train", _TrainSpy())
    x, y = blobs()
    # global scope: one threshold across the layers, so the layers' own ratios differ
    _, report = prune_with_schedule(mlp(), OneShot(0.5), (x, y), epochs=1, scope="global")
    ratios = {k: (~mk).mean() for k, mk in report["masks"].items()}
    total = sum((~mk).sum() for mk in report["masks"].values()) / sum(mk.size for mk in report["masks"].values())
    assert abs(total - 0.5) < 0.01 and len({round(r, 3) for r in ratios.values()}) > 1
    # granularity and its options (**mask_kw): 2 of every 4 inputs kept in each row
    _, report = prune_with_schedule(mlp(), OneShot(0.5), (x, y), epochs=1, granularity="nm", n=2, m=4)
    for mk in report["masks"].values():
        assert (mk.reshape(mk.shape[0], -1, 4).sum(axis=2) == 2).all()
    # a data-driven criterion gets the calibration data
    _, report = prune_with_schedule(mlp(), OneShot(0.5), (x, y), epochs=1, criterion="activation", calibration=(x, y))
    assert all(abs((~mk).mean() - 0.5) < 0.1 for mk in report["masks"].values())


def test_prune_with_schedule_keeps_removed_weights_removed_under_a_gradient_criterion():
    # |dL/dw| of a removed (zero) weight is not zero: without ``previous`` a later step could keep it again
    x, y = blobs()
    seen = []
    prune_with_schedule(mlp(), Iterative([(0, 0.5), (1, 0.7), (2, 0.8)]), (x, y), epochs=3, criterion="gradient",
                        calibration=(x, y), lr=0.05, callback=lambda t, mk: seen.append({k: v.copy() for k, v in mk.items()}))
    for before, after in zip(seen, seen[1:]):
        for k in before:
            assert not (after[k] & ~before[k]).any(), k


def test_structured_masks_rank_rows_by_the_l1_norm_of_their_scores():
    # rows [0.45, 0.45] (L1 0.9, L2 0.64) and [0.8, 0] (L1 0.8, L2 0.8): the default norm (L1) removes the
    # second, L2 the first; scores below 1 so clipping at anything but 0 would tie them
    scores = {"fc": np.array([[0.45, 0.45], [0.8, 0.0], [0.3, 0.3], [0.9, 0.9]])}
    assert model_masks(scores, 0.25, granularity="row")["fc"][:, 0].tolist() == [True, True, False, True]
    assert model_masks(scores, 0.5, granularity="row")["fc"][:, 0].tolist() == [True, False, False, True]
    assert model_masks(scores, 0.5, granularity="row", norm=2)["fc"][:, 0].tolist() == [False, True, False, True]


def test_a_structure_with_a_removed_element_is_removed_first():
    # the best row (L1 1.8) lost one element before: it goes before the worst live row
    scores = {"fc": np.array([[0.2, 0.2], [0.9, 0.9], [0.3, 0.3], [0.5, 0.5]])}
    previous = {"fc": np.array([[True, True], [True, False], [True, True], [True, True]])}
    mk = model_masks(scores, 0.25, granularity="row", previous=previous)["fc"]
    assert mk.tolist() == [[True, True], [False, False], [True, True], [True, True]]
    # the same with blocks of (1, 2) (each block one row here) and with input channels
    mk = model_masks(scores, 0.25, granularity="block", block_shape=(1, 2), previous=previous)["fc"]
    assert mk.tolist() == [[True, True], [False, False], [True, True], [True, True]]
    mk = model_masks({"fc": scores["fc"].T}, 0.25, granularity="channel", previous={"fc": previous["fc"].T})["fc"]
    assert mk.T.tolist() == [[True, True], [False, False], [True, True], [True, True]]
    # integer scores (counts) work too
    mk = model_masks({"fc": np.array([[2, 2], [9, 9], [3, 3], [5, 5]], np.uint8)}, 0.25, granularity="row",
                     previous=previous)["fc"]
    assert mk[:, 0].tolist() == [True, False, True, True]


def test_global_structured_masks_use_one_threshold_across_layers():
    # 8 rows in all, their L1 norms ranked together: the 4 lowest go, whatever layer holds them
    a = np.array([[0.1, 0.1], [0.9, 0.9], [0.2, 0.2], [0.8, 0.8]])
    b = np.array([[0.7, 0.7], [0.15, 0.15], [0.6, 0.6], [0.05, 0.05]])
    masks = model_masks({"a": a, "b": b}, 0.5, granularity="row", scope="global")
    assert masks["a"][:, 0].tolist() == [False, True, False, True]
    assert masks["b"][:, 0].tolist() == [True, False, True, False]
    with pytest.raises(ValidationError) as e:
        model_masks({"a": a, "b": b}, {"a": 0.5}, granularity="row", scope="global")
    assert e.value.argument == "sparsity"


def test_semi_structured_masks_never_bring_back_a_removed_weight():
    # 2:4 keeps 2 of each 4, but a group that lost 3 before keeps only its 1 survivor; a layer that
    # ``previous`` does not name is masked afresh
    scores = {"fc": np.array([[0.9, 0.8, 0.7, 0.6]]), "fc2": np.array([[0.1, 0.2, 0.3, 0.4]])}
    previous = {"fc": np.array([[False, False, True, False]])}
    masks = model_masks(scores, granularity="nm", n=2, m=4, previous=previous)
    assert masks["fc"].tolist() == [[False, False, True, False]]
    assert masks["fc2"].tolist() == [[False, False, True, True]]
    with pytest.raises(ValidationError) as e:
        model_masks(scores, granularity="nm", n=2)
    assert e.value.argument == "n, m"


def test_model_masks_argument_checks():
    for bad in ([np.ones((2, 2))], {}):
        with pytest.raises(ValidationError) as e:
            model_masks(bad, 0.5)
        assert e.value.argument == "scores"
    for shape in ((2,), (1, 2, 3), 4):
        with pytest.raises(ValidationError) as e:
            model_masks({"fc": np.ones((4, 4))}, 0.5, granularity="block", block_shape=shape)
        assert e.value.argument == "block_shape"


def test_masked_optimizer_zeroes_the_pruned_slots_of_the_optimizer_state():
    # after a step with gradients everywhere, momentum (SGD) and both moments (Adam) are 0 where pruned
    # and untouched where kept
    m = mlp()
    mk = np.random.default_rng(0).random(m["fc1"].weight.data.shape) < 0.5
    for inner, buffers in ((SGD(m.parameters(), lr=0.1, momentum=0.9), 1), (Adam(m.parameters(), lr=0.01), 2)):
        opt = MaskedOptimizer(inner, m, {"fc1": mk})
        g = np.random.default_rng(1).normal(size=mk.shape).astype(np.float32)
        for p in m.parameters():
            p.grad = np.ones_like(p.data)
        m["fc1"].weight.grad = g.copy()
        opt.step()
        state = [b for b in inner.state[id(m["fc1"].weight)].values()
                 if isinstance(b, np.ndarray) and b.shape == mk.shape]
        assert len(state) == buffers
        for buf in state:
            assert not buf[~mk].any() and buf[mk].all()
        assert not m["fc1"].weight.data[~mk].any()
    with pytest.raises(ValidationError) as e:
        MaskedOptimizer(SGD(m["fc2"].parameters(), lr=0.1), m, {"fc1": mk})
    assert e.value.argument == "optimizer" and "fc1" in str(e.value)
    with pytest.raises(ValidationError) as e:
        MaskedOptimizer(type("StepOnly", (), {"step": lambda self: None})(), m, {"fc1": mk})
    assert e.value.argument == "optimizer"


def test_masked_fine_tune_trains_the_copy_with_masked_sgd(monkeypatch):
    import refcomp.compress.prune.model as prune_model_module
    spy = _TrainSpy()
    monkeypatch.setattr(prune_model_module, "train", spy)
    m = mlp()
    mk = np.random.default_rng(0).random(m["fc1"].weight.data.shape) < 0.5
    val, loss, data = blobs(n=30, seed=1), object(), blobs()
    out, _ = masked_fine_tune(m, data, masks={"fc1": mk}, epochs=3, lr=0.02, momentum=0.5, batch_size=16, rng=5,
                              schedule="constant", progress=True, val_data=val, loss=loss)
    (call,) = spy.calls
    assert call["model"] is out and out is not m and call["data"] is data
    assert (call["epochs"], call["batch_size"], call["rng"], call["schedule"], call["progress"]) == (3, 16, 5, "constant", True)
    assert call["val_data"] is val and call["loss"] is loss
    assert (call["lr"], call["inner"].momentum) == (0.02, 0.5) and call["params"]
    assert set(call["masks"]) == {"fc1"} and np.array_equal(call["masks"]["fc1"], mk)
    assert not out["fc1"].weight.data[~mk].any() and m["fc1"].weight.mask is None
    masked_fine_tune(out, data)  # default: the masks the weights hold, and the defaults below
    call = spy.calls[-1]
    assert np.array_equal(call["masks"]["fc1"], mk) and set(call["masks"]) == {"fc1"}
    assert (call["epochs"], call["batch_size"], call["rng"], call["schedule"], call["progress"]) == (1, 64, 0, "cosine", False)
    assert (call["lr"], call["inner"].momentum, call["val_data"], call["loss"]) == (0.01, 0.9, None, None)


def _fd_batch_gradients(model, name, batches, eps=1e-6):
    """∂L_b/∂W of layer ``name`` for each batch b by central differences, L_b the mean cross-entropy
    -log softmax(z)_y written out here (float64 model)."""
    def loss(xb, yb):
        z = np.asarray(model.forward(xb), np.float64)
        top = z.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(z - top).sum(axis=1)) + top[:, 0] - z[np.arange(len(yb)), yb]))

    w = model[name].weight.data
    grads = []
    for xb, yb in batches:
        g = np.zeros(w.shape)
        for i in np.ndindex(w.shape):
            keep = w[i]
            w[i] = keep + eps
            up = loss(xb, yb)
            w[i] = keep - eps
            down = loss(xb, yb)
            w[i] = keep
            g[i] = (up - down) / (2 * eps)
        grads.append(g)
    return grads


def test_gradient_criteria_from_the_model_equal_their_formulas_on_finite_difference_gradients():
    # two calibration batches of 60: gradient |mean_b g_b| (P.1), taylor mean_b |w g_b| (D.4), snip
    # |w mean_b g_b| over its sum across the chosen layers (D.6)
    m = mlp(dtype="float64")
    x, y = blobs(n=120)
    x = x.astype(np.float64)
    batches = [(x[:60], y[:60]), (x[60:], y[60:])]
    g = {n: _fd_batch_gradients(m, n, batches) for n in ("fc2", "fc3")}
    w = {n: m[n].weight.data for n in g}
    scores = {c: layer_scores(m, c, layers=["fc2", "fc3"], data=(x, y), batch_size=60)
              for c in ("gradient", "taylor", "snip")}
    total = sum(np.abs(w[n] * (g[n][0] + g[n][1]) / 2).sum() for n in g)
    for n in g:
        np.testing.assert_allclose(scores["gradient"][n], np.abs((g[n][0] + g[n][1]) / 2), rtol=1e-5, atol=1e-9)
        np.testing.assert_allclose(scores["taylor"][n], (np.abs(w[n] * g[n][0]) + np.abs(w[n] * g[n][1])) / 2,
                                   rtol=1e-5, atol=1e-9)
        np.testing.assert_allclose(scores["snip"][n], np.abs(w[n] * (g[n][0] + g[n][1]) / 2) / total,
                                   rtol=1e-5, atol=1e-9)
    # the model is scored in eval mode and left in the mode it was in
    for mode in (True, False):
        m.train(mode)
        layer_scores(m, "taylor", data=(x, y))
        assert m.training is mode


def test_activation_and_grasp_criteria_from_the_model():
    # activation (D.3): s_ij = |w_ij| mean_n |x_nj|, x the layer's input, here relu(fc1(x)) written out
    m = mlp(dtype="float64")
    x, y = blobs(n=50)
    x = x.astype(np.float64)
    h = np.maximum(x @ m["fc1"].weight.data.T + m["fc1"].bias.data, 0)
    s = layer_scores(m, "activation", layers=["fc2"], data=(x, y), batch_size=16)["fc2"]
    np.testing.assert_allclose(s, np.abs(m["fc2"].weight.data) * np.abs(h).mean(axis=0), rtol=1e-12)
    # a conv layer's input is seen through its own stride / padding / dilation
    from refcomp.compress.prune.criteria import activation_importance
    c = convnet(dtype="float64")
    xc = np.random.default_rng(0).normal(size=(4, 2, 8, 8))
    s = layer_scores(c, "activation", layers=["conv1"], data=(xc, np.zeros(4, np.int64)))["conv1"]
    np.testing.assert_allclose(s, activation_importance(c["conv1"].weight.data, xc, padding=1), rtol=1e-12)
    # grasp: GraSP's S = -w ⊙ Hg of the chosen layers, as keep-scores max S - S
    from refcomp.compress.prune.criteria import grasp, grasp_keep_scores
    from refcomp.compress.prune.gradflow import hessian_gradient_product
    import refcomp.compress.prune.model as prune_model_module
    chosen = {n: m[n] for n in ("fc2", "fc3")}
    _, hg = hessian_gradient_product(m, chosen, prune_model_module._calibration_batches((x, y), 16))
    expected = grasp_keep_scores({n: grasp(layer.weight.data, hg[n]) for n, layer in chosen.items()})
    got = layer_scores(m, "grasp", layers=["fc2", "fc3"], data=(x, y), batch_size=16)
    for n in chosen:
        np.testing.assert_allclose(got[n], expected[n], rtol=1e-12)


def test_calibration_data_checks():
    m = mlp()
    x, y = blobs(n=10)
    one = layer_scores(m, "taylor", data=(x[:1], y[:1]))  # a single sample is a calibration set
    assert one["fc1"].shape == (16, 12)
    for bad, error in (((x[:0], y[:0]), ShapeError), ((x, y[:5]), ShapeError), ([], ValidationError),
                       (np.zeros((2, 12), np.float32), ValidationError), ((x, y, y), ValidationError)):
        with pytest.raises(error) as e:
            layer_scores(m, "taylor", data=bad)
        assert e.value.argument == "data", bad


def test_prune_model_report_and_options():
    m = mlp()
    _, report = prune_model(m, {"fc1": 0.5})
    assert set(report["sparsity"]) == {"fc1", "total"} and report["sparsity"]["fc1"] == 0.5
    _, report = prune_model(m, 0.5, layers=["fc2"])
    assert set(report["masks"]) == {"fc2"} and set(report["sparsity"]) == {"fc2", "total"}
    assert set(prunable_layers(m, "fc1")) == {"fc1"}  # one name as a string
    # previous: removed weights stay removed, even the largest
    w = m["fc1"].weight.data
    previous = {"fc1": np.abs(w) < np.median(np.abs(w))}  # the larger half already removed
    _, report = prune_model(m, {"fc1": 0.5}, previous=previous)
    assert np.array_equal(report["masks"]["fc1"], previous["fc1"])
    # a data-driven criterion gets the data
    x, y = blobs()
    _, report = prune_model(m, {"fc1": 0.5}, criterion="taylor", data=(x, y))
    assert report["sparsity"]["fc1"] == 0.5
    # model_sparsity: exact fractions; no layer, no sparsity
    pruned, _ = prune_model(m, {"fc1": 0.25, "fc2": 0.5})
    w1, w2 = pruned["fc1"].weight.data, pruned["fc2"].weight.data
    assert model_sparsity(pruned, {"fc1": None, "fc2": None})["total"] == (48 + 64) / (w1.size + w2.size)
    assert model_sparsity(pruned, {}) == {"total": 0.0}


def test_structured_masks_expand_to_whole_structures():
    rng = np.random.default_rng(0)
    conv = rng.random((4, 6, 3, 3))
    rows = model_masks({"c": conv}, 0.5, granularity="row")["c"].reshape(4, -1)  # whole filters
    assert (rows.all(axis=1) | ~rows.any(axis=1)).all() and rows.all(axis=1).sum() == 2
    channels = model_masks({"c": conv}, 0.5, granularity="channel", norm=2)["c"]  # whole input channels
    per = channels.transpose(1, 0, 2, 3).reshape(6, -1)
    assert (per.all(axis=1) | ~per.any(axis=1)).all()
    l2 = np.sqrt((conv ** 2).transpose(1, 0, 2, 3).reshape(6, -1).sum(axis=1))
    assert set(np.flatnonzero(per.all(axis=1))) == set(np.argsort(l2)[3:].tolist())
    # (2, 2) blocks of a (4, 4) matrix: the two best blocks stay whole
    w = np.array([[9, 9, 1, 1], [9, 9, 1, 1], [5, 0, 6, 6], [5, 0, 6, 6]], float) / 10
    mk = model_masks({"w": w}, 0.5, granularity="block", block_shape=(2, 2))["w"]
    assert mk.astype(int).tolist() == [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]]
    # blocks [0.4] * 4 (L1 1.6, L2 0.8) and [0.9, 0, 0, 0] (L1 0.9, L2 0.9): L1 (the default) keeps the
    # first, L2 the second
    w = np.array([[0.4, 0.4, 0.9, 0.0], [0.4, 0.4, 0.0, 0.0]])
    assert model_masks({"w": w}, 0.5, granularity="block", block_shape=(2, 2))["w"][0].tolist() == [True, True, False, False]
    assert model_masks({"w": w}, 0.5, granularity="block", block_shape=(2, 2), norm=2)["w"][0].tolist() == [False, False, True, True]


def test_per_layer_ratios():
    scores = {"a": np.arange(1.0, 5.0).reshape(2, 2), "b": np.arange(1.0, 5.0).reshape(2, 2)}
    masks = model_masks(scores, {"a": 0.5})
    assert masks["a"].tolist() == [[False, False], [True, True]] and masks["b"].all()  # unnamed: dense
    with pytest.raises(ValidationError) as e:
        model_masks(scores, {"zz": 0.5})
    assert e.value.argument == "sparsity"
