"""Truncated SVD (Eckart–Young), rank rules, the LowRank format, conv SVD and Tucker-2."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp.compress.lowrank.factorize import (
    choose_rank,
    conv_svd,
    svd_truncation_error,
    truncated_svd,
    tucker2,
    tucker2_to_dense,
)
from refcomp.errors import ShapeError, ValidationError

from ..conv_reference import conv2d

seeds = st.integers(0, 2**32 - 1)
dims = st.integers(1, 40)


@settings(max_examples=40)
@given(dims, dims, st.sampled_from([np.float32, np.float64]), seeds)
def test_full_rank_svd_is_exact(out, n_in, dtype, seed):
    w = np.random.default_rng(seed).standard_normal((out, n_in)).astype(dtype)
    left, right = truncated_svd(w, rank=min(out, n_in))
    assert left.dtype == dtype and right.dtype == dtype
    tol = 1e-5 if dtype == np.float32 else 1e-12  # the tolerance stated in truncated_svd's docstring
    assert np.linalg.norm(left.astype(np.float64) @ right - w) <= tol * np.linalg.norm(w)


@settings(max_examples=40)
@given(dims, dims, seeds, st.data())
def test_truncation_error_is_the_discarded_energy_and_optimal(out, n_in, seed, data):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((out, n_in))
    r = data.draw(st.integers(1, min(out, n_in)))
    left, right = truncated_svd(w, rank=r)
    sigma = np.linalg.svd(w, compute_uv=False)
    err = np.linalg.norm(w - left @ right)
    np.testing.assert_allclose(err, svd_truncation_error(sigma, r), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(err, np.sqrt(np.sum(sigma[r:] ** 2)), rtol=1e-9, atol=1e-12)
    # Eckart–Young: no other rank-r matrix is closer (neither a nearby one nor a random one)
    for eps in (1e-3, 1.0):
        near = (left + eps * rng.standard_normal(left.shape)) @ (right + eps * rng.standard_normal(right.shape))
        assert err <= np.linalg.norm(w - near) + 1e-12


def test_rank_rules():
    sigma = np.array([4.0, 2.0, 1.0, 1.0])  # energies 16, 4, 1, 1 of total 22
    assert choose_rank(sigma, (4, 6), energy=16 / 22) == 1
    assert choose_rank(sigma, (4, 6), energy=0.75) == 2
    assert choose_rank(sigma, (4, 6), energy=21 / 22) == 3
    assert choose_rank(sigma, (4, 6), energy=1.0) == 4
    assert choose_rank(sigma, (4, 6), max_params=29) == 2  # 2·(4 + 6) = 20 <= 29 < 30
    assert choose_rank(sigma, (4, 6), max_params=10**6) == 4
    assert choose_rank(sigma, (4, 6), rank=3) == 3
    with pytest.raises(ValidationError, match="exactly one"):
        choose_rank(sigma, (4, 6), rank=2, energy=0.5)
    with pytest.raises(ValidationError, match="exactly one"):
        choose_rank(sigma, (4, 6))
    with pytest.raises(ValidationError, match="rank"):
        choose_rank(sigma, (4, 6), rank=5)
    with pytest.raises(ValidationError, match="max_params"):
        choose_rank(sigma, (4, 6), max_params=9)
    with pytest.raises(ValidationError, match="energy"):
        choose_rank(sigma, (4, 6), energy=0.0)


def test_energy_rule_keeps_the_requested_fraction():
    w = np.random.default_rng(0).standard_normal((30, 20)) @ np.diag(np.linspace(3, 0.1, 20))
    sigma = np.linalg.svd(w, compute_uv=False)
    for e in (0.5, 0.9, 0.99):
        r = choose_rank(sigma, w.shape, energy=e)
        kept = np.sum(sigma[:r] ** 2) / np.sum(sigma**2)
        assert kept >= e and (r == 1 or np.sum(sigma[:r - 1] ** 2) / np.sum(sigma**2) < e)


@pytest.mark.parametrize("rank", [None, 4])
def test_conv_svd_is_two_convolutions(rank):
    rng = np.random.default_rng(4)
    w = rng.standard_normal((6, 3, 3, 3))
    first, second = conv_svd(w, rank=rank or 6)
    r = rank or 6
    assert first.shape == (r, 3, 3, 3) and second.shape == (6, r, 1, 1)
    x = rng.standard_normal((2, 3, 8, 8))
    y_fact = conv2d(conv2d(x, first), second)
    w_r = np.einsum("or,rikl->oikl", second[:, :, 0, 0], first)
    np.testing.assert_allclose(y_fact, conv2d(x, w_r), rtol=1e-10, atol=1e-10)
    if rank is None:  # full rank (6 = min(6, 27)): the original conv
        np.testing.assert_allclose(y_fact, conv2d(x, w), rtol=1e-9, atol=1e-9)


@settings(max_examples=25)
@given(st.integers(1, 8), st.integers(1, 8), st.sampled_from([1, 2, 3]), seeds, st.data())
def test_tucker2_full_rank_exact_and_hosvd_error_bound(out, n_in, k, seed, data):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((out, n_in, k, k))
    full = (min(out, n_in * k * k), min(n_in, out * k * k))
    first, core, last = tucker2(w, full)
    np.testing.assert_allclose(tucker2_to_dense(first, core, last), w, atol=1e-10)
    r_out = data.draw(st.integers(1, full[0]))
    r_in = data.draw(st.integers(1, full[1]))
    first, core, last = tucker2(w, (r_out, r_in))
    assert first.shape == (r_in, n_in, 1, 1) and core.shape == (r_out, r_in, k, k) and last.shape == (out, r_out, 1, 1)
    # orthonormal factors
    np.testing.assert_allclose(first[:, :, 0, 0] @ first[:, :, 0, 0].T, np.eye(r_in), atol=1e-10)
    np.testing.assert_allclose(last[:, :, 0, 0].T @ last[:, :, 0, 0], np.eye(r_out), atol=1e-10)
    # HOSVD bound (De Lathauwer et al. 2000): ||W − Ŵ||² <= Σ over modes of the discarded σ²
    s0 = np.linalg.svd(w.reshape(out, -1), compute_uv=False)
    s1 = np.linalg.svd(w.transpose(1, 0, 2, 3).reshape(n_in, -1), compute_uv=False)
    err2 = np.sum((w - tucker2_to_dense(first, core, last)) ** 2)
    assert err2 <= np.sum(s0[r_out:] ** 2) + np.sum(s1[r_in:] ** 2) + 1e-9


def test_tucker2_runs_as_three_convolutions():
    rng = np.random.default_rng(5)
    w = rng.standard_normal((8, 6, 3, 3))
    first, core, last = tucker2(w, (5, 4))
    x = rng.standard_normal((2, 6, 7, 7))
    y = conv2d(conv2d(conv2d(x, first), core), last)
    np.testing.assert_allclose(y, conv2d(x, tucker2_to_dense(first, core, last)), rtol=1e-10, atol=1e-10)
    f_e, c_e, l_e = tucker2(w, energy=0.999)
    assert c_e.shape[2:] == (3, 3)
    with pytest.raises(ValidationError, match="ranks"):
        tucker2(w, (9, 4))
    with pytest.raises(ValidationError, match="ranks/energy"):
        tucker2(w)


# ---------------------------------------------------------------- whitened SVD, eqs. (11)-(12)

def _outlier_inputs(rng, n, n_in):
    """Correlated inputs with per-feature scales spread over ~e^±2: where the plain SVD aims wrong."""
    mix = rng.normal(size=(n_in, n_in)) / np.sqrt(n_in) + np.eye(n_in)
    return rng.normal(size=(n, n_in)) @ mix * np.exp(rng.normal(size=n_in))


def _reduced_rank_regression_error(x, w, r):
    """Oracle sharing no code with the whitened SVD: Y = X Wᵀ lies in X's column space, so its best
    rank-r approximation Y V_r V_rᵀ (Eckart-Young on Y) is X (V_r V_rᵀ W)ᵀ, the best M; its squared
    error is the tail Σ_{i>r} σ_i(Y)²."""
    s = np.linalg.svd(x @ w.T, compute_uv=False)
    return float(np.sum(s[r:] ** 2))


@pytest.mark.parametrize("seed, r", [(0, 1), (1, 3), (2, 5)])
def test_whitened_svd_is_the_best_rank_r_for_the_output(seed, r):
    rng = np.random.default_rng(seed)
    x = _outlier_inputs(rng, 300, 9)
    w = rng.normal(size=(7, 9))
    h = 2.0 * x.T @ x / len(x)
    left, right = truncated_svd(w, rank=r, hessian=h, percdamp=0.0)
    assert left.shape == (7, r) and right.shape == (r, 9)
    err = float(np.sum((x @ (w - left @ right).T) ** 2))
    np.testing.assert_allclose(err, _reduced_rank_regression_error(x, w, r), rtol=1e-9)
    # eq. (12): the error is (n/2) times the discarded σ² of W S
    s = np.linalg.svd(w @ np.linalg.cholesky(h), compute_uv=False)
    np.testing.assert_allclose(err, len(x) / 2 * np.sum(s[r:] ** 2), rtol=1e-9)
    plain_l, plain_r = truncated_svd(w, rank=r)
    assert err < float(np.sum((x @ (w - plain_l @ plain_r).T) ** 2))


def test_whitened_svd_at_full_rank_is_w_and_keeps_float32():
    rng = np.random.default_rng(3)
    x = _outlier_inputs(rng, 100, 6)
    w = rng.normal(size=(4, 6)).astype(np.float32)
    left, right = truncated_svd(w, rank=4, hessian=2.0 * x.T @ x / 100)
    assert left.dtype == right.dtype == np.float32
    np.testing.assert_allclose(left @ right, w, atol=1e-5)


def test_whitened_svd_refuses_a_wrong_hessian():
    with pytest.raises(ShapeError, match="hessian"):
        truncated_svd(np.ones((3, 4)), rank=1, hessian=np.eye(3))
    with pytest.raises(ValidationError, match="hessian"):
        truncated_svd(np.ones((3, 4)), rank=1, hessian=-np.eye(4), percdamp=0.0)


# --- each argument reaches the rule it names; float64 inside, whatever comes in -------------------

def test_rank_rule_edges():
    # a total energy of exactly 1.0 (four 0.5s) and energy 1.0: every value is needed
    assert choose_rank([0.5, 0.5, 0.5, 0.5], (4, 4), energy=1.0) == 4
    assert choose_rank(np.zeros(3), (3, 3), energy=0.5) == 1                 # nothing to keep: rank 1
    # float32 singular values are summed in float64: 1 + 1e-8 is 1 in float32, and energy 1.0
    # then needs the second value too
    assert choose_rank(np.array([1.0, 1e-4], np.float32), (2, 2), energy=1.0) == 2
    assert choose_rank([3.0, 2.0, 1.0], (3, 4), max_params=7) == 1           # exactly one (out + in) pair
    for bad in (dict(rank=0), dict(energy=1.5), dict(max_params=6), dict(max_params=0)):
        with pytest.raises(ValidationError, match=next(iter(bad))):
            choose_rank([3.0, 2.0, 1.0], (3, 4), **bad)


def test_every_function_refuses_the_wrong_rank_of_array():
    for call, name in [(lambda: choose_rank(np.ones((2, 2)), (2, 2), rank=1), "singular_values"),
                       (lambda: svd_truncation_error(np.ones((2, 2)), 1), "singular_values"),
                       (lambda: truncated_svd(np.ones((2, 2, 2)), rank=1), "w"),
                       (lambda: tucker2(np.ones((2, 2, 2)), (1, 1)), "w"),
                       (lambda: tucker2_to_dense(np.ones((1, 2)), np.ones((1, 1, 1, 1)), np.ones((2, 1, 1, 1))), "first"),
                       (lambda: tucker2_to_dense(np.ones((1, 2, 1, 1)), np.ones((1, 1)), np.ones((2, 1, 1, 1))), "core"),
                       (lambda: tucker2_to_dense(np.ones((1, 2, 1, 1)), np.ones((1, 1, 1, 1)), np.ones((2, 1))), "last")]:
        with pytest.raises(ShapeError, match=name):
            call()
    with pytest.raises(ValidationError, match="rank"):
        svd_truncation_error([1.0, 2.0], -1)
    assert svd_truncation_error([1.0, 2.0], 0) == pytest.approx(np.sqrt(5.0), rel=1e-15)


def test_float32_inputs_are_factored_in_float64():
    rng = np.random.default_rng(3)
    w32 = rng.standard_normal((12, 9)).astype(np.float32)
    u, s, vt = np.linalg.svd(w32.astype(np.float64), full_matrices=False)
    left, right = truncated_svd(w32, rank=4)
    # float64 factors rounded once to float32: their product is within float32 rounding of the
    # float64 product (an SVD in float32 is ~10x further)
    want = (u[:, :4] * s[:4]) @ vt[:4]
    got = left.astype(np.float64) @ right.astype(np.float64)
    assert np.abs(got - want).max() <= 2e-7 * np.abs(want).max() * 4
    s32 = np.array([3.0, 1e-4, 1e-4], np.float32)
    exact = float(np.sqrt(np.sum(s32[1:].astype(np.float64) ** 2)))
    assert svd_truncation_error(s32, 1) == pytest.approx(exact, rel=1e-15)
    k32 = rng.standard_normal((4, 3, 2, 2)).astype(np.float32)
    first, core, last = tucker2(k32, (4, 3))                                      # full ranks: exact
    assert first.dtype == core.dtype == last.dtype == np.float32
    dense = tucker2_to_dense(first, core, last)
    assert dense.dtype == np.float64
    np.testing.assert_allclose(dense, k32, rtol=0, atol=2e-6)
    f64 = [x.astype(np.float64) for x in (first, core, last)]
    np.testing.assert_array_equal(dense, np.einsum("rskl,or,si->oikl", f64[1], f64[2][:, :, 0, 0], f64[0][:, :, 0, 0]))


def test_integer_weights_give_float64_factors():
    left, right = truncated_svd(np.arange(12).reshape(3, 4), rank=2)
    assert left.dtype == right.dtype == np.float64
    assert tucker2(np.ones((2, 2, 1, 1), np.int32), (1, 1))[1].dtype == np.float64


def test_energy_max_params_hessian_and_percdamp_reach_the_factorization():
    rng = np.random.default_rng(5)
    w = rng.standard_normal((10, 8)) * np.logspace(0, -3, 8)
    s = np.linalg.svd(w, compute_uv=False)
    want_energy = choose_rank(s, w.shape, energy=0.9)
    assert 1 < want_energy < 8
    assert truncated_svd(w, energy=0.9)[0].shape[1] == want_energy
    assert truncated_svd(w, max_params=3 * 18)[0].shape[1] == 3
    x = rng.standard_normal((50, 8))
    h = 2 * x.T @ x / 50
    sw = np.linalg.svd(w @ np.linalg.cholesky(h + 0.01 * np.mean(np.diag(h)) * np.eye(8)), compute_uv=False)
    assert truncated_svd(w, energy=0.9, hessian=h)[0].shape[1] == choose_rank(sw, w.shape, energy=0.9)
    assert truncated_svd(w, max_params=2 * 18, hessian=h)[0].shape[1] == 2
    # the documented default percdamp is 0.01, and percdamp is used
    default = truncated_svd(w, rank=3, hessian=h)
    np.testing.assert_array_equal(default[0], truncated_svd(w, rank=3, hessian=h, percdamp=0.01)[0])
    assert not np.allclose(default[0], truncated_svd(w, rank=3, hessian=h, percdamp=1.0)[0])
    with pytest.raises(ValidationError, match="percdamp"):
        truncated_svd(w, rank=3, hessian=h, percdamp=-0.5)
    # conv_svd hands every rule on
    k = rng.standard_normal((6, 2, 3, 3)) * np.logspace(0, -3, 18).reshape(2, 3, 3)
    sk = np.linalg.svd(k.reshape(6, 18), compute_uv=False)
    assert conv_svd(k, energy=0.9)[0].shape[0] == choose_rank(sk, (6, 18), energy=0.9)
    assert conv_svd(k, max_params=2 * 24)[0].shape[0] == 2
    xk = rng.standard_normal((60, 18))
    hk = 2 * xk.T @ xk / 60
    first, second = conv_svd(k, rank=2, hessian=hk, percdamp=0.5)
    f, s2 = truncated_svd(k.reshape(6, 18), rank=2, hessian=hk, percdamp=0.5)
    np.testing.assert_array_equal(first.reshape(2, 18), s2)
    np.testing.assert_array_equal(second.reshape(6, 2), f)
    np.testing.assert_array_equal(conv_svd(k, rank=2, hessian=hk)[0], conv_svd(k, rank=2, hessian=hk, percdamp=0.01)[0])


def test_tucker2_rank_arguments():
    k = np.ones((2, 2, 1, 1))
    for bad in [(1, 1, 1), 5, (True, 1), (1.0, 1), (1, 0), (3, 1)]:
        with pytest.raises(ValidationError, match="ranks"):
            tucker2(k, bad)
