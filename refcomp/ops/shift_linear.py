"""A Linear layer whose weights are ±2^e: products are shifts, the requantization is a rounding shift.

Logarithmic (power-of-two) weights (Miyashita, Lee, Murmann 2016,
arXiv:1603.01025, §3-4) ŵ = sign · 2^(e_min + shift), sign ∈ {−1, 0, 1},
shift ≥ 0, so x · ŵ = sign · (x << shift) · 2^e_min: the integer part of a
layer needs no multiplier. With integer activations x (scale 2^f_x), the
accumulator (scale 2^(f_x + e_min)) and the next layer's codes (scale
2^f_y) are::

    acc[m, n] = Σ_k sign[n, k] · (x[m, k] << shift[n, k])  +  bias[n]         (eq. P1, int64, exact)
    y[m, n]   = clip( rshift(acc[m, n], r),  qmin, qmax )                     (eq. P2)
    rshift(a, r) = (a + 2^(r−1)) >> r    for r ≥ 1      (arithmetic shift)
                 = a << −r               for r ≤ 0

with r = f_y − f_x − e_min. rshift rounds a / 2^r to the nearest integer,
ties toward +∞ (floor(a / 2^r + 1/2): −2.5 → −2, 2.5 → 3), the rounding of
an arithmetic shift with the usual +half offset (gemmlowp's RoundingDivideByPOT
rounds ties away from zero instead; this is the one-instruction form).
The clip saturates (qmin, qmax given: [0, 2^b − 1] after a fused ReLU).

x integer (M, K), sign int8 (N, K), shift integer (N, K) in [0, 62], bias
int64 (N,) or None, r an int in [−62, 62] → int64 (M, N) (int32 range when
qmin, qmax are). Precondition, checked: K · max|x| · 2^max(shift) + max|bias|
< 2^62 and, for r < 0, the same bound times 2^−r, so no int64 overflows.
Below 2^53 the sums run in float64 (exact: integers), above in int64.
"""

from __future__ import annotations

import numpy as np

from ..checks import integer, numeric_array
from ..errors import DTypeError, ShapeError, ValidationError

__all__ = ["shift_linear", "rshift_round"]


def rshift_round(a, r: int) -> np.ndarray:
    """eq. P2's rshift: (a + 2^(r−1)) >> r for r ≥ 1 (ties toward +∞), a << −r for r ≤ 0; a int64."""
    a = np.asarray(a, dtype=np.int64)
    if r <= 0:
        return a << np.int64(-r)
    return (a + np.int64(1 << (r - 1))) >> np.int64(r)


def _int_array(v, argument, ndim):
    v = numeric_array(v, argument)
    if v.dtype.kind not in "iu" or v.dtype == np.uint64:
        raise DTypeError(argument, "a signed or unsigned integer array (not uint64)", f"dtype {v.dtype}")
    if v.ndim != ndim:
        raise ShapeError(argument, f"a {ndim}-D array", f"shape {v.shape}")
    return v.astype(np.int64)


def shift_linear(x, sign, shift, bias, r, *, qmin: int, qmax: int) -> np.ndarray:
    """eqs. P1-P2: clip(rshift(Σ_k sign·(x << shift) + bias, r), qmin, qmax) as int64 (M, N)."""
    x = _int_array(x, "x", 2)
    sign = numeric_array(sign, "sign")
    if sign.dtype != np.int8:
        raise DTypeError("sign", "an int8 array", f"dtype {sign.dtype}")
    if sign.ndim != 2 or sign.shape[1] != x.shape[1]:
        raise ShapeError("sign", f"(N, {x.shape[1]}) (x has K = {x.shape[1]})", f"shape {sign.shape}")
    if sign.size and np.abs(sign.astype(np.int16)).max() > 1:
        raise ValidationError("sign", "values in {-1, 0, 1}", f"range [{sign.min()}, {sign.max()}]")
    shift = _int_array(shift, "shift", 2)
    if shift.shape != sign.shape:
        raise ShapeError("shift", f"the shape of sign {sign.shape}", f"shape {shift.shape}")
    if shift.size and (shift.min() < 0 or shift.max() > 62):
        raise ValidationError("shift", "values in [0, 62]", f"range [{shift.min()}, {shift.max()}]")
    n = sign.shape[0]
    b = np.zeros(n, np.int64) if bias is None else _int_array(bias, "bias", 1)
    if b.shape != (n,):
        raise ShapeError("bias", f"shape ({n},)", f"shape {b.shape}")
    r = integer(r, "r", minimum=-62, maximum=62)
    qmin, qmax = integer(qmin, "qmin"), integer(qmax, "qmax")
    if qmin > qmax:
        raise ValidationError("qmin, qmax", "qmin <= qmax", f"{qmin} > {qmax}")
    big = x.shape[1] * (int(np.abs(x).max()) if x.size else 0) * 2 ** (int(shift.max()) if shift.size else 0)
    bound = (big + (int(np.abs(b).max()) if n else 0)) * 2 ** max(0, -r)
    if bound >= 2**62:
        raise ValidationError("x, shift, bias", "K·max|x|·2^max(shift) + max|bias| (times 2^-r) < 2^62",
                              f"{bound}")
    if big < 2**53:
        # every product and partial sum is an integer below 2^53: float64 (BLAS) adds them exactly, in any order
        w = sign.astype(np.float64) * np.exp2(shift.astype(np.float64))
        acc = (x.astype(np.float64) @ w.T).astype(np.int64) + b
    else:
        # Σ_k sign·(x << shift) grouped by shift value e: Σ_e (Σ_{k: shift = e} sign·x) << e, the same integers
        acc = np.tile(b, (x.shape[0], 1))
        for e in np.unique(shift):
            acc += (x @ np.where(shift == e, sign, 0).astype(np.int64).T) << np.int64(e)
    return np.clip(rshift_round(acc, r), qmin, qmax)
