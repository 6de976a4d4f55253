"""Numba twin of eq. DQ3 of refcomp.ops.dynamic_quantize_linear (backend="numba").

    y[i] = clip(rint(x[i] / y_scale) + y_zero_point, 0, 255)  -> uint8         (eq. DQ3)

x float32 (any shape, made contiguous), y_scale and y_zero_point float32
scalars computed by the op (eqs. DQ1, DQ2 stay in NumPy, the definition). Each
step is the same float32 IEEE operation as NumPy's: one division, rint (round
half to even in the default rounding mode, ``llvm.rint``), one addition of an
integer-valued float32 (exact), the clip, and the cast of an integer-valued
float in [0, 255]. One pass over x instead of NumPy's five (divide, rint, add,
clip, cast), so the same bytes for every finite x (the op rejects the others
before calling).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._threads import parallel_region

__all__ = ["quantize_dq3"]

_SERIAL_BELOW = 1 << 16  # elements: below this a second thread costs more than it saves


@njit(parallel=True, cache=True)
def _dq3(x, scale, zp, out):  # pragma: no cover - compiled
    lo, hi = np.float32(0), np.float32(255)
    for i in prange(x.size):
        v = np.rint(x[i] / scale) + zp
        out[i] = np.uint8(min(max(v, lo), hi))


def quantize_dq3(x: np.ndarray, y_scale, y_zero_point) -> np.ndarray:
    """uint8 clip(rint(x / y_scale) + y_zero_point, 0, 255) of float32 x, same shape (eq. DQ3)."""
    flat = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
    with parallel_region(1 if flat.size < _SERIAL_BELOW else None):
        out = np.empty(flat.size, np.uint8)
        if flat.size:
            _dq3(flat, np.float32(y_scale), np.float32(y_zero_point), out)
        return out.reshape(np.shape(x))
