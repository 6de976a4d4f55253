"""Pruning a whole refcomp.nn model: criteria × granularity × scope on named layers.

The array-level pieces (criteria, masks, schedules) live next door; this
module feeds them from a model and keeps the masks in force while it trains:

    scores_l = criterion(W_l [, calibration data])          (D.1–D.6)
    masks    = granularity(scores, ratio per layer | one global ratio)   (D.7–D.11)
    W_l     ← W_l ⊙ mask_l                                 and kept so by MaskedOptimizer

Layers are addressed by their dotted module names (``"fc1"``, ``"conv2"``);
only Linear and Conv2d layers with a Dense (trainable float) weight are
prunable. Masks are dicts name -> bool array of the weight's shape.

The transforms (:func:`prune_model`, :func:`masked_fine_tune`,
:func:`prune_with_schedule`) take a model and return a new one with a report,
the input untouched. A pruned layer of the result holds a *masked Dense*
(refcomp.formats.Dense with ``mask``): its weight and its mask travel
together, into training (MaskedOptimizer reads the masks from the weights)
and into files; refcomp.compress.prune.deploy.to_csr turns it into a
CSRMatrix for inference. :func:`apply_model_masks` is the in-place building
block they use on their own copies.

Fine-tuning with masks (Han et al. 2015, arXiv:1506.02626, §3): a removed
connection must not come back. :class:`MaskedOptimizer` wraps any refcomp.nn
optimizer and, at every step, zeroes the masked gradient entries *before* the
update (so momentum / Adam moments never see them) and the masked weight and
optimizer-state entries *after* it (so nothing can drift back).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import numpy as np

from ...checks import bool_mask, integer, ratio
from ...errors import ShapeError, ValidationError
from ...formats.dense import Dense
from ...nn.layers import Conv2d, Linear
from ...nn.losses import CrossEntropyLoss
from ...nn.module import run_with_hooks
from ...nn.optim import SGD, Wrapped
from ...nn.schedules import CosineLR
from ...nn.train import train
from .apply import apply_mask
from .criteria import (activation_importance, gradient_magnitude, grasp, grasp_keep_scores, magnitude, snip,
                       structure_norms, taylor_first_order)
from .gradflow import hessian_gradient_product
from .masks import global_masks, nm_mask, unstructured_mask
from .schedules import Schedule

__all__ = [
    "CRITERIA",
    "GRANULARITIES",
    "prunable_layers",
    "layer_scores",
    "model_masks",
    "apply_model_masks",
    "prune_model",
    "weight_masks",
    "model_sparsity",
    "MaskedOptimizer",
    "masked_fine_tune",
    "prune_with_schedule",
]

CRITERIA = ("magnitude", "activation", "taylor", "snip", "gradient", "grasp")
GRANULARITIES = ("unstructured", "nm", "block", "row", "channel")


def prunable_layers(model, names=None) -> dict:
    """{name: layer} of the Linear / Conv2d layers of ``model`` with a Dense weight, in model order.

    names : optional iterable of layer names to restrict to; an unknown or
        non-prunable name raises ValidationError listing the valid ones.
    """
    if not hasattr(model, "named_modules"):
        raise ValidationError("model", "a refcomp.nn.Module", type(model).__name__)
    found = {name: m for name, m in model.named_modules()
             if isinstance(m, (Linear, Conv2d)) and isinstance(m.weight, Dense)}
    if names is None:
        return found
    if isinstance(names, str):
        names = [names]
    names = list(names)
    unknown = [n for n in names if n not in found]
    if unknown:
        raise ValidationError("layers", f"names of prunable layers among {list(found)}", f"unknown {unknown}")
    return {n: found[n] for n in names}


def _calibration_batches(data, batch_size: int):
    """(x, y) -> list of (xb, yb); a list of (xb, yb) pairs is used as is."""
    if isinstance(data, list):
        if not data:
            raise ValidationError("data", "calibration batches (x, y)", "an empty list")
        return data
    if not (isinstance(data, tuple) and len(data) == 2):
        raise ValidationError("data", "calibration data (x, y) or a list of (x, y) batches",
                              type(data).__name__)
    x, y = np.asarray(data[0]), np.asarray(data[1])
    if len(x) == 0 or len(x) != len(y):
        raise ShapeError("data", "x and y of the same non-zero length", (len(x), len(y)))
    return [(x[s:s + batch_size], y[s:s + batch_size]) for s in range(0, len(x), batch_size)]


def _layer_inputs(model, layers: dict, batches) -> dict:
    """Inputs seen by each layer over the calibration batches (eval mode), by name, via forward hooks."""
    seen = {name: [] for name in layers}

    def capture(name):
        def hook(module, inputs, output):
            seen[name].append(np.array(inputs[0], copy=True))
        return hook

    run_with_hooks(model, [(layer, capture(name)) for name, layer in layers.items()], (xb for xb, _ in batches))
    return seen


def _weight_gradients(model, layers: dict, batches, loss=None) -> dict:
    """Per-batch ∂L/∂W of each layer (cross-entropy on the calibration labels)."""
    loss = loss or CrossEntropyLoss()
    grads = {name: [] for name in layers}
    was = model.training
    model.eval()  # calibration must not move BatchNorm statistics
    try:
        for xb, yb in batches:
            model.zero_grad()
            z = model.forward(xb)
            loss.forward(z, yb)
            model.backward(loss.backward())
            for name, layer in layers.items():
                g = layer.weight.grad
                grads[name].append(np.zeros_like(layer.weight.data) if g is None else g.copy())
    finally:
        model.zero_grad()
        model.train(was)
    return grads


def layer_scores(model, criterion: str = "magnitude", *, layers=None, data=None,
                 batch_size: int = 256) -> dict:
    """Element-wise importance of every weight of the chosen layers: {name: scores}.

    criterion : "magnitude" |w| (D.1); "activation" mean |x·w| over ``data`` (D.3);
        "taylor" mean |w·∂L/∂w| over the batches of ``data`` (D.4); "snip"
        |w·∂L/∂w| normalised over all chosen layers together (D.6); "gradient"
        |∂L/∂w| of the mean loss over the batches (P.1); "grasp" GraSP's −θ⊙Hg (P.2,
        Hg by finite differences of gradients, P.3) turned into keep-scores max S − S,
        so the weights with the largest S are removed (global scope is GraSP's).
    data : (x, y) calibration set (or a list of (x, y) batches) for the
        data-driven criteria; cut into ``batch_size`` batches.
    """
    if criterion not in CRITERIA:
        raise ValidationError("criterion", f"one of {CRITERIA}", repr(criterion))
    chosen = prunable_layers(model, layers)
    if not chosen:
        raise ValidationError("model", "at least one Linear/Conv2d layer with a Dense weight", "none")
    if criterion == "magnitude":
        return {n: magnitude(l.weight.data) for n, l in chosen.items()}
    if data is None:
        raise ValidationError("data", f"calibration data (x, y) for criterion={criterion!r}", None)
    batches = _calibration_batches(data, integer(batch_size, "batch_size", minimum=1))
    if criterion == "activation":
        inputs = _layer_inputs(model, chosen, batches)
        out = {}
        for n, l in chosen.items():
            kw = {}
            if l.weight.data.ndim == 4:
                if l.groups != 1:
                    raise ValidationError("criterion", "a criterion other than 'activation' for grouped convs",
                                          f"{n} has groups={l.groups}")
                kw = dict(stride=l.stride, padding=l.padding, dilation=l.dilation)
            out[n] = activation_importance(l.weight.data, inputs[n], **kw)
        return out
    if criterion == "grasp":
        _, hg = hessian_gradient_product(model, chosen, batches)
        return grasp_keep_scores({n: grasp(l.weight.data, hg[n]) for n, l in chosen.items()})
    grads = _weight_gradients(model, chosen, batches)
    if criterion == "gradient":
        return {n: gradient_magnitude(l.weight.data, grads[n]) for n, l in chosen.items()}
    if criterion == "taylor":
        return {n: taylor_first_order(l.weight.data, grads[n]) for n, l in chosen.items()}
    mean_grads = {n: np.mean(np.stack(grads[n]), axis=0) for n in chosen}
    return snip({n: l.weight.data for n, l in chosen.items()}, mean_grads)


def _structure_scores(scores: np.ndarray, granularity: str, block_shape, norm: int) -> np.ndarray:
    """Score of each structure: the L1 (sum) or L2 norm of its element scores (D.2)."""
    if granularity == "row":
        return structure_norms(scores, "row", ord=norm)
    if granularity == "channel":
        return structure_norms(scores, "channel", ord=norm)
    s2 = scores.reshape(scores.shape[0], -1)
    return structure_norms(s2, "block", ord=norm, block_shape=block_shape)


def _expand(keep: np.ndarray, granularity: str, shape, block_shape) -> np.ndarray:
    if granularity == "row":
        return np.broadcast_to(keep.reshape((-1,) + (1,) * (len(shape) - 1)), shape).copy()
    if granularity == "channel":
        return np.broadcast_to(keep.reshape((1, -1) + (1,) * (len(shape) - 2)), shape).copy()
    bh, bw = block_shape
    return np.repeat(np.repeat(keep, bh, axis=0), bw, axis=1).reshape(shape)


def _ratios(sparsity, names, scope: str) -> dict:
    if isinstance(sparsity, Mapping):
        if scope == "global":
            raise ValidationError("sparsity", "one ratio for scope='global'", "a per-layer mapping")
        unknown = [n for n in sparsity if n not in names]
        if unknown:
            raise ValidationError("sparsity", f"layer names among {list(names)}", f"unknown {unknown}")
        return {n: ratio(sparsity.get(n, 0.0), f"sparsity[{n!r}]") for n in names}
    r = ratio(sparsity, "sparsity")
    return {n: r for n in names}


def model_masks(scores: Mapping, sparsity=0.0, *, granularity: str = "unstructured", scope: str = "layer",
                n: int | None = None, m: int | None = None, block_shape=(1, 4), norm: int = 1,
                previous: Mapping | None = None) -> dict:
    """Masks {name: bool array} from element scores {name: array of the weight's shape}.

    granularity : "unstructured" (D.7) | "nm" (``n`` kept of every ``m`` along
        the input axis, D.8; ``sparsity`` unused) | "block" (``block_shape`` tiles
        of the (out, in·kh·kw) matrix, D.9) | "row" (neurons / filters) |
        "channel" (input channels) (D.10); structures are scored by the L``norm``
        norm of their element scores.
    scope : "layer" (each layer its ratio; ``sparsity`` a float or {name: ratio},
        missing names stay dense) | "global" (one ratio, one threshold across the
        layers, D.11).
    previous : masks already in force; a removed weight stays removed (its
        score is put below every real score), so masks only shrink.
    """
    if granularity not in GRANULARITIES:
        raise ValidationError("granularity", f"one of {GRANULARITIES}", repr(granularity))
    if scope not in ("layer", "global"):
        raise ValidationError("scope", "'layer' or 'global'", repr(scope))
    if not isinstance(scores, Mapping) or not scores:
        raise ValidationError("scores", "a non-empty mapping name -> scores", type(scores).__name__)
    s = {k: np.asarray(v, dtype=np.float64).copy() for k, v in scores.items()}
    if previous is not None:
        for k, pm in previous.items():
            if k not in s:
                raise ValidationError("previous", f"layer names among {list(s)}", f"unknown {k!r}")
            s[k][~bool_mask(pm, s[k].shape, f"previous[{k!r}]")] = -1.0  # scores are >= 0
    if granularity == "nm":
        if n is None or m is None:
            raise ValidationError("n, m", "both given for granularity='nm'", (n, m))
        masks = {k: nm_mask(v, n, m, axis=1) for k, v in s.items()}
    else:
        ratios = _ratios(sparsity, list(s), scope)
        if granularity == "unstructured":
            if scope == "global":
                masks = global_masks(s, ratios[next(iter(s))])
            else:
                masks = {k: unstructured_mask(v, ratios[k]) for k, v in s.items()}
        else:
            if granularity == "block" and not (isinstance(block_shape, (tuple, list)) and len(block_shape) == 2):
                raise ValidationError("block_shape", "a pair (bh, bw)", repr(block_shape))
            st = {k: _structure_scores(np.maximum(v, 0), granularity, block_shape, norm) for k, v in s.items()}
            if previous is not None:  # a structure with a removed element counts as removed
                for k, pm in previous.items():
                    dead = _structure_scores((~np.asarray(pm)).astype(np.float64), granularity, block_shape, 1)
                    st[k][dead > 0] = -1.0
            if scope == "global":
                keep = global_masks(st, ratios[next(iter(st))])
            else:
                keep = {k: unstructured_mask(v, ratios[k]) for k, v in st.items()}
            masks = {k: _expand(keep[k], granularity, s[k].shape, block_shape) for k in s}
    if previous is not None:
        masks = {k: v & np.asarray(previous[k]) if k in previous else v for k, v in masks.items()}
    return masks


def apply_model_masks(model, masks: Mapping) -> None:
    """W_l ← W_l ⊙ mask_l in place for every named layer (gradients too, if any); the weight keeps mask_l.

    The in-place building block of the transforms below, which call it on their
    own copies: afterwards each named layer holds a masked Dense (a copy of its mask).
    """
    chosen = prunable_layers(model, list(masks))
    for name, layer in chosen.items():
        mk = bool_mask(masks[name], layer.weight.data.shape, f"masks[{name!r}]")
        apply_mask(layer.weight.data, mk)
        if layer.weight.grad is not None:
            apply_mask(layer.weight.grad, mk)
        layer.weight.mask = mk.copy()


def _prune(model, sparsity, *, criterion, granularity, scope, layers, data, previous, **mask_kw) -> dict:
    """Score, mask and zero the chosen layers of ``model`` in place; return the masks."""
    if layers is None and isinstance(sparsity, Mapping):
        layers = list(sparsity)
    scores = layer_scores(model, criterion, layers=layers, data=data)
    masks = model_masks(scores, sparsity, granularity=granularity, scope=scope, previous=previous, **mask_kw)
    apply_model_masks(model, masks)
    return masks


def weight_masks(model) -> dict:
    """{name: mask} of the prunable layers whose Dense weight holds a pruning mask."""
    return {name: layer.weight.mask for name, layer in prunable_layers(model).items()
            if layer.weight.mask is not None}


def prune_model(model, sparsity=0.0, *, criterion: str = "magnitude", granularity: str = "unstructured",
                scope: str = "layer", layers=None, data=None, previous=None, **mask_kw) -> tuple:
    """Score and mask the chosen layers: a pruned copy of ``model`` and a report.

    ``sparsity`` as in :func:`model_masks` (a {name: ratio} mapping chooses the
    layers when ``layers`` is None); other keywords go to :func:`model_masks`.
    Returns (model, report): the copy's pruned layers hold masked Dense weights
    (zero where pruned); report = {"masks": {name: mask}, "sparsity":
    :func:`model_sparsity` of the copy}. ``model`` is untouched.
    """
    out = copy.deepcopy(model)
    masks = _prune(out, sparsity, criterion=criterion, granularity=granularity, scope=scope, layers=layers,
                   data=data, previous=previous, **mask_kw)
    return out, {"masks": masks, "sparsity": model_sparsity(out, masks)}


def model_sparsity(model, masks: Mapping | None = None) -> dict:
    """{name: fraction of zero weights} per prunable layer and "total" over them."""
    chosen = prunable_layers(model, None if masks is None else list(masks))
    out, zeros, size = {}, 0, 0
    for name, layer in chosen.items():
        w = layer.weight.data
        z = int(w.size - np.count_nonzero(w))
        out[name] = z / w.size
        zeros, size = zeros + z, size + w.size
    out["total"] = zeros / size if size else 0.0
    return out


class MaskedOptimizer(Wrapped):
    """Wraps a refcomp.nn optimizer so pruned weights, their gradients and its state stay 0.

    step():  g[~mask] = 0;  inner.step();  W[~mask] = 0;  every state array of W: s[~mask] = 0   (D.23)
    masks : {name: mask}; default: the masks the model's Dense weights hold.
    Zeroing by assignment, not multiplication: NaN/inf cannot survive in a pruned slot.
    ``lr`` reads and writes the inner optimizer's (so refcomp.nn.train's schedules work).
    """

    def __init__(self, optimizer, model, masks: Mapping | None = None):
        if not hasattr(optimizer, "step") or not hasattr(optimizer, "state"):
            raise ValidationError("optimizer", "a refcomp.nn optimizer", type(optimizer).__name__)
        if masks is None:  # the masks the weights hold (masked Dense)
            masks = weight_masks(model)
        chosen = prunable_layers(model, list(masks))
        self.inner = optimizer
        self.pairs = [(layer.weight, bool_mask(masks[name], layer.weight.data.shape, f"masks[{name!r}]"))
                      for name, layer in chosen.items()]
        managed = {id(p) for p in optimizer.params}
        missing = [name for name, layer in chosen.items() if id(layer.weight) not in managed]
        if missing:
            raise ValidationError("optimizer", "an optimizer over the masked layers' weights", f"missing {missing}")

    def step(self) -> None:
        for p, mk in self.pairs:
            if p.grad is not None:
                p.grad[~mk] = 0
        self.inner.step()
        for p, mk in self.pairs:
            p.data[~mk] = 0
            for buf in self.inner.state.get(id(p), {}).values():
                if isinstance(buf, np.ndarray) and buf.shape == mk.shape:
                    buf[~mk] = 0


def masked_fine_tune(model, train_set, *, masks: Mapping | None = None, epochs: int = 1, lr: float = 0.01,
                     momentum: float = 0.9, batch_size: int = 64, rng=0, schedule="cosine",
                     progress=False, val_data=None, loss=None) -> tuple:
    """Retrain the surviving connections: refcomp.nn.train with a :class:`MaskedOptimizer` (SGD).

    masks : default: the masks the model's weights hold (from :func:`prune_model`).
    loss : refcomp.nn.train's (default cross-entropy).
    Returns (model, history): a retrained copy whose pruned layers hold their
    masks, and refcomp.nn.train's records. ``model`` is untouched.
    """
    out = copy.deepcopy(model)
    masks = weight_masks(out) if masks is None else masks
    apply_model_masks(out, masks)
    opt = MaskedOptimizer(SGD(out.parameters(), lr=lr, momentum=momentum), out, masks)
    history = train(out, train_set, epochs=epochs, batch_size=batch_size, optimizer=opt, schedule=schedule,
                    rng=rng, progress=progress, val_data=val_data, loss=loss)
    return out, history


def prune_with_schedule(model, schedule, train_set, *, epochs: int, sparsity_of_layer=None,
                        criterion: str = "magnitude", granularity: str = "unstructured", scope: str = "layer",
                        layers=None, calibration=None, lr: float = 0.01, momentum: float = 0.9,
                        weight_decay: float = 0.0, batch_size: int = 64, rng=0, callback=None,
                        regularizer=None, **mask_kw) -> tuple:
    """Prune while training, one schedule step per epoch (OneShot, Iterative or Cubic).

    At each epoch t that ``schedule.is_pruning_step(t)``, the masks are recomputed
    at sparsity s_t = ``schedule.sparsity(t)`` (times the per-layer factor
    ``sparsity_of_layer[name] / max`` when per-layer targets are given, so every
    layer reaches its own target at the schedule's end), keeping removed weights
    removed; then one epoch of masked fine-tuning (SGD with ``momentum`` and
    L2 ``weight_decay``) runs with lr decayed by a cosine over ``epochs``.
    ``regularizer`` (a refcomp.nn.regularizers object) is added in each retraining epoch.
    ``callback(epoch, masks)`` is called after each epoch. Returns (model, report):
    the pruned and retrained copy, its pruned layers holding their masks, and
    {"masks": the final masks}. ``model`` is untouched.
    """
    if not isinstance(schedule, Schedule):
        raise ValidationError("schedule", "a refcomp.compress.prune Schedule", type(schedule).__name__)
    epochs = integer(epochs, "epochs", minimum=1)
    model = copy.deepcopy(model)
    g = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    chosen = prunable_layers(model, layers if sparsity_of_layer is None else list(sparsity_of_layer))
    masks = {n: np.ones(l.weight.data.shape, dtype=bool) for n, l in chosen.items()}
    cosine = CosineLR(lr, epochs)
    opt = None
    for t in range(epochs):
        if schedule.is_pruning_step(t):
            s = schedule.sparsity(t)
            if sparsity_of_layer is not None:
                top = max(sparsity_of_layer.values())
                target = {n: (s * r / top if top > 0 else 0.0) for n, r in sparsity_of_layer.items()}
            else:
                target = s
            scores = layer_scores(model, criterion, layers=list(chosen), data=calibration)
            masks = model_masks(scores, target, granularity=granularity, scope=scope, previous=masks, **mask_kw)
            apply_model_masks(model, masks)
            # a fresh optimizer keeps no momentum from before the new mask
            opt = MaskedOptimizer(SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay),
                                  model, masks)
        if opt is None:
            opt = MaskedOptimizer(SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay),
                                  model, masks)
        opt.lr = float(cosine(t))
        train(model, train_set, epochs=1, batch_size=batch_size, optimizer=opt, schedule=None, rng=g,
              progress=False, regularizer=regularizer)
        if callback is not None:
            callback(t, masks)
    return model, {"masks": masks}
