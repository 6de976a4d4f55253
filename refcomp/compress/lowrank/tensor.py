"""CP (ALS) and tensor-train (TT-SVD) decompositions of weight tensors.

CP, canonical polyadic (Kolda & Bader 2009, "Tensor Decompositions and
Applications", SIAM Review 51(3), §3, eq. 3.1 and the ALS of Fig. 3.3): a
d-way tensor T (n_1, …, n_d) as R rank-one terms

    T ≈ Σ_{r<R} λ_r · a^(1)_r ∘ a^(2)_r ∘ … ∘ a^(d)_r                       (CP.1)

ALS fixes all factors but A^(k) (n_k, R) and solves the linear least-squares
problem for it exactly, so the error never increases from one sweep to the next:

    A^(k) ← M^(k) V^†,   M^(k)_{ir} = Σ_{i_m, m≠k} T_{…i…} Π_{m≠k} A^(m)_{i_m r}   (MTTKRP),
    V = ∗_{m≠k} A^(m)ᵀ A^(m)   (Hadamard product of the Gram matrices)          (CP.2)

after which the columns are normalised into λ. CP has no error bound in
general (the best rank-R approximation may not even exist); what is
guaranteed is the monotone error of (CP.2) and exactness on a tensor of rank
R from a generic start (tested).

TT (Oseledets 2011, "Tensor-Train Decomposition", SIAM J. Sci. Comput. 33(5),
eq. 1.2 and Alg. 1 "TT-SVD"): cores G_k (r_{k−1}, n_k, r_k), r_0 = r_d = 1,

    T[i_1, …, i_d] = G_1[:, i_1, :] G_2[:, i_2, :] ⋯ G_d[:, i_d, :]              (TT.1)

TT-SVD takes d − 1 truncated SVDs of successive unfoldings, each δ-truncated
with δ = ε‖T‖_F / √(d − 1), so that (Oseledets 2011, Thm. 2.2 with Alg. 1)

    ‖T − TT(T)‖²_F ≤ Σ_k ‖E_k‖²_F ≤ (d − 1) δ² = ε² ‖T‖²_F                     (TT.2)

with ‖E_k‖_F the Frobenius norm of the singular values discarded at step k.
A rank cap ``max_rank`` may truncate further; (TT.2)'s first inequality still
holds with the larger discarded norms, which are returned.

A Linear weight W (M, N), M = Π m_k, N = Π n_k, becomes a d-way tensor of
modes m_k·n_k ("TT-matrix", Novikov, Podoprikhin, Osokin, Vetrov 2015,
"Tensorizing Neural Networks", NIPS, eq. 4-5):

    W[(i_1…i_d), (j_1…j_d)] = G_1[i_1, j_1] ⋯ G_d[i_d, j_d],  G_k (r_{k−1}, m_k, n_k, r_k)   (TT.3)

(i and j row-major multi-indices). A conv kernel (out, in, kh, kw) is taken
with its modes ordered (in, kh, kw, out): four cores that run as four
convolutions (refcomp.compress.lowrank.tensor_model).
"""

from __future__ import annotations

import math
import string

import numpy as np

from ...checks import float_array, integer, real
from ...errors import ShapeError, ValidationError
from ...nn.module import as_rng

__all__ = ["cp_als", "cp_to_tensor", "tt_svd", "tt_to_tensor", "tt_matrix", "tt_matrix_to_dense"]


def cp_to_tensor(weights, factors) -> np.ndarray:
    """(CP.1): Σ_r λ_r a^(1)_r ∘ … ∘ a^(d)_r for weights λ (R,) and factors [(n_k, R)]."""
    letters = string.ascii_lowercase[:len(factors)]
    spec = "z," + ",".join(f"{c}z" for c in letters) + "->" + letters
    return np.einsum(spec, np.asarray(weights), *factors, optimize=True)


def _unfold_and_khatri_rao(t, factors, k):
    """(T_(k) (n_k, Π_{m≠k} n_m), Khatri-Rao product of the other factors (Π n_m, R)), rows in the same order."""
    r = factors[0].shape[1]
    kr = np.ones((1, r))
    for m in range(t.ndim):
        if m != k:
            kr = (kr[:, None, :] * factors[m][None, :, :]).reshape(-1, r)
    return np.moveaxis(t, k, 0).reshape(t.shape[k], -1), kr


def cp_als(tensor, rank: int, *, init: str = "svd", rng=None, n_iter: int = 200, tol: float = 1e-10) -> tuple:
    """CP decomposition of a d-way tensor (d ≥ 2) by alternating least squares (CP.2).

    tensor : float array (n_1, …, n_d).  rank : R ≥ 1.
    init : "svd" (A^(k) starts as the R leading left singular vectors of the mode-k
        unfolding, Kolda & Bader §3.4; columns beyond n_k drawn from ``rng``) or
        "random" (standard normal from ``rng``). ALS from a random start often stalls
        in a "swamp" far from the optimum; the SVD start avoids most of them.
    rng : Generator or int seed, needed for "random" and when R > n_k.
    n_iter : sweeps at most; stops when the relative error changes by less than ``tol``.
    Returns (weights (R,) float64, factors [(n_k, R) float64, unit-norm columns],
    errors: ‖T − CP‖_F / ‖T‖_F after each sweep, non-increasing).
    """
    t = float_array(tensor, "tensor", dtype=np.float64, allow_empty=False)
    if t.ndim < 2:
        raise ShapeError("tensor", "a tensor of order >= 2", f"shape {t.shape}")
    r = integer(rank, "rank", minimum=1)
    n_iter = integer(n_iter, "n_iter", minimum=1)
    tol = real(tol, "tol", low=0)
    if init not in ("svd", "random"):
        raise ValidationError("init", "'svd' or 'random'", repr(init))
    if rng is None and (init == "random" or r > min(t.shape)):
        raise ValidationError("rng", "a Generator or int seed (init='random', or rank above a mode's size)", None)
    g = None if rng is None else as_rng(rng)
    factors = []
    for k, n in enumerate(t.shape):
        a = g.standard_normal((n, r)) if init == "random" else np.zeros((n, r))
        if init == "svd":
            u = np.linalg.svd(np.moveaxis(t, k, 0).reshape(n, -1), full_matrices=False)[0][:, :r]
            a[:, :u.shape[1]] = u
            if u.shape[1] < r:
                a[:, u.shape[1]:] = g.standard_normal((n, r - u.shape[1]))
        factors.append(a)
    weights = np.ones(r)
    norm = np.linalg.norm(t) or 1.0
    errors = []
    for _ in range(n_iter):
        for k in range(t.ndim):
            v = np.ones((r, r))
            for m in range(t.ndim):
                if m != k:
                    v *= factors[m].T @ factors[m]
            unfolded, kr = _unfold_and_khatri_rao(t, factors, k)
            a = (unfolded @ kr) @ np.linalg.pinv(v)                                # (CP.2), M^(k) = T_(k)·KR
            weights = np.linalg.norm(a, axis=0)
            factors[k] = a / np.where(weights > 0, weights, 1.0)
        errors.append(float(np.linalg.norm(unfolded - (factors[k] * weights) @ kr.T) / norm))
        if len(errors) > 1 and abs(errors[-2] - errors[-1]) < tol:
            break
    return weights, factors, errors


def tt_to_tensor(cores) -> np.ndarray:
    """(TT.1): the full tensor of cores [(r_{k−1}, n_k, r_k)], r_0 = r_d = 1."""
    out = np.asarray(cores[0])
    for g in cores[1:]:
        out = np.tensordot(out, g, axes=([-1], [0]))
    return out[0, ..., 0]


def tt_svd(tensor, *, eps: float | None = None, max_rank: int | None = None) -> tuple:
    """TT-SVD (Oseledets 2011, Alg. 1) of a d-way tensor (d ≥ 2).

    eps : relative accuracy ε ≥ 0: each step keeps the fewest singular values whose
        discarded norm is ≤ δ = ε‖T‖_F/√(d−1), so ‖T − TT‖_F ≤ ε‖T‖_F (TT.2).
    max_rank : optional cap on every r_k (then the bound is the returned discarded norms).
    At least one of them. Returns (cores [(r_{k−1}, n_k, r_k)] in the tensor's float dtype,
    discarded [‖E_k‖_F for k = 1…d−1] float64).
    """
    a = float_array(tensor, "tensor", allow_empty=False)
    if a.ndim < 2:
        raise ShapeError("tensor", "a tensor of order >= 2", f"shape {a.shape}")
    if eps is None and max_rank is None:
        raise ValidationError("eps/max_rank", "at least one of them", "neither")
    eps = 0.0 if eps is None else real(eps, "eps", low=0)
    cap = None if max_rank is None else integer(max_rank, "max_rank", minimum=1)
    d, dims = a.ndim, a.shape
    delta = eps * float(np.linalg.norm(a.astype(np.float64))) / math.sqrt(d - 1)
    c = a.astype(np.float64)
    cores, discarded, r_prev = [], [], 1
    for k in range(d - 1):
        c = c.reshape(r_prev * dims[k], -1)
        u, s, vt = np.linalg.svd(c, full_matrices=False)
        tail = np.sqrt(np.cumsum((s * s)[::-1])[::-1])    # tail[i] = ‖s[i:]‖, the error of keeping i
        r = next((i for i in range(1, s.size + 1) if i == s.size or tail[i] <= delta), s.size)
        if cap is not None:
            r = min(r, cap)
        discarded.append(float(tail[r]) if r < s.size else 0.0)
        cores.append(u[:, :r].reshape(r_prev, dims[k], r).astype(a.dtype))
        c = s[:r, None] * vt[:r]
        r_prev = r
    cores.append(c.reshape(r_prev, dims[-1], 1).astype(a.dtype))
    return cores, discarded


def _modes(modes, total, argument):
    m = tuple(integer(v, argument, minimum=1) for v in modes)
    if not m or math.prod(m) != total:
        raise ShapeError(argument, f"positive sizes multiplying to {total}", f"{tuple(modes)}")
    return m


def tt_matrix(w, out_modes, in_modes, *, eps: float | None = None, max_rank: int | None = None) -> tuple:
    """TT-matrix (TT.3) of a Linear weight w (M, N): cores [(r_{k−1}, m_k, n_k, r_k)], discarded norms.

    out_modes (m_1…m_d) multiply to M, in_modes (n_1…n_d) to N, same length d ≥ 2.
    The tensor W[(i_1…i_d), (j_1…j_d)] is permuted to modes (i_1 j_1, …, i_d j_d) and TT-SVD'd.
    """
    w = float_array(w, "w", ndim=2)
    mo = _modes(out_modes, w.shape[0], "out_modes")
    mi = _modes(in_modes, w.shape[1], "in_modes")
    if len(mo) != len(mi) or len(mo) < 2:
        raise ShapeError("in_modes", f"as many modes as out_modes ({len(mo)}), at least 2", f"{len(mi)}")
    d = len(mo)
    t = w.reshape(mo + mi).transpose([x for k in range(d) for x in (k, d + k)])
    cores, discarded = tt_svd(t.reshape([mo[k] * mi[k] for k in range(d)]), eps=eps, max_rank=max_rank)
    return [g.reshape(g.shape[0], mo[k], mi[k], g.shape[2]) for k, g in enumerate(cores)], discarded


def tt_matrix_to_dense(cores) -> np.ndarray:
    """(TT.3): the (Π m_k, Π n_k) matrix of TT-matrix cores [(r_{k−1}, m_k, n_k, r_k)]."""
    d = len(cores)
    full = tt_to_tensor([g.reshape(g.shape[0], -1, g.shape[3]) for g in cores])
    mo, mi = [g.shape[1] for g in cores], [g.shape[2] for g in cores]
    full = full.reshape([x for k in range(d) for x in (mo[k], mi[k])])
    return full.transpose(list(range(0, 2 * d, 2)) + list(range(1, 2 * d, 2))).reshape(math.prod(mo), math.prod(mi))
