"""How far an output ``b`` is from a reference output ``a``: the numbers of ``refcomp diff``.

Each takes two arrays of the same shape (any dtype; computed in float64) and
returns a Python float. ``a`` is the reference (model A), ``b`` the model
under test (model B), e = b − a.
"""

from __future__ import annotations

import math

import numpy as np

from ...errors import ShapeError

__all__ = ["cosine", "max_abs_error", "saturated_share", "sqnr_db"]


def _pair(a, b):
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ShapeError("b", f"{a.size} values (as a)", b.size)
    return a, b


def sqnr_db(a, b) -> float:
    """Signal-to-quantization-noise ratio SQNR = 10·log10(Σ a² / Σ (b − a)²) in dB.

    +inf when b equals a; −inf when a is all zero and b is not; higher is better.
    """
    a, b = _pair(a, b)
    noise = float(np.sum((b - a) ** 2))
    signal = float(np.sum(a * a))
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def cosine(a, b) -> float:
    """Cosine similarity ⟨a, b⟩ / (‖a‖·‖b‖) of the flattened outputs.

    1 when both are zero, 0 when exactly one is.
    """
    a, b = _pair(a, b)
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 or nb == 0.0:
        return 1.0 if na == nb else 0.0
    return float(np.dot(a, b) / (na * nb))


def max_abs_error(a, b) -> float:
    """max |b − a| over all elements (0 for empty arrays)."""
    a, b = _pair(a, b)
    return float(np.max(np.abs(b - a))) if a.size else 0.0


def saturated_share(codes, qmin: int, qmax: int) -> float:
    """Share of integer codes at the ends of their range: #{q = qmin or q = qmax} / #q.

    (A ReLU output whose zero point is qmin counts its zeros: they sit at the clip.)
    """
    q = np.asarray(codes)
    if q.size == 0:
        return 0.0
    return float(np.count_nonzero((q == qmin) | (q == qmax)) / q.size)
