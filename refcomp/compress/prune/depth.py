"""Depth pruning: remove whole hidden layers of an MLP (a Sequential of Linear and activations).

Dropping the hidden Linear L (W1 (h, in), b1) with the activation after it
leaves two affine maps in a row, which fold into one Linear:

    W2 (W1 x + b1) + b2 = (W2 W1) x + (W2 b1 + b2)                               (P.18)
    W' = W2 W1  (out, in),   b' = W2 b1 + b2  (out,)

where (W2, b2) is the next Linear. The result equals the original network
exactly when the dropped activation is the identity on the data (ReLU with
every pre-activation ≥ 0); otherwise it is the linearised block, a start for
fine-tuning. This is the layer merging of linearity-based compression (e.g.
Dobler et al. 2025, arXiv:2506.21146, for ReLU units that are almost always
active); :func:`depth_tradeoff` measures accuracy against layers removed by
greedy search: each round removes the layer whose removal (after a short
fine-tune) keeps the best validation accuracy.
"""

from __future__ import annotations

import copy
import time

import numpy as np

from ...checks import float_array, integer, same_shape
from ...errors import ShapeError, ValidationError
from ...nn.layers import Dropout, GELU, LeakyReLU, Linear, ReLU, ReLU6, Sigmoid, Tanh
from ...nn.module import Sequential
from ...nn.optim import SGD
from ...nn.train import evaluate, train

__all__ = ["merge_linear_pair", "removable_layers", "drop_layer", "depth_tradeoff"]

_ELEMENTWISE = (ReLU, ReLU6, LeakyReLU, GELU, Tanh, Sigmoid, Dropout)


def merge_linear_pair(w1, b1, w2, b2) -> tuple:
    """(W2 W1, W2 b1 + b2): two affine maps in a row as one  (P.18).

    w1 (h, in), b1 (h,) or None, w2 (out, h), b2 (out,) or None; real.
    Returns float arrays (out, in) and (out,), in the dtype NumPy's product gives.
    """
    w1 = float_array(w1, "w1", ndim=2)
    w2 = float_array(w2, "w2", ndim=2)
    if w2.shape[1] != w1.shape[0]:
        raise ShapeError("w2", f"shape (out, {w1.shape[0]}) (its inputs are w1's outputs)", f"shape {w2.shape}")
    b1 = np.zeros(w1.shape[0], w1.dtype) if b1 is None else float_array(b1, "b1")
    b2 = np.zeros(w2.shape[0], w2.dtype) if b2 is None else float_array(b2, "b2")
    same_shape(b1, (w1.shape[0],), "b1")
    same_shape(b2, (w2.shape[0],), "b2")
    return w2 @ w1, w2 @ b1 + b2


def _items(model):
    if not isinstance(model, Sequential):
        raise ValidationError("model", "a refcomp.nn.Sequential MLP", type(model).__name__)
    return list(model.layers.items())


def removable_layers(model) -> list:
    """Names of the hidden Linear layers followed (through element-wise layers only) by another Linear."""
    items, out = _items(model), []
    for i, (name, layer) in enumerate(items):
        if not isinstance(layer, Linear):
            continue
        j = i + 1
        while j < len(items) and isinstance(items[j][1], _ELEMENTWISE):
            j += 1
        if j < len(items) and isinstance(items[j][1], Linear):
            out.append(name)
    return out


def drop_layer(model, name: str) -> tuple:
    """Remove hidden Linear ``name`` and the element-wise layers after it; fold it into the next Linear (P.18).

    Returns (a new Sequential, report {"removed": [names], "merged_into": next name,
    "parameters": (before, after)}). ``model`` is untouched.
    """
    items = _items(model)
    if name not in removable_layers(model):
        raise ValidationError("name", f"a removable hidden Linear among {removable_layers(model)}", repr(name))
    i = [n for n, _ in items].index(name)
    j = i + 1
    while not isinstance(items[j][1], Linear):
        j += 1
    first, nxt = items[i][1], copy.deepcopy(items[j][1])
    w, b = merge_linear_pair(first.weight.data, None if first.bias is None else first.bias.data,
                             nxt.weight.data, None if nxt.bias is None else nxt.bias.data)
    merged = Linear(first.in_features, nxt.out_features, bias=nxt.bias is not None, dtype=str(w.dtype))
    merged.weight.data[...] = w
    if merged.bias is not None:
        merged.bias.data[...] = b
    kept = [(n, copy.deepcopy(layer)) for n, layer in items[:i]] + [(items[j][0], merged)]
    kept += [(n, copy.deepcopy(layer)) for n, layer in items[j + 1:]]
    new = Sequential(*kept)
    return new, {"removed": [n for n, _ in items[i:j]], "merged_into": items[j][0],
                 "parameters": (model.num_parameters(), new.num_parameters())}


def _fine_tune(model, train_set, epochs, lr, rng):
    if epochs:
        sgd = SGD(model.parameters(), lr=lr, momentum=0.9)
        train(model, train_set, epochs=epochs, optimizer=sgd, rng=rng, progress=False)
    return model


def depth_tradeoff(model, train_set, val_set, *, fine_tune_epochs: int = 1, lr: float = 0.01, rng=0,
                   max_removed: int | None = None) -> tuple:
    """Greedy depth pruning with its trade-off: (the shallowest model kept, report).

    Round r tries every removable layer of the current model (drop_layer, then
    ``fine_tune_epochs`` of SGD at ``lr``), keeps the one with the best validation
    accuracy and goes on until no layer is removable or ``max_removed`` are gone.
    report = {"rows": [{"removed": total layers removed, "layers": names removed so far,
    "val_accuracy", "tried": {candidate: val accuracy}, "parameters", "seconds"}], row 0 the input model;
    "models": the model of each row}.
    """
    epochs = integer(fine_tune_epochs, "fine_tune_epochs", minimum=0)
    limit = None if max_removed is None else integer(max_removed, "max_removed", minimum=0)
    current, removed = copy.deepcopy(model), []
    models = [current]
    rows = [{"removed": 0, "layers": [], "val_accuracy": evaluate(current, val_set)["accuracy"],
             "parameters": current.num_parameters(), "seconds": 0.0}]
    while removable_layers(current) and (limit is None or len(removed) < limit):
        t0 = time.perf_counter()
        tried = []
        for name in removable_layers(current):
            cand = _fine_tune(drop_layer(current, name)[0], train_set, epochs, lr, rng)
            tried.append((evaluate(cand, val_set)["accuracy"], name, cand))
        acc, name, current = max(tried, key=lambda t: t[0])   # ties: the earlier layer (max keeps the first)
        removed.append(name)
        rows.append({"removed": len(removed), "layers": list(removed), "val_accuracy": acc,
                     "tried": {n: a for a, n, _ in tried},
                     "parameters": current.num_parameters(), "seconds": round(time.perf_counter() - t0, 2)})
        models.append(current)
    return current, {"rows": rows, "models": models}
