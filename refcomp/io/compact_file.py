"""The compact encoding of a model file: the same header and tensors, with as few bytes as possible around them.

A model file is a JSON header (format "refcomp.model": graph, weights, tensor
directory, metadata; refcomp.io.model_file) plus the tensors it names.
safetensors and npz hold them with alignment, per-tensor records and a
verbose header; this encoding holds exactly the same two things in the
fewest bytes, so that a model whose layers hold Deep Compression weights
(RelativeIndexCSR: Huffman-coded fields) is stored at its Deep Compression
size plus a small header. ``refcomp compress`` writes it; ``load_model``
reads it like the other containers.

Layout (integers little-endian)::

    offset  bytes  field
    0       4      magic b"RCM1" ("RCM" + the layout version as an ASCII digit)
    4       4      uint32  CRC-32 (zlib.crc32) of every byte from offset 8 to the end
    8       4      uint32  C, bytes of the deflated header
    12      4      uint32  H, bytes of the header once inflated (at most 100 MiB)
    16      C      the JSON header (UTF-8, sorted keys, no spaces), deflate-compressed (zlib format)
    16 + C  ...    the tensors of the header's "tensors" directory, in sorted name order,
                   each its raw little-endian bytes in C order, back to back, no padding

Only plain NumPy dtypes are stored (``DTYPES``: bool, (u)int8…64, float16/32/64,
which is every field of every refcomp weight format); anything else is a
ValidationError when saving. The header is deflated because it is the one
part a model's size table does not count, and JSON compresses well: for
LeNet-300-100 it is 2,231 B as text and 462 B deflated (measured before the
header recorded ``refcomp_version``, which adds 26 B of text, ~11 B deflated).

Reading checks, in this order and before any tensor is made: the magic and
layout version, that the header fits in the file, the checksum (so a
flipped bit anywhere is caught, including inside a Huffman stream, where
it could decode to other valid symbols), the inflated header's length
(inflation stops at H bytes, so a deflate bomb costs nothing), the JSON,
and every directory entry's dtype and shape, summing the tensor sizes in
Python integers until they exactly match the bytes left in the file.
Anything else raises :class:`refcomp.errors.FileFormatError`. Memory is
bounded by the file size plus H. No pickle, no eval.
"""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np

from ..errors import FileFormatError, ValidationError
from ._json import load_json

__all__ = ["MAGIC", "LAYOUT_VERSION", "DTYPES", "encode", "read_header", "read_tensors"]

LAYOUT_VERSION = 1
MAGIC = b"RCM" + str(LAYOUT_VERSION).encode()
_PREFIX = struct.Struct("<4sIII")      # magic, CRC-32, C, H
_MAX_HEADER = 100 * 2 ** 20
#: the dtypes this encoding stores, by the ``dtype.str`` the model header records
DTYPES = ("|b1", "|u1", "|i1", "<u2", "<i2", "<u4", "<i4", "<u8", "<i8", "<f2", "<f4", "<f8")


def encode(header: dict, tensors: dict) -> bytes:
    """The bytes of the compact file holding ``header`` (a model header) and ``tensors`` (its directory's arrays)."""
    directory = header.get("tensors") if isinstance(header, dict) else None
    if not isinstance(directory, dict) or set(directory) != set(tensors):
        raise ValidationError("header", "a model header whose 'tensors' directory names exactly the tensors",
                              "a different set of names")
    parts = []
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        if a.dtype.str not in DTYPES:
            raise ValidationError(f"tensor {name!r}", f"one of the dtypes of the compact encoding {DTYPES} "
                                  "(save it as safetensors or npz)", f"{a.dtype} ({a.dtype.str})")
        parts.append(a.tobytes())
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    if len(text) > _MAX_HEADER:
        raise ValidationError("header", f"at most {_MAX_HEADER} bytes of JSON", f"{len(text)} bytes")
    packed = zlib.compress(text, 9)
    body = struct.pack("<II", len(packed), len(text)) + packed + b"".join(parts)
    return MAGIC + struct.pack("<I", zlib.crc32(body)) + body


def read_header(raw: bytes, path) -> tuple[dict, memoryview]:
    """Check the prefix and the checksum, inflate and parse the header: (header, the tensor bytes after it)."""
    if raw[:3] != MAGIC[:3]:
        raise FileFormatError(f"{path}: not a compact refcomp model file (magic {raw[:4]!r})")
    if raw[:4] != MAGIC:
        raise FileFormatError(f"{path}: compact model file of layout version {raw[3:4].decode('latin-1')!r}; "
                              f"this refcomp reads version {LAYOUT_VERSION}")
    if len(raw) < _PREFIX.size:
        raise FileFormatError(f"{path}: truncated compact model file ({len(raw)} bytes)")
    _, crc, c, h = _PREFIX.unpack_from(raw)
    if _PREFIX.size + c > len(raw):
        raise FileFormatError(f"{path}: header of {c} bytes runs past the end of the file (truncated?)")
    if h > _MAX_HEADER:
        raise FileFormatError(f"{path}: header declares {h} bytes, more than the {_MAX_HEADER} allowed")
    if zlib.crc32(memoryview(raw)[8:]) != crc:
        raise FileFormatError(f"{path}: checksum mismatch: the file is corrupted or truncated")
    inflate = zlib.decompressobj()
    try:
        # max_length: never inflate more than the declared length (+1 to see an overlong stream; 0 = no limit)
        text = inflate.decompress(memoryview(raw)[_PREFIX.size:_PREFIX.size + c], h + 1)
    except zlib.error as exc:
        raise FileFormatError(f"{path}: header is not a valid deflate stream ({exc})") from None
    if len(text) != h or not inflate.eof or inflate.unconsumed_tail or inflate.unused_data:
        raise FileFormatError(f"{path}: header does not inflate to the declared {h} bytes")
    # load_json: a name written twice, deep nesting or bad UTF-8 is a FileFormatError too
    header = load_json(text, f"{path}: header")
    return header, memoryview(raw)[_PREFIX.size + c:]


def _shape(spec, name: str, path) -> tuple[str, tuple[int, ...]]:
    dtype = spec.get("dtype") if isinstance(spec, dict) else None
    shape = spec.get("shape") if isinstance(spec, dict) else None
    if dtype not in DTYPES:
        raise FileFormatError(f"{path}: tensor {name!r} has dtype {dtype!r}; the compact encoding stores {DTYPES}")
    if not (isinstance(shape, list) and len(shape) <= 32
            and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
        raise FileFormatError(f"{path}: tensor {name!r} has an invalid shape {shape!r}")
    return dtype, tuple(shape)


def read_tensors(directory, payload: memoryview, path) -> dict[str, np.ndarray]:
    """The arrays of the header's ``directory`` from ``payload``, read-only views; sizes checked first."""
    if not isinstance(directory, dict):
        raise FileFormatError(f"{path}: header field 'tensors' missing or not an object")
    layout, total = [], 0
    for name in sorted(directory):
        dtype, shape = _shape(directory[name], name, path)
        n = np.dtype(dtype).itemsize
        for d in shape:
            n *= d                     # Python integers: a huge declared shape cannot overflow
        total += n
        if total > len(payload):       # stop at the first tensor that does not fit, before building any
            raise FileFormatError(f"{path}: tensor {name!r} {dtype} {list(shape)} runs past the end of the "
                                  f"file ({len(payload)} bytes of tensors)")
        layout.append((name, dtype, shape, total - n, n))
    if total != len(payload):
        raise FileFormatError(f"{path}: {len(payload) - total} bytes after the last tensor")
    out = {}
    for name, dtype, shape, offset, n in layout:
        a = np.frombuffer(payload[offset:offset + n], dtype=dtype).reshape(shape)
        if a.dtype == bool and np.any(a.view(np.uint8) > 1):
            raise FileFormatError(f"{path}: bool tensor {name!r} holds bytes other than 0 and 1")
        out[name] = a
    return out
