"""Static W8A8 for any graph: every Linear's input quantized with calibrated QParams, optionally smoothed.

For each Linear y = x·Wᵀ + b of the model (a transformer's projections and
feed-forward layers, wherever they sit in the graph), from calibration
batches run through the float model:

1. SmoothQuant (Xiao et al. 2023, arXiv:2211.10438 §4, eq. 4), when
   ``smooth_alpha`` = α is given: per input channel j,

       m_j = max|X_j|^α / max|W_:,j|^(1−α)        (m_j = 1 where max|X_j| or max|W_:,j| is 0)

   so that x/m and W·diag(m) share the outliers of x's channels between them;
   α = 0.5 is the paper's default, larger moves more of the range to W.
2. The input range: an observer (minmax, percentile, mse, entropy:
   refcomp.quant.observers) sees x/m over the calibration set and gives
   uint8 per-tensor QParams (s_x, z_x) (docs/quantization.md eqs. 10–16).
3. The weight W·diag(m): int8, symmetric, restricted range, one scale per
   output channel (as dynamic quantization).

The layer then holds a refcomp.formats.StaticQuantized weight and computes
eq. (S1) of that module: no range is computed at run time. Layers other than
Linear are unchanged (they stay float32).

Calibration batches are what the model's forward takes: an array for a
one-input model, or a tuple of arrays (a transformer's input_ids and
attention_mask) passed as ``model(*batch)``.
"""

from __future__ import annotations

import numpy as np

from ...errors import ValidationError
from ...formats.dense import Dense
from ...formats.qtensor import QTensor
from ...formats.static import StaticQuantized
from ...nn.layers import Linear
from ...nn.module import Module, run_with_hooks
from ...quant import choose_qparams
from .model_graph import prepare
from .ptq import OBSERVERS, make_observer

__all__ = ["quantize_static_inputs", "smoothing_factors"]


def smoothing_factors(x_absmax, w_absmax, alpha: float) -> np.ndarray:
    """m_j of step 1 for the per-channel maxima of |x| and |W| (in,): float32 (in,), > 0."""
    x_absmax = np.asarray(x_absmax, np.float64)
    w_absmax = np.asarray(w_absmax, np.float64)
    ok = (x_absmax > 0) & (w_absmax > 0)
    m = np.ones_like(x_absmax)
    m[ok] = x_absmax[ok] ** alpha / w_absmax[ok] ** (1 - alpha)
    return np.maximum(m, 1e-5).astype(np.float32)


def _batches(calibration) -> list:
    try:
        batches = list(calibration)
    except TypeError:
        raise ValidationError("calibration", "an iterable of batches (arrays, or tuples of arrays)",
                              type(calibration).__name__) from None
    if not batches:
        raise ValidationError("calibration", "at least one batch", "none")
    return batches


def _run(model, batches, layers, fn):
    """Call fn(name, rows) with the (rows, in) input of each Linear, for every batch."""
    hooks = [(layer, lambda mod, inputs, out, name=name: fn(name, np.asarray(inputs[0]).reshape(-1, mod.in_features)))
             for name, layer in layers]
    run_with_hooks(model, hooks, batches)


def quantize_static_inputs(model, calibration, *, observer: str = "minmax", observer_kwargs: dict | None = None,
                           smooth_alpha: float | None = None, smooth_layers=None) -> tuple[Module, dict]:
    """(a copy of ``model`` whose Linear layers hold StaticQuantized weights, report per layer).

    calibration : batches for ``model(*batch)`` (module docstring).
    observer : "minmax" | "percentile" | "mse" | "entropy" (uint8, asymmetric, per tensor).
    observer_kwargs : passed to the observer (e.g. {"percentile": 99.99}).
    smooth_alpha : None (no smoothing) or α in [0, 1] for SmoothQuant (step 1).
    smooth_layers : the Linear layers to smooth (names), default all. The paper smooths the
        inputs that come out of a LayerNorm (a transformer's Q, K, V projections and first FFN
        layer), where the outlier channels are; on other inputs (after GELU) the smoothed
        x/m can have worse outliers than x (docs/minilm.md, outliers).

    The report: {layer: {"input_scale", "input_zero_point", "smooth_max", "bytes", "float_bytes"}}.
    ``model`` is not modified.
    """
    if observer not in OBSERVERS:
        raise ValidationError("observer", f"one of {sorted(OBSERVERS)}", repr(observer))
    if smooth_alpha is not None and (isinstance(smooth_alpha, bool) or not isinstance(smooth_alpha, (int, float))
                                     or not 0 <= smooth_alpha <= 1):
        raise ValidationError("smooth_alpha", "None or a number in [0, 1]", repr(smooth_alpha))
    batches = _batches(calibration)
    m = prepare(model)
    layers = [(n, l) for n, l in m.named_modules() if isinstance(l, Linear) and isinstance(l.weight, Dense)]
    if not layers:
        raise ValidationError("model", "at least one Linear layer with a float (Dense) weight", "none")
    w = {n: l.weight.to_dense() for n, l in layers}
    smooth = {n: None for n, _ in layers}
    names = [n for n, _ in layers]
    if smooth_layers is not None:
        unknown = sorted(set(smooth_layers) - set(names))
        if smooth_alpha is None or unknown:
            raise ValidationError("smooth_layers", "names of Linear layers, with smooth_alpha",
                                  unknown[:3] if unknown else "smooth_alpha=None")
    to_smooth = set(names if smooth_layers is None else smooth_layers)
    if smooth_alpha is not None:
        x_absmax = {n: np.zeros(l.in_features) for n, l in layers}

        def channel_max(name, rows):
            np.maximum(x_absmax[name], np.abs(rows).max(axis=0), out=x_absmax[name])

        _run(m, batches, layers, channel_max)
        smooth = {n: smoothing_factors(x_absmax[n], np.abs(w[n]).max(axis=0), smooth_alpha) if n in to_smooth
                  else None for n in names}
    observers = {n: make_observer(observer, "uint8", **(observer_kwargs or {})) for n, _ in layers}

    def observe(name, rows):
        observers[name].observe(rows if smooth[name] is None else rows / smooth[name])

    _run(m, batches, layers, observe)
    report = {}
    for name, layer in layers:
        ws = w[name] if smooth[name] is None else w[name] * smooth[name]
        wq = choose_qparams(ws.min(axis=1), ws.max(axis=1), "int8", symmetric=True, restricted_range=True, axis=0)
        iq = observers[name].qparams()
        layer.weight = StaticQuantized(QTensor.quantize(ws.astype(np.float32), wq), iq, smooth=smooth[name])
        report[name] = {"input_scale": float(iq.scale), "input_zero_point": int(iq.zero_point),
                        "smooth_max": None if smooth[name] is None else float(smooth[name].max()),
                        "bytes": int(layer.weight.nbytes), "float_bytes": int(w[name].nbytes)}
    return m, report
