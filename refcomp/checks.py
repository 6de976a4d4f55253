"""The argument checks of refcomp: one function per contract.

Each check raises a :mod:`refcomp.errors` exception naming the argument, what
was expected and what came, before any computation starts (so bad input never
turns into a NaN, a crash or a wrong answer further down). Checks that encode
an operator's own semantics (the ONNX dtype tables, scale and zero-point
layout) live with the ops in :mod:`refcomp.ops._validate`.

This module sits in the bottom layer: it imports nothing of refcomp but
:mod:`refcomp.errors`.
"""

from __future__ import annotations

import math
import numbers

import ml_dtypes
import numpy as np

from .errors import DTypeError, ShapeError, ValidationError

__all__ = [
    "numeric_array", "dtype_in", "float_array", "float_tensor", "finite", "bool_mask", "same_shape",
    "integer", "int_pair", "normalize_axis", "real", "ratio", "one_of",
]


# ---------------------------------------------------------------- arrays

def numeric_array(x, argument: str) -> np.ndarray:
    """``np.asarray(x)``: no conversion, no copy when ``x`` already is an ndarray.

    Accepts any numeric dtype, the ml_dtypes ones (int4, float8, bfloat16 ...) included.
    Raises ValidationError for None and DTypeError for object, string, bytes,
    datetime, timedelta and structured dtypes.
    """
    if x is None:
        raise ValidationError(argument, "an array", "None")
    a = np.asarray(x)
    # ml_dtypes types (int4, float8, bfloat16 ...) have kind "V" but no fields.
    if a.dtype.kind in "OUSMm" or (a.dtype.kind == "V" and a.dtype.names is not None):
        raise DTypeError(argument, "a numeric array", f"dtype {a.dtype}")
    return a


def dtype_in(a: np.ndarray, argument: str, dtypes) -> None:
    """Raise DTypeError unless ``a.dtype`` is one of ``dtypes``."""
    dts = tuple(np.dtype(d) for d in dtypes)
    if a.dtype not in dts:
        raise DTypeError(argument, "dtype in (" + ", ".join(str(d) for d in dts) + ")", f"dtype {a.dtype}")


def _is_real(dt: np.dtype) -> bool:
    """bool, integer or floating: NumPy's or an ml_dtypes float (bfloat16, float8 ...)."""
    if dt.kind in "biuf":
        return True
    if dt.kind != "V" or dt.names is not None:
        return False
    try:  # ml_dtypes floats have kind "V"; ml_dtypes.finfo refuses its integers (int4 ...)
        ml_dtypes.finfo(dt)
    except (TypeError, ValueError):
        return False
    return True


def float_array(x, argument: str, *, dtype=None, copy: bool = False, ndim=None,
                finite: bool = True, allow_empty: bool = True) -> np.ndarray:
    """``x`` as a floating NumPy array, checked.

    Accepts a real array (or anything ``np.asarray`` makes one of): bool, integer
    or floating, ml_dtypes floats (bfloat16, float8 ...) included.

    Converts
        ``dtype=None``: float32 and float64 stay as they are, any other dtype
        becomes float64. ``dtype=np.float64`` / ``np.float32``: that dtype.
        ``copy=False`` converts only when needed (an ndarray already of the
        dtype comes back itself); ``copy=True`` always returns a new array.
    Checks
        ``ndim``: an int or a tuple of allowed ints (None: any), checked before converting.
        ``allow_empty=False``: at least one element.
        ``finite=True``: no NaN or inf, checked after converting (so an
        overflow of the cast to float32 is caught too).
    Raises
        DTypeError(argument, "a real numeric array", "dtype ...") for complex,
        object, string, datetime ... dtypes; ShapeError for a wrong ndim or an
        empty array; ValidationError from :func:`finite`.
    """
    a = np.asarray(x)
    if not _is_real(a.dtype):
        raise DTypeError(argument, "a real numeric array", f"dtype {a.dtype}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if a.ndim not in allowed:
            want = " or ".join(f"{d}-D" for d in allowed)
            raise ShapeError(argument, f"a {want} array", f"shape {a.shape}")
    if dtype is None:
        dtype = a.dtype if a.dtype in (np.float32, np.float64) else np.float64
    out = np.array(a, dtype=dtype) if copy else np.asarray(a, dtype=dtype)
    if not allow_empty and out.size == 0:
        raise ShapeError(argument, "a non-empty array", f"shape {out.shape}")
    if finite:
        _finite(out, argument)
    return out


def float_tensor(x, argument: str, ndim) -> np.ndarray:
    """``np.asarray(x)`` if its dtype is already floating and its rank allowed; no conversion, no copy.

    The input check of the nn layers: they compute in the dtype they are given
    (float32 or float64) and, like any framework, let NaN propagate.
    ndim: an int or a tuple of allowed ints.
    Raises DTypeError for a non-floating dtype (integers and bool included),
    ShapeError for a rank not allowed.
    """
    x = np.asarray(x)
    if x.dtype.kind != "f":
        raise DTypeError(argument, "a floating array", x.dtype)
    dims = (ndim,) if isinstance(ndim, int) else ndim
    if x.ndim not in dims:
        raise ShapeError(argument, f"rank {' or '.join(map(str, dims))}", f"shape {x.shape}")
    return x


def finite(a: np.ndarray, argument: str) -> None:
    """Raise ValidationError naming the first NaN / inf of the numeric array ``a`` (its flat index)."""
    _finite(a, argument)


# float_array's keyword ``finite`` hides the public function inside it, hence this private name
def _finite(a: np.ndarray, argument: str) -> None:
    ok = np.isfinite(a)
    if not np.all(ok):
        i = int(np.flatnonzero(~ok.ravel())[0])
        raise ValidationError(argument, "finite values (no NaN or inf)",
                              f"{a.ravel()[i]} at flat index {i} ({ok.size - np.count_nonzero(ok)} non-finite)")


def bool_mask(mask, shape: tuple[int, ...], argument: str = "mask") -> np.ndarray:
    """``np.asarray(mask)``, which must be a boolean array of exactly ``shape`` (True = weight kept); no copy.

    Raises DTypeError for any other dtype, ShapeError for another shape.
    """
    m = np.asarray(mask)
    if m.dtype != bool:
        raise DTypeError(argument, "a boolean array (True = kept)", f"dtype {m.dtype}")
    same_shape(m, shape, argument)
    return m


def same_shape(a: np.ndarray, shape: tuple[int, ...], argument: str) -> None:
    """Raise ShapeError unless ``a.shape == tuple(shape)``."""
    if a.shape != tuple(shape):
        raise ShapeError(argument, f"shape {tuple(shape)}", f"shape {a.shape}")


# --------------------------------------------------------------- scalars

def integer(value, argument: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as a Python int: a Python or NumPy integer (bool refused) in [minimum, maximum].

    None leaves that end open. Raises ValidationError(argument, <the contract>, repr(value)),
    the contract worded "an integer", "an integer >= m", "an integer <= M" or "an integer in [m, M]".
    """
    if minimum is None and maximum is None:
        want = "an integer"
    elif maximum is None:
        want = f"an integer >= {minimum}"
    elif minimum is None:
        want = f"an integer <= {maximum}"
    else:
        want = f"an integer in [{minimum}, {maximum}]"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValidationError(argument, want, repr(value))
    v = int(value)
    if (minimum is not None and v < minimum) or (maximum is not None and v > maximum):
        raise ValidationError(argument, want, repr(value))
    return v


def int_pair(value, argument: str, *, minimum: int | None = None) -> tuple[int, int]:
    """An integer or a tuple/list of two, each >= ``minimum``, as a tuple ``(a, b)`` of Python ints.

    Raises ValidationError for a sequence of another length, or as :func:`integer`.
    """
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValidationError(argument, "an int or a pair of ints", repr(value))
        return integer(value[0], argument, minimum=minimum), integer(value[1], argument, minimum=minimum)
    v = integer(value, argument, minimum=minimum)
    return v, v


def normalize_axis(value, ndim: int, argument: str = "axis") -> int:
    """An axis of an ``ndim``-D array, an integer in [-ndim, ndim), as a Python int in [0, ndim).

    Raises ValidationError(argument, ..., repr(value)) otherwise.
    """
    want = f"an integer in [{-ndim}, {ndim - 1}] for a {ndim}-D array"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not -ndim <= value < ndim:
        raise ValidationError(argument, want, repr(value))
    return int(value) % ndim


def real(value, argument: str, *, low: float = -np.inf, high: float = np.inf,
         low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a Python float: a finite real number (bool refused) in [low, high].

    ``low_open`` / ``high_open`` exclude that end (an infinite end is open anyway). Raises
    ValidationError(argument, "a real number in [low, high)" (brackets as the ends), repr(value)).
    """
    ok = (isinstance(value, numbers.Real) and not isinstance(value, bool)
          and (isinstance(value, numbers.Integral) or math.isfinite(value)))
    if ok:
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        lb = "(" if low_open or low == -np.inf else "["
        rb = ")" if high_open or high == np.inf else "]"
        raise ValidationError(argument, f"a real number in {lb}{low:g}, {high:g}{rb}", repr(value))
    return float(value)


def ratio(value, argument: str) -> float:
    """A sparsity ratio: ``real(value, argument, low=0, high=1, high_open=True)`` (1 would remove everything)."""
    return real(value, argument, low=0, high=1, high_open=True)


def one_of(value, argument: str, choices) -> object:
    """``value`` itself if it is in ``choices``; else ValidationError(argument, "one of (...)", repr(value))."""
    if value not in choices:
        raise ValidationError(argument, f"one of {tuple(choices)}", repr(value))
    return value
