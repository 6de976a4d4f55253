"""CP-ALS and TT-SVD against their reconstruction formulas written out element by element, and TT-SVD's bound."""

import itertools

import numpy as np
import pytest

from refcomp.compress.lowrank.tensor import (cp_als, cp_to_tensor, tt_matrix, tt_matrix_to_dense, tt_svd,
                                              tt_to_tensor)
from refcomp.errors import ShapeError, ValidationError


def _cp_oracle(weights, factors):
    """(CP.1): Σ_r λ_r a¹_r ∘ a²_r ∘ … by outer products."""
    out = 0.0
    for r, lam in enumerate(weights):
        term = np.array(lam)
        for a in factors:
            term = np.multiply.outer(term, a[:, r])
        out = out + term
    return out


def _tt_oracle(cores):
    """(TT.1): every element as the product of the matrices G_k[:, i_k, :]."""
    shape = tuple(g.shape[1] for g in cores)
    out = np.empty(shape)
    for idx in itertools.product(*map(range, shape)):
        p = np.eye(1)
        for g, i in zip(cores, idx):
            p = p @ g[:, i, :]
        out[idx] = p[0, 0]
    return out


def test_cp_reconstruction_is_the_sum_of_outer_products():
    rng = np.random.default_rng(0)
    lam, fs = rng.standard_normal(3), [rng.standard_normal((n, 3)) for n in (4, 2, 3, 2)]
    np.testing.assert_allclose(cp_to_tensor(lam, fs), _cp_oracle(lam, fs), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", [(6, 5, 4), (5, 4, 3, 3)])
def test_cp_als_recovers_a_rank_r_tensor_and_its_error_never_increases(shape):
    rng = np.random.default_rng(1)
    t = _cp_oracle(np.ones(3), [rng.standard_normal((n, 3)) for n in shape])
    weights, factors, errors = cp_als(t, 3, n_iter=500, tol=0)     # the SVD start
    assert errors[-1] < 1e-6
    np.testing.assert_allclose(_cp_oracle(weights, factors), t, atol=1e-5 * np.abs(t).max())
    assert all(b <= a + 1e-12 for a, b in zip(errors, errors[1:]))
    np.testing.assert_allclose(np.linalg.norm(factors[0], axis=0), 1.0)
    noisy = t + 0.3 * rng.standard_normal(shape)   # not of rank 2: ALS still only lowers its error
    _, _, e2 = cp_als(noisy, 2, init="random", rng=0, n_iter=50)
    assert all(b <= a + 1e-12 for a, b in zip(e2, e2[1:]))


def test_cp_als_defaults_recover_a_rank_r_tensor_in_float64():
    """The defaults (SVD start, 200 sweeps, tol 1e-10) reach a rank-3 tensor; float32 input is computed
    in float64 (the weights and factors are float64)."""
    rng = np.random.default_rng(1)
    t = _cp_oracle(np.ones(3), [rng.standard_normal((n, 3)) for n in (6, 5, 4)])
    weights, factors, errors = cp_als(t.astype(np.float32), 3)
    assert errors[-1] < 1e-6 and len(errors) < 200
    assert weights.dtype == np.float64 and all(f.dtype == np.float64 for f in factors)
    t32 = t.astype(np.float32)          # the same run as on its exact float64 widening (SVD start and norm too)
    assert cp_als(t32, 2, n_iter=5)[2] == pytest.approx(cp_als(t32.astype(np.float64), 2, n_iter=5)[2], rel=1e-12)


def test_cp_als_runs_at_most_n_iter_sweeps_by_default_200():
    """A random 5×5×5 tensor at rank 4 (not of rank 4): ALS is still improving after 200 sweeps."""
    t = np.random.default_rng(0).standard_normal((5, 5, 5))
    assert len(cp_als(t, 4)[2]) == 200
    assert len(cp_als(t, 4, n_iter=1)[2]) == 1


def test_cp_als_errors_are_relative_to_the_tensors_norm():
    """errors[-1] = ‖T − CP‖_F / ‖T‖_F of the returned weights and factors (oracle: _cp_oracle); the
    same for T scaled by 1000."""
    rng = np.random.default_rng(2)
    t = 1000 * (_cp_oracle(np.ones(2), [rng.standard_normal((n, 2)) for n in (5, 4, 3)])
                + 0.3 * rng.standard_normal((5, 4, 3)))
    weights, factors, errors = cp_als(t, 2, n_iter=20)
    assert errors[-1] == pytest.approx(np.linalg.norm(t - _cp_oracle(weights, factors)) / np.linalg.norm(t),
                                       rel=1e-9)
    assert 0.01 < errors[-1] < 1
    assert cp_als(t / 1000, 2, n_iter=20)[2] == pytest.approx(errors, rel=1e-6)


def test_cp_als_stops_at_the_first_change_below_tol():
    """The stop rule: the last two errors differ by < tol, no two before them did; tol = 0 never stops early."""
    rng = np.random.default_rng(3)
    t = _cp_oracle(np.ones(2), [rng.standard_normal((n, 2)) for n in (5, 4, 3)]) + 0.1 * rng.standard_normal((5, 4, 3))
    errors = cp_als(t, 2, tol=1e-6)[2]
    assert 2 < len(errors) < 200
    assert abs(errors[-2] - errors[-1]) < 1e-6
    assert all(abs(a - b) >= 1e-6 for a, b in zip(errors[:-2], errors[1:-1]))
    one = np.einsum("i,j,k->ijk", *(rng.standard_normal(n) for n in (4, 3, 5)))   # exact after one sweep
    assert len(cp_als(one, 1)[2]) == 2
    assert len(cp_als(one, 1, tol=0, n_iter=5)[2]) == 5


def test_cp_als_above_a_modes_size_draws_the_extra_start_columns():
    """R = 4 > 2 = n_2 = n_3: the SVD start has only 2 columns there, the rest drawn from rng (distinct
    columns: identical ones would stay identical under ALS and cap the rank); a generic rank-4
    6×2×2 tensor is still recovered."""
    rng = np.random.default_rng(0)
    t = _cp_oracle(np.ones(4), [rng.standard_normal((n, 4)) for n in (6, 2, 2)])
    weights, factors, errors = cp_als(t, 4, rng=0, n_iter=500, tol=0)
    assert errors[-1] < 1e-6
    np.testing.assert_allclose(_cp_oracle(weights, factors), t, atol=1e-5 * np.abs(t).max())


def test_cp_als_from_a_random_start_fits_and_is_reproducible():
    """init="random" starts from rng's normal draws (a zero start would stay at error 1): ALS fits a
    rank-3 tensor far below that (a random start may stall in a swamp short of 0), the same seed
    gives the same run and another seed another start."""
    rng = np.random.default_rng(1)
    t = _cp_oracle(np.ones(3), [rng.standard_normal((n, 3)) for n in (6, 5, 4)])
    errors = cp_als(t, 3, init="random", rng=0, n_iter=100, tol=0)[2]
    assert errors[-1] < 0.1
    assert cp_als(t, 3, init="random", rng=0, n_iter=100, tol=0)[2] == errors
    assert cp_als(t, 3, init="random", rng=1, n_iter=3, tol=0)[2][0] != errors[0]


def test_cp_als_of_the_zero_tensor_is_zero():
    """No column to normalise: the weights are 0, the factors finite (zeros), the error 0."""
    weights, factors, errors = cp_als(np.zeros((3, 4)), 2)
    np.testing.assert_array_equal(weights, 0.0)
    assert all(np.all(np.isfinite(f)) for f in factors) and errors[-1] == 0.0
    assert len(cp_als(np.zeros((3, 4)), 2, tol=0, n_iter=4)[2]) == 4     # 0 - 0 < 0 is false: tol 0 never stops


def test_tt_reconstruction_is_the_product_of_core_slices():
    rng = np.random.default_rng(0)
    cores = [rng.standard_normal(s) for s in ((1, 3, 2), (2, 2, 3), (3, 4, 2), (2, 2, 1))]
    np.testing.assert_allclose(tt_to_tensor(cores), _tt_oracle(cores), rtol=1e-12, atol=1e-12)


def test_tt_svd_is_exact_at_eps_zero_and_finds_the_tt_ranks():
    rng = np.random.default_rng(3)
    cores = [rng.standard_normal(s) for s in ((1, 4, 2), (2, 5, 3), (3, 4, 1))]
    t = _tt_oracle(cores)
    got, discarded = tt_svd(t, eps=1e-10)
    assert [g.shape for g in got] == [(1, 4, 2), (2, 5, 3), (3, 4, 1)]
    np.testing.assert_allclose(_tt_oracle(got), t, atol=1e-10 * np.abs(t).max())
    full, _ = tt_svd(rng.standard_normal((3, 4, 5, 2)), eps=0.0)
    assert [g.shape[2] for g in full] == [3, 10, 2, 1]          # min(12, 10): full unfolding ranks


def test_tt_svd_at_eps_zero_drops_exactly_the_zero_singular_values():
    """δ = 0 keeps every nonzero singular value and no zero one: a one-hot tensor has TT ranks 1, a random
    tensor its full unfolding ranks with nothing discarded (0.0 exactly)."""
    onehot = np.zeros((3, 3, 2))
    onehot[0, 0, 0] = 1.0
    cores, discarded = tt_svd(onehot, eps=0.0)
    assert [g.shape for g in cores] == [(1, 3, 1), (1, 3, 1), (1, 2, 1)] and discarded == [0.0, 0.0]
    cores, discarded = tt_svd(np.random.default_rng(0).standard_normal((2, 3, 4)), eps=0.0)
    assert [g.shape[2] for g in cores] == [2, 4, 1] and discarded == [0.0, 0.0]


def test_tt_svd_first_rank_is_the_fewest_within_delta():
    """Step 1 keeps the fewest singular values of the first unfolding with discarded norm <= δ =
    ε‖T‖_F/√(d − 1) (oracle: numpy's SVD; singular values 4, 3, 2, 1 put the thresholds apart)."""
    rng = np.random.default_rng(0)
    u = np.linalg.qr(rng.standard_normal((4, 4)))[0]
    v = np.linalg.qr(rng.standard_normal((30, 4)))[0]
    t = ((u * [4.0, 3.0, 2.0, 1.0]) @ v.T).reshape(4, 5, 6)
    s = np.linalg.svd(t.reshape(4, -1), compute_uv=False)
    for eps in (0.3, 0.7, 1.0):
        delta = eps * np.linalg.norm(t) / np.sqrt(2)
        want = min(i for i in range(1, 5) if np.sqrt(np.sum(s[i:] ** 2)) <= delta)
        cores, discarded = tt_svd(t, eps=eps)
        assert cores[0].shape[2] == want
        assert discarded[0] == pytest.approx(np.sqrt(np.sum(s[want:] ** 2)), abs=1e-12)
    assert [tt_svd(t, eps=e)[0][0].shape[2] for e in (0.3, 0.7, 1.0)] == [3, 2, 1]


def test_tt_svd_never_keeps_rank_zero_and_keeps_rank_one():
    """However large ε, each TT rank is >= 1 (a rank-0 core is no tensor); an outer product has ranks 1,
    exact; max_rank = 1 is allowed, and max_rank alone truncates by rank only (no ε)."""
    rng = np.random.default_rng(4)
    t = rng.standard_normal((3, 4, 5))
    assert [g.shape[2] for g in tt_svd(t, eps=10.0)[0]] == [1, 1, 1]
    one = np.einsum("i,j,k->ijk", *(rng.standard_normal(n) for n in (3, 4, 5)))
    cores, _ = tt_svd(one, eps=1e-8)
    assert [g.shape[2] for g in cores] == [1, 1, 1]
    np.testing.assert_allclose(_tt_oracle(cores), one, atol=1e-12)
    assert [g.shape[2] for g in tt_svd(t, max_rank=1)[0]] == [1, 1, 1]
    exact, discarded = tt_svd(t, max_rank=100)
    np.testing.assert_allclose(_tt_oracle(exact), t, atol=1e-12)
    assert discarded == [0.0, 0.0]


def test_tt_svd_keeps_the_tensors_float_dtype():
    t = np.random.default_rng(5).standard_normal((3, 4, 5)).astype(np.float32)
    cores, _ = tt_svd(t, eps=0.1)
    assert all(g.dtype == np.float32 for g in cores)
    np.testing.assert_allclose(_tt_oracle(cores), t, atol=0.1 * np.linalg.norm(t))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("eps", [0.05, 0.2, 0.5])
def test_tt_svd_error_is_within_eps_and_the_discarded_norms(seed, eps):
    """(TT.2): ‖T − TT‖ ≤ sqrt(Σ ‖E_k‖²) ≤ ε‖T‖ on tensors of slowly decaying spectra (each step truncates)."""
    rng = np.random.default_rng(seed)
    shape = [(6, 5, 4, 6, 5), (4, 4, 4, 4, 4, 4), (8, 7, 6, 5)][seed % 3]
    t = rng.standard_normal(shape) + 0.5 * _tt_oracle([rng.standard_normal((1 if k == 0 else 2, n,
                                                                             1 if k == len(shape) - 1 else 2))
                                                       for k, n in enumerate(shape)])
    cores, discarded = tt_svd(t, eps=eps)
    err, norm = np.linalg.norm(tt_to_tensor(cores) - t), np.linalg.norm(t)
    assert err <= np.sqrt(np.sum(np.square(discarded))) * (1 + 1e-9) + 1e-12
    assert err <= eps * norm * (1 + 1e-9)
    delta = eps * norm / np.sqrt(len(shape) - 1)
    assert max(discarded) <= delta * (1 + 1e-9)
    capped, dc = tt_svd(t, eps=eps, max_rank=2)
    assert max(g.shape[2] for g in capped) <= 2
    assert np.linalg.norm(tt_to_tensor(capped) - t) <= np.sqrt(np.sum(np.square(dc))) * (1 + 1e-9)


def test_tt_matrix_is_novikovs_formula():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((6, 8))
    cores, _ = tt_matrix(w, (2, 3), (2, 4), eps=0.0)
    assert [g.shape[1:3] for g in cores] == [(2, 2), (3, 4)]
    for i, j in itertools.product(range(6), range(8)):   # W[(i1 i2), (j1 j2)] = G1[i1, j1] G2[i2, j2]
        (i1, i2), (j1, j2) = np.unravel_index(i, (2, 3)), np.unravel_index(j, (2, 4))
        assert np.isclose((cores[0][:, i1, j1, :] @ cores[1][:, i2, j2, :])[0, 0], w[i, j], atol=1e-12)
    np.testing.assert_allclose(tt_matrix_to_dense(cores), w, atol=1e-12)
    capped, _ = tt_matrix(w, (2, 3), (2, 4), max_rank=2)
    assert capped[0].shape[3] == 2                                       # 4 uncapped
    assert [g.shape[1:3] for g in tt_matrix(w, (6, 1), (2, 4), eps=0.0)[0]] == [(6, 2), (1, 4)]   # a mode of 1
    w3 = rng.standard_normal((24, 30))
    c3, _ = tt_matrix(w3, (2, 3, 4), (5, 3, 2), eps=0.3)
    assert np.linalg.norm(tt_matrix_to_dense(c3) - w3) <= 0.3 * np.linalg.norm(w3) * (1 + 1e-9)


def test_bad_arguments():
    with pytest.raises(ValidationError, match="rank"):
        cp_als(np.ones((2, 2)), 0, rng=0)
    with pytest.raises(ValidationError, match="rng"):
        cp_als(np.ones((2, 2)), 1, init="random")
    with pytest.raises(ValidationError, match="rng"):
        cp_als(np.ones((2, 2)), 3)                      # rank above a mode's size: random columns
    with pytest.raises(ValidationError, match="init"):
        cp_als(np.ones((2, 2)), 1, init="hosvd")
    with pytest.raises(ShapeError, match="tensor"):
        cp_als(np.ones(3), 1, rng=0)
    with pytest.raises(ValidationError, match="eps/max_rank"):
        tt_svd(np.ones((2, 2)))
    with pytest.raises(ValidationError, match="eps"):
        tt_svd(np.ones((2, 2)), eps=-0.1)
    with pytest.raises(ValidationError, match="max_rank"):
        tt_svd(np.ones((2, 2)), max_rank=0)
    with pytest.raises(ShapeError, match="out_modes"):
        tt_matrix(np.ones((6, 8)), (2, 2), (2, 4), eps=0.1)
    with pytest.raises(ShapeError, match="in_modes"):
        tt_matrix(np.ones((6, 8)), (2, 3), (8,), eps=0.1)
    with pytest.raises(ShapeError, match="^in_modes: "):
        tt_matrix(np.ones((6, 8)), (2, 3), (2, 3), eps=0.1)
    with pytest.raises(ShapeError, match="^out_modes: "):
        tt_matrix(np.ones((6, 8)), (2, 2), (2, 4), eps=0.1)
    with pytest.raises(ValidationError, match="^in_modes: "):
        tt_matrix(np.ones((6, 8)), (2, 3), (-2, -4), eps=0.1)       # the product is right, the sizes are not
    with pytest.raises(ShapeError, match="^w: "):
        tt_matrix(np.ones((2, 3, 4)), (2, 1), (3, 1), eps=0.1)
    with pytest.raises(ShapeError, match="^tensor: expected a non-empty"):
        tt_svd(np.ones((0, 3)), eps=0.1)
    with pytest.raises(ShapeError, match="^tensor: expected a non-empty"):
        cp_als(np.ones((0, 3)), 1, rng=0)
    with pytest.raises(ValidationError, match="n_iter"):
        cp_als(np.ones((2, 2)), 1, n_iter=0)
    with pytest.raises(ValidationError, match="tol"):
        cp_als(np.ones((2, 2)), 1, tol=-1.0)
    with pytest.raises(ValidationError, match="tensor"):
        tt_svd(np.array([[1.0, np.nan]]), eps=0.1)
