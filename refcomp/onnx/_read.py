"""Reading an ONNX file with bounded memory, and the checks every graph passes before it is mapped.

What is checked, and why (a hostile or broken file must fail with a FileFormatError
naming what is wrong, never allocate what it declares or read outside its folder):

- the file's size before it is read (protobuf caps a message at 2 GiB anyway);
- the protobuf parses (a truncated file usually does not);
- one default-domain opset in 13..21 (ONNX spec, "Operator sets");
- each tensor's dims are >= 0 and its byte size at most MAX_TENSOR_BYTES, and the
  bytes it holds (raw_data, the typed field, or the external range) are exactly
  dims × itemsize, all *before* an array is made;
- external data (ONNX spec, "External Tensor Data"): a relative location that
  resolves inside the model's folder, an offset and length inside that file;
- names: no value produced twice, every node input produced somewhere, the nodes
  ordered topologically (Kahn's algorithm; a leftover node is on a cycle).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import DTypeError, FileFormatError, MissingDependencyError

__all__ = ["MAX_OPSET", "MIN_OPSET", "onnx_module", "opset_of", "parse", "read_tensor", "toposort"]

MIN_OPSET, MAX_OPSET = 13, 21
#: protobuf's own limit for one message
MAX_FILE_BYTES = 2 ** 31 - 1
#: one tensor (also a folded constant) may not need more than this
MAX_TENSOR_BYTES = 2 ** 31

# TensorProto.DataType -> NumPy dtype, the element types refcomp reads (no strings, no 16-bit floats)
_DTYPES = {1: np.float32, 11: np.float64, 6: np.int32, 7: np.int64, 9: np.bool_, 3: np.int8, 2: np.uint8}
# the typed field that holds the values when raw_data is empty (TensorProto, "data" fields)
_FIELDS = {1: "float_data", 11: "double_data", 6: "int32_data", 7: "int64_data", 9: "int32_data", 3: "int32_data",
           2: "int32_data"}


def onnx_module():
    """The ``onnx`` package, or a clear error naming the extra that installs it."""
    try:
        import onnx
    except ImportError:
        raise MissingDependencyError("refcomp.onnx", "onnx", "interop") from None
    return onnx


def parse(model):
    """(ModelProto, folder of its external data or None) from a path or a ModelProto."""
    onnx = onnx_module()
    if isinstance(model, onnx.ModelProto):
        return model, None
    if not isinstance(model, (str, os.PathLike)):
        raise FileFormatError(f"model: expected a path or an onnx.ModelProto, got {type(model).__name__}")
    path = Path(model)
    if not path.is_file():
        raise FileFormatError(f"{path}: no such file")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise FileFormatError(f"{path}: {size} bytes, more than the {MAX_FILE_BYTES} a protobuf message can hold")
    raw = path.read_bytes()
    from google.protobuf.message import DecodeError

    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(raw)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise FileFormatError(f"{path}: not a readable ONNX protobuf (truncated or corrupted): {exc}") from None
    return proto, path.resolve().parent


def opset_of(proto) -> int:
    """The default-domain opset version, checked to be in MIN_OPSET..MAX_OPSET."""
    versions = [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")]
    if not proto.HasField("graph") or not versions:
        raise FileFormatError("model: expected an ONNX model with a graph and a default-domain opset_import, "
                              "got none (truncated or not an ONNX model)")
    v = int(versions[0])
    if not MIN_OPSET <= v <= MAX_OPSET:
        raise FileFormatError(f"model: expected opset {MIN_OPSET}..{MAX_OPSET} of the default domain, got {v}")
    return v


def _external(t, where: str, folder, nbytes: int) -> bytes:
    """The bytes of an external tensor, read from inside ``folder`` only."""
    info = {e.key: e.value for e in t.external_data}
    if folder is None:
        raise FileFormatError(f"{where}: external data needs the model's path (load the file, not a ModelProto)")
    loc = info.get("location", "")
    if not loc or os.path.isabs(loc) or Path(loc).drive:
        raise FileFormatError(f"{where}: external data location must be a relative path, got {loc!r}")
    target = (folder / loc).resolve()
    if os.path.commonpath([str(target), str(folder)]) != str(folder):
        raise FileFormatError(f"{where}: external data location {loc!r} leaves the model's folder {folder}")
    if not target.is_file():
        raise FileFormatError(f"{where}: external data file {loc!r} does not exist")
    try:
        offset = int(info.get("offset", "0"))
        length = int(info.get("length", str(nbytes)))
    except ValueError:
        raise FileFormatError(f"{where}: external data offset/length must be integers, got {info}") from None
    if length != nbytes or offset < 0:
        raise FileFormatError(f"{where}: external data of {length} bytes at offset {offset}, "
                              f"the dims need {nbytes} bytes at an offset >= 0")
    size = target.stat().st_size
    if offset + length > size:
        raise FileFormatError(f"{where}: external data range [{offset}, {offset + length}) "
                              f"ends past the end of {loc!r} ({size} bytes)")
    with open(target, "rb") as f:
        f.seek(offset)
        return f.read(length)


def read_tensor(t, where: str, folder=None) -> np.ndarray:
    """A TensorProto as a NumPy array, its dims and byte count checked before anything is allocated."""
    onnx = onnx_module()
    dtype = _DTYPES.get(t.data_type)
    if dtype is None and (t.data_type == onnx.TensorProto.UNDEFINED
                          or t.data_type not in onnx.TensorProto.DataType.values()):
        # not an ONNX element type at all: a damaged file, not one refcomp merely does not support
        raise FileFormatError(f"{where}: element type {t.data_type} is not an ONNX data type")
    if dtype is None:
        name = onnx.TensorProto.DataType.Name(t.data_type) if t.data_type in onnx.TensorProto.DataType.values() \
            else str(t.data_type)
        raise DTypeError(where, "a tensor of float32, float64, int32, int64, bool, int8 or uint8", name)
    dims = [int(d) for d in t.dims]
    if any(d < 0 for d in dims):
        raise FileFormatError(f"{where}: negative dims {dims}")
    count = 1
    for d in dims:
        count *= d                      # Python ints: no overflow however large the dims
    nbytes = count * np.dtype(dtype).itemsize
    if nbytes > MAX_TENSOR_BYTES:
        raise FileFormatError(f"{where}: dims {dims} declare {nbytes} bytes, more than the {MAX_TENSOR_BYTES} allowed")
    if t.data_location == onnx.TensorProto.EXTERNAL:
        raw = _external(t, where, folder, nbytes)
        return np.frombuffer(raw, dtype=dtype).reshape(dims).copy()
    if t.raw_data:
        if len(t.raw_data) != nbytes:
            raise FileFormatError(f"{where}: raw_data holds {len(t.raw_data)} bytes, dims {dims} need {nbytes}")
        return np.frombuffer(t.raw_data, dtype=dtype).reshape(dims).copy()
    values = getattr(t, _FIELDS[t.data_type])
    if len(values) != count:
        raise FileFormatError(f"{where}: {_FIELDS[t.data_type]} holds {len(values)} values, dims {dims} need {count}")
    return np.asarray(values).astype(dtype).reshape(dims)


def check_names(graph) -> None:
    """Every name is text: protobuf hands back bytes for a string field that is not valid UTF-8."""
    named = [("initializer", t.name) for t in graph.initializer]
    named += [("graph input", v.name) for v in graph.input] + [("graph output", v.name) for v in graph.output]
    for node in graph.node:
        named += [("node", node.name), ("op type", node.op_type), ("domain", node.domain)]
        named += [("node input", i) for i in node.input] + [("node output", o) for o in node.output]
        named += [("attribute", a.name) for a in node.attribute]
    for what, name in named:
        if not isinstance(name, str):
            raise FileFormatError(f"{what} {name!r}: expected a UTF-8 name (corrupted file)")


def toposort(graph, known: set[str]) -> list:
    """The nodes in an order where each runs after the producers of its inputs.

    ``known`` are the names available before any node (graph inputs, initializers).
    Raises FileFormatError on a value produced twice, an input nobody produces,
    or a cycle.
    """
    producer = {}
    for i, node in enumerate(graph.node):
        for out in node.output:
            if not out:
                continue
            if out in producer or out in known:
                raise FileFormatError(f"node {node.name or node.op_type!r}: output {out!r} is produced twice "
                                      "(duplicate value names)")
            producer[out] = i
    for node in graph.node:
        for inp in node.input:
            if inp and inp not in producer and inp not in known:
                raise FileFormatError(f"node {node.name or node.op_type!r}: input {inp!r} is neither a graph input, "
                                      "an initializer nor a node output (missing input)")
    waiting = [sum(1 for inp in n.input if inp and inp not in known) for n in graph.node]
    users: dict[str, list[int]] = {}
    for i, node in enumerate(graph.node):
        for inp in node.input:
            if inp and inp not in known:
                users.setdefault(inp, []).append(i)
    ready = [i for i, w in enumerate(waiting) if w == 0]
    order = []
    while ready:
        i = ready.pop(0)
        order.append(i)
        for out in graph.node[i].output:
            for j in users.get(out, []):
                waiting[j] -= 1
                if waiting[j] == 0:
                    ready.append(j)
    if len(order) != len(graph.node):
        stuck = [graph.node[i].name or graph.node[i].op_type for i in range(len(graph.node)) if i not in set(order)]
        raise FileFormatError(f"graph: nodes {stuck[:5]} depend on each other (a cycle)")
    return [graph.node[i] for i in order]
