"""Fake quantization and its straight-through gradient (docs/quantization.md §8).

Forward, in float (eq. 17)::

    fq(x) = dequantize(quantize(x)) = (clip(round(x/s) + z, qmin, qmax) - z)·s

rounding and saturation included, so a float network "sees" the quantization
error during training (Jacob et al. 2018 §3; Krishnamoorthi 2018 §2.4).

round() has zero derivative almost everywhere, so training replaces it by the
identity in the backward pass: the straight-through estimator (Bengio,
Léonard & Courville 2013, arXiv:1308.3432). Two variants (eq. 18)::

    plain STE:    dL/dx = dL/dy
    clipped STE:  dL/dx = dL/dy · 1[qmin <= round(x/s) + z <= qmax]
                        = dL/dy · 1[(qmin - z - 1/2)·s <= x <= (qmax - z + 1/2)·s]

The clipped variant (Hubara et al. 2016, arXiv:1609.07061; Jacob et al.
2018 §3) passes no gradient where the forward's clip is active, since there
the output does not depend on x. The band is the one of PyTorch's
FakeQuantize (the rounded code is tested, so it reaches half a step beyond
the representable range [(qmin - z)·s, (qmax - z)·s]); in real numbers it is
tested directly, without a second rounding. This also keeps the gradient at
the calibrated extremes: a symmetric int8 scale puts max|x| at 127.5·s.
Float dtypes (float8, float4) have no rounding band: their band is
[qmin·s, qmax·s], beyond which the cast saturates.
"""

from __future__ import annotations

import numpy as np

from ..errors import DTypeError, ShapeError, ValidationError
from .affine import dequantize, quantize
from .qparams import QParams

__all__ = ["fake_quantize", "fake_quantize_grad", "FakeQuantize"]


def fake_quantize(x, qparams: QParams, *, rounding: str = "half_to_even", backend: str = "auto") -> np.ndarray:
    """dequantize(quantize(x)) (eq. 17). Returns float32 (float64 if x is float64).

    The values are those of the float32 dequantization; returning float64 for
    float64 input only widens them (exact), so a float64 network keeps its dtype.
    """
    y = dequantize(quantize(x, qparams, rounding=rounding, backend=backend), qparams, backend=backend)
    out = np.float64 if isinstance(x, np.ndarray) and x.dtype == np.float64 else np.float32
    return y.astype(out)


def fake_quantize_grad(x, qparams: QParams, grad_out, *, clipped: bool = True) -> np.ndarray:
    """Straight-through gradient of :func:`fake_quantize` w.r.t. x (eq. 18).

    x, grad_out : float arrays of the same shape. Returns grad_out's values
    (zeroed where the forward saturates when ``clipped``), in grad_out's dtype.
    """
    if not isinstance(qparams, QParams):
        raise DTypeError("qparams", "a refcomp.quant.QParams", type(qparams).__name__)
    for name, a in (("x", x), ("grad_out", grad_out)):
        if not isinstance(a, np.ndarray):
            raise DTypeError(name, "a numpy.ndarray", type(a).__name__)
    if grad_out.shape != x.shape:
        raise ShapeError("grad_out", f"the shape of x {x.shape}", f"shape {grad_out.shape}")
    if not isinstance(clipped, (bool, np.bool_)):
        raise ValidationError("clipped", "True or False", repr(clipped))
    if not clipped:
        return grad_out.copy()
    lo, hi = qparams.representable_range(x.shape)
    if not qparams.dtype.is_float:
        half = 0.5 * qparams.expand(x.shape)[0].astype(np.float64)
        lo, hi = lo - half, hi + half
    xf = x.astype(np.float64)
    inside = (xf >= lo) & (xf <= hi)
    return np.where(inside, grad_out, 0).astype(grad_out.dtype)   # 0 is exact in any dtype


class FakeQuantize:
    """Observer + fake quantization, the building block of QAT (forward / backward).

    Either ``observer`` (QParams re-derived from the data seen so far at each
    forward while ``observer_enabled``) or fixed ``qparams``.

    forward(x):  observe x (if enabled), then fake_quantize (if enabled) else identity.
    backward(g): the straight-through gradient for the last forward's x
                 (clipped STE by default; identity when fake quant is disabled).
    """

    def __init__(self, observer=None, *, qparams: QParams | None = None, rounding: str = "half_to_even",
                 clipped_ste: bool = True, observer_enabled: bool = True, fake_quant_enabled: bool = True):
        if (observer is None) == (qparams is None):
            raise ValidationError("observer", "exactly one of observer / qparams", "both" if observer else "neither")
        if qparams is not None and not isinstance(qparams, QParams):
            raise DTypeError("qparams", "a refcomp.quant.QParams", type(qparams).__name__)
        self.observer = observer
        self.qparams = qparams
        self.rounding = rounding
        self.clipped_ste = clipped_ste
        self.observer_enabled = observer_enabled and observer is not None
        self.fake_quant_enabled = fake_quant_enabled
        self._x = None
        self._qparams_used = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        if self.observer_enabled:
            self.observer.observe(x)
            self.qparams = self.observer.qparams()
        self._x = x
        if not self.fake_quant_enabled:
            self._qparams_used = None
            return x
        if self.qparams is None:
            raise ValidationError("qparams", "QParams (observe data first or pass qparams=)", None)
        self._qparams_used = self.qparams
        return fake_quantize(x, self.qparams, rounding=self.rounding)

    __call__ = forward

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        if self._x is None:
            raise ValidationError("grad_out", "a backward() after a forward()", "no forward yet")
        if self._qparams_used is None:
            if not isinstance(grad_out, np.ndarray) or grad_out.shape != self._x.shape:
                raise ShapeError("grad_out", f"an array of shape {self._x.shape}", getattr(grad_out, "shape", grad_out))
            return grad_out
        return fake_quantize_grad(self._x, self._qparams_used, grad_out, clipped=self.clipped_ste)
