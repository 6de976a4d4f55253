"""Trained quantization on a model: k-means per layer, centroid fine-tuning by summed gradients (D.16, D.17)."""

import copy

import numpy as np
import pytest

from refcomp.compress.prune import prune_model
from refcomp.compress.share.trained_quantization import cluster_model, finetune_centroids
from refcomp.errors import ValidationError
from refcomp.formats import Clustered, Dense
from refcomp.io import load_model, save_model
from refcomp.nn import CrossEntropyLoss, evaluate, train

from ..._support.helpers import blobs, mlp


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
