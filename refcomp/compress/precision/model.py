"""float16 / bfloat16 weight storage for whole models.

Each Conv2d / Linear weight (and bias) is rounded once, float32 -> float16 or
bfloat16 with round-to-nearest-even (refcomp.compress.precision.casts.cast_weights,
docs/precision.md eq. 1), and stored in that 16-bit type: half the bytes.
Computation stays float32 — a layer multiplies by the 16-bit weight widened
to float32 (exact: every float16 / bfloat16 value is a float32 value), which
is what a runtime with 16-bit weight storage and float32 arithmetic does.
"""

from __future__ import annotations

import numpy as np

from ...checks import integer
from ...errors import ValidationError
from ...executors import run_tasks
from ...formats.half import HalfPrecision
from ...nn.layers import Conv2d, Linear
from ...nn.module import run_batch
from ..quantize.model_graph import flat_layers, prepare
from ..quantize.weight_only import quantize_weights
from .casts import cast_weights, select_bitwidths

__all__ = ["cast_model", "mixed_precision_step", "select_layer_bits", "mixed_bits_model", "model_bytes"]


def cast_model(model, dtype: str = "float16", *, on_overflow: str = "raise"):
    """A copy of ``model`` (BatchNorm folded) with Conv2d / Linear weights stored in ``dtype``.

    Biases stay float32 (out values per layer, a small share of the bytes).
    Returns (model, report {layer: {"max_abs_error", "max_rel_error", "n_flushed_to_zero"}}).
    """
    m = prepare(model)
    report = {}
    for name, layer in flat_layers(m):
        if isinstance(layer, (Conv2d, Linear)):
            r = cast_weights(layer.weight.to_dense(), dtype, on_overflow=on_overflow)
            layer.weight = HalfPrecision(r.array)
            report[name] = {"max_abs_error": r.max_abs_error, "max_rel_error": r.max_rel_error,
                            "n_flushed_to_zero": r.n_flushed_to_zero}
    return m, report


def mixed_precision_step(model, master, scaler, x, y, loss, lr: float) -> bool:
    """One training step with float16 compute, float32 master weights and dynamic loss scaling.

    Micikevicius et al. 2018 (arXiv:1710.03740) §3, docs/precision.md eqs. 3-5:

    1. the model's trainable arrays are set to the float16 copy of ``master``
       (a refcomp.compress.precision.casts.MasterWeights keyed by parameter name);
    2. forward in float16; the loss is taken in float32 on the logits;
    3. backward of S·L (S = ``scaler.scale``) in float16 — a gradient that
       overflows becomes inf;
    4. ``scaler.step(grads)``: if any gradient is inf/NaN the update is
       skipped (the master weights are untouched) and S is reduced; otherwise
       master ← master − lr·g/S.

    Returns True when the update was applied.
    """
    if master.dtype != "float16":
        raise ValidationError("master.dtype", "'float16' (the model computes in NumPy float16)", master.dtype)
    params = dict(model.named_parameters())
    if set(params) != set(master.master):
        raise ValidationError("master", f"one entry per trainable parameter {sorted(params)}", sorted(master.master))
    for name, arr in master.model_copy().items():
        params[name].data = arr
    with np.errstate(over="ignore", invalid="ignore"):
        z = model.forward(np.asarray(x, dtype=np.float16))
        loss.forward(z.astype(np.float32), y)
        dz = (loss.backward() * np.float32(scaler.scale)).astype(np.float16)
        model.zero_grad()
        model.backward(dz)
    grads = {name: p.grad for name, p in params.items()}
    ok = scaler.step(grads)          # inf/NaN anywhere (loss included: it makes the gradients NaN) skips
    if ok:
        master.sgd_step(grads, lr, loss_scale=scaler.last_scale)
    return ok


def select_layer_bits(model, calibration_x, avg_bits: float, *, bit_choices=(2, 4, 8),
                      group_size: int | None = 16, method: str = "exact", executor="serial"):
    """Per-layer weight widths under a size budget, from a sensitivity sweep (docs/precision.md §4).

    Sensitivity of layer ℓ at b bits (eq. 6's additive model): the mean squared
    error of the model's outputs on ``calibration_x`` when *only* ℓ's weights
    are RTN-quantized to b bits (groups of ``group_size``), against the float
    outputs. The budget is Σ_ℓ n_ℓ·b_ℓ <= avg_bits · Σ_ℓ n_ℓ (eq. 7), solved by
    refcomp.compress.precision.casts.select_bitwidths.

    ``calibration_x``: an array, or for a model with several inputs a tuple of
    arrays (a transformer's input_ids and attention_mask), run as one batch
    (refcomp.nn.run_batch). Layers are named as in ``named_modules()``, so a
    graph's are dotted ("layer0.fc1").

    executor : "serial", "process", "dask" or a concurrent.futures.Executor
    (refcomp.executors.run_tasks): one task per layer, the same table whichever runs it.

    Returns (BitAllocation, sensitivity table {layer: {bits: error}}).
    """
    x = tuple(np.asarray(a) for a in calibration_x) if isinstance(calibration_x, tuple) else \
        np.asarray(calibration_x, dtype=np.float32)
    base = prepare(model)
    ref = run_batch(base, x).astype(np.float64)
    names = {n: l.weight.to_dense().size for n, l in base.named_modules() if isinstance(l, (Conv2d, Linear))}
    rows = run_tasks(_layer_errors, [(model, x, ref, name, bit_choices, group_size) for name in names], executor)
    sens = dict(zip(names, rows))
    budget = int(avg_bits * sum(names.values()))
    return select_bitwidths(sens, names, budget, method=method), sens


def _layer_errors(model, x, ref, name: str, bit_choices, group_size) -> dict:
    """{b: output MSE against ``ref`` with only layer ``name`` RTN-quantized to b bits}: one layer's task."""
    row = {}
    for b in bit_choices:
        q, _ = quantize_weights(model, bits={name: int(b)}, group_size=group_size)
        d = run_batch(q, x).astype(np.float64) - ref
        row[int(b)] = float(np.mean(d * d))
    return row


def model_bytes(model) -> int:
    """Stored bytes of every Conv2d / Linear: each weight format's ``nbytes`` (codes, scales ...) + biases."""
    return int(sum(layer.weight.nbytes + (0 if layer.bias is None else layer.bias.data.nbytes)
                   for _, layer in model.named_modules() if isinstance(layer, (Conv2d, Linear))))


def mixed_bits_model(model, calibration_x, budget_bytes: int, *, bit_choices=(2, 3, 4, 8),
                     group_size: int | None = 16, method: str = "exact", executor="serial"):
    """The model with per-layer RTN widths chosen by sensitivity under a budget of *stored bytes* (§4).

    select_layer_bits budgets Σ n_ℓ·b_ℓ, the code bits only; a group of
    ``group_size`` weights also stores a float32 scale (2 bits per weight at
    16), and the biases stay float32. Here the cost of layer ℓ at b bits is
    the bytes its quantized weight really takes (QTensor.nbytes, measured by
    quantizing every layer at every width once), so the knapsack (eqs. 6-7
    with these costs; casts.select_bitwidths, one "weight" per layer and the
    bytes as its options) keeps Σ bytes_ℓ(b_ℓ) + biases <= ``budget_bytes``.
    Sensitivities are select_layer_bits' (output MSE on ``calibration_x`` with
    only ℓ quantized), one task per layer through ``executor``.

    Returns (quantized model, report {"bits": {layer: b}, "bytes": model_bytes of the result,
    "budget_bytes", "float_bytes", "sensitivity"}).
    """
    budget = integer(budget_bytes, "budget_bytes", minimum=1)
    choices = tuple(sorted({integer(b, "bit_choices", minimum=2, maximum=8) for b in bit_choices}))
    _, sens = select_layer_bits(model, calibration_x, max(choices), bit_choices=choices, group_size=group_size,
                                executor=executor)
    cost = {name: {} for name in sens}
    for b in choices:  # bytes of every layer at width b (codes + scales)
        _, rep = quantize_weights(model, bits=b, group_size=group_size)
        for name in sens:
            cost[name][b] = rep[name]["bytes"]
    base = prepare(model)
    biases = sum(layer.bias.data.nbytes for _, layer in base.named_modules()
                 if isinstance(layer, (Conv2d, Linear)) and layer.bias is not None)
    # options keyed by their bytes; widths that store alike (3-bit codes sit in int4 containers: the
    # same bytes as 4 bits) keep only the one with the smaller error
    by_bytes, width = {name: {} for name in sens}, {name: {} for name in sens}
    for name in sens:
        for b in choices:
            c = cost[name][b]
            if c not in by_bytes[name] or sens[name][b] < by_bytes[name][c]:
                by_bytes[name][c], width[name][c] = sens[name][b], b
    if budget - biases < sum(min(c.values()) for c in cost.values()):
        raise ValidationError("budget_bytes", f">= {biases + sum(min(c.values()) for c in cost.values())} "
                              f"(every layer at {choices[0]} bits, scales and biases included)", repr(budget_bytes))
    alloc = select_bitwidths(by_bytes, {name: 1 for name in sens}, budget - biases, method=method)
    bits = {name: width[name][alloc.bits[name]] for name in sens}
    q, _ = quantize_weights(model, bits=bits, group_size=group_size)
    return q, {"bits": bits, "bytes": model_bytes(q), "budget_bytes": budget, "float_bytes": model_bytes(base),
               "sensitivity": sens}
