"""Round-to-nearest (RTN) weight-only quantization of a 2-D weight.

Every weight is rounded independently onto the grid of its (row, group),
refcomp.compress.quantize.grid eqs. (1)-(3) (docs/gptq_and_ptq.md §1):

    q_ij = clip(round_half_even(w_ij / s_{i,g(j)}) + z_{i,g(j)}, qmin, qmax)

with g(j) = j // group_size. The usual settings:

    int8 per output channel      rtn_quantize(w, bits=8)
    int4 groups of 32/64/128     rtn_quantize(w, bits=4, group_size=128)

RTN is the baseline GPTQ improves on: it minimises each |w − ŵ| alone and
ignores how the errors of different inputs add up in the layer output.
"""

from __future__ import annotations

import numpy as np

from ...checks import float_array
from .grid import GroupQuantized, check_bits, check_group_size, grid_params, make_group_quantized, quantize_to_grid

__all__ = ["rtn_quantize", "rtn_dequantize"]


def rtn_quantize(w, *, bits: int = 8, group_size: int | None = None, symmetric: bool = True) -> GroupQuantized:
    """Quantize ``w`` (out, in) by rounding each weight to its group's grid.

    Parameters
    ----------
    w : (out, in) real array, finite.
    bits : 2..8; codes int8 (symmetric) / uint8 (asymmetric).
    group_size : input columns per scale; None = one scale per output row.
    symmetric : eq. (1) (z = 0) or the min-max grid of eq. (2).

    Returns a GroupQuantized (codes, float32 scales (out, n_groups), zero points).
    """
    w = float_array(w, "w", ndim=2, dtype=np.float64, copy=True)
    b = check_bits(bits)
    g = check_group_size(group_size, w.shape[1])
    out, n_in = w.shape
    n_groups = -(-n_in // g)
    codes = np.empty((out, n_in), dtype=np.int64)
    scales = np.empty((out, n_groups), dtype=np.float32)
    zeros = np.empty((out, n_groups), dtype=np.int32)
    for k in range(n_groups):
        cols = slice(k * g, min((k + 1) * g, n_in))
        scales[:, k], zeros[:, k] = grid_params(w[:, cols], b, symmetric)
        codes[:, cols] = quantize_to_grid(w[:, cols], scales[:, k], zeros[:, k], b, symmetric)
    return make_group_quantized(codes, scales, zeros, b, g, bool(symmetric))


def rtn_dequantize(q: GroupQuantized) -> np.ndarray:
    """ŵ = s·(q − z), float32 (out, in)."""
    return q.dequantize()
