"""Empirical bias correction of a whole model from calibration data (DFQ §4.2).

Nagel et al. 2019 (arXiv:1906.04721) §4.2, "empirical bias correction";
the array-level math is bias_correction.py (eq. 10), docs/gptq_and_ptq.md §3.

For each compute layer with float weight W, quantized weight Ŵ and error
ε = Ŵ − W, the output of the quantized layer on input x is y + (ε ⊛ x): its
mean over the calibration inputs X_ℓ of that layer shifts by

    Δ[o] = mean over images (and output positions) of (ε ⊛ x)[o]        (BC1)

and b̂ = b − Δ removes the shift on those inputs. (ε ⊛ x) is the layer's own
linear map with weight ε and no bias (a Linear's x εᵀ, a Conv2d's
convolution with its stride, padding and dilation), so for a convolution the
zero padding at the borders is accounted for exactly instead of assuming a
per-channel mean that is constant over space (eq. 10's conv form). X_ℓ are
the inputs the *float* model gives layer ℓ (DFQ's statistics come from the
float network); the correction targets the weight-quantization error only,
not the rounding of activations.
"""

from __future__ import annotations

import copy

import numpy as np

from ...errors import ShapeError, ValidationError
from ...formats.dense import Dense
from ...nn.module import run_with_hooks
from .model_graph import stages_of

__all__ = ["empirical_output_shift"]


def _error_layer(layer, w_hat):
    """A copy of ``layer`` computing (Ŵ − W) ⊛ x, without bias, in float64."""
    w = layer.weight.to_dense().astype(np.float64)
    w_hat = np.asarray(w_hat, dtype=np.float64)
    if w_hat.shape != w.shape:
        raise ShapeError("w_hat", f"the layer's weight shape {w.shape}", f"shape {w_hat.shape}")
    err = copy.deepcopy(layer)
    err.weight = Dense(w_hat - w, trainable=False)
    err.bias = None
    return err


def empirical_output_shift(model, calibration_x, w_hats: dict, *, batch_size: int = 500) -> dict:
    """Δ of eq. (BC1) for every compute stage named in ``w_hats`` ({name: dequantized weight}).

    model : a folded float model (model_graph.prepare); ``calibration_x`` (N, ...)
        runs through it and a forward hook on each named layer takes its inputs.
    Returns {name: float64 (out,)}.
    """
    x = np.asarray(calibration_x)
    if x.dtype.kind != "f" or x.ndim < 2 or len(x) == 0:
        raise ValidationError("calibration_x", "a non-empty float array (N, ...)", f"{x.dtype} {x.shape}")
    stages = stages_of(model)
    names = {s.name for s in stages if s.kind == "compute"}
    unknown = sorted(set(w_hats) - names)
    if unknown:
        raise ValidationError("w_hats", f"names of compute stages {sorted(names)}", unknown)
    errs = {s.name: _error_layer(s.layer, w_hats[s.name]) for s in stages if s.name in w_hats}
    sums = {name: 0.0 for name in errs}
    counts = dict.fromkeys(errs, 0)

    def accumulate(name):
        def hook(module, inputs, output):
            d = errs[name].forward(inputs[0].astype(np.float64))
            # channel axis 1; every other axis (image, position) is averaged
            axes = (0,) + tuple(range(2, d.ndim))
            sums[name] = sums[name] + d.sum(axis=axes)
            counts[name] += d.size // d.shape[1]
        return hook

    run_with_hooks(model, [(s.layer, accumulate(s.name)) for s in stages if s.name in errs],
                   (x[i:i + batch_size] for i in range(0, len(x), batch_size)))
    return {name: sums[name] / counts[name] for name in errs}
