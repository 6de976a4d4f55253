"""Batch-norm folding: merge an eval-mode BatchNorm into the Conv2d/Linear before it.

A Conv2d or Linear computes z = W·x + b per output channel o; the BatchNorm
after it, in eval mode, computes

    y_o = γ_o · (z_o − μ_o) / sqrt(σ²_o + ε) + β_o          (μ, σ² the running statistics)

Write s_o = γ_o / sqrt(σ²_o + ε). Then y_o = s_o·(W_o·x) + s_o·(b_o − μ_o) + β_o, i.e. one
layer with

    W'_o = s_o · W_o          (every weight of output channel o scaled)
    b'_o = s_o · (b_o − μ_o) + β_o

(Jacob et al. 2018, §3.2, as used before integer quantization). The identity
is exact in real arithmetic; in floating point the folded layer rounds
differently, so eval outputs agree to a few ulps of the activations (the tests
check float64 to rtol 1e-10, float32 to rtol 1e-4 relative to the output
scale). W', b' are computed in float64 and stored in the layer's dtype. In
training mode BatchNorm uses batch statistics and folding does not apply.
"""

from __future__ import annotations

import copy

import numpy as np

from ..errors import ValidationError
from ..formats.dense import Dense
from .layers.conv import Conv2d
from .layers.linear import Linear
from .layers.norm import BatchNorm1d, BatchNorm2d
from .graph import Graph
from .module import Parameter, Sequential

__all__ = ["fold_batchnorm", "fold_pair"]


def fold_pair(layer, bn):
    """A new layer equal to ``bn(layer(x))`` in eval mode (layer and bn are not modified)."""
    if not isinstance(layer, (Conv2d, Linear)):
        raise ValidationError("layer", "a Conv2d or Linear", type(layer).__name__)
    if not isinstance(bn, (BatchNorm1d, BatchNorm2d)) or bn.num_features != layer.weight.shape[0]:
        raise ValidationError("bn", f"a BatchNorm over {layer.weight.shape[0]} channels", repr(bn))
    if not isinstance(layer.weight, Dense):
        raise ValidationError("layer.weight", "a Dense weight (fold before compressing)",
                              type(layer.weight).__name__)
    dtype = layer.weight.data.dtype
    w = layer.weight.data.astype(np.float64)
    o = w.shape[0]
    b = layer.bias.data.astype(np.float64) if layer.bias is not None else np.zeros(o)
    gamma = bn.weight.data.astype(np.float64) if bn.weight is not None else np.ones(o)
    beta = bn.bias.data.astype(np.float64) if bn.bias is not None else np.zeros(o)
    s = gamma / np.sqrt(bn.running_var.astype(np.float64) + bn.eps)
    new = copy.copy(layer)        # same configuration; weight and bias replaced below
    for cache in ("_cache", "_x"):
        if hasattr(new, cache):
            setattr(new, cache, None)
    new.weight = Dense((w * s.reshape((o,) + (1,) * (w.ndim - 1))).astype(dtype))
    new.bias = Parameter((s * (b - bn.running_mean.astype(np.float64)) + beta).astype(dtype))
    return new


def fold_batchnorm(model):
    """A copy of ``model`` with every BatchNorm that directly follows a Conv2d/Linear
    (in the same Sequential or Graph, nested ones included) folded into it and removed.

    In a Graph, "directly follows" means: the BatchNorm node's one input is
    the Conv2d/Linear node's output and nothing else reads that output (else
    the unnormalised value is still needed). The surviving layer keeps its
    name; the BatchNorm's name disappears (in a Graph, its readers read the
    layer instead). The returned model is in eval mode.
    """
    if isinstance(model, Graph):
        return _fold_graph(model)
    if not isinstance(model, Sequential):
        raise ValidationError("model", "a refcomp.nn.Sequential or Graph", type(model).__name__)
    out = Sequential()
    items = list(model.layers.items())
    i = 0
    while i < len(items):
        name, layer = items[i]
        nxt = items[i + 1][1] if i + 1 < len(items) else None
        if isinstance(layer, (Conv2d, Linear)) and isinstance(nxt, (BatchNorm1d, BatchNorm2d)):
            out.add(name, fold_pair(layer, nxt))
            i += 2
            continue
        out.add(name, _fold_child(layer))
        i += 1
    return out.eval()


def _fold_child(module):
    return fold_batchnorm(module) if isinstance(module, (Sequential, Graph)) else copy.deepcopy(module)


def _fold_graph(graph: Graph) -> Graph:
    readers: dict[str, int] = {}
    for srcs in graph.node_inputs.values():
        for s in srcs:
            readers[s] = readers.get(s, 0) + 1
    for o in graph.outputs:
        readers[o] = readers.get(o, 0) + 1
    out = Graph(inputs=graph.inputs)
    renamed: dict[str, str] = {}           # folded BatchNorm node -> the layer node that now gives its value
    for name, module in graph.nodes.items():
        srcs = [renamed.get(s, s) for s in graph.node_inputs[name]]
        src = srcs[0]
        # the readers counted are those of the value the norm reads, under its name in ``graph``: after
        # a norm folded into the layer, the layer's name stands for that norm's output, which other
        # nodes may read too (readers of the layer's own name would miss them)
        if (isinstance(module, (BatchNorm1d, BatchNorm2d)) and len(srcs) == 1 and src in out.nodes
                and isinstance(out[src], (Conv2d, Linear)) and readers.get(graph.node_inputs[name][0], 0) == 1):
            out[src] = fold_pair(out[src], module)
            renamed[name] = src
            continue
        out.add(name, _fold_child(module), *srcs)
    out.outputs = [renamed.get(o, o) for o in graph.outputs]
    return out.eval()
