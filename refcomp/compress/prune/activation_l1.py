"""Activation sparsity by an L1 penalty on hidden activations (P.16, P.17), on a refcomp.nn model.

``add_activation_l1`` puts an ActivityL1 layer (refcomp.nn.layers.activity_l1)
after each chosen activation of a Sequential; its backward adds
λ·sign(a)/N to the gradient, :class:`ActivationL1Penalty` adds the penalty
to the loss the training loop reports. After training the layers are removed
(they are the identity at inference) and :func:`activation_sparsity` measures
the share of exact zeros — what a sparse-activation kernel would skip.
"""

from __future__ import annotations

import copy

import numpy as np

from ...checks import real
from ...errors import ValidationError
from ...nn.layers import ActivityL1
from ...nn.module import Sequential, run_with_hooks
from ...nn.optim import SGD
from ...nn.train import train
from .model import _calibration_batches

__all__ = ["ActivationL1Penalty", "add_activation_l1", "remove_activation_l1", "activation_sparsity",
           "train_activation_l1"]

SUFFIX = "_l1"


class ActivationL1Penalty:
    """refcomp.nn.train ``regularizer``: penalty(model) = Σ of the ActivityL1 layers' last R (P.16).

    add_gradient is empty on purpose: the layers add ∂R/∂a inside the backward pass (P.17),
    where it reaches every weight below them.
    """

    def penalty(self, model) -> float:
        return float(sum(m.penalty for _, m in model.named_modules() if isinstance(m, ActivityL1)))

    def add_gradient(self, model) -> None:
        return None


def _sequential(model):
    if not isinstance(model, Sequential):
        raise ValidationError("model", "a refcomp.nn.Sequential", type(model).__name__)


def add_activation_l1(model, after, l1: float) -> Sequential:
    """A copy of ``model`` with an ActivityL1(l1) named ``<name>_l1`` after each named top-level layer."""
    _sequential(model)
    after = [after] if isinstance(after, str) else list(after)
    unknown = [n for n in after if n not in model.layers]
    if unknown:
        raise ValidationError("after", f"top-level layer names among {list(model.layers)}", f"unknown {unknown}")
    l1 = real(l1, "l1", low=0.0)
    items = []
    for name, layer in copy.deepcopy(model).layers.items():
        items.append((name, layer))
        if name in after:
            items.append((name + SUFFIX, ActivityL1(l1)))
    return Sequential(*items)


def remove_activation_l1(model) -> Sequential:
    """A copy of ``model`` without its ActivityL1 layers (the identity at inference)."""
    _sequential(model)
    return Sequential(*[(n, layer) for n, layer in copy.deepcopy(model).layers.items()
                        if not isinstance(layer, ActivityL1)])


def activation_sparsity(model, data, layers, *, batch_size: int = 256) -> dict:
    """{name: share of exact zeros in the outputs of that top-level layer} over ``data`` (eval mode)."""
    _sequential(model)
    layers = [layers] if isinstance(layers, str) else list(layers)
    zeros = {n: [0, 0] for n in layers}

    def count(name):
        def hook(module, inputs, output):
            zeros[name][0] += int(output.size - np.count_nonzero(output))
            zeros[name][1] += int(output.size)
        return hook

    try:
        hooks = [(model[n], count(n)) for n in layers]
    except KeyError as e:
        raise ValidationError("layers", f"top-level layer names among {list(model.layers)}", repr(e.args[0])) from None
    run_with_hooks(model, hooks, (xb for xb, _ in _calibration_batches(data, batch_size)))
    return {n: z / max(t, 1) for n, (z, t) in zeros.items()}


def train_activation_l1(model, train_set, *, after, l1: float, epochs: int = 1, lr: float = 0.01,
                        momentum: float = 0.9, weight_decay: float = 0.0, batch_size: int = 64, rng=0,
                        progress=False, val_data=None) -> tuple:
    """Train a copy of ``model`` with the activation L1 penalty after the layers ``after``: (model, report).

    The returned model has no ActivityL1 layers. report = {"history": train's records}.
    """
    gated = add_activation_l1(model, after, l1)
    sgd = SGD(gated.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    history = train(gated, train_set, epochs=epochs, batch_size=batch_size, optimizer=sgd,
                    regularizer=ActivationL1Penalty(), rng=rng, progress=progress, val_data=val_data)
    return remove_activation_l1(gated), {"history": history}
