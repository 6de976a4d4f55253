"""L0 pruning of neurons / channels with hard-concrete gates (Louizos, Welling, Kingma 2018).

A HardConcreteGate (refcomp.nn.layers.hard_concrete, eqs. P.10–P.13) after
each chosen Linear / Conv2d multiplies its outputs by z_j ∈ [0, 1]; training
minimises

    E_u[L(θ ⊙ z)] + λ Σ_gates Σ_j σ(log α_j − β log(−γ/ζ))                    (P.14)

(arXiv:1712.01312, eq. (12) for the expected number of non-zero gates; the
paper divides λ by the dataset size, here λ is the factor itself). After
training, the test-time gate ẑ (P.13) is folded into the layer it follows,
exactly, since y ⊙ ẑ = (ẑ ⊙ W) x + ẑ ⊙ b:

    W_j ← ẑ_j W_j,   b_j ← ẑ_j b_j                                             (P.15)

and the neurons with ẑ_j = 0 are removed (structured.shrink).
"""

from __future__ import annotations

import copy

import numpy as np

from ...checks import real
from ...errors import ValidationError
from ...nn.layers import Conv2d, HardConcreteGate, Linear
from ...nn.module import Sequential, _accumulate, as_rng
from ...nn.optim import Adam
from ...nn.train import train
from .model import prunable_layers
from .structured import apply_structured, shrink

__all__ = ["L0Penalty", "add_gates", "fold_gates", "l0_prune"]

GATE_SUFFIX = "_gate"


class L0Penalty:
    """The expected-L0 penalty R = λ Σ_gates Σ_j σ(log α_j − β log(−γ/ζ)) and its gradient  (P.14).

    A refcomp.nn.train ``regularizer``: ``penalty(model)`` and ``add_gradient(model)``
    (∂R/∂log α_j = λ p_j (1 − p_j), p_j the probability above).
    """

    def __init__(self, lam: float):
        self.lam = real(lam, "lam", low=0.0)

    @staticmethod
    def _gates(model):
        return [m for _, m in model.named_modules() if isinstance(m, HardConcreteGate)]

    def penalty(self, model) -> float:
        return self.lam * sum(g.expected_l0()[0] for g in self._gates(model))

    def add_gradient(self, model) -> None:
        for g in self._gates(model):
            _accumulate(g.log_alpha, self.lam * g.expected_l0()[1])


def add_gates(model, layers, *, rng, drop_init: float = 0.5) -> Sequential:
    """A copy of the Sequential ``model`` with a HardConcreteGate named ``<layer>_gate`` after each chosen layer.

    layers : names of top-level Linear / Conv2d layers; rng : Generator or seed for the gates' noise.
    """
    if not isinstance(model, Sequential):
        raise ValidationError("model", "a refcomp.nn.Sequential", type(model).__name__)
    chosen = prunable_layers(model, layers)
    g = as_rng(rng)
    items = []
    for name, layer in copy.deepcopy(model).layers.items():
        items.append((name, layer))
        if name in chosen:
            n = layer.out_features if isinstance(layer, Linear) else layer.out_channels
            gate = HardConcreteGate(n, drop_init=drop_init, rng=g, dtype=str(layer.weight.data.dtype))
            items.append((name + GATE_SUFFIX, gate))
    return Sequential(*items)


def fold_gates(model) -> tuple:
    """(a copy without gates, each test-time gate ẑ folded into the layer before it (P.15); {layer: ẑ}).

    The copy computes what the gated model computes in eval mode (up to float rounding).
    """
    if not isinstance(model, Sequential):
        raise ValidationError("model", "a refcomp.nn.Sequential", type(model).__name__)
    items, gates = [], {}
    for name, layer in copy.deepcopy(model).layers.items():
        if isinstance(layer, HardConcreteGate):
            if not items or not isinstance(items[-1][1], (Linear, Conv2d)):
                raise ValidationError("model", "gates right after a Linear or Conv2d", name)
            prev_name, prev = items[-1]
            z = layer.gate_values()
            shape = (-1,) + (1,) * (prev.weight.data.ndim - 1)
            prev.weight.data[...] = prev.weight.data * z.reshape(shape).astype(prev.weight.data.dtype)
            if prev.bias is not None:
                prev.bias.data[...] = prev.bias.data * z.astype(prev.bias.data.dtype)
            gates[prev_name] = z
            continue
        items.append((name, layer))
    return Sequential(*items), gates


def l0_prune(model, train_set, *, layers, lam: float, epochs: int = 1, lr: float = 1e-3, drop_init: float = 0.5,
             batch_size: int = 64, rng=0, progress=False, val_data=None) -> tuple:
    """Train gates on the chosen layers with the L0 penalty, fold them, remove closed neurons: (model, report).

    Adam (the paper's optimizer) on weights and log α together, lr ``lr``, for ``epochs``.
    report = {"gates": {layer: ẑ}, "kept": {layer: int}, "history"}. ``model`` is untouched.
    Closed gates (ẑ_j = 0) remove neuron j with structured.shrink (a following Linear/Conv2d is needed).
    """
    g = as_rng(rng)
    gated = add_gates(model, layers, rng=g, drop_init=drop_init)
    history = train(gated, train_set, epochs=epochs, batch_size=batch_size, optimizer=Adam(gated.parameters(), lr=lr),
                    regularizer=L0Penalty(lam), rng=g, progress=progress, val_data=val_data)
    folded, gates = fold_gates(gated)
    keep = {n: z > 0 for n, z in gates.items()}
    for n, k in keep.items():
        if not k.any():   # a layer cannot lose every neuron: keep its strongest gate's location
            k[int(np.argmax(gated[n + GATE_SUFFIX].log_alpha.data))] = True
    zeroed, _ = apply_structured(folded, keep)
    small, _ = shrink(zeroed, keep)
    return small, {"gates": gates, "kept": {n: int(k.sum()) for n, k in keep.items()}, "history": history}
