"""What every observer shares: input checks, per-channel layout, QParams at the end.

An observer sees calibration batches one at a time (``observe(x)``), keeps a
small summary of them (a running min/max, a histogram ...) and at the end
turns the range it selected into QParams with :func:`choose_qparams`
(docs/quantization.md §3 and §7).

Per-tensor (``axis=None``) the summary covers all elements; per-channel
(``axis=a``) there is one summary per index along axis ``a``, computed from
that slice alone, so a per-channel observer equals a per-tensor observer fed
slice by slice.

Input policy: ``x`` must be a non-empty NumPy float array (float16/32/64 or
bfloat16); NaN or Inf anywhere raises ValidationError, because a range
calibrated from them would be meaningless (a NaN poisons min/max, an Inf
makes the scale infinite).
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from ...errors import DTypeError, ShapeError, ValidationError
from ...numerics.dtypes import qdtype
from ..choose import choose_qparams, quant_range
from ..qparams import QParams

__all__ = ["Observer"]

_FLOAT_INPUTS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64), np.dtype(ml_dtypes.bfloat16))


class Observer:
    """Base class. Subclasses implement ``_update(rows)`` and ``_range()``.

    Parameters
    ----------
    dtype : quantized dtype of the QParams to produce.
    symmetric, restricted_range, reduce_range : the scheme (see choose_qparams).
    axis : None (per-tensor) or the channel axis of the observed tensors.
    """

    def __init__(self, dtype="int8", *, symmetric=False, restricted_range=False, reduce_range=False, axis=None):
        self.dtype = qdtype(dtype, "dtype")
        quant_range(self.dtype, restricted_range=restricted_range, reduce_range=reduce_range)  # fail early
        if not isinstance(symmetric, (bool, np.bool_)):
            raise ValidationError("symmetric", "True or False", repr(symmetric))
        if axis is not None and (isinstance(axis, bool) or not isinstance(axis, (int, np.integer))):
            raise ValidationError("axis", "None or an int", repr(axis))
        self.symmetric = bool(symmetric)
        self.restricted_range = bool(restricted_range)
        self.reduce_range = bool(reduce_range)
        self.axis = None if axis is None else int(axis)
        self.reset()

    def reset(self) -> None:
        """Forget every batch seen."""
        self.channels: int | None = None  # 1 per-tensor, else the length along axis
        self.batches = 0
        self.min_val: np.ndarray | None = None  # exact running min / max per channel
        self.max_val: np.ndarray | None = None
        self._reset()

    def _reset(self) -> None:
        pass

    # ---- input -------------------------------------------------------------
    def _rows(self, x) -> np.ndarray:
        """x -> float64 array [channels, n] (one row per channel; one row per-tensor)."""
        if not isinstance(x, np.ndarray):
            raise DTypeError("x", "a numpy.ndarray", type(x).__name__)
        if x.dtype not in _FLOAT_INPUTS:
            raise DTypeError("x", "a float array (float16, float32, float64 or bfloat16)", f"dtype {x.dtype}")
        if x.size == 0:
            raise ShapeError("x", "a non-empty array", f"shape {x.shape}")
        if self.axis is None:
            rows = x.reshape(1, -1)
        else:
            if not -x.ndim <= self.axis < x.ndim:
                raise ValidationError("axis", f"an int in [{-x.ndim}, {x.ndim - 1}] for x of rank {x.ndim}", self.axis)
            rows = np.moveaxis(x, self.axis, 0).reshape(x.shape[self.axis], -1)
        rows = rows.astype(np.float64)
        if not np.isfinite(rows).all():
            n = int((~np.isfinite(rows)).sum())
            raise ValidationError("x", "finite values (an observer cannot calibrate from NaN/Inf)", f"{n} NaN/Inf")
        if self.channels is not None and rows.shape[0] != self.channels:
            raise ShapeError("x", f"{self.channels} channels along axis {self.axis} (as before)", f"{rows.shape[0]}")
        return rows

    def observe(self, x: np.ndarray) -> "Observer":
        """Accumulate one batch; returns self so calls chain: ``obs.observe(x).qparams()``."""
        rows = self._rows(x)
        self.channels = rows.shape[0]
        mn, mx = rows.min(axis=1), rows.max(axis=1)
        self._update(rows, mn, mx)
        self.min_val = mn if self.min_val is None else np.minimum(self.min_val, mn)
        self.max_val = mx if self.max_val is None else np.maximum(self.max_val, mx)
        self.batches += 1
        return self

    def _update(self, rows: np.ndarray, batch_min: np.ndarray, batch_max: np.ndarray) -> None:
        raise NotImplementedError

    # ---- output --------------------------------------------------------------
    def range(self) -> tuple[np.ndarray, np.ndarray]:
        """The selected (min_val, max_val): shape () per-tensor, (C,) per-channel."""
        if self.batches == 0:
            raise ValidationError("observer", "at least one observe(x) call before range()/qparams()", "no data")
        lo, hi = self._range()
        lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
        if self.axis is None:
            return lo.reshape(()), hi.reshape(())
        return lo, hi

    def _range(self) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def qparams(self) -> QParams:
        """QParams for the selected range (choose_qparams, eqs. 4-9)."""
        lo, hi = self.range()
        return choose_qparams(
            lo,
            hi,
            self.dtype,
            symmetric=self.symmetric,
            restricted_range=self.restricted_range,
            reduce_range=self.reduce_range,
            axis=self.axis,
        )

    def __repr__(self) -> str:
        scheme = "symmetric" if self.symmetric else "asymmetric"
        where = "per-tensor" if self.axis is None else f"axis={self.axis}"
        return f"{type(self).__name__}({self.dtype.name}, {scheme}, {where}, batches={self.batches})"
