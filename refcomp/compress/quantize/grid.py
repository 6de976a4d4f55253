"""The uniform integer grid that weight-only quantizers (RTN, GPTQ) round onto.

A 2-D weight W (out, in) is cut along its input dimension into groups of
``group_size`` consecutive columns (the last group may be shorter); every
(row, group) pair has its own scale s and zero point z. Column j belongs to
group ``j // group_size``; ``group_size = in`` is per-output-channel
quantization. See docs/gptq_and_ptq.md, eqs. (1)-(3).

Symmetric (default), b bits, signed codes in [-2^(b-1), 2^(b-1) - 1]::

    s = max|w| / (2^(b-1) - 1),  z = 0                                   (1)

Asymmetric (the min-max grid of the GPTQ reference code), unsigned codes in
[0, 2^b - 1]; the range is widened to contain 0 so that 0 is exact::

    lo = min(min w, 0),  hi = max(max w, 0)
    s = (hi - lo) / (2^b - 1),  z = round_half_even(-lo / s)             (2)

Both::

    q = clip(round_half_even(w / s) + z, qmin, qmax),   ŵ = s·(q - z)    (3)

(1) and (2) are refcomp.quant.choose_qparams (docs/quantization.md eqs. 4-8)
with b-bit codes: (1) is its symmetric rule on the restricted range
[-(2^(b-1) - 1), 2^(b-1) - 1], (2) its asymmetric rule on [0, 2^b - 1]
(z = qmin - round(lo / s) = round(-lo / s) since half-to-even rounding is
odd-symmetric). Scales are stored as float32 and the zero point and codes
are computed from that stored value, so ŵ is exactly what a reader of
(q, s, z) reconstructs. A group whose range is 0 gets s = 1 and all-zero
codes (ŵ = 0); a scale below the smallest normal float32 is raised to it.

The result is a refcomp.formats.QTensor: per-axis QParams (axis 0, one scale
per row) for per-channel grids, per-block QParams (axis 1, block_size =
group_size, scale (out, n_groups)) for groups — the ONNX layouts. The codes
saturate to the full b-bit range [qmin, qmax] of (3), not to the restricted
range (1) chooses its scale on: GPTQ's error feedback can reach -2^(b-1).
Widths 2, 4 and 8 are the dtypes int2/int4/int8 (uint2/uint4/uint8 when
asymmetric, sub-byte codes packed); 3, 5, 6 and 7 have no dtype and are held
in the smallest one that contains them (int4 / uint4 for 3 bits, int8 /
uint8 otherwise), QParams.qmin / qmax restricting the codes to b bits.
"""

from __future__ import annotations

import numpy as np

from ...checks import integer
from ...errors import ShapeError, ValidationError
from ...numerics.dtypes import QDType, qdtype
from ...quant import QParams, choose_qparams, quant_range

__all__ = ["check_bits", "check_group_size", "grid_dtype", "code_range", "group_ranges", "grid_qparams", "round_to_grid"]


def check_bits(bits) -> int:
    b = integer(bits, "bits", minimum=2)
    if b > 8:
        raise ValidationError("bits", "an integer in [2, 8] (codes are held in an 8-bit dtype at most)", repr(bits))
    return b


def check_group_size(group_size, n_in: int) -> int:
    """Columns per group; None means one group per row (per-channel)."""
    if n_in < 1:
        raise ShapeError("w", "at least one input column", f"{n_in} columns")
    if group_size is None:
        return n_in
    return min(integer(group_size, "group_size", minimum=1), n_in)


def grid_dtype(bits: int, symmetric: bool) -> QDType:
    """The dtype that holds b-bit codes: int<b> / uint<b> when it exists, else the smallest wider one."""
    width = next(w for w in (2, 4, 8) if w >= bits)
    return qdtype(("int" if symmetric else "uint") + str(width))


def code_range(bits: int, symmetric: bool) -> tuple[int, int]:
    """(qmin, qmax) of the b-bit codes of eq. (3): signed for symmetric grids, unsigned otherwise."""
    return quant_range(grid_dtype(bits, symmetric), bits=bits)


def group_ranges(w: np.ndarray, group_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(min, max) of every (row, group) of ``w`` (out, in): two (out, ceil(in / group_size)) arrays."""
    starts = np.arange(0, w.shape[1], group_size)
    return np.minimum.reduceat(w, starts, axis=1), np.maximum.reduceat(w, starts, axis=1)


def grid_qparams(w_min, w_max, bits: int, symmetric: bool, group_size: int | None = None) -> QParams:
    """The grids of eqs. (1)-(2) for the (row, group) ranges ``w_min``, ``w_max`` (out, n_groups).

    ``group_size`` None: one group per row (n_groups = 1), per-axis QParams
    (axis 0, scale (out,)); else per-block QParams (axis 1, block_size =
    group_size, scale (out, n_groups)). Scale and zero point are choose_qparams';
    the code range [qmin, qmax] is the full b-bit one of eq. (3).
    """
    dt = grid_dtype(bits, symmetric)
    w_min, w_max = np.asarray(w_min, dtype=np.float64), np.asarray(w_max, dtype=np.float64)
    if w_max.shape != w_min.shape:
        raise ShapeError("w_max", f"the shape of w_min {w_min.shape}", f"shape {w_max.shape}")
    if group_size is None:
        if w_min.ndim != 2 or w_min.shape[1] != 1:
            raise ShapeError("w_min", "one range per row, shape (out, 1), when group_size is None",
                             f"shape {w_min.shape}")
        layout = {"axis": 0}
        w_min, w_max = w_min[:, 0], w_max[:, 0]
    else:
        layout = {"axis": 1, "block_size": group_size}
    # eq. (1) is the symmetric rule on the restricted range -(2^(b-1) - 1) .. 2^(b-1) - 1
    try:
        qp = choose_qparams(w_min, w_max, dt, symmetric=symmetric, restricted_range=symmetric, bits=bits, **layout)
    except ValidationError as e:
        # the ranges are those of the caller's weights: the user passed w, not min_val / max_val
        if e.argument not in ("min_val", "max_val"):
            raise
        raise ValidationError("w", f"weights at {bits} bits with {e.expected} in every (row, group)", e.got) from None
    qmin, qmax = code_range(bits, symmetric)
    full = (qmin, qmax) == (dt.qmin, dt.qmax)
    return QParams(qp.scale, qp.zero_point, dt, qmin=None if full else qmin, qmax=None if full else qmax,
                   **layout)


def round_to_grid(w: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, qmin: int, qmax: int) -> np.ndarray:
    """Codes q of eq. (3), int64, for ``w`` and ``scale`` / ``zero_point`` broadcastable to it.

    Computed in float64 (w / s, one rounding, half to even), so GPTQ's
    error-updated float64 weights are rounded as they are; QuantizeLinear
    (refcomp.quant.quantize) would first round w and w / s to float32.
    """
    w = np.asarray(w, dtype=np.float64)
    s = np.asarray(scale, dtype=np.float64)
    z = np.asarray(zero_point, dtype=np.int64)
    return np.clip(np.rint(w / s) + z, qmin, qmax).astype(np.int64)
