"""Argument checks shared by the compression modules.

Each helper raises a :mod:`refcomp.errors` exception naming the argument, the
expectation and what came, before any computation starts.
"""

from __future__ import annotations

import numbers

import numpy as np

from .errors import DTypeError, ShapeError, ValidationError


def float_array(x, argument: str, *, allow_empty: bool = True) -> np.ndarray:
    """``x`` as a NumPy floating array (float32 kept, anything else -> float64), all finite."""
    a = np.asarray(x)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise DTypeError(argument, "a real numeric array", f"dtype {a.dtype}")
    if np.issubdtype(a.dtype, np.complexfloating):
        raise DTypeError(argument, "a real numeric array", f"dtype {a.dtype}")
    if a.dtype not in (np.float32, np.float64):
        a = a.astype(np.float64)
    if not allow_empty and a.size == 0:
        raise ShapeError(argument, "a non-empty array", f"shape {a.shape}")
    if a.size and not np.all(np.isfinite(a)):
        bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
        raise ValidationError(argument, "finite values (no NaN or inf)", f"{bad} non-finite values")
    return a


def ratio(value, argument: str) -> float:
    """A sparsity ratio: a real number in [0, 1) (1 would remove everything)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValidationError(argument, "a real number in [0, 1)", repr(value))
    v = float(value)
    if not (0.0 <= v < 1.0):
        raise ValidationError(argument, "a real number in [0, 1)", repr(value))
    return v


def integer(value, argument: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """A Python/NumPy integer (not bool) within [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValidationError(argument, "an integer", repr(value))
    v = int(value)
    lo = "-inf" if minimum is None else minimum
    hi = "inf" if maximum is None else maximum
    if (minimum is not None and v < minimum) or (maximum is not None and v > maximum):
        raise ValidationError(argument, f"an integer in [{lo}, {hi}]", repr(value))
    return v


def bool_mask(mask, shape: tuple[int, ...], argument: str = "mask") -> np.ndarray:
    """A boolean array of exactly ``shape`` (True = weight kept)."""
    m = np.asarray(mask)
    if m.dtype != bool:
        raise DTypeError(argument, "a boolean array (True = kept)", f"dtype {m.dtype}")
    if m.shape != tuple(shape):
        raise ShapeError(argument, f"shape {tuple(shape)}", f"shape {m.shape}")
    return m


def same_shape(a: np.ndarray, shape: tuple[int, ...], argument: str) -> None:
    if a.shape != tuple(shape):
        raise ShapeError(argument, f"shape {tuple(shape)}", f"shape {a.shape}")


def keep_top(scores: np.ndarray, n_keep: int) -> np.ndarray:
    """Boolean array of ``scores``' shape with exactly ``n_keep`` True: the largest scores.

    Ties are broken deterministically: among equal scores the element with the
    smaller row-major (C order) flat index is kept. (A stable sort of the
    negated scores puts equal scores in index order.)
    """
    flat = np.asarray(scores, dtype=np.float64).ravel()
    keep = np.zeros(flat.size, dtype=bool)
    if n_keep > 0:
        order = np.argsort(-flat, kind="stable")
        keep[order[:n_keep]] = True
    return keep.reshape(np.shape(scores))


def n_pruned(size: int, sparsity: float) -> int:
    """Number of elements to remove so that ``pruned / size`` is nearest ``sparsity``.

    k = floor(s·n + 1/2), so |k − s·n| ≤ 1/2: the requested sparsity within half a weight.
    """
    return min(size, int(np.floor(sparsity * size + 0.5)))
