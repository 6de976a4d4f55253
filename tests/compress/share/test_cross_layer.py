"""One codebook for several layers: k-means over the union (X.1), centroid gradients summed over layers (X.2)."""

import copy

import numpy as np
import pytest

from refcomp.compress.quantize.weight_only import model_bytes
from refcomp.compress.share.cluster import kmeans
from refcomp.compress.share.cross_layer import cluster_shared, codebook_groups, shared_model_bytes
from refcomp.compress.share.trained_quantization import finetune_centroids
from refcomp.errors import ValidationError
from refcomp.formats import Clustered, Dense
from refcomp.nn import CrossEntropyLoss, Linear, Sequential, evaluate, train

from ..._support.helpers import blobs, mlp


def _trained():
    x, y = blobs(n=300)
    m = mlp(dtype="float64")
    train(m, (x.astype(np.float64), y), epochs=5, batch_size=30, progress=False)
    return m, (x.astype(np.float64), y)


def test_the_group_holds_one_codebook_that_is_a_lloyd_fixed_point_of_the_union():
    m, _ = _trained()
    sm, report = cluster_shared(m, [["fc1", "fc2"]], 3)
    c1, c2 = sm["fc1"].weight, sm["fc2"].weight
    assert isinstance(c1, Clustered) and c1.codebook is c2.codebook and c1.codebook.size == 8
    assert isinstance(sm["fc3"].weight, Dense) and codebook_groups(sm) == [["fc1", "fc2"]]
    union = np.concatenate([m["fc1"].weight.data.ravel(), m["fc2"].weight.data.ravel()])
    nearest = np.argmin(np.abs(union[:, None] - c1.codebook[None, :]), axis=1)   # brute force assignment
    for k in range(8):  # each centroid is the mean of the union's weights nearest to it
        assert np.isclose(c1.codebook[k], union[nearest == k].mean(), rtol=0, atol=1e-12)
    for name in ("fc1", "fc2"):  # every weight decodes to its nearest centroid
        w = m[name].weight.data
        best = c1.codebook[np.argmin(np.abs(w[..., None] - c1.codebook), axis=-1)]
        np.testing.assert_array_equal(sm[name].weight.to_dense(), best)
    assert np.isclose(report["groups"][0]["sse"], np.sum((c1.codebook[nearest] - union) ** 2))
    np.testing.assert_array_equal(sm["fc1"].weight.indices.shape, (16, 12))


def test_one_finetune_step_sums_the_centroid_gradient_over_every_layer_of_the_group():
    m, (x, y) = _trained()
    sm, _ = cluster_shared(m, [["fc1", "fc2", "fc3"]], 2)
    ref = copy.deepcopy(sm)  # dense twin: the shared values as plain weights
    for name in ("fc1", "fc2", "fc3"):
        ref[name].weight = Dense(sm[name].weight.to_dense())
    loss = CrossEntropyLoss()
    ref.train()
    loss.forward(ref.forward(x), y)
    ref.backward(loss.backward())
    sums = np.zeros(4)
    for name in ("fc1", "fc2", "fc3"):     # (X.2) by hand
        g, idx = ref[name].weight.grad, sm[name].weight.indices
        sums += np.array([g[idx == k].sum() for k in range(4)])
    lr = 0.01
    expected = sm["fc1"].weight.codebook - lr * sums
    tuned, _ = finetune_centroids(sm, (x, y), epochs=1, lr=lr, momentum=0.0, batch_size=len(y), rng=0)
    assert tuned["fc1"].weight.codebook is tuned["fc3"].weight.codebook      # still one array after the copy
    np.testing.assert_allclose(tuned["fc2"].weight.codebook, expected, rtol=1e-10, atol=1e-12)


def test_finetuning_lowers_the_loss_and_bytes_count_the_codebook_once():
    m, data = _trained()
    sm, report = cluster_shared(m, [["fc1", "fc2"], ["fc3"]], 1)
    before = evaluate(sm, data)["loss"]
    tuned, _ = finetune_centroids(sm, data, epochs=3, lr=1e-3, batch_size=30)
    assert evaluate(tuned, data)["loss"] < before
    assert len(report["groups"]) == 2 and codebook_groups(tuned) == [["fc1", "fc2"], ["fc3"]]
    assert shared_model_bytes(sm) == model_bytes(sm) - sm["fc2"].weight.codebook.nbytes


def test_bad_groups_and_bits():
    m, _ = _trained()
    for groups in (["fc1"], [["fc1", "fc2"], ["fc2"]], [[]], "fc1"):
        with pytest.raises(ValidationError, match="groups"):
            cluster_shared(m, groups, 2)
    with pytest.raises(ValidationError, match="layers"):
        cluster_shared(m, [["fc1", "nope"]], 2)
    with pytest.raises(ValidationError, match="bits"):
        cluster_shared(m, [["fc1"]], 9)
    with pytest.raises(ValidationError, match="masks"):
        cluster_shared(m, [["fc1"]], 2, masks={"fc1": np.zeros((16, 12), bool)})


def test_pruned_weights_stay_zero_and_are_not_clustered():
    m, _ = _trained()
    masks = {n: np.abs(m[n].weight.data) > np.median(np.abs(m[n].weight.data)) for n in ("fc1", "fc2")}
    sm, report = cluster_shared(m, [["fc1", "fc2"]], 2, masks=masks)
    kept = np.concatenate([m[n].weight.data[masks[n]] for n in ("fc1", "fc2")])
    c = sm["fc1"].weight.codebook
    nearest = np.argmin(np.abs(kept[:, None] - c[None, :]), axis=1)
    for k in range(4):  # the centroids are means of kept weights only
        assert np.isclose(c[k], kept[nearest == k].mean(), atol=1e-12)
    for n in ("fc1", "fc2"):
        assert (sm[n].weight.to_dense()[~masks[n]] == 0).all() and sm[n].weight.mask is not None
    assert report["groups"][0]["kept"] == int(sum(mk.sum() for mk in masks.values()))
    assert cluster_shared(m, [["fc1"]], 2)[0]["fc1"].weight.mask is None   # unpruned: no mask bits stored


# the report, the k-means options, the default mask and the byte count, each against its definition
def test_the_report_states_each_group_in_full():
    m, _ = _trained()
    sm, report = cluster_shared(m, [["fc1", "fc2"]], 3)
    g = report["groups"][0]
    c = sm["fc1"].weight.codebook
    assert set(g) == {"layers", "bits", "kept", "sse", "codebook_bytes"}
    assert (g["layers"], g["bits"], g["kept"], g["codebook_bytes"]) == (["fc1", "fc2"], 3, 16 * 12 + 8 * 16, 8 * 8)
    assert g["codebook_bytes"] == c.nbytes and sm["fc1"].weight.bits == 3


def test_init_rng_and_max_iter_reach_the_k_means_of_the_union():
    m, _ = _trained()
    union = np.concatenate([m["fc1"].weight.data.ravel(), m["fc2"].weight.data.ravel()])
    for kw in (dict(init="density"), dict(init="random", rng=3), dict(max_iter=1), dict(max_iter=0)):
        sm, _ = cluster_shared(m, [["fc1", "fc2"]], 3, **kw)
        np.testing.assert_array_equal(sm["fc2"].weight.codebook, kmeans(union, 3, **kw).codebook)
    a = cluster_shared(m, [["fc1"]], 2, init="random", rng=7)[0]["fc1"].weight.codebook
    b = cluster_shared(m, [["fc1"]], 2, init="random", rng=7)[0]["fc1"].weight.codebook
    np.testing.assert_array_equal(a, b)      # a seed makes the random start reproducible


def test_without_masks_the_zero_weights_count_as_pruned():
    m, _ = _trained()
    w = m["fc1"].weight.data
    w[:, :4] = 0.0                 # a pruned Dense weight, no mask given
    w[0, 5] = 1.0                  # a kept weight that happens to be one
    sm, report = cluster_shared(m, [["fc1"]], 2)
    assert (sm["fc1"].weight.to_dense()[:, :4] == 0).all() and sm["fc1"].weight.mask is not None
    assert report["groups"][0]["kept"] == w.size - 16 * 4
    np.testing.assert_array_equal(sm["fc1"].weight.codebook, kmeans(w[w != 0], 2).codebook)


def test_shared_model_bytes_counts_dense_weights_and_parameters_as_stored():
    m, _ = _trained()
    for group in (["fc1", "fc2"], ["fc2", "fc3"]):   # the Dense layer last, then first
        sm, _ = cluster_shared(m, [group], 2)
        assert shared_model_bytes(sm) == model_bytes(sm) - sm[group[0]].weight.codebook.nbytes
    assert shared_model_bytes(m) == model_bytes(m)


def test_bits_is_checked_before_the_groups_and_layers():
    m, _ = _trained()
    for bits in (0, -1, 9, 10):
        with pytest.raises(ValidationError, match="bits"):
            cluster_shared(m, [["fc1", "nope"]], bits)


def test_default_max_iter_is_100_lloyd_iterations_as_kmeans():
    layer = Linear(60, 50, rng=0, dtype="float64")
    layer.weight.data[...] = np.sqrt(np.arange(1.0, 3001.0)).reshape(50, 60)   # slow to converge with k = 16
    m = Sequential(("fc1", layer))
    values = layer.weight.data.ravel()
    assert not kmeans(values, 4).converged               # 100 iterations do not reach the fixed point
    sm, _ = cluster_shared(m, [["fc1"]], 4)
    np.testing.assert_array_equal(sm["fc1"].weight.codebook, kmeans(values, 4, max_iter=100).codebook)
