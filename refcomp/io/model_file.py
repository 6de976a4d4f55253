"""Model files: architecture + weights, as safetensors, npz or the compact encoding; never pickle.

Every container holds the same two things:

1. the tensors, named as in ``model.state_dict()`` — ``<layer>.<attribute>``
   (``conv1.weight``, ``bn1.running_var``, ...); a weight held in a format other
   than Dense is stored field by field as ``<layer>.weight.<field>``;
2. a JSON header (UTF-8):

   ==============  ============================================================
   field           meaning
   ==============  ============================================================
   format          always "refcomp.model"
   version         integer format version (a newer one is refused): 2 when a
                   weight is a composed format (below), else 1
   graph           the layer graph: {"type": "Sequential", "children": [
                   {"name": "conv1", "type": "Conv2d", "config": {...}}, ...]}
                   (config = the layer's constructor keyword arguments), or
                   {"type": "Graph", "inputs": [...], "outputs": [...], "nodes":
                   [{"name": "fc1", "inputs": ["x"], "module": {"type": ...}}]}
   weights         {name: {"format": "Dense" | <refcomp.formats class>,
                   "fields": [...]}} for every weight and parameter; a
                   composed format (a LowRank whose factors are QTensors)
                   adds "parts": {field: <the same spec of that format>},
                   its tensors named ``<layer>.weight.<field>.<subfield>``
   tensors         {tensor name: {"dtype": ..., "shape": [...]}} — checked on load
   metadata        free user metadata (JSON object)
   ==============  ============================================================

Where the header lives: safetensors — the string entry ``"refcomp"`` of the
file's ``__metadata__`` (safetensors' own JSON header); npz — an array named
``__refcomp_header__`` of dtype uint8 holding the JSON bytes (so that
``np.load(..., allow_pickle=False)`` can read it); compact (``.rcm``,
refcomp.io.compact_file, the file ``refcomp compress`` writes) — deflated
after a 16-byte prefix with a checksum, the tensors packed behind it with no
padding. The compact encoding of a model whose layers hold RelativeIndexCSR
weights is the Deep Compression file: those weights' fields are the
Huffman-coded bits the size table counts.

Writes are atomic (refcomp.io.atomic). Loading checks the container, the
header, the version, the graph and every tensor's name, dtype and shape;
anything truncated, corrupted, foreign or of an unknown version raises
:class:`refcomp.errors.FileFormatError`. A weight's shape must be the layer's,
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
import struct
import zipfile
from pathlib import Path

import numpy as np

from .. import formats
from ..errors import FileFormatError, ValidationError
from ..formats.base import WeightFormat
from ..formats.dense import Dense
from ..nn.graph import Graph
from ..nn.module import LAYER_TYPES, Module, Parameter, Sequential
from . import compact_file
from .atomic import write_atomic

__all__ = ["save_model", "load_model", "FORMAT", "VERSION", "SUFFIXES", "model_header"]

FORMAT = "refcomp.model"
VERSION = 2   # 2: weight formats composed of formats ("parts"); 1: everything else
_NPZ_HEADER = "__refcomp_header__"
_MAX_HEADER = 100 * 2 ** 20


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


def _build(node: dict, where: str) -> Module:
    if not isinstance(node, dict) or "type" not in node:
        raise FileFormatError(f"graph node {where or '<root>'}: expected an object with 'type'")
    t = node["type"]
    if t == "Graph":
        _check_graph(node, where)
        try:
            g = Graph(inputs=node["inputs"])
            for n in node["nodes"]:
                g.add(n["name"], _build(n["module"], f"{where}.{n['name']}" if where else n["name"]), *n["inputs"])
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
                seq.add(name, _build(ch, f"{where}.{name}" if where else name))
            except ValidationError as exc:
                raise FileFormatError(f"graph node {where or '<root>'}: {exc}") from exc
        return seq
    cls = LAYER_TYPES.get(t)
    if cls is None:
        raise FileFormatError(f"graph node {where}: unknown layer type {t!r}")
    cfg = node.get("config", {})
    if not isinstance(cfg, dict):
        raise FileFormatError(f"graph node {where}: config must be an object")
    try:
        return cls(**cfg)
    except (TypeError, ValueError) as exc:
        raise FileFormatError(f"graph node {where}: cannot build {t} from {cfg}: {exc}") from exc


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
        "graph": _graph(model),
        "weights": weights,
        "tensors": {k: {"dtype": v.dtype.str, "shape": list(v.shape)} for k, v in tensors.items()},
        "metadata": metadata or {},
    }
    return tensors, header


def model_header(model: Module, metadata: dict | None = None) -> dict:
    """The JSON header :func:`save_model` would write for ``model``."""
    return _tensors_and_header(model, metadata)[1]


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


def _unflatten(spec, name: str, tensors: dict, path) -> WeightFormat:
    """Rebuild the weight format ``spec`` describes from the tensors ``<name>.<field>`` (inverse of _flatten)."""
    fmt = spec.get("format") if isinstance(spec, dict) else None
    cls = getattr(formats, str(fmt), None) if fmt else None
    if not (isinstance(cls, type) and issubclass(cls, WeightFormat) and hasattr(cls, "from_fields")):
        raise FileFormatError(f"{path}: weight {name!r} has unknown format {fmt!r}")
    names, parts = spec.get("fields", []), spec.get("parts", {})
    if not isinstance(names, list) or not isinstance(parts, dict):
        raise FileFormatError(f"{path}: weight {name!r}: 'fields' must be a list and 'parts' an object")
    missing = [f for f in names if f"{name}.{f}" not in tensors]
    if missing:
        raise FileFormatError(f"{path}: weight {name!r}: no tensors for fields {missing}")
    fields = {f: tensors[f"{name}.{f}"].copy() for f in names}
    for f, sub in parts.items():
        fields[f] = _unflatten(sub, f"{name}.{f}", tensors, path)
    try:
        return cls.from_fields(fields)
    except (TypeError, ValueError) as exc:
        raise FileFormatError(f"{path}: weight {name!r}: {exc}") from exc


def _assemble(header: dict, tensors: dict, path) -> Module:
    want = header["tensors"]
    if set(want) != set(tensors):
        missing, extra = sorted(set(want) - set(tensors)), sorted(set(tensors) - set(want))
        raise FileFormatError(f"{path}: tensors do not match the header (missing {missing}, unexpected {extra})")
    for k, spec in want.items():
        a = tensors[k]
        if not isinstance(spec, dict) or np.dtype(spec.get("dtype", "O")).str != a.dtype.str \
                or list(a.shape) != list(spec.get("shape", [])):
            raise FileFormatError(f"{path}: tensor {k!r} is {a.dtype.str} {list(a.shape)}, header says {spec}")
    model = _build(header["graph"], "")
    modules = dict(model.named_modules())
    names = {n for n, _ in model.named_weights()}
    if names != set(header["weights"]):
        raise FileFormatError(f"{path}: weights {sorted(header['weights'])} do not match the graph's {sorted(names)}")
    for name, spec in header["weights"].items():
        owner, _, attr = name.rpartition(".")
        mod = modules[owner]
        old = getattr(mod, attr)
        fmt = spec.get("format") if isinstance(spec, dict) else None
        if fmt in ("Dense", "Parameter") and not spec.get("fields"):
            a = tensors[name]
            if a.shape != old.shape:
                raise FileFormatError(f"{path}: tensor {name!r} has shape {a.shape}, the layer needs {old.shape}")
            new = Dense(a.copy()) if fmt == "Dense" else Parameter(a.copy())
            if fmt == "Dense" and hasattr(old, "trainable"):
                new.trainable = old.trainable
        else:
            new = _unflatten(spec, name, tensors, path)
            # a convolution may hold its kernel as the (out, C·kh·kw) im2col matrix (Conv2d._weight_matmul)
            matrix = (old.shape[0], int(np.prod(old.shape[1:]))) if len(old.shape) > 2 else None
            if tuple(new.shape) not in (tuple(old.shape), matrix):
                raise FileFormatError(f"{path}: weight {name!r} has shape {new.shape}, the layer needs {old.shape}")
        setattr(mod, attr, new)
    for name, b in model.named_buffers():
        a = tensors[name]
        if a.shape != b.shape:
            raise FileFormatError(f"{path}: buffer {name!r} has shape {a.shape}, the layer needs {b.shape}")
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
    try:
        st_header = json.loads(raw[8:8 + n].decode("utf-8"))
        text = st_header["__metadata__"]["refcomp"]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise FileFormatError(f"{path}: not a refcomp model file (no refcomp header: {exc!r})") from exc
    try:
        header = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FileFormatError(f"{path}: corrupted refcomp header: {exc}") from exc
    _check_header(header, path)
    try:
        from safetensors.numpy import load

        tensors = load(raw)
    except Exception as exc:  # the Rust parser raises SafetensorError / others
        raise FileFormatError(f"{path}: corrupted safetensors data: {exc}") from exc
    return header, tensors


def _read_npz(raw: bytes, path) -> tuple[dict, dict]:
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as z:
            names = list(z.files)
            if _NPZ_HEADER not in names:
                raise FileFormatError(f"{path}: not a refcomp model file (no {_NPZ_HEADER} array)")
            arrays = {k: z[k] for k in names}
    except FileFormatError:
        raise
    except ValueError as exc:  # object arrays need pickle, which is refused
        raise FileFormatError(f"{path}: npz holds an array that needs pickle (object dtype): refused") from exc
    except (zipfile.BadZipFile, OSError, EOFError, KeyError, struct.error) as exc:
        raise FileFormatError(f"{path}: truncated or corrupted npz file: {exc}") from exc
    h = arrays.pop(_NPZ_HEADER)
    if h.dtype != np.uint8 or h.ndim != 1:
        raise FileFormatError(f"{path}: {_NPZ_HEADER} must be a 1-D uint8 array")
    try:
        header = json.loads(h.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FileFormatError(f"{path}: corrupted refcomp header: {exc}") from exc
    return _check_header(header, path), arrays


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
