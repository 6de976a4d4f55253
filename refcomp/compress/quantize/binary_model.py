"""Fully binary networks: binary weights and binary activations (XNOR-Net / BNN), and their packed inference.

``binarize_model(model)`` turns an MLP or a LeNet (a Sequential of Conv2d /
Linear / ReLU / MaxPool2d / Flatten / Dropout, BatchNorm folded first) into a
model that ``refcomp.nn.train`` trains as any other:

* every compute layer but the last is followed by a BinarySign (eq. A1,
  refcomp.nn.layers.pwl: sign forward, STE cut at |x| > 1): it replaces the
  layer's ReLU, or is inserted after it. Sign is monotone, so it commutes with
  max-pooling, and a pooled ±1 map is still ±1;
* every *hidden* compute layer (not the first, not the last) becomes an
  :class:`XnorLayer`: y = α ⊙ (x ⊛ sign(W)) + b, α_c = mean|W_c| per output
  channel (Rastegari et al. 2016, arXiv:1603.05279, §3.1, eq. 4; §3.2 with
  binary inputs);
* the first layer (it sees the real image) and the last (it makes the
  logits) keep float32 weights: XNOR-Net §4.1 and BNN (Hubara et al. 2016,
  arXiv:1602.02830, §2.6) do the same; the last one's input is ±1.

Because x is ±1 and sign(W) is ±1, x ⊛ sign(W) is an integer sum, exact in
float32 for K < 2^24; :class:`PackedBinaryModel` computes it instead with the
bit-count op (refcomp.ops.binary_matmul, eq. B1) on packed words and applies
the same α, b afterwards, so its logits equal the float model's bit for bit.

Gradient of an XnorLayer (ŵ = α·s, s = sign W, n weights per channel)::

    ∂C/∂W_i = s_i / n · ∂C/∂α_c  +  α_c · ∂C/∂ŵ_i · 1{|W_i| <= 1}              (X1)

with ∂C/∂α_c = Σ dy_c · (x ⊛ s)_c: the exact derivative through α plus the
clipped STE through sign, lowbit.xnor_grad's eq. (17) assembled from the
inner layer's gradient.
"""

from __future__ import annotations

import copy

import numpy as np

from ...errors import ValidationError
from ...nn.layers import BinarySign, Conv2d, Dropout, Flatten, Linear, MaxPool2d, ReLU
from ...nn.module import Module, Sequential, _accumulate
from ...ops import binary_matmul, pack_signs
from ...ops.im2col import im2col
from .model_graph import flat_layers, prepare
from .qat import FakeQuantized

__all__ = ["SignCodes", "XnorLayer", "binarize_model", "binary_bytes", "PackedBinaryModel"]


class SignCodes:
    """The weight a hidden layer computes with: sign(W) in {−1, +1} (0 → +1); backward g · 1{|W| <= 1}."""

    bits = 1

    def forward(self, w):
        self._w = w
        return np.where(w >= 0, 1, -1).astype(w.dtype)

    def backward(self, g):
        return (g * (np.abs(self._w) <= 1)).astype(g.dtype)


def _channel_shape(layer):
    return (1, -1) if isinstance(layer, Linear) else (1, -1, 1, 1)


def scale_output(s, alpha, bias, layer):
    """α ⊙ s + b, broadcast per output channel; shared by the float model and the packed path."""
    shp = _channel_shape(layer)
    y = s * alpha.reshape(shp)
    return y if bias is None else y + bias.reshape(shp)


class XnorLayer(Module):
    """y = α ⊙ (x ⊛ sign(W)) + b around a Linear / Conv2d ``inner`` that computes with sign(W); gradient (X1)."""

    accepts_input_grad = True

    def __init__(self, layer):
        inner = copy.deepcopy(layer)
        self.bias = inner.bias
        inner.bias = None
        inner.weight = FakeQuantized(layer.weight.to_dense(), SignCodes())
        self.inner = inner
        self._s = None

    def alpha(self) -> np.ndarray:
        w = self.inner.weight.data
        return np.mean(np.abs(w), axis=tuple(range(1, w.ndim))).astype(w.dtype)

    def forward(self, x):
        s = self.inner(x)
        self._s = s
        return scale_output(s, self.alpha(), None if self.bias is None else self.bias.data, self.inner)

    def backward(self, dy, *, input_grad: bool = True):
        self._require_forward(self._s)
        axes = (0,) + tuple(range(2, dy.ndim))
        if self.bias is not None:
            _accumulate(self.bias, dy.sum(axis=axes))
        a = self.alpha()
        d_alpha = np.sum(dy * self._s, axis=axes)
        dx = self.inner.backward(dy * a.reshape(_channel_shape(self.inner)), input_grad=input_grad)
        w = self.inner.weight  # its grad now holds the STE term of (X1); add the term through α
        n = w.data[0].size
        s = np.where(w.data >= 0, 1.0, -1.0)
        w.grad = w.grad + (s / n * d_alpha.reshape((-1,) + (1,) * (w.data.ndim - 1))).astype(w.grad.dtype)
        return dx


def binarize_model(model, *, binary_first: bool = False) -> tuple[Sequential, dict]:
    """(the trainable fully binary copy of ``model``, report {"bytes", "binary_layers"}).

    ``binary_first=True`` gives the first layer XNOR weights too, its input staying real (BNN's
    treatment, §2.6: the first layer's input is the image; the packed path runs it in float).
    """
    if not isinstance(binary_first, bool):
        raise ValidationError("binary_first", "True or False", repr(binary_first))
    layers = [(n.replace(".", "_"), layer) for n, layer in flat_layers(prepare(model))]
    compute = [i for i, (_, layer) in enumerate(layers) if isinstance(layer, (Conv2d, Linear))]
    if len(compute) < 3:
        raise ValidationError("model", "at least 3 Conv2d / Linear layers (the first and last stay float)",
                              f"{len(compute)}")
    out, binary = [], []
    for i, (name, layer) in enumerate(layers):
        if isinstance(layer, ReLU):
            if i - 1 not in compute:
                raise ValidationError(f"model layer {name!r}", "a ReLU right after a Conv2d / Linear", "another place")
            continue  # replaced by the BinarySign the compute layer before it adds (or dropped after the last)
        if not isinstance(layer, (Conv2d, Linear, MaxPool2d, Flatten, Dropout)):
            raise ValidationError(f"model layer {name!r}",
                                  "Conv2d, Linear, ReLU, MaxPool2d, Flatten or Dropout (sign must commute with it)",
                                  type(layer).__name__)
        if i in compute[1:-1] or (binary_first and i == compute[0]):
            if isinstance(layer, Conv2d) and (any(layer.padding) or layer.groups != 1):
                raise ValidationError(f"model layer {name!r}", "a hidden Conv2d without padding and groups=1 "
                                      "(a zero pad is not ±1)", f"padding {layer.padding}, groups {layer.groups}")
            layer = XnorLayer(layer)
            binary.append(name)
        out.append((name, layer))
        if i in compute[:-1]:
            out.append((f"{name}_sign", BinarySign()))
    m = Sequential(*out)
    return m, {"bytes": binary_bytes(m), "binary_layers": binary}


def binary_bytes(model) -> int:
    """Stored size: 1 bit per hidden weight (packed per row in uint64 words), float32 α per channel,
    float32 biases, float32 weights of the first and last layers."""
    total = 0
    for _, layer in flat_layers(model):
        if isinstance(layer, XnorLayer):
            w = layer.inner.weight.data
            total += w.shape[0] * 8 * -(-w[0].size // 64) + 4 * w.shape[0]
            total += 0 if layer.bias is None else 4 * layer.bias.data.size
        elif isinstance(layer, (Conv2d, Linear)):
            total += 4 * layer.weight.to_dense().size + (0 if layer.bias is None else 4 * layer.bias.data.size)
    return int(total)


class PackedBinaryModel:
    """Inference of a ``binarize_model`` model with every XnorLayer run by the bit-count op on packed words.

    forward(x) equals the float model's eval forward bit for bit (the ±1 sums are exact in both).
    """

    def __init__(self, model, *, backend="auto"):
        self.backend = backend
        self.steps = []
        binary_input = False  # an XnorLayer before the first BinarySign sees real input: it runs in float
        for _, layer in flat_layers(copy.deepcopy(model).eval()):
            binary_input = binary_input or isinstance(layer, BinarySign)
            if isinstance(layer, XnorLayer) and binary_input:
                w = layer.inner.weight.data
                packed = pack_signs(w.reshape(w.shape[0], -1))
                bias = None if layer.bias is None else layer.bias.data.copy()
                self.steps.append(("xnor", (layer.inner, packed, w[0].size, layer.alpha(), bias)))
            else:
                self.steps.append(("float", layer))

    def _xnor(self, x, inner, packed, k, alpha, bias):
        if isinstance(inner, Linear):
            s = binary_matmul(pack_signs(x), packed, k, backend=self.backend)
        else:
            n, _, oh, ow = inner.output_shape(x.shape)
            colsT = im2col(x, inner.kernel_size, inner.stride, inner.dilation, (oh, ow))
            d = binary_matmul(pack_signs(colsT.T), packed, k, backend=self.backend)
            s = d.reshape(n, oh, ow, -1).transpose(0, 3, 1, 2)
        return scale_output(s.astype(x.dtype), alpha, bias, inner)

    def forward(self, x):
        x = np.asarray(x)
        for kind, item in self.steps:
            x = self._xnor(x, *item) if kind == "xnor" else item.forward(x)
        return x

    __call__ = forward
