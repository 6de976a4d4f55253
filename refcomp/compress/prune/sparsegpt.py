"""SparseGPT: one-shot pruning with second-order error compensation.

Frantar & Alistarh, "SparseGPT: Massive Language Models Can Be Accurately
Pruned in One-Shot", ICML 2023, arXiv:2301.00774, Algorithm 1. Math:
docs/pruning.md §SparseGPT, eqs. (S1)-(S4).

The goal is GPTQ's (refcomp.compress.quantize.gptq eq. 4), row by row of W
(out, in) for calibration inputs X (n, in), with "round to the grid" replaced
by "set to zero where the mask says so"::

    min_Ŵ ||X Wᵀ − X Ŵᵀ||²_F   s.t. Ŵ = 0 outside the mask,  H = 2XᵀX/n      (S1)

Columns are visited left to right. After column j is pruned (q_j = w_j·m_j),
the columns not yet visited absorb its error by the Optimal Brain Surgeon
update, which with U the upper Cholesky factor of H⁻¹ (GPTQ's eq. 6) reads::

    e_j = (w_j − q_j) / U_jj,    W_{:, j+1:} −= e_j · U_{j, j+1:}             (S2)

(applied lazily per block of columns, GPTQ's eq. 7). The mask is chosen on
the fly by the OBS saliency of each weight, its loss increase when removed
with the others compensating::

    ε_ij = w_ij² / [H_F⁻¹]_jj = w_ij² / U_jj²                                (S3)

evaluated on the *current* (already compensated) weights:
- unstructured, sparsity p: at the start of every block of ``block_size``
  columns, the ⌊p · size + 1/2⌋ entries of the block with the lowest ε are pruned
  ("adaptive mask selection", §3.3; the mask is chosen per block, so each
  block, not each row, holds the sparsity);
- N:M (e.g. 2:4): on entering each group of M columns, in every row the M − N
  entries with the lowest ε are pruned (§3.4), so every group of M
  consecutive inputs keeps exactly N, the pattern of prune.masks.nm_mask.

A given mask skips the selection and only compensates (S2): with H = I
(U = I) nothing is compensated and the result is W masked — magnitude
pruning when the mask is chosen by |w|. Dead inputs and the dampening λ are
GPTQ's (eq. 8).

On a model (``sparsegpt_model``) the layers are pruned in forward order, each
with the Hessian of the inputs it receives from the already-pruned layers
before it (weight_only.layerwise_hessians, the order of GPTQ's G1), as the
authors prune an LLM block by block.
"""

from __future__ import annotations

import numpy as np

from ...checks import bool_mask, float_array, integer, real
from ...errors import ShapeError, ValidationError
from ...formats.dense import Dense
from ...nn.layers import Conv2d, Linear
from ..quantize.gptq import check_hessian, dampen, drop_dead_inputs, upper_cholesky_of_inverse
from ..quantize.model_graph import prepare
from ..quantize.weight_only import layerwise_hessians
from .masks import nm_mask, unstructured_mask

__all__ = ["sparsegpt_prune", "sparsegpt_model"]


def sparsegpt_prune(w, hessian, *, sparsity: float | None = None, n_m: tuple[int, int] | None = None, mask=None,
                    percdamp: float = 0.01, block_size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Prune ``w`` (out, in) with SparseGPT (module docstring); returns (Ŵ, keep mask).

    Exactly one of:
    sparsity : fraction in [0, 1) of each block of columns to prune (unstructured);
    n_m : (n, m), keep n of every m consecutive inputs (2:4 is (2, 4)); in % m == 0;
    mask : a fixed bool keep-mask (out, in) (True = kept); only (S2) runs.

    hessian : (in, in) symmetric positive semi-definite (gptq.HessianAccumulator).
    percdamp : λ / mean(diag H); block_size : columns per lazy block and per
    unstructured mask selection (it changes the mask, unlike in GPTQ).

    Ŵ has w's dtype (float32 stays float32; computed in float64) and is
    exactly 0 where the mask is False.
    """
    w_in = float_array(w, "w", ndim=2)
    wd = w_in.astype(np.float64, copy=True)
    out, n = wd.shape
    if n == 0 or out == 0:
        raise ShapeError("w", "a non-empty (out, in) matrix", f"shape {wd.shape}")
    h = check_hessian(hessian, n, wd.shape)
    if sum(a is not None for a in (sparsity, n_m, mask)) != 1:
        raise ValidationError("sparsity", "exactly one of sparsity, n_m and mask", "none or several")
    if sparsity is not None:
        sparsity = real(sparsity, "sparsity", low=0.0, high=1.0)
        if sparsity >= 1.0:
            raise ValidationError("sparsity", "a fraction in [0, 1)", sparsity)
    if n_m is not None:
        if not isinstance(n_m, tuple) or len(n_m) != 2:
            raise ValidationError("n_m", "a pair (n, m) such as (2, 4)", repr(n_m))
        keep_n, m = integer(n_m[0], "n_m[0]", minimum=0), integer(n_m[1], "n_m[1]", minimum=1)
        if keep_n > m:
            raise ValidationError("n_m", "n <= m", repr(n_m))
        if n % m:
            raise ShapeError("w", f"an input dimension divisible by m = {m}", f"shape {wd.shape}")
    if mask is not None:
        mask = bool_mask(mask, wd.shape, "mask")
    damp = real(percdamp, "percdamp", low=0)
    block = integer(block_size, "block_size", minimum=1)
    if n_m is not None:
        block = max(m, block // m * m)   # an N:M group never straddles two lazy blocks

    drop_dead_inputs(wd, h)
    dampen(h, damp)
    u = upper_cholesky_of_inverse(h)
    d = np.diag(u)

    keep = np.ones((out, n), dtype=bool) if mask is None else mask.copy()
    for i1 in range(0, n, block):
        i2 = min(i1 + block, n)
        w_blk = wd[:, i1:i2].copy()
        err_blk = np.zeros((out, i2 - i1))
        if sparsity is not None:                                              # (S3), per block
            keep[:, i1:i2] = unstructured_mask(w_blk ** 2 / d[i1:i2] ** 2, sparsity)
        for i in range(i2 - i1):
            j = i1 + i
            if n_m is not None and j % m == 0:                                # (S3), per group of m
                keep[:, j:j + m] = nm_mask(w_blk[:, i:i + m] ** 2 / d[j:j + m] ** 2, keep_n, m)
            q = np.where(keep[:, j], w_blk[:, i], 0.0)
            err = (w_blk[:, i] - q) / u[j, j]                                 # (S2)
            w_blk[:, i + 1:] -= np.outer(err, u[j, j + 1:i2])
            w_blk[:, i] = q
            err_blk[:, i] = err
        wd[:, i1:i2] = w_blk
        wd[:, i2:] -= err_blk @ u[i1:i2, i2:]                                 # GPTQ eq. (7)
    return wd.astype(w_in.dtype if w_in.dtype in (np.float32, np.float64) else np.float64), keep


def sparsegpt_model(model, *, calibration_batches, layers=None, sparsity: float | None = None,
                    n_m: tuple[int, int] | None = None, percdamp: float = 0.01, block_size: int = 128):
    """(a copy of ``model`` with the chosen layers pruned by SparseGPT, report); ``model`` is untouched.

    layers : names of Linear / Conv2d (groups = 1) layers, dotted for a graph
        ("layer0.fc1"); default every one. Each gets a Dense weight holding Ŵ
        and its keep-mask (so masked fine-tuning keeps the pattern;
        prune.deploy.to_csr then stores it for the sparse kernels).
    calibration_batches : a list of batches, each an array or a tuple of
        arrays (``model.forward(*batch)``), as for GPTQ.
    sparsity / n_m / percdamp / block_size : as sparsegpt_prune.

    report: {name: {"sparsity", "output_mse"}} — output_mse the mean squared
    error of X Ŵᵀ against X Wᵀ on (at most 4,096 of) the layer's inputs.
    """
    if (sparsity is None) == (n_m is None):
        raise ValidationError("sparsity", "exactly one of sparsity and n_m", "none or both")
    m = prepare(model)
    found = [n for n, layer in m.named_modules() if isinstance(layer, (Linear, Conv2d))]
    names = found if layers is None else ([layers] if isinstance(layers, str) else list(layers))
    modules = dict(m.named_modules())
    for name in names:   # before any calibration pass
        if isinstance(modules.get(name), Conv2d) and modules[name].groups != 1:
            raise ValidationError(f"layer {name!r}", "groups=1 (its im2col matrix is pruned)", modules[name].groups)
    report = {}
    for name, layer, hessian, x_rows in layerwise_hessians(m, names, calibration_batches):
        w = layer.weight.to_dense()
        w2 = w.reshape(w.shape[0], -1)
        pruned, keep = sparsegpt_prune(w2, hessian, sparsity=sparsity, n_m=n_m, percdamp=percdamp,
                                       block_size=block_size)
        d = x_rows @ (pruned.astype(np.float64) - w2).T
        report[name] = {"sparsity": float(1.0 - keep.mean()), "output_mse": float(np.mean(d * d))}
        layer.weight = Dense(pruned.reshape(w.shape), mask=keep.reshape(w.shape))
    return m, report
