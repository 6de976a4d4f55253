"""QParams: the scale, zero point and dtype of one quantized tensor.

A real value ``x`` and its quantized code ``q`` are tied by the affine map
(docs/quantization.md, eqs. 1-2; Jacob et al. 2018, eq. 1)::

    q = clip(round(x / scale) + zero_point, qmin, qmax)        (1)
    x ≈ (q - zero_point) · scale                               (2)

QParams holds ``scale`` and ``zero_point`` and says how they spread over the
tensor (docs/quantization.md §5):

=============  ==========================  ====================================
granularity    axis / block_size           scale.shape for x.shape = (D0..Dn)
=============  ==========================  ====================================
per-tensor     None / None                 ()
per-axis       a / None                    (Da,)
per-block      a / B                       like x but Da -> ceil(Da / B)
=============  ==========================  ====================================

These are exactly the three layouts of ONNX QuantizeLinear (opset 21+), so a
QParams maps one-to-one onto that op's ``y_scale``, ``y_zero_point``, ``axis``
and ``block_size``. Element ``j`` along the blocked axis uses scale
``j // B``; the last block may be shorter (ONNX accepts any B with
``ceil(Da / B) == scale.shape[a]``).

``qmin`` / ``qmax`` may narrow the integer range below the dtype's (symmetric
restricted range -127..127, or reduce_range's 7 bits); quantization then
saturates to that narrower range (eq. 1 with these bounds).

Validation happens at construction (every error names the argument):
scale finite and > 0 everywhere; zero_point integral, inside [qmin, qmax],
of the quantized dtype if given as an array, and 0 for the float dtypes
(float8, float4, float16, bfloat16: ONNX has no zero point for them);
shapes consistent with axis / block_size.
"""

from __future__ import annotations

import math
from typing import Any

import ml_dtypes
import numpy as np

from ..errors import DTypeError, ShapeError, ValidationError
from ..numerics.dtypes import QDType, qdtype

__all__ = ["QParams", "SCALE_DTYPES"]

#: dtypes a scale may be stored in (the float tensor types ONNX allows for y_scale).
SCALE_DTYPES = (np.dtype(np.float32), np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16))


def _is_int_like(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _as_scale(scale: Any) -> np.ndarray:
    """scale -> float array (float32 unless given as float16/bfloat16), checked finite > 0."""
    if isinstance(scale, np.ndarray) or isinstance(scale, np.generic):
        arr = np.asarray(scale)
    else:
        try:
            arr = np.asarray(scale, dtype=np.float64)
        except (TypeError, ValueError):
            raise DTypeError("scale", "real numbers", repr(scale)) from None
    if arr.dtype not in SCALE_DTYPES:
        if arr.dtype.kind not in "fiu":
            raise DTypeError("scale", "a real-valued array (float32, float16 or bfloat16)", str(arr.dtype))
        wide = arr.astype(np.float64)
        with np.errstate(over="ignore"):   # an overflow to inf is reported just below, by value
            arr = wide.astype(np.float32)
        # A value that is finite > 0 in float64 may not survive the float32 cast.
        bad = np.isfinite(wide) & (wide > 0) & ~(np.isfinite(arr) & (arr > 0))
        if bad.any():
            raise ValidationError(
                "scale", "values representable in float32 as finite numbers > 0", repr(float(wide[bad].flat[0]))
            )
    if arr.size == 0:
        raise ShapeError("scale", "at least one element", f"shape {arr.shape}")
    wide = arr.astype(np.float64)
    ok = np.isfinite(wide) & (wide > 0)
    if not ok.all():
        n_nan = int(np.isnan(wide).sum())
        n_inf = int(np.isinf(wide).sum())
        finite = wide[np.isfinite(wide)]
        low = float(finite.min()) if finite.size else float("nan")
        raise ValidationError("scale", "finite values > 0", f"min={low!r}, {n_nan} NaN, {n_inf} Inf")
    return arr


def _as_zero_point(zero_point: Any, dt: QDType, shape: tuple[int, ...], lo: int, hi: int) -> np.ndarray:
    """zero_point -> array of the quantized dtype with ``shape``; checked integral and in [lo, hi]."""
    if zero_point is None:
        return np.zeros(shape, dtype=dt.np_dtype)
    if isinstance(zero_point, (np.ndarray, np.generic)):
        arr = np.asarray(zero_point)
        if arr.dtype != dt.np_dtype:
            raise DTypeError("zero_point", f"an array of the quantized dtype {dt.name}", f"dtype {arr.dtype}")
        values = arr.astype(np.float64)
    else:
        # Plain Python numbers / lists (e.g. read from JSON): checked by value.
        flat = np.asarray(zero_point, dtype=object).ravel().tolist()
        if not all(_is_int_like(v) or (isinstance(v, float) and dt.is_float) for v in flat):
            raise DTypeError("zero_point", f"integers (or an array of dtype {dt.name})", repr(zero_point))
        values = np.asarray(zero_point, dtype=np.float64)
        arr = None
    if values.shape not in (shape, ()):
        raise ShapeError("zero_point", f"the shape of scale {shape}", f"shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValidationError("zero_point", "finite values", repr(zero_point))
    if dt.is_float:
        if (values != 0).any():
            raise ValidationError("zero_point", f"0 ({dt.name} has no zero point in ONNX)", repr(zero_point))
        return np.zeros(shape, dtype=dt.np_dtype)
    if (values < lo).any() or (values > hi).any():
        raise ValidationError(
            "zero_point",
            f"integers in [{lo}, {hi}] for {dt.name}",
            f"min={int(values.min())}, max={int(values.max())}",
        )
    if arr is None:
        arr = np.asarray(zero_point, dtype=np.int64).astype(dt.np_dtype)
    return np.broadcast_to(arr, shape).copy()


class QParams:
    """Scale, zero point, quantized dtype and layout (per-tensor / per-axis / per-block).

    Parameters
    ----------
    scale : float or array, finite > 0. Stored as float32 unless it already is
        float16 / bfloat16 (the scale types of ONNX QuantizeLinear).
        Shape () per-tensor, (C,) per-axis, x-like with ceil(Da / B) along
        ``axis`` per-block (a size-1 scale with ``axis=None`` is per-tensor).
    zero_point : int, ints, array of the quantized dtype, or None (= 0).
        Same shape as ``scale`` (a Python scalar is broadcast to it).
        Must lie in [qmin, qmax]; must be 0 for float dtypes.
    dtype : the quantized dtype (name, ONNX enum, NumPy dtype or QDType).
    axis : None for per-tensor, else the quantized axis of x (may be negative).
    block_size : None (or 0) unless per-block; then an int >= 1 and ``axis`` is required.
    qmin, qmax : optional narrower integer range (restricted range, reduce_range);
        default the dtype's range. Not allowed for float dtypes.

    Notes
    -----
    Immutable: the arrays are read-only copies.
    """

    __slots__ = ("scale", "zero_point", "dtype", "axis", "block_size", "_qmin", "_qmax")

    def __init__(self, scale, zero_point=None, dtype="int8", axis=None, block_size=None, *, qmin=None, qmax=None):
        dt = qdtype(dtype, "dtype")
        scale_arr = _as_scale(scale)

        if block_size is not None and not (_is_int_like(block_size) and block_size >= 0):
            raise ValidationError("block_size", "None or an int >= 1", repr(block_size))
        block_size = int(block_size) if block_size else None  # ONNX: block_size=0 means not blocked
        if axis is not None and not _is_int_like(axis):
            raise ValidationError("axis", "None or an int", repr(axis))
        axis = None if axis is None else int(axis)

        if block_size is not None:
            if axis is None:
                raise ValidationError("axis", "an int when block_size is given (the blocked axis)", None)
            if scale_arr.ndim == 0:
                raise ShapeError("scale", "an array with the rank of x for blocked quantization", "a scalar")
            if not -scale_arr.ndim <= axis < scale_arr.ndim:
                raise ValidationError("axis", f"an int in [{-scale_arr.ndim}, {scale_arr.ndim - 1}]", axis)
            axis %= scale_arr.ndim
        elif axis is not None:
            if scale_arr.ndim != 1:
                raise ShapeError("scale", "a 1-D array (one scale per slice along axis)", f"shape {scale_arr.shape}")
        else:
            if scale_arr.size != 1:
                raise ShapeError(
                    "scale", "a single value when axis is None (per-tensor)", f"shape {scale_arr.shape}"
                )
            scale_arr = scale_arr.reshape(())

        lo, hi = self._range(dt, qmin, qmax)
        zp = _as_zero_point(zero_point, dt, scale_arr.shape, lo, hi)

        scale_arr = scale_arr.copy()
        scale_arr.flags.writeable = False
        zp.flags.writeable = False
        object.__setattr__(self, "scale", scale_arr)
        object.__setattr__(self, "zero_point", zp)
        object.__setattr__(self, "dtype", dt)
        object.__setattr__(self, "axis", axis)
        object.__setattr__(self, "block_size", block_size)
        object.__setattr__(self, "_qmin", None if qmin is None else lo)
        object.__setattr__(self, "_qmax", None if qmax is None else hi)

    @staticmethod
    def _range(dt: QDType, qmin, qmax) -> tuple[int, int]:
        if dt.is_float:
            for name, v in (("qmin", qmin), ("qmax", qmax)):
                if v is not None:
                    raise ValidationError(name, f"None for the float dtype {dt.name}", repr(v))
            return dt.qmin, dt.qmax
        lo, hi = int(dt.qmin), int(dt.qmax)
        for name, v in (("qmin", qmin), ("qmax", qmax)):
            if v is not None and not (_is_int_like(v) and lo <= v <= hi):
                raise ValidationError(name, f"None or an int in [{lo}, {hi}] for {dt.name}", repr(v))
        lo = lo if qmin is None else int(qmin)
        hi = hi if qmax is None else int(qmax)
        if lo >= hi:
            raise ValidationError("qmin", f"an int below qmax={hi}", lo)
        return lo, hi

    def __setattr__(self, name, value):
        raise AttributeError("QParams is immutable")

    # immutable, with read-only arrays: a copy may share this object (copy.deepcopy of a model
    # would otherwise rebuild it through __setattr__)
    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    # pickled field by field: the executors carry quantized models between processes (refcomp.executors),
    # and the default would restore the slots through __setattr__, which refuses
    def __reduce__(self):
        return _restore_qparams, (tuple(object.__getattribute__(self, k) for k in self.__slots__),)

    # ---- the integer range -------------------------------------------------
    @property
    def qmin(self):
        """Smallest code (int for integer dtypes, most negative finite value for float dtypes)."""
        return self._qmin if self._qmin is not None else self.dtype.qmin

    @property
    def qmax(self):
        """Largest code (int for integer dtypes, largest finite value for float dtypes)."""
        return self._qmax if self._qmax is not None else self.dtype.qmax

    @property
    def narrowed(self) -> bool:
        """True when [qmin, qmax] is narrower than the dtype's range (restricted / reduce_range)."""
        return self._qmin is not None and self._qmin != self.dtype.qmin or (
            self._qmax is not None and self._qmax != self.dtype.qmax
        )

    # ---- layout ------------------------------------------------------------
    @property
    def per_tensor(self) -> bool:
        return self.axis is None

    @property
    def per_axis(self) -> bool:
        return self.axis is not None and self.block_size is None

    @property
    def per_block(self) -> bool:
        return self.block_size is not None

    @property
    def granularity(self) -> str:
        return "per-tensor" if self.per_tensor else ("per-axis" if self.per_axis else "per-block")

    def check_shape(self, shape: tuple[int, ...], argument: str = "x") -> int | None:
        """Check that these QParams fit a tensor of ``shape``; return the axis made non-negative.

        Raises ValidationError (axis out of range) or ShapeError (scale does not match).
        """
        shape = tuple(int(d) for d in shape)
        if self.axis is None:
            return None
        ndim = len(shape)
        if not -ndim <= self.axis < ndim:
            raise ValidationError("axis", f"an int in [{-ndim}, {ndim - 1}] for {argument} of rank {ndim}", self.axis)
        axis = self.axis % ndim
        if self.block_size is None:
            if self.scale.shape[0] != shape[axis]:
                raise ShapeError(
                    "scale",
                    f"{shape[axis]} values (the length of {argument} along axis {axis})",
                    f"{self.scale.shape[0]}",
                )
            return axis
        expected = list(shape)
        expected[axis] = math.ceil(shape[axis] / self.block_size)
        if self.scale.shape != tuple(expected):
            raise ShapeError(
                "block_size",
                f"scale shape {tuple(expected)} for {argument} of shape {shape} with block_size="
                f"{self.block_size} on axis {axis} (ONNX: ceil(D/B) scales along the axis)",
                f"scale shape {self.scale.shape}",
            )
        return axis

    def expand(self, shape: tuple[int, ...], argument: str = "x") -> tuple[np.ndarray, np.ndarray]:
        """(scale, zero_point) broadcastable to a tensor of ``shape`` (element-wise for per-block).

        The zero point comes back as float64 (exact for every integer dtype up to int32).
        """
        axis = self.check_shape(shape, argument)
        scale = self.scale.astype(np.float32)
        zp = self.zero_point.astype(np.float64)
        if axis is None:
            return scale, zp
        if self.block_size is None:
            dims = [1] * len(shape)
            dims[axis] = shape[axis]
            return scale.reshape(dims), zp.reshape(dims)
        idx = np.arange(shape[axis]) // self.block_size
        return np.take(scale, idx, axis=axis), np.take(zp, idx, axis=axis)

    def representable_range(self, shape: tuple[int, ...] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Real interval [(qmin - zp)·s, (qmax - zp)·s] that codes reach without saturating (eq. 3).

        With ``shape`` the bounds are broadcastable to a tensor of that shape.
        """
        if shape is None:
            scale, zp = self.scale.astype(np.float64), self.zero_point.astype(np.float64)
        else:
            scale, zp = self.expand(shape)
            scale = scale.astype(np.float64)
        return (self.qmin - zp) * scale, (self.qmax - zp) * scale

    # ---- (de)serialization -----------------------------------------------
    def to_dict(self) -> dict:
        """A JSON-safe dict (lists of Python numbers); ``QParams.from_dict`` inverts it exactly."""
        zp = self.zero_point.astype(np.float64 if self.dtype.is_float else np.int64)
        d = {
            "dtype": self.dtype.name,
            "scale": self.scale.astype(np.float64).tolist(),  # float32/16 -> float64 is exact
            "scale_dtype": str(self.scale.dtype),
            "zero_point": zp.tolist(),
            "axis": self.axis,
            "block_size": self.block_size,
        }
        if self._qmin is not None:
            d["qmin"] = self._qmin
        if self._qmax is not None:
            d["qmax"] = self._qmax
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "QParams":
        if not isinstance(d, dict):
            raise ValidationError("d", "a dict made by QParams.to_dict", type(d).__name__)
        missing = {"dtype", "scale", "zero_point"} - set(d)
        if missing:
            raise ValidationError("d", "keys dtype, scale, zero_point", f"missing {sorted(missing)}")
        unknown = set(d) - {"dtype", "scale", "scale_dtype", "zero_point", "axis", "block_size", "qmin", "qmax"}
        if unknown:
            raise ValidationError("d", "only the keys written by QParams.to_dict", f"unknown {sorted(unknown)}")
        scale_dtype = d.get("scale_dtype", "float32")
        by_name = {str(t): t for t in SCALE_DTYPES}
        if scale_dtype not in by_name:
            raise DTypeError("scale_dtype", f"one of {sorted(by_name)}", repr(scale_dtype))
        scale = np.asarray(d["scale"], dtype=np.float64)
        cast = scale.astype(by_name[scale_dtype])
        if not np.array_equal(cast.astype(np.float64), scale):
            raise ValidationError("scale", f"values exactly representable in {scale_dtype}", "rounded values")
        dt = qdtype(d["dtype"], "dtype")
        zp = d["zero_point"]
        if not dt.is_float:
            zp_arr = np.asarray(zp, dtype=object)
            if any(not (_is_int_like(v) or (isinstance(v, float) and v.is_integer())) for v in zp_arr.ravel().tolist()):
                raise DTypeError("zero_point", "integers", repr(zp))
            zp = np.asarray(zp, dtype=np.float64).astype(np.int64).tolist()
        return cls(cast, zp, dt, d.get("axis"), d.get("block_size"), qmin=d.get("qmin"), qmax=d.get("qmax"))

    # ---- value semantics -----------------------------------------------------
    def __eq__(self, other) -> bool:
        if not isinstance(other, QParams):
            return NotImplemented
        return (
            self.dtype == other.dtype
            and self.axis == other.axis
            and self.block_size == other.block_size
            and self.qmin == other.qmin
            and self.qmax == other.qmax
            and self.scale.dtype == other.scale.dtype
            and np.array_equal(self.scale, other.scale)
            and np.array_equal(self.zero_point, other.zero_point)
        )

    __hash__ = None  # holds arrays

    def __repr__(self) -> str:
        def short(a: np.ndarray) -> str:
            if a.ndim == 0:
                return repr(a.item()) if not self.dtype.is_float or a is self.scale else "0"
            return f"array(shape={a.shape}, min={a.astype(np.float64).min():.6g}, max={a.astype(np.float64).max():.6g})"

        extra = ""
        if self.axis is not None:
            extra += f", axis={self.axis}"
        if self.block_size is not None:
            extra += f", block_size={self.block_size}"
        if self.narrowed:
            extra += f", qmin={self.qmin}, qmax={self.qmax}"
        return (f"QParams(scale={short(self.scale)}, zero_point={short(self.zero_point)}, "
                f"dtype={self.dtype.name}{extra})")


def _restore_qparams(values: tuple) -> "QParams":
    """A QParams from its slots' values (QParams.__reduce__), its arrays read-only again."""
    qp = object.__new__(QParams)
    for name, value in zip(QParams.__slots__, values):
        if isinstance(value, np.ndarray):
            value.flags.writeable = False
        object.__setattr__(qp, name, value)
    return qp
