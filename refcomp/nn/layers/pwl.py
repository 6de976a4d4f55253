"""Piecewise-linear activations, and the binary activation of binarized networks.

=============  ===================================  ==========================================
layer          forward y = f(x)                     backward dL/dx
=============  ===================================  ==========================================
HardTanh       clip(x, −1, 1)                       dy · 1{−1 < x < 1}
HardSigmoid    clip(α·x + β, 0, 1)  (α=0.2, β=0.5)  dy · α · 1{0 < α·x + β < 1}
BinarySign     +1 if x >= 0 else −1                 dy · 1{|x| <= 1}   (straight-through, eq. A1)
=============  ===================================  ==========================================

HardTanh and HardSigmoid are the piecewise-linear stand-ins for tanh and the
logistic sigmoid (3 linear pieces, no exp): HardTanh is the function BNN's
estimator differentiates (Hubara et al. 2016, arXiv:1602.02830, §2.3,
"Htanh"); HardSigmoid is ONNX HardSigmoid-6 with its default α, β (Keras'
hard_sigmoid). The derivative at a kink is taken as 0 (the flat side).

BinarySign is the binary activation of BNN / XNOR-Net (Rastegari et al. 2016,
arXiv:1603.05279, §3.2): sign forward (0 → +1, as the binary weights), and
the straight-through estimator with the saturation cut backward::

    ∂C/∂x = ∂C/∂y · 1{|x| <= 1}                                            (eq. A1)

the gradient of HardTanh (BNN §2.3, eq. 4); without the cut, inputs far
outside [−1, 1] would keep receiving gradient that can never flip their sign.
The output has the input's dtype and holds exactly ±1, so a ±1 matmul after
it is an exact integer sum (the packed path, refcomp.ops.binary_matmul).
"""

from __future__ import annotations

import numpy as np

from ...checks import float_tensor, real
from ...errors import ShapeError
from ..module import Module, register_layer

__all__ = ["HardTanh", "HardSigmoid", "BinarySign"]

_ANY_RANK = tuple(range(0, 9))


class _PWL(Module):
    def __init__(self):
        self._cache = None

    def backward(self, dy):
        self._require_forward(self._cache)
        if dy.shape != self._cache.shape:
            raise ShapeError("dy", f"shape {self._cache.shape}", dy.shape)
        return (dy * self._cache).astype(dy.dtype, copy=False)


@register_layer
class HardTanh(_PWL):
    def forward(self, x):
        x = float_tensor(x, "x", _ANY_RANK)
        self._cache = ((x > -1) & (x < 1)).astype(x.dtype)
        return np.clip(x, -1, 1)


@register_layer
class HardSigmoid(_PWL):
    """y = clip(α·x + β, 0, 1) (ONNX HardSigmoid; α = 0.2, β = 0.5 by default)."""

    def __init__(self, alpha: float = 0.2, beta: float = 0.5):
        self.alpha = real(alpha, "alpha")
        self.beta = real(beta, "beta")
        self._cache = None

    def config(self) -> dict:
        return {"alpha": self.alpha, "beta": self.beta}

    def forward(self, x):
        x = float_tensor(x, "x", _ANY_RANK)
        z = x * x.dtype.type(self.alpha) + x.dtype.type(self.beta)
        # the slope α where the line is not clipped: the cached factor of the backward
        self._cache = np.where((z > 0) & (z < 1), x.dtype.type(self.alpha), x.dtype.type(0))
        return np.clip(z, 0, 1)


@register_layer
class BinarySign(_PWL):
    """y = sign(x) in {−1, +1} (0 → +1); backward the clipped straight-through estimate (eq. A1)."""

    def forward(self, x):
        x = float_tensor(x, "x", _ANY_RANK)
        self._cache = (np.abs(x) <= 1).astype(x.dtype)
        return np.where(x >= 0, x.dtype.type(1), x.dtype.type(-1))
