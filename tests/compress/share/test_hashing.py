"""HashedNets on models: the least-squares start (H.4), per-layer seeds, training through the hash."""

import numpy as np
import pytest

from refcomp.compress.share.hashing import hash_model, hash_weight
from refcomp.errors import ValidationError
from refcomp.formats import Dense, Hashed
from refcomp.io import load_model, save_model
from refcomp.nn import evaluate, train

from ..._support.helpers import blobs, convnet, mlp


def test_projection_is_the_least_squares_fit():
    w = np.random.default_rng(0).standard_normal((20, 30))
    h = hash_weight(w, 50, seed=4)
    # oracle: the linear least-squares problem V(w) = A w with A_pk = ξ(p)·1(h(p) = k), solved by lstsq
    a = np.zeros((w.size, 50))
    a[np.arange(w.size), h.buckets] = h.signs
    best = np.linalg.lstsq(a, w.ravel(), rcond=None)[0]
    np.testing.assert_allclose(h.data, best, rtol=1e-10, atol=1e-12)
    assert np.sum((h.to_dense() - w) ** 2) <= np.sum((hash_weight(w, 50, seed=4, init="random",
                                                                   rng=0).to_dense() - w) ** 2)


def test_hash_model_compresses_every_layer_with_its_own_seed():
    m = mlp()
    hm, report = hash_model(m, 0.25, seed=10)
    for i, name in enumerate(("fc1", "fc2", "fc3")):
        h = hm[name].weight
        assert isinstance(h, Hashed) and h.seed == 10 + i and report[name]["seed"] == 10 + i
        assert h.n_buckets == round(0.25 * m[name].weight.data.size) == report[name]["buckets"]
        assert isinstance(m[name].weight, Dense)  # the input model is untouched
    hc, rc = hash_model(convnet(), {"conv2": 20}, seed=0)
    assert isinstance(hc["conv2"].weight, Hashed) and hc["conv2"].weight.shape == (5, 6, 3, 3)
    assert isinstance(hc["conv1"].weight, Dense) and rc["conv2"]["virtual"] == 270


def test_a_hashed_model_trains_saves_and_loads(tmp_path):
    x, y = blobs(n=300)
    hm, _ = hash_model(mlp(), 0.25, seed=1, init="random", rng=0)
    before = evaluate(hm, (x, y))["loss"]
    train(hm, (x, y), epochs=10, batch_size=30, progress=False, rng=0)
    assert evaluate(hm, (x, y))["loss"] < 0.5 * before
    back = load_model(save_model(hm, tmp_path / "hashed.npz"))
    assert back.forward(x).tobytes() == hm.eval().forward(x).tobytes()


def test_bad_arguments():
    m = mlp()
    with pytest.raises(ValidationError, match="compression"):
        hash_model(m, 0.0, seed=0)
    with pytest.raises(ValidationError, match="compression"):
        hash_model(m, 1.5, seed=0)
    with pytest.raises(ValidationError, match="seed"):
        hash_model(m, 0.5, seed=-1)
    with pytest.raises(ValidationError, match="compression"):
        hash_model(m, {"fc1": 0}, seed=0)
    with pytest.raises(ValidationError, match="layers"):
        hash_model(m, {"nope": 3}, seed=0)
    with pytest.raises(ValidationError, match="rng"):
        hash_weight(np.ones((3, 3)), 2, seed=0, init="random")
    with pytest.raises(ValidationError, match="init"):
        hash_weight(np.ones((3, 3)), 2, seed=0, init="xavier")
    with pytest.raises(ValidationError, match="n_buckets"):
        hash_weight(np.ones((3, 3)), 10, seed=0)


# the starts (H.4) bucket by bucket, the random start's law, the report, and where each argument is checked
def test_projection_bucket_by_bucket_with_empty_and_single_buckets():
    w = np.random.default_rng(1).standard_normal((6, 5))
    for k in (1, 20, 30):            # one bucket; many buckets, some empty or holding one weight
        h = hash_weight(w, k, seed=3)
        expected = np.zeros(k)
        for b in range(k):           # (H.4): the mean of ξ(p)·W_p over the bucket, 0 when it is empty
            hit = h.buckets == b
            expected[b] = np.mean(h.signs[hit] * w.ravel()[hit]) if hit.any() else 0.0
        np.testing.assert_allclose(h.data, expected, rtol=1e-12, atol=0)
        counts = np.bincount(h.buckets, minlength=k)
        if k == 30:
            assert counts[-1] == 0 and (counts == 0).any() and (counts == 1).any()   # the cases are reached


def test_random_start_is_uniform_on_plus_minus_sqrt3_std():
    w = np.random.default_rng(2).standard_normal((10, 10)) * 0.3
    h = hash_weight(w, 40, seed=0, init="random", rng=5)
    a = np.sqrt(3.0) * np.std(w)
    np.testing.assert_allclose(h.data, np.random.default_rng(5).uniform(-a, a, 40), rtol=1e-12)


def test_hash_model_report_and_random_init_per_layer():
    m = mlp(dtype="float64")
    hm, report = hash_model(m, 0.25, seed=10, init="random", rng=0)
    g = np.random.default_rng(0)
    for i, name in enumerate(("fc1", "fc2", "fc3")):
        w = m[name].weight.data
        h = hash_weight(w, round(0.25 * w.size), seed=10 + i, init="random", rng=g)
        np.testing.assert_array_equal(hm[name].weight.data, h.data)
        rmse = np.sqrt(np.mean((h.to_dense() - w) ** 2))
        assert report[name] == {"buckets": h.n_buckets, "virtual": w.size, "seed": 10 + i, "bytes": h.nbytes,
                                "dense_bytes": w.nbytes, "fit_rmse": pytest.approx(rmse, rel=1e-12)}


def test_tiny_compression_keeps_one_real_weight_and_a_mapping_may_ask_for_one():
    m = mlp()
    _, report = hash_model(m, 1e-6, seed=0)
    assert [r["buckets"] for r in report.values()] == [1, 1, 1]
    hm, _ = hash_model(m, {"fc1": 1, "fc3": 24}, seed=0)
    assert hm["fc1"].weight.n_buckets == 1 and hm["fc3"].weight.n_buckets == 24


def test_each_argument_is_checked_by_its_own_name():
    m = mlp()
    with pytest.raises(ValidationError, match="n_buckets"):
        hash_weight(np.ones((3, 3)), 0, seed=0)
    with pytest.raises(ValidationError, match="compression"):
        hash_model(m, 1.001, seed=0)            # rounds to n buckets, but c > 1 is no compression
    with pytest.raises(ValidationError, match="compression"):
        hash_model(m, {"fc1": 193}, seed=0)     # more buckets than the layer's 192 weights
    with pytest.raises(ValidationError, match="seed"):
        hash_model(m, {"nope": 3}, seed=-1)     # the seed is checked first
    with pytest.raises(ValidationError, match="compression"):
        hash_model(m, {"fc1": 3, "fc2": 3}, seed=0, layers=["fc1"])   # layers and mapping disagree
