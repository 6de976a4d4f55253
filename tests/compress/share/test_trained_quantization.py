"""Trained quantization on a model: k-means per layer, centroid fine-tuning by summed gradients (D.16, D.17)."""

import copy
import sys

import numpy as np
import pytest

from refcomp.compress.prune import prune_model
from refcomp.compress.share.cluster import kmeans
from refcomp.compress.share.trained_quantization import CentroidOptimizer, cluster_model, finetune_centroids
from refcomp.errors import ValidationError
from refcomp.formats import Clustered, Dense
from refcomp.io import load_model, save_model
from refcomp.nn import CrossEntropyLoss, Linear, Sequential, evaluate, train

from ..._support.helpers import blobs, mlp
from ..._support.terminal import TerminalStream


def _trained_pruned():
    x, y = blobs(n=300)
    m = mlp()
    train(m, (x, y), epochs=5, batch_size=30, progress=False)
    m, report = prune_model(m, {"fc1": 0.6, "fc2": 0.5})
    return m, report["masks"], (x, y)


def test_cluster_model_shares_weights_and_keeps_pruned_zero():
    m, masks, _ = _trained_pruned()
    before = {n: m[n].weight.data.copy() for n in ("fc1", "fc2")}
    cm, report = cluster_model(m, {"fc1": 3, "fc2": 2}, masks=masks)
    for name, bits in (("fc1", 3), ("fc2", 2)):
        c = cm[name].weight
        assert isinstance(c, Clustered)  # the layer holds the shared weight, no side dict
        w = c.to_dense()
        assert (w[~masks[name]] == 0).all()
        assert set(np.unique(w[masks[name]])) <= set(c.codebook.tolist())
        assert c.codebook.size == 2 ** bits
        assert report[name]["bits"] == bits and report[name]["kept"] == masks[name].sum()
        np.testing.assert_array_equal(m[name].weight.data, before[name])  # the input model is untouched
    assert isinstance(cm["fc3"].weight, Dense)


def test_one_finetune_step_is_the_summed_gradient_update():
    m, masks, (x, y) = _trained_pruned()
    cm, _ = cluster_model(m, {"fc1": 3, "fc2": 3}, masks=masks)
    ref = copy.deepcopy(cm)  # its dense twin: the shared values as plain weights
    for name in ("fc1", "fc2"):
        ref[name].weight = Dense(cm[name].weight.to_dense())
    loss = CrossEntropyLoss()
    ref.train()
    ref.zero_grad()
    loss.forward(ref.forward(x), y)
    ref.backward(loss.backward())
    lr = 0.01
    expected = {}
    for name in ("fc1", "fc2"):
        g = ref[name].weight.grad
        c = cm[name].weight
        idx, mk = c.indices, masks[name]
        sums = np.array([g[(idx == k) & mk].sum() for k in range(8)])   # D.16 by hand
        expected[name] = c.codebook - lr * sums                         # D.17, first step, no momentum yet
    start = {name: cm[name].weight.codebook.copy() for name in ("fc1", "fc2")}
    tuned, history = finetune_centroids(cm, (x, y), epochs=1, lr=lr, momentum=0.0, batch_size=len(y), rng=0)
    assert len(history) == 1
    for name in ("fc1", "fc2"):
        c = tuned[name].weight
        np.testing.assert_allclose(c.codebook, expected[name], rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(c.indices, cm[name].weight.indices)
        np.testing.assert_array_equal(cm[name].weight.codebook, start[name])  # the input model is untouched
        assert not c.trainable and c.grad is None
    # fc3 (not clustered) and the biases trained by plain SGD: the bias moved
    assert not np.array_equal(tuned["fc3"].bias.data, ref["fc3"].bias.data)


def test_finetuning_lowers_the_loss_and_keeps_the_structure():
    m, masks, data = _trained_pruned()
    cm, _ = cluster_model(m, {"fc1": 1, "fc2": 1}, masks=masks)   # 2 centroids: clustering hurts, training helps
    before = evaluate(cm, data)["loss"]
    idx = {n: cm[n].weight.indices.copy() for n in ("fc1", "fc2")}
    tuned, _ = finetune_centroids(cm, data, epochs=3, lr=1e-3, batch_size=30)
    assert evaluate(tuned, data)["loss"] < before
    for n in idx:
        np.testing.assert_array_equal(tuned[n].weight.indices, idx[n])
        assert (tuned[n].weight.to_dense()[~masks[n]] == 0).all()


def test_the_clustered_model_saves_and_loads(tmp_path):
    m, masks, (x, _) = _trained_pruned()
    cm, _ = cluster_model(m, {"fc1": 3, "fc2": 2}, masks=masks)
    back = load_model(save_model(cm, tmp_path / "shared.safetensors"))
    assert isinstance(back["fc1"].weight, Clustered)
    assert back.forward(x).tobytes() == cm.eval().forward(x).tobytes()


@pytest.mark.parametrize("bits", [0, 9, -1, 2.5])
def test_bits_outside_1_to_8(bits):
    m, masks, _ = _trained_pruned()
    with pytest.raises(ValidationError, match=r"bits\['fc1'\]: expected an integer"):
        cluster_model(m, {"fc1": bits}, masks=masks)


def test_finetuning_a_model_without_shared_weights_is_refused():
    m, _, data = _trained_pruned()
    with pytest.raises(ValidationError, match="model: expected layers holding Clustered weights"):
        finetune_centroids(m, data, epochs=1)


# cluster_model: the mask it clusters, the k-means options it passes on, its report
def _pruned64():
    x, y = blobs(n=300)
    m = mlp(dtype="float64")
    train(m, (x.astype(np.float64), y), epochs=5, batch_size=30, progress=False)
    m, report = prune_model(m, {"fc1": 0.6, "fc2": 0.5})
    return m, report["masks"], (x.astype(np.float64), y)


def test_the_report_states_each_layer_against_its_definition():
    m, masks, _ = _trained_pruned()
    cm, report = cluster_model(m, 2, masks=masks, layers=["fc1", "fc2"])   # one width for every layer
    for name in ("fc1", "fc2"):
        w, mk = m[name].weight.data, masks[name]
        sse = np.sum((cm[name].weight.to_dense()[mk].astype(np.float64) - w[mk]) ** 2)
        assert set(report[name]) == {"bits", "clusters", "kept", "sse"}
        assert (report[name]["bits"], report[name]["clusters"], report[name]["kept"]) == (2, 4, mk.sum())
        assert report[name]["sse"] == pytest.approx(sse, rel=1e-6) and report[name]["sse"] > 0
    assert set(cluster_model(m, 1)[1]) == {"fc1", "fc2", "fc3"}   # no layers, one width: every layer


def test_masks_choose_the_clustered_weights_and_default_to_the_non_zero_ones():
    m, _ = _pruned64()[:2]
    w1 = m["fc1"].weight.data
    w1[0, 0] = 1.0                                       # a kept weight that happens to be one
    extra = np.abs(m["fc2"].weight.data) > np.median(np.abs(m["fc2"].weight.data))   # finer than non-zero
    cm, report = cluster_model(m, 2, masks={"fc2": extra}, layers=["fc1", "fc2"])
    np.testing.assert_array_equal(cm["fc1"].weight.codebook, kmeans(w1[w1 != 0], 2).codebook)
    assert report["fc1"]["kept"] == np.count_nonzero(w1) and (cm["fc1"].weight.to_dense()[w1 == 0] == 0).all()
    np.testing.assert_array_equal(cm["fc2"].weight.codebook, kmeans(m["fc2"].weight.data[extra], 2).codebook)
    assert report["fc2"]["kept"] == extra.sum() and (cm["fc2"].weight.to_dense()[~extra] == 0).all()


def test_init_rng_and_max_iter_reach_k_means():
    m, masks, _ = _pruned64()
    w, mk = m["fc1"].weight.data, masks["fc1"]
    for kw in (dict(init="density"), dict(init="random", rng=3), dict(max_iter=1), dict(max_iter=0)):
        cm, _ = cluster_model(m, {"fc1": 3}, masks=masks, **kw)
        np.testing.assert_array_equal(cm["fc1"].weight.codebook, kmeans(w, 3, mask=mk, **kw).codebook)


def test_a_bits_mapping_names_layers_among_the_chosen_ones():
    m, masks, _ = _trained_pruned()
    with pytest.raises(ValidationError, match=r"bits: expected layer names"):
        cluster_model(m, {"fc1": 2, "fc2": 2}, layers=["fc1"], masks=masks)
    cm, _ = cluster_model(m, {"fc2": 2}, layers=["fc2"], masks=masks)
    assert isinstance(cm["fc2"].weight, Clustered) and isinstance(cm["fc1"].weight, Dense)


# CentroidOptimizer and finetune_centroids: (D.16, D.17) with momentum, step after step, and the loop's options
def _sgd_momentum_by_hand(cm, data, *, steps, lr, mu):
    """Full-batch steps written out: the centroids by (D.16, D.17), every other parameter by SGD + momentum."""
    x, y = data
    ref = copy.deepcopy(cm)
    names = ("fc1", "fc2")
    cb = {n: cm[n].weight.codebook.astype(np.float64) for n in names}
    vel = {n: np.zeros_like(cb[n]) for n in names}
    for n in names:
        ref[n].weight = Dense(cm[n].weight.to_dense())
    others = [p for p in ref.parameters() if all(p is not ref[n].weight for n in names)]
    buf = [None] * len(others)
    loss = CrossEntropyLoss()
    ref.train()
    for _ in range(steps):
        for n in names:
            c = cm[n].weight
            ref[n].weight.data[...] = cb[n][c.indices] * c.mask
        ref.zero_grad()
        loss.forward(ref.forward(x), y)
        ref.backward(loss.backward())
        for n in names:
            g, c = ref[n].weight.grad, cm[n].weight
            sums = np.array([g[(c.indices == k) & c.mask].sum() for k in range(cb[n].size)])   # (D.16)
            vel[n] = mu * vel[n] + sums                                                          # (D.17)
            cb[n] = cb[n] - lr * vel[n]
        for i, p in enumerate(others):
            buf[i] = p.grad.copy() if buf[i] is None else mu * buf[i] + p.grad
            p.data -= lr * buf[i]
    return cb, ref


def test_three_full_batch_steps_with_momentum_match_the_update_written_out():
    m, masks, data = _pruned64()
    cm, _ = cluster_model(m, {"fc1": 2, "fc2": 2}, masks=masks)
    cb, ref = _sgd_momentum_by_hand(cm, data, steps=3, lr=0.02, mu=0.5)
    tuned, history = finetune_centroids(cm, data, epochs=3, lr=0.02, momentum=0.5, batch_size=len(data[1]), rng=0)
    assert [r["lr"] for r in history] == [0.02] * 3              # a constant rate, no schedule
    for n in ("fc1", "fc2"):
        np.testing.assert_allclose(tuned[n].weight.codebook, cb[n], rtol=1e-9, atol=1e-12)
    for name in ("fc1.bias", "fc3.weight", "fc3.bias"):
        layer, attr = name.split(".")
        np.testing.assert_allclose(getattr(tuned[layer], attr).data, getattr(ref[layer], attr).data,
                                   rtol=1e-9, atol=1e-12)


def test_a_step_skips_a_codebook_without_gradient_and_moves_the_next():
    m, masks, _ = _pruned64()
    cm, _ = cluster_model(m, {"fc1": 2, "fc2": 2}, masks=masks)
    for n in ("fc1", "fc2"):
        cm[n].weight.trainable = True          # as inside the training loop
    opt = CentroidOptimizer(cm, lr=0.1)
    assert opt.momentum == 0.9                 # the default momentum
    c1, c2 = cm["fc1"].weight, cm["fc2"].weight
    start1, start2 = c1.codebook.copy(), c2.codebook.copy()
    g = np.random.default_rng(0).standard_normal(c2.indices.shape)
    sums = np.array([g[(c2.indices == k) & c2.mask].sum() for k in range(4)])
    for _ in range(2):
        cm.zero_grad()
        c2.grad = g
        opt.step()
    np.testing.assert_array_equal(c1.codebook, start1)                 # no gradient: left as it is
    v1, v2 = sums, 0.9 * sums + sums
    np.testing.assert_allclose(c2.codebook, start2 - 0.1 * v1 - 0.1 * v2, rtol=1e-12)
    assert c2.indices is cm["fc2"].weight.indices and isinstance(cm["fc2"].weight, Clustered)


def test_a_model_with_only_shared_weights_fine_tunes():
    m, masks, data = _pruned64()
    for n in ("fc1", "fc2", "fc3"):
        m[n].bias = None
    cm, _ = cluster_model(m, 2)
    tuned, history = finetune_centroids(cm, data, epochs=1, lr=1e-3)
    assert len(history) == 1 and not np.array_equal(tuned["fc1"].weight.codebook, cm["fc1"].weight.codebook)


def test_finetune_defaults_options_and_callback():
    m, masks, data = _trained_pruned()
    cm, _ = cluster_model(m, {"fc1": 2, "fc2": 2}, masks=masks)
    tuned, history = finetune_centroids(cm, data)
    explicit, _ = finetune_centroids(cm, data, epochs=1, lr=1e-3, momentum=0.9, batch_size=64, rng=0)
    assert len(history) == 1 and history[0]["lr"] == 1e-3
    for n in ("fc1", "fc2"):
        np.testing.assert_array_equal(tuned[n].weight.codebook, explicit[n].weight.codebook)
        assert tuned[n].weight.trainable is False          # frozen again after the loop
    other, _ = finetune_centroids(cm, data, epochs=1, batch_size=64, rng=1)   # rng: the batch order
    assert not np.array_equal(other["fc1"].weight.codebook, explicit["fc1"].weight.codebook)
    seen = []
    _, history = finetune_centroids(cm, data, epochs=2, on_epoch=seen.append)
    assert [r["epoch"] for r in seen] == [r["epoch"] for r in history] and len(seen) == 2
    same, none = finetune_centroids(cm, data, epochs=0)
    assert none == [] and all(np.array_equal(same[n].weight.codebook, cm[n].weight.codebook) for n in ("fc1", "fc2"))
    with pytest.raises(ValidationError, match="epochs"):
        finetune_centroids(cm, data, epochs=-1)


def test_fine_tuning_draws_no_progress_bars_even_on_a_terminal(monkeypatch):
    m, masks, data = _trained_pruned()
    cm, _ = cluster_model(m, {"fc1": 2}, masks=masks)
    out = TerminalStream()
    monkeypatch.setattr(sys, "stdout", out)
    finetune_centroids(cm, data, epochs=1)
    assert out.getvalue() == ""


def test_default_max_iter_is_100_lloyd_iterations_as_kmeans():
    layer = Linear(60, 50, rng=0, dtype="float64")
    layer.weight.data[...] = np.sqrt(np.arange(1.0, 3001.0)).reshape(50, 60)   # slow to converge with k = 16
    values = layer.weight.data.ravel()
    assert not kmeans(values, 4).converged               # 100 iterations do not reach the fixed point
    cm, _ = cluster_model(Sequential(("fc1", layer)), 4)
    np.testing.assert_array_equal(cm["fc1"].weight.codebook, kmeans(values, 4, max_iter=100).codebook)
