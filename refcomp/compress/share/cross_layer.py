"""Weight sharing across layers: one k-means codebook for a group of layers.

Deep Compression shares k = 2^b values within a layer (D.13). Sharing one
codebook among the layers of a group G stores k floats once instead of |G|
times; the k-means objective (D.13) simply runs over the union of the
group's kept weights:

    argmin_C Σ_{l∈G} Σ_{w ∈ W_l kept} min_j |w − c_j|²                          (X.1)

Each layer of the group then holds a refcomp.formats.Clustered whose
``codebook`` attribute *is* the group's one array (the same object), so a change
of a centroid changes every layer that uses it. Fine-tuning (D.16) sums the
gradient of a centroid over every weight tied to it, in every layer:

    ∂L/∂c_k = Σ_{l∈G} Σ_{i,j} ∂L/∂W^(l)_ij · 1(I^(l)_ij = k)                      (X.2)

which refcomp.compress.share.trained_quantization.CentroidOptimizer does for
codebooks held by several layers (one velocity per codebook). Sizes:
:func:`shared_model_bytes` counts each codebook once. A model file stores a
Clustered per layer (the codebook once per layer, loaded as separate arrays):
the sharing is a training-time and size-accounting fact, not a file one.
"""

from __future__ import annotations

import copy

import numpy as np

from ...checks import bool_mask, integer
from ...errors import ValidationError
from ...formats.clustered import Clustered
from ...nn.module import Parameter
from ..prune.model import prunable_layers
from .cluster import assign, kmeans

__all__ = ["cluster_shared", "codebook_groups", "shared_model_bytes"]


def cluster_shared(model, groups, bits: int, *, masks=None, init: str = "linear", rng=None,
                   max_iter: int = 100) -> tuple:
    """k-means (X.1) over each group's layers at once: a copy of ``model`` whose grouped layers share a codebook.

    groups : a list of lists of layer names (Linear / Conv2d with Dense weights), each
        name in one group at most; a group of one is ordinary per-layer sharing.
    bits : 1…8, k = 2^bits centroids per group.  masks : {name: bool mask}; default
        the non-zero weights.  init, rng, max_iter : as refcomp.compress.share.cluster.kmeans.
    Returns (model, report): report {"groups": [{"layers", "bits", "kept", "sse",
    "codebook_bytes"}]}, sse the squared error of the kept weights (X.1) summed over the
    group. ``model`` is untouched.
    """
    b = integer(bits, "bits", minimum=1, maximum=8)
    if isinstance(groups, (str, bytes)) or not all(isinstance(g, (list, tuple)) and g for g in groups):
        raise ValidationError("groups", "a list of non-empty lists of layer names", repr(groups))
    names = [n for g in groups for n in g]
    if len(set(names)) != len(names):
        raise ValidationError("groups", "each layer in one group at most", repr(groups))
    out = copy.deepcopy(model)
    chosen = prunable_layers(out, names)
    report = {"groups": []}
    for group in groups:
        weights, kept = [], []
        for name in group:
            w = chosen[name].weight.to_dense()
            if masks is not None and name in masks:
                kept.append(bool_mask(masks[name], w.shape, f"masks[{name!r}]"))
            else:
                kept.append(w != 0)
            weights.append(w)
        if len({w.dtype for w in weights}) != 1:
            raise ValidationError("groups", "layers of one float dtype per group", repr(group))
        values = np.concatenate([w[m] for w, m in zip(weights, kept)])
        if values.size == 0:
            raise ValidationError("masks", f"at least one kept weight in group {list(group)}", "all pruned")
        codebook = kmeans(values, b, init=init, rng=rng, max_iter=max_iter).codebook     # (X.1)
        sse = 0.0
        for name, w, m in zip(group, weights, kept):
            c = Clustered(codebook, assign(w, codebook), None if m.all() else m, bits=b)   # no mask bits if unpruned
            c.codebook = codebook       # the constructor copies; rebind so the group holds one array
            sse += float(np.sum((c.to_dense()[m].astype(np.float64) - w[m]) ** 2))
            chosen[name].weight = c
        report["groups"].append({"layers": list(group), "bits": b, "kept": int(sum(m.sum() for m in kept)),
                                 "sse": sse, "codebook_bytes": int(codebook.nbytes)})
    return out, report


def codebook_groups(model) -> list[list[str]]:
    """Names of the layers holding a Clustered weight, grouped by the codebook array they share (model order)."""
    groups: dict[int, list[str]] = {}
    for name, m in model.named_modules():
        w = getattr(m, "weight", None)
        if isinstance(w, Clustered):
            groups.setdefault(id(w.codebook), []).append(name)
    return list(groups.values())


def shared_model_bytes(model) -> int:
    """Bytes of every weight and Parameter as stored, each shared codebook counted once."""
    total, seen = 0, set()
    for _, p in model.named_weights():
        if isinstance(p, Parameter):
            total += p.data.nbytes
        elif isinstance(p, Clustered):
            total += p.nbytes - (0 if id(p.codebook) not in seen else p.codebook.nbytes)
            seen.add(id(p.codebook))
        else:
            total += p.nbytes
    return int(total)
