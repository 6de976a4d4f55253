"""Weight initialisation, always from an explicit ``rng``.

fan_in = in_features (Linear) or in_channels/groups * kh * kw (Conv2d);
fan_out = out_features or out_channels/groups * kh * kw.

=================  ===========================================  ===============================
name               distribution                                 source
=================  ===========================================  ===============================
"uniform_fan_in"   U(-1/sqrt(fan_in), +1/sqrt(fan_in))          PyTorch's default for Linear and
                                                                Conv (kaiming_uniform, a=sqrt(5))
"he_normal"        N(0, 2/fan_in)                               He et al. 2015, eq. (10)
"he_uniform"       U(-sqrt(6/fan_in), +sqrt(6/fan_in))          same variance as he_normal
"glorot_uniform"   U(-sqrt(6/(fan_in+fan_out)), +...)           Glorot & Bengio 2010, eq. (16)
"glorot_normal"    N(0, 2/(fan_in+fan_out))                     same variance
=================  ===========================================  ===============================

Biases use U(-1/sqrt(fan_in), +1/sqrt(fan_in)) for "uniform_fan_in" (as PyTorch)
and zeros otherwise. "uniform_fan_in" is the default because the reference
accuracies quoted in docs/nn.md were obtained with it.
"""

from __future__ import annotations

import contextlib
import contextvars
import math

import numpy as np

from ..errors import ValidationError

__all__ = ["INITS", "init_weight", "init_bias", "allocate", "allocation_budget"]

# Bytes the layers being built may still allocate, or None (no limit). Set by a file
# loader (refcomp.io.model_file) to what the file's tensors need, so that a graph
# declaring larger layers than the file holds is refused before its arrays exist.
_BUDGET: contextvars.ContextVar = contextvars.ContextVar("refcomp_allocation_budget", default=None)


@contextlib.contextmanager
def allocation_budget(nbytes: int, error):
    """Within the block, :func:`allocate` raises ``error(message)`` once more than ``nbytes`` are asked for."""
    token = _BUDGET.set([int(nbytes), error])
    try:
        yield
    finally:
        _BUDGET.reset(token)


def allocate(shape, dtype, fill=0) -> np.ndarray:
    """``np.full(shape, fill, dtype)`` for a layer's initial weight or buffer, charged to the
    :func:`allocation_budget` in force (checked before anything is allocated)."""
    budget = _BUDGET.get()
    dtype = np.dtype(dtype)
    if budget is not None:
        shape_t = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
        need = math.prod(int(d) for d in shape_t) * dtype.itemsize   # Python ints: no overflow
        if need > budget[0]:
            raise budget[1](f"a layer asks for {dtype} {list(shape_t)} ({need} bytes), more than the "
                            f"{budget[0]} bytes the file's tensors leave for it")
        budget[0] -= need
    return np.zeros(shape, dtype) if fill == 0 else np.full(shape, fill, dtype)

INITS = ("uniform_fan_in", "he_normal", "he_uniform", "glorot_uniform", "glorot_normal")


def init_weight(shape, fan_in: int, fan_out: int, init: str, rng: np.random.Generator, dtype) -> np.ndarray:
    """A weight of ``shape`` drawn from the distribution named ``init`` (table above)."""
    if init == "uniform_fan_in":
        b = 1.0 / np.sqrt(fan_in)
        w = rng.uniform(-b, b, size=shape)
    elif init == "he_normal":
        w = rng.normal(0.0, np.sqrt(2.0 / fan_in), size=shape)
    elif init == "he_uniform":
        b = np.sqrt(6.0 / fan_in)
        w = rng.uniform(-b, b, size=shape)
    elif init == "glorot_uniform":
        b = np.sqrt(6.0 / (fan_in + fan_out))
        w = rng.uniform(-b, b, size=shape)
    elif init == "glorot_normal":
        w = rng.normal(0.0, np.sqrt(2.0 / (fan_in + fan_out)), size=shape)
    else:
        raise ValidationError("init", f"one of {INITS}", repr(init))
    return w.astype(dtype)


def init_bias(n: int, fan_in: int, init: str, rng: np.random.Generator, dtype) -> np.ndarray:
    if init == "uniform_fan_in":
        b = 1.0 / np.sqrt(fan_in)
        return rng.uniform(-b, b, size=n).astype(dtype)
    return np.zeros(n, dtype=dtype)
