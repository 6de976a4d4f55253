"""Prune-and-regrow during training (dynamic sparse training): SET and RigL.

A layer keeps a fixed number of active connections; every ΔT training steps
some are dropped and as many regrown elsewhere, so the sparsity never
changes while the connectivity moves. With n_l active weights in layer l
and an update fraction f:

    k = ⌊f · n_l + ½⌋
    drop:  the k active weights of smallest |w|                                         (P.6)
    grow (SET):  k connections drawn uniformly among the inactive ones                  (P.7)
    grow (RigL): the k inactive connections of largest |∂L/∂w| (dense gradient)         (P.8)
    f_t (RigL) = (α/2) · (1 + cos(π t / T_end))  for t < T_end, no update after         (P.9)

SET: Mocanu et al. 2018, "Scalable training of artificial neural networks with
adaptive sparse connectivity inspired by network science" (Nature
Communications 9:2383), the SET procedure of its Methods, constant ζ = f. Mocanu removes the ζ
smallest positive and ζ largest negative weights (the ones nearest zero on each
side); (P.6) removes the ζ nearest zero over both signs, the form RigL's
comparison uses. RigL: Evci, Gale, Menick, Castro, Elsen 2020, "Rigging the
Lottery: Making All Tickets Winners" (arXiv:1911.11134), §3 (the drop and
grow sets by ArgTopK, and the cosine update schedule f_decay).

"Inactive" at the grow step means inactive after the drop, so a connection
just dropped may come back (as in RigL's reference code). A regrown connection
that was inactive before the update starts at w = 0 (RigL §3: "newly
activated connections are initialised to zero", so the update does not change
the network's output); one dropped and regrown in the same update keeps its
value. Mocanu's SET draws new weights from the initial distribution; here
both start at 0 (a stated departure: one rule for both, the output unchanged
by the update). Ties go to the smaller flat index (masks.keep_top).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping

import numpy as np

from ...checks import bool_mask, float_array, integer, ratio, real, same_shape
from ...errors import ValidationError
from ...nn.losses import CrossEntropyLoss
from ...nn.module import as_rng
from ...nn.optim import SGD
from ...nn.train import train
from .masks import keep_top, n_pruned, unstructured_mask
from .model import MaskedOptimizer, apply_model_masks, prunable_layers

__all__ = ["drop_smallest", "set_update", "rigl_update", "cosine_fraction", "DynamicSparsity", "sparse_train"]


def _weight_and_mask(weight, mask):
    w = float_array(weight, "weight")
    return w, bool_mask(mask, w.shape, "mask")


def drop_smallest(weight, mask, k: int) -> np.ndarray:
    """The mask without its k active weights of smallest |w|  (P.6).

    weight : any shape, real; mask : bool of its shape (True = active); k : 0 ≤ k ≤ active.
    Returns a new bool mask with exactly active − k True.
    """
    w, m = _weight_and_mask(weight, mask)
    active = int(m.sum())
    k = integer(k, "k", minimum=0, maximum=active)
    # inactive entries score below every |w| so they are never "kept" by the drop
    return keep_top(np.where(m, np.abs(w.astype(np.float64)), -1.0), active - k)


def _grow(after_drop: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """after_drop plus the k inactive entries of highest score."""
    return after_drop | keep_top(np.where(after_drop, -np.inf, scores), k)


def set_update(weight, mask, zeta: float, rng) -> np.ndarray:
    """SET: drop the ⌊ζ·n + ½⌋ smallest-|w| active weights, regrow as many at random  (P.6, P.7).

    weight : any shape, real; mask : bool of its shape; zeta : ζ in [0, 1);
    rng : Generator or seed (the only randomness). Returns the new bool mask (same count of True).
    """
    w, m = _weight_and_mask(weight, mask)
    g = as_rng(rng)
    k = n_pruned(int(m.sum()), ratio(zeta, "zeta"))
    after = drop_smallest(w, m, k)
    # uniform random scores over the inactive entries: their top k are a uniform k-subset
    return _grow(after, g.random(w.shape), k)


def rigl_update(weight, mask, grad, fraction: float) -> np.ndarray:
    """RigL: drop the ⌊f·n + ½⌋ smallest-|w| active weights, regrow the inactive ones of largest |g|  (P.6, P.8).

    weight, grad : same shape, real (grad: the dense ∂L/∂w, inactive entries included);
    mask : bool of that shape; fraction : f in [0, 1). Returns the new bool mask.
    """
    w, m = _weight_and_mask(weight, mask)
    g = float_array(grad, "grad")
    same_shape(g, w.shape, "grad")
    k = n_pruned(int(m.sum()), ratio(fraction, "fraction"))
    return _grow(drop_smallest(w, m, k), np.abs(g.astype(np.float64)), k)


def cosine_fraction(step: int, alpha: float, t_end: int) -> float:
    """RigL's update fraction f_t = (α/2)(1 + cos(π t / T_end)) for t < T_end, else 0  (P.9)."""
    t = integer(step, "step", minimum=0)
    a = real(alpha, "alpha", low=0.0, high=1.0, high_open=True)
    t_end = integer(t_end, "t_end", minimum=1)
    return 0.5 * a * (1.0 + math.cos(math.pi * t / t_end)) if t < t_end else 0.0


class DynamicSparsity:
    """A refcomp.nn.train callback: every ``delta_t`` steps, drop and regrow each layer's connections.

    method : "set" (fraction ζ = ``alpha`` constant, random regrowth) or "rigl"
        (fraction :func:`cosine_fraction`, regrowth by the dense gradient of the
        batch about to be trained on). Updates stop at step ``t_end``.
    masks : {name: bool mask}, changed **in place** (so a MaskedOptimizer built on
        the same arrays follows) and set as each Dense weight's ``mask``.
    The update zeroes dropped weights and weights regrown from inactive (P.6–P.8);
    the MaskedOptimizer keeps their momentum at 0. ``history`` records (step, regrown per layer).
    RigL's gradient takes one extra forward and backward of the batch in the model's current
    mode (a BatchNorm in training mode sees that batch twice; Dropout draws twice).
    """

    def __init__(self, model, masks: Mapping, *, method: str = "rigl", alpha: float = 0.3, delta_t: int = 100,
                 t_end: int = 1, rng=0, loss=None):
        if method not in ("set", "rigl"):
            raise ValidationError("method", "'set' or 'rigl'", repr(method))
        self.layers = prunable_layers(model, list(masks))
        self.masks = {n: bool_mask(masks[n], l.weight.data.shape, f"masks[{n!r}]") for n, l in self.layers.items()}
        self.model, self.method = model, method
        self.alpha = real(alpha, "alpha", low=0.0, high=1.0, high_open=True)
        self.delta_t = integer(delta_t, "delta_t", minimum=1)
        self.t_end = integer(t_end, "t_end", minimum=1)
        self.rng, self.loss = as_rng(rng), loss or CrossEntropyLoss()
        self.step, self.history = 0, []
        for n, l in self.layers.items():
            l.weight.mask = self.masks[n]

    def _dense_gradients(self, x, y) -> dict:
        self.model.zero_grad()
        self.loss.forward(self.model.forward(x), y)
        self.model.backward(self.loss.backward())
        grads = {n: l.weight.grad.copy() for n, l in self.layers.items()}
        self.model.zero_grad()
        return grads

    def on_batch_start(self, x, y) -> None:
        t, self.step = self.step, self.step + 1
        if t == 0 or t % self.delta_t or t >= self.t_end:
            return
        f = self.alpha if self.method == "set" else cosine_fraction(t, self.alpha, self.t_end)
        grads = self._dense_gradients(x, y) if self.method == "rigl" else None
        moved = {}
        for n, layer in self.layers.items():
            old, w = self.masks[n], layer.weight.data
            new = (set_update(w, old, f, self.rng) if grads is None else rigl_update(w, old, grads[n], f))
            w[~new | (new & ~old)] = 0     # dropped, and regrown from inactive: start at 0
            moved[n] = int((new & ~old).sum())
            old[...] = new
        self.history.append((t, moved))


def sparse_train(model, train_set, *, method: str = "rigl", sparsity, epochs: int = 1, alpha: float = 0.3,
                 delta_t: int = 100, t_end_fraction: float = 0.75, init: str = "magnitude", layers=None,
                 lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 0.0, batch_size: int = 64,
                 rng=0, progress=False, val_data=None) -> tuple:
    """Train a sparse copy of ``model`` with SET or RigL updates: (model, report).

    sparsity : one ratio for every chosen layer (uniform distribution), or {name: ratio}.
    init : "magnitude" (start from the mask of the largest |w|, for a trained model)
        or "random" (a uniform random mask, the papers' start from scratch).
    t_end_fraction : updates stop after this share of the steps (RigL: 0.75).
    report = {"masks", "updates": DynamicSparsity.history, "history": train's records}.
    ``model`` is untouched; the copy's layers hold their (final) masks.
    """
    out = copy.deepcopy(model)
    g = as_rng(rng)
    chosen = prunable_layers(out, list(sparsity) if isinstance(sparsity, Mapping) else layers)
    ratios = ({n: ratio(sparsity[n], f"sparsity[{n!r}]") for n in chosen} if isinstance(sparsity, Mapping)
              else {n: ratio(sparsity, "sparsity") for n in chosen})
    if init not in ("magnitude", "random"):
        raise ValidationError("init", "'magnitude' or 'random'", repr(init))
    masks = {n: unstructured_mask(np.abs(l.weight.data) if init == "magnitude" else g.random(l.weight.data.shape),
                                  ratios[n]) for n, l in chosen.items()}
    apply_model_masks(out, masks)
    epochs = integer(epochs, "epochs", minimum=1)
    steps = epochs * math.ceil(len(train_set[0]) / integer(batch_size, "batch_size", minimum=1))
    t_end = max(1, int(real(t_end_fraction, "t_end_fraction", low=0.0, high=1.0) * steps))
    cb = DynamicSparsity(out, masks, method=method, alpha=alpha, delta_t=delta_t, t_end=t_end, rng=g)
    opt = MaskedOptimizer(SGD(out.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay), out, cb.masks)
    history = train(out, train_set, epochs=epochs, batch_size=batch_size, optimizer=opt, rng=g, callbacks=[cb],
                    progress=progress, val_data=val_data)
    return out, {"masks": {n: m.copy() for n, m in cb.masks.items()}, "updates": cb.history, "history": history}
