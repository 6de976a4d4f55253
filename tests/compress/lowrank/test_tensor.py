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
    with pytest.raises(ValidationError, match="tensor"):
        tt_svd(np.array([[1.0, np.nan]]), eps=0.1)
