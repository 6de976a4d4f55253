"""Multi-head self-attention (Vaswani et al. 2017, §3.2.2) with an optional padding mask.

Shapes: x (N, T, D); mask (N, T), 1 = keep, 0 = padding (bool, int or float,
BERT's ``attention_mask``); y (N, T, D). H heads of size d = D/H.

    Q = x·Wqᵀ + bq,  K = x·Wkᵀ + bk,  V = x·Wvᵀ + bv     q_proj, k_proj, v_proj (Linear on the N·T rows)
    Q_h, K_h, V_h = head h's d columns, as (N, T, d)
    S_h = Q_h·K_hᵀ / √d + B,    B[n, :, j] = 0 if mask[n, j] = 1, else m
    P_h = softmax(S_h) over the keys j
    y = concat_h(P_h·V_h)·Woᵀ + bo                         out_proj (Linear)

m is the most negative finite number of the dtype (as Hugging Face's BERT):
in a row with at least one kept key, exp(m − max) underflows to exactly 0, so
padded keys get exactly zero weight; a fully padded row gets equal weights
instead of the NaN that −∞ would give (0/0). Padded *queries* still produce
outputs, which the model downstream ignores (as BERT does).

Backward, per head, with dO = dL/d(P_h·V_h) from out_proj's backward:

    dP = dO·Vᵀ,   dV = Pᵀ·dO
    dS = P ⊙ (dP − Σ_j dP ⊙ P)                   (softmax backward; B is constant)
    dQ = dS·K / √d,   dK = dSᵀ·Q / √d
    dL/dx = q_proj⁻(dQ) + k_proj⁻(dK) + v_proj⁻(dV)   (x feeds all three: the gradients add)

where p⁻ is the Linear's backward (it also accumulates dW, db). The mask has
no gradient: backward returns (dL/dx, None) when a mask was given, else dL/dx.

The four projections are ordinary Linear layers (``attn.q_proj.weight`` ...),
so compression can quantize, prune or factorize them like any other, and a
forward hook on one sees its (N·T, D) input rows.

ONNX: Attention (opset 23+, q_num_heads = kv_num_heads = H, boolean
attn_mask) between the projections' MatMul + Add; older exporters emit the
same computation as MatMul, Mul (1/√d), Add (mask), Softmax, MatMul.
"""

from __future__ import annotations

import math

import numpy as np

from ...checks import float_tensor, integer
from ...errors import ShapeError, ValidationError
from ..module import Module, as_rng, register_layer
from .linear import Linear
from .softmax import softmax, softmax_backward

__all__ = ["MultiHeadAttention"]


@register_layer
class MultiHeadAttention(Module):
    """Self-attention with ``num_heads`` heads over ``d_model`` features.

    Parameters
    ----------
    d_model : feature size D, divisible by num_heads.
    num_heads : H.
    bias : biases in the four projections.
    rng : Generator or int seed for the projections' initial weights (drawn
        in the order q, k, v, out); None gives zeros (weights loaded later).
    init : one of refcomp.nn.init.INITS, for every projection.
    dtype : float32 (default) or float64 (gradient checks).
    """

    accepts_input_grad = True

    def __init__(self, d_model: int, num_heads: int, bias: bool = True, *, rng=None,
                 init: str = "uniform_fan_in", dtype="float32"):
        self.d_model = integer(d_model, "d_model", minimum=1)
        self.num_heads = integer(num_heads, "num_heads", minimum=1)
        if self.d_model % self.num_heads:
            raise ValidationError("num_heads", f"a divisor of d_model={self.d_model}", self.num_heads)
        self.head_dim = self.d_model // self.num_heads
        self.scale = 1.0 / math.sqrt(self.head_dim)
        g = None if rng is None else as_rng(rng)
        kw = dict(bias=bias, rng=g, init=init, dtype=dtype)
        self.q_proj = Linear(self.d_model, self.d_model, **kw)
        self.k_proj = Linear(self.d_model, self.d_model, **kw)
        self.v_proj = Linear(self.d_model, self.d_model, **kw)
        self.out_proj = Linear(self.d_model, self.d_model, **kw)
        self._cache = None

    def config(self) -> dict:
        return {"d_model": self.d_model, "num_heads": self.num_heads,
                "bias": self.q_proj.bias is not None, "dtype": str(self.q_proj.weight_dtype())}

    def _heads(self, rows, n, t):
        """(N·T, D) -> (N, H, T, d)."""
        return rows.reshape(n, t, self.num_heads, self.head_dim).transpose(0, 2, 1, 3)

    def _rows(self, heads, n, t):
        """(N, H, T, d) -> (N·T, D): the heads side by side again."""
        return heads.transpose(0, 2, 1, 3).reshape(n * t, self.d_model)

    def forward(self, x, mask=None):
        x = float_tensor(x, "x", 3)
        n, t, dm = x.shape
        if dm != self.d_model:
            raise ShapeError("x", f"(N, T, {self.d_model})", f"shape {x.shape}")
        if mask is not None:
            mask = np.asarray(mask)
            if mask.shape != (n, t):
                raise ShapeError("mask", f"shape {(n, t)} (N, T of x)", f"shape {mask.shape}")
            if mask.dtype.kind not in "biuf" or not np.isin(mask, (0, 1)).all():
                raise ValidationError("mask", "values 1 (keep) or 0 (padding)", f"{mask.dtype} {np.unique(mask)[:5]}")
        rows = x.reshape(n * t, dm)
        # through __call__, so hooks on the projections see their inputs
        q = self._heads(self.q_proj(rows), n, t)
        k = self._heads(self.k_proj(rows), n, t)
        v = self._heads(self.v_proj(rows), n, t)
        s = q @ k.transpose(0, 1, 3, 2)                             # (N, H, T, T)
        s *= self.scale                                             # in place: the same products
        if mask is not None:
            neg = np.where(mask == 0, np.finfo(s.dtype).min, 0).astype(s.dtype)
            s += neg[:, None, None, :]                              # same for every head and query
        p = softmax(s, axis=-1, overwrite_x=True)
        y = self.out_proj(self._rows(p @ v, n, t))
        self._cache = (q, k, v, p, mask is not None)
        return y.reshape(n, t, dm)

    def backward(self, dy, *, input_grad: bool = True):
        """(dL/dx, None) with a mask, dL/dx without; None when ``input_grad`` is False."""
        self._require_forward(self._cache)
        q, k, v, p, has_mask = self._cache
        n, _, t, _ = q.shape
        if dy.shape != (n, t, self.d_model):
            raise ShapeError("dy", f"shape {(n, t, self.d_model)}", dy.shape)
        do = self._heads(self.out_proj.backward(dy.reshape(n * t, self.d_model)), n, t)
        dp = do @ v.transpose(0, 1, 3, 2)
        dv = p.transpose(0, 1, 3, 2) @ do
        ds = softmax_backward(p, dp, axis=-1) * self.scale
        dq = ds @ k
        dk = ds.transpose(0, 1, 3, 2) @ q
        grads = [proj.backward(self._rows(d, n, t), input_grad=input_grad)
                 for proj, d in ((self.q_proj, dq), (self.k_proj, dk), (self.v_proj, dv))]
        if not input_grad:
            return None
        dx = (grads[0] + grads[1] + grads[2]).reshape(n, t, self.d_model)
        return (dx, None) if has_mask else dx
