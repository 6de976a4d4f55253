"""Trained quantization of a model: k-means weight sharing per layer, then centroid fine-tuning.

Deep Compression (Han, Mao, Dally 2016, arXiv:1510.00149) §3: the surviving
weights of each layer are clustered into k = 2^b shared values (D.13–D.15,
refcomp.compress.share.cluster), and the shared values are then trained: a weight
W_ij is tied to its centroid c_{I_ij}, so

    ∂L/∂c_k = Σ_{i,j} ∂L/∂W_ij · 1(I_ij = k)          (D.16; paper eq. 3)

and one step of SGD with momentum μ updates the codebook, never the indices:

    v_k ← μ·v_k + ∂L/∂c_k,   c_k ← c_k − η·v_k,   W_ij ← c_{I_ij} · mask_ij      (D.17)

Pruned weights (mask False) are not clustered, contribute no gradient and stay 0.
Parameters that are not shared weights (biases, any layer left unclustered) keep
training with plain SGD + momentum at the same learning rate, as in the paper's
Caffe fine-tuning, which trains every remaining parameter.

Both transforms take a model and return a new one with a report, the input
untouched: :func:`cluster_model` gives a model whose clustered layers hold a
refcomp.formats.Clustered weight, :func:`finetune_centroids` trains those
codebooks inside refcomp.nn.train (the layer computes dL/dW of the shared
weight as of any weight; :class:`CentroidOptimizer` turns it into (D.16, D.17)).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import numpy as np

from ...checks import bool_mask, integer
from ...errors import ValidationError
from ...formats.clustered import Clustered
from ...nn.layers import Conv2d, Linear
from ...nn.optim import SGD
from ...nn.train import train
from ..prune.model import prunable_layers
from .cluster import centroid_gradients, cluster_weight

__all__ = ["cluster_model", "clustered_layers", "CentroidOptimizer", "finetune_centroids"]


def _per_layer(value, names, argument):
    if isinstance(value, Mapping):
        unknown = [n for n in value if n not in names]
        if unknown:
            raise ValidationError(argument, f"layer names among {list(names)}", f"unknown {unknown}")
        return dict(value)
    return {n: value for n in names}


def cluster_model(model, bits, *, masks: Mapping | None = None, layers=None, init: str = "linear",
                  rng=None, max_iter: int = 100) -> tuple:
    """k-means weight sharing of each chosen layer: a copy of ``model`` whose layers hold Clustered weights.

    bits : one width for all layers or {name: bits} (1…8; the chosen layers are
        then the mapping's keys).
    masks : {name: bool mask}; default: the layer's non-zero weights (a pruned model).
    Returns (model, report): the chosen layers of the copy hold a
    refcomp.formats.Clustered (codebook, indices, mask; codebook[indices]·mask is
    the weight); report {name: {"bits", "clusters", "kept", "sse"}}, sse the
    within-cluster squared error of the kept weights. ``model`` is untouched.
    """
    if layers is None and isinstance(bits, Mapping):
        layers = list(bits)
    out = copy.deepcopy(model)
    chosen = prunable_layers(out, layers)
    widths = _per_layer(bits, list(chosen), "bits")
    report = {}
    for name, layer in chosen.items():
        w = layer.weight.data
        b = integer(widths[name], f"bits[{name!r}]", minimum=1, maximum=8)
        if masks is not None and name in masks:
            mk = bool_mask(masks[name], w.shape, f"masks[{name!r}]")
        else:
            mk = w != 0
        if not mk.any():
            raise ValidationError(f"masks[{name!r}]", "at least one kept weight to cluster", "all pruned")
        c = cluster_weight(w, b, mask=mk, init=init, rng=rng, max_iter=max_iter)
        d = c.to_dense() - w
        report[name] = {"bits": b, "clusters": int(c.codebook.size), "kept": int(mk.sum()),
                        "sse": float(np.sum(d.astype(np.float64) ** 2))}
        layer.weight = c
    return out, report


def clustered_layers(model) -> dict:
    """{name: layer} of the Linear / Conv2d layers of ``model`` whose weight is a Clustered, in model order."""
    return {name: m for name, m in model.named_modules()
            if isinstance(m, (Linear, Conv2d)) and isinstance(m.weight, Clustered)}


class CentroidOptimizer:
    """The optimizer of trained quantization: shared centroids by (D.16, D.17), the rest by SGD.

    step(): for every layer holding a Clustered weight, that weight's gradient
    dL/dW (which the layer's backward computes as for any weight) is summed per
    centroid (D.16) and the codebook takes one SGD-with-momentum step with its
    own float64 velocity (D.17); a codebook several layers share (cross_layer) sums
    their gradients and takes one step; indices and mask never change, so the layer
    computes with the new shared values at once. Then every other parameter
    (biases, unclustered layers) takes an SGD step with the same lr and
    momentum. A layer whose weight got no gradient is left as it is.
    """

    def __init__(self, model, *, lr: float, momentum: float = 0.9):
        self.layers = clustered_layers(model)
        if not self.layers:
            raise ValidationError("model", "layers holding Clustered weights (from cluster_model)", "none")
        self.lr, self.momentum = lr, momentum
        shared_ids = {id(layer.weight) for layer in self.layers.values()}
        others = [p for p in model.parameters() if id(p) not in shared_ids]
        self.others = SGD(others, lr=lr, momentum=momentum) if others else None
        # layers sharing one codebook array (cross_layer.cluster_shared) form one group: one velocity
        self.groups: dict[int, list[Clustered]] = {}
        for layer in self.layers.values():
            self.groups.setdefault(id(layer.weight.codebook), []).append(layer.weight)
        self.velocity = {key: np.zeros(shared[0].codebook.shape, np.float64) for key, shared in self.groups.items()}

    def step(self) -> None:
        for key, shared in self.groups.items():
            got = [c for c in shared if c.grad is not None]
            if not got:
                continue
            # (D.16), summed over every layer tied to this codebook (cross_layer eq. X.2)
            cg = sum(centroid_gradients(c.grad, c.indices, c.codebook.size, mask=c.mask) for c in got)
            v = self.velocity[key]
            v *= self.momentum
            v += cg
            # (D.17), in place so every layer sharing the array sees it; NumPy casts the float64 step
            # to the codebook's dtype once, after the subtraction
            shared[0].codebook -= self.lr * v
        if self.others is not None:
            self.others.lr = self.lr
            self.others.step()


class _OnEpoch:
    def __init__(self, fn):
        self.on_epoch_end = fn


def finetune_centroids(model, train_set, *, epochs: int = 1, lr: float = 1e-3, momentum: float = 0.9,
                       batch_size: int = 64, rng=0, on_epoch=None) -> tuple:
    """Train the shared centroids (D.16, D.17) and every other parameter by SGD: a new model and its history.

    model : with Clustered weights (from :func:`cluster_model`); it is copied, not changed.
    lr : step for the centroids *and* the other parameters, constant. A
        centroid's gradient is the sum over its cluster (hundreds of weights),
        so lr is usually ~10× below the dense training rate.
    on_epoch : optional callable given each epoch's record.
    Returns (model, history): the copy with trained codebooks (indices and
    masks unchanged) and refcomp.nn.train's records (epoch, lr, loss, accuracy
    on the training batches, seconds).

    The loop is refcomp.nn.train with a :class:`CentroidOptimizer`.
    """
    epochs = integer(epochs, "epochs", minimum=0)
    out = copy.deepcopy(model)
    shared = [layer.weight for layer in clustered_layers(out).values()]
    optimizer = CentroidOptimizer(out, lr=lr, momentum=momentum)
    history = []
    if epochs:
        x, y = train_set
        for c in shared:  # the layers compute dL/dW for these while they train
            c.trainable = True
        try:
            history = train(out, (np.asarray(x), np.asarray(y)), epochs=epochs, batch_size=batch_size,
                            optimizer=optimizer, schedule=None, rng=rng, progress=False,
                            callbacks=[_OnEpoch(on_epoch)] if on_epoch is not None else ())
        finally:
            for c in shared:
                c.trainable = False
    out.zero_grad()
    out.eval()
    return out, history
