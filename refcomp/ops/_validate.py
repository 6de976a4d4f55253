"""Input checks shared by the ops: each raises a refcomp.errors exception naming the argument.

The ops validate everything before any arithmetic (and before a native kernel
is called), so a bad input never becomes a crash, a NaN or a wrong answer.
"""

from __future__ import annotations

import numpy as np

from ..errors import DTypeError, ShapeError, ValidationError
from ..numerics.dtypes import ONNX_FLOAT_TYPES, QDType, qdtype

FLOAT_DTYPES = tuple(ONNX_FLOAT_TYPES.values())  # float32, float16, bfloat16


def array(x, name: str) -> np.ndarray:
    """``x`` as an ndarray (no copy when it already is one); reject objects and strings."""
    if x is None:
        raise ValidationError(name, "an array", "None")
    a = np.asarray(x)
    # ml_dtypes types (int4, float8, bfloat16 ...) have kind "V" but no fields.
    if a.dtype.kind in "OUSMm" or (a.dtype.kind == "V" and a.dtype.names is not None):
        raise DTypeError(name, "a numeric array", f"dtype {a.dtype}")
    return a


def one_of(a: np.ndarray, name: str, dtypes) -> None:
    dts = tuple(np.dtype(d) for d in dtypes)
    if a.dtype not in dts:
        raise DTypeError(name, "dtype in (" + ", ".join(str(d) for d in dts) + ")", f"dtype {a.dtype}")


def float_input(x, name: str) -> np.ndarray:
    """A float32 / float16 / bfloat16 tensor (the ONNX T1 of the quantization ops)."""
    a = array(x, name)
    one_of(a, name, FLOAT_DTYPES)
    return a


def finite(a: np.ndarray, name: str) -> None:
    """No NaN / Inf in ``a`` (checked in float32, which holds every float16/bfloat16 value)."""
    f = a.astype(np.float32, copy=False)
    if not np.all(np.isfinite(f)):
        bad = f[~np.isfinite(f)].ravel()[0]
        raise ValidationError(name, "finite values (no NaN or Inf)", f"{bad} at flat index {int(np.flatnonzero(~np.isfinite(f.ravel()))[0])}")


def scale(x, name: str) -> np.ndarray:
    """A scale: float32/float16/bfloat16, every element finite and > 0."""
    a = float_input(x, name)
    f = a.astype(np.float32, copy=False)
    if f.size == 0:
        raise ShapeError(name, "a non-empty scale", f"shape {a.shape}")
    if not np.all(np.isfinite(f) & (f > 0)):
        bad = f[~(np.isfinite(f) & (f > 0))].ravel()[0]
        raise ValidationError(name, "finite values > 0", f"{bad}")
    return a


def integer_in_range(a: np.ndarray, name: str, q: QDType) -> None:
    """Values of an integer-valued array inside [q.qmin, q.qmax]."""
    if a.size == 0:
        return
    lo, hi = int(a.min()), int(a.max())
    if lo < q.qmin or hi > q.qmax:
        raise ValidationError(name, f"values in [{int(q.qmin)}, {int(q.qmax)}] ({q.name})", f"range [{lo}, {hi}]")


def quantized_dtype_of(a: np.ndarray, name: str) -> QDType:
    return qdtype(a.dtype, name)


def int_attr(v, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise ValidationError(name, "an int", repr(v))
    return int(v)


def normalize_axis(axis, ndim: int, name: str = "axis") -> int:
    axis = int_attr(axis, name)
    if not -ndim <= axis < ndim:
        raise ValidationError(name, f"an int in [{-ndim}, {ndim - 1}] for a {ndim}-D input", axis)
    return axis % ndim
