"""Argument checks shared by the array-level compression algorithms.

Each check raises a refcomp.errors exception naming the argument, what was
expected and what came, before any arithmetic runs (so bad input never turns
into a NaN or a wrong answer further down).
"""

from __future__ import annotations

import numbers

import ml_dtypes
import numpy as np

from ...errors import DTypeError, ShapeError, ValidationError

__all__ = ["float_array", "positive_int", "fraction", "one_of"]


def float_array(x, name: str, *, ndim=None, finite: bool = True, dtype=np.float64) -> np.ndarray:
    """``x`` as a float array (a copy in ``dtype``), checked for ndim and finiteness.

    ndim: an int or a tuple of allowed ints (None: any).
    """
    a = np.asarray(x)
    if not _is_real(a.dtype):
        raise DTypeError(name, "a real (float or integer) array", f"dtype {a.dtype}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if a.ndim not in allowed:
            want = " or ".join(f"{d}-D" for d in allowed)
            raise ShapeError(name, f"a {want} array", f"shape {a.shape}")
    out = np.array(a, dtype=dtype)
    if finite and not np.all(np.isfinite(out)):
        bad = int(np.size(out) - np.count_nonzero(np.isfinite(out)))
        raise ValidationError(name, "finite values", f"{bad} NaN/inf entries")
    return out


def _is_real(dt: np.dtype) -> bool:
    if dt.kind in "fiu":
        return True
    try:  # ml_dtypes floats (bfloat16, float8 ...) have kind "V"
        ml_dtypes.finfo(dt)
    except (TypeError, ValueError):
        return False
    return True


def positive_int(v, name: str, *, minimum: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or int(v) < minimum:
        raise ValidationError(name, f"an integer >= {minimum}", repr(v))
    return int(v)


def fraction(v, name: str, *, low: float = 0.0, high: float = 1.0,
             low_open: bool = False, high_open: bool = False) -> float:
    """A real number in [low, high] (ends open where asked)."""
    ok = isinstance(v, numbers.Real) and not isinstance(v, bool) and np.isfinite(v)
    if ok:
        ok = (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    if not ok:
        lb = "(" if low_open else "["
        rb = ")" if high_open else "]"
        raise ValidationError(name, f"a real number in {lb}{low}, {high}{rb}", repr(v))
    return float(v)


def one_of(v, name: str, choices) -> object:
    if v not in choices:
        raise ValidationError(name, f"one of {tuple(choices)}", repr(v))
    return v
