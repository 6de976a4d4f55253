"""Quantization-parameter granularity: per tensor, per axis, per block (ONNX QuantizeLinear-21+).

Given x of shape (D0, ..., Di, ..., Dn), ``axis = i`` and ``block_size = B``,
a scale (and its zero point, which must have the same shape) is

- per tensor:  a scalar (or a 1-element 1-D tensor);
- per axis:    1-D of length Di, block_size = 0;  element j applies to x[..., j, ...];
- per block:   shape (D0, ..., ceil(Di / B), ..., Dn), block_size = B > 0;
               element [..., j, ...] applies to x[..., j*B : (j+1)*B, ...]
               (the last block is shorter when B does not divide Di).

:func:`expand` returns the parameter reshaped / repeated so that it broadcasts
elementwise against x.
"""

from __future__ import annotations

import numpy as np

from ..checks import integer, normalize_axis
from ..errors import ShapeError, ValidationError


def granularity(p: np.ndarray, name: str, x_shape: tuple, axis, block_size) -> str:
    """Check the shape of parameter ``p`` against x; return "tensor" | "axis" | "block"."""
    block_size = integer(block_size, "block_size")
    if block_size < 0:
        raise ValidationError("block_size", "an int >= 0 (0: no blocking)", block_size)
    if block_size == 0 and (p.ndim == 0 or (p.ndim == 1 and p.size == 1)):
        return "tensor"
    if len(x_shape) == 0:
        raise ShapeError(name, "a scalar for a 0-D input", f"shape {p.shape}")
    ax = normalize_axis(axis, len(x_shape))
    if block_size == 0:
        if p.ndim != 1 or p.shape[0] != x_shape[ax]:
            raise ShapeError(
                name,
                f"a scalar or a 1-D tensor of length x.shape[{ax}] = {x_shape[ax]} (axis={axis})",
                f"shape {p.shape}",
            )
        return "axis"
    want = list(x_shape)
    want[ax] = -(-x_shape[ax] // block_size)  # ceil(Di / B)
    if p.shape != tuple(want):
        raise ShapeError(
            name,
            f"shape {tuple(want)} for blocked quantization (x.shape {tuple(x_shape)}, axis={axis}, "
            f"block_size={block_size}: ceil({x_shape[ax]}/{block_size}) = {want[ax]} blocks)",
            f"shape {p.shape}",
        )
    return "block"


def expand(p: np.ndarray, name: str, x_shape: tuple, axis, block_size) -> np.ndarray:
    """``p`` reshaped (per axis) or repeated (per block) to broadcast against an x of ``x_shape``."""
    kind = granularity(p, name, x_shape, axis, block_size)
    if kind == "tensor":
        return p.reshape(())
    ax = normalize_axis(axis, len(x_shape))
    if kind == "axis":
        shape = [1] * len(x_shape)
        shape[ax] = p.shape[0]
        return p.reshape(shape)
    rep = np.repeat(p, block_size, axis=ax)
    return np.take(rep, np.arange(x_shape[ax]), axis=ax)


def same_shape(scale: np.ndarray, zero_point, scale_name: str, zp_name: str) -> None:
    if zero_point is not None and np.shape(zero_point) != scale.shape:
        # ONNX: "y_zero_point must have the same shape as y_scale"; a 1-element pair is per tensor in both.
        if not (np.size(zero_point) == 1 and scale.size == 1):
            raise ShapeError(zp_name, f"the shape of {scale_name} {scale.shape}", f"shape {np.shape(zero_point)}")
