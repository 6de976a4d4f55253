"""Binary, ternary and power-of-two weights, each with its straight-through gradient.

docs/gptq_and_ptq.md §5, eqs. (14)-(21). Weights are (out, ...) arrays: a
Linear (out, in) or a Conv2d (out, in, kh, kw) kernel; "per output channel"
means one value per index of axis 0.

Training with these quantizers keeps a float "latent" weight W; the forward
pass uses Q(W); the backward pass receives g̃ = ∂C/∂Q(W) and needs ∂C/∂W.
Q is piecewise constant, so its true derivative is 0 almost everywhere; the
straight-through estimator (STE, Bengio et al. 2013) replaces it by the
derivative of a surrogate. The ``*_grad`` helpers below return ∂C/∂W.
"""

from __future__ import annotations

import numpy as np

from ...checks import float_array, real
from ...errors import ShapeError
from ...formats.power_of_two import PowerOfTwo

__all__ = [
    "binarize",
    "binarize_grad",
    "xnor_binarize",
    "xnor_grad",
    "ternarize",
    "ternarize_grad",
    "PowerOfTwo",
    "power_of_two_quantize",
    "power_of_two_grad",
]


def _channel_axes(w: np.ndarray) -> tuple[int, ...]:
    return tuple(range(1, w.ndim))


def _per_channel(v: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Reshape a per-output-channel vector (out,) to broadcast against w."""
    return v.reshape((-1,) + (1,) * (w.ndim - 1))


def _check_grad(grad, w: np.ndarray) -> np.ndarray:
    g = float_array(grad, "grad", dtype=np.float64, copy=True)
    if g.shape != w.shape:
        raise ShapeError("grad", f"the shape of w {w.shape}", f"shape {g.shape}")
    return g


# --- binary -----------------------------------------------------------------

def binarize(w) -> np.ndarray:
    """BinaryConnect deterministic binarization (Courbariaux et al. 2015, arXiv:1511.00363, §2).

        w_b = +1 if w >= 0 else −1                                       (14)

    Returns int8 codes of w's shape (0 maps to +1, as in the paper).
    """
    w = float_array(w, "w")  # the sign is the same in any float dtype
    return np.where(w >= 0, 1, -1).astype(np.int8)


def binarize_grad(w, grad, *, clip: float | None = 1.0) -> np.ndarray:
    """STE of sign: ∂C/∂w = g̃ · 1{|w| <= clip}                              (15)

    clip=1 is the "hard tanh" estimator of Hubara et al. 2016 (BNN), which
    cancels the gradient of weights that left [−1, 1]; clip=None passes g̃
    through unchanged (BinaryConnect proper, which instead clips the latent
    weights to [−1, 1] after every update).
    """
    w = float_array(w, "w", dtype=np.float64)
    g = _check_grad(grad, w)
    if clip is None:
        return g
    c = real(clip, "clip", low=0, low_open=True)
    return g * (np.abs(w) <= c)


def xnor_binarize(w) -> tuple[np.ndarray, np.ndarray]:
    """XNOR-Net weight binarization (Rastegari et al. 2016, arXiv:1603.05279, §3.1).

        W ≈ α_c · sign(W_c),   α_c = mean |W_c|   (per output channel c)   (16)

    α_c is the minimiser of ||W_c − α B||² over α for B = sign(W_c).
    Returns (codes int8 ±1, alpha float32 (out,)); ŵ = alpha[c] · codes.
    """
    w = float_array(w, "w", ndim=(2, 3, 4, 5), dtype=np.float64)
    alpha = np.mean(np.abs(w), axis=_channel_axes(w))
    return binarize(w), alpha.astype(np.float32)


def xnor_grad(w, grad, *, clip: float | None = 1.0) -> np.ndarray:
    """∂C/∂W for W̃ = α(W)·sign(W) (16), exact in α and STE in sign.

    With n weights per channel and s = sign(W)::

        ∂C/∂W_i = s_i / n · Σ_k g̃_k s_k  +  α · g̃_i · 1{|W_i| <= clip}     (17)

    The first term is the exact derivative through α = mean|W| (∂α/∂W_i =
    s_i / n); the second is the STE of (15) scaled by α. XNOR-Net's gradient
    formula (§3.1), ∂C/∂W_i = g̃_i (1/n + α ∂sign/∂W_i), writes the first term
    as g̃_i / n, which drops the sum over the channel; (17) is the chain rule
    written out.
    """
    w = float_array(w, "w", ndim=(2, 3, 4, 5), dtype=np.float64)
    g = _check_grad(grad, w)
    axes = _channel_axes(w)
    n = int(np.prod(w.shape[1:]))
    s = np.where(w >= 0, 1.0, -1.0)
    alpha = _per_channel(np.mean(np.abs(w), axis=axes), w)
    through_alpha = s / n * _per_channel(np.sum(g * s, axis=axes), w)
    return through_alpha + alpha * binarize_grad(w, g, clip=clip)


# --- ternary ----------------------------------------------------------------

def ternarize(w, *, threshold_factor: float = 0.7, per_channel: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Ternary weight networks (Li & Liu 2016, arXiv:1605.04711, §2).

        Δ = 0.7 · mean |W|                                                (18)
        t_i = +1 if w_i > Δ, −1 if w_i < −Δ, else 0
        α = mean of |w_i| over {i : |w_i| > Δ}   (0 if the set is empty)    (19)

    TWN computes Δ and α per layer (per_channel=False); per_channel=True
    computes them per output channel (axis 0). Returns (codes int8 in
    {−1, 0, 1}, alpha float32: a scalar array or (out,)); ŵ = α · t.
    """
    w = float_array(w, "w", ndim=(1, 2, 3, 4, 5), dtype=np.float64)
    f = real(threshold_factor, "threshold_factor", low=0)
    axes = _channel_axes(w) if per_channel else None
    if per_channel and w.ndim < 2:
        raise ShapeError("w", "an array (out, ...) with at least 2 dimensions for per_channel=True",
                         f"shape {w.shape}")
    a = np.abs(w)
    delta = f * np.mean(a, axis=axes, keepdims=True)
    big = a > delta
    count = np.sum(big, axis=axes, keepdims=True)
    alpha = np.sum(np.where(big, a, 0.0), axis=axes, keepdims=True) / np.maximum(count, 1)
    codes = (np.sign(w) * big).astype(np.int8)
    alpha = alpha.reshape(-1) if per_channel else alpha.reshape(())
    return codes, alpha.astype(np.float32)


def ternarize_grad(w, grad) -> np.ndarray:
    """STE of TWN: the gradient w.r.t. the ternary weights is applied to W.

        ∂C/∂W = g̃                                                        (20)

    (Li & Liu 2016, Algorithm 1: "the gradient … is computed with the ternary
    weights and used to update the full-precision weights").
    """
    w = float_array(w, "w")  # checked for its shape only
    return _check_grad(grad, w)


# --- power of two -----------------------------------------------------------

def power_of_two_quantize(w, *, bits: int = 4, max_exponent: int | None = None) -> PowerOfTwo:
    """Logarithmic quantization (Miyashita, Lee, Murmann 2016, arXiv:1603.01025, §3), weights.

    Returns the stored format, a refcomp.formats.PowerOfTwo.

    One bit is the sign; the other bits - 1 bits index 2^(bits-1) − 1
    exponents plus a code for zero::

        e_max = round(log2 max|W|)       (unless given: the "full scale range")
        e     = round_half_even(log2 |w|)                                   (21)
        ŵ = sign(w) · 2^clip(e, e_min, e_max)  if e >= e_min,  else 0
        e_min = e_max − (2^(bits−1) − 1) + 1

    The rounding is in the log domain (as in the paper), i.e. |w| rounds up
    above 2^(e+1/2) = 1.414·2^e, not at the linear midpoint 1.5·2^e.
    """
    w = float_array(w, "w", dtype=np.float64)
    a = np.abs(w)
    if max_exponent is None:
        peak = float(np.max(a, initial=0.0))
        max_exponent = int(np.rint(np.log2(peak))) if peak > 0 else 0
    e_min, e_max, b = PowerOfTwo.window(max_exponent, bits)   # the format's check and its e_min
    with np.errstate(divide="ignore"):
        e = np.rint(np.log2(a))  # -inf for zeros: they fall below e_min
    keep = e >= e_min
    sign = (np.sign(w) * keep).astype(np.int8)
    exponent = np.where(keep, np.minimum(e, e_max), e_min).astype(np.int8)  # kept: e >= e_min already
    return PowerOfTwo(sign=sign, exponent=exponent, max_exponent=e_max, bits=b)


def power_of_two_grad(w, grad, *, max_exponent: int) -> np.ndarray:
    """STE of (21): ∂C/∂w = g̃ · 1{|w| <= 2^e_max}.

    Identity inside the representable range, zero for weights clipped at the
    top (the same saturating STE as (15)); weights flushed to zero keep their
    gradient so that they can grow back.
    """
    w = float_array(w, "w", dtype=np.float64)  # 2^e_max may lie beyond float32's range
    g = _check_grad(grad, w)
    return g * (np.abs(w) <= 2.0 ** int(max_exponent))
