"""The earlier Deep Compression file (.rcdc): the per-layer bit streams the size table counts.

``refcomp compress`` now writes the compact encoding of the model file
(refcomp.io.compact_file, ``model.rcm``), which holds the same coded fields
plus the model's graph, and which ``refcomp.io.load_model`` reads. This
module is kept to read (and, for tests, write) .rcdc files: an .rcdc has no
graph, so it is read into a model the caller supplies,
``refcomp.pipelines.deep_compression.load_into(model, path, stored=True)``,
and ``save_model(..., format="compact")`` converts it.

Layout (all integers little-endian)::

    b"RCDC"  magic
    uint32   H, length of the header
    H bytes  UTF-8 JSON header  {"format": "refcomp.deep_compression", "version": 2,
                                 "refcomp_version": "0.1.0" (the writer; informative),
                                 "layers": [...], "tensors": [...], "metadata": {...}}
    payload  the segments the header points at (offset, length from the payload start)
    uint32   CRC-32 (zlib.crc32) of every byte before it          (version 2 only)

Version 2 adds the trailing checksum: in version 1 a flipped bit in a Huffman
stream or a codebook mostly decoded to other valid weights, and loaded
silently (46 of 70 single-bit flips in an audit). Version-1 files (no
checksum) are still read, so that old files stay convertible; a version-2
file is checked before its header is trusted, so a flipped bit anywhere in
it is refused.

Per layer (a :class:`refcomp.formats.relative_csr.RelativeIndexCSR` with a codebook)
the payload holds: the codebook (float32/float64 bytes); the weight field and
the relative-index field, each either Huffman-coded — its code lengths
(1 byte per symbol) followed by the MSB-first code stream — or packed at its
fixed width when that is smaller, exactly the choice size_breakdown makes
(D.22) and the format's own fields make (refcomp.formats.relative_csr.code_field,
used here); and, for ``layout="rows"``, the row pointers as uint32 (the size table
counts ⌈log₂(entries + 1)⌉ bits per pointer; the file spends 32). A fixed-width
field is written with the canonical code whose lengths all equal the width,
which is plain b-bit binary. Other tensors (biases) are stored as raw arrays.

The JSON header is the only cost the size table does not count. Reading validates everything
(magic, version, offsets, counts, code streams, positions) and raises
FileFormatError on anything inconsistent; no pickle, no eval.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .._version import __version__
from ..errors import FileFormatError, ValidationError
from ..formats.relative_csr import LAYOUTS, RelativeIndexCSR, code_field, decode_field
from ._json import load_json
from .atomic import write_atomic

__all__ = ["FORMAT", "VERSION", "save_compressed", "load_compressed"]

FORMAT = "refcomp.deep_compression"
VERSION = 2          # 2: a CRC-32 of the whole file at its end; 1 (read, not written): no checksum
_READS = (1, 2)
_MAGIC = b"RCDC"
_FLOATS = {"<f4": np.float32, "<f8": np.float64}


class _Payload:
    def __init__(self):
        self.parts: list[bytes] = []
        self.size = 0

    def add(self, data: bytes) -> list[int]:
        self.parts.append(data)
        self.size += len(data)
        return [self.size - len(data), len(data)]


def _field(payload: _Payload, symbols: np.ndarray, width: int) -> dict:
    """Append the field as the format codes it (relative_csr.code_field: Huffman where it pays); its spec."""
    lengths, stream, nbits = code_field(symbols, width)
    out = {"coding": "huffman" if lengths.size else "fixed"}
    if lengths.size:
        out["code_lengths"] = payload.add(lengths.tobytes())
    out["stream"] = payload.add(stream.tobytes()) + [nbits]
    return out


def save_compressed(path, layers: Mapping[str, RelativeIndexCSR], tensors: Mapping[str, np.ndarray] | None = None,
                    *, metadata: dict | None = None) -> Path:
    """Write ``layers`` (clustered RelativeIndexCSR) and raw float ``tensors`` to ``path`` atomically."""
    if not isinstance(layers, Mapping) or not layers:
        raise ValidationError("layers", "a non-empty mapping name -> RelativeIndexCSR", type(layers).__name__)
    payload = _Payload()
    entries = []
    for name, layer in layers.items():
        if not isinstance(layer, RelativeIndexCSR) or layer.codebook is None:
            raise ValidationError(f"layers[{name!r}]", "a clustered RelativeIndexCSR (with a codebook)",
                                  type(layer).__name__)
        if layer.weight_bits > 8:
            raise ValidationError(f"layers[{name!r}]", "weight fields of at most 8 bits", layer.weight_bits)
        cb = np.ascontiguousarray(layer.codebook)
        if cb.dtype.str not in _FLOATS:
            raise ValidationError(f"layers[{name!r}].codebook", "float32 or float64", str(cb.dtype))
        entry = {"name": str(name), "shape": [int(d) for d in layer.shape], "layout": layer.layout,
                 "index_bits": layer.index_bits, "weight_bits": layer.weight_bits,
                 "entries": layer.n_entries, "codebook_dtype": cb.dtype.str, "codebook_size": int(cb.size),
                 "codebook": payload.add(cb.tobytes()),
                 "weights": _field(payload, np.asarray(layer.values).astype(np.int64), layer.weight_bits),
                 "indices": _field(payload, np.asarray(layer.index_fields).astype(np.int64), layer.index_bits)}
        if layer.layout == "rows":
            entry["row_ptr"] = payload.add(np.asarray(layer.row_ptr, dtype="<u4").tobytes())
        entries.append(entry)
    raw = []
    for name, a in (tensors or {}).items():
        arr = np.ascontiguousarray(a)
        if arr.dtype.str not in _FLOATS:
            raise ValidationError(f"tensors[{name!r}]", "a float32 or float64 array", str(arr.dtype))
        raw.append({"name": str(name), "dtype": arr.dtype.str, "shape": list(arr.shape),
                    "data": payload.add(arr.tobytes())})
    header = {"format": FORMAT, "version": VERSION, "refcomp_version": __version__, "layers": entries,
              "tensors": raw, "metadata": metadata or {}}
    text = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    body = _MAGIC + struct.pack("<I", len(text)) + text + b"".join(payload.parts)
    return write_atomic(Path(path), body + struct.pack("<I", zlib.crc32(body)))


def _segment(payload: memoryview, seg, what: str) -> bytes:
    if not (isinstance(seg, list) and len(seg) >= 2 and all(isinstance(v, int) and v >= 0 for v in seg)):
        raise FileFormatError(f"deep-compression file: bad segment for {what}")
    off, length = seg[0], seg[1]
    if off + length > len(payload):
        raise FileFormatError(f"deep-compression file: {what} runs past the end of the file (truncated?)")
    return bytes(payload[off:off + length])


def _read_field(payload, spec, width: int, count: int, what: str) -> np.ndarray:
    if not isinstance(spec, dict) or spec.get("coding") not in ("fixed", "huffman"):
        raise FileFormatError(f"deep-compression file: bad coding for {what}")
    lengths = np.zeros(0, np.uint8)
    if spec["coding"] == "huffman":
        lengths = np.frombuffer(_segment(payload, spec.get("code_lengths"), what), dtype=np.uint8)
        if lengths.size != 1 << width:
            raise FileFormatError(f"deep-compression file: {what} has {lengths.size} code lengths, "
                                  f"expected {1 << width}")
    stream = spec.get("stream")
    data = np.frombuffer(_segment(payload, stream, what), dtype=np.uint8)
    if len(stream) != 3 or not isinstance(stream[2], int):
        raise FileFormatError(f"deep-compression file: bad bit count for {what}")
    try:
        return decode_field(lengths, data, stream[2], width, count, what)
    except FileFormatError as exc:
        raise FileFormatError(f"deep-compression file: {exc}") from None


def load_compressed(path) -> tuple[dict, dict, dict]:
    """Read a file written by :func:`save_compressed`: ({name: RelativeIndexCSR}, {name: array}, metadata)."""
    raw = Path(path).read_bytes()
    if raw[:3] == b"RCM":  # refcomp.io.compact_file.MAGIC: the file refcomp compress writes now
        raise FileFormatError(f"{path}: a compact model file, not an .rcdc file: read it with "
                              "refcomp.io.load_model")
    if raw[:4] != _MAGIC or len(raw) < 8:
        raise FileFormatError(f"{path}: not a refcomp deep-compression file (magic {raw[:4]!r})")
    (h,) = struct.unpack("<I", raw[4:8])
    if 8 + h > len(raw):
        raise FileFormatError(f"{path}: header of {h} bytes runs past the end of the file")
    # the checksum first: a version-2 file whose bytes are intact is known before its header is parsed
    intact = len(raw) >= 12 + h and struct.unpack("<I", raw[-4:])[0] == zlib.crc32(memoryview(raw)[:-4])
    header = load_json(raw[8:8 + h], f"{path}: header")
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise FileFormatError(f"{path}: header format is not {FORMAT!r}")
    version = header.get("version")
    if version not in _READS or isinstance(version, bool):
        raise FileFormatError(f"{path}: version {version!r}; this refcomp reads versions {_READS}")
    if version == 2 and not intact:
        raise FileFormatError(f"{path}: checksum mismatch: the file is corrupted or truncated")
    # version 1 has no checksum: read as before (its payload runs to the end of the file)
    payload = memoryview(raw)[8 + h:len(raw) - 4 if version == 2 else len(raw)]
    layers = {}
    try:
        for e in header["layers"]:
            name = str(e["name"])
            if name in layers:
                raise FileFormatError(f"{path}: layer {name!r} appears twice")
            shape = tuple(int(d) for d in e["shape"])
            layout, ib, wb, n = e["layout"], int(e["index_bits"]), int(e["weight_bits"]), int(e["entries"])
            if layout not in LAYOUTS or not (1 <= ib <= 16) or not (1 <= wb <= 8) or n < 0:
                raise FileFormatError(f"{path}: layer {name!r} has an invalid layout or field width")
            dtype = _FLOATS.get(e["codebook_dtype"])
            if dtype is None:
                raise FileFormatError(f"{path}: layer {name!r} codebook dtype {e['codebook_dtype']!r}")
            cb = np.frombuffer(_segment(payload, e["codebook"], f"{name} codebook"), dtype=dtype).copy()
            if cb.size != int(e["codebook_size"]) or cb.size > (1 << wb) or not np.all(np.isfinite(cb)):
                raise FileFormatError(f"{path}: layer {name!r} codebook is inconsistent")
            values = _read_field(payload, e["weights"], wb, n, f"{name} weights")
            fields = _read_field(payload, e["indices"], ib, n, f"{name} indices")
            if layout == "rows":
                row_ptr = np.frombuffer(_segment(payload, e["row_ptr"], f"{name} row_ptr"), dtype="<u4")
                row_ptr = row_ptr.astype(np.int64)
            else:
                row_ptr = np.array([0, n], dtype=np.int64)
            if values.size and values.max() >= cb.size:
                raise FileFormatError(f"{path}: layer {name!r} has a cluster index beyond its codebook")
            layer = RelativeIndexCSR(shape, layout, ib, row_ptr, fields.astype(np.uint8 if ib <= 8 else np.uint16),
                                     values.astype(np.uint8), cb, wb)
            layer._positions()  # validates row pointers and positions (FileFormatError) without a dense mask
            layers[name] = layer
        tensors = {}
        for t in header["tensors"]:
            dtype = _FLOATS.get(t["dtype"])
            if dtype is None:
                raise FileFormatError(f"{path}: tensor {t['name']!r} dtype {t['dtype']!r}")
            if str(t["name"]) in tensors:
                raise FileFormatError(f"{path}: tensor {t['name']!r} appears twice")
            a = np.frombuffer(_segment(payload, t["data"], t["name"]), dtype=dtype)
            shape = tuple(int(d) for d in t["shape"])
            if any(d < 0 for d in shape) or a.size != math.prod(shape):   # Python ints: no overflow
                raise FileFormatError(f"{path}: tensor {t['name']!r} has {a.size} values for shape {shape}")
            if not np.all(np.isfinite(a)):
                raise FileFormatError(f"{path}: tensor {t['name']!r} holds NaN or infinite values")
            tensors[str(t["name"])] = a.reshape(shape).copy()
    except FileFormatError:
        raise
    except (KeyError, TypeError, ValueError, ArithmeticError, IndexError, AttributeError) as exc:
        raise FileFormatError(f"{path}: malformed header entry ({type(exc).__name__}: {exc})") from None
    return layers, tensors, header.get("metadata", {})
