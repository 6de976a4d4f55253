"""Model files: architecture + weights, as safetensors, npz or the compact encoding; never pickle.

Every container holds the same two things:

1. the tensors, named as in ``model.state_dict()`` — ``<layer>.<attribute>``
   (``conv1.weight``, ``bn1.running_var``, ...); a weight held in a format other
   than Dense is stored field by field as ``<layer>.weight.<field>``;
2. a JSON header (UTF-8):

   ================  ============================================================
   field              meaning
   ================  ============================================================
   format             always "refcomp.model"
   version            integer format version (a newer one is refused): 2 when a
                      weight is a composed format (below), else 1
   refcomp_version    the version of refcomp that wrote the file
                      (``refcomp._version.__version__``; absent in files written
                      before it was recorded); informative, not checked on load
   graph              the layer graph: {"type": "Sequential", "children": [
                      {"name": "conv1", "type": "Conv2d", "config": {...}}, ...]}
                      (config = the layer's constructor keyword arguments), or
                      {"type": "Graph", "inputs": [...], "outputs": [...], "nodes":
                      [{"name": "fc1", "inputs": ["x"], "module": {"type": ...}}]}
   weights            {name: {"format": "Dense" | <refcomp.formats class>,
                      "fields": [...]}} for every weight and parameter; a
                      composed format (a LowRank whose factors are QTensors)
                      adds "parts": {field: <the same spec of that format>},
                      its tensors named ``<layer>.weight.<field>.<subfield>``
   tensors            {tensor name: {"dtype": ..., "shape": [...]}} — checked on load
   metadata           free user metadata (JSON object)
   checksum           safetensors and npz only: CRC-32 (zlib.crc32) of the header
                      without this field (JSON, sorted keys, no spaces) followed by
                      every tensor's bytes in sorted name order; absent in files
                      written before it (read without the check) and in the
                      compact encoding (whose prefix holds a CRC-32 of the file)
   ================  ============================================================

Where the header lives: safetensors — the string entry ``"refcomp"`` of the
file's ``__metadata__`` (safetensors' own JSON header); npz — an array named
``__refcomp_header__`` of dtype uint8 holding the JSON bytes (so that
``np.load(..., allow_pickle=False)`` can read it); compact (``.rcm``,
refcomp.io.compact_file, the file ``refcomp compress`` writes) — deflated
after a 16-byte prefix with a checksum, the tensors packed behind it with no
padding. The compact encoding of a model whose layers hold RelativeIndexCSR
weights is the Deep Compression file: those weights' fields are the
Huffman-coded bits the size table counts.

Writes are atomic (refcomp.io.atomic). Loading checks, in this order: the
container and its sizes (npz: every member's declared uncompressed size,
before it is inflated), the header (no name twice, a known version), every
tensor's name, dtype and shape against the header, the checksum, the values
(finite floats, 0/1 bools), the weight formats, then builds the graph within
an allocation budget of what the tensors account for (no random init), and
checks each tensor against its layer (dtype, shape, a BatchNorm variance
>= 0). Anything truncated, corrupted, forged, foreign or of an unknown
version raises :class:`refcomp.errors.FileFormatError`; docs/reliability.md
lists the hostile inputs and the time and memory bounds. A weight's shape must be the layer's,
or, for a convolution, its (out, C·kh·kw) im2col matrix (how weight-only and
dynamic quantization store kernels). Loaded arrays are bit-identical to
the saved ones. The container is recognised by its first bytes, whatever
the file is called; a Deep Compression file of the earlier format
(``.rcdc``, magic ``RCDC``; refcomp.io.compressed_file) is refused with the
name of its converter.
"""

from __future__ import annotations

import io
import json
import re
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .. import formats
from .._version import __version__
from ..errors import FileFormatError, ValidationError
from ..formats.base import WeightFormat
from ..formats.dense import Dense
from ..nn.graph import Graph
from ..nn.init import allocation_budget
from ..nn.module import LAYER_TYPES, Module, Parameter, Sequential
from . import compact_file
from ._json import load_json
from .atomic import write_atomic

__all__ = ["save_model", "load_model", "FORMAT", "VERSION", "SUFFIXES", "model_header"]

FORMAT = "refcomp.model"
VERSION = 2   # 2: weight formats composed of formats ("parts"); 1: everything else
_NPZ_HEADER = "__refcomp_header__"
_MAX_HEADER = 100 * 2 ** 20
_MAX_DEPTH = 32          # nesting of Sequential/Graph in a graph, of "parts" in a weight spec: far above any real model
#: the dtype kinds a tensor may have: bool, integers, floats (no complex, object, string, void or date)
_KINDS = "biuf"
#: an npz member may inflate to at most this many times the file size (plus 1 MiB): refcomp writes stored
#: (uncompressed) members, so only a hand-compressed file comes near it, and a zip bomb is refused unread
_NPZ_INFLATE = 64
#: exceptions a layer constructor or a format's from_fields raises on a bad configuration or field
_BAD_VALUE = (TypeError, ValueError, ArithmeticError, LookupError, AttributeError)


# --- graph ------------------------------------------------------------------
def _graph(module: Module) -> dict:
    if isinstance(module, Sequential):
        return {"type": "Sequential",
                "children": [{"name": n, **_graph(m)} for n, m in module.layers.items()]}
    if isinstance(module, Graph):
        # a node keeps its module under "module": a Graph node's own "inputs" would collide
        return {"type": "Graph", "inputs": list(module.inputs), "outputs": module.outputs,
                "nodes": [{"name": n, "inputs": list(module.node_inputs[n]), "module": _graph(m)}
                          for n, m in module.nodes.items()]}
    t = type(module).__name__
    if LAYER_TYPES.get(t) is not type(module):
        raise ValidationError("model", "layers registered with refcomp.nn.module.register_layer", t)
    return {"type": t, "config": module.config()}


def _str_list(value) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _check_graph(node: dict, where: str) -> None:
    """Validate a Graph description before anything is built (names, references, order, types)."""
    here = f"graph node {where or '<root>'}"
    for key in ("inputs", "outputs"):
        if not _str_list(node.get(key)) or not node[key]:
            raise FileFormatError(f"{here}: Graph field {key!r} must be a non-empty list of names")
    nodes = node.get("nodes")
    if not isinstance(nodes, list):
        raise FileFormatError(f"{here}: Graph field 'nodes' must be a list")
    entries = []
    for i, n in enumerate(nodes):
        if not (isinstance(n, dict) and isinstance(n.get("name"), str) and _str_list(n.get("inputs"))
                and isinstance(n.get("module"), dict)):
            raise FileFormatError(f"{here}: nodes[{i}] must be an object with a string 'name', "
                                  f"a list of names 'inputs' and an object 'module'")
        if not n["name"] or "." in n["name"]:
            raise FileFormatError(f"{here}: node name {n['name']!r} is empty or contains '.'")
        t = n["module"].get("type")
        if not isinstance(t, str) or t not in LAYER_TYPES:
            raise FileFormatError(f"{here}: node {n['name']!r} has unknown layer type {t!r}")
        entries.append((n["name"], n["inputs"]))
    names = [nm for nm, _ in entries]
    defined = set(node["inputs"])
    for name, inputs in entries:
        if name in defined:
            raise FileFormatError(f"{here}: duplicate name {name!r}")
        for src in inputs:
            if src not in defined:
                why = ("is the node itself (a cycle)" if src == name
                       else "is defined later (nodes must be in topological order)" if src in names
                       else "is neither a graph input nor a node")
                raise FileFormatError(f"{here}: node {name!r} reads {src!r}, which {why}")
        defined.add(name)
    for out in node["outputs"]:
        if out not in defined:
            raise FileFormatError(f"{here}: output {out!r} is neither a graph input nor a node")


def _build(node: dict, where: str, depth: int = 0) -> Module:
    if not isinstance(node, dict) or "type" not in node:
        raise FileFormatError(f"graph node {where or '<root>'}: expected an object with 'type'")
    if depth > _MAX_DEPTH:   # deeper nesting would end in a RecursionError, not a FileFormatError
        raise FileFormatError(f"graph node {where}: containers nested more than {_MAX_DEPTH} deep")
    t = node["type"]
    if t == "Graph":
        _check_graph(node, where)
        try:
            g = Graph(inputs=node["inputs"])
            for n in node["nodes"]:
                g.add(n["name"], _build(n["module"], f"{where}.{n['name']}" if where else n["name"], depth + 1),
                      *n["inputs"])
            g.outputs = node["outputs"]
        except ValidationError as exc:
            raise FileFormatError(f"graph node {where or '<root>'}: {exc}") from exc
        return g
    if t == "Sequential":
        children = node.get("children")
        if not isinstance(children, list):
            raise FileFormatError(f"graph node {where or '<root>'}: Sequential without a children list")
        seq = Sequential()
        for ch in children:
            name = ch.get("name") if isinstance(ch, dict) else None
            if not isinstance(name, str):
                raise FileFormatError(f"graph node {where or '<root>'}: child without a name")
            try:
                seq.add(name, _build(ch, f"{where}.{name}" if where else name, depth + 1))
            except ValidationError as exc:
                raise FileFormatError(f"graph node {where or '<root>'}: {exc}") from exc
        return seq
    cls = LAYER_TYPES.get(t) if isinstance(t, str) else None    # a list or object "type" is unhashable
    if cls is None:
        raise FileFormatError(f"graph node {where}: unknown layer type {t!r}")
    cfg = node.get("config", {})
    if not isinstance(cfg, dict):
        raise FileFormatError(f"graph node {where}: config must be an object")
    # no random initialisation when loading: every weight is replaced by the file's (save_model never
    # writes an "rng"; one in a file would only cost the time of drawing a layer's worth of numbers)
    cfg = {k: v for k, v in cfg.items() if k != "rng"}
    try:
        return cls(**cfg)
    except _BAD_VALUE as exc:
        raise FileFormatError(f"graph node {where}: cannot build {t} from {str(cfg)[:200]}: {exc}") from exc


# --- header + tensors -----------------------------------------------------------
def _flatten(fmt, name: str, tensors: dict) -> dict:
    """Store the fields of weight format ``fmt`` as tensors ``<name>.<field>``; return its header spec.

    A field that is itself a weight format (a composition, e.g. a LowRank whose
    factors are QTensors) is stored the same way under ``<name>.<field>`` and
    described in the spec's "parts".
    """
    if not hasattr(type(fmt), "from_fields"):
        raise ValidationError(name, "a weight format with fields() and from_fields()", type(fmt).__name__)
    spec = {"format": type(fmt).__name__, "fields": []}
    parts = {}
    for f, a in fmt.fields().items():
        if isinstance(a, WeightFormat):
            parts[f] = _flatten(a, f"{name}.{f}", tensors)
        else:
            # order="C", not ascontiguousarray, which makes a 0-d field (a per-tensor scale) 1-d
            tensors[f"{name}.{f}"] = np.asarray(a, order="C")
            spec["fields"].append(f)
    if parts:
        spec["parts"] = parts
    return spec


def _tensors_and_header(model: Module, metadata: dict | None) -> tuple[dict, dict]:
    tensors: dict[str, np.ndarray] = {}
    weights: dict[str, dict] = {}
    for name, w in model.named_weights():
        # a plain Dense keeps the tensor name state_dict() uses (``conv1.weight``, files of
        # version 1); a masked Dense has two fields and goes the general way below
        if isinstance(w, Parameter) or (isinstance(w, Dense) and w.mask is None):
            tensors[name] = np.ascontiguousarray(w.data)
            weights[name] = {"format": "Dense" if isinstance(w, Dense) else "Parameter", "fields": []}
        else:
            weights[name] = _flatten(w, name, tensors)
    for name, b in model.named_buffers():
        tensors[name] = np.ascontiguousarray(b)
    header = {
        "format": FORMAT,
        # version 2 only where it is needed (a composed format), so version-1 readers keep reading the rest
        "version": VERSION if any("parts" in spec for spec in weights.values()) else 1,
        # which code wrote the file: a file that loads but behaves unexpectedly can be traced to a release
        "refcomp_version": __version__,
        "graph": _graph(model),
        "weights": weights,
        "tensors": {k: {"dtype": v.dtype.str, "shape": list(v.shape)} for k, v in tensors.items()},
        "metadata": metadata or {},
    }
    return tensors, header


def model_header(model: Module, metadata: dict | None = None) -> dict:
    """The JSON header :func:`save_model` would write for ``model``."""
    return _tensors_and_header(model, metadata)[1]


def _checksum(header: dict, tensors: dict) -> int:
    """CRC-32 of the header (without "checksum") and of every tensor's bytes, in sorted name order.

    safetensors has no checksum of its own and npz only one per member: without this a flipped
    bit in a weight, or in a header number (a stride, an eps), loads silently as another model."""
    text = json.dumps({k: v for k, v in header.items() if k != "checksum"}, sort_keys=True, separators=(",", ":"))
    crc = zlib.crc32(text.encode())
    for name in sorted(tensors):
        crc = zlib.crc32(np.ascontiguousarray(tensors[name]).reshape(-1).view(np.uint8), crc)
    return crc


def _check_header(header, path) -> dict:
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise FileFormatError(f"{path}: not a refcomp model file (header format "
                              f"{header.get('format') if isinstance(header, dict) else None!r})")
    v = header.get("version")
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise FileFormatError(f"{path}: bad format version {v!r}")
    if v > VERSION:
        raise FileFormatError(f"{path}: format version {v} is newer than this refcomp reads ({VERSION})")
    for key, typ in (("graph", dict), ("weights", dict), ("tensors", dict)):
        if not isinstance(header.get(key), typ):
            raise FileFormatError(f"{path}: header field {key!r} missing or not a {typ.__name__}")
    return header


def _unflatten(spec, name: str, tensors: dict, path, depth: int = 0) -> WeightFormat:
    """Rebuild the weight format ``spec`` describes from the tensors ``<name>.<field>`` (inverse of _flatten)."""
    if depth > _MAX_DEPTH:
        raise FileFormatError(f"{path}: weight {name!r}: formats composed more than {_MAX_DEPTH} deep")
    fmt = spec.get("format") if isinstance(spec, dict) else None
    cls = getattr(formats, str(fmt), None) if fmt else None
    if not (isinstance(cls, type) and issubclass(cls, WeightFormat) and hasattr(cls, "from_fields")):
        raise FileFormatError(f"{path}: weight {name!r} has unknown format {fmt!r}")
    names, parts = spec.get("fields", []), spec.get("parts", {})
    if not (_str_list(names) and isinstance(parts, dict)) or len(set(names)) != len(names) or set(names) & set(parts):
        raise FileFormatError(f"{path}: weight {name!r}: 'fields' must be a list of distinct names and 'parts' "
                              f"an object naming other fields")
    missing = [f for f in names if f"{name}.{f}" not in tensors]
    if missing:
        raise FileFormatError(f"{path}: weight {name!r}: no tensors for fields {missing}")
    fields = {f: tensors[f"{name}.{f}"].copy() for f in names}
    for f, sub in parts.items():
        fields[f] = _unflatten(sub, f"{name}.{f}", tensors, path, depth + 1)
    try:
        return cls.from_fields(fields)
    except _BAD_VALUE as exc:
        raise FileFormatError(f"{path}: weight {name!r}: {exc}") from exc


def _dtype(spec, name: str, path) -> tuple[np.dtype, tuple[int, ...]]:
    """The dtype and shape a directory entry declares, checked (kind, rank, sizes) before any array is read."""
    dtype = spec.get("dtype") if isinstance(spec, dict) else None
    shape = spec.get("shape") if isinstance(spec, dict) else None
    # only the form dtype.str takes ("<f4", "|b1"): np.dtype() of any other string is a small
    # language (comma lists, repeat counts evaluated by ast.literal_eval) with exceptions of its own
    dt = np.dtype(dtype) if isinstance(dtype, str) and re.fullmatch(r"[<>|][biuf](1|2|4|8)", dtype) else None
    if dt is None or dt.kind not in _KINDS or dt.hasobject:
        raise FileFormatError(f"{path}: tensor {name!r} has dtype {str(dtype)[:40]!r}; a model file holds "
                              "bool, integer or float tensors")
    if not (isinstance(shape, list) and len(shape) <= 32
            and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
        raise FileFormatError(f"{path}: tensor {name!r} has an invalid shape {str(shape)[:80]}")
    return dt, tuple(shape)


def _same_names(directory, stored, path) -> None:
    """The container's tensors are exactly the header directory's (checked before any is read)."""
    if set(directory) != set(stored):
        missing, extra = sorted(set(directory) - set(stored)), sorted(set(stored) - set(directory))
        raise FileFormatError(f"{path}: tensors do not match the header (missing {missing[:10]}, "
                              f"unexpected {extra[:10]})")


def _nbytes(dtype: np.dtype, shape) -> int:
    n = dtype.itemsize
    for d in shape:
        n *= d              # Python integers: a huge declared shape cannot overflow
    return n


def _check_values(name: str, a: np.ndarray, path) -> None:
    """Floats must be finite: a NaN or inf weight would only show up later as NaN outputs."""
    if a.dtype.kind == "f" and a.size and not np.isfinite(a).all():
        raise FileFormatError(f"{path}: tensor {name!r} holds NaN or infinite values")
    if a.dtype == bool and a.size and np.any(a.view(np.uint8) > 1):
        raise FileFormatError(f"{path}: bool tensor {name!r} holds bytes other than 0 and 1")


def _assemble(header: dict, tensors: dict, path) -> Module:
    """Check the tensors against the header, decode the weight formats, then build the graph within
    the memory the file's tensors account for, and put the tensors in it (each checked against its layer)."""
    want = header["tensors"]
    _same_names(want, tensors, path)
    for k, spec in want.items():
        a = tensors[k]
        dt, shape = _dtype(spec, k, path)
        if dt.str != a.dtype.str or tuple(a.shape) != shape:
            raise FileFormatError(f"{path}: tensor {k!r} is {a.dtype.str} {list(a.shape)}, header says {spec}")
    if "checksum" in header and header["checksum"] != _checksum(header, tensors):
        raise FileFormatError(f"{path}: checksum mismatch: the file is corrupted")
    for k, a in tensors.items():
        _check_values(k, a, path)
    # the weights first, from the tensors alone: their shapes bound what the graph may allocate below
    weights: dict[str, object] = {}
    budget = 1 << 20      # slack for layers' small arrays
    for name, spec in header["weights"].items():
        fmt = spec.get("format") if isinstance(spec, dict) else None
        if fmt in ("Dense", "Parameter") and not spec.get("fields"):
            if name not in tensors:
                raise FileFormatError(f"{path}: weight {name!r} has no tensor")
            a = tensors[name]
            if fmt == "Dense" and a.dtype.kind != "f" or a.ndim < 1 and fmt == "Dense":
                raise FileFormatError(f"{path}: Dense weight {name!r} is {a.dtype} {list(a.shape)}; "
                                      "expected floats of rank >= 1")
            weights[name] = (fmt, a)
            budget += a.nbytes
        else:
            new = _unflatten(spec, name, tensors, path)
            weights[name] = (None, new)
            # the layer is built with a dense placeholder of the format's shape (float64 at most)
            budget += 8 * int(np.prod(new.shape, dtype=object))
    budget += sum(a.nbytes for k, a in tensors.items() if k not in weights)     # buffers
    with allocation_budget(budget, FileFormatError):
        model = _build(header["graph"], "")
    modules = dict(model.named_modules())
    names = {n for n, _ in model.named_weights()}
    if names != set(header["weights"]):
        raise FileFormatError(f"{path}: weights {sorted(header['weights'])[:20]} do not match the graph's "
                              f"{sorted(names)[:20]}")
    for name, (fmt, a) in weights.items():
        owner, _, attr = name.rpartition(".")
        mod = modules[owner]
        old = getattr(mod, attr)
        if fmt is not None:
            if a.shape != old.shape or a.dtype != old.dtype:
                raise FileFormatError(f"{path}: tensor {name!r} has shape {a.shape} and dtype {a.dtype}, the layer "
                                      f"needs shape {old.shape} and dtype {old.dtype}")
            new = Dense(a.copy()) if fmt == "Dense" else Parameter(a.copy())
            if fmt == "Dense" and hasattr(old, "trainable"):
                new.trainable = old.trainable
        else:
            new = a
            # a convolution may hold its kernel as the (out, C·kh·kw) im2col matrix (Conv2d._weight_matmul)
            matrix = (old.shape[0], int(np.prod(old.shape[1:]))) if len(old.shape) > 2 else None
            if tuple(new.shape) not in (tuple(old.shape), matrix):
                raise FileFormatError(f"{path}: weight {name!r} has shape {new.shape}, the layer needs {old.shape}")
        setattr(mod, attr, new)
    buffers = dict(model.named_buffers())
    # every tensor is a weight, a field of a weight format or a buffer: none missing, none left over
    fields = {k for k in tensors for w, (fmt, _) in weights.items() if fmt is None and k.startswith(w + ".")}
    missing = sorted(set(buffers) - set(tensors))
    unused = sorted(set(tensors) - set(buffers) - {w for w, (fmt, _) in weights.items() if fmt} - fields)
    if missing or unused:
        raise FileFormatError(f"{path}: tensors do not match the graph's buffers (missing {missing[:10]}, "
                              f"used by no layer {unused[:10]})")
    for name, b in buffers.items():
        a = tensors[name]
        if a.shape != b.shape or a.dtype != b.dtype:
            raise FileFormatError(f"{path}: buffer {name!r} has shape {a.shape} and dtype {a.dtype}, the layer "
                                  f"needs shape {b.shape} and dtype {b.dtype}")
        if name.rpartition(".")[2] == "running_var" and a.size and a.min() < 0:
            # a negative variance makes sqrt(var + eps) NaN in every output of the layer
            raise FileFormatError(f"{path}: buffer {name!r} holds a negative variance ({a.min()})")
        owner, _, attr = name.rpartition(".")
        setattr(modules[owner], attr, a.copy())
    return model.eval()


# --- containers ---------------------------------------------------------------------
#: container -> the file suffix that selects it
SUFFIXES = {"safetensors": ".safetensors", "npz": ".npz", "compact": ".rcm"}


def _kind(path: Path, fmt: str | None) -> str:
    fmt = fmt or {suffix: kind for kind, suffix in SUFFIXES.items()}.get(path.suffix)
    if fmt not in SUFFIXES:
        raise ValidationError("format", "'safetensors', 'npz' or 'compact' (or a path ending in .safetensors, "
                              ".npz or .rcm)", repr(fmt or path.suffix))
    return fmt


def save_model(model: Module, path, *, format: str | None = None, metadata: dict | None = None) -> Path:
    """Write ``model`` (architecture + weights + buffers) to ``path`` atomically.

    format : the container: "safetensors", "npz" or "compact" (refcomp.io.compact_file:
        the fewest bytes, what ``refcomp compress`` writes; plain NumPy dtypes only,
        ValidationError otherwise); by default from the suffix (.safetensors, .npz, .rcm).
    metadata : optional JSON-able dict stored in the header.
    """
    path = Path(path)
    kind = _kind(path, format)
    tensors, header = _tensors_and_header(model, metadata)
    if kind == "compact":
        return write_atomic(path, compact_file.encode(header, tensors))
    header["checksum"] = _checksum(header, tensors)
    text = json.dumps(header, sort_keys=True)
    if kind == "safetensors":
        from safetensors.numpy import save

        data = save(tensors, metadata={"refcomp": text})
    else:
        if _NPZ_HEADER in tensors:
            raise ValidationError("model", f"no tensor named {_NPZ_HEADER}", "one")
        buf = io.BytesIO()
        np.savez(buf, **{_NPZ_HEADER: np.frombuffer(text.encode(), dtype=np.uint8)}, **tensors)
        data = buf.getvalue()
    return write_atomic(path, data)


def _read_safetensors(raw: bytes, path) -> tuple[dict, dict]:
    if len(raw) < 8:
        raise FileFormatError(f"{path}: truncated safetensors file ({len(raw)} bytes)")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > _MAX_HEADER or 8 + n > len(raw):
        raise FileFormatError(f"{path}: truncated or foreign file (header length {n}, file {len(raw)} bytes)")
    # parsed here first (not only by the safetensors package): a tensor named twice is refused
    st_header = load_json(raw[8:8 + n], f"{path}: safetensors header")
    text = st_header.get("__metadata__", {}).get("refcomp") if isinstance(st_header, dict) else None
    if not isinstance(st_header.get("__metadata__") if isinstance(st_header, dict) else None, dict) \
            or not isinstance(text, str):
        raise FileFormatError(f"{path}: not a refcomp model file (no refcomp entry in the safetensors metadata)")
    header = _check_header(load_json(text, f"{path}: refcomp header"), path)
    _same_names(header["tensors"], set(st_header) - {"__metadata__"}, path)
    try:
        from safetensors.numpy import load

        # the package checks every offset against the file; the arrays it makes total the file's size
        tensors = load(raw)
    except Exception as exc:  # the Rust parser raises SafetensorError / others
        raise FileFormatError(f"{path}: corrupted safetensors data: {exc}") from exc
    return header, tensors


def _read_npy(z: zipfile.ZipFile, info: zipfile.ZipInfo, dtype: np.dtype, shape, path) -> np.ndarray:
    """One .npy member, its header checked against (dtype, shape) before its data is read
    (shape None: any 1-D length, for the refcomp header array)."""
    where = f"{path}: npz member {info.filename!r}"
    with z.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            got_shape, fortran, got_dtype = np.lib.format.read_array_header_1_0(f)
        elif version in ((2, 0), (3, 0)):
            got_shape, fortran, got_dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise FileFormatError(f"{where}: unknown .npy version {version}")
        if got_dtype.hasobject:
            raise FileFormatError(f"{where}: an object array (reading it needs pickle): refused")
        if shape is None and len(got_shape) == 1:
            shape = tuple(got_shape)
        if got_dtype.str != dtype.str or tuple(got_shape) != shape:
            raise FileFormatError(f"{where}: holds {got_dtype.str} {list(got_shape)}, expected "
                                  f"{dtype.str} {'1-D' if shape is None else list(shape)}")
        n = _nbytes(dtype, shape)
        # the zip directory's uncompressed size must be exactly the .npy header plus the array the
        # refcomp header declares: checked before a byte of the data is inflated
        if info.file_size != f.tell() + n:
            raise FileFormatError(f"{where}: declares {info.file_size} bytes uncompressed; {dtype.str} "
                                  f"{list(shape)} takes {f.tell() + n} with its .npy header")
        data = f.read(n + 1)   # one byte more than the array: a longer member is refused, not ignored
    if len(data) != n:
        raise FileFormatError(f"{where}: {len(data)} bytes of data, {dtype.str} {list(shape)} needs {n}")
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def _read_npz(raw: bytes, path) -> tuple[dict, dict]:
    """Read the npz member by member, each one's declared sizes checked before it is inflated."""
    try:
        z = zipfile.ZipFile(io.BytesIO(raw))
        infos = z.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, struct.error,
            NotImplementedError) as exc:     # NotImplementedError: a zip "version needed" zipfile lacks
        raise FileFormatError(f"{path}: truncated or corrupted npz file: {exc}") from exc
    members: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        name = info.filename
        if not name.endswith(".npy") or name[:-4] in members:
            raise FileFormatError(f"{path}: npz member {name!r} is not a .npy array or appears twice")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise FileFormatError(f"{path}: npz member {name!r} uses zip compression {info.compress_type}")
        members[name[:-4]] = info
    if _NPZ_HEADER not in members:
        raise FileFormatError(f"{path}: not a refcomp model file (no {_NPZ_HEADER} array)")
    # an npz member's declared uncompressed size is what inflating it would cost: bound the total first
    limit = _NPZ_INFLATE * len(raw) + (1 << 20)
    total = sum(info.file_size for info in infos)
    if total > limit:
        raise FileFormatError(f"{path}: npz members declare {total} bytes uncompressed, more than "
                              f"{_NPZ_INFLATE} times the file ({len(raw)} bytes)")
    try:
        hinfo = members.pop(_NPZ_HEADER)
        if hinfo.file_size > _MAX_HEADER + 4096:      # the JSON plus a .npy header of a few lines
            raise FileFormatError(f"{path}: {_NPZ_HEADER} declares {hinfo.file_size} bytes, more than the "
                                  f"{_MAX_HEADER} a header may have")
        h = _read_npy(z, hinfo, np.dtype(np.uint8), None, path)
        header = _check_header(load_json(h.tobytes(), f"{path}: refcomp header"), path)
        directory = header["tensors"]
        _same_names(directory, members, path)
        arrays = {}
        for name, info in members.items():
            dtype, shape = _dtype(directory[name], name, path)
            arrays[name] = _read_npy(z, info, dtype, shape, path)
    except FileFormatError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, SyntaxError, TypeError, struct.error, zlib.error,
            NotImplementedError) as exc:
        # ValueError, SyntaxError, TypeError: np.lib.format on a bad .npy header (its dict is read with
        # ast.literal_eval); BadZipFile: a CRC mismatch of a member
        raise FileFormatError(f"{path}: truncated or corrupted npz file: {exc}") from exc
    return header, arrays


def load_model(path) -> Module:
    """Read a model written by :func:`save_model` (container detected from the bytes).

    Returns the model in eval mode. Raises FileFormatError for anything that is
    not a complete, consistent refcomp model file of a known version.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:4] == b"RCDC":  # the Deep Compression file refcomp compress wrote before (refcomp.io.compressed_file)
        raise FileFormatError(f"{path}: a Deep Compression file of the earlier format (.rcdc), which holds no "
                              "graph: convert it with refcomp.pipelines.deep_compression.load_into(model, path, "
                              "stored=True), given the model it was made from, and save_model(..., format='compact')")
    if raw[:3] == compact_file.MAGIC[:3]:
        header, payload = compact_file.read_header(raw, path)
        tensors = compact_file.read_tensors(_check_header(header, path)["tensors"], payload, path)
    elif raw[:4] == b"PK\x03\x04" or raw[:4] == b"PK\x05\x06":
        header, tensors = _read_npz(raw, path)
    else:
        header, tensors = _read_safetensors(raw, path)
    return _assemble(header, tensors, path)
