"""Argument checks shared by the layers."""

from __future__ import annotations

import numpy as np

from ...errors import DTypeError, ShapeError, ValidationError


def pos_int(value, argument: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValidationError(argument, f"an int >= {minimum}", repr(value))
    return int(value)


def pair(value, argument: str, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints, each >= minimum, as a tuple (a, b)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValidationError(argument, "an int or a pair of ints", repr(value))
        return pos_int(value[0], argument, minimum), pos_int(value[1], argument, minimum)
    v = pos_int(value, argument, minimum)
    return v, v


def float_input(x, argument: str, ndim: int | tuple[int, ...]) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind != "f":
        raise DTypeError(argument, "a floating array", x.dtype)
    dims = (ndim,) if isinstance(ndim, int) else ndim
    if x.ndim not in dims:
        raise ShapeError(argument, f"rank {' or '.join(map(str, dims))}", f"shape {x.shape}")
    return x


def need_cache(cache, layer) -> None:
    if cache is None:
        raise ValidationError("backward", f"a preceding forward() of {type(layer).__name__}", "none")
