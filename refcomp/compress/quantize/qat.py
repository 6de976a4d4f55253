"""Quantization-aware training (QAT): fake-quant in the forward pass, straight-through backward.

The model is trained as the float network that the integer model computes
(Jacob et al. 2018 §3; Krishnamoorthi 2018 §3.2; docs/gptq_and_ptq.md §8).
It is a copy of the float model, transformed the way PTQ transforms it: each
Conv2d / Linear keeps its place and its bias, its weight becomes a
``FakeQuantized`` weight (the float master weight, computed with as ŵ), and
an activation quantizer layer follows every compute layer (after its ReLU)
and precedes the model input; ``refcomp.nn.train`` trains it as any model.

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
from ...formats.base import WeightFormat
from ...formats.dense import Dense
from ...nn.layers import Conv2d, Linear
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
from .model_graph import flat_layers, prepare, stages_of
from .integer_model import integer_bytes, integer_model
from .ptq import calibrate, quantize_weight_per_channel

__all__ = ["ObserverFakeQuant", "LSQQuantizer", "PerChannelFakeQuant", "FakeQuantized", "prepare_qat",
           "freeze_observers", "train_qat", "to_integer"]


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


class PerChannelFakeQuant:
    """ŵ = fake_quant(W) per output channel, symmetric int8 [−127, 127], s_w[o] = max|W[o]| / 127
    recomputed from W at every call; backward: the clipped straight-through estimate."""

    def forward(self, w: np.ndarray) -> np.ndarray:
        self._w = w
        return fake_quantize(w, _weight_qparams(w)).astype(w.dtype)

    def backward(self, g: np.ndarray) -> np.ndarray:
        return fake_quantize_grad(self._w, _weight_qparams(self._w), g)


class FakeQuantized(WeightFormat):
    """A float master weight that computes as its fake quantization ŵ = quantizer.forward(W) (QAT).

    ``data`` is the master weight the optimizer updates; ``to_dense()`` is ŵ,
    so the layer's forward and its dL/dx use ŵ, as the integer model will. The
    layer's backward hands dL/dŵ to :meth:`accumulate_grad`, which stores
    dL/dW = quantizer.backward(dL/dŵ) in ``grad`` (the straight-through
    rule of the quantizer). ``quantizer``: PerChannelFakeQuant, an
    LSQQuantizer (whose step is trained too: :meth:`named_parameters`), or a
    binary / ternary quantizer (lowbit_model). A training-time weight: models
    holding it are exported (``to_integer``), not saved.
    """

    trainable = True

    def __init__(self, data, quantizer):
        self.data = np.ascontiguousarray(np.array(data, copy=True))
        if self.data.dtype.kind != "f":
            raise ValidationError("data", "a float array", self.data.dtype)
        self.quantizer = quantizer
        self.grad = None

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    def to_dense(self) -> np.ndarray:
        return self.quantizer.forward(self.data)

    def accumulate_grad(self, g: np.ndarray) -> None:
        gw = self.quantizer.backward(np.asarray(g, dtype=self.data.dtype))
        self.grad = gw if self.grad is None else self.grad + gw

    def named_parameters(self):
        """The quantizer's trained step (LSQ), as (name, Parameter)."""
        step = getattr(self.quantizer, "step", None)
        return [("step", step)] if step is not None else []

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes)

    def fields(self):
        raise ValidationError("weight", "a stored format (export a QAT model with to_integer first)",
                              "FakeQuantized")

    def __repr__(self) -> str:
        return f"FakeQuantized(shape={self.shape}, quantizer={type(self.quantizer).__name__})"


def fake_quantized_model(model, weight_quantizer, activation_quantizer=None, input_quantizer=None) -> Sequential:
    """A flat copy of the folded ``model`` for training with fake quantization.

    Every Conv2d / Linear weight becomes ``FakeQuantized(W, weight_quantizer(name))``;
    with ``activation_quantizer(name, nonneg)``, a layer ``<name>_quant`` follows
    each compute stage's output (after its ReLU), and ``input_quant`` =
    ``input_quantizer()`` comes first. ``nonneg``: the stage ends in a ReLU.
    """
    folded = copy.deepcopy(model)
    fused = {s.name: s.relu for s in stages_of(folded) if s.kind == "compute"}
    layers = [] if input_quantizer is None else [("input_quant", input_quantizer())]
    pending = None              # the compute layer whose quantizer goes after its ReLU
    for dotted, layer in flat_layers(folded):
        name = dotted.replace(".", "_")             # one flat Sequential
        if isinstance(layer, (Conv2d, Linear)):
            layer.weight = FakeQuantized(layer.weight.to_dense(), weight_quantizer(name))
        layers.append((name, layer))
        if activation_quantizer is None:
            continue
        if pending is not None:                     # this is the pending stage's ReLU (stages_of fused it)
            layers.append((f"{pending}_quant", activation_quantizer(pending, True)))
            pending = None
        elif isinstance(layer, (Conv2d, Linear)):
            if fused[dotted]:
                pending = name
            else:
                layers.append((f"{name}_quant", activation_quantizer(name, False)))
    return Sequential(*layers)


def prepare_qat(model, calibration_x, *, lsq: bool = False, batch_size: int = 500) -> tuple[Sequential, dict]:
    """(the QAT model of ``model`` (BatchNorm folded), activation ranges initialised on ``calibration_x``,
    report {"activation_qparams": the calibrated ones}); ``model`` is not modified."""
    folded = prepare(model)
    _, calibrated = calibrate(folded, calibration_x, observer="minmax", activation_dtype="uint8",
                              batch_size=batch_size)
    qparams = {k.replace(".", "_"): v for k, v in calibrated.items()}     # the QAT model's flat names
    x0 = np.asarray(calibration_x, dtype=np.float32)

    def act(name, nonneg):
        if lsq:
            return LSQQuantizer(0, 255) if nonneg else LSQQuantizer(128, 127)
        return ObserverFakeQuant(qparams[name])

    m = fake_quantized_model(folded, lambda _name: LSQQuantizer(127, 127, axis=0) if lsq else PerChannelFakeQuant(),
                             act, lambda: act("input", bool(x0.min() >= 0)))
    m.forward(x0[:batch_size])          # LSQ: initial steps from a first batch
    return m, {"activation_qparams": qparams}


def freeze_observers(model, frozen: bool = True) -> None:
    """Stop (or restart) every activation observer of a QAT model; (s, z) then stay fixed."""
    for _, m in model.named_modules():
        if isinstance(m, ObserverFakeQuant):
            m.frozen = frozen


def train_qat(model, data, *, epochs: int = 2, freeze_observers_epoch: int = 1, lr: float = 0.01,
              momentum: float = 0.9, batch_size: int = 64, rng=0) -> list[dict]:
    """Fine-tune ``model`` with refcomp.nn.train, one epoch at a time (cosine lr over ``epochs``).

    Observers run during the first ``freeze_observers_epoch`` epochs, then freeze.
    """
    _check_qat_model(model)
    g = as_rng(rng)
    opt = SGD(model.parameters(), lr=lr, momentum=momentum)
    sched = CosineLR(lr, epochs)
    history = []
    for e in range(epochs):
        freeze_observers(model, e >= freeze_observers_epoch)
        history += train(model, data, epochs=1, optimizer=opt, schedule=lambda _t, e=e: sched(e),
                         batch_size=batch_size, rng=g, progress=False)
    freeze_observers(model, True)
    return history


def _check_qat_model(model) -> list[tuple[str, Module]]:
    layers = list(model.layers.items()) if isinstance(model, Sequential) else []
    if not layers or layers[0][0] != "input_quant" or not any(
            isinstance(getattr(m, "weight", None), FakeQuantized) for _, m in layers):
        raise ValidationError("model", "a QAT model (from prepare_qat)", type(model).__name__)
    return layers


def _activation_qparams(q) -> QParams:
    if isinstance(q, LSQQuantizer):          # unsigned after a ReLU (Q_N = 0), else signed
        return q.qparams("uint8" if q.qn == 0 else "int8")
    return q.qparams()


def to_integer(model) -> tuple[Sequential, dict]:
    """(the integer-only model (integer_model.py) with the QAT model's weights and activation
    parameters, report {"activation_qparams", "bytes"}); ``model`` is not modified."""
    layers = _check_qat_model(model)
    qparams = {"input": _activation_qparams(layers[0][1])}
    weights, float_layers = {}, []
    for name, layer in layers[1:]:
        if isinstance(layer, (ObserverFakeQuant, LSQQuantizer)):
            qparams[name[:-len("_quant")]] = _activation_qparams(layer)
            continue
        if isinstance(getattr(layer, "weight", None), FakeQuantized):
            w, quantizer = layer.weight.data, layer.weight.quantizer
            if isinstance(quantizer, LSQQuantizer):
                s = quantizer.step.data.astype(np.float32)
                r = w.astype(np.float64) / s.astype(np.float64).reshape((-1,) + (1,) * (w.ndim - 1))
                weights[name] = (np.clip(np.rint(r), -127, 127).astype(np.int8), s)
            else:
                weights[name] = quantize_weight_per_channel(w)
            layer = copy.copy(layer)
            layer.weight = Dense(w)
        float_layers.append((name, layer))
    im = integer_model(Sequential(*float_layers), qparams, weights)
    return im, {"activation_qparams": qparams, "bytes": integer_bytes(im)}
