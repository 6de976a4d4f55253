"""Hostile inputs for every file loader, and what each one did.

Used by the fuzz test (tests/io/test_fuzz_loaders.py, a few hundred inputs drawn by
hypothesis) and by benchmarks/hostile_inputs.py (a fixed, larger set, with a report).

Kinds (one seed file each, a small but complete example of the format):

- ``safetensors``, ``npz``, ``compact``: a model with every kind of tensor a
  loader checks (Conv2d, BatchNorm, Linear, LayerNorm, Embedding);
- ``compact_dc``: the Deep Compression model file (RelativeIndexCSR weights:
  Huffman-coded fields, a Clustered weight);
- ``rcdc``: the earlier Deep Compression file (refcomp.io.compressed_file);
- ``huffman``: a bare field stream for relative_csr.decode_field, in a small
  envelope of this module (count, bit count, width, code lengths, stream);
- ``onnx``: a model exported by refcomp.onnx;
- ``idx``: a gzipped MNIST-style IDX file (refcomp.datasets.read_idx).

Mutations: bit flips and truncations (byte damage: a checksummed format must
refuse it or load the very same model), appended bytes, size fields set to
lies (with and without the checksum made to match), and header lies: a number,
a key or a tensor of the header replaced, duplicated, nested deeply or made
NaN, the file re-encoded with a valid checksum (what a hostile writer does),
so that the checks behind the checksum are reached.

Outcomes: "same" (loaded, identical to the seed), "other" (loaded something else:
legitimate for a header lie with a valid checksum, a *silent corruption* for
byte damage), "refused" (FileFormatError; for ONNX also UnsupportedOperatorError and DTypeError,
its documented errors for a valid file using what refcomp cannot represent),
"wrong" (any other exception).
"""

from __future__ import annotations

import gzip
import io
import json
import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from refcomp import models, nn
from refcomp.compress.share.cluster import cluster_weight
from refcomp.errors import DTypeError, FileFormatError, UnsupportedOperatorError
from refcomp.formats.relative_csr import RelativeIndexCSR, code_field, decode_field
from refcomp.io import compact_file, load_model, save_model
from refcomp.io.compressed_file import load_compressed, save_compressed
from refcomp.io.model_file import _checksum, _graph

from .bounds import measured

KINDS = ("safetensors", "npz", "compact", "compact_dc", "rcdc", "huffman", "onnx", "idx")
MUTATIONS = ("flip1", "flip8", "truncate", "append", "size_lie", "size_lie_crc", "header_lie", "value_lie")
#: byte damage: loading must refuse it or give the seed's very model
DAMAGE = ("flip1", "flip8", "truncate", "append", "size_lie")
#: the kinds that carry a checksum, where byte damage must never load as something else (a bare Huffman
#: stream and an ONNX protobuf have none: damage there can only be refused where it breaks the structure)
CHECKSUMMED = ("safetensors", "npz", "compact", "compact_dc", "rcdc", "idx")     # idx: gzip's CRC-32
_SUFFIX = {"safetensors": ".safetensors", "npz": ".npz", "compact": ".rcm", "compact_dc": ".rcm",
           "rcdc": ".rcdc", "huffman": ".huf", "onnx": ".onnx", "idx": "-idx3-ubyte.gz"}
_LIES = (0, -1, 1, 7, 255, 20000, 2 ** 31, 2 ** 32 + 5, 2 ** 40, 2 ** 62, 1.5, -0.0, True, None, "x", [], {})


# --- seeds -------------------------------------------------------------------------------------------
def _every_kind_model():
    m = nn.Sequential(
        ("conv", nn.Conv2d(2, 4, 3, padding=1, rng=0)), ("bn2", nn.BatchNorm2d(4)), ("relu", nn.ReLU()),
        ("gap", nn.GlobalAvgPool2d()), ("fc", nn.Linear(4, 6, rng=1)), ("bn1", nn.BatchNorm1d(6)),
        ("ln", nn.LayerNorm(6)), ("out", nn.Linear(6, 3, rng=2)))
    rng = np.random.default_rng(5)
    for name in ("bn1", "bn2"):
        m[name].running_mean[:] = rng.standard_normal(m[name].num_features)
        m[name].running_var[:] = rng.uniform(0.5, 2, m[name].num_features)
    return m.eval()


def _dc_model():
    rng = np.random.default_rng(0)
    m = models.digits_mlp(0, hidden=48).eval()
    w = m["fc1"].weight.to_dense()
    m["fc1"].weight = RelativeIndexCSR.from_clustered(cluster_weight(w, 4, mask=rng.random(w.shape) < 0.2),
                                                      index_bits=4, layout="rows")
    w = m["fc2"].weight.to_dense()
    m["fc2"].weight = cluster_weight(w, 3, mask=rng.random(w.shape) < 0.5)
    return m


def _huffman_envelope(count: int, nbits: int, width: int, lengths: np.ndarray, stream: np.ndarray) -> bytes:
    return struct.pack("<IIBB", count, nbits, width, 1 if lengths.size else 0) + lengths.tobytes() + stream.tobytes()


def _load_huffman(raw: bytes):
    """The envelope: uint32 count, uint32 nbits, uint8 width, uint8 has-lengths, [2^width lengths], stream.

    Parsed as the containers do (width at most 16, like an index field) before decode_field decodes."""
    if len(raw) < 10:
        raise FileFormatError("huffman envelope: truncated")
    count, nbits, width, has = struct.unpack_from("<IIBB", raw)
    if not 1 <= width <= 16:
        raise FileFormatError(f"huffman envelope: width {width}")
    n = (1 << width) if has else 0
    lengths = np.frombuffer(raw[10:10 + n], np.uint8)
    return decode_field(lengths, np.frombuffer(raw[10 + n:], np.uint8), nbits, width, count, "envelope")


def _onnx_seed() -> bytes | None:
    try:
        import onnx  # noqa: F401

        from refcomp.onnx import export
    except ImportError:
        return None
    with tempfile.TemporaryDirectory() as d:
        m = nn.Sequential(("fc", nn.Linear(8, 6, rng=0)), ("relu", nn.ReLU()), ("out", nn.Linear(6, 3, rng=1)))
        p = Path(d) / "m.onnx"
        export(m.eval(), p, input_shape=(1, 8))
        return p.read_bytes()


@dataclass
class Seed:
    kind: str
    raw: bytes
    reference: object       # what a faithful load returns (compared with "same")


def seeds(tmp: Path) -> dict[str, Seed]:
    out = {}
    m = _every_kind_model()
    for kind in ("safetensors", "npz", "compact"):
        out[kind] = Seed(kind, save_model(m, tmp / f"seed{_SUFFIX[kind]}").read_bytes(), m)
    dc = _dc_model()
    out["compact_dc"] = Seed("compact_dc", save_model(dc, tmp / "seed_dc.rcm").read_bytes(), dc)
    layers = {"fc1": dc["fc1"].weight}
    tensors = {"fc1.bias": dc["fc1"].bias.data, "fc2.bias": dc["fc2"].bias.data}
    out["rcdc"] = Seed("rcdc", save_compressed(tmp / "seed.rcdc", layers, tensors).read_bytes(), (layers, tensors))
    symbols = np.asarray(dc["fc1"].weight.index_fields).astype(np.int64)
    lengths, stream, nbits = code_field(symbols, 4)
    out["huffman"] = Seed("huffman", _huffman_envelope(symbols.size, nbits, 4, lengths, stream), symbols)
    images = np.random.default_rng(1).integers(0, 256, (20, 28, 28), dtype=np.uint8)
    idx = b"\x00\x00\x08\x03" + struct.pack(">III", *images.shape) + images.tobytes()
    out["idx"] = Seed("idx", gzip.compress(idx, mtime=0), images)
    onnx_raw = _onnx_seed()
    if onnx_raw is not None:
        out["onnx"] = Seed("onnx", onnx_raw, load("onnx", onnx_raw, tmp))
    return out


# --- loading and judging ---------------------------------------------------------------------------------
def _same(kind: str, got, ref) -> bool:
    if kind == "huffman":
        return np.array_equal(np.asarray(got, np.int64), ref)
    if kind == "idx":
        return got.dtype == ref.dtype and got.shape == ref.shape and np.array_equal(got, ref)
    if kind == "rcdc":
        (gl, gt, _), (rl, rt) = got, ref
        # fields, not to_dense(): a header lie may declare a legitimately huge sparse shape
        return gl.keys() == rl.keys() and gt.keys() == rt.keys() \
            and all(_same_fields(gl[k].fields(), rl[k].fields()) for k in rl) \
            and all(gt[k].tobytes() == np.asarray(rt[k]).tobytes() for k in rt)
    if kind == "onnx":
        return got == ref
    sa, sb = dict(got.state_dict()), dict(ref.state_dict())
    fa = {n: w.fields() for n, w in got.named_weights() if hasattr(w, "fields")}
    fb = {n: w.fields() for n, w in ref.named_weights() if hasattr(w, "fields")}

    def flat(d):
        return {(n, f): np.asarray(a) for n, fs in d.items() for f, a in fs.items() if isinstance(a, np.ndarray)}

    fa, fb = flat(fa), flat(fb)
    return _graph(got) == _graph(ref) and sa.keys() == sb.keys() and fa.keys() == fb.keys() \
        and all(sa[k].dtype == sb[k].dtype and sa[k].tobytes() == sb[k].tobytes() for k in sa) \
        and all(fa[k].dtype == fb[k].dtype and fa[k].tobytes() == fb[k].tobytes() for k in fa)


def _same_fields(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        np.asarray(a[k]).dtype == np.asarray(b[k]).dtype and np.asarray(a[k]).tobytes() == np.asarray(b[k]).tobytes()
        and np.asarray(a[k]).shape == np.asarray(b[k]).shape for k in a)


def _onnx_signature(g):
    state = dict(g.state_dict()) if hasattr(g, "state_dict") else {}
    return sorted((k, v.dtype.str, v.shape, v.tobytes()) for k, v in state.items())


def load(kind: str, raw: bytes, folder: Path):
    if kind == "huffman":
        return _load_huffman(raw)
    path = folder / f"input{_SUFFIX[kind]}"
    path.write_bytes(raw)
    if kind == "rcdc":
        return load_compressed(path)
    if kind == "idx":
        from refcomp.datasets import read_idx

        return read_idx(path)
    if kind == "onnx":
        from refcomp.onnx import load as load_onnx

        return _onnx_signature(load_onnx(path))
    return load_model(path)


@dataclass
class Outcome:
    kind: str
    mutation: str
    size: int
    result: str              # same | other | refused | wrong
    error: str               # the exception's type and message (refused / wrong)
    seconds: float
    peak_bytes: int

    @property
    def silent_corruption(self) -> bool:
        return self.result == "other" and self.mutation in DAMAGE and self.kind in CHECKSUMMED


def run(kind: str, mutation: str, raw: bytes, reference, folder: Path) -> Outcome:
    """Load ``raw`` once, timing it and tracing its peak memory (bounds.measured)."""
    error = ""
    got = None
    with measured() as usage:
        try:
            got = load(kind, raw, folder)
        except (FileFormatError, UnsupportedOperatorError, DTypeError) as exc:
            # ONNX: a valid file with an operator or element type refcomp cannot represent has its own
            # documented errors (UnsupportedOperatorError, DTypeError), counted as refusals
            refused_ok = isinstance(exc, FileFormatError) or kind == "onnx"
            result, error = ("refused" if refused_ok else "wrong"), f"{type(exc).__name__}: {exc}"[:300]
        except Exception as exc:          # noqa: BLE001 - every other exception is what is counted here
            result, error = "wrong", f"{type(exc).__name__}: {exc}"[:300]
        else:
            result = "loaded"
    if result == "loaded":        # compared outside the measured load
        result = "same" if _same(kind, got, reference) else "other"
    return Outcome(kind, mutation, len(raw), result, error, usage.seconds, usage.peak_bytes)


# --- mutations ------------------------------------------------------------------------------------------
def _flip(raw: bytes, rng, n: int) -> bytes:
    data = bytearray(raw)
    for bit in rng.choice(8 * len(raw), size=min(n, 8 * len(raw)), replace=False):
        data[bit // 8] ^= 1 << (int(bit) % 8)
    return bytes(data)


def _size_fields(kind: str, raw: bytes) -> list[tuple[int, str]]:
    """(offset, struct format) of the length fields of a file's fixed layout."""
    if kind == "safetensors":
        return [(0, "<Q")]
    if kind in ("compact", "compact_dc"):
        return [(8, "<I"), (12, "<I")]
    if kind == "rcdc":
        return [(4, "<I")]
    if kind == "huffman":
        return [(0, "<I"), (4, "<I"), (8, "<B")]
    if kind == "npz":   # the uncompressed and compressed sizes of every zip record
        out = []
        for sig, offs in ((b"PK\x03\x04", (18, 22)), (b"PK\x01\x02", (20, 24))):
            i = raw.find(sig)
            while i >= 0:
                out += [(i + o, "<I") for o in offs]
                i = raw.find(sig, i + 4)
        return out
    return [(i, "<I") for i in range(0, max(1, len(raw) - 4), 97)]


def _fix_crc(kind: str, raw: bytes) -> bytes:
    if kind in ("compact", "compact_dc") and len(raw) >= 16:
        return raw[:4] + struct.pack("<I", zlib.crc32(raw[8:])) + raw[8:]
    if kind == "rcdc" and len(raw) >= 12:
        return raw[:-4] + struct.pack("<I", zlib.crc32(raw[:-4]))
    return raw


def _size_lie(kind: str, raw: bytes, rng, fix: bool) -> bytes:
    fields = _size_fields(kind, raw)
    off, fmt = fields[int(rng.integers(len(fields)))]
    size = struct.calcsize(fmt)
    if off + size > len(raw):
        return raw[:off]
    old = struct.unpack_from(fmt, raw, off)[0]
    top = 2 ** (8 * size) - 1
    value = int(rng.choice([0, 1, old - 1, old + 1, old * 2, old * 1000, top, top // 2, 2 ** 20, 4 << 20])) % (top + 1)
    data = bytearray(raw)
    struct.pack_into(fmt, data, off, value)
    return _fix_crc(kind, bytes(data)) if fix else bytes(data)


# model containers: (header, tensors) <-> bytes, with no validation, so that any lie can be written
def _model_parts(kind: str, raw: bytes):
    if kind == "safetensors":
        from safetensors.numpy import load as st_load

        (n,) = struct.unpack("<Q", raw[:8])
        return json.loads(json.loads(raw[8:8 + n])["__metadata__"]["refcomp"]), dict(st_load(raw))
    if kind == "npz":
        with np.load(io.BytesIO(raw)) as z:
            arrays = {k: z[k] for k in z.files}
        return json.loads(arrays.pop("__refcomp_header__").tobytes()), arrays
    header, payload = compact_file.read_header(raw, "seed")
    return header, {k: np.array(v) for k, v in compact_file.read_tensors(header["tensors"], payload, "seed").items()}


def _model_bytes(kind: str, header, tensors: dict, text: str | None = None) -> bytes:
    if kind in ("safetensors", "npz") and isinstance(header, dict):
        header = dict(header, checksum=_checksum(header, tensors))     # a valid checksum for the lie
    text = json.dumps(header, sort_keys=True) if text is None else text
    if kind == "safetensors":
        from safetensors.numpy import save

        return save({k: np.ascontiguousarray(v) for k, v in tensors.items()}, metadata={"refcomp": text})
    if kind == "npz":
        buf = io.BytesIO()
        np.savez(buf, __refcomp_header__=np.frombuffer(text.encode(), np.uint8), **tensors)
        return buf.getvalue()
    packed = zlib.compress(text.encode(), 9)
    body = struct.pack("<II", len(packed), len(text.encode())) + packed + b"".join(
        np.ascontiguousarray(tensors[k]).tobytes() for k in sorted(tensors))
    return compact_file.MAGIC + struct.pack("<I", zlib.crc32(body)) + body


def _rcdc_parts(raw: bytes):
    (h,) = struct.unpack("<I", raw[4:8])
    return json.loads(raw[8:8 + h]), raw[8 + h:-4]


def _rcdc_bytes(header, payload: bytes, text: str | None = None) -> bytes:
    text = (json.dumps(header, separators=(",", ":")) if text is None else text).encode()
    body = b"RCDC" + struct.pack("<I", len(text)) + text + payload
    return body + struct.pack("<I", zlib.crc32(body))


def _leaves(obj, path=()):
    """Paths of every number, string, list and object in a JSON value."""
    out = [path]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _leaves(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _leaves(v, path + (i,))
    return out


def _set(obj, path, value):
    for p in path[:-1]:
        obj = obj[p]
    if value is _DELETE:
        del obj[path[-1]]
    else:
        obj[path[-1]] = value


_DELETE = object()


def _header_lie(header, rng):
    """(header, or None when the lie is written as text, text) with one lie in it."""
    text = json.dumps(header, sort_keys=True)
    choice = int(rng.integers(6))
    if choice == 0 and '"metadata": {}' in text:      # nested too deeply for a recursive parser
        depth = int(rng.choice([100, 5000, 100000]))
        return None, text.replace('"metadata": {}', '"metadata": ' + "[" * depth + "]" * depth, 1)
    if choice == 1:                                   # a name written twice (JSON keeps the last)
        key = '"tensors": {' if '"tensors": {' in text else '"layers": ['
        first = text.index(key) + len(key)
        if key == '"tensors": {':
            name = sorted(header["tensors"])[int(rng.integers(len(header["tensors"])))]
            return None, text[:first] + json.dumps(name) + ': {"dtype": "<f4", "shape": [1]}, ' + text[first:]
        return None, text[:first] + json.dumps(header["layers"][0]) + ", " + text[first:]
    if choice == 2 and "graph" in header:             # the audit's case: a graph declaring huge layers
        h = json.loads(text)
        for node in _leaves(h):
            try:
                target = h
                for p in node:
                    target = target[p]
            except (KeyError, IndexError, TypeError):
                continue
            if isinstance(target, dict) and "in_features" in target:
                target.update(in_features=20000, out_features=20000, rng=5)
                break
        return h, None
    h = json.loads(text)
    paths = [p for p in _leaves(h) if p]
    path = paths[int(rng.integers(len(paths)))]
    if choice == 3:
        _set(h, path, _DELETE)
    else:
        _set(h, path, _LIES[int(rng.integers(len(_LIES)))])
    return h, None


def _value_lie(kind: str, raw: bytes, rng) -> bytes:
    """A tensor made NaN/inf/negative-variance/complex/wider, or one added or dropped; checksum valid."""
    header, tensors = _model_parts(kind, raw)
    names = sorted(tensors)
    name = names[int(rng.integers(len(names)))]
    floats = [n for n in names if tensors[n].dtype.kind == "f" and tensors[n].size]
    choice = int(rng.integers(5))
    if choice == 0 and floats:
        name = floats[int(rng.integers(len(floats)))]
        a = tensors[name].copy()
        a.flat[int(rng.integers(a.size))] = rng.choice([np.nan, np.inf, -np.inf])
        tensors[name] = a
    elif choice == 1 and any(n.endswith("running_var") for n in names):
        name = next(n for n in names if n.endswith("running_var"))
        tensors[name] = -np.abs(tensors[name])
    elif choice == 2 and kind != "compact" and floats:
        name = floats[int(rng.integers(len(floats)))]
        new = tensors[name].astype(np.complex64 if kind == "npz" else np.float64)
        if kind == "safetensors":
            new = tensors[name].astype(np.float64)
        tensors[name] = new
        header["tensors"][name] = {"dtype": new.dtype.str, "shape": list(new.shape)}
    elif choice == 3:
        tensors.pop(name)
        header["tensors"].pop(name, None)
    else:
        tensors[name + "x"] = tensors[name]
        header["tensors"][name + "x"] = header["tensors"][name]
    return _model_bytes(kind, header, tensors)


def mutate(seed: Seed, mutation: str, rng: np.random.Generator) -> bytes:
    """One hostile input of ``mutation`` made from ``seed``, drawn with ``rng``."""
    raw, kind = seed.raw, seed.kind
    if mutation == "flip1":
        return _flip(raw, rng, 1)
    if mutation == "flip8":
        return _flip(raw, rng, 8)
    if mutation == "truncate":
        return raw[:int(rng.integers(len(raw)))]
    if mutation == "append":
        return raw + rng.integers(0, 256, int(rng.choice([1, 7, 4096])), dtype=np.uint8).tobytes()
    if mutation in ("size_lie", "size_lie_crc"):
        return _size_lie(kind, raw, rng, fix=mutation == "size_lie_crc")
    if kind == "idx":                   # no JSON header: lies in the IDX dims, gzipped again (valid CRC)
        data = bytearray(gzip.decompress(raw))
        off = 4 + 4 * int(rng.integers(3))
        struct.pack_into(">I", data, off, int(rng.choice([0, 1, 21, 2 ** 31, 2 ** 32 - 1, 28 * 1000])))
        if mutation == "value_lie":
            data[3] = int(rng.choice([0, 1, 4, 255]))      # the rank
        return gzip.compress(bytes(data), mtime=0)
    if kind in ("huffman", "onnx"):     # no JSON header: lies in the fields instead
        return _size_lie(kind, _flip(raw, rng, 1) if kind == "onnx" else raw, rng, fix=True)
    if mutation == "value_lie" and kind not in ("rcdc",):
        return _value_lie(kind, raw, rng)
    if kind == "rcdc":
        header, payload = _rcdc_parts(raw)
        h, text = _header_lie(header, rng)
        return _rcdc_bytes(h, payload, text)
    header, tensors = _model_parts(kind, raw)
    h, text = _header_lie(header, rng)
    return _model_bytes(kind, h if h is not None else header, tensors, text)
