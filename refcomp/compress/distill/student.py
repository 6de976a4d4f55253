"""Students initialised from the teacher's weights: layer dropping and width slicing.

A student that starts from (part of) the teacher begins near the teacher's
function instead of at random; distillation then only has to repair what the
cut removed (docs/distillation.md §5).

**Layer dropping** (Sanh et al. 2019, "DistilBERT", arXiv:1910.01108 §3:
"initialize the student from the teacher by taking one layer out of two";
Sun et al. 2019, "Patient KD", arXiv:1908.09355 §3). Dropping a square
Linear layer ℓ (d → d) together with the parameter-free layers after it
(its ReLU, Dropout) joins its input straight to the next layer::

    h_{ℓ+1} = f(W_{ℓ+1} h_{ℓ-1} + b_{ℓ+1})    instead of   f(W_{ℓ+1} f(W_ℓ h_{ℓ-1} + b_ℓ) + b_{ℓ+1})   (10)

**Width slicing** (Li, Kadav, Durdanovic, Samet, Graf 2017, "Pruning Filters
for Efficient ConvNets", arXiv:1608.08710 §3.1, used here as the
initialisation of a thinner student). Hidden unit j of layer ℓ is ranked by
the L1 (or L2) norm of its incoming weights, and the k largest are kept::

    score_j = ‖W_ℓ[j, :]‖_p  (a Conv2d filter: ‖W_ℓ[j, :, :, :]‖_p),  keep = top-k (ties: lower j)  (11)
    W_ℓ ← W_ℓ[keep, :],  b_ℓ ← b_ℓ[keep],  W_{ℓ+1} ← W_{ℓ+1}[:, keep]                              (12)

— the next layer's input columns are sliced with the same units (for a conv
→ Flatten → Linear, the H·W columns of each kept channel), so the student
computes the teacher's sums restricted to the kept units
(refcomp.compress.prune.structured.shrink does (12) and the BatchNorms between).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import numpy as np

from ...checks import integer, one_of
from ...errors import ShapeError, ValidationError
from ...nn.layers import Conv2d, Linear
from ...nn.module import Sequential
from ..prune.structured import shrink

__all__ = ["drop_layers", "unit_scores", "slice_width"]


def _items(model, argument="teacher"):
    if not isinstance(model, Sequential):
        raise ValidationError(argument, "a refcomp.nn.Sequential (the student follows its layer order)",
                              type(model).__name__)
    return list(model.layers.items())


def drop_layers(teacher, names) -> tuple:
    """A copy of ``teacher`` without the Linear layers ``names`` (eq. 10); ``teacher`` is untouched.

    teacher : a Sequential. names : top-level names of square Linear layers (in = out features),
    none of them the last parametric layer. Each goes with the parameter-free layers that follow
    it up to the next Linear / Conv2d (its activation, dropout). Returns (student, report
    {"dropped": [layer names removed]}).
    """
    items = _items(teacher)
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, (list, tuple)) or not names:
        raise ValidationError("names", "a layer name or a non-empty list of them", repr(names))
    index = {n: i for i, (n, _) in enumerate(items)}
    drop = set()
    for name in names:
        if name not in index:
            raise ValidationError("names", f"top-level layer names among {list(index)}", repr(name))
        i, layer = index[name], items[index[name]][1]
        if not isinstance(layer, Linear) or layer.in_features != layer.out_features:
            raise ShapeError("names", "square Linear layers (dropping one must keep the shapes)",
                             f"{name}: {type(layer).__name__}"
                             + (f" {layer.in_features} -> {layer.out_features}" if isinstance(layer, Linear) else ""))
        j = i + 1
        while j < len(items) and not isinstance(items[j][1], (Linear, Conv2d)):
            j += 1
        if j == len(items):
            raise ValidationError("names", "layers followed by another Linear / Conv2d (not the output layer)",
                                  repr(name))
        drop.update(n for n, _ in items[i:j])
    student = Sequential(*[(n, copy.deepcopy(m)) for n, m in items if n not in drop])
    return student, {"dropped": [n for n, _ in items if n in drop]}


def unit_scores(layer, criterion: str = "l1") -> np.ndarray:
    """score_j of eq. (11): the L1 / L2 norm of each output unit's incoming weights, float64 (out,)."""
    if not isinstance(layer, (Linear, Conv2d)):
        raise ValidationError("layer", "a Linear or Conv2d", type(layer).__name__)
    one_of(criterion, "criterion", ("l1", "l2"))
    w = layer.weight.to_dense().astype(np.float64).reshape(layer.weight.shape[0], -1)
    return np.abs(w).sum(axis=1) if criterion == "l1" else np.sqrt((w * w).sum(axis=1))


def slice_width(teacher, widths: Mapping, *, criterion: str = "l1") -> tuple:
    """A thinner copy of ``teacher``: layer ℓ keeps its ``widths[ℓ]`` best units (eqs. 11-12).

    teacher : a Sequential. widths : {name of a Linear / Conv2d that is not the output layer:
    k, 1 <= k <= its outputs}. criterion : "l1" or "l2" (eq. 11).
    Returns (student, report {name: sorted indices of the kept units}); ``teacher`` is untouched.
    """
    items = dict(_items(teacher))
    if not isinstance(widths, Mapping) or not widths:
        raise ValidationError("widths", "a non-empty mapping layer name -> units kept", repr(widths))
    parametric = [n for n, m in items.items() if isinstance(m, (Linear, Conv2d))]
    keep = {}
    for name, k in widths.items():
        if name not in parametric[:-1]:     # the output layer keeps its classes
            raise ValidationError("widths", f"names of hidden Linear / Conv2d layers among {parametric[:-1]}",
                                  repr(name))
        n_out = items[name].weight.shape[0]
        k = integer(k, f"widths[{name!r}]", minimum=1, maximum=n_out)
        s = unit_scores(items[name], criterion)
        order = np.lexsort((np.arange(n_out), -s))     # score descending, ties to the lower index
        mask = np.zeros(n_out, bool)
        mask[order[:k]] = True
        keep[name] = mask
    student, _ = shrink(teacher, keep)
    return student, {name: np.flatnonzero(m).tolist() for name, m in keep.items()}
