"""Graph: a model as a directed acyclic graph of named modules.

A Graph has named inputs and a list of nodes; each node is a module applied to
values named by earlier nodes or by the graph's inputs, and produces one value
under its own name. The outputs name values too::

    g = Graph(inputs=["x", "mask"])
    g.add("attn", MultiHeadAttention(64, 4, rng=0), "x", "mask")
    g.add("add", Add(), "x", "attn")           # the residual: x is used twice
    g.add("ln", LayerNorm(64), "add")
    g.outputs = ["ln"]
    y = g.forward(x, mask)

A node may only name values that already exist, so the graph is acyclic by
construction and insertion order is a topological order: forward runs the
nodes in that order, backward in reverse.

Backward is the chain rule over the graph (reverse-mode differentiation): the
gradient of a value is the **sum** of the gradients its consumers send back
(a value used k times — the residual skip, x feeding Q, K and V — contributes
k terms to L), so gradients are accumulated per value before its producer's
backward runs. A module's backward returns dL/dinput, or a tuple with one
entry per input when it has several; None means "no gradient" (integer inputs
such as token ids or masks). ``Graph.backward`` returns the gradients with
respect to the graph inputs (None for the integer ones).

Names are those of Sequential: a parameter is ``<node>.<attribute>``
(``attn.q_proj.weight``), ``g["fc1"]`` is a node's module and
``g["fc1"] = new`` replaces it keeping its inputs. A Graph can be a node of a
Graph or a layer of a Sequential, and vice versa.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from ..errors import ShapeError, ValidationError
from .module import Module, Sequential, register_layer

__all__ = ["Graph", "replace_module"]


def _check_name(name, argument: str) -> str:
    if not isinstance(name, str) or not name or "." in name:
        raise ValidationError(argument, "a non-empty string without '.'", repr(name))
    return name


def _names(value, argument: str) -> list[str]:
    """A name or a list of names, as a list."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise ValidationError(argument, "a name or a non-empty list of names", repr(value))
    return [_check_name(v, f"{argument}[{i}]") for i, v in enumerate(value)]


def _accumulate(grads: dict, name: str, g: np.ndarray) -> None:
    """grads[name] += g, out of place (g may be a caller's array or a layer's cache)."""
    grads[name] = g if name not in grads else grads[name] + g


@register_layer
class Graph(Module):
    """A DAG of named modules with named inputs and outputs.

    Parameters
    ----------
    inputs : the graph's input names, in the order forward takes them
        (a single name or a list; default ``["x"]``).
    """

    accepts_input_grad = True

    def __init__(self, inputs=("x",)):
        self.inputs: list[str] = _names(inputs, "inputs")
        if len(set(self.inputs)) != len(self.inputs):
            raise ValidationError("inputs", "distinct names", repr(self.inputs))
        self.nodes: OrderedDict[str, Module] = OrderedDict()
        self.node_inputs: dict[str, tuple[str, ...]] = {}
        self._outputs: list[str] = []
        self._meta = None

    # -- building ----------------------------------------------------------------
    def add(self, name: str, module: Module, *inputs: str) -> str:
        """Append node ``name`` computing ``module(*values named by inputs)``; returns ``name``."""
        _check_name(name, "name")
        if name in self.nodes or name in self.inputs:
            raise ValidationError("name", "a name not yet used in this graph", repr(name))
        if not isinstance(module, Module):
            raise ValidationError(f"module of node {name!r}", "a refcomp.nn.Module", type(module).__name__)
        if any(m is module for m in self.nodes.values()):
            # one module object caches one forward: running it twice would corrupt its backward
            raise ValidationError(f"module of node {name!r}", "a module not already in this graph",
                                  "the same object as another node")
        if not inputs:
            raise ValidationError(f"inputs of node {name!r}", "at least one value name", "none")
        for src in inputs:
            if src not in self.nodes and src not in self.inputs:
                raise ValidationError(f"inputs of node {name!r}",
                                      f"names of graph inputs or earlier nodes ({self._known()})", repr(src))
        self.nodes[name] = module
        self.node_inputs[name] = tuple(inputs)
        return name

    def _known(self) -> str:
        return ", ".join(self.inputs + list(self.nodes))

    @property
    def outputs(self) -> list[str]:
        """The names of the values forward returns (one array, or a tuple for several)."""
        return list(self._outputs)

    @outputs.setter
    def outputs(self, names) -> None:
        names = _names(names, "outputs")
        for n in names:
            if n not in self.nodes and n not in self.inputs:
                raise ValidationError("outputs", f"names of graph inputs or nodes ({self._known()})", repr(n))
        self._outputs = names

    # -- structure (names as in Sequential) -------------------------------------------
    def named_children(self):
        yield from self.nodes.items()

    def __getitem__(self, key: str) -> Module:
        if key not in self.nodes:
            raise ValidationError("key", f"a node name ({', '.join(self.nodes)})", repr(key))
        return self.nodes[key]

    def __setitem__(self, key: str, module: Module) -> None:
        """Replace the module of node ``key``, keeping its inputs (how compression swaps a layer)."""
        if key not in self.nodes:
            raise ValidationError("key", f"a node name ({', '.join(self.nodes)})", repr(key))
        if not isinstance(module, Module):
            raise ValidationError(f"module of node {key!r}", "a refcomp.nn.Module", type(module).__name__)
        if any(m is module for n, m in self.nodes.items() if n != key):
            raise ValidationError(f"module of node {key!r}", "a module not already in this graph",
                                  "the same object as another node")
        self.nodes[key] = module

    def __contains__(self, key) -> bool:
        return key in self.nodes

    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self):
        return iter(self.nodes.values())

    # -- computation -------------------------------------------------------------
    def forward(self, *inputs):
        """Run the nodes in order on the graph inputs (positional, in the order of ``inputs``)."""
        if not self._outputs:
            raise ValidationError("outputs", "set before forward (g.outputs = [...])", "none")
        if len(inputs) != len(self.inputs):
            raise ValidationError("inputs", f"{len(self.inputs)} arrays ({', '.join(self.inputs)})",
                                  f"{len(inputs)}")
        values = {n: np.asarray(a) for n, a in zip(self.inputs, inputs)}
        for name, module in self.nodes.items():
            y = module(*(values[s] for s in self.node_inputs[name]))
            if isinstance(y, tuple):
                raise ValidationError(f"node {name!r}", "a module with one output", "a tuple")
            values[name] = y
        outs = [values[n] for n in self._outputs]
        # backward needs only shapes: the layers keep their own caches
        self._meta = ({n: (values[n].shape, values[n].dtype) for n in self.inputs},
                      [o.shape for o in outs])
        return outs[0] if len(outs) == 1 else tuple(outs)

    def backward(self, *dys, input_grad: bool = True):
        """Reverse-mode pass: dys = dL/d(each output); returns dL/d(each graph input).

        One input: the array; several: a tuple. None for an integer input (and
        for all of them when ``input_grad`` is False, what ``train`` passes:
        then nodes fed only by graph inputs skip computing their dL/dx).
        """
        if self._meta is None:
            raise ValidationError("backward", "a preceding forward() of Graph", "none")
        in_meta, out_shapes = self._meta
        if len(dys) != len(self._outputs):
            raise ValidationError("dys", f"{len(self._outputs)} gradients (one per output)", len(dys))
        grads: dict[str, np.ndarray] = {}
        for name, dy, shape in zip(self._outputs, dys, out_shapes):
            dy = np.asarray(dy)
            if dy.shape != shape:
                raise ShapeError(f"dL/d{name}", f"shape {shape}", dy.shape)
            _accumulate(grads, name, dy)
        for name in reversed(self.nodes):
            dy = grads.pop(name, None)      # popped: the sum is complete, all consumers came later
            if dy is None:
                continue                    # the node does not reach an output
            module, srcs = self.nodes[name], self.node_inputs[name]
            if not input_grad and all(s in in_meta for s in srcs):
                # nobody needs dL/d(graph input): skip the work that only computes it
                if getattr(module, "accepts_input_grad", False):
                    module.backward(dy, input_grad=False)
                elif any(True for _ in module.named_weights()):
                    module.backward(dy)
                continue
            dxs = module.backward(dy)
            if not isinstance(dxs, tuple):
                dxs = (dxs,)
            if len(dxs) != len(srcs):
                raise ValidationError(f"backward of node {name!r}", f"{len(srcs)} gradients", len(dxs))
            for src, g in zip(srcs, dxs):
                if g is not None:
                    _accumulate(grads, src, g)
        if not input_grad:
            return None
        out = []
        for n in self.inputs:
            shape, dtype = in_meta[n]
            if dtype.kind != "f":
                out.append(None)                                   # token ids, masks: no gradient
            else:
                out.append(grads.get(n, np.zeros(shape, dtype)))   # unused input: dL/dx = 0
        return out[0] if len(out) == 1 else tuple(out)

    def __repr__(self) -> str:
        lines = [f"  ({n} <- {', '.join(self.node_inputs[n])}): {m!r}".replace("\n", "\n  ")
                 for n, m in self.nodes.items()]
        return f"Graph(inputs={self.inputs}, outputs={self._outputs})(\n" + "\n".join(lines) + "\n)"


def replace_module(root: Module, dotted: str, new: Module) -> None:
    """Put ``new`` where the module named ``dotted`` (as in ``root.named_modules()``) is: a Sequential's
    or Graph's node keeps its place and inputs; any other parent gets the attribute (an attention's
    ``q_proj``). How a transform swaps a layer that may sit anywhere in a model."""
    parent_name, _, key = dotted.rpartition(".")
    parent = root if not parent_name else dict(root.named_modules())[parent_name]
    if isinstance(parent, (Sequential, Graph)):
        parent[key] = new
    else:
        setattr(parent, key, new)

