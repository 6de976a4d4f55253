"""ONNX → refcomp: ``load(path_or_ModelProto)`` returns a ``refcomp.nn.Graph`` in eval mode.

Three passes over the topologically sorted nodes (docs/onnx.md, "Import"):

1. **fold**: a node whose inputs are all constants (initializers, Constant
   nodes, earlier folded values, the Shape of a statically known shape) is
   computed once with onnx.reference and becomes a constant (QuantizeLinear /
   DequantizeLinear with refcomp.ops, recording the QTensor of dequantized codes);
2. **patterns**: the decomposed forms of GELU (x·0.5·(1 + erf(x/√2))) and of
   LayerNorm (ReduceMean, Sub, Pow, ReduceMean, Add ε, Sqrt, Div, then ·γ + β),
   and dynamic quantization (DynamicQuantizeLinear → MatMulInteger → Cast → Mul
   [→ Add]) are recognised and replaced by one layer;
3. **map**: every remaining node becomes one refcomp layer (a few become two or
   three: a MatMul on (N, T, d) rows is Reshape → Linear → Reshape, because
   Linear takes (N, in)). A constant operand of a layer that has no weight
   (the 1 of ``x + 1``, an attention mask) becomes a Constant node.

Weights (MatMul / Gemm B, Conv W, norms' γ β, Gather's table) become Dense
float32 weights of Linear, Conv2d, LayerNorm, BatchNorm, Embedding; a MatMul
followed by the Add of a constant row becomes one Linear with that bias. A
Linear weight read from a sparse initializer is a CSRMatrix, from a
DequantizeLinear of codes a QTensor. The attention mask's ops on activations
(Unsqueeze, Cast, Equal, Where, Expand) are the layers of refcomp/onnx/layers.py.
"""

from __future__ import annotations

import math
import re

import numpy as np

from ..errors import DTypeError, FileFormatError, UnsupportedOperatorError, ValidationError
from ..formats.csr import CSRMatrix
from ..formats.dense import Dense
from ..formats.dynamic import DynamicQuantized
from ..formats.qtensor import QTensor
from ..nn import layers as L
from ..nn.graph import Graph
from ..nn.module import Parameter
from ..ops import quantize_linear
from ..quant import QParams
from . import layers as OL
from ._read import MAX_TENSOR_BYTES, check_names, onnx_module, opset_of, parse, read_tensor, toposort

__all__ = ["load"]

#: ops computed only while folding constants (never mapped to a layer)
FOLD_ONLY = {"DynamicQuantizeLinear", "MatMulInteger", "QuantizeLinear", "DequantizeLinear", "Constant", "Shape", "Gather", "Unsqueeze", "Squeeze", "Slice", "Cast", "ConstantOfShape", "Equal",
             "Where", "Expand", "Range", "Sqrt", "Pow", "Neg", "Not", "Less", "Greater", "And", "Or", "Min",
             "Max", "Floor", "Ceil", "ReduceProd", "ReduceSum", "ReduceMean", "Size", "Mod", "Abs", "Erf",
             "Identity", "Tile"}
#: ops that first appear in a later opset than MIN_OPSET
SINCE = {"Gelu": 20, "LayerNormalization": 17}
#: ops whose output size is set by an input's values: bounded before folding
_SIZED_BY_VALUES = {"ConstantOfShape", "Expand", "Tile", "Range"}


def _sanitize(name: str) -> str:
    """A refcomp value name (no '.', stable) from an ONNX name such as '/encoder/layer.0/MatMul'."""
    s = re.sub(r"[^0-9A-Za-z_]", "_", name).strip("_")
    return s or "v"


class _Importer:
    def __init__(self, proto, folder):
        self.onnx = onnx_module()
        self.proto, self.folder = proto, folder
        self.opset = opset_of(proto)
        g = proto.graph
        check_names(g)
        self.consts: dict[str, np.ndarray] = {}
        for t in g.initializer:
            if t.name in self.consts:
                raise FileFormatError(f"initializer {t.name!r}: the name is used twice (duplicate names)")
            self.consts[t.name] = read_tensor(t, f"initializer {t.name!r}", folder)
        self.sparse: set[str] = set()            # constants read from sparse initializers (CSR weights)
        self.qweights: dict[str, QTensor] = {}   # DequantizeLinear of constant codes -> its QTensor
        for sp in g.sparse_initializer:
            name = sp.values.name
            if name in self.consts:
                raise FileFormatError(f"sparse initializer {name!r}: the name is used twice (duplicate names)")
            self.consts[name] = self._sparse(sp, f"sparse initializer {name!r}")
            self.sparse.add(name)
        self.inputs = [v for v in g.input if v.name not in self.consts]
        if not self.inputs:
            raise FileFormatError("graph: no input besides the initializers (a refcomp Graph needs one)")
        names = [v.name for v in self.inputs]
        if len(set(names)) != len(names):
            raise FileFormatError(f"graph: duplicate input names {names}")
        self.order = toposort(g, set(names) | set(self.consts))
        self.consumers: dict[str, list] = {}
        for node in self.order:
            for inp in node.input:
                self.consumers.setdefault(inp, []).append(node)
        self.graph_outputs = [o.name for o in g.output]
        if not self.graph_outputs:
            raise FileFormatError("graph: no outputs")
        for node in self.order:        # before shape inference, which stops at an unknown domain
            if node.domain not in ("", "ai.onnx"):
                raise self._err(node, "an operator of the default ONNX domain", f"domain {node.domain!r}")
        self.shapes = self._infer_shapes()
        self.used: set[str] = set()
        self.vals: dict[str, str] = {}        # ONNX value name -> refcomp value name
        self.skip: set[int] = set()           # nodes consumed by a fused pattern or a fused bias
        self.fused: dict[int, tuple] = {}     # id(last node of a pattern) -> (layer, input, output)
        self.fused_fn: dict[int, object] = {}  # id(last node of a pattern) -> the function that maps it
        self.g = Graph(inputs=[self._fresh(n) for n in names])
        for n, r in zip(names, self.g.inputs):
            self.vals[n] = r
        for v in self.inputs:
            et = v.type.tensor_type.elem_type
            if et not in (1, 6, 7):      # float32 activations, int32 / int64 token ids
                raise DTypeError(f"graph input {v.name!r}", "float32, int32 or int64 elements",
                                 self.onnx.TensorProto.DataType.Name(et) if et in
                                 self.onnx.TensorProto.DataType.values() else et)

    # -- helpers -------------------------------------------------------------------------
    def _fresh(self, name: str) -> str:
        base = _sanitize(name)
        out, k = base, 1
        while out in self.used:
            k += 1
            out = f"{base}_{k}"
        self.used.add(out)
        return out

    def _sparse(self, sp, where: str) -> np.ndarray:
        """A 2-D SparseTensorProto (ONNX IR "Sparse tensors": values [NNZ], indices [NNZ] linear or
        [NNZ, 2]) as its dense float32 array, sizes checked before anything is allocated."""
        dims = [int(d) for d in sp.dims]
        if len(dims) != 2 or any(d < 0 for d in dims):
            raise FileFormatError(f"{where}: dims {dims}, expected a 2-D matrix")
        if dims[0] * dims[1] * 4 > MAX_TENSOR_BYTES:
            raise FileFormatError(f"{where}: dims {dims} declare more than the {MAX_TENSOR_BYTES} bytes allowed")
        values = read_tensor(sp.values, f"{where} values", self.folder)
        indices = read_tensor(sp.indices, f"{where} indices", self.folder)
        if values.dtype != np.float32:
            raise DTypeError(f"{where} values", "float32", values.dtype)
        nnz = values.size
        if values.ndim != 1 or indices.dtype != np.int64 or indices.shape not in ((nnz,), (nnz, 2)):
            raise FileFormatError(f"{where}: values [NNZ] and int64 indices [NNZ] or [NNZ, 2] expected, got values "
                                  f"{list(values.shape)}, indices {indices.dtype} {list(indices.shape)}")
        flat = indices if indices.ndim == 1 else indices[:, 0] * dims[1] + indices[:, 1]
        if indices.ndim == 2 and nnz and ((indices < 0).any() or (indices >= np.asarray(dims)).any()):
            raise FileFormatError(f"{where}: indices outside the dims {dims}")
        if nnz and (flat.min() < 0 or flat.max() >= dims[0] * dims[1] or (np.diff(flat) <= 0).any()):
            raise FileFormatError(f"{where}: indices must be in range and strictly increasing (ONNX IR)")
        dense = np.zeros(dims[0] * dims[1], np.float32)
        dense[flat] = values
        return dense.reshape(dims)

    def _fold_qdq(self, node) -> bool:
        """QuantizeLinear / DequantizeLinear of constants, computed by refcomp.ops (any opset 13..21);
        a DequantizeLinear of int8 / uint8 codes records the QTensor its weight becomes."""
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            return False
        x, scale = self.consts[node.input[0]], self.consts[node.input[1]]
        zp = self.consts[node.input[2]] if len(node.input) > 2 and node.input[2] else None
        axis, block = self.attr(node, "axis", 1), self.attr(node, "block_size", 0)
        if node.op_type == "QuantizeLinear":
            try:
                y = quantize_linear(x, scale, zp, axis=axis, block_size=block)
            except ValidationError as exc:
                raise self._err(node, "a QuantizeLinear refcomp.ops computes", str(exc)) from None
            self.consts[node.output[0]] = np.asarray(y)
            return True
        if x.dtype not in (np.int8, np.uint8):
            raise self._err(node, "int8 or uint8 codes", x.dtype)
        try:
            if x.ndim:
                axis %= x.ndim
            qp = QParams(scale, zp, x.dtype.name, axis=axis if scale.size > 1 or block else None,
                         block_size=block or None)
            qt = QTensor(x, qp)
        except ValidationError as exc:
            raise self._err(node, "a per-tensor, per-axis or blocked DequantizeLinear", str(exc)) from None
        self.qweights[node.output[0]] = qt
        self.consts[node.output[0]] = np.asarray(qt.to_dense(), np.float32)
        return True

    def weight_format(self, name: str, w: np.ndarray, transposed: bool):
        """The WeightFormat of a Linear weight w (out, in) read from constant ``name`` (``transposed``:
        w is the constant's transpose, MatMul's B): a CSRMatrix for a sparse initializer, a QTensor
        for a DequantizeLinear of codes, else Dense."""
        w = np.ascontiguousarray(w, np.float32)
        if name in self.sparse:
            return CSRMatrix.from_dense(w)
        qt = self.qweights.get(name)
        if qt is None:
            return Dense(w)
        qp = qt.qparams
        codes, scale, zp = qt.data, qp.scale, qp.zero_point
        axis = qp.axis
        if axis is None:
            scale, zp = np.asarray(scale).reshape(()), np.asarray(zp).reshape(())
        if transposed:
            codes = codes.T
            if axis is not None:
                axis = 1 - axis
                if qp.block_size:
                    scale, zp = scale.T, zp.T
        return QTensor(np.ascontiguousarray(codes), QParams(np.array(scale, order="C"), np.array(zp, order="C"),
                                                            qp.dtype, axis=axis, block_size=qp.block_size))

    def _infer_shapes(self) -> dict[str, tuple]:
        """Static shapes (None for a dynamic axis) from onnx's shape inference with data propagation.

        Run once before folding (Shape of a static shape folds) and again after it, with the
        folded values as initializers and their nodes removed, so that a Reshape whose target was
        computed by folded nodes has a known output shape.
        """
        # inference needs the values of small (shape) tensors only: the large ones go in as dims and
        # dtype alone, so the model's weights are not copied (infer_shapes serializes its argument)
        numpy_helper = self.onnx.numpy_helper
        light = self.onnx.ModelProto(ir_version=self.proto.ir_version)
        light.opset_import.extend(self.proto.opset_import)
        g = self.proto.graph
        light.graph.node.extend(n for n in g.node if not all(o in self.consts for o in n.output if o))
        light.graph.input.extend(g.input)
        light.graph.output.extend(g.output)
        light.graph.value_info.extend(g.value_info)
        stored = {t.name: t for t in g.initializer}
        for name, a in self.consts.items():
            t = stored.get(name)
            if a.size <= 64:
                light.graph.initializer.append(numpy_helper.from_array(a, name))
            elif t is not None:
                light.graph.initializer.add(name=name, data_type=t.data_type, dims=t.dims)
            else:
                light.graph.initializer.add(name=name, dims=a.shape,
                                            data_type=self.onnx.helper.np_dtype_to_tensor_dtype(a.dtype))
        try:
            inferred = self.onnx.shape_inference.infer_shapes(light, strict_mode=False, data_prop=True)
        except Exception as exc:  # noqa: BLE001 - onnx raises several unrelated types; the cause is in the text
            raise FileFormatError(f"graph: onnx shape inference failed: {exc}") from None
        shapes = {}
        for v in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
            tt = v.type.tensor_type
            if tt.HasField("shape"):
                shapes[v.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim)
        return shapes

    def _err(self, node, expected: str, got) -> UnsupportedOperatorError:
        name = node.name or (node.output[0] if len(node.output) else node.op_type)
        return UnsupportedOperatorError(node.op_type, name, self.opset, expected, got)

    def attr(self, node, name: str, default=None):
        """A node attribute by name, its type checked against the default's (ONNX AttributeProto)."""
        A = self.onnx.AttributeProto
        kinds = {A.INT: "i", A.FLOAT: "f", A.STRING: "s", A.INTS: "ints", A.FLOATS: "floats", A.TENSOR: "t"}
        if isinstance(default, int):
            want = {"i"}
        elif isinstance(default, float):
            want = {"f"}
        elif isinstance(default, str):
            want = {"s"}
        elif isinstance(default, (list, tuple)):
            want = {"ints", "floats"}
        else:
            want = set(kinds.values())
        for a in node.attribute:
            if a.name != name:
                continue
            kind = kinds.get(a.type)
            if kind not in want:
                raise FileFormatError(f"node {node.name or node.op_type!r} ({node.op_type}): attribute {name!r} "
                                      f"has type {A.AttributeType.Name(a.type)}, expected "
                                      f"{' or '.join(sorted(want)).upper()} (attribute of wrong type)")
            value = getattr(a, kind)
            if kind == "s":
                return value.decode("utf-8", "replace")
            if kind in ("ints", "floats"):
                return list(value)
            return value
        return default

    def is_const(self, name: str) -> bool:
        return name in self.consts

    def const(self, node, i: int, what: str) -> np.ndarray:
        name = node.input[i] if i < len(node.input) else ""
        if name not in self.consts:
            raise self._err(node, f"a constant {what} (input {i})", f"the activation {name!r}" if name else "none")
        return self.consts[name]

    def weight(self, node, i: int, what: str) -> np.ndarray:
        """A float32 constant that becomes a weight; another dtype is refused, never cast silently."""
        a = self.const(node, i, what)
        if a.dtype != np.float32:
            raise DTypeError(f"node {node.name or node.output[0]!r} ({node.op_type}) input {node.input[i]!r}",
                             f"a float32 {what}", a.dtype)
        return a

    def value(self, name: str, node=None) -> str:
        """The refcomp value of ONNX value ``name``; a constant becomes a Constant node once."""
        if name in self.vals:
            return self.vals[name]
        if name in self.consts:
            a = self.consts[name]
            if a.dtype == np.float64:
                raise DTypeError(f"constant {name!r}", "float32 values (float64 would change the result type)",
                                 a.dtype)
            r = self._fresh(name)
            self.g.add(r, L.Constant(a), self.g.inputs[0])    # the input only anchors the node
            self.vals[name] = r
            return r
        raise FileFormatError(f"value {name!r}: used before it is computed")

    def add(self, node, module, *inputs: str, output: str | None = None, suffix: str = "") -> str:
        """Add refcomp node ``module(*inputs)``; map ONNX ``output`` (default the node's first) to it."""
        r = self._fresh((node.name or node.output[0]) + suffix)
        self.g.add(r, module, *inputs)
        if output is not False:
            self.vals[output or node.output[0]] = r
        return r

    def shape(self, name: str):
        return self.shapes.get(name)

    def only_user(self, name: str, op_type: str):
        """The single consumer of ``name`` when it has op ``op_type`` and ``name`` is not a graph output."""
        users = self.consumers.get(name, [])
        if len(users) == 1 and users[0].op_type == op_type and name not in self.graph_outputs:
            return users[0]
        return None

    # -- pass 1: fold ----------------------------------------------------------------------
    def fold(self) -> None:
        from onnx.reference import ReferenceEvaluator

        for node in self.order:
            if node.domain not in ("", "ai.onnx"):
                continue
            if node.op_type == "Constant":
                self.consts[node.output[0]] = self._constant(node)
                continue
            ins = [i for i in node.input if i]
            if node.op_type == "Shape" and ins and ins[0] not in self.consts:
                s = self.shape(ins[0])
                if s is None or any(d is None for d in s):
                    continue     # dynamic: left to the mapping pass, which refuses it by name
                start, end = self.attr(node, "start", 0), self.attr(node, "end", len(s))
                self.consts[node.output[0]] = np.asarray(s, dtype=np.int64)[start:end]
                continue
            if not ins or not all(i in self.consts for i in ins):
                continue
            if node.op_type not in FOLD_ONLY and node.op_type not in _MAPPERS:
                continue         # unknown ops are refused by name in the mapping pass
            if node.op_type in SINCE and self.opset < SINCE[node.op_type]:
                continue
            if self._fold_qdq(node):
                continue
            feeds = {i: self.consts[i] for i in ins}
            if node.op_type in _SIZED_BY_VALUES:
                self._bound(node, feeds)
            for o in node.output:     # any other op: its inferred output shape, when static, is bounded too
                s = self.shape(o)
                if s and all(d is not None for d in s) and math.prod(s) * 8 > MAX_TENSOR_BYTES:
                    raise self._err(node, f"an output of at most {MAX_TENSOR_BYTES} bytes", f"shape {list(s)}")
            try:
                outs = ReferenceEvaluator(node, opsets={"": self.opset}).run(None, feeds)
            except Exception as exc:  # noqa: BLE001 - onnx.reference raises what NumPy raises; name the node
                raise self._err(node, "inputs onnx.reference can fold", f"{type(exc).__name__}: {exc}") from None
            for name, a in zip(node.output, outs):
                if name:
                    self.consts[name] = np.asarray(a)

    def _constant(self, node) -> np.ndarray:
        """A Constant node's value (opset 13: value, value_float(s), value_int(s))."""
        for a in node.attribute:
            if a.name == "value":
                return read_tensor(a.t, f"node {node.name or node.output[0]!r} (Constant) value", self.folder)
            if a.name == "value_float":
                return np.asarray(a.f, np.float32)
            if a.name == "value_floats":
                return np.asarray(a.floats, np.float32)
            if a.name == "value_int":
                return np.asarray(a.i, np.int64)
            if a.name == "value_ints":
                return np.asarray(a.ints, np.int64)
        raise self._err(node, "a value, value_float(s) or value_int(s) attribute",
                        [a.name for a in node.attribute])

    def _bound(self, node, feeds) -> None:
        """Refuse a ConstantOfShape / Expand / Tile / Range whose output would exceed MAX_TENSOR_BYTES."""
        a = [feeds.get(i) for i in node.input]
        try:
            if node.op_type == "ConstantOfShape":
                count = math.prod(int(d) for d in a[0].reshape(-1))
            elif node.op_type == "Expand":
                count = math.prod(np.broadcast_shapes(a[0].shape, tuple(int(d) for d in a[1].reshape(-1))))
            elif node.op_type == "Tile":
                count = a[0].size * math.prod(int(d) for d in a[1].reshape(-1))
            else:
                count = math.ceil((float(a[1]) - float(a[0])) / float(a[2]))
        except (ValueError, TypeError, ZeroDivisionError, OverflowError) as exc:
            raise self._err(node, "a valid shape", str(exc)) from None
        if count * 8 > MAX_TENSOR_BYTES:
            raise self._err(node, f"an output of at most {MAX_TENSOR_BYTES} bytes", f"{count} elements")

    # -- pass 2: patterns --------------------------------------------------------------------
    def patterns(self) -> None:
        for node in self.order:
            if any(o in self.consts for o in node.output):
                continue
            if node.op_type == "Erf":
                self._gelu(node)
            elif node.op_type == "ReduceMean":
                self._layernorm(node)
            elif node.op_type == "DynamicQuantizeLinear":
                self._dynamic_linear(node)

    def _dynamic_linear(self, dql) -> None:
        """Dynamic quantization as refcomp exports it (eq. D1 of refcomp/formats/dynamic.py):
        (q, s_x, z_x) = DynamicQuantizeLinear(x); MatMulInteger(q, B codes, z_x, z_w) → Cast(float)
        → Mul(·, Mul(s_x, s_w)) [→ Add(bias)] becomes one Linear with a DynamicQuantized weight."""
        if len(dql.output) != 3:
            return
        q, sx, zx = dql.output
        one = self.only_user
        mmi, ms = one(q, "MatMulInteger"), one(sx, "Mul")
        if mmi is None or ms is None or list(mmi.input[:3]) != [q, mmi.input[1], zx] or \
                len(self.consumers.get(zx, [])) != 1 or zx in self.graph_outputs:
            return
        codes = self.consts.get(mmi.input[1])
        zp = self.consts.get(mmi.input[3]) if len(mmi.input) > 3 and mmi.input[3] else np.zeros((), np.int8)
        scale = self.consts.get(self._other(ms, sx) or "")
        cast = one(mmi.output[0], "Cast")
        if codes is None or zp is None or scale is None or cast is None or codes.ndim != 2 or \
                codes.dtype not in (np.int8, np.uint8) or zp.dtype != codes.dtype or self.attr(cast, "to", 0) != 1:
            return
        my = one(cast.output[0], "Mul")
        if my is None or self._other(my, cast.output[0]) != ms.output[0] or \
                len(self.consumers.get(ms.output[0], [])) != 1:
            return
        o = codes.shape[1]
        if scale.dtype != np.float32 or scale.size not in (1, o) or zp.size not in (1, o):
            return
        nodes = [dql, mmi, ms, cast, my]
        add, bias = _bias_of(self, my, o)
        last = my
        if add is not None:
            nodes.append(add)
            last = add
        per_tensor = scale.size == 1 and zp.size == 1
        try:
            qp = QParams(scale.reshape(()) if per_tensor else np.broadcast_to(scale.reshape(-1), (o,)).copy(),
                         zp.reshape(()) if per_tensor else np.broadcast_to(zp.reshape(-1), (o,)).copy(),
                         codes.dtype.name, axis=None if per_tensor else 0)
            weight = DynamicQuantized(QTensor(np.ascontiguousarray(codes.T), qp))
        except ValidationError:
            return
        x = dql.input[0]
        for n in nodes:
            self.skip.add(id(n))
        last = max(nodes, key=lambda n: self.order.index(n))
        out = add.output[0] if add is not None else my.output[0]
        self.fused_fn[id(last)] = lambda: _linear(self, last, self.value(x), self.shape(x), codes.T.astype(np.float32),
                                                  bias, out, weight)

    def _scalar(self, name: str, value: float, rtol: float = 1e-6) -> bool:
        a = self.consts.get(name)
        return a is not None and a.size == 1 and math.isclose(float(a.reshape(-1)[0]), value, rel_tol=rtol)

    def _other(self, node, name: str):
        """The input of a two-input node that is not ``name`` (None if both are)."""
        a, b = node.input[0], node.input[1]
        return b if a == name else a if b == name else None

    def _gelu(self, erf) -> None:
        """x·0.5·(1 + erf(x/√2)) in the orders exporters emit (x/√2 or x·(1/√2); the two Muls either way)."""
        pre = next((n for n in self.order if erf.input[0] in n.output), None)
        if pre is None or erf.input[0] in self.graph_outputs or len(self.consumers[erf.input[0]]) != 1:
            return
        divided = pre.op_type == "Div" and self._scalar(pre.input[1], math.sqrt(2))
        if divided or pre.op_type == "Mul" and self._scalar(pre.input[1], 1 / math.sqrt(2)):
            x = pre.input[0]
        elif pre.op_type == "Mul" and self._scalar(pre.input[0], 1 / math.sqrt(2)):
            x = pre.input[1]
        else:
            return
        add = self.only_user(erf.output[0], "Add")
        if add is None or not self._scalar(self._other(add, erf.output[0]) or "", 1.0):
            return
        m1 = self.only_user(add.output[0], "Mul")
        if m1 is None:
            return
        p = self._other(m1, add.output[0])
        nodes = [pre, erf, add, m1]
        if p == x:                                   # (x·(1+erf))·0.5
            m2 = self.only_user(m1.output[0], "Mul")
            if m2 is None or not self._scalar(self._other(m2, m1.output[0]) or "", 0.5):
                return
            nodes.append(m2)
        elif self._scalar(p or "", 0.5):             # ((1+erf)·0.5)·x
            m2 = self.only_user(m1.output[0], "Mul")
            if m2 is None or self._other(m2, m1.output[0]) != x:
                return
            nodes.append(m2)
        else:                                        # (x·0.5)·(1+erf)
            half = next((n for n in self.order if p in n.output), None)
            if half is None or half.op_type != "Mul" or len(self.consumers[p]) != 1 or p in self.graph_outputs:
                return
            if not (x in half.input and self._scalar(self._other(half, x) or "", 0.5)):
                return
            nodes.append(half)
        self._fuse(nodes, L.GELU(), x)

    def _axes(self, node):
        """ReduceMean's axes: an attribute before opset 18, an input from 18 on."""
        if self.opset < 18:
            return self.attr(node, "axes", None)
        if len(node.input) > 1 and node.input[1] in self.consts:
            return [int(a) for a in self.consts[node.input[1]].reshape(-1)]
        return None

    def _layernorm(self, r1) -> None:
        """(x − μ) / √(mean((x − μ)²) + ε) · γ + β over the last axis, μ = mean(x)."""
        x = r1.input[0]
        rank = len(self.shape(x) or ())
        last = {-1, rank - 1} if rank else {-1}
        if self._axes(r1) is None or len(self._axes(r1)) != 1 or self._axes(r1)[0] not in last:
            return
        sub = self.only_user(r1.output[0], "Sub")
        if sub is None or list(sub.input) != [x, r1.output[0]]:
            return
        users = self.consumers.get(sub.output[0], [])
        pow_ = next((n for n in users if n.op_type == "Pow"), None)
        div = next((n for n in users if n.op_type == "Div"), None)
        if len(users) != 2 or pow_ is None or div is None or not self._scalar(pow_.input[1], 2.0):
            return
        r2 = self.only_user(pow_.output[0], "ReduceMean")
        if r2 is None or self._axes(r2) != self._axes(r1):
            return
        add = self.only_user(r2.output[0], "Add")
        eps_name = add and self._other(add, r2.output[0])
        if add is None or eps_name not in self.consts or self.consts[eps_name].size != 1:
            return
        sqrt = self.only_user(add.output[0], "Sqrt")
        if sqrt is None or self.only_user(sqrt.output[0], "Div") is not div or list(div.input) != [sub.output[0],
                                                                                                 sqrt.output[0]]:
            return
        nodes = [r1, sub, pow_, r2, add, sqrt, div]
        gamma = beta = None
        mul = self.only_user(div.output[0], "Mul")
        if mul is not None and self._other(mul, div.output[0]) in self.consts:
            gamma = self.consts[self._other(mul, div.output[0])]
            nodes.append(mul)
            badd = self.only_user(mul.output[0], "Add")
            if badd is not None and self._other(badd, mul.output[0]) in self.consts:
                beta = self.consts[self._other(badd, mul.output[0])]
                nodes.append(badd)
        d = (gamma.shape[-1] if gamma is not None and gamma.ndim else (self.shape(x) or (None,))[-1])
        if d is None or (gamma is not None and gamma.shape != (d,)) or (beta is not None and beta.shape != (d,)):
            return
        ln = L.LayerNorm(d, eps=float(self.consts[eps_name].reshape(-1)[0]))
        if gamma is not None:
            ln.weight = Parameter(gamma.astype(np.float32))
        if beta is not None:
            ln.bias = Parameter(beta.astype(np.float32))
        self._fuse(nodes, ln, x)

    def _fuse(self, nodes, module, x) -> None:
        last = max(nodes, key=lambda n: self.order.index(n))
        for n in nodes:
            self.skip.add(id(n))
        self.fused[id(last)] = (module, x, last.output[0], last)

    # -- pass 3: map -------------------------------------------------------------------------
    def map(self) -> Graph:
        for node in self.order:
            if node.domain not in ("", "ai.onnx"):
                raise self._err(node, "an operator of the default ONNX domain", f"domain {node.domain!r}")
            if id(node) in self.fused_fn:
                self.fused_fn[id(node)]()
                continue
            if id(node) in self.fused:
                module, x, out, last = self.fused[id(node)]
                self.add(last, module, self.value(x), output=out)
                continue
            if id(node) in self.skip or all(o in self.consts for o in node.output if o):
                continue
            if node.op_type in SINCE and self.opset < SINCE[node.op_type]:
                raise self._err(node, f"an op of opset {self.opset} ({node.op_type} is defined from opset "
                                      f"{SINCE[node.op_type]})", node.op_type)
            mapper = _MAPPERS.get(node.op_type)
            if mapper is None:
                if node.op_type == "Shape":
                    raise self._err(node, "a Shape of a statically known shape (it is folded)",
                                    f"shape {self.shape(node.input[0])} (dynamic shape)")
                raise self._err(node, "an operator refcomp maps to a layer (docs/onnx.md, 'Import')",
                                f"unsupported operator {node.op_type}")
            used = [o for o in node.output[1:] if o and (self.consumers.get(o) or o in self.graph_outputs)]
            if used:
                raise self._err(node, "only the first output used", f"outputs {used} are used")
            try:
                mapper(self, node)
            except ValidationError as exc:
                if str(exc).startswith("node "):
                    raise
                # a layer refused an attribute value: say which node it came from
                raise self._err(node, "attributes the refcomp layer accepts", str(exc)) from None
        for o in self.graph_outputs:
            if o not in self.vals:
                if o in self.consts:
                    raise FileFormatError(f"graph output {o!r}: a constant (it does not depend on any input)")
                raise FileFormatError(f"graph output {o!r}: not produced by any node (missing output)")
        self.g.outputs = [self.vals[o] for o in self.graph_outputs]
        # which ONNX value each node computes, so tools (refcomp diff) can name a node's output as
        # the ONNX file does: the last value mapped to it (a MatMul + Add Linear is the Add's
        # output), a graph output (an Identity's) only when the node has no other name
        names: dict[str, str] = {}
        for name, r in self.vals.items():
            if r in self.g.nodes and (name not in self.graph_outputs or r not in names):
                names[r] = name
        self.g.onnx_values = names
        return self.g.eval()


# --- one function per ONNX op (the ONNX spec section in each docstring) ----------------------------
def _linear(imp, node, x: str, x_shape, w: np.ndarray, b, output: str, fmt=None) -> None:
    """Linear(W (out, in), b) on the refcomp value ``x`` of shape ``x_shape`` (None: unknown axis).

    (N, in) goes straight in; (..., in) as Reshape (-1, in) → Linear → Reshape (..., out),
    because Linear takes rows: the leading axes are restored from the static shape, one of
    them may be dynamic (-1).
    """
    lin = L.Linear(w.shape[1], w.shape[0], bias=b is not None)
    lin.weight = Dense(np.ascontiguousarray(w, np.float32)) if fmt is None else fmt
    if b is not None:
        lin.bias = Parameter(np.ascontiguousarray(b, np.float32))
    s = x_shape
    if s is not None and len(s) == 2:
        imp.add(node, lin, x, output=output)
        return
    if s is None or len(s) < 2 or sum(d is None for d in s[:-1]) > 1:
        raise imp._err(node, "an input of known rank >= 2 with at most one dynamic leading axis",
                       f"shape {s}")
    rows = imp.add(node, L.Reshape([-1, w.shape[1]]), x, output=False, suffix="_rows")
    y = imp.add(node, lin, rows, output=False)
    target = [-1 if d is None else d for d in s[:-1]] + [w.shape[0]]
    imp.add(node, L.Reshape(target), y, output=output, suffix="_unrows")


def _bias_of(imp, node, out_features: int):
    """The Add after a MatMul that adds a constant row of size out: (Add node, bias) or (None, None).

    Only when the Add cannot change the result's rank (a (1, 1, out) bias on a 2-D product would
    broadcast it to rank 3)."""
    add = imp.only_user(node.output[0], "Add")
    if add is None:
        return None, None
    other = imp._other(add, node.output[0])
    b = imp.consts.get(other)
    s = imp.shape(node.input[0])
    if b is None or b.dtype != np.float32 or b.size != out_features or b.shape[-1:] != (out_features,):
        return None, None
    if b.ndim > 1 and (s is None or b.ndim > len(s)):
        return None, None
    return add, b.reshape(-1)


def _map_matmul(imp, node) -> None:
    """MatMul (ONNX §MatMul-13): with a constant B → Linear (W = Bᵀ), + the bias of a following Add;
    of two activations → nn MatMul."""
    a, b = node.input[0], node.input[1]
    if imp.is_const(b) and not imp.is_const(a):
        w = imp.weight(node, 1, "weight B")
        if w.ndim != 2:
            raise imp._err(node, "a 2-D constant B", f"shape {w.shape}")
        add, bias = _bias_of(imp, node, w.shape[1])
        if add is not None:
            imp.skip.add(id(add))
        _linear(imp, node, imp.value(a), imp.shape(a), w.T, bias,
                add.output[0] if add is not None else node.output[0], imp.weight_format(b, w.T, True))
        return
    if imp.is_const(a):
        raise imp._err(node, "a constant second operand or two activations", "a constant first operand")
    imp.add(node, L.MatMul(), imp.value(a), imp.value(b))


def _map_gemm(imp, node) -> None:
    """Gemm (ONNX §Gemm-13): Y = α·A'·B' + β·C → Linear with W = α·B'ᵀ, b = β·C (C a row or scalar)."""
    alpha, beta = imp.attr(node, "alpha", 1.0), imp.attr(node, "beta", 1.0)
    if not (math.isfinite(alpha) and math.isfinite(beta)):
        raise imp._err(node, "finite alpha and beta", f"alpha={alpha}, beta={beta}")
    trans_a, trans_b = imp.attr(node, "transA", 0), imp.attr(node, "transB", 0)
    w = imp.weight(node, 1, "weight B")
    if w.ndim != 2:
        raise imp._err(node, "a 2-D constant B", f"shape {w.shape}")
    fmt = imp.weight_format(node.input[1], w if trans_b else w.T, not trans_b) if alpha == 1.0 else None
    w = (w if trans_b else w.T) * np.float32(alpha) if alpha != 1.0 else (w if trans_b else w.T)
    bias = None
    if len(node.input) > 2 and node.input[2]:
        c = imp.weight(node, 2, "bias C")
        if c.size not in (1, w.shape[0]) or c.ndim > 2 or (c.ndim == 2 and c.shape[0] != 1):
            raise imp._err(node, f"a constant C of shape (), (1,), ({w.shape[0]},) or (1, {w.shape[0]})",
                           f"shape {c.shape}")
        bias = np.broadcast_to(c.reshape(-1) * np.float32(beta), (w.shape[0],)).copy()
    x = imp.value(node.input[0])
    if trans_a:      # A is (K, M): Linear wants the rows of Aᵀ
        x = imp.add(node, L.Transpose([1, 0]), x, output=False, suffix="_transA")
    _linear(imp, node, x, (None, w.shape[1]), w, bias, node.output[0], fmt)


def _binary(cls):
    def mapper(imp, node) -> None:
        """Add / Sub / Mul / Div (ONNX §Add-14 …, multidirectional broadcasting); a constant operand
        becomes a Constant node."""
        imp.add(node, cls(), imp.value(node.input[0], node), imp.value(node.input[1], node))
    return mapper


def _unary(make):
    def mapper(imp, node) -> None:
        imp.add(node, make(imp, node), imp.value(node.input[0]))
    return mapper


def _pads2(imp, node, name="pads"):
    """ONNX pads [h_begin, w_begin, h_end, w_end] → refcomp's symmetric (h, w); auto_pad NOTSET or VALID."""
    auto = imp.attr(node, "auto_pad", "NOTSET")
    if auto not in ("NOTSET", "VALID"):
        raise imp._err(node, "auto_pad NOTSET or VALID (explicit pads)", repr(auto))
    pads = imp.attr(node, name, [0, 0, 0, 0]) if auto == "NOTSET" else [0, 0, 0, 0]
    if len(pads) != 4 or pads[0] != pads[2] or pads[1] != pads[3]:
        raise imp._err(node, "2-D pads equal at both ends of each axis", pads)
    return pads[0], pads[1]


def _map_conv(imp, node) -> None:
    """Conv (ONNX §Conv-11): 2-D, W (O, C/g, kh, kw) constant, optional constant B → Conv2d."""
    w = imp.weight(node, 1, "weight W")
    if w.ndim != 4:
        raise imp._err(node, "a 2-D convolution (W of rank 4)", f"W of shape {w.shape}")
    kernel = imp.attr(node, "kernel_shape", list(w.shape[2:]))
    if list(kernel) != list(w.shape[2:]):
        raise imp._err(node, f"kernel_shape {list(w.shape[2:])} (W's)", kernel)
    group = imp.attr(node, "group", 1)
    b = imp.weight(node, 2, "bias B") if len(node.input) > 2 and node.input[2] else None
    conv = L.Conv2d(w.shape[1] * group, w.shape[0], tuple(w.shape[2:]), stride=tuple(imp.attr(node, "strides", [1, 1])),
                    padding=_pads2(imp, node), dilation=tuple(imp.attr(node, "dilations", [1, 1])), groups=group,
                    bias=b is not None)
    conv.weight = Dense(np.ascontiguousarray(w))
    if b is not None:
        conv.bias = Parameter(b.copy())
    imp.add(node, conv, imp.value(node.input[0]))


def _pool(cls):
    def mapper(imp, node) -> None:
        """MaxPool (§MaxPool-12) / AveragePool (§AveragePool-19): 2-D, floor mode, no dilation."""
        kernel = imp.attr(node, "kernel_shape", [])
        if len(kernel) != 2:
            raise imp._err(node, "a 2-D kernel_shape", kernel)
        if imp.attr(node, "ceil_mode", 0) != 0:
            raise imp._err(node, "ceil_mode 0", imp.attr(node, "ceil_mode", 0))
        if any(d != 1 for d in imp.attr(node, "dilations", [1, 1])):
            raise imp._err(node, "dilations 1", imp.attr(node, "dilations", [1, 1]))
        pads = _pads2(imp, node)
        if cls is L.AvgPool2d and any(pads) and imp.attr(node, "count_include_pad", 0) != 1:
            raise imp._err(node, "count_include_pad=1 when padded (refcomp divides by the whole window)",
                           "count_include_pad=0")
        imp.add(node, cls(tuple(kernel), stride=tuple(imp.attr(node, "strides", [1, 1])), padding=pads),
                imp.value(node.input[0]))
    return mapper


def _map_global_avg(imp, node) -> None:
    """GlobalAveragePool (§GlobalAveragePool-1): (N, C, H, W) → (N, C, 1, 1) = GlobalAvgPool2d, Reshape."""
    y = imp.add(node, L.GlobalAvgPool2d(), imp.value(node.input[0]), output=False, suffix="_mean")
    imp.add(node, L.Reshape([0, 0, 1, 1]), y)


def _map_flatten(imp, node) -> None:
    """Flatten (§Flatten-13): axis 1 → Flatten; axis 0 → Reshape (1, -1)."""
    axis = imp.attr(node, "axis", 1)
    s = imp.shape(node.input[0])
    if axis < 0 and s is not None:
        axis += len(s)
    if axis == 1:
        imp.add(node, L.Flatten(), imp.value(node.input[0]))
    elif axis == 0:
        imp.add(node, L.Reshape([1, -1]), imp.value(node.input[0]))
    else:
        raise imp._err(node, "axis 0 or 1", axis)


def _map_reshape(imp, node) -> None:
    """Reshape (§Reshape-14): a constant target (after folding), or one computed from the Shape of an
    activation (refcomp's two-input Reshape; allowzero 0)."""
    if node.input[1] not in imp.consts:
        if imp.attr(node, "allowzero", 0) != 0:
            raise imp._err(node, "allowzero=0 for a computed shape", 1)
        imp.add(node, L.Reshape(), imp.value(node.input[0]), imp.value(node.input[1]))
        return
    shape = [int(d) for d in imp.consts[node.input[1]].reshape(-1)]
    if imp.attr(node, "allowzero", 0) == 1 and 0 in shape:
        raise imp._err(node, "allowzero=0 or no 0 in the shape", shape)
    imp.add(node, L.Reshape(shape), imp.value(node.input[0]))


def _map_concat(imp, node) -> None:
    """Concat (§Concat-13) of float tensors; constant pieces become Constant nodes."""
    imp.add(node, L.Concat(imp.attr(node, "axis", 0)), *(imp.value(i) for i in node.input))


def _map_gather(imp, node) -> None:
    """Gather (§Gather-13) of rows of a constant 2-D table by integer indices → Embedding."""
    if imp.attr(node, "axis", 0) != 0 or not imp.is_const(node.input[0]) or imp.is_const(node.input[1]):
        data = "constant" if imp.is_const(node.input[0]) else "computed"
        raise imp._err(node, "rows (axis 0) of a constant table selected by computed indices",
                       f"axis {imp.attr(node, 'axis', 0)}, {data} data")
    table = imp.weight(node, 0, "embedding table")
    if table.ndim != 2:
        raise imp._err(node, "a 2-D table", f"shape {table.shape}")
    emb = L.Embedding(*table.shape)
    emb.weight = Dense(table.copy())
    imp.add(node, emb, imp.value(node.input[1]))


def _map_layernorm(imp, node) -> None:
    """LayerNormalization (§LayerNormalization-17): γ (and β) constants over the last axes."""
    scale = imp.weight(node, 1, "scale")
    s = imp.shape(node.input[0])
    axis = imp.attr(node, "axis", -1)
    if not (axis == -scale.ndim or (s is not None and axis == len(s) - scale.ndim)):
        raise imp._err(node, f"axis -{scale.ndim} (the axes of scale, shape {scale.shape})", axis)
    ln = L.LayerNorm(scale.shape, eps=imp.attr(node, "epsilon", 1e-5))
    ln.weight = Parameter(scale.copy())
    ln.bias = Parameter(imp.weight(node, 2, "bias").copy() if len(node.input) > 2 and node.input[2]
                        else np.zeros_like(scale))
    imp.add(node, ln, imp.value(node.input[0]))


def _map_batchnorm(imp, node) -> None:
    """BatchNormalization (§BatchNormalization-15), inference form: the running statistics."""
    if imp.attr(node, "training_mode", 0) != 0:
        raise imp._err(node, "training_mode 0 (inference)", 1)
    gamma, beta, mean, var = (imp.weight(node, i, w) for i, w in enumerate(("scale", "B", "mean", "var"), 1))
    s = imp.shape(node.input[0])
    if s is None or len(s) not in (2, 3, 4):
        raise imp._err(node, "an input of rank 2, 3 or 4", f"shape {s}")
    bn = (L.BatchNorm2d if len(s) == 4 else L.BatchNorm1d)(gamma.size, eps=imp.attr(node, "epsilon", 1e-5))
    bn.weight, bn.bias = Parameter(gamma.copy()), Parameter(beta.copy())
    bn.running_mean, bn.running_var = mean.copy(), var.copy()
    imp.add(node, bn, imp.value(node.input[0]))


def _map_identity(imp, node) -> None:
    """Identity, Dropout (inference): the output is the input."""
    imp.vals[node.output[0]] = imp.value(node.input[0])


def _map_erf(imp, node) -> None:
    raise imp._err(node, "Erf inside the GELU pattern x·0.5·(1 + erf(x/√2))", "a lone Erf")


def _map_reduce_mean(imp, node) -> None:
    raise imp._err(node, "ReduceMean inside the LayerNorm pattern, or of constants", "a lone ReduceMean")


def _map_shape(imp, node) -> None:
    """Shape (§Shape-15) of an activation whose shape is not static (the whole shape: no start / end)."""
    if imp.attr(node, "start", 0) != 0 or imp.attr(node, "end", None) is not None:
        raise imp._err(node, "a Shape without start / end (or of a static shape, which folds)",
                       f"start={imp.attr(node, 'start', 0)}, end={imp.attr(node, 'end', None)} on "
                       f"shape {imp.shape(node.input[0])} (dynamic shape)")
    imp.add(node, L.Shape(), imp.value(node.input[0]))


def _map_unsqueeze(imp, node) -> None:
    """Unsqueeze (§Unsqueeze-13) of an activation: axes a constant input."""
    axes = imp.const(node, 1, "axes")
    if axes.dtype.kind not in "iu":
        raise DTypeError(f"node {node.name or node.output[0]!r} (Unsqueeze) axes", "int64", axes.dtype)
    imp.add(node, OL.Unsqueeze([int(a) for a in axes.reshape(-1)]), imp.value(node.input[0]))


_CAST_TO = {1: "float32", 6: "int32", 7: "int64", 9: "bool"}


def _map_cast(imp, node) -> None:
    """Cast (§Cast-19) of an activation to float32, int32, int64 or bool (saturate irrelevant for these)."""
    to = imp.attr(node, "to", 0)
    if to not in _CAST_TO:
        raise imp._err(node, "a cast to FLOAT, INT32, INT64 or BOOL", f"to={to}")
    imp.add(node, OL.Cast(_CAST_TO[to]), imp.value(node.input[0]))


def _map_multi(cls):
    def mapper(imp, node) -> None:
        """Equal (§Equal-19), Where (§Where-16), Expand (§Expand-13) of activations; constant operands
        become Constant nodes."""
        imp.add(node, cls(), *(imp.value(i, node) for i in node.input))
    return mapper


_MAPPERS = {
    "MatMul": _map_matmul, "Gemm": _map_gemm,
    "Add": _binary(L.Add), "Sub": _binary(L.Sub), "Mul": _binary(L.Mul), "Div": _binary(L.Div),
    "Conv": _map_conv, "MaxPool": _pool(L.MaxPool2d), "AveragePool": _pool(L.AvgPool2d),
    "GlobalAveragePool": _map_global_avg,
    "Relu": _unary(lambda imp, n: L.ReLU()), "Sigmoid": _unary(lambda imp, n: L.Sigmoid()),
    "Tanh": _unary(lambda imp, n: L.Tanh()),
    "LeakyRelu": _unary(lambda imp, n: L.LeakyReLU(imp.attr(n, "alpha", 0.01))),
    "Gelu": _unary(lambda imp, n: L.GELU(imp.attr(n, "approximate", "none"))),
    "Softmax": _unary(lambda imp, n: L.Softmax(imp.attr(n, "axis", -1))),
    "Transpose": _unary(lambda imp, n: L.Transpose(imp.attr(n, "perm", None))),
    "Flatten": _map_flatten, "Reshape": _map_reshape, "Concat": _map_concat, "Gather": _map_gather,
    "LayerNormalization": _map_layernorm, "BatchNormalization": _map_batchnorm,
    "Shape": _map_shape, "Unsqueeze": _map_unsqueeze, "Cast": _map_cast, "Equal": _map_multi(OL.Equal),
    "Where": _map_multi(OL.Where), "Expand": _map_multi(OL.Expand),
    "Identity": _map_identity, "Dropout": _map_identity, "Erf": _map_erf, "ReduceMean": _map_reduce_mean,
}


def load(model) -> Graph:
    """Read an ONNX model (a path or an ``onnx.ModelProto``) into a refcomp ``Graph`` in eval mode.

    Float models of opsets 13..21 with the operators of docs/onnx.md ("Import").
    The graph's inputs and outputs keep the ONNX names, with characters other
    than letters, digits and '_' replaced by '_'.

    Raises
    ------
    FileFormatError : unreadable, truncated or inconsistent file (cycle, missing
        input, duplicate names, bad external data, huge dims, opset out of range).
    UnsupportedOperatorError : an operator, or an attribute value of one, that
        has no refcomp layer; the message names the node, op type and opset.
    DTypeError : a tensor of a dtype refcomp does not read or a weight not float32.
    BackendUnavailableError : the onnx package is not installed.
    """
    proto, folder = parse(model)
    imp = _Importer(proto, folder)
    imp.fold()
    imp.shapes = imp._infer_shapes()     # again, with the folded values known
    imp.patterns()
    return imp.map()
