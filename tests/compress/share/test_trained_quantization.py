"""Trained quantization on a model: k-means per layer, centroid fine-tuning by summed gradients (D.16, D.17)."""

import copy

import numpy as np
import pytest

from refcomp.compress.prune import prune_model
from refcomp.compress.share.trained_quantization import cluster_model, finetune_centroids
from refcomp.errors import ValidationError
from refcomp.nn import CrossEntropyLoss, evaluate, train

from ..._support.helpers import blobs, mlp


def _trained_pruned():
    x, y = blobs(n=300)
    m = mlp()
    train(m, (x, y), epochs=5, batch_size=30, progress=False)
    masks = prune_model(m, {"fc1": 0.6, "fc2": 0.5})
    return m, masks, (x, y)


def test_cluster_model_shares_weights_and_keeps_pruned_zero():
    m, masks, _ = _trained_pruned()
    cl = cluster_model(m, {"fc1": 3, "fc2": 2}, masks=masks)
    for name, bits in (("fc1", 3), ("fc2", 2)):
        w = m[name].weight.data
        assert (w[~masks[name]] == 0).all()
        assert set(np.unique(w[masks[name]])) <= set(cl[name].codebook.tolist())
        assert cl[name].codebook.size == 2 ** bits


def test_one_finetune_step_is_the_summed_gradient_update():
    m, masks, (x, y) = _trained_pruned()
    cl = cluster_model(m, {"fc1": 3, "fc2": 3}, masks=masks)
    ref = copy.deepcopy(m)
    loss = CrossEntropyLoss()
    ref.train()
    ref.zero_grad()  # train() leaves the last batch's gradient behind
    loss.forward(ref.forward(x), y)
    ref.backward(loss.backward())
    lr = 0.01
    expected = {}
    for name in ("fc1", "fc2"):
        g = ref[name].weight.grad
        idx, mk = cl[name].indices, masks[name]
        sums = np.array([g[(idx == k) & mk].sum() for k in range(8)])   # D.16 by hand
        expected[name] = cl[name].codebook - lr * sums                    # D.17, first step, no momentum yet
    finetune_centroids(m, cl, (x, y), epochs=1, lr=lr, momentum=0.0, batch_size=len(y), rng=0)
    for name in ("fc1", "fc2"):
        np.testing.assert_allclose(cl[name].codebook, expected[name], rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(m[name].weight.data, cl[name].to_dense())
    # fc3 (not clustered) and the biases trained by plain SGD: the bias moved
    assert not np.array_equal(m["fc3"].bias.data, ref["fc3"].bias.data)


def test_finetuning_lowers_the_loss_and_keeps_the_structure():
    m, masks, data = _trained_pruned()
    cl = cluster_model(m, {"fc1": 1, "fc2": 1}, masks=masks)   # 2 centroids: clustering hurts, training helps
    before = evaluate(m, data)["loss"]
    idx = {n: c.indices.copy() for n, c in cl.items()}
    finetune_centroids(m, cl, data, epochs=3, lr=1e-3, batch_size=30)
    assert evaluate(m, data)["loss"] < before
    for n, c in cl.items():
        np.testing.assert_array_equal(c.indices, idx[n])
        assert (m[n].weight.data[~masks[n]] == 0).all()


@pytest.mark.parametrize("bits", [0, 9, -1, 2.5])
def test_bits_outside_1_to_8(bits):
    m, masks, _ = _trained_pruned()
    with pytest.raises(ValidationError, match=r"bits\['fc1'\]: expected an integer"):
        cluster_model(m, {"fc1": bits}, masks=masks)
