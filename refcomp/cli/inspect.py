"""``refcomp inspect``: what a model file holds, weight by weight.

    refcomp inspect out/model.rcm
    refcomp inspect lenet5.safetensors --json
    refcomp inspect w8a8.onnx

FILE: a refcomp model file (.safetensors / .npz / .rcm, recognised by its
bytes; refcomp.io.load_model) or an ONNX file (.onnx; refcomp.onnx.load). The
file is loaded with every check the loaders make, so a truncated, forged or
foreign file is a one-line error, not a table of garbage. Per weight (and
buffer): its name, format (dense, CSR, clustered, static / dynamic quantized,
low-rank, hashed, ...), logical shape, stored dtype, quantization parameters
(a per-tensor scale, or the min..max and count of per-channel ones), sparsity
(the share of exact zeros in the dense weight), the bytes its format stores
and their share of the file; then a total line. ``--json`` prints the same as
one JSON document (its keys: docs/cli.md).
"""

from __future__ import annotations

import argparse

import numpy as np

from .. import formats
from ..nn.module import Parameter
from . import _common

HELP = "show a model file (refcomp or ONNX) weight by weight: format, shape, dtype, qparams, sparsity, bytes"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="a refcomp model file (.safetensors / .npz / .rcm) or an .onnx file")
    _common.add_json(parser)


def _qtensors(w) -> list:
    """The QTensors a weight stores its codes in (none for an unquantized format)."""
    if isinstance(w, formats.QTensor):
        return [w]
    if isinstance(w, (formats.StaticQuantized, formats.DynamicQuantized)):
        return [w.weight]
    if isinstance(w, formats.CSRMatrix):
        return _qtensors(w.data)
    if isinstance(w, formats.LowRank):
        return _qtensors(w.left) + _qtensors(w.right)
    return []


def _summary(a) -> float | dict:
    """One number if every value is the same, else {min, max, count}."""
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    if a.size == 1 or a.min() == a.max():
        return float(a[0])
    return {"min": float(a.min()), "max": float(a.max()), "count": int(a.size)}


def qparams_of(w) -> dict | None:
    """Scale / zero-point summary of a quantized weight (of its first factor when there are two)."""
    qts = _qtensors(w)
    if not qts:
        return None
    qp = qts[0].qparams
    return {"dtype": qp.dtype.name, "granularity": qp.granularity, "axis": qp.axis, "block_size": qp.block_size,
            "scale": _summary(qp.scale), "zero_point": _summary(qp.zero_point)}


def format_of(w) -> str:
    """The weight format in words: the class, and what it is made of when it matters."""
    if isinstance(w, (Parameter, np.ndarray)):
        return "dense"
    if isinstance(w, formats.Dense):
        return "dense (masked)" if w.mask is not None else "dense"
    if isinstance(w, formats.QTensor):
        return "quantized"
    if isinstance(w, formats.StaticQuantized):
        return "static quantized" + (" (smoothed)" if w.smooth is not None else "")
    if isinstance(w, formats.DynamicQuantized):
        return "dynamic quantized" + (" (per token)" if w.per_token else "")
    if isinstance(w, formats.CSRMatrix):
        inner = {formats.QTensor: "quantized ", formats.Clustered: "clustered "}.get(type(w.data), "")
        return f"{inner}CSR"
    if isinstance(w, formats.RelativeIndexCSR):
        return "relative-index CSR" + (" (clustered)" if w.codebook is not None else "")
    if isinstance(w, formats.LowRank):
        inner = " (quantized factors)" if _qtensors(w) else ""
        return f"low-rank (rank {w.rank}){inner}"
    if isinstance(w, formats.Clustered):
        return f"clustered ({len(w.codebook)} centroids)"
    return {formats.HalfPrecision: "half precision", formats.Hashed: "hashed",
            formats.PowerOfTwo: "power of two"}.get(type(w), type(w).__name__)


def dtype_of(w) -> str:
    """The dtype the values are stored in (codes, indices or floats)."""
    qts = _qtensors(w)
    if qts:
        return qts[0].qparams.dtype.name
    if isinstance(w, formats.Clustered):
        return f"{w.bits}-bit index"
    if isinstance(w, formats.RelativeIndexCSR):
        return f"{w.weight_bits}-bit " + ("index" if w.codebook is not None else "value")
    if isinstance(w, formats.PowerOfTwo):
        return f"{w.bits}-bit exponent"
    if isinstance(w, formats.LowRank):
        return dtype_of(w.left) if isinstance(w.left, formats.WeightFormat) else str(np.asarray(w.left).dtype)
    return str(np.asarray(w.data if hasattr(w, "data") else w).dtype)


def _row(name: str, w, file_bytes: int) -> dict:
    plain = isinstance(w, (Parameter, np.ndarray))      # a bias, a buffer: the array itself is stored
    dense = np.asarray(w.data if isinstance(w, Parameter) else w) if plain else w.to_dense()
    nbytes = int(dense.nbytes if plain else w.nbytes)
    return {"name": name, "format": format_of(w), "shape": [int(d) for d in dense.shape], "dtype": dtype_of(w),
            "qparams": qparams_of(w),
            "sparsity": float(np.count_nonzero(dense == 0) / dense.size) if dense.size else 0.0,
            "bytes": nbytes, "share": nbytes / file_bytes if file_bytes else 0.0}


def inspect_file(path) -> dict:
    """The report of ``path`` (see the module docstring): its kind, size, rows and total."""
    p = _common.input_file(path, "FILE", "model file")
    model = _common.load_any_model(p)
    kind = "onnx" if p.suffix.lower() == ".onnx" else "refcomp"
    file_bytes = p.stat().st_size
    rows = [_row(n, w, file_bytes) for n, w in model.named_weights()]
    rows += [{**_row(n, b, file_bytes), "format": "buffer"} for n, b in model.named_buffers()]
    stored = sum(r["bytes"] for r in rows)
    parameters = sum(int(np.prod(r["shape"])) for r in rows)
    return {"file": str(path), "kind": kind, "file_bytes": file_bytes, "layers": rows,
            "total": {"tensors": len(rows), "parameters": parameters, "bytes": stored,
                      "share": stored / file_bytes if file_bytes else 0.0}}


def _qparams_text(q: dict | None) -> str:
    if q is None:
        return "-"

    def one(v):
        return f"{v:.4g}" if not isinstance(v, dict) else f"{v['min']:.4g}..{v['max']:.4g} ({v['count']})"
    return f"{q['granularity']} scale {one(q['scale'])} zp {one(q['zero_point'])}"


def format_table(report: dict) -> str:
    """The report as an aligned text table with a total line."""
    head = ("name", "format", "shape", "dtype", "qparams", "sparsity", "bytes", "share")
    cells = [head]
    for r in report["layers"]:
        cells.append((r["name"], r["format"], "x".join(map(str, r["shape"])) or "scalar", r["dtype"],
                      _qparams_text(r["qparams"]), f"{100 * r['sparsity']:.1f} %", f"{r['bytes']:,}",
                      f"{100 * r['share']:.1f} %"))
    t = report["total"]
    cells.append(("total", f"{t['tensors']} tensors", f"{t['parameters']:,} values", "", "", "",
                  f"{t['bytes']:,}", f"{100 * t['share']:.1f} %"))
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    numeric = {5, 6, 7}
    lines = ["  ".join(c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
             .rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.insert(len(lines) - 1, lines[1])
    return "\n".join(lines)


def run(args) -> int:
    report = inspect_file(args.file)
    if args.json:
        _common.emit_json(report)
        return 0
    # the share the total line leaves is the header, the graph and the container's own bytes
    print(f"{report['file']}: {report['kind']} model file, {report['file_bytes']:,} bytes\n")
    print(format_table(report))
    return 0
