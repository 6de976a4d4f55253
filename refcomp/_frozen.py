"""Read-only arrays that cannot be made writeable again.

``a.flags.writeable = False`` is advice: whoever holds the array (or its
base) can set the flag back to True and write. The kernels trust what a
format validated once (CSR column indices and row offsets go to C and Numba
unchecked), so a validated array must stay valid. :func:`frozen` copies the
array into an immutable ``bytes`` object and views it: NumPy refuses to make
an array over read-only memory writeable ("cannot set WRITEABLE flag to True
of this array"), and no writeable view of it can be made. Circumvention on
purpose (ctypes, writing through a raw pointer) is out of reach of any Python
check and out of scope.

Alignment: the view starts where CPython puts a bytes object's payload, on a
16-byte boundary (the allocators' alignment), so it is aligned for every
NumPy dtype of at most 16 bytes. The C wrappers do not rely on it: they copy
any misaligned operand (refcomp.kernels.c).

This module sits in the bottom layer: it imports nothing of refcomp.
"""

from __future__ import annotations

import numpy as np

__all__ = ["frozen", "is_frozen"]


def frozen(a, dtype=None) -> np.ndarray:
    """A C-contiguous copy of ``a`` (as ``dtype``) whose WRITEABLE flag can never be set."""
    a = np.ascontiguousarray(a, dtype=dtype)
    return np.frombuffer(a.tobytes(), dtype=a.dtype).reshape(a.shape)


def is_frozen(a) -> bool:
    """True when ``a`` is read-only and NumPy would refuse to make it writeable."""
    if not isinstance(a, np.ndarray) or a.flags.writeable:
        return False
    base = a
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    return isinstance(base, bytes)
