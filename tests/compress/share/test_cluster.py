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
from refcomp.errors import ShapeError, ValidationError


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


# --- initial centroids (D.14): the default, the dtype, the small k, the random padding

def test_initial_centroids_default_is_linear():
    w = np.array([3.0, -1.0, 0.0, 7.0])
    np.testing.assert_array_equal(initial_centroids(w, 5), np.linspace(-1.0, 7.0, 5))


@pytest.mark.parametrize("dtype", [np.int64, np.float32])
@pytest.mark.parametrize("init", ["linear", "density", "random"])
def test_initial_centroids_are_float64(init, dtype):
    w = np.array([5, 1, 9, 3, 7, 2]).astype(dtype)
    c = initial_centroids(w, 4, init, rng=0)
    assert c.dtype == np.float64
    assert np.all(np.diff(c) >= 0)


def test_initial_centroids_one_and_two_clusters():
    w = np.array([4.0, -2.0, 1.0, 3.0])
    # one centroid: the middle of the range, not its lower end (linspace(lo, hi, 1) == [lo])
    np.testing.assert_array_equal(initial_centroids(w, 1, "linear"), [1.0])
    np.testing.assert_array_equal(initial_centroids(w, 2, "linear"), [-2.0, 4.0])


def test_random_init_with_fewer_weights_than_clusters_gives_k_centroids():
    w = np.array([0.5, -1.0, 2.0])
    c = initial_centroids(w, 8, "random", rng=1)
    assert c.shape == (8,) and np.all(np.diff(c) >= 0)
    assert set(c) == set(w)  # every weight, the extra centroids on weights too


# --- Lloyd iterations: ties, the iteration count, the convergence flag, the history

def test_weight_on_a_boundary_goes_to_the_lower_centroid_in_lloyd():
    # linear start [0, 2]: 1 lies on the midpoint, joins 0 (argmin's tie rule, as assign):
    # means [0.5, 2], then the boundary 1.25 keeps the same assignment -> converged.
    w = np.array([0.0, 1.0, 2.0])
    res = kmeans(w, 1)
    np.testing.assert_array_equal(res.codebook, [np.mean([0.0, 1.0]), 2.0])
    np.testing.assert_array_equal(res.indices, [0, 0, 1])
    # SSE (D.13) of the start [0, 2] and of [0.5, 2], written out
    assert res.sse_history == [0.0 + 1.0 + 0.0, 0.25 + 0.25 + 0.0]
    assert res.n_iter == 1 and res.converged is True and res.bits == 1


def test_relocation_ties_go_to_the_smaller_weight():
    # all of -5…5 in the cluster of 0 (mean 0), three empty clusters: they move onto the three
    # farthest weights, -5 and 5, then -4 before 4 (equal distance: the smaller weight first), so the
    # result does not depend on how a sort orders ties
    w = np.arange(-5.0, 6.0)
    new, _ = lloyd_step(w, np.array([0.0, 100.0, 200.0, 300.0]))
    np.testing.assert_array_equal(new, [-5.0, -4.0, 0.0, 5.0])


def _exponential_quantiles(n=2000):
    # a smooth skewed layer whose 16-means need ~170 Lloyd iterations from the linear start
    return -np.log1p(-(np.arange(n) + 0.5) / n)


def test_kmeans_runs_at_most_100_iterations_by_default():
    w = _exponential_quantiles()
    res = kmeans(w, 4)
    assert res.n_iter == 100 and res.converged is False
    assert len(res.sse_history) == 101
    more = kmeans(w, 4, max_iter=101)
    assert more.n_iter == 101 and not np.array_equal(more.codebook, res.codebook)
    assert kmeans(w, 4, max_iter=1000).converged is True


@pytest.mark.parametrize("max_iter", [0, 1, 2, 5])
def test_kmeans_n_iter_counts_lloyd_steps(max_iter):
    w = _exponential_quantiles()
    res = kmeans(w, 4, max_iter=max_iter)
    c = initial_centroids(w, 16, "linear")
    history = [within_cluster_sse(w, c)]
    for _ in range(max_iter):
        c, _ = lloyd_step(w, c)
        history.append(within_cluster_sse(w, c))
    np.testing.assert_array_equal(res.codebook, c)
    assert res.n_iter == max_iter and res.converged is False and res.bits == 4
    np.testing.assert_array_equal(res.sse_history, history)
    assert np.all(np.diff(res.sse_history) <= 0)


def test_kmeans_max_iter_zero_keeps_the_initial_centroids_and_negative_is_refused():
    w = np.array([0.0, 1.0, 2.0, 10.0])
    res = kmeans(w, 1, max_iter=0)
    np.testing.assert_array_equal(res.codebook, [0.0, 10.0])
    assert res.n_iter == 0 and res.converged is False and len(res.sse_history) == 1
    with pytest.raises(ValidationError, match="max_iter"):
        kmeans(w, 1, max_iter=-1)


# --- assign: the codebook it accepts, the index dtype

def test_assign_refuses_an_empty_or_unsorted_codebook():
    with pytest.raises(ShapeError, match="codebook"):
        assign(np.ones(3), np.array([]))
    with pytest.raises(ValidationError, match="codebook"):
        assign(np.ones(3), np.array([1.0, 0.0, 2.0]))


@pytest.mark.parametrize("k,dtype", [(2, np.uint8), (255, np.uint8), (256, np.uint8), (257, np.uint16),
                                     (300, np.uint16)])
def test_assign_index_dtype_holds_every_centroid(k, dtype):
    codebook = np.arange(k, dtype=float)
    idx = assign(codebook[::-1], codebook)
    assert idx.dtype == dtype
    np.testing.assert_array_equal(idx, np.arange(k)[::-1])


# --- cluster_weight passes every argument on to kmeans and keeps mask and bits

def test_cluster_weight_honours_the_mask():
    rng = np.random.default_rng(4)
    w = rng.normal(size=(12, 10))
    mask = np.abs(w) > 0.8
    c = cluster_weight(w, 2, mask=mask)
    np.testing.assert_array_equal(c.codebook, kmeans(w[mask], 2).codebook)  # fitted on kept weights only
    np.testing.assert_array_equal(c.mask, mask)
    dense = c.to_dense()
    assert (dense[~mask] == 0).all()
    np.testing.assert_array_equal(dense[mask], c.codebook[assign(w[mask], c.codebook)])
    assert c.bits == 2


@pytest.mark.parametrize("init", ["density", "random"])
def test_cluster_weight_passes_init_rng_and_max_iter(init):
    w = _exponential_quantiles(200).reshape(20, 10)
    start = initial_centroids(w, 8, init, rng=7)
    assert not np.array_equal(start, initial_centroids(w, 8, "linear"))
    np.testing.assert_array_equal(cluster_weight(w, 3, init=init, rng=7, max_iter=0).codebook, start)
    a = cluster_weight(w, 3, init=init, rng=7, max_iter=3)
    np.testing.assert_array_equal(a.codebook, kmeans(w, 3, init=init, rng=7, max_iter=3).codebook)


def test_cluster_weight_runs_at_most_100_iterations_by_default():
    w = _exponential_quantiles()
    np.testing.assert_array_equal(cluster_weight(w, 4).codebook, kmeans(w, 4, max_iter=100).codebook)
    assert not np.array_equal(cluster_weight(w, 4).codebook, kmeans(w, 4, max_iter=101).codebook)


# --- trained quantization (D.16, D.17): every cluster gets a gradient, the SGD step written out

def test_centroid_gradients_one_entry_per_cluster():
    grad = np.array([[1.0, 2.0], [3.0, 4.0]])
    # a single cluster: the sum of all gradients
    np.testing.assert_array_equal(centroid_gradients(grad, np.zeros((2, 2), int), 1), [10.0])
    # the last two clusters are empty: still one (zero) entry each
    np.testing.assert_array_equal(centroid_gradients(grad, np.array([[0, 1], [1, 0]]), 4), [5.0, 5.0, 0.0, 0.0])
    with pytest.raises(ValidationError, match="n_clusters"):
        centroid_gradients(grad, np.zeros((2, 2), int), 0)


def test_update_centroids_is_one_sgd_step():
    c = np.array([-1.0, 0.5, 2.0])
    g = np.array([4.0, -2.0, 0.25])
    np.testing.assert_array_equal(update_centroids(c, g, 0.5), [-1.0 - 0.5 * 4.0, 0.5 + 0.5 * 2.0, 2.0 - 0.5 * 0.25])
    np.testing.assert_array_equal(update_centroids(c, g, 0.0), c)  # lr = 0: no step
    c32 = c.astype(np.float32)
    out = update_centroids(c32, g, 0.1)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, (c32 - 0.1 * g).astype(np.float32))
    with pytest.raises(ValidationError, match="lr"):
        update_centroids(c, g, -0.1)
    with pytest.raises(ShapeError, match="codebook"):
        update_centroids(np.array([]), np.array([]), 0.1)
