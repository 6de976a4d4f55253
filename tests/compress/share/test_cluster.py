"""k-means weight sharing: Lloyd monotonicity, masks, initialisations, trained quantization."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp.compress.share.cluster import (
    assign,
    centroid_gradients,
    cluster_weight,
    initial_centroids,
    kmeans,
    lloyd_step,
    update_centroids,
    within_cluster_sse,
)
from refcomp.errors import ValidationError


@settings(max_examples=60)
@given(st.integers(1, 8), st.integers(1, 400), st.sampled_from(["linear", "density", "random"]),
       st.integers(0, 2**32 - 1), st.booleans())
def test_sse_never_increases(bits, n, init, seed, discrete):
    rng = np.random.default_rng(seed)
    w = rng.integers(-3, 4, size=n).astype(float) if discrete else rng.standard_t(3, size=n)
    res = kmeans(w, bits, init=init, rng=seed, max_iter=30)
    h = np.array(res.sse_history)
    # non-increasing up to float rounding of the sums
    assert np.all(h[1:] <= h[:-1] * (1 + 1e-12) + 1e-12)


@settings(max_examples=40)
@given(st.integers(1, 6), st.integers(2, 200), st.integers(0, 2**32 - 1))
def test_lloyd_step_matches_brute_force(bits, n, seed):
    rng = np.random.default_rng(seed)
    w = np.sort(rng.normal(size=n))
    c = np.sort(rng.normal(size=1 << bits))
    new, _ = lloyd_step(w, c)
    nearest = np.argmin(np.abs(w[:, None] - c[None, :]), axis=1)  # ties -> lower index, as ours
    expected = c.copy()
    for j in range(c.size):
        if (nearest == j).any():
            expected[j] = w[nearest == j].mean()
    # empty clusters move onto the weights farthest from their own centroid
    empty = [j for j in range(c.size) if not (nearest == j).any()]
    distance = np.abs(w - expected[nearest])
    far = [i for i in np.argsort(-distance, kind="stable")[: len(empty)] if distance[i] > 0]
    for j, i in zip(empty, far):
        expected[j] = w[i]
    np.testing.assert_allclose(new, np.sort(expected), rtol=1e-12, atol=1e-15)
    assert within_cluster_sse(w, new) <= within_cluster_sse(w, c) * (1 + 1e-12)


@pytest.mark.parametrize("init,dist", [("density", "normal"), ("density", "laplace"), ("linear", "uniform")])
def test_converged_result_matches_sklearn(init, dist):
    # Same start, no empty cluster on the way (sklearn relocates empty clusters,
    # refcomp keeps their centroid): both must reach the same fixed point.
    sk = pytest.importorskip("sklearn.cluster")
    rng = np.random.default_rng(0)
    w = getattr(rng, dist)(size=3000) * 0.05
    res = kmeans(w, 4, init=init, max_iter=300)
    start = initial_centroids(w, 16, init)
    km = sk.KMeans(n_clusters=16, init=start[:, None], n_init=1, max_iter=300, tol=0.0,
                   algorithm="lloyd").fit(w[:, None])
    assert res.converged
    np.testing.assert_allclose(res.codebook, np.sort(km.cluster_centers_[:, 0]), rtol=1e-9, atol=1e-12)


def test_only_kept_weights_are_clustered():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(20, 30)).astype(np.float32)
    mask = np.abs(w) > 1.0
    res = kmeans(w, 3, mask=mask)
    assert res.codebook.dtype == np.float32 and res.indices.dtype == np.uint8
    assert res.codebook.min() >= w[mask].min() and res.codebook.max() <= w[mask].max()
    assert not np.any((res.codebook > -1.0) & (res.codebook < 1.0))  # no centroid among pruned values
    assert (res.indices[~mask] == 0).all()
    shared = res.shared_weights(mask)
    assert (shared[~mask] == 0).all()
    assert np.all(np.abs(shared[mask] - w[mask]) <= np.ptp(w[mask]) / 2)


def test_initialisations():
    w = np.arange(101, dtype=float)
    np.testing.assert_allclose(initial_centroids(w, 5, "linear"), [0, 25, 50, 75, 100])
    np.testing.assert_allclose(initial_centroids(w, 2, "density"), [25, 75])
    a = initial_centroids(w, 8, "random", rng=3)
    b = initial_centroids(w, 8, "random", rng=np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert np.all(np.isin(a, w)) and len(set(a)) == 8
    with pytest.raises(ValidationError, match="rng"):
        initial_centroids(w, 8, "random")


def test_fewer_weights_than_clusters():
    res = kmeans(np.array([0.5, -1.0, 2.0]), 3)
    np.testing.assert_array_equal(res.shared_weights(), [0.5, -1.0, 2.0])


def test_assign_ties_go_to_smaller_centroid():
    np.testing.assert_array_equal(assign(np.array([0.5, 0.49, 0.51]), np.array([0.0, 1.0])), [0, 0, 1])


def test_centroid_gradient_by_finite_differences():
    # L(C) = Σ A_ij · f(W_ij) with W_ij = C[I_ij]; ∂L/∂C_k = Σ_{I_ij = k} ∂L/∂W_ij  (paper eq. 3)
    rng = np.random.default_rng(2)
    idx = rng.integers(0, 4, size=(5, 6))
    mask = rng.random((5, 6)) > 0.3
    a = rng.normal(size=(5, 6))
    c = rng.normal(size=4)

    def loss(codebook):
        w = np.where(mask, codebook[idx], 0.0)
        return np.sum(a * np.sin(w))

    grad_w = a * np.cos(c[idx])
    analytic = centroid_gradients(grad_w, idx, 4, mask=mask)
    h = 1e-6
    numeric = np.array([(loss(c + h * e) - loss(c - h * e)) / (2 * h) for e in np.eye(4)])
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)
    stepped = update_centroids(c, analytic, 0.01)
    assert loss(stepped) < loss(c)


def test_cluster_validation():
    with pytest.raises(ValidationError, match="bits"):
        kmeans(np.ones(10), 0)
    with pytest.raises(ValidationError, match="bits"):
        kmeans(np.ones(10), 9)
    with pytest.raises(ValidationError, match="init"):
        kmeans(np.ones(10), 2, init="kmeans++")
    with pytest.raises(ValidationError, match="weights"):
        kmeans(np.array([1.0, np.nan]), 2)
    with pytest.raises(ValidationError, match="weights"):
        kmeans(np.ones(4), 2, mask=np.zeros(4, dtype=bool))
    with pytest.raises(ValidationError, match="indices"):
        centroid_gradients(np.ones(3), np.array([0, 1, 4]), 4)
    with pytest.raises(ValidationError, match="lr"):
        update_centroids(np.ones(2), np.ones(2), float("nan"))


def test_cluster_weight_is_kmeans():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(16, 16)).astype(np.float32)
    c = cluster_weight(w, 4)
    assert c.codebook.size == 16 and c.bits == 4
    assert np.abs(c.to_dense() - w).max() < np.ptp(w) / 8
