"""Rank search for a whole model under a parameter budget, stopped by the validation error.

The rule (issue 14, "the article's rule"): lower the ranks while the weights
exceed the budget, and stop decreasing the rank of a layer as soon as the
validation error starts to rise. Written out, with layers l (Linear, or a
Conv2d by its reshaped kernel, docs/lowrank.md eqs. 1 and 6), out_l × in_l
matrices and P(r) the model's parameter count with layer l at rank r_l
(r_l (out_l + in_l) weights) or dense (r_l = ∞):

    ladder_l = r⁰_l, ⌊s·r⁰_l⌋, ⌊s²·r⁰_l⌋, …, 1 (distinct),  r⁰_l = ⌈out_l·in_l / (out_l + in_l)⌉ − 1,
               the largest rank that stores fewer weights than the dense layer      (R.1)
    repeat, while P(r) > budget and some layer is not frozen:
        for each layer l not frozen, largest first:
            r' = r with r_l moved one step down its ladder
            if E_val(r') > E_val(r) + τ:   freeze l           (the error starts to rise: keep r_l)
            else:                          r ← r'             (accept the step)
            stop as soon as P(r) ≤ budget                                          (R.2)

E_val counts the misclassified images of the caller's validation set with
every layer at its rank (plain truncated SVD, no fine-tuning inside the
search); τ ≥ 0 (``tolerance``, in images) absorbs noise. A layer whose ladder
ends (rank 1) is frozen too, so the loop always ends: every pass either
accepts a step or freezes a layer. If every layer freezes above the budget,
the report says ``budget_met: False`` and returns the last accepted ranks.
"""

from __future__ import annotations

import math

import numpy as np

from ...checks import integer, real
from ...errors import ValidationError
from ...nn.layers import Conv2d, Linear
from ...nn.train import evaluate
from ..prune.model import prunable_layers
from .model import factorize_model

__all__ = ["rank_ladder", "search_ranks", "factorize_to_budget"]


def rank_ladder(out: int, n_in: int, shrink: float = 0.75) -> list[int]:
    """(R.1): the decreasing ranks tried for an (out, n_in) matrix, from the largest that saves weights to 1."""
    out, n_in = integer(out, "out", minimum=1), integer(n_in, "n_in", minimum=1)
    s = real(shrink, "shrink", low=0, high=1, low_open=True, high_open=True)
    r = min(math.ceil(out * n_in / (out + n_in)) - 1, out, n_in)
    ladder = []
    while r >= 1:
        ladder.append(r)
        # at least 1: with s < 1/2, ⌊s·2⌋ = 0 would end the ladder at 2 and never try rank 1 (R.1 ends at 1)
        r = min(r - 1, max(1, int(math.floor(s * r))))
    return ladder


def _errors(model, val_set) -> int:
    return int(round((1.0 - evaluate(model, val_set)["accuracy"]) * len(val_set[1])))


def search_ranks(model, val_set, *, max_params: int, layers=None, shrink: float = 0.75,
                 tolerance: int = 0) -> tuple[dict, dict]:
    """(R.2): ranks {name: r} for the chosen layers, and the search's report.

    model : float model (its Linear / Conv2d layers with Dense weights; groups = 1 for convs).
    val_set : (x, y) the caller holds out for choosing (never the test set).
    max_params : the budget, in parameters of the whole model (biases and all).
    layers : names to factorize (default every Linear and Conv2d with groups 1).
    shrink : ladder step s ∈ (0, 1) of (R.1).  tolerance : τ ≥ 0 images.
    Returns (ranks, report) with ranks only for the layers that were factorized;
    report {"history": [{"layer", "rank", "val_errors", "params", "accepted"}],
    "dense_val_errors", "val_errors", "params", "dense_params", "budget_met", "frozen"}.
    """
    budget = integer(max_params, "max_params", minimum=1)
    tol = integer(tolerance, "tolerance", minimum=0)
    if not (isinstance(val_set, tuple) and len(val_set) == 2):
        raise ValidationError("val_set", "a pair (x, y)", type(val_set).__name__)
    chosen = {n: l for n, l in prunable_layers(model, layers).items()
              if isinstance(l, Linear) or (isinstance(l, Conv2d) and l.groups == 1)}
    if not chosen:
        raise ValidationError("layers", "at least one Linear or Conv2d (groups 1) layer", "none")
    shapes = {n: (l.weight.shape[0], int(np.prod(l.weight.shape[1:]))) for n, l in chosen.items()}
    ladders = {n: rank_ladder(o, i, shrink) for n, (o, i) in shapes.items()}
    dense_params = model.num_parameters()

    def params(ranks):
        return dense_params - sum(o * i - ranks[n] * (o + i) for n, (o, i) in shapes.items() if n in ranks)

    def errors(ranks):
        return _errors(factorize_model(model, dict(ranks))[0] if ranks else model, val_set)

    ranks, step = {}, {n: 0 for n in chosen}
    frozen = {n for n in chosen if not ladders[n]}   # a layer too small to save weights by factorizing
    current = dense = errors(ranks)
    history = []
    order = sorted(chosen, key=lambda n: -shapes[n][0] * shapes[n][1])
    while params(ranks) > budget and len(frozen) < len(chosen):
        for name in order:
            if name in frozen or params(ranks) <= budget:
                continue
            trial = {**ranks, name: ladders[name][step[name]]}
            e = errors(trial)
            accepted = e <= current + tol
            history.append({"layer": name, "rank": trial[name], "val_errors": e, "params": params(trial),
                            "accepted": accepted})
            if not accepted:
                frozen.add(name)                    # the error starts to rise: stop decreasing this layer
                continue
            ranks, current = trial, e
            step[name] += 1
            if step[name] == len(ladders[name]):
                frozen.add(name)                    # rank 1 reached
    report = {"history": history, "dense_val_errors": dense, "val_errors": current, "params": params(ranks),
              "dense_params": dense_params, "budget_met": params(ranks) <= budget, "frozen": sorted(frozen)}
    return ranks, report


def factorize_to_budget(model, val_set, *, max_params: int, layers=None, shrink: float = 0.75,
                        tolerance: int = 0) -> tuple:
    """:func:`search_ranks`, then refcomp.compress.lowrank.model.factorize_model at the ranks found:
    (factorized copy of ``model``, report of the search + "layers": factorize_model's report)."""
    ranks, report = search_ranks(model, val_set, max_params=max_params, layers=layers, shrink=shrink,
                                 tolerance=tolerance)
    out, layer_report = factorize_model(model, ranks)
    report["ranks"], report["layers"] = ranks, layer_report
    return out, report
