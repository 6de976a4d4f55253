"""Mixed precision: fp16/bf16 weight storage, loss scaling, master weights, bit allocation.

Math and sources: docs/precision.md, eqs. (1)-(8).

1. ``cast_weights``: float32 -> float16 / bfloat16 with IEEE round-to-nearest-
   even (NumPy for float16, ml_dtypes for bfloat16), with a report of bytes
   and errors. float16's largest finite value is 65504; anything with
   |w| >= 65520 rounds to inf (eq. 1), so overflow is an error by default
   (``on_overflow="saturate"`` clips to ±max instead). bfloat16 keeps
   float32's exponent range (max 3.39e38), so it overflows only for
   |w| >= 3.4e38 after rounding.
2. ``DynamicLossScaler`` (Micikevicius et al. 2018, "Mixed Precision
   Training", arXiv:1710.03740, §3.2): multiply the loss by S so that small
   gradients survive float16; if any scaled gradient is inf/NaN, skip the
   update and halve S; after N consecutive clean steps double S.
3. ``MasterWeights`` (same paper, §3.1): float32 master copy updated with the
   unscaled gradients; the model runs on a float16/bfloat16 copy of it. An
   update smaller than half an ulp of the fp16 weight is lost if applied to
   the fp16 weight directly (eq. 4) but accumulates in the master copy.
4. ``select_bitwidths``: per-layer bit widths under a size budget from a
   sensitivity table {layer: {bits: error}}, assuming errors add up over
   layers (eq. 6) — exact (multiple-choice knapsack by dynamic programming
   over Pareto-optimal partial solutions) or greedy.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import ml_dtypes
import numpy as np

from ...checks import float_array, integer, one_of, real
from ...errors import OverflowRiskError, ValidationError
from ..quantize.rtn import rtn_quantize

__all__ = [
    "CastReport",
    "cast_weights",
    "DynamicLossScaler",
    "MasterWeights",
    "BitAllocation",
    "select_bitwidths",
    "weight_sensitivity",
]

_STORAGE = {"float16": np.dtype(np.float16), "bfloat16": np.dtype(ml_dtypes.bfloat16)}


@dataclass(frozen=True)
class CastReport:
    """What a cast did. ``array`` is the low-precision weight."""

    array: np.ndarray
    nbytes_before: int
    nbytes_after: int
    max_abs_error: float
    max_rel_error: float  # over the nonzero inputs that stayed nonzero
    n_flushed_to_zero: int  # nonzero inputs that became ±0 (below the smallest subnormal / 2)
    n_saturated: int  # inputs clipped to ±max (on_overflow="saturate")


def cast_weights(w, dtype: str = "float16", *, on_overflow: str = "raise") -> CastReport:
    """Store ``w`` in float16 or bfloat16 with round-to-nearest-even.

    on_overflow : "raise" (OverflowRiskError naming how many values round to
    inf), or "saturate" (values beyond ±max become ±max, counted in the report).
    Non-finite input raises ValidationError. ``w`` is taken as float32
    (refcomp's weight dtype): float64 input is rounded to float32 first, so
    there is exactly one rounding float32 -> target, and the errors in the
    report are measured against that float32 weight.
    """
    one_of(dtype, "dtype", tuple(_STORAGE))
    one_of(on_overflow, "on_overflow", ("raise", "saturate"))
    src = np.asarray(w)
    x64 = float_array(w, "w", dtype=np.float64, copy=True)  # finite check on the input as given
    with np.errstate(over="ignore"):
        x32 = x64.astype(np.float32)  # beyond float32's range: inf here, then overflow below
    # the reference the errors are measured against: the float32 weight (the input where that overflowed)
    x = np.where(np.isfinite(x32), x32.astype(np.float64), x64)
    target = _STORAGE[dtype]
    fmax = float(ml_dtypes.finfo(target).max)
    with np.errstate(over="ignore"):
        y = x32.astype(target)  # one rounding float32 -> target (ml_dtypes would round float64 twice)
    overflow = np.isinf(y.astype(np.float64))
    n_sat = 0
    if overflow.any():
        if on_overflow == "raise":
            raise OverflowRiskError("w", f"|values| that round to at most the {dtype} maximum {fmax:g}",
                                    f"{int(overflow.sum())} values that round to inf (max |w| = "
                                    f"{float(np.max(np.abs(x))):g})")
        n_sat = int(overflow.sum())
        y = np.where(overflow, np.sign(x32) * np.float32(fmax), x32).astype(target)
    back = y.astype(np.float64)
    err = np.abs(back - x)
    kept = (x != 0) & (back != 0)
    rel = float(np.max(err[kept] / np.abs(x[kept]))) if kept.any() else 0.0
    return CastReport(
        array=y,
        nbytes_before=int(src.nbytes),
        nbytes_after=int(y.nbytes),
        max_abs_error=float(err.max()) if err.size else 0.0,
        max_rel_error=rel,
        n_flushed_to_zero=int(np.sum((x != 0) & (back == 0))),
        n_saturated=n_sat,
    )


class DynamicLossScaler:
    """Dynamic loss scaling (arXiv:1710.03740 §3.2; eq. 3 of docs/precision.md).

    >>> scaler = DynamicLossScaler()
    >>> loss_scaled = loss * scaler.scale          # backward of the scaled loss
    >>> if scaler.step(grads):                     # grads: the *scaled* gradients
    ...     apply(scaler.unscale(grads))           # update only when all are finite

    step() may change ``scale`` (for the next iteration); ``unscale`` divides by
    ``last_scale``, the scale that was in force when these gradients were made.

    step(grads): if any gradient is inf/NaN, S ← max(S·backoff, min_scale), the
    clean-step counter resets and False is returned (skip the update);
    otherwise the counter grows and, on reaching ``growth_interval``,
    S ← min(S·growth, max_scale) and the counter resets; True is returned.
    Defaults: S₀ = 2^16, backoff 1/2, growth 2, interval 2000 (also the
    defaults of PyTorch's GradScaler). Powers of two keep scaling exact.
    """

    def __init__(self, init_scale: float = 2.0**16, *, growth_factor: float = 2.0, backoff_factor: float = 0.5,
                 growth_interval: int = 2000, min_scale: float = 1.0, max_scale: float = 2.0**24):
        self.scale = real(init_scale, "init_scale", low=0, low_open=True)
        self.growth_factor = real(growth_factor, "growth_factor", low=0, low_open=True)
        self.backoff_factor = real(backoff_factor, "backoff_factor", low=0, low_open=True)
        if self.growth_factor <= 1.0:
            raise ValidationError("growth_factor", "a real number > 1", repr(growth_factor))
        if self.backoff_factor >= 1.0:
            raise ValidationError("backoff_factor", "a real number in (0, 1)", repr(backoff_factor))
        self.growth_interval = integer(growth_interval, "growth_interval", minimum=1)
        self.min_scale = real(min_scale, "min_scale", low=0, low_open=True)
        self.max_scale = real(max_scale, "max_scale", low=0, low_open=True)
        if not self.min_scale <= self.scale <= self.max_scale:
            raise ValidationError("init_scale", f"a value in [min_scale, max_scale] = [{min_scale}, {max_scale}]",
                                  repr(init_scale))
        self.last_scale = self.scale
        self.clean_steps = 0
        self.skipped_steps = 0

    @staticmethod
    def all_finite(grads) -> bool:
        """True when every array in ``grads`` (an array, a list/tuple or a dict of arrays) is finite."""
        arrays = grads.values() if isinstance(grads, dict) else grads if isinstance(grads, (list, tuple)) else [grads]
        return all(bool(np.all(np.isfinite(np.asarray(g, dtype=np.float64)))) for g in arrays)

    def step(self, grads) -> bool:
        """Update the scale from these scaled gradients; True when the update may be applied."""
        self.last_scale = self.scale
        if not self.all_finite(grads):
            self.scale = max(self.scale * self.backoff_factor, self.min_scale)
            self.clean_steps = 0
            self.skipped_steps += 1
            return False
        self.clean_steps += 1
        if self.clean_steps == self.growth_interval:
            self.scale = min(self.scale * self.growth_factor, self.max_scale)
            self.clean_steps = 0
        return True

    def unscale(self, grads):
        """grads / last_scale in float32 (same container type: array, list, tuple or dict)."""
        def one(g):
            return (np.asarray(g, dtype=np.float32) / np.float32(self.last_scale)).astype(np.float32)
        if isinstance(grads, dict):
            return {k: one(g) for k, g in grads.items()}
        if isinstance(grads, (list, tuple)):
            return type(grads)(one(g) for g in grads)
        return one(grads)


class MasterWeights:
    """float32 master weights with a low-precision model copy (arXiv:1710.03740 §3.1).

    >>> mw = MasterWeights({"fc1.weight": w1, "fc1.bias": b1}, dtype="float16")
    >>> model_params = mw.model_copy()            # float16 arrays for forward/backward
    >>> mw.sgd_step(grads, lr=0.1, loss_scale=scaler.scale)

    sgd_step: master ← master − lr · float32(g) / loss_scale (eq. 5). The fp16
    copy is re-derived from the master (round-to-nearest-even) by model_copy().
    """

    def __init__(self, params: dict, dtype: str = "float16"):
        one_of(dtype, "dtype", tuple(_STORAGE))
        if not isinstance(params, dict):
            raise ValidationError("params", "a dict {name: array}", type(params).__name__)
        self.dtype = dtype
        self.master = {k: float_array(v, f"params[{k!r}]", dtype=np.float32, copy=True) for k, v in params.items()}

    def model_copy(self) -> dict:
        """The master weights cast to the low-precision dtype (overflow raises, as in cast_weights)."""
        return {k: cast_weights(v, self.dtype).array for k, v in self.master.items()}

    def sgd_step(self, grads: dict, lr: float, *, loss_scale: float = 1.0) -> None:
        lr = real(lr, "lr", low=0, low_open=True)
        loss_scale = real(loss_scale, "loss_scale", low=0, low_open=True)
        if set(grads) != set(self.master):
            raise ValidationError("grads", f"the keys {sorted(self.master)}", f"keys {sorted(grads)}")
        for k, g in grads.items():
            g32 = float_array(g, f"grads[{k!r}]", dtype=np.float32, copy=True)
            if g32.shape != self.master[k].shape:
                raise ValidationError(f"grads[{k!r}]", f"shape {self.master[k].shape}", f"shape {g32.shape}")
            self.master[k] -= np.float32(lr) * (g32 / np.float32(loss_scale))


@dataclass(frozen=True)
class BitAllocation:
    bits: dict  # {layer: bits}
    total_bits: int  # Σ n_params·bits
    total_error: float  # Σ error[layer][bits]


def _check_table(sensitivity, sizes):
    if not isinstance(sensitivity, dict) or not sensitivity:
        raise ValidationError("sensitivity", "a non-empty dict {layer: {bits: error}}", repr(sensitivity))
    if not isinstance(sizes, dict) or set(sizes) != set(sensitivity):
        raise ValidationError("sizes", f"a dict with the layers of sensitivity {sorted(map(str, sensitivity))}",
                              repr(sizes))
    table = {}
    for layer, row in sensitivity.items():
        if not isinstance(row, dict) or not row:
            raise ValidationError(f"sensitivity[{layer!r}]", "a non-empty dict {bits: error}", repr(row))
        n = integer(sizes[layer], f"sizes[{layer!r}]", minimum=1)
        opts = []
        for b, e in row.items():
            integer(b, f"sensitivity[{layer!r}] key", minimum=1)
            if isinstance(e, bool) or not isinstance(e, numbers.Real) or not np.isfinite(e) or e < 0:
                raise ValidationError(f"sensitivity[{layer!r}][{b}]", "a finite error >= 0", repr(e))
            opts.append((int(b) * n, float(e), int(b)))
        table[layer] = sorted(opts)
    return table


def select_bitwidths(sensitivity: dict, sizes: dict, budget_bits: int, *, method: str = "exact") -> BitAllocation:
    """Bits per layer minimising Σ error (eq. 6) subject to Σ n_params·bits <= budget_bits (eq. 7).

    sensitivity : {layer: {bits: error}}, error e.g. the loss increase or the
        output MSE when only that layer is quantized at that width.
    sizes : {layer: number of weights}.
    method :
      "exact"  — multiple-choice knapsack solved by dynamic programming over
                 layers; the state set is the Pareto frontier of (cost, error)
                 of the layers seen so far (a partial choice that costs more
                 and errs more than another can never be part of an optimum);
                 optimal for the additive model.
      "greedy" — start at every layer's widest option and repeatedly narrow
                 the layer with the smallest error increase per bit saved
                 (eq. 8) until the budget holds; fast, not always optimal.
    Raises ValidationError when even the narrowest choice of every layer
    exceeds the budget.
    """
    table = _check_table(sensitivity, sizes)
    budget = integer(budget_bits, "budget_bits", minimum=0)
    one_of(method, "method", ("exact", "greedy"))
    cheapest = sum(opts[0][0] for opts in table.values())
    if cheapest > budget:
        raise ValidationError("budget_bits", f">= {cheapest} (every layer at its narrowest width)", budget)
    choice = _exact(table, budget) if method == "exact" else _greedy(table, budget)
    bits = {layer: b for layer, (c, e, b) in choice.items()}
    return BitAllocation(bits=bits, total_bits=sum(c for c, _, _ in choice.values()),
                         total_error=float(sum(e for _, e, _ in choice.values())))


def _exact(table, budget):
    frontier = [(0, 0.0, {})]  # (cost, error, choices), cost ascending, error strictly descending
    for layer, opts in table.items():
        cand = [(c + oc, e + oe, {**ch, layer: (oc, oe, ob)})
                for c, e, ch in frontier for oc, oe, ob in opts if c + oc <= budget]
        cand.sort(key=lambda t: (t[0], t[1]))
        frontier = []
        for t in cand:  # keep a candidate only if it errs less than every cheaper one
            if not frontier or t[1] < frontier[-1][1]:
                frontier.append(t)
    return min(frontier, key=lambda t: (t[1], t[0]))[2]


def _greedy(table, budget):
    choice = {layer: opts[-1] for layer, opts in table.items()}
    pos = {layer: len(opts) - 1 for layer, opts in table.items()}
    while sum(c for c, _, _ in choice.values()) > budget:
        best = None
        for layer, opts in table.items():
            if pos[layer] == 0:
                continue
            c0, e0, _ = opts[pos[layer]]
            c1, e1, _ = opts[pos[layer] - 1]
            ratio = (e1 - e0) / (c0 - c1) if c0 > c1 else float("inf")
            if best is None or ratio < best[0]:
                best = (ratio, layer)
        layer = best[1]
        pos[layer] -= 1
        choice[layer] = table[layer][pos[layer]]
    return choice


def weight_sensitivity(weights: dict, bit_choices=(2, 4, 8), *, group_size: int | None = None) -> dict:
    """A data-free sensitivity table: relative weight error of RTN per layer and width.

    ``error[layer][b] = ||W − RTN_b(W)||²_F / ||W||²_F`` (symmetric grid, eq. 1 of
    docs/gptq_and_ptq.md). Model-level sweeps (accuracy drop per layer)
    replace this proxy once layers are wired; the selection is the same.
    """
    table = {}
    for name, w in weights.items():
        w = float_array(w, f"weights[{name!r}]", dtype=np.float64, copy=True)
        w2 = w.reshape(w.shape[0], -1) if w.ndim > 1 else w.reshape(1, -1)
        norm = float(np.sum(w2 * w2)) or 1.0
        row = {}
        for b in bit_choices:
            w_hat = rtn_quantize(w2, bits=b, group_size=group_size).to_dense().astype(np.float64)
            row[int(b)] = float(np.sum((w2 - w_hat) ** 2)) / norm
        table[name] = row
    return table
