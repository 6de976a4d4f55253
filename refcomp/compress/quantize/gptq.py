"""GPTQ: weight quantization with second-order error compensation.

Frantar, Ashkboos, Hoefler, Alistarh, "GPTQ: Accurate Post-Training
Quantization for Generative Pre-trained Transformers", ICLR 2023,
arXiv:2210.17323, Algorithm 1. Math: docs/gptq_and_ptq.md §2, eqs. (4)-(9).

Goal, row by row of W (out, in), for calibration inputs X (n, in)::

    min_Ŵ ||X Wᵀ − X Ŵᵀ||²_F,  Hessian of this loss  H = 2 XᵀX          (4)

Columns are quantized one at a time in a fixed order; after column j is
rounded, the not-yet-quantized columns F absorb its error (Optimal Brain
Surgeon update, Hassibi & Stork 1993)::

    δ_F = −(w_j − q_j) / [H_F⁻¹]_jj · (H_F⁻¹)_{j,F}                         (5)

and the inverse Hessian of the remaining columns is H_F⁻¹ with row/column j
eliminated. GPTQ's observation: the rows (H_F⁻¹)_{j,F} / sqrt([H_F⁻¹]_jj) for
the order 0, 1, 2 ... are exactly the rows of the upper Cholesky factor U of
H⁻¹ (H⁻¹ = UᵀU), so (5) becomes::

    e_j = (w_j − q_j) / U_jj,    W_{:, j+1:} −= e_j · U_{j, j+1:}          (6)

Lazy batches (§4, "Step 2"): inside a block of B columns only the block is
updated; the columns after it receive the whole block's update at once::

    W_{:, i+B:} −= E · U_{i:i+B, i+B:}                                      (7)

which gives the same result as B = 1 (up to float rounding) with B times
fewer passes over W. Dampening (§4, "Step 3")::

    H ← H + λ I,   λ = percdamp · mean(diag H)                              (8)

Dead inputs (H_jj = 0: the input is always 0 in the calibration data): the
column cannot influence the output, so w_j is set to 0 and H_jj to 1 (as in
the authors' code). Act-order (the authors' ``--act-order``): columns are
processed in order of decreasing H_jj. Groups: each group of ``group_size``
consecutive columns gets its scale when the algorithm enters it, computed from
the error-updated weights at that moment (eq. 9 in the docs); with act-order
the scales are computed up front on the original column groups ("static
groups"), so the stored layout is the same as RTN's: one scale per
(row, j // group_size).

Scaling H by any c > 0 leaves the result unchanged (λ scales with it and U
scales by c^(−1/2) in both factors of (6)), so H = 2XᵀX/n (a mean) is used.
"""

from __future__ import annotations

import numpy as np

from ...checks import float_array, integer, real
from ...errors import ShapeError, ValidationError
from ...formats.qtensor import QTensor
from .grid import check_bits, check_group_size, code_range, grid_qparams, group_ranges, round_to_grid

__all__ = ["HessianAccumulator", "hessian_from_inputs", "check_hessian", "drop_dead_inputs", "dampen",
           "upper_cholesky_of_inverse", "gptq_quantize"]


class HessianAccumulator:
    """Running H = 2/n · Σ x xᵀ over calibration batches (eq. 4, averaged).

    >>> acc = HessianAccumulator(n_in=784)
    >>> for xb in batches: acc.add(xb)       # xb (..., 784): rows are inputs
    >>> H = acc.hessian()

    The sum is kept in float64, so the order of batches changes H only by
    float64 rounding.
    """

    def __init__(self, n_in: int):
        self.n_in = integer(n_in, "n_in", minimum=1)
        self._xtx = np.zeros((self.n_in, self.n_in), dtype=np.float64)
        self.n_samples = 0

    def add(self, x) -> None:
        """Add a batch of layer inputs ``x`` (..., n_in)."""
        x = float_array(x, "x", dtype=np.float64)  # read only: no copy
        if x.ndim == 0 or x.shape[-1] != self.n_in:
            raise ShapeError("x", f"an array whose last dimension is n_in={self.n_in}", f"shape {x.shape}")
        x = x.reshape(-1, self.n_in)
        self._xtx += x.T @ x
        self.n_samples += x.shape[0]

    def hessian(self) -> np.ndarray:
        if self.n_samples == 0:
            raise ValidationError("HessianAccumulator", "at least one sample added", "0 samples")
        return 2.0 * self._xtx / self.n_samples


def hessian_from_inputs(x) -> np.ndarray:
    """H = 2/n · XᵀX for inputs ``x`` (..., in) flattened to (n, in)."""
    x = float_array(x, "x")  # HessianAccumulator.add widens it to float64
    if x.ndim == 0:
        raise ShapeError("x", "an array (..., in)", "a scalar")
    acc = HessianAccumulator(x.shape[-1])
    acc.add(x)
    return acc.hessian()


def check_hessian(hessian, n: int, w_shape) -> np.ndarray:
    """``hessian`` as a float64 copy, checked to be (n, n) and symmetric."""
    h = float_array(hessian, "hessian", dtype=np.float64, copy=True)  # GPTQ writes into it (dead inputs, λ)
    if h.shape != (n, n):
        raise ShapeError("hessian", f"shape {(n, n)} for w of shape {tuple(w_shape)}", f"shape {h.shape}")
    scale_h = float(np.max(np.abs(h), initial=0.0))  # 0 only for H = 0, which is symmetric (<= 0 holds)
    if not np.allclose(h, h.T, rtol=0.0, atol=1e-10 * scale_h):
        raise ValidationError("hessian", "a symmetric matrix", f"max |H − Hᵀ| = {np.max(np.abs(h - h.T)):.3g}")
    return h


def drop_dead_inputs(w: np.ndarray, h: np.ndarray) -> None:
    """In place: an input never seen in calibration (H_jj = 0) cannot move the output, so its
    weights become 0 and H_jj 1 (keeps H invertible; the authors' code does the same)."""
    dead = np.diag(h) == 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0


def dampen(h: np.ndarray, percdamp: float) -> None:
    """In place: H ← H + λ I with λ = percdamp · mean(diag H), eq. (8)."""
    h[np.diag_indices(len(h))] += percdamp * np.mean(np.diag(h))


def upper_cholesky_of_inverse(h: np.ndarray) -> np.ndarray:
    """U upper triangular with H⁻¹ = UᵀU (eq. 6); H symmetric positive definite."""
    try:
        lower = np.linalg.cholesky(h)  # H = L Lᵀ
        lower_inv = np.linalg.inv(lower)
        h_inv = lower_inv.T @ lower_inv  # H⁻¹ = L⁻ᵀ L⁻¹
        return np.linalg.cholesky(h_inv).T
    except np.linalg.LinAlgError:
        raise ValidationError("hessian", "a positive definite matrix after dampening (raise percdamp)",
                              "a matrix whose Cholesky factorization failed") from None


def gptq_quantize(w, hessian, *, bits: int = 4, group_size: int | None = None, symmetric: bool = True,
                  percdamp: float = 0.01, block_size: int = 128, act_order: bool = False) -> QTensor:
    """Quantize ``w`` (out, in) with GPTQ (Algorithm 1 of arXiv:2210.17323).

    Parameters
    ----------
    w : (out, in) real array, finite — the layer computes y = x Wᵀ.
    hessian : (in, in) symmetric positive semi-definite, e.g. from
        HessianAccumulator / hessian_from_inputs (eq. 4).
    bits, group_size, symmetric : the grid, as in rtn_quantize.
    percdamp : λ / mean(diag H), eq. (8); 0 disables dampening.
    block_size : B of the lazy batches, eq. (7); changes speed, not the result.
    act_order : process columns by decreasing H_jj (static groups then).

    Returns
    -------
    QTensor
        (out, in) in the original column order, laid out as
        rtn_quantize's: per-axis QParams per channel, per-block (axis 1,
        block_size = group_size) in groups.

    Notes
    -----
    With H = I and percdamp = 0, U = I: every update of (6) and (7) is zero
    and GPTQ returns exactly the codes of RTN (tests/compress/quantize/test_gptq.py).
    """
    w = float_array(w, "w", ndim=2, dtype=np.float64, copy=True)
    out, n = w.shape
    g = check_group_size(group_size, n)  # also rejects n = 0
    h = check_hessian(hessian, n, w.shape)
    b = check_bits(bits)
    damp_frac = real(percdamp, "percdamp", low=0)
    block = integer(block_size, "block_size", minimum=1)
    symmetric = bool(symmetric)
    n_groups = -(-n // g)

    drop_dead_inputs(w, h)

    # the (row, group) range each grid is chosen from (eqs. 1-2): the original columns with
    # act-order (static groups), else the error-updated columns when the algorithm enters the group
    lo = np.empty((out, n_groups))
    hi = np.empty((out, n_groups))
    if act_order:
        perm = np.argsort(-np.diag(h), kind="stable")
        lo[:], hi[:] = group_ranges(w, g)
        group_of = perm // g  # group of the column processed at position j
    else:
        perm = np.arange(n)
        group_of = np.arange(n) // g
    w = w[:, perm]
    h = h[np.ix_(perm, perm)]

    dampen(h, damp_frac)
    u = upper_cholesky_of_inverse(h)

    scales = np.empty((out, n_groups))  # the float32 scales, widened for the float64 arithmetic of (6)
    zeros = np.empty((out, n_groups), dtype=np.int64)
    qmin, qmax = code_range(b, symmetric)

    def enter_group(k):
        """Scale (float32 values) and zero point of every row's grid of group k, from lo/hi[:, k]."""
        qp = grid_qparams(lo[:, k:k + 1], hi[:, k:k + 1], b, symmetric)
        scales[:, k], zeros[:, k] = qp.scale, qp.zero_point

    if act_order:
        for k in range(n_groups):
            enter_group(k)

    codes = np.empty((out, n), dtype=np.int64)
    for i1 in range(0, n, block):
        i2 = min(i1 + block, n)
        w_blk = w[:, i1:i2].copy()
        err_blk = np.zeros((out, i2 - i1))
        for i in range(i2 - i1):
            j = i1 + i
            k = group_of[j]
            if not act_order and j % g == 0:
                cols = _current_columns(w, w_blk, err_blk, u, i1, i2, i, min(j + g, n))
                lo[:, k], hi[:, k] = cols.min(axis=1), cols.max(axis=1)
                enter_group(k)
            q = round_to_grid(w_blk[:, i], scales[:, k], zeros[:, k], qmin, qmax)
            codes[:, j] = q
            w_hat = (q - zeros[:, k]) * scales[:, k]
            err = (w_blk[:, i] - w_hat) / u[j, j]                       # eq. (6)
            w_blk[:, i + 1:] -= np.outer(err, u[j, j + 1:i2])
            err_blk[:, i] = err
        w[:, i2:] -= err_blk @ u[i1:i2, i2:]                            # eq. (7)

    codes_orig = np.empty_like(codes)
    codes_orig[:, perm] = codes
    # the same grids as enter_group's (choose_qparams is element-wise), now in the QTensor's layout
    qp = grid_qparams(lo, hi, b, symmetric, None if g == n else g)
    return QTensor(codes_orig.astype(qp.dtype.np_dtype), qp)


def _current_columns(w, w_blk, err_blk, u, i1, i2, i, stop):
    """Columns i1+i .. stop-1 with every update so far applied (for a group's scale).

    Inside the block they are in w_blk; after the block, W still lacks the
    lazy update (7) of the columns quantized in this block, so it is added here:
    the scale then does not depend on block_size.
    """
    j = i1 + i
    inside = w_blk[:, i:min(stop, i2) - i1]
    if stop <= i2:
        return inside
    after = w[:, i2:stop] - err_blk[:, :i] @ u[i1:j, i2:stop]
    return np.concatenate([inside, after], axis=1)
