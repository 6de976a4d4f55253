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

from ...checks import float_array
from ...formats.qtensor import QTensor
from .grid import check_bits, check_group_size, grid_qparams, group_ranges, round_to_grid

__all__ = ["rtn_quantize"]


def rtn_quantize(w, *, bits: int = 8, group_size: int | None = None, symmetric: bool = True) -> QTensor:
    """Quantize ``w`` (out, in) by rounding each weight to its group's grid.

    Parameters
    ----------
    w : (out, in) real array, finite.
    bits : 2..8; codes int<b> (symmetric) / uint<b> (asymmetric), held in int4 / int8
        (uint4 / uint8) for the widths without a dtype (grid module docstring).
    group_size : input columns per scale; None (or >= in) = one scale per output row.
    symmetric : eq. (1) (z = 0) or the min-max grid of eq. (2).

    Returns
    -------
    QTensor
        (out, in): per-axis QParams (axis 0, float32 scale (out,))
        per channel, per-block QParams (axis 1, block_size = group_size, scale
        (out, n_groups)) in groups. ``to_dense()`` is ŵ = s·(q − z) (eq. 3), float32.
    """
    # read only, so no copy; any float dtype will do: group_ranges' min / max are exact in it and
    # grid_qparams / round_to_grid widen to float64 (exactly) before they divide
    w = float_array(w, "w", ndim=2)
    b = check_bits(bits)
    g = check_group_size(group_size, w.shape[1])
    symmetric = bool(symmetric)
    qp = grid_qparams(*group_ranges(w, g), b, symmetric, None if g == w.shape[1] else g)
    scale, zero_point = qp.expand(w.shape)
    codes = round_to_grid(w, scale, zero_point, qp.qmin, qp.qmax)
    return QTensor(codes.astype(qp.dtype.np_dtype), qp)
