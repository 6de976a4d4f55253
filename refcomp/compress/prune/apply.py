"""Keeping pruned weights pruned during fine-tuning.

Han et al. 2015 (arXiv:1506.02626) §3 retrain the surviving connections only: a removed weight
must stay exactly 0, so its gradient and every optimizer buffer tied to it
(momentum, Adam moments) are zeroed too; otherwise momentum would revive it at
the next step. The trainer calls, after each backward pass and each update::

    apply_masks(mask, weight, weight_grad, momentum)

Zeroing is done by assignment (``a[~mask] = 0``), not by multiplication,
so a NaN or inf in a pruned slot cannot survive (NaN·0 = NaN) and −0.0 does
not appear.
"""

from __future__ import annotations

import numpy as np

from ...checks import bool_mask
from ...errors import DTypeError, ValidationError

__all__ = ["apply_mask", "apply_masks", "masked"]


def apply_mask(array: np.ndarray, mask) -> np.ndarray:
    """Set ``array[~mask] = 0`` in place and return ``array``.

    array : a writeable NumPy array (weight, gradient or optimizer buffer).
    mask : bool array of the same shape, True = kept.
    """
    if not isinstance(array, np.ndarray):
        raise DTypeError("array", "a NumPy ndarray (modified in place)", type(array).__name__)
    if not array.flags.writeable:
        raise ValidationError("array", "a writeable array (it is modified in place)", "a read-only array")
    m = bool_mask(mask, array.shape, "mask")
    array[~m] = 0
    return array


def apply_masks(mask, *arrays: np.ndarray) -> None:
    """:func:`apply_mask` on every array of ``arrays`` (weight, gradient, momentum…); ``None`` skipped."""
    for i, a in enumerate(arrays):
        if a is None:
            continue
        if not isinstance(a, np.ndarray):
            raise DTypeError(f"arrays[{i}]", "a NumPy ndarray (modified in place)", type(a).__name__)
        apply_mask(a, mask)


def masked(array, mask) -> np.ndarray:
    """A copy of ``array`` with the pruned entries set to 0 (``array`` untouched)."""
    a = np.array(array, copy=True)
    return apply_mask(a, mask)
