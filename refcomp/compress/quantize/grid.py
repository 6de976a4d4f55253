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

Scales are stored as float32 and the codes are computed from that stored
float32 value, so ŵ is exactly what a reader of (q, s, z) reconstructs. A group
whose range is 0 (or so small that s underflows float32) gets s = 1 and
all-zero codes: ŵ = 0, the error is below 2e-43.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...checks import integer
from ...errors import ShapeError, ValidationError
from ...formats.qtensor import QTensor
from ...quant import QParams, qdtype

__all__ = ["GroupQuantized", "code_range", "grid_params", "quantize_to_grid", "make_group_quantized",
           "check_bits", "check_group_size"]


def check_bits(bits) -> int:
    b = integer(bits, "bits", minimum=2)
    if b > 8:
        raise ValidationError("bits", "an integer in [2, 8] (codes are stored one per int8/uint8)", repr(bits))
    return b


def check_group_size(group_size, n_in: int) -> int:
    """Columns per group; None means one group per row (per-channel)."""
    if n_in < 1:
        raise ShapeError("w", "at least one input column", f"{n_in} columns")
    if group_size is None:
        return n_in
    return min(integer(group_size, "group_size", minimum=1), n_in)


def code_range(bits: int, symmetric: bool) -> tuple[int, int]:
    """(qmin, qmax) of the codes: signed for symmetric grids, unsigned otherwise."""
    if symmetric:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def grid_params(w: np.ndarray, bits: int, symmetric: bool) -> tuple[np.ndarray, np.ndarray]:
    """Scale (float32) and zero point (int32) per row of ``w`` (rows, k), eqs. (1)-(2)."""
    w = np.asarray(w, dtype=np.float64)
    if symmetric:
        scale = np.max(np.abs(w), axis=1) / (2 ** (bits - 1) - 1)
    else:
        lo = np.minimum(np.min(w, axis=1), 0.0)
        hi = np.maximum(np.max(w, axis=1), 0.0)
        scale = (hi - lo) / (2**bits - 1)
    scale = scale.astype(np.float32)
    scale[scale == 0] = 1.0
    if symmetric:
        zero = np.zeros(w.shape[0], dtype=np.int32)
    else:
        zero = np.clip(np.rint(-lo / scale.astype(np.float64)), 0, 2**bits - 1).astype(np.int32)
    return scale, zero


def quantize_to_grid(w: np.ndarray, scale: np.ndarray, zero: np.ndarray, bits: int, symmetric: bool) -> np.ndarray:
    """Codes q of eq. (3) for ``w`` (rows,) or (rows, k) with one scale / zero per row (int64)."""
    qmin, qmax = code_range(bits, symmetric)
    w = np.asarray(w, dtype=np.float64)
    s = np.asarray(scale, dtype=np.float64)
    z = np.asarray(zero, dtype=np.int64)
    if w.ndim == 2:
        s, z = s[:, None], z[:, None]
    return np.clip(np.rint(w / s) + z, qmin, qmax).astype(np.int64)


@dataclass(frozen=True)
class GroupQuantized:
    """Integer codes of a 2-D weight with one (scale, zero point) per (row, group).

    codes : (out, in) int8 (symmetric) or uint8 (asymmetric), one code per byte
    scales : (out, n_groups) float32
    zero_points : (out, n_groups) int32, all 0 when symmetric
    bits, group_size, symmetric : the grid (module docstring)

    ``dequantize()`` gives ŵ = s·(q − z) (eq. 3) as float32; ``nbytes`` counts
    the codes packed at ``bits`` bits, float32 scales and the zero points
    packed at ``bits`` bits unless all are 0 — the size a packed file would
    have (the same count as QTensor's).
    """

    codes: np.ndarray
    scales: np.ndarray
    zero_points: np.ndarray
    bits: int
    group_size: int
    symmetric: bool

    def __post_init__(self):
        out, n_in = self.codes.shape
        n_groups = -(-n_in // self.group_size)
        for name in ("scales", "zero_points"):
            a = getattr(self, name)
            if a.shape != (out, n_groups):
                raise ShapeError(name, f"shape {(out, n_groups)} for codes {self.codes.shape} "
                                 f"and group_size {self.group_size}", f"shape {a.shape}")

    @property
    def shape(self) -> tuple[int, int]:
        return self.codes.shape

    def group_index(self) -> np.ndarray:
        """Group of every input column: j // group_size, shape (in,)."""
        return np.arange(self.codes.shape[1]) // self.group_size

    def dequantize(self) -> np.ndarray:
        g = self.group_index()
        s = self.scales.astype(np.float64)[:, g]
        z = self.zero_points.astype(np.int64)[:, g]
        return ((self.codes.astype(np.int64) - z) * s).astype(np.float32)

    def to_qtensor(self):
        """The same codes and scales as a refcomp.formats.QTensor (bits 2, 4 or 8).

        Per-channel grids become a per-axis QParams (axis 0, scale (out,));
        grouped grids a per-block QParams (axis 1, block_size = group_size,
        scale (out, n_groups)) — the ONNX blocked layout, so the result
        dequantizes to exactly ``dequantize()``. Dtype int<b> (symmetric) or
        uint<b> (asymmetric), full dtype range: GPTQ's error feedback can
        reach the code −2^(b−1) that RTN's symmetric scale never uses.
        """
        if self.bits not in (2, 4, 8):
            raise ValidationError("bits", "2, 4 or 8 (a QDType exists for them)", self.bits)
        dt = qdtype(("int" if self.symmetric else "uint") + str(self.bits))
        zp = self.zero_points.astype(np.int64).astype(dt.np_dtype)
        if self.group_size >= self.codes.shape[1]:
            qp = QParams(self.scales[:, 0], zp[:, 0], dt, axis=0)
        else:
            qp = QParams(self.scales, zp, dt, axis=1, block_size=self.group_size)
        return QTensor(self.codes.astype(np.int64).astype(dt.np_dtype), qp)

    @property
    def nbytes(self) -> int:
        """Packed size, the convention of refcomp.formats.QTensor: each array rounded up to whole bytes."""
        n = -(-self.codes.size * self.bits // 8) + self.scales.size * 4
        if np.any(self.zero_points != 0):  # a zero point of 0 everywhere is ONNX's default: not stored
            n += -(-self.zero_points.size * self.bits // 8)
        return n


def make_group_quantized(codes, scales, zeros, bits, group_size, symmetric) -> GroupQuantized:
    """Pack int64 working arrays into a GroupQuantized with storage dtypes."""
    return GroupQuantized(
        codes=np.asarray(codes).astype(np.int8 if symmetric else np.uint8),
        scales=np.asarray(scales, dtype=np.float32),
        zero_points=np.asarray(zeros, dtype=np.int32),
        bits=bits,
        group_size=group_size,
        symmetric=symmetric,
    )
