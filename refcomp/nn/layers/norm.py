"""Normalisation layers: BatchNorm1d, BatchNorm2d, LayerNorm.

With the statistics taken over the set A of reduced axes (M elements each):

    μ = (1/M) Σ_A x,   σ² = (1/M) Σ_A (x − μ)²  (biased),   x̂ = (x − μ) / sqrt(σ² + ε),
    y = γ ⊙ x̂ + β.

Backward when μ, σ² are the batch's own statistics (Ioffe & Szegedy 2015, §3):

    dx̂ = dy ⊙ γ
    dL/dx = (1 / (M·sqrt(σ² + ε))) · (M·dx̂ − Σ_A dx̂ − x̂ ⊙ Σ_A (dx̂ ⊙ x̂))
    dL/dγ = Σ dy ⊙ x̂,   dL/dβ = Σ dy      (over the axes γ is broadcast on)

BatchNorm (A = every axis but the channel axis 1): training uses the batch
statistics and updates the running ones as PyTorch does,

    running_mean ← (1 − m)·running_mean + m·μ
    running_var  ← (1 − m)·running_var  + m·σ²·M/(M − 1)   (unbiased)

with momentum m = 0.1; eval mode uses the running statistics, a fixed affine
map whose backward is dL/dx = dy ⊙ γ / sqrt(running_var + ε).

LayerNorm (A = the last len(normalized_shape) axes, Ba et al. 2016) always
uses the sample's own statistics; γ, β have shape normalized_shape.
"""

from __future__ import annotations

import numpy as np

from ...checks import float_tensor, integer
from ...errors import ShapeError, ValidationError
from ..init import allocate
from ..module import Module, Parameter, _accumulate, register_layer

__all__ = ["BatchNorm1d", "BatchNorm2d", "LayerNorm"]


def _normalize_backward(dxhat, xhat, inv_std, axes, m):
    s1 = dxhat.sum(axis=axes, keepdims=True)
    s2 = (dxhat * xhat).sum(axis=axes, keepdims=True)
    return (inv_std / m) * (m * dxhat - s1 - xhat * s2)


class _BatchNorm(Module):
    _buffer_names = ("running_mean", "running_var")
    _ranks: tuple[int, ...] = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1,
                 affine: bool = True, dtype="float32"):
        self.num_features = integer(num_features, "num_features", minimum=1)
        if not (eps > 0):
            raise ValidationError("eps", "> 0", eps)
        if not (0.0 <= momentum <= 1.0):
            raise ValidationError("momentum", "in [0, 1]", momentum)
        self.eps, self.momentum = float(eps), float(momentum)
        dtype = np.dtype(dtype)
        self.weight = Parameter(allocate(num_features, dtype, 1)) if affine else None
        self.bias = Parameter(allocate(num_features, dtype)) if affine else None
        self.running_mean = allocate(num_features, dtype)
        self.running_var = allocate(num_features, dtype, 1)
        self._cache = None

    def config(self) -> dict:
        return {"num_features": self.num_features, "eps": self.eps, "momentum": self.momentum,
                "affine": self.weight is not None, "dtype": str(self.running_mean.dtype)}

    def _bshape(self, x):
        return (1, self.num_features) + (1,) * (x.ndim - 2)

    def forward(self, x):
        x = float_tensor(x, "x", self._ranks)
        if x.shape[1] != self.num_features:
            raise ShapeError("x", f"{self.num_features} channels on axis 1", f"shape {x.shape}")
        bs = self._bshape(x)
        axes = (0,) + tuple(range(2, x.ndim))
        m = x.size // self.num_features
        if self.training:
            if m < 2:
                raise ShapeError("x", "more than one value per channel in training mode", f"shape {x.shape}")
            mu = x.mean(axis=axes, keepdims=True)
            xc = x - mu
            var = np.mean(xc * xc, axis=axes, keepdims=True)
            k = self.momentum
            self.running_mean *= 1 - k
            self.running_mean += k * mu.reshape(-1)
            self.running_var *= 1 - k
            self.running_var += k * var.reshape(-1) * (m / (m - 1))
        else:
            xc = x - self.running_mean.reshape(bs)
            var = self.running_var.reshape(bs)
        inv_std = 1.0 / np.sqrt(var + self.eps)
        xhat = xc * inv_std
        self._cache = (xhat, inv_std, axes, m, self.training)
        if self.weight is None:
            return xhat
        return xhat * self.weight.data.reshape(bs) + self.bias.data.reshape(bs)

    def backward(self, dy):
        self._require_forward(self._cache)
        xhat, inv_std, axes, m, was_training = self._cache
        if dy.shape != xhat.shape:
            raise ShapeError("dy", f"shape {xhat.shape}", dy.shape)
        if self.weight is not None:
            _accumulate(self.weight, (dy * xhat).sum(axis=axes))
            _accumulate(self.bias, dy.sum(axis=axes))
            dxhat = dy * self.weight.data.reshape(self._bshape(dy))
        else:
            dxhat = dy
        if was_training:
            return _normalize_backward(dxhat, xhat, inv_std, axes, m)
        return dxhat * inv_std


@register_layer
class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) inputs over all axes but C."""

    _ranks = (2, 3)


@register_layer
class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) inputs over N, H, W."""

    _ranks = (4,)


@register_layer
class LayerNorm(Module):
    """Normalisation over the last ``len(normalized_shape)`` axes of each sample."""

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True,
                 dtype="float32"):
        if isinstance(normalized_shape, (int, np.integer)):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(integer(s, "normalized_shape", minimum=1) for s in normalized_shape)
        if not (eps > 0):
            raise ValidationError("eps", "> 0", eps)
        self.eps = float(eps)
        dtype = np.dtype(dtype)
        self.dtype = dtype
        self.weight = Parameter(allocate(self.normalized_shape, dtype, 1)) if elementwise_affine else None
        self.bias = Parameter(allocate(self.normalized_shape, dtype)) if elementwise_affine else None
        self._cache = None

    def config(self) -> dict:
        return {"normalized_shape": list(self.normalized_shape), "eps": self.eps,
                "elementwise_affine": self.weight is not None,
                "dtype": str(self.dtype)}

    def forward(self, x):
        k = len(self.normalized_shape)
        x = float_tensor(x, "x", tuple(range(k, k + 8)))
        if x.shape[x.ndim - k:] != self.normalized_shape:
            raise ShapeError("x", f"trailing shape {self.normalized_shape}", f"shape {x.shape}")
        axes = tuple(range(x.ndim - k, x.ndim))
        mu = x.mean(axis=axes, keepdims=True)
        xc = x - mu
        var = np.mean(xc * xc, axis=axes, keepdims=True)
        inv_std = 1.0 / np.sqrt(var + self.eps)
        xhat = xc * inv_std
        self._cache = (xhat, inv_std, axes, int(np.prod(self.normalized_shape)))
        if self.weight is None:
            return xhat
        return xhat * self.weight.data + self.bias.data

    def backward(self, dy):
        self._require_forward(self._cache)
        xhat, inv_std, axes, m = self._cache
        if dy.shape != xhat.shape:
            raise ShapeError("dy", f"shape {xhat.shape}", dy.shape)
        if self.weight is not None:
            lead = tuple(range(dy.ndim - len(axes)))
            _accumulate(self.weight, (dy * xhat).sum(axis=lead))
            _accumulate(self.bias, dy.sum(axis=lead))
            dxhat = dy * self.weight.data
        else:
            dxhat = dy
        return _normalize_backward(dxhat, xhat, inv_std, axes, m)
