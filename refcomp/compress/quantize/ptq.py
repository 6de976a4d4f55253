"""Post-training static quantization of a refcomp.nn model (W8A8, integer-only or per layer).

Recipe (Jacob et al. 2018 §2-3; Krishnamoorthi 2018 §3; Nagel et al. 2021,
arXiv:2106.08295 §3; docs/gptq_and_ptq.md §6):

1. Fold every BatchNorm into the Conv2d / Linear before it (refcomp.nn.fold).
2. Calibrate: run the float model on calibration inputs; an observer per
   activation sees the model input and the output of every compute stage
   (after its fused ReLU). MaxPool2d / Flatten / ReLU outputs keep their
   input's parameters. Observers: "minmax", "percentile", "mse", "entropy"
   (refcomp.quant.observers), asymmetric per tensor, uint8 by default.
3. Weights: symmetric per output channel, int8 restricted to [−127, 127]
   (z_w = 0; the range keeps −w and w on mirrored codes):
   s_w[o] = max|W[o]| / 127, q_w = clip(round(W / s_w), −127, 127).
4. Biases int32 at scale s_x·s_w[o], multipliers M = s_x·s_w/s_y in fixed
   point (integer_model eqs. I2-I3).

Options (Nagel et al. 2019, arXiv:1906.04721, DFQ): ``equalize=True`` runs
cross-layer equalization on the folded model before calibration
(cle_model.equalize_model: same float outputs, better balanced per-channel
weight ranges); ``bias_correction=True`` subtracts, after step 3, each
layer's mean output shift caused by weight quantization, measured on the
float model's inputs to that layer over ``calibration_x``
(bias_correction_model, eq. BC1). ``weight_bits`` (8, 4 or 2; codes held in
int8) and ``weight_granularity="per_tensor"`` give the harsher settings
where those two matter.

``integer_only=False`` quantizes any graph (residual Adds, attention,
LayerNorm, average pooling ...) layer by layer instead: every Conv2d / Linear
gets observers on its own input and output and becomes an integer island
between a QuantizeLinear and a DequantizeLinear (integer_model.qdq_model,
the ONNX QDQ pattern); the other layers stay float. The options of the
integer-only path that rewrite the chain (CLE, bias correction) are not
available there.

The result is the integer-only model (integer_model.py): a copy of the
folded model whose Conv2d / Linear layers hold int8 QTensor weights and
their activation QParams, between a QuantizeLinear and a DequantizeLinear.
evaluate() works on it, integer_model.output_codes() gives its output codes,
simulate() the same codes computed by float layers.
"""

from __future__ import annotations

import numpy as np

from ...errors import ValidationError
from ...ops.integer_linear import check_requantize
from ...nn.module import Sequential
from ...quant import EntropyObserver, MinMaxObserver, MSEObserver, PercentileObserver, choose_qparams, quantize
from .bias_correction_model import empirical_output_shift
from .cle_model import equalize_model
from ...nn.layers import Conv2d, Linear
from ...nn.module import Parameter, run_with_hooks
from .integer_model import integer_bytes, integer_layers, integer_model, qdq_model
from .model_graph import prepare, stage_output_modules, stages_of

__all__ = ["OBSERVERS", "make_observer", "calibrate", "quantize_weight_per_channel", "quantize_static"]

OBSERVERS = {"minmax": MinMaxObserver, "percentile": PercentileObserver, "mse": MSEObserver,
             "entropy": EntropyObserver}


def make_observer(kind: str, dtype: str = "uint8", **kwargs):
    """An asymmetric per-tensor observer of the given kind."""
    if kind not in OBSERVERS:
        raise ValidationError("observer", f"one of {sorted(OBSERVERS)}", repr(kind))
    return OBSERVERS[kind](dtype, **kwargs)


def _check_batches(x, batch_size):
    x = np.asarray(x)
    if x.dtype.kind != "f" or x.ndim < 2 or len(x) == 0:
        raise ValidationError("calibration_x", "a non-empty float array (N, ...)", f"{x.dtype} {x.shape}")
    if not np.isfinite(x).all():
        raise ValidationError("calibration_x", "finite values", "NaN/Inf present")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValidationError("batch_size", "an int >= 1", repr(batch_size))
    return x


def calibrate(model, calibration_x, *, observer: str = "minmax", activation_dtype: str = "uint8",
              batch_size: int = 500, observer_kwargs: dict | None = None) -> tuple[list, dict]:
    """Run the (folded, float) model on ``calibration_x``; return (stages, {stage name: QParams}).

    The key "input" holds the model input's QParams; every compute stage's
    name holds its output's (after the fused ReLU), seen by a forward hook on
    the layer that produces it (model_graph.stage_output_modules).
    """
    x = _check_batches(calibration_x, batch_size)
    stages = stages_of(model)
    kw = observer_kwargs or {}
    obs = {"input": make_observer(observer, activation_dtype, **kw)}
    outputs = stage_output_modules(model)
    for name in outputs:
        obs[name] = make_observer(observer, activation_dtype, **kw)
    def observing(o):
        def hook(module, inputs, y):
            o.observe(y)
        return hook

    def batches():
        for i in range(0, len(x), batch_size):
            obs["input"].observe(x[i:i + batch_size])
            yield x[i:i + batch_size]

    run_with_hooks(model, [(module, observing(obs[name])) for name, module in outputs.items()], batches())
    return stages, {k: o.qparams() for k, o in obs.items()}


def quantize_weight_per_channel(w: np.ndarray, bits: int = 8, *, per_tensor: bool = False
                                ) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-output-channel codes, range [−(2^(b−1) − 1), 2^(b−1) − 1] (step 3).

    ``per_tensor=True`` uses one scale max|W| / (2^(b−1) − 1) for the whole
    tensor (repeated per channel, so the integer model is unchanged).
    Returns (int8 codes with w's shape, float32 scales (O,)).
    """
    if bits not in (2, 4, 8):
        raise ValidationError("weight_bits", "8, 4 or 2", repr(bits))
    w = np.asarray(w, dtype=np.float32)
    flat = w.reshape(w.shape[0], -1)
    dtype = f"int{bits}"
    if per_tensor:
        qp = choose_qparams(flat.min(), flat.max(), dtype, symmetric=True, restricted_range=True)
        scales = np.full(w.shape[0], np.asarray(qp.scale, dtype=np.float32).reshape(()), dtype=np.float32)
    else:
        qp = choose_qparams(flat.min(axis=1), flat.max(axis=1), dtype, symmetric=True, restricted_range=True, axis=0)
        scales = np.asarray(qp.scale, dtype=np.float32)
    codes = quantize(flat, qp)
    return np.asarray(codes).astype(np.int8).reshape(w.shape), scales


def quantize_static(model, calibration_x, *, observer: str = "minmax", activation_dtype: str = "uint8",
                    batch_size: int = 500, observer_kwargs: dict | None = None, equalize: bool = False,
                    bias_correction: bool = False, weight_bits: int = 8,
                    weight_granularity: str = "per_channel", integer_only: bool = True,
                    requantize: str = "fixed_point") -> tuple[Sequential, dict]:
    """W8A8 post-training static quantization (module docstring, steps 1-4).

    Parameters
    ----------
    model : a refcomp.nn Sequential of Conv2d / Linear / ReLU / MaxPool2d /
        Flatten / Dropout / BatchNorm (folded) layers; not modified.
    calibration_x : float inputs (N, ...) the observers see.
    observer : "minmax" | "percentile" | "mse" | "entropy".
    activation_dtype : "uint8" (default, as onnxruntime) or "int8"; asymmetric per tensor.
    equalize : cross-layer equalization after BN folding (cle_model).
    bias_correction : empirical bias correction on ``calibration_x`` (bias_correction_model).
    weight_bits : 8 (default), 4 or 2; symmetric restricted range, codes held in int8.
    weight_granularity : "per_channel" (default) or "per_tensor".
    integer_only : True (default): the whole model on codes (a Sequential of the layers
        above); False: any graph, each Conv2d / Linear an integer island (module docstring).
    requantize : "fixed_point" (default: gemmlowp, eq. I4 of refcomp/ops/integer_linear.py)
        or "float" (eq. I4': ONNX QLinearMatMul / QLinearConv as onnxruntime computes
        them, what refcomp.onnx.export's QOperator graph runs); kept by every integer layer.

    Returns (the quantized model, report {"activation_qparams", "bytes", ...}).
    """
    if activation_dtype not in ("uint8", "int8"):
        raise ValidationError("activation_dtype", "'uint8' or 'int8'", repr(activation_dtype))
    if weight_granularity not in ("per_channel", "per_tensor"):
        raise ValidationError("weight_granularity", "'per_channel' or 'per_tensor'", repr(weight_granularity))
    for name, flag in (("equalize", equalize), ("bias_correction", bias_correction)):
        if not isinstance(flag, bool):
            raise ValidationError(name, "a bool", repr(flag))
    if isinstance(weight_bits, bool) or weight_bits not in (2, 4, 8):
        raise ValidationError("weight_bits", "8, 4 or 2", repr(weight_bits))
    if not isinstance(integer_only, bool):
        raise ValidationError("integer_only", "a bool", repr(integer_only))
    check_requantize(requantize)
    qm, report = _quantize_static(model, calibration_x, observer=observer, activation_dtype=activation_dtype,
                                  batch_size=batch_size, observer_kwargs=observer_kwargs, equalize=equalize,
                                  bias_correction=bias_correction, weight_bits=weight_bits,
                                  weight_granularity=weight_granularity, integer_only=integer_only)
    for _, layer in integer_layers(qm):
        layer.requantize = requantize
    return qm, report


def _quantize_static(model, calibration_x, *, observer, activation_dtype, batch_size, observer_kwargs, equalize,
                     bias_correction, weight_bits, weight_granularity, integer_only):
    if not integer_only:
        for name, flag in (("equalize", equalize), ("bias_correction", bias_correction)):
            if flag:
                raise ValidationError(name, "False with integer_only=False (it rewrites the integer-only chain)",
                                      flag)
        return _quantize_per_layer(model, calibration_x, observer=observer, activation_dtype=activation_dtype,
                                   batch_size=batch_size, observer_kwargs=observer_kwargs, weight_bits=weight_bits,
                                   per_tensor=weight_granularity == "per_tensor")
    report = {}
    if equalize:
        folded, report["equalized_chains"] = equalize_model(model)
    else:
        folded = prepare(model)
    stages, qparams = calibrate(folded, calibration_x, observer=observer, activation_dtype=activation_dtype,
                                batch_size=batch_size, observer_kwargs=observer_kwargs)
    per_tensor = weight_granularity == "per_tensor"
    weights = {s.name: quantize_weight_per_channel(s.layer.weight.to_dense(), weight_bits, per_tensor=per_tensor)
               for s in stages if s.kind == "compute"}
    biases = None
    if bias_correction:
        w_hats = {name: codes.astype(np.float64) * scales.astype(np.float64).reshape((-1,) + (1,) * (codes.ndim - 1))
                  for name, (codes, scales) in weights.items()}
        shifts = empirical_output_shift(folded, _check_batches(calibration_x, batch_size), w_hats,
                                        batch_size=batch_size)
        biases = {}
        for s in stages:
            if s.name in shifts:
                b = np.zeros(s.layer.weight.shape[0]) if s.layer.bias is None else s.layer.bias.data.astype(np.float64)
                biases[s.name] = (b - shifts[s.name]).astype(np.float32)
        report["bias_shift"] = shifts
    im = integer_model(folded, qparams, weights, biases=biases)
    return im, {"activation_qparams": qparams, "bytes": integer_bytes(im), **report}



def _quantize_per_layer(model, calibration_x, *, observer, activation_dtype, batch_size, observer_kwargs,
                        weight_bits, per_tensor):
    """``integer_only=False``: observers on every Conv2d / Linear's input and output (forward hooks)."""
    x = _check_batches(calibration_x, batch_size)
    folded = prepare(model)
    layers = {n: m for n, m in folded.named_modules() if isinstance(m, (Conv2d, Linear)) and n}
    if not layers:
        raise ValidationError("model", "at least one Conv2d or Linear layer inside a container", "none")
    kw = observer_kwargs or {}
    seen = {n: (make_observer(observer, activation_dtype, **kw), make_observer(observer, activation_dtype, **kw))
            for n in layers}

    def observing(name):
        def hook(module, inputs, y):
            seen[name][0].observe(inputs[0])
            seen[name][1].observe(y)
        return hook

    run_with_hooks(folded, [(layer, observing(n)) for n, layer in layers.items()],
                   (x[i:i + batch_size] for i in range(0, len(x), batch_size)))
    x_qp = {n: o[0].qparams() for n, o in seen.items()}
    y_qp = {n: o[1].qparams() for n, o in seen.items()}
    weights = {n: quantize_weight_per_channel(layer.weight.to_dense(), weight_bits, per_tensor=per_tensor)
               for n, layer in layers.items()}
    qm = qdq_model(folded, x_qp, y_qp, weights)
    quantized = {id(p) for _, layer in integer_layers(qm) for p in (layer.weight, layer.bias) if p is not None}
    float_rest = sum(p.data.nbytes if isinstance(p, Parameter) else p.nbytes
                     for _, p in qm.named_weights() if id(p) not in quantized)
    return qm, {"activation_qparams": {n: {"input": x_qp[n], "output": y_qp[n]} for n in layers},
                "bytes": integer_bytes(qm) + int(float_rest)}
