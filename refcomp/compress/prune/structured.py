"""Structured pruning that physically shrinks a Sequential model.

Removing neuron / filter o of a Linear or Conv2d layer L (row o of its weight,
D.10) is made exact in two steps:

1. **mask** (:func:`apply_structured`): row o of W_L, b_L[o] and — for a
   BatchNorm right after L — γ[o], β[o] are set to 0. Channel o then carries
   exactly 0 into every later layer, provided the layers between L and the next
   Linear/Conv2d map 0 to 0 (ReLU, ReLU6, Tanh, GELU, max/avg pooling, Flatten,
   Dropout, BatchNorm with γ[o] = β[o] = 0). Sigmoid (σ(0) = ½) is refused.
2. **shrink** (:func:`shrink`): row o disappears from W_L and b_L, channel o
   from the BatchNorm (γ, β, running mean / var), and the matching inputs from
   the next layer N: column o of a Linear (or the H·W columns o·H·W … (o+1)·H·W − 1
   when a Flatten sits between a conv and N), input channel o of a Conv2d.

Since the removed channel only ever contributed exact zeros, the smaller
dense model computes the same sums minus zero terms: its outputs equal the
masked model's up to float summation order (equal in exact arithmetic).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import numpy as np

from ...checks import bool_mask
from ...errors import ShapeError, ValidationError
from ...formats.dense import Dense
from ...nn.layers import (
    GELU,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Flatten,
    GlobalAvgPool2d,
    Linear,
    MaxPool2d,
    ReLU,
    ReLU6,
    Tanh,
)
from ...nn.module import Parameter, Sequential
from .criteria import structure_norms
from .masks import unstructured_mask
from .model import prunable_layers

__all__ = ["structured_keep", "apply_structured", "shrink"]


def _top_level(model):
    if not isinstance(model, Sequential):
        raise ValidationError("model", "a refcomp.nn.Sequential (structured shrink follows its layer order)",
                              type(model).__name__)
    return list(model.layers.items())


def _zero_preserving(layer) -> bool:
    return isinstance(layer, (ReLU, ReLU6, Tanh, GELU, MaxPool2d, AvgPool2d, GlobalAvgPool2d, Flatten, Dropout,
                               BatchNorm1d, BatchNorm2d))


def _plan(model, names) -> dict:
    """For each pruned layer: (its index, BatchNorms between, next consumer index, Flatten between?)."""
    items = _top_level(model)
    index = {n: i for i, (n, _) in enumerate(items)}
    plan = {}
    for name in names:
        if name not in index:
            raise ValidationError("keep", f"top-level layer names among {[n for n, _ in items]}", repr(name))
        i = index[name]
        norms, flatten, j = [], False, i + 1
        while j < len(items) and not isinstance(items[j][1], (Linear, Conv2d)):
            layer = items[j][1]
            if not _zero_preserving(layer):
                raise ValidationError("keep", f"layers between {name!r} and the next Linear/Conv2d that map 0 to 0",
                                      f"{items[j][0]} ({type(layer).__name__})")
            if isinstance(layer, (BatchNorm1d, BatchNorm2d)):
                norms.append(items[j][0])
            if isinstance(layer, Flatten):
                flatten = True
            j += 1
        if j == len(items):
            raise ValidationError("keep", "layers followed by another Linear/Conv2d (the output layer keeps "
                                  "all its outputs)", repr(name))
        nxt = items[j][1]
        if isinstance(nxt, Conv2d) and nxt.groups != 1:
            raise ValidationError("keep", "a next Conv2d with groups=1", f"{items[j][0]} has groups={nxt.groups}")
        plan[name] = (norms, items[j][0], flatten)
    return plan


def structured_keep(model, sparsity, *, norm: int = 1) -> dict:
    """{name: bool (out,)} keeping the neurons/filters of largest L``norm`` weight norm (D.2, D.10).

    sparsity : {name: ratio} (fraction of rows removed from that layer).
    """
    if not isinstance(sparsity, Mapping) or not sparsity:
        raise ValidationError("sparsity", "a non-empty mapping layer name -> ratio", type(sparsity).__name__)
    chosen = prunable_layers(model, list(sparsity))
    return {n: unstructured_mask(structure_norms(l.weight.data, "row", ord=norm), sparsity[n])
            for n, l in chosen.items()}


def _check_keep(model, keep):
    if not isinstance(keep, Mapping) or not keep:
        raise ValidationError("keep", "a non-empty mapping layer name -> bool (out,)", type(keep).__name__)
    chosen = prunable_layers(model, list(keep))
    out = {}
    for n, l in chosen.items():
        k = bool_mask(keep[n], (l.weight.data.shape[0],), f"keep[{n!r}]")
        if not k.any():
            raise ValidationError(f"keep[{n!r}]", "at least one kept row", "none")
        out[n] = k
    return out, chosen


def apply_structured(model, keep: Mapping):
    """Step 1: (a copy of ``model`` with the removed rows, their biases and the BatchNorm γ, β after
    them zeroed, report {name: rows kept}); ``model`` is not modified."""
    model = copy.deepcopy(model)
    keep, chosen = _check_keep(model, keep)
    plan = _plan(model, list(keep))
    for name, k in keep.items():
        layer = chosen[name]
        layer.weight.data[~k] = 0
        if layer.bias is not None:
            layer.bias.data[~k] = 0
        for bn in plan[name][0]:
            norm = model[bn]
            if norm.weight is not None:
                norm.weight.data[~k] = 0
                norm.bias.data[~k] = 0
            else:
                raise ValidationError("keep", f"an affine BatchNorm after {name!r} (to zero its output)", bn)
    return model, {name: int(k.sum()) for name, k in keep.items()}


def _take(layer_array, k, axis):
    return np.ascontiguousarray(np.compress(k, layer_array, axis=axis))


def shrink(model, keep: Mapping):
    """Step 2: (a new, smaller Sequential without the removed rows and their inputs downstream,
    report {name: {"kept", "removed"}}).

    Call :func:`apply_structured` first (or prune so that the removed rows are
    zero); ``model`` itself is not modified.
    """
    keep, _ = _check_keep(model, keep)
    plan = _plan(model, list(keep))
    new = copy.deepcopy(model)
    for name, k in keep.items():
        layer = new[name]
        norms, nxt_name, flatten = plan[name]
        layer.weight = Dense(_take(layer.weight.data, k, 0))
        if layer.bias is not None:
            layer.bias = Parameter(_take(layer.bias.data, k, 0))
        if isinstance(layer, Linear):
            layer.out_features = int(k.sum())
        else:
            layer.out_channels = int(k.sum())
        for bn in norms:
            norm = new[bn]
            if norm.weight is not None:
                norm.weight = Parameter(_take(norm.weight.data, k, 0))
                norm.bias = Parameter(_take(norm.bias.data, k, 0))
            norm.running_mean = _take(norm.running_mean, k, 0)
            norm.running_var = _take(norm.running_var, k, 0)
            norm.num_features = int(k.sum())
        nxt = new[nxt_name]
        w = nxt.weight.data
        if isinstance(nxt, Conv2d):
            nxt.weight = Dense(_take(w, k, 1))
            nxt.in_channels = int(k.sum())
        else:
            if flatten:
                if w.shape[1] % k.size:
                    raise ShapeError(f"{nxt_name}.weight", f"in_features divisible by {k.size} channels",
                                     f"shape {w.shape}")
                cols = np.repeat(k, w.shape[1] // k.size)   # channel-major: Flatten of (N, C, H, W)
            else:
                if w.shape[1] != k.size:
                    raise ShapeError(f"{nxt_name}.weight", f"{k.size} inputs (one per removed-layer output)",
                                     f"shape {w.shape}")
                cols = k
            nxt.weight = Dense(_take(w, cols, 1))
            nxt.in_features = int(cols.sum())
    return new, {name: {"kept": int(k.sum()), "removed": int((~k).sum())} for name, k in keep.items()}
