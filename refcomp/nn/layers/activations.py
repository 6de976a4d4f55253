"""Element-wise activations and their derivatives.

=========  ====================================  =====================================
layer      forward y = f(x)                      backward dL/dx = dy ⊙ f'(x)
=========  ====================================  =====================================
ReLU       max(x, 0)                             dy · [x > 0]          (f'(0) := 0)
ReLU6      min(max(x, 0), 6)                     dy · [0 < x < 6]
LeakyReLU  x if x >= 0 else α·x                  dy · (1 if x >= 0 else α)   (ONNX LeakyRelu)
Tanh       tanh(x)                               dy · (1 − y²)
Sigmoid    1 / (1 + e^(−x))                      dy · y · (1 − y)
GELU       x · Φ(x), Φ(x) = ½(1 + erf(x/√2))     dy · (Φ(x) + x · φ(x)), φ the N(0,1) pdf
GELU tanh  ½x(1 + tanh(√(2/π)(x + 0.044715x³)))  the derivative of that expression
=========  ====================================  =====================================

GELU: Hendrycks & Gimpel 2016; approximate="tanh" is their eq. for the fast
form (PyTorch's ``approximate='tanh'``). Sigmoid is evaluated as
e^x / (1 + e^x) for x < 0 so that no exp overflows.
"""

from __future__ import annotations

import math

import numpy as np

from ...checks import float_tensor
from ...errors import ShapeError, ValidationError
from ...formats.qtensor import QTensor
from ...ops import erf, gelu
from ..module import Module, register_layer

__all__ = ["ReLU", "ReLU6", "LeakyReLU", "Tanh", "Sigmoid", "GELU"]


class _Elementwise(Module):
    def __init__(self):
        self._cache = None

    def _check_dy(self, dy, ref):
        if dy.shape != ref.shape:
            raise ShapeError("dy", f"shape {ref.shape}", dy.shape)


@register_layer
class ReLU(_Elementwise):
    def forward(self, x):
        if isinstance(x, QTensor):
            # z is the code of the real 0 and dequantization is increasing: max(q, z) is the code of relu(x̂)
            return QTensor(np.maximum(x.data, x.qparams.zero_point), x.qparams)
        x = float_tensor(x, "x", tuple(range(0, 9)))
        self._cache = x > 0
        return np.maximum(x, 0)

    def backward(self, dy):
        self._require_forward(self._cache)
        self._check_dy(dy, self._cache)
        return dy * self._cache


@register_layer
class ReLU6(_Elementwise):
    def forward(self, x):
        x = float_tensor(x, "x", tuple(range(0, 9)))
        self._cache = (x > 0) & (x < 6)
        return np.clip(x, 0, 6)

    def backward(self, dy):
        self._require_forward(self._cache)
        self._check_dy(dy, self._cache)
        return dy * self._cache


@register_layer
class LeakyReLU(_Elementwise):
    """y = x for x >= 0, α·x below (ONNX LeakyRelu, default α = 0.01)."""

    def __init__(self, alpha: float = 0.01):
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating)) or not math.isfinite(alpha):
            raise ValidationError("alpha", "a finite float", repr(alpha))
        self.alpha = float(alpha)
        self._cache = None

    def config(self) -> dict:
        return {"alpha": self.alpha}

    def forward(self, x):
        x = float_tensor(x, "x", tuple(range(0, 9)))
        # the slope as an array of x's dtype, so a float32 x stays float32 (ONNX computes in T)
        slope = np.where(x >= 0, x.dtype.type(1), x.dtype.type(self.alpha))
        self._cache = slope
        return x * slope

    def backward(self, dy):
        self._require_forward(self._cache)
        self._check_dy(dy, self._cache)
        return dy * self._cache


@register_layer
class Tanh(_Elementwise):
    def forward(self, x):
        x = float_tensor(x, "x", tuple(range(0, 9)))
        self._cache = np.tanh(x)
        return self._cache

    def backward(self, dy):
        self._require_forward(self._cache)
        self._check_dy(dy, self._cache)
        y = self._cache
        return dy * (1 - y * y)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e^(−x)) without overflow: e^(−|x|) is always <= 1."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


@register_layer
class Sigmoid(_Elementwise):
    def forward(self, x):
        x = float_tensor(x, "x", tuple(range(0, 9)))
        self._cache = sigmoid(x)
        return self._cache

    def backward(self, dy):
        self._require_forward(self._cache)
        self._check_dy(dy, self._cache)
        y = self._cache
        return dy * y * (1 - y)


@register_layer
class GELU(_Elementwise):
    """GELU (refcomp.ops.gelu, ONNX Gelu-20): exact (erf) or approximate="tanh".

    forward: float64 evaluates the definition (the C library's erf per element);
    float32 under backend "auto" runs the C / Numba kernel, within eq. G2 of it.
    backward: Φ(x) + x·φ(x) from refcomp.ops.erf, exactly as before."""

    _C = math.sqrt(2.0 / math.pi)

    def __init__(self, approximate: str = "none"):
        if approximate not in ("none", "tanh"):
            raise ValidationError("approximate", "'none' or 'tanh'", repr(approximate))
        self.approximate = approximate
        self._cache = None

    def config(self) -> dict:
        return {"approximate": self.approximate}

    def forward(self, x):
        x = float_tensor(x, "x", tuple(range(0, 9)))
        self._cache = x
        # refcomp.ops.gelu: float32 runs the fast kernel (within eq. G2 of the definition),
        # float64 the definition itself, so gradient checks compare against the exact formula
        return gelu(x, approximate=self.approximate)

    def backward(self, dy):
        self._require_forward(self._cache)
        x = self._cache
        self._check_dy(dy, x)
        if self.approximate == "tanh":
            u = self._C * (x + 0.044715 * x ** 3)
            t = np.tanh(u)
            du = self._C * (1 + 3 * 0.044715 * x * x)
            d = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du
        else:
            cdf = 0.5 * (1 + erf(x / np.asarray(math.sqrt(2.0), x.dtype)))
            pdf = np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
            d = cdf + x * pdf
        return (dy * d).astype(dy.dtype, copy=False)
