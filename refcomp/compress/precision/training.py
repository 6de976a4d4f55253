"""Mixed-precision training in refcomp.nn.train: an optimizer wrapper with master weights and loss scaling.

Micikevicius et al. 2018, "Mixed Precision Training", arXiv:1710.03740 §3;
docs/precision.md §6. Per batch, with S the loss scale, θ the float32
master weights and fl the rounding to float16 / bfloat16 (round to nearest even)::

    x̂ = fl(x),  θ̂ = fl(θ);   z = f(x̂; θ̂);   L = loss(float32(z))                       (9)
    g = fl(∂(S·L)/∂θ̂)   (the backward starts from fl(S · ∂L/∂z))                           (10)
    if any g is inf/NaN:  skip (θ unchanged), S ← S/2                                      (11)
    else:  θ ← SGD(θ, float32(g) / S)   (momentum, weight decay in float32);  θ̂ ← fl(θ)     (12)
           after N clean steps in a row:  S ← 2S                                           (eq. 3, DynamicLossScaler)

refcomp.nn.train calls ``cast_input`` before the forward, ``cast_output`` on
the logits before the loss and ``scale_gradient`` on ∂L/∂z before the
backward, then ``step()``; that is the whole integration, the loop is the one
every model trains with.

``compute``:

- ``"native"`` (float16 only): the model's arrays *are* NumPy float16, so
  every layer multiplies and adds in float16 (NumPy has no bfloat16 arithmetic).
  Exact to the format, but NumPy's float16 matmul has no BLAS: ~55× slower
  than float32 on LeNet-5.
- ``"emulated"`` (float16 and bfloat16): the arrays are float32 holding
  16-bit values (fl(θ), fl(x), fl(S·∂L/∂z) and the weight gradients rounded
  by (10)); the arithmetic is float32. Products of two 16-bit values are exact
  in float32, so a layer's sums are those of a 16-bit-input, float32-accumulate
  unit (the paper's §3.3 tensor-core model); activations and activation
  gradients *between* layers are not rounded to 16 bits — the deviation from
  a real 16-bit pipeline. Weight gradients overflow to inf (and small ones
  flush to 0) as in float16, which is what the loss scale acts on.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from ...checks import one_of
from ...errors import ValidationError
from ...nn.module import Parameter
from ...nn.optim import SGD
from .casts import DynamicLossScaler

__all__ = ["MixedPrecisionOptimizer"]

_DTYPES = {"float16": np.dtype(np.float16), "bfloat16": np.dtype(ml_dtypes.bfloat16)}


class MixedPrecisionOptimizer:
    """SGD on float32 master weights for a model that computes in float16 / bfloat16 (eqs. 9-12).

    model : the refcomp.nn model; its trainable arrays are replaced by fl(master) now.
    dtype : "float16" | "bfloat16". compute : "native" | "emulated" (module docstring).
    lr, momentum, weight_decay : the float32 SGD of eq. (12) (refcomp.nn.optim.SGD on the master).
    scaler : a DynamicLossScaler; default: S₀ = 2¹⁶, ×2 after 2000 clean steps, ×½ on overflow for
        float16; a constant S = 1 for bfloat16 (float32's exponent range: Kalamkar et al. 2019 §3
        train bfloat16 without loss scaling) — its non-finite steps are still skipped.

    After training, ``master`` holds the float32 weights ({name: Parameter}); ``use_master()``
    puts copies of them into the model. ``steps`` counts applied updates, ``scaler.skipped_steps`` skipped ones.
    """

    def __init__(self, model, dtype: str = "float16", *, compute: str = "emulated", lr: float = 0.05,
                 momentum: float = 0.9, weight_decay: float = 0.0, scaler: DynamicLossScaler | None = None):
        self.dtype = _DTYPES[one_of(dtype, "dtype", tuple(_DTYPES))]
        self.compute = one_of(compute, "compute", ("native", "emulated"))
        if compute == "native" and dtype != "float16":
            raise ValidationError("compute", "'emulated' for bfloat16 (NumPy has no bfloat16 arithmetic)",
                                  repr(compute))
        if scaler is None:
            scaler = DynamicLossScaler() if dtype == "float16" else DynamicLossScaler(1.0, max_scale=1.0)
        if not isinstance(scaler, DynamicLossScaler):
            raise ValidationError("scaler", "a DynamicLossScaler", type(scaler).__name__)
        self.scaler, self.model = scaler, model
        self.params = dict(model.named_parameters())
        if not self.params:
            raise ValidationError("model", "a model with trainable parameters", "none")
        self.master = {n: Parameter(np.array(p.data, dtype=np.float32)) for n, p in self.params.items()}
        self.inner = SGD(list(self.master.values()), lr=lr, momentum=momentum, weight_decay=weight_decay)
        self.steps = 0
        self._publish()

    # the float32 SGD's learning rate is the one refcomp.nn.train's schedules set
    @property
    def lr(self):
        return self.inner.lr

    @lr.setter
    def lr(self, value):
        self.inner.lr = value

    def _round(self, a) -> np.ndarray:
        """fl(a): 16-bit rounding (overflow → ±inf), as float16 (native) or widened to float32 (emulated)."""
        with np.errstate(over="ignore", invalid="ignore"):
            r = np.asarray(a, dtype=np.float32).astype(self.dtype)
        return r if self.compute == "native" else r.astype(np.float32)

    def _publish(self) -> None:
        for n, p in self.params.items():
            p.data = self._round(self.master[n].data)

    def cast_input(self, x):
        return self._round(x) if np.asarray(x).dtype.kind == "f" else x

    def cast_output(self, z):
        return np.asarray(z, dtype=np.float32)       # the loss in float32 (paper §3.3)

    def scale_gradient(self, dz):
        """fl(S · ∂L/∂z): the backward of the scaled loss S·L starts here (eq. 10)."""
        return self._round(np.asarray(dz, dtype=np.float32) * np.float32(self.scaler.scale))

    def zero_grad(self) -> None:
        for p in self.params.values():
            p.grad = None

    def step(self) -> bool:
        """Eqs. (10)-(12); True when the update was applied, False when the step was skipped."""
        grads = {n: self._round(p.grad) for n, p in self.params.items() if p.grad is not None}
        if not self.scaler.step(grads):
            return False                              # θ and θ̂ unchanged; the scaler has halved S
        inv = np.float32(1.0 / self.scaler.last_scale)   # a power of two: the unscaling is exact
        for n, m in self.master.items():
            m.grad = grads[n].astype(np.float32) * inv if n in grads else None
        self.inner.step()
        self.steps += 1
        self._publish()
        return True

    def use_master(self) -> None:
        """Give the model float32 copies of the master weights (to evaluate or save the float32 result)."""
        for n, p in self.params.items():
            p.data = self.master[n].data.copy()
