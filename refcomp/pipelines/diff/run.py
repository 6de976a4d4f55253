"""Layer-by-layer comparison of two models on the same inputs (``refcomp diff``).

A model is a refcomp model file (any container, ``refcomp.io.load_model``) or
an ONNX file, run by refcomp (``refcomp.onnx.load``) or by onnxruntime with
every intermediate value exposed as an extra graph output. Each side gives
``{name: LayerOutput}``: the float output of every named module (a refcomp
model, read with forward hooks; a QTensor output dequantized) or of every
ONNX value (integer codes dequantized with the scale and zero point of the
QuantizeLinear that made them or the DequantizeLinear that reads them; other
integer values are left out). Layers are matched by name, after dropping a
leading prefix that one side adds to all its names (``model.`` of an
integer-only model); the nodes of a graph read from ONNX also answer to the
ONNX value they compute (``fc1_matmul_MatMul`` to ``fc1``, ``Graph.onnx_values``),
whichever naming matches more layers; the model outputs are always compared,
as ``(output)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ... import onnx as rc_onnx
from ...errors import (
    FileFormatError,
    MissingDependencyError,
    RefcompError,
    ShapeError,
    ValidationError,
)
from ...formats import QTensor
from ...io import load_model
from .metrics import cosine, max_abs_error, saturated_share, sqnr_db

__all__ = ["OUTPUT", "LayerOutput", "compare", "diff_files", "format_table", "layer_outputs", "match_names"]

#: the key of the models' final outputs
OUTPUT = "(output)"
#: "onnxruntime-exact": onnxruntime with session.x64quantprecision=1 (u8 × s8 products without
#: int16 saturation, docs/deviations.md D6), the setting under which its integer results equal refcomp's
RUNTIMES = ("refcomp", "onnxruntime", "onnxruntime-exact")


class Outputs(dict):
    """{layer name: LayerOutput} and ``aliases``: {node name: ONNX value name} of an imported graph."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.aliases: dict[str, str] = {}


@dataclass
class LayerOutput:
    """One layer's outputs over the whole input set (float32) and, for codes, the saturated share."""

    values: np.ndarray
    saturated: float | None = None


def _as_float(out):
    """(float array, saturated share or None) of a module output; None for other outputs."""
    if isinstance(out, QTensor):
        qp = out.qparams
        return np.asarray(out.to_dense(), dtype=np.float32), saturated_share(out.data, qp.qmin, qp.qmax)
    if isinstance(out, np.ndarray) and out.dtype.kind == "f":
        return out.astype(np.float32, copy=False), None
    return None


def _concat(parts, name):
    try:
        return np.concatenate(parts, axis=0)
    except ValueError:
        raise ShapeError(f"output of {name!r}", "the same shape in every batch",
                         [p.shape for p in parts[:3]]) from None


def _module_outputs(model, x, batch_size) -> Outputs:
    """Every named module's output of a refcomp model on ``x`` (forward hooks), plus OUTPUT."""
    seen: dict[str, list] = {}
    sat: dict[str, list] = {}
    order = []
    hooks = []
    for name, module in model.named_modules():
        if not name:
            continue
        key = name
        order.append(key)

        def hook(mod, inputs, out, key=key):
            r = _as_float(out)
            if r is None:
                return
            seen.setdefault(key, []).append(np.array(r[0], copy=True))
            if r[1] is not None:
                sat.setdefault(key, []).append((r[1], r[0].size))
        hooks.append((module, hook))
    final = []
    model_batches = [x[i:i + batch_size] for i in range(0, len(x), batch_size)]

    def root(mod, inputs, out):
        r = _as_float(out)
        if r is not None:
            final.append(np.array(r[0], copy=True))
    hooks.append((model, root))
    # forward() of the root does not run its own hooks: run each batch through __call__
    handles = [m.register_forward_hook(fn) for m, fn in hooks]
    was = model.training
    model.eval()
    try:
        for xb in model_batches:
            model(xb)
    finally:
        for h in handles:
            h.remove()
        model.train(was)
    res = Outputs()
    res.aliases = dict(getattr(model, "onnx_values", None) or {})
    for key in order:
        if key in seen and len(seen[key]) == len(model_batches):
            s = sat.get(key)
            share = sum(f * n for f, n in s) / max(1, sum(n for _, n in s)) if s else None
            res[key] = LayerOutput(_concat(seen[key], key), share)
    # a float output whose last computing part made codes (an integer island QuantizeLinear →
    # layer → DequantizeLinear): its saturated share is that of those codes
    for key, lo in res.items():
        if lo.saturated is None:
            inner = [k for k in order if k.startswith(key + ".") and k in res and res[k].saturated is not None]
            if inner:
                lo.saturated = res[inner[-1]].saturated
    if final:
        res[OUTPUT] = LayerOutput(_concat(final, OUTPUT))
    return res


def _constant(consts, name):
    a = consts.get(name)
    return None if a is None or a.size != 1 else a.reshape(())


def _onnxruntime_outputs(path, x, batch_size, exact=False) -> dict[str, LayerOutput]:
    """Every ONNX value's output of the file run by onnxruntime (module docstring)."""
    try:
        import onnx
        import onnxruntime as ort
        from onnx import numpy_helper
    except ImportError as exc:      # exc.name: the one of the two that is missing
        raise MissingDependencyError("--runtime onnxruntime", exc.name or "onnxruntime", "interop") from None
    try:
        proto = onnx.load(str(path))
        inferred = onnx.shape_inference.infer_shapes(proto)
    except Exception as exc:  # noqa: BLE001  (protobuf / onnx errors: the file is not a readable ONNX model)
        raise FileFormatError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc})") from None
    g = proto.graph
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    types = {v.name: v.type.tensor_type.elem_type for v in list(inferred.graph.value_info) + list(g.output)}
    producer = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    outputs = [o.name for o in g.output]
    extra = []
    for n in g.node:
        for o in n.output:
            if o and o not in outputs and o not in consts and types.get(o):
                extra.append(o)
                g.output.append(onnx.helper.make_tensor_value_info(o, types[o], None))
    try:
        so = ort.SessionOptions()
        if exact:
            so.add_session_config_entry("session.x64quantprecision", "1")
        sess = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
        input_name = sess.get_inputs()[0].name
        names = outputs + extra
        runs = [sess.run(names, {input_name: x[i:i + batch_size]}) for i in range(0, len(x), batch_size)]
    except Exception as exc:  # noqa: BLE001  (onnxruntime's own errors: shape, type)
        raise ShapeError("--data", f"inputs {path} accepts", f"{x.shape[1:]} per sample "
                         f"(onnxruntime: {str(exc).splitlines()[0][:200]})") from None
    res = Outputs()
    sizes = [len(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
    for j, name in enumerate(names):
        parts = [r[j] for r in runs]
        if any(p.ndim == 0 or p.shape[0] != n for p, n in zip(parts, sizes)):
            continue        # not computed per sample (a dequantized weight, a shape)
        a = _concat(parts, name)
        if a.dtype.kind == "f":
            lo = LayerOutput(a.astype(np.float32, copy=False))
        elif a.dtype.kind in "iu":
            qnode = producer.get(name) if producer.get(name) is not None and \
                producer[name].op_type == "QuantizeLinear" else None
            dq = [c for c in consumers.get(name, []) if c.op_type == "DequantizeLinear" and c.input[0] == name]
            src = qnode or (dq[0] if dq else None)
            if src is None or len(src.input) < 2:
                continue
            scale = _constant(consts, src.input[1])
            zp = _constant(consts, src.input[2]) if len(src.input) > 2 else np.zeros((), a.dtype)
            if scale is None or zp is None:
                continue
            info = np.iinfo(a.dtype)
            lo = LayerOutput(((a.astype(np.float32) - np.float32(zp)) * np.float32(scale)).astype(np.float32),
                             saturated_share(a, info.min, info.max))
        else:
            continue
        res[OUTPUT if name == outputs[0] else name] = lo
    return res


def layer_outputs(source, x, *, runtime: str = "refcomp", batch_size: int = 256) -> dict[str, LayerOutput]:
    """``{layer name: LayerOutput}`` of a model on inputs ``x`` (module docstring).

    ``source``: a refcomp Module, a refcomp model file or an ``.onnx`` file.
    ``runtime``: "refcomp", or for ONNX files "onnxruntime" / "onnxruntime-exact" (RUNTIMES).
    """
    if runtime not in RUNTIMES:
        raise ValidationError("runtime", f"one of {', '.join(RUNTIMES)}", repr(runtime))
    if not isinstance(source, (str, Path)):
        return _module_outputs(source, x, batch_size)
    path = Path(source)
    if not path.is_file():
        raise ValidationError("model", "an existing file", str(path))
    is_onnx = path.suffix.lower() == ".onnx"
    if runtime != "refcomp":
        if not is_onnx:
            raise ValidationError(f"--runtime {runtime}", "an .onnx file", str(path))
        return _onnxruntime_outputs(path, x, batch_size, exact=runtime == "onnxruntime-exact")
    model = rc_onnx.load(path) if is_onnx else load_model(path)
    try:
        return _module_outputs(model, x, batch_size)
    except RefcompError:
        raise
    except (ValueError, TypeError, IndexError) as exc:
        raise ShapeError("--data", f"inputs {path} accepts", f"{x.shape[1:]} per sample ({exc})") from None


def _prefixes(names):
    out = {""}
    for n in names:
        parts = n.split(".")
        for k in range(1, len(parts)):
            out.add(".".join(parts[:k]) + ".")
    return out


def match_names(a_names, b_names) -> list[tuple[str, str]]:
    """(name in A, name in B) pairs of the same layer: equal names after dropping a leading prefix
    (``model.``) from every name of one side, the prefix that matches the most names."""
    a_names = [n for n in a_names if n != OUTPUT]
    b_names = [n for n in b_names if n != OUTPUT]
    best = []
    for side in ("a", "b"):
        src, other = (a_names, b_names) if side == "a" else (b_names, a_names)
        other_set = set(other)
        for p in sorted(_prefixes(src)):
            pairs = [(n, n[len(p):]) for n in src if n.startswith(p) and n[len(p):] in other_set]
            if len(pairs) > len(best):
                best = pairs if side == "a" else [(o, n) for n, o in pairs]
    return best


def _aliased(names, aliases) -> dict[str, str]:
    """{name as the ONNX file names it: name}: the first component replaced by its alias."""
    out = {}
    for n in names:
        head, _, rest = n.partition(".")
        out[aliases.get(head, head) + ("." + rest if rest else "")] = n
    return out


def _match(outs_a, outs_b) -> list[tuple[str, str]]:
    """match_names on the names or their ONNX aliases, whichever pairs more layers."""
    best = []
    for ra in ({n: n for n in outs_a}, _aliased(outs_a, getattr(outs_a, "aliases", {}))):
        for rb in ({n: n for n in outs_b}, _aliased(outs_b, getattr(outs_b, "aliases", {}))):
            pairs = [(ra[a], rb[b]) for a, b in match_names(list(ra), list(rb))]
            if len(pairs) > len(best):
                best = pairs
    return best


def compare(outs_a: dict, outs_b: dict) -> list[dict]:
    """One row per matched layer (and the outputs), worst SQNR first (ties: larger max error first)."""
    pairs = _match(outs_a, outs_b)
    if not pairs:
        raise ValidationError("models", "layers with names in common",
                              f"none (A: {', '.join(list(outs_a)[:6]) or '-'}; B: {', '.join(list(outs_b)[:6]) or '-'})")
    if OUTPUT in outs_a and OUTPUT in outs_b:
        pairs.append((OUTPUT, OUTPUT))
    rows = []
    for na, nb in pairs:
        a, b = outs_a[na], outs_b[nb]
        if a.values.shape != b.values.shape and a.values.size != b.values.size:   # (N, 400) = (N, 16, 5, 5)
            raise ShapeError(f"output of layer {na!r}", f"shape {a.values.shape} (as in A)",
                             f"{b.values.shape} in B")
        rows.append({"layer": nb if na == OUTPUT else (na if na == nb else f"{na} | {nb}"),
                     "a": na, "b": nb, "shape": list(a.values.shape[1:]),
                     "sqnr_db": sqnr_db(a.values, b.values), "cosine": cosine(a.values, b.values),
                     "max_abs_error": max_abs_error(a.values, b.values),
                     "saturated_a": a.saturated, "saturated_b": b.saturated})
    rows.sort(key=lambda r: (r["sqnr_db"], -r["max_abs_error"]))
    return rows


def diff_files(a, b, x, *, runtime_a: str = "refcomp", runtime_b: str = "refcomp",
               batch_size: int = 256) -> list[dict]:
    """``compare`` of two models (Modules or files) on inputs ``x``: the rows of ``refcomp diff``."""
    x = np.asarray(x)
    if x.dtype.kind != "f" or x.ndim < 2 or len(x) == 0:
        raise ValidationError("--data", "float inputs (N, ...) with N >= 1", f"{x.dtype} {x.shape}")
    x = x.astype(np.float32, copy=False)
    return compare(layer_outputs(a, x, runtime=runtime_a, batch_size=batch_size),
                   layer_outputs(b, x, runtime=runtime_b, batch_size=batch_size))


def format_table(rows, limit=None) -> str:
    """The plain-text table of ``refcomp diff`` (``limit``: the first rows only)."""
    def num(v, fmt):
        if v is None:
            return "-"
        if isinstance(v, float) and math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return format(v, fmt)
    shown = rows if limit is None else rows[:limit]
    w = max([len("layer")] + [len(r["layer"]) for r in shown])
    lines = [f"{'layer':<{w}}  {'SQNR dB':>8}  {'cosine':>9}  {'max |err|':>10}  {'sat A':>6}  {'sat B':>6}"]
    for r in shown:
        sa = num(None if r["saturated_a"] is None else 100 * r["saturated_a"], ".1f")
        sb = num(None if r["saturated_b"] is None else 100 * r["saturated_b"], ".1f")
        lines.append(f"{r['layer']:<{w}}  {num(r['sqnr_db'], '.2f'):>8}  {num(r['cosine'], '.6f'):>9}  "
                     f"{num(r['max_abs_error'], '.4g'):>10}  {sa + ('%' if sa != '-' else ''):>6}  "
                     f"{sb + ('%' if sb != '-' else ''):>6}")
    return "\n".join(lines)
