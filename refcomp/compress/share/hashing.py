"""HashedNets on a model: each chosen layer's weight becomes K real weights shared by a hash.

Chen, Wilson, Tyree, Weinberger, Chen, "Compressing Neural Networks with the
Hashing Trick", ICML 2015 (arXiv:1504.04788). The virtual weights V_p =
ξ(p)·w_{h(p)} (H.1) and their gradient (H.2) are refcomp.formats.hashed's; this
module chooses K per layer and the starting real weights, and the layers then
train with refcomp.nn.train like any other (the Hashed format is trainable).

Starting weights, from a trained dense W of n weights (``init="project"``): the
least-squares fit min_w ‖V(w) − W‖²_F. Each V_p depends on one w_k and ξ² = 1,
so the normal equations decouple into one per bucket:

    w_k = (Σ_{p : h(p) = k} ξ(p)·W_p) / |{p : h(p) = k}|,   w_k = 0 for an empty bucket      (H.4)

(``init="random"``: w_k ~ U(−a, a) with a = √3·std(W), the layer's own
initial spread, for training from scratch as the paper does.)
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import numpy as np

from ...checks import integer, one_of, real
from ...errors import ValidationError
from ...formats.hashed import Hashed
from ...nn.module import as_rng
from ..prune.model import prunable_layers

__all__ = ["hash_weight", "hash_model"]

INITS = ("project", "random")


def hash_weight(weight, n_buckets: int, *, seed: int, init: str = "project", rng=None) -> Hashed:
    """weight (any shape, float32/64) as a Hashed of K = ``n_buckets`` real weights (H.1).

    init : "project" (H.4, the least-squares fit) or "random" (needs ``rng``).
    Returns Hashed(data (K,) in the weight's dtype, seed, shape).
    """
    w = np.asarray(weight)
    if w.dtype not in (np.float32, np.float64):
        raise ValidationError("weight", "a float32 or float64 array", f"dtype {w.dtype}")
    k = integer(n_buckets, "n_buckets", minimum=1, maximum=w.size)
    one_of(init, "init", INITS)
    h = Hashed(np.zeros(k, w.dtype), seed=seed, shape=w.shape)
    if init == "project":
        sums = np.bincount(h.buckets, weights=h.signs * w.ravel().astype(np.float64), minlength=k)
        counts = np.bincount(h.buckets, minlength=k)
        h.data[...] = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)      # (H.4)
    else:
        if rng is None:
            raise ValidationError("rng", "a numpy Generator or int seed for init='random'", None)
        a = np.sqrt(3.0) * float(np.std(w))
        h.data[...] = as_rng(rng).uniform(-a, a, size=k)
    return h


def hash_model(model, compression, *, seed: int, layers=None, init: str = "project", rng=None) -> tuple:
    """A copy of ``model`` whose chosen Linear / Conv2d layers hold Hashed weights, and a report.

    compression : the fraction c ∈ (0, 1] of real weights kept, K_l = max(1, round(c·n_l))
        for every chosen layer (the paper's "compression factor" 1/c), or {name: K}.
    seed : the layers' hash seeds are seed, seed + 1, ... in model order (one hash
        per layer, as the paper; recorded in the format and the report).
    layers : names (default: every Linear / Conv2d with a Dense weight, or the mapping's keys).
    Returns (model, {name: {"buckets", "virtual", "seed", "bytes", "dense_bytes", "fit_rmse"}});
    fit_rmse = sqrt(mean((V − W)²)) at the start. ``model`` is untouched.
    """
    seed = integer(seed, "seed", minimum=0)
    if isinstance(compression, Mapping):
        layers = list(compression) if layers is None else layers
    else:
        compression = real(compression, "compression", low=0, high=1, low_open=True)
    out = copy.deepcopy(model)
    chosen = prunable_layers(out, layers)
    if isinstance(compression, Mapping) and set(compression) != set(chosen):
        raise ValidationError("compression", f"one K for each of {list(chosen)}", sorted(compression))
    g = None if rng is None else as_rng(rng)
    report = {}
    for i, (name, layer) in enumerate(chosen.items()):
        w = layer.weight.to_dense()
        k = (compression[name] if isinstance(compression, Mapping)
             else max(1, int(round(compression * w.size))))
        hw = hash_weight(w, integer(k, f"compression[{name!r}]", minimum=1, maximum=w.size),
                         seed=seed + i, init=init, rng=g)
        d = hw.to_dense().astype(np.float64) - w
        report[name] = {"buckets": hw.n_buckets, "virtual": int(w.size), "seed": seed + i,
                        "bytes": hw.nbytes, "dense_bytes": int(w.nbytes),
                        "fit_rmse": float(np.sqrt(np.mean(d * d)))}
        layer.weight = hw
    return out, report
