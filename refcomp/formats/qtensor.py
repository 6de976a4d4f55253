"""QTensor: a weight stored as quantized codes plus their QParams.

    W ≈ (data - zero_point) · scale        (docs/quantization.md eq. 2)

``data`` holds the codes in the quantized dtype (ml_dtypes arrays for int4,
uint4, int2, uint2, float8 and float4, as onnx.numpy_helper.to_array gives
them); ``qparams`` the scale / zero point / layout. The decoding is
refcomp.ops.dequantize_linear (through refcomp.quant.dequantize): one
definition of the affine map.

Size accounting (what a runtime must store, sub-byte codes packed)::

    storage_bits = size·bits + scale.size·scale_bits + [zero_point.size·bits]
    nbytes       = ceil(size·bits / 8) + scale.nbytes + [ceil(zero_point.size·bits / 8)]

The zero-point term is left out when every zero point is 0: ONNX makes the
zero point optional and 0 is its default. ``fields()`` holds exactly these
bytes (2- and 4-bit codes packed as ONNX packs them, refcomp.quant.packing)
plus a small JSON header.

Convention for rank > 2 weights (as refcomp.formats.dense): ``matmul`` uses
the weight viewed as the ``(out, rest)`` matrix.
"""

from __future__ import annotations

import json
import math

import numpy as np

from ..errors import DTypeError, FileFormatError, ValidationError
from ..numerics.dtypes import qdtype
from ..quant.affine import dequantize, quantize
from ..quant.packing import pack_bits, packed_size, unpack_bits
from ..quant.qparams import QParams
from .base import WeightFormat, check_field_names

__all__ = ["QTensor"]

_HEADER_VERSION = 1


def _container(dt) -> np.dtype:
    """A plain NumPy dtype that holds the codes of ``dt`` losslessly (for files)."""
    if dt.is_float:
        return np.dtype(np.uint16) if dt.bits == 16 else np.dtype(np.uint8)  # bit patterns
    if dt.bits <= 8:
        return np.dtype(np.int8) if dt.signed else np.dtype(np.uint8)
    return dt.np_dtype


class QTensor(WeightFormat):
    """Quantized codes ``data`` with their ``qparams``.

    Parameters
    ----------
    data : array of qparams.dtype's storage dtype; its shape must fit the QParams layout.
    qparams : refcomp.quant.QParams.
    """

    trainable = False

    def __init__(self, data, qparams: QParams):
        if not isinstance(qparams, QParams):
            raise DTypeError("qparams", "a refcomp.quant.QParams", type(qparams).__name__)
        if not isinstance(data, np.ndarray):
            raise DTypeError("data", "a numpy.ndarray", type(data).__name__)
        if qparams.dtype.name in ("float16", "bfloat16"):
            raise DTypeError("qparams.dtype", "a quantized dtype (float16/bfloat16 weights are Dense)",
                             qparams.dtype.name)
        if data.dtype != qparams.dtype.np_dtype:
            raise DTypeError("data", f"an array of dtype {qparams.dtype.name} (qparams.dtype)", f"dtype {data.dtype}")
        if data.ndim < 1:
            raise ValidationError("data", "rank >= 1", f"rank {data.ndim}")
        qparams.check_shape(data.shape, "data")
        # the range check is vacuous (and, on activations, a full int64 copy) when the range is the
        # storage dtype's own: every uint8 / int8 activation of the integer-only model
        natural = data.dtype.kind in "iu" and (qparams.qmin, qparams.qmax) == (np.iinfo(data.dtype).min,
                                                                                np.iinfo(data.dtype).max)
        if not qparams.dtype.is_float and data.size and not natural:
            d = data.astype(np.int64)
            if d.min() < qparams.qmin or d.max() > qparams.qmax:
                raise ValidationError("data", f"codes in [{qparams.qmin}, {qparams.qmax}]",
                                      f"range [{d.min()}, {d.max()}]")
        self.data = np.ascontiguousarray(data)
        self.data.flags.writeable = False
        self.qparams = qparams

    @classmethod
    def quantize(cls, x: np.ndarray, qparams: QParams, *, rounding: str = "half_to_even") -> "QTensor":
        """Quantize the float array ``x`` with ``qparams`` (eq. 1)."""
        return cls(quantize(x, qparams, rounding=rounding), qparams)

    @property
    def shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return self.data.shape

    def to_dense(self) -> np.ndarray:
        """The float32 weight ``(data - zero_point)·scale`` (eq. 2)."""
        return dequantize(self.data, self.qparams)

    def take_rows(self, idx) -> np.ndarray:
        """``to_dense()[idx]``, decoding only the rows looked up when the QParams are per tensor or per
        row (axis 0): an int8 embedding table stays int8 in memory. Same eq. 2, same values."""
        qp = self.qparams
        idx = np.asarray(idx)
        if len(self.shape) < 2 or qp.block_size or not (qp.per_tensor or (qp.axis or 0) % len(self.shape) == 0):
            return self.to_dense()[idx]
        flat = idx.reshape(-1)
        if qp.per_tensor:
            sub = qp
        else:
            zp = None if qp.zero_point is None else qp.zero_point[flat]
            sub = QParams(qp.scale[flat], zp, qp.dtype.name, axis=0, qmin=qp.qmin, qmax=qp.qmax)
        rows = dequantize(self.data[flat], sub)
        return rows.reshape(idx.shape + self.shape[1:])

    def matmul(self, x: np.ndarray) -> np.ndarray:
        """``x @ W2.T`` with W2 the dequantized ``(out, rest)`` matrix; x: (batch, rest)."""
        w = self.to_dense()
        return x @ w.reshape(w.shape[0], -1).T

    # ---- size ------------------------------------------------------------------
    def _stores_zero_point(self) -> bool:
        return bool(np.any(self.qparams.zero_point.astype(np.float64) != 0))

    @property
    def storage_bits(self) -> int:
        bits = self.qparams.dtype.bits
        total = self.data.size * bits + self.qparams.scale.size * 8 * self.qparams.scale.dtype.itemsize
        if self._stores_zero_point():
            total += self.qparams.zero_point.size * bits
        return int(total)

    @property
    def nbytes(self) -> int:
        bits = self.qparams.dtype.bits
        total = math.ceil(self.data.size * bits / 8) + self.qparams.scale.nbytes
        if self._stores_zero_point():
            total += math.ceil(self.qparams.zero_point.size * bits / 8)
        return int(total)

    # ---- fields (what a file stores) -------------------------------------------
    def fields(self) -> dict[str, np.ndarray]:
        """Plain NumPy arrays, as a file stores them.

        ``data`` and ``zero_point``: 2- and 4-bit codes packed into uint8 bytes
        (ONNX's layout, refcomp.quant.packing), so a file holds ``nbytes``;
        other codes in a plain container (int8 ... int32, uint8/uint16 bit
        patterns for float8/float16/bfloat16). ``scale`` as stored.
        ``header``: UTF-8 JSON of the layout (dtype, shape, axis, block_size ...).
        """
        dt = self.qparams.dtype
        c = _container(dt)

        def enc(a):
            if dt.bits < 8:
                return pack_bits(a)
            return a.view(c) if dt.is_float else a.astype(c)

        meta = {k: v for k, v in self.qparams.to_dict().items() if k not in ("scale", "zero_point")}
        meta["shape"] = list(self.data.shape)
        meta["version"] = _HEADER_VERSION
        header = np.frombuffer(json.dumps(meta, sort_keys=True).encode("utf-8"), dtype=np.uint8).copy()
        return {"data": enc(self.data), "scale": self.qparams.scale, "zero_point": enc(self.qparams.zero_point),
                "header": header}

    @classmethod
    def from_fields(cls, fields: dict[str, np.ndarray]) -> "QTensor":
        """Inverse of :meth:`fields`; FileFormatError for anything it did not write."""
        check_field_names(fields, {"data", "scale", "zero_point", "header"})
        try:
            meta = json.loads(np.asarray(fields["header"], dtype=np.uint8).tobytes().decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise FileFormatError(f"fields['header']: expected UTF-8 JSON, got undecodable bytes ({exc})") from None
        if not isinstance(meta, dict) or meta.pop("version", None) != _HEADER_VERSION:
            raise FileFormatError(f"fields['header']: expected version {_HEADER_VERSION}")

        dt = qdtype(meta.get("dtype"), "header.dtype")
        shape = meta.pop("shape", None)
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise FileFormatError(f"fields['header']: expected 'shape' as a list of sizes, got {shape!r}")
        c = np.dtype(np.uint8) if dt.bits < 8 else _container(dt)
        data, zp = np.asarray(fields["data"]), np.asarray(fields["zero_point"])
        scale = np.asarray(fields["scale"])
        for name, a in (("data", data), ("zero_point", zp)):
            if a.dtype != c:
                raise FileFormatError(f"fields['{name}']: expected dtype {c} for {dt.name}, got {a.dtype}")

        def dec(a, shp):
            if dt.bits < 8:
                if a.ndim != 1 or a.size != packed_size(math.prod(shp), dt.bits):
                    raise FileFormatError(f"fields: expected {packed_size(math.prod(shp), dt.bits)} packed bytes "
                                          f"for shape {tuple(shp)}, got {a.size}")
                return unpack_bits(a, dt, shp)
            if tuple(a.shape) != tuple(shp):
                raise FileFormatError(f"fields: expected shape {tuple(shp)}, got {a.shape}")
            return a.view(dt.np_dtype) if dt.is_float else a.astype(dt.np_dtype)

        if not dt.is_float and dt.bits >= 8 and data.size and (data.min() < dt.qmin or data.max() > dt.qmax):
            raise FileFormatError(f"fields['data']: expected codes in [{dt.qmin}, {dt.qmax}] for {dt.name}")
        meta["scale"] = scale.astype(np.float64).tolist()
        meta["zero_point"] = dec(zp, scale.shape).astype(np.float64 if dt.is_float else np.int64).tolist()
        return cls(dec(data, shape), QParams.from_dict(meta))

    def __repr__(self) -> str:
        return f"QTensor(shape={self.shape}, {self.qparams!r})"
