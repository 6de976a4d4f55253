"""Low-rank factorization of weights: truncated SVD and Tucker-2.

Math and sources: docs/lowrank.md, eqs. (1)-(9).

Linear (out, in), truncated SVD (Eckart & Young 1936; for layers Denton et
al. 2014, arXiv:1404.0736, and Xue, Li, Gong 2013)::

    W = U Σ Vᵀ,   W_r = (U_r Σ_r)(V_rᵀ) = L R                                (1)
    ||W − W_r||_F = sqrt(Σ_{i>r} σ_i²)   (the best any rank-r matrix can do)  (2)

One layer y = x Wᵀ + b becomes two: h = x Rᵀ (r outputs, no bias), then
y = h Lᵀ + b. The rank comes from one of

    rank=r          explicit;
    energy=e        the smallest r with Σ_{i<=r} σ_i² >= e · Σ_i σ_i²        (3)
    max_params=P    the largest r with r·(out + in) <= P                       (4)

Conv2d (out, in, kh, kw): reshape to (out, in·kh·kw) and factor as above; the
factors are two convolutions (docs/lowrank.md eq. 6)::

    first  = R.reshape(r, in, kh, kw)     r filters, the original stride/padding/dilation
    second = L.reshape(out, r, 1, 1)      a 1×1 conv, the original bias

Tucker-2 (Kim et al. 2016, arXiv:1511.06530, §3.1; HOSVD of De Lathauwer et
al. 2000 on modes 0 and 1 only, the spatial modes being small)::

    U_out = leading r_out left singular vectors of W_(0)  (out × in·kh·kw)
    U_in  = leading r_in  left singular vectors of W_(1)  (in × out·kh·kw)
    C = W ×_0 U_outᵀ ×_1 U_inᵀ          (r_out, r_in, kh, kw)                 (7)
    W ≈ C ×_0 U_out ×_1 U_in                                                  (8)

which runs as three convolutions: 1×1 (in → r_in, weight U_inᵀ), the core
kh×kw (r_in → r_out, original stride/padding/dilation), 1×1 (r_out → out,
weight U_out, original bias). Kim et al. pick the ranks with VBMF; here they
are given (or chosen per mode by the energy rule (3)). With full ranks the
U's are square orthogonal and (8) is exact.

Data-aware (whitened) SVD: what matters is the layer's output on its inputs
X (n, in), not W itself. With H = 2XᵀX/n = S Sᵀ (Cholesky, S lower; H damped
as in GPTQ so that it is positive definite),
||X (W − M)ᵀ||²_F = (n/2) ||(W − M) S||²_F, and the best rank-r M for that
norm is the truncated SVD of W S mapped back (Eckart-Young in the inner
product of H; Wang et al. 2024, SVD-LLM, arXiv:2403.07378 §3.1, "truncation-
aware data whitening")::

    W S = U Σ Vᵀ,   L = U_r Σ_r,   R = V_rᵀ S⁻¹                              (11)
    ||X (W − L R)ᵀ||²_F = (n/2) Σ_{i>r} σ_i(W S)²                            (12)

and the energy rule (3) then reads on the output energy, σ_i(W S).
"""

from __future__ import annotations

import numpy as np

from ...checks import float_array, integer, real
from ...errors import ShapeError, ValidationError
from ...formats.lowrank import LowRank
from ..quantize.gptq import check_hessian, dampen

__all__ = ["choose_rank", "truncated_svd", "svd_truncation_error", "to_lowrank", "conv_svd", "tucker2",
           "tucker2_to_dense"]


def _out_dtype(w) -> np.dtype:
    dt = np.asarray(w).dtype
    return dt if dt in (np.float32, np.float64) else np.dtype(np.float64)


def choose_rank(singular_values, shape, *, rank=None, energy=None, max_params=None) -> int:
    """The rank r (>= 1) for a (out, in) matrix with these singular values, eqs. (3)-(4).

    Exactly one of rank, energy (in (0, 1]) and max_params must be given.
    """
    sigma = float_array(singular_values, "singular_values", ndim=1, dtype=np.float64)
    out, n_in = (int(d) for d in shape)
    full = min(out, n_in)
    given = [name for name, v in (("rank", rank), ("energy", energy), ("max_params", max_params)) if v is not None]
    if len(given) != 1:
        raise ValidationError("rank/energy/max_params", "exactly one of them", f"{given or 'none'}")
    if rank is not None:
        r = integer(rank, "rank", minimum=1)
        if r > full:
            raise ValidationError("rank", f"an integer in [1, min(out, in) = {full}]", repr(rank))
        return r
    if energy is not None:
        e = real(energy, "energy", low=0, high=1, low_open=True)
        s2 = np.sort(sigma)[::-1] ** 2
        total = float(s2.sum())
        if total == 0.0:
            return 1
        # a relative slack of 1e-12 so that energy=1.0 is not missed by the last rounding of cumsum
        r = int(np.searchsorted(np.cumsum(s2), e * total * (1 - 1e-12), side="left")) + 1
        return min(r, full)
    p = integer(max_params, "max_params")
    r = p // (out + n_in)                      # p < out + in (zero and negatives too) leaves no pair
    if r < 1:
        raise ValidationError("max_params", f"at least out + in = {out + n_in} (the size of a rank-1 pair)",
                              repr(max_params))
    return min(r, full)


def truncated_svd(w, *, rank=None, energy=None, max_params=None, hessian=None,
                  percdamp: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """(L, R) with L = U_r Σ_r (out, r) and R = V_rᵀ (r, in), eq. (1).

    hessian : None — the best rank-r W_r in Frobenius norm (1)-(2); or H
        (in, in) = 2XᵀX/n of the layer's inputs (gptq.HessianAccumulator) —
        the best for the output error on those inputs, the whitened SVD (11),
        with H + percdamp·mean(diag H)·I factored.

    Computed in float64 (np.linalg.svd), returned in w's dtype when it is
    float32/float64. At full rank L R = W to float rounding: the tests allow
    1e-5·||W||_F for float32, 1e-12·||W||_F for float64.
    """
    dt = _out_dtype(w)
    w = float_array(w, "w", ndim=2, dtype=np.float64)
    if hessian is None:
        u, s, vt = np.linalg.svd(w, full_matrices=False)
        r = choose_rank(s, w.shape, rank=rank, energy=energy, max_params=max_params)
        return (u[:, :r] * s[:r]).astype(dt), vt[:r].astype(dt)
    h = check_hessian(hessian, w.shape[1], w.shape)
    dampen(h, real(percdamp, "percdamp", low=0))
    try:
        chol = np.linalg.cholesky(h)                                   # H = S Sᵀ
    except np.linalg.LinAlgError:
        raise ValidationError("hessian", "a positive definite matrix after dampening (raise percdamp)",
                              "a matrix whose Cholesky factorization failed") from None
    u, s, vt = np.linalg.svd(w @ chol, full_matrices=False)            # (11)
    r = choose_rank(s, w.shape, rank=rank, energy=energy, max_params=max_params)
    # R = V_rᵀ S⁻¹, i.e. R S = V_rᵀ: a triangular solve Sᵀ Rᵀ = V_r, no inverse formed
    right = np.linalg.solve(chol.T, vt[:r].T).T
    return (u[:, :r] * s[:r]).astype(dt), right.astype(dt)


def svd_truncation_error(singular_values, rank: int) -> float:
    """sqrt(Σ_{i>r} σ_i²): ||W − W_r||_F of the best rank-r approximation, eq. (2)."""
    s = np.sort(float_array(singular_values, "singular_values", ndim=1, dtype=np.float64))[::-1]
    r = integer(rank, "rank", minimum=0)
    return float(np.sqrt(np.sum(s[r:] ** 2)))


def to_lowrank(w, *, rank=None, energy=None, max_params=None) -> LowRank:
    """The LowRank weight format of the truncated SVD of ``w``.

    w : (out, in), or a kernel (out, c, kh, kw) factored as its (out, c·kh·kw)
    im2col matrix (the LowRank keeps the kernel shape; conv_svd gives the
    same factors as two conv kernels).
    """
    a = np.asarray(w)
    if a.ndim < 2:
        raise ShapeError("w", "an array of rank >= 2 (out, ...)", f"shape {a.shape}")
    left, right = truncated_svd(a.reshape(a.shape[0], -1), rank=rank, energy=energy, max_params=max_params)
    return LowRank(left, right, shape=a.shape)


def conv_svd(w, *, rank=None, energy=None, max_params=None, hessian=None,
             percdamp: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """A Conv2d kernel (out, in, kh, kw) as two convs: (first (r, in, kh, kw), second (out, r, 1, 1)).

    first carries the original stride / padding / dilation; second is 1×1
    with the original bias. max_params counts both kernels: r·(out + in·kh·kw).
    hessian : None, or H (in·kh·kw)² of the im2col rows (whitened SVD (11)).
    """
    w = np.asarray(w)
    if w.ndim != 4:
        raise ShapeError("w", "a 4-D conv kernel (out, in, kh, kw)", f"shape {w.shape}")
    out, n_in, kh, kw = w.shape
    left, right = truncated_svd(w.reshape(out, n_in * kh * kw), rank=rank, energy=energy, max_params=max_params,
                                hessian=hessian, percdamp=percdamp)
    r = left.shape[1]
    return right.reshape(r, n_in, kh, kw), left.reshape(out, r, 1, 1)


def _leading_left_vectors(unfolded: np.ndarray, rank, energy) -> np.ndarray:
    u, s, _ = np.linalg.svd(unfolded, full_matrices=False)
    r = choose_rank(s, unfolded.shape, rank=rank, energy=energy)
    return u[:, :r]


def tucker2(w, ranks=None, *, energy=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tucker-2 of a conv kernel (out, in, kh, kw) by HOSVD on modes 0 and 1, eqs. (7)-(8).

    ranks : (r_out, r_in), in [1, min(out, in·kh·kw)] / [1, min(in, out·kh·kw)] (the ranks
        of the two unfoldings); or energy (per mode, rule (3)).
    Returns the three conv kernels, applied in this order:
    first (r_in, in, 1, 1) = U_inᵀ, core (r_out, r_in, kh, kw), last (out, r_out, 1, 1) = U_out.
    """
    dt = _out_dtype(w)
    w = float_array(w, "w", ndim=4, dtype=np.float64)
    out, n_in, kh, kw = w.shape
    if (ranks is None) == (energy is None):
        raise ValidationError("ranks/energy", "exactly one of them", f"ranks={ranks!r}, energy={energy!r}")
    if ranks is not None:
        if not isinstance(ranks, (tuple, list)) or len(ranks) != 2:
            raise ValidationError("ranks", "a pair (r_out, r_in)", repr(ranks))
        r_out, r_in = ranks
        for name, r, bound in (("ranks[0]", r_out, min(out, n_in * kh * kw)),
                               ("ranks[1]", r_in, min(n_in, out * kh * kw))):
            if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or not 1 <= r <= bound:
                raise ValidationError(name, f"an integer in [1, {bound}]", repr(r))
    else:
        r_out = r_in = None
    u_out = _leading_left_vectors(w.reshape(out, -1), r_out, energy)
    u_in = _leading_left_vectors(w.transpose(1, 0, 2, 3).reshape(n_in, -1), r_in, energy)
    core = np.einsum("oikl,or,is->rskl", w, u_out, u_in)  # eq. (7)
    first = u_in.T[:, :, None, None]
    last = u_out[:, :, None, None]
    return first.astype(dt), core.astype(dt), last.astype(dt)


def tucker2_to_dense(first, core, last) -> np.ndarray:
    """W = C ×_0 U_out ×_1 U_in (eq. 8) from the three kernels of tucker2."""
    first = float_array(first, "first", ndim=4, dtype=np.float64)
    core = float_array(core, "core", ndim=4, dtype=np.float64)
    last = float_array(last, "last", ndim=4, dtype=np.float64)
    if core.shape[:2] != (last.shape[1], first.shape[0]):
        raise ShapeError("core", f"shape ({last.shape[1]}, {first.shape[0]}, kh, kw) to match first/last",
                         f"shape {core.shape}")
    return np.einsum("rskl,or,si->oikl", core, last[:, :, 0, 0], first[:, :, 0, 0])
