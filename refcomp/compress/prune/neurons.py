"""Neuron-level tools: the signed activation × weight importance, and freezing low-gradient neurons.

Signed neuron importance (P.4). Hidden neuron j of a layer feeds the next
Linear layer N (weight V, (out, H)) through its activation a_j. Its total
contribution to N's pre-activations, summed over N's units and averaged over
the data, keeps its sign:

    I_j = (1/N) Σ_n Σ_k a_nj · V_kj  =  ā_j · Σ_k V_kj                      (P.4)

Unlike |a|·|w| criteria (D.3), contributions of opposite sign cancel: a neuron
that pushes some next units up and others down by as much counts for little,
and a neuron whose net push is negative ranks below one that contributes
nothing. Removing neuron j shifts Σ_k z_k (N's summed pre-activation) by
exactly −a_j·Σ_k V_kj, so I_j is that shift's mean. Neurons with the lowest
I_j are removed (:func:`neuron_keep`, then structured.shrink).

Freezing low-gradient neurons (P.5). Neurons whose weights barely move
(smallest ‖∂L/∂w_o‖₂ of their row over calibration batches) are frozen: their
row and bias are excluded from training (gradients, momentum and weight
decay), which saves their updates and keeps the features they already
compute. :class:`FrozenNeuronOptimizer` holds them fixed bit for bit.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import numpy as np

from ...checks import bool_mask, float_array, integer, ratio
from ...errors import ShapeError, ValidationError
from ...nn.layers import Linear
from ...nn.optim import SGD, Wrapped
from ...nn.train import train
from .gradflow import mean_gradients
from .masks import unstructured_mask
from .model import _calibration_batches, _layer_inputs, prunable_layers
from .structured import _plan, apply_structured, shrink

__all__ = ["signed_neuron_importance", "low_gradient_neurons", "neuron_keep", "prune_neurons",
           "FrozenNeuronOptimizer", "train_frozen"]


def signed_neuron_importance(activations, next_weight) -> np.ndarray:
    """I_j = (1/N) Σ_n Σ_k a_nj · V_kj, the signed contribution of each neuron  (P.4).

    activations : (N, H) real, neuron j's output a_nj for sample n (leading axes
        beyond the last are all samples); next_weight : V, (out, H) real, the
        weight of the Linear layer that reads them.
    Returns float64 (H,); any sign.
    """
    v = float_array(next_weight, "next_weight", ndim=2)
    a = float_array(activations, "activations", allow_empty=False)
    if a.ndim < 1 or a.shape[-1] != v.shape[1]:
        raise ShapeError("activations", f"shape (..., {v.shape[1]}) (one column per input of next_weight)",
                         f"shape {a.shape}")
    mean_a = np.mean(a.reshape(-1, v.shape[1]), axis=0, dtype=np.float64)
    return mean_a * np.sum(v, axis=0, dtype=np.float64)


def low_gradient_neurons(grad, fraction: float) -> np.ndarray:
    """Bool (out,), True = frozen: the rows of smallest ‖ḡ_o‖₂ = (Σ_i ḡ_oi²)^½  (P.5).

    grad : one gradient (out, ...) or a sequence of per-batch gradients (averaged first).
    fraction : share of rows frozen, in [0, 1); ⌊fraction·out + ½⌋ rows, ties freeze the later row.
    """
    if isinstance(grad, (list, tuple)):
        if not grad:
            raise ValidationError("grad", "an array or a non-empty sequence of per-batch arrays", "[]")
        gs = [float_array(g, f"grad[{i}]") for i, g in enumerate(grad)]
        if len({g.shape for g in gs}) != 1:
            raise ShapeError("grad", "per-batch gradients of one shape", [g.shape for g in gs])
        g = sum(x.astype(np.float64) for x in gs) / len(gs)
    else:
        g = float_array(grad, "grad").astype(np.float64)
    if g.ndim < 2:
        raise ShapeError("grad", "a weight gradient (out, in[, kh, kw])", f"shape {g.shape}")
    norms = np.sqrt(np.sum(np.square(g.reshape(g.shape[0], -1)), axis=1))
    return ~unstructured_mask(norms, ratio(fraction, "fraction"))


def _next_linear_inputs(model, names, data, batch_size):
    """{name: inputs of the Linear that reads that layer's neurons} over the calibration batches."""
    try:
        plan = _plan(model, names)
    except ValidationError as e:  # structured's plan names its own argument, "keep"
        raise ValidationError("sparsity", e.expected, e.got) from None
    consumers = {name: plan[name][1] for name in names}
    for name, nxt in consumers.items():
        if not isinstance(model[nxt], Linear) or plan[name][2] or plan[name][0]:
            raise ValidationError("sparsity", "layers read directly (through activations only) by a Linear",
                                  f"{name!r} -> {nxt!r}")
    layers = {nxt: model[nxt] for nxt in set(consumers.values())}
    seen = _layer_inputs(model, layers, _calibration_batches(data, batch_size))
    return {name: (np.concatenate(seen[nxt]), model[nxt].weight.data) for name, nxt in consumers.items()}


def neuron_keep(model, sparsity: Mapping, data, *, batch_size: int = 256) -> dict:
    """{name: bool (out,)} keeping each layer's neurons of highest signed importance (P.4).

    sparsity : {name: fraction of neurons removed}; the layers must be hidden
        Linear layers of a Sequential read by the next Linear through activations
        that map 0 to 0 (ReLU, Tanh ...). data : (x, y) or list of (x, y) batches.
    """
    if not isinstance(sparsity, Mapping) or not sparsity:
        raise ValidationError("sparsity", "a non-empty mapping layer name -> ratio", type(sparsity).__name__)
    prunable_layers(model, list(sparsity))
    pairs = _next_linear_inputs(model, list(sparsity), data, integer(batch_size, "batch_size", minimum=1))
    return {n: unstructured_mask(signed_neuron_importance(a, v), ratio(sparsity[n], f"sparsity[{n!r}]"))
            for n, (a, v) in pairs.items()}


def prune_neurons(model, sparsity: Mapping, data, *, batch_size: int = 256) -> tuple:
    """Remove the neurons of lowest signed importance: (a smaller Sequential, report).

    report = {"keep": {name: bool (out,)}, "shrink": structured.shrink's report}. ``model`` is untouched.
    """
    keep = neuron_keep(model, sparsity, data, batch_size=batch_size)
    zeroed, _ = apply_structured(model, keep)
    small, rep = shrink(zeroed, keep)
    return small, {"keep": keep, "shrink": rep}


class FrozenNeuronOptimizer(Wrapped):
    """Wraps a refcomp.nn optimizer; the frozen rows of each named layer (weight and bias) never change  (P.5).

    step():  g[frozen] = 0;  saved = θ[frozen];  inner.step();  θ[frozen] = saved;  state[frozen] = 0
    Restoring (not only zeroing the gradient) also undoes weight decay, which the
    inner optimizer adds to g itself. ``lr`` reads and writes the inner optimizer's.
    frozen : {name: bool (out,)}, True = frozen.
    """

    def __init__(self, optimizer, model, frozen: Mapping):
        if not hasattr(optimizer, "step") or not hasattr(optimizer, "state"):
            raise ValidationError("optimizer", "a refcomp.nn optimizer", type(optimizer).__name__)
        if not isinstance(frozen, Mapping):
            raise ValidationError("frozen", "a mapping layer name -> bool (out,)", type(frozen).__name__)
        chosen = prunable_layers(model, list(frozen))
        self.inner = optimizer
        self.rows = []
        for name, layer in chosen.items():
            f = bool_mask(frozen[name], (layer.weight.data.shape[0],), f"frozen[{name!r}]").copy()
            self.rows += [(p, f) for p in (layer.weight, layer.bias) if p is not None]

    def step(self) -> None:
        saved = []
        for p, f in self.rows:
            if p.grad is not None:
                p.grad[f] = 0
            saved.append(p.data[f].copy())
        self.inner.step()
        for (p, f), s in zip(self.rows, saved):
            p.data[f] = s
            for buf in self.inner.state.get(id(p), {}).values():
                if isinstance(buf, np.ndarray) and buf.shape == p.data.shape:
                    buf[f] = 0


def train_frozen(model, train_set, *, fraction: float, calibration, layers=None, epochs: int = 1,
                 lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 0.0, batch_size: int = 64,
                 rng=0, progress=False, val_data=None) -> tuple:
    """Freeze each chosen layer's low-gradient neurons (P.5), then train the rest: (copy, report).

    The gradients are measured once, on ``calibration`` ((x, y) or batches), before
    training; ``fraction`` of each layer's rows are frozen. report = {"frozen":
    {name: bool (out,)}, "history": refcomp.nn.train's records}. ``model`` is untouched.
    """
    out = copy.deepcopy(model)
    chosen = prunable_layers(out, layers)
    grads = mean_gradients(out, chosen, _calibration_batches(calibration, 256))
    frozen = {n: low_gradient_neurons(grads[n], fraction) for n in chosen}
    sgd = SGD(out.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    opt = FrozenNeuronOptimizer(sgd, out, frozen)
    history = train(out, train_set, epochs=epochs, batch_size=batch_size, optimizer=opt, rng=rng,
                    progress=progress, val_data=val_data)
    return out, {"frozen": frozen, "history": history}
