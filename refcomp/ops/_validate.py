"""Input checks that are op semantics; the generic ones come from :mod:`refcomp.checks`.

The ops validate everything before any arithmetic (and before a native kernel
is called), so a bad input never becomes a crash, a NaN or a wrong answer.
What stays here, and why:

- ``scale``: the ONNX contract of a quantization scale (dtype T1 = float32,
  float16 or bfloat16; non-empty; every element finite and > 0).
- ``integer_in_range``: the value range of a quantized ONNX dtype (a QDType),
  e.g. a zero point of an int4 output inside [-8, 7].
"""

from __future__ import annotations

import numpy as np

from ..checks import dtype_in, numeric_array
from ..errors import ShapeError, ValidationError
from ..numerics.dtypes import ONNX_FLOAT_TYPES, QDType

FLOAT_DTYPES = tuple(ONNX_FLOAT_TYPES.values())  # float32, float16, bfloat16


def scale(x, name: str) -> np.ndarray:
    """A scale: float32/float16/bfloat16 (ONNX T1), non-empty, every element finite and > 0; no copy."""
    a = numeric_array(x, name)
    dtype_in(a, name, FLOAT_DTYPES)
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
