"""Quantization-aware training (QAT): fake-quant in the forward pass, straight-through backward.

The model is trained as the float network that the integer model computes
(Jacob et al. 2018 §3; Krishnamoorthi 2018 §3.2; docs/gptq_and_ptq.md §8):

* BatchNorm is folded first (refcomp.nn.fold), so the weights trained are the
  ones the integer model will use.
* Weights: ŵ = fake_quant(W) per output channel, symmetric int8 [−127, 127],
  s_w[o] = max|W[o]| / 127 recomputed at every step; the gradient reaching
  W is the clipped straight-through estimate (refcomp.quant.fake_quantize_grad).
* Activations: the model input and every compute stage's output (after the
  fused ReLU) pass a FakeQuantize with a moving-average min/max observer
  (asymmetric uint8); observers are frozen after ``freeze_observers_epoch``
  epochs, after which (s, z) stay fixed and only the weights adapt to them.

LSQ option (Esser et al. 2020, "Learned Step Size Quantization",
arXiv:1902.08153, eqs. 1-5): the step s of every quantizer is a trained
parameter instead of an observer's output. For v with integer range
[−Q_N, Q_P]::

    v̄ = clip(v / s, −Q_N, Q_P),   v̂ = round(v̄) · s                        (L1)
    ∂v̂/∂v = 1 if −Q_N < v/s < Q_P else 0                                 (L2, STE)
    ∂v̂/∂s = round(v/s) − v/s  inside,  −Q_N or Q_P  outside               (L3)
    gradient of s scaled by g = 1 / sqrt(N_w · Q_P)                       (L4)

N_w = the number of elements sharing the step. Activations that are never
negative (the input, outputs of fused ReLUs) use uint8 (Q_N = 0, Q_P = 255),
the others int8 ([−128, 127]); weights int8 [−127, 127] per output channel;
zero points are 0. Initial step 2·mean|v| / sqrt(Q_P) (LSQ §2.1) on the first batch.

``to_integer(qat_model)`` exports the trained model to the integer-only
model (integer_model.py) with exactly the trained scales.
"""

from __future__ import annotations

import copy
import math

import numpy as np

from ...errors import ValidationError
from ...formats.dense import Dense
from ...nn.layers import ReLU
from ...nn.module import Module, Parameter, Sequential, as_rng
from ...nn.optim import SGD
from ...nn.schedules import CosineLR
from ...nn.train import train
from ...quant import (
    FakeQuantize,
    MovingAverageMinMaxObserver,
    QParams,
    choose_qparams,
    fake_quantize,
    fake_quantize_grad,
)
from .model_graph import Stage, prepare
from .integer_model import integer_model
from .ptq import calibrate, quantize_weight_per_channel

__all__ = ["ObserverFakeQuant", "LSQQuantizer", "QATCompute", "QATModel", "prepare_qat", "train_qat", "to_integer"]


class ObserverFakeQuant(Module):
    """Activation fake-quant with a moving-average observer (observes only in train mode, until frozen)."""

    def __init__(self, qparams: QParams, dtype: str = "uint8", averaging_constant: float = 0.01):
        obs = MovingAverageMinMaxObserver(dtype, averaging_constant=averaging_constant)
        self.fq = FakeQuantize(obs, observer_enabled=True)
        self.fq.qparams = qparams
        self.frozen = False

    def forward(self, x):
        self.fq.observer_enabled = self.training and not self.frozen
        return self.fq.forward(x).astype(x.dtype, copy=False)

    def backward(self, dy):
        return self.fq.backward(dy)

    def qparams(self) -> QParams:
        return self.fq.qparams


class LSQQuantizer(Module):
    """Learned step size quantizer, eqs. (L1)-(L4). ``axis`` None (per tensor) or 0 (per output channel)."""

    def __init__(self, qn: int, qp: int, *, axis: int | None = None, step=None):
        self.qn, self.qp, self.axis = int(qn), int(qp), axis
        self.step = None if step is None else Parameter(np.asarray(step, dtype=np.float32))
        self._cache = None

    def _s(self, v):
        s = self.step.data.astype(np.float64)
        return s.reshape((-1,) + (1,) * (v.ndim - 1)) if self.axis == 0 else s

    def forward(self, v):
        if self.step is None:        # LSQ §2.1 initialisation from the first batch
            a = np.abs(v.astype(np.float64))
            mean = a.reshape(a.shape[0], -1).mean(axis=1) if self.axis == 0 else a.mean()
            self.step = Parameter(np.maximum(2 * mean / math.sqrt(self.qp), 1e-8).astype(np.float32))
        s = self._s(v)
        r = v.astype(np.float64) / s
        vbar = np.clip(r, -self.qn, self.qp)
        self._cache = (r, vbar, v.shape)
        return (np.rint(vbar) * s).astype(v.dtype)

    def backward(self, dy):
        r, vbar, shape = self._cache
        inside = (r > -self.qn) & (r < self.qp)
        d_s = dy.astype(np.float64) * np.where(inside, np.rint(vbar) - r, vbar)       # eq. (L3)
        n_per_step = int(np.prod(shape)) // self.step.data.size
        g = 1.0 / math.sqrt(n_per_step * self.qp)                                     # eq. (L4)
        if self.axis == 0:
            d_s = d_s.reshape(shape[0], -1).sum(axis=1)
        else:
            d_s = d_s.sum()
        grad = np.asarray(d_s * g, dtype=self.step.data.dtype).reshape(self.step.data.shape)
        self.step.grad = grad if self.step.grad is None else self.step.grad + grad
        return dy * inside                                                            # eq. (L2)

    def qparams(self, dtype: str) -> QParams:
        s = np.asarray(self.step.data, dtype=np.float32)
        dt = np.uint8 if dtype == "uint8" else np.int8
        if self.axis == 0:
            return QParams(s, np.zeros(s.shape, dt), dtype, axis=0)
        return QParams(s.reshape(()), np.zeros((), dt), dtype)


def _weight_qparams(w: np.ndarray) -> QParams:
    flat = w.reshape(w.shape[0], -1)
    return choose_qparams(flat.min(axis=1), flat.max(axis=1), "int8", symmetric=True, restricted_range=True, axis=0)


class QATCompute(Module):
    """A Conv2d / Linear (+ fused ReLU) with fake-quant weights and output.

    ``weight`` is the float master weight the optimizer updates; ``bias`` is
    the float bias (quantized to int32 only at export). ``out_quant`` fake-quantizes the output.
    """

    accepts_input_grad = True

    def __init__(self, layer, relu: bool, out_quant: Module | None, *, weight_quant: Module | None = None):
        self.weight = Dense(np.array(layer.weight.to_dense(), copy=True))
        self.bias = layer.bias
        self._inner = [layer]            # in a list: its (fake-quant) weight is not a parameter of this model
        self.relu = bool(relu)
        self.out_quant = out_quant
        self.weight_quant = weight_quant  # None: per-channel int8 fake quant; else forward(w) / backward(g)
        self._cache = None

    @property
    def layer(self):
        return self._inner[0]

    def fake_weight(self) -> np.ndarray:
        w = self.weight.data
        if self.weight_quant is not None:
            return self.weight_quant.forward(w)
        return fake_quantize(w, _weight_qparams(w)).astype(w.dtype)

    def forward(self, x):
        w_hat = self.fake_weight()
        inner = self.layer
        inner.weight = Dense(w_hat)
        inner.bias = self.bias
        y = inner.forward(x)
        mask = None
        if self.relu:
            mask = y > 0
            y = y * mask
        self._cache = mask
        return y if self.out_quant is None else self.out_quant.forward(y)

    def backward(self, dy, *, input_grad: bool = True):
        g = dy if self.out_quant is None else self.out_quant.backward(dy)
        if self.relu:
            g = g * self._cache
        inner = self.layer
        inner.weight.grad = None
        dx = inner.backward(g, input_grad=input_grad)
        gw = inner.weight.grad
        if self.weight_quant is not None:
            gw = self.weight_quant.backward(gw)
        else:
            w = self.weight.data
            gw = fake_quantize_grad(w, _weight_qparams(w), gw)         # clipped STE
        self.weight.grad = gw if self.weight.grad is None else self.weight.grad + gw
        return dx


class QATModel(Sequential):
    """Sequential of the input quantizer, QATCompute stages and the unchanged pool/flatten/ReLU layers.

    ``signed`` maps "input" and each stage name to True when that activation
    may be negative (LSQ then quantizes it to int8, else uint8).
    """

    def __init__(self, *layers, lsq: bool = False, signed: dict | None = None):
        super().__init__(*layers)
        self.lsq = lsq
        self._signed = dict(signed or {})

    def freeze_observers(self, frozen: bool = True) -> None:
        for _, m in self.named_modules():
            if isinstance(m, ObserverFakeQuant):
                m.frozen = frozen


def _nonneg_after(stage: Stage) -> bool:
    return stage.kind == "compute" and stage.relu


def prepare_qat(model, calibration_x, *, lsq: bool = False, batch_size: int = 500) -> QATModel:
    """The QAT model of ``model`` (BatchNorm folded), activation ranges initialised on ``calibration_x``."""
    folded = prepare(model)
    stages, qparams = calibrate(folded, calibration_x, observer="minmax", activation_dtype="uint8",
                                batch_size=batch_size)
    x0 = np.asarray(calibration_x, dtype=np.float32)
    nonneg_input = bool(x0.min() >= 0)

    def act(name, nonneg):
        if lsq:
            return LSQQuantizer(0, 255) if nonneg else LSQQuantizer(128, 127)
        return ObserverFakeQuant(qparams[name])

    layers = [("input_quant", act("input", nonneg_input))]
    for s in stages:
        if s.kind == "compute":
            layers.append((s.name, QATCompute(s.layer, s.relu, act(s.name, _nonneg_after(s)),
                                                weight_quant=LSQQuantizer(127, 127, axis=0) if lsq else None)))
        else:
            layers.append((s.name, s.layer))
    signed = {s.name: not _nonneg_after(s) for s in stages if s.kind == "compute"}
    signed["input"] = not nonneg_input
    m = QATModel(*layers, lsq=lsq, signed=signed)
    m.forward(x0[:batch_size])          # LSQ: initial steps from a first batch
    return m


def train_qat(model: QATModel, data, *, epochs: int = 2, freeze_observers_epoch: int = 1, lr: float = 0.01,
              momentum: float = 0.9, batch_size: int = 64, rng=0) -> list[dict]:
    """Fine-tune ``model`` with refcomp.nn.train, one epoch at a time (cosine lr over ``epochs``).

    Observers run during the first ``freeze_observers_epoch`` epochs, then freeze.
    """
    if not isinstance(model, QATModel):
        raise ValidationError("model", "a QATModel (from prepare_qat)", type(model).__name__)
    g = as_rng(rng)
    opt = SGD(model.parameters(), lr=lr, momentum=momentum)
    sched = CosineLR(lr, epochs)
    history = []
    for e in range(epochs):
        model.freeze_observers(e >= freeze_observers_epoch)
        history += train(model, data, epochs=1, optimizer=opt, schedule=lambda _t, e=e: sched(e),
                         batch_size=batch_size, rng=g, progress=False)
    model.freeze_observers(True)
    return history


def to_integer(model: QATModel) -> Sequential:
    """The integer-only model (integer_model.py) with the QAT model's weights and activation parameters."""
    if not isinstance(model, QATModel):
        raise ValidationError("model", "a QATModel (from prepare_qat)", type(model).__name__)
    layers = list(model.layers.items())

    def act_qparams(q, key):
        if isinstance(q, LSQQuantizer):
            return q.qparams("int8" if model._signed[key] else "uint8")
        return q.qparams()

    qparams = {"input": act_qparams(layers[0][1], "input")}
    weights, float_layers = {}, []
    for name, layer in layers[1:]:
        if isinstance(layer, QATCompute):
            w = layer.weight.data
            if layer.weight_quant is not None:
                s = layer.weight_quant.step.data.astype(np.float32)
                r = w.astype(np.float64) / s.astype(np.float64).reshape((-1,) + (1,) * (w.ndim - 1))
                codes = np.clip(np.rint(r), -127, 127).astype(np.int8)
                weights[name] = (codes, s)
            else:
                weights[name] = quantize_weight_per_channel(w)
            qparams[name] = act_qparams(layer.out_quant, name)
            inner = copy.deepcopy(layer.layer)
            inner.bias = layer.bias
            float_layers.append((name, inner))
            if layer.relu:                  # the fused ReLU becomes a layer again: on codes, the clamp at z_y
                float_layers.append((f"{name}_relu", ReLU()))
        else:
            float_layers.append((name, layer))
    return integer_model(Sequential(*float_layers), qparams, weights)
