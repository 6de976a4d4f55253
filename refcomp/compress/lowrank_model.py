"""Low-rank factorization of a model's Linear layers: one layer becomes two.

A Linear layer y = x Wᵀ + b with W (out, in) is replaced by the truncated SVD
W ≈ L R, L = U_r Σ_r (out, r), R = V_rᵀ (r, in) (docs/lowrank.md eq. 1,
refcomp.compress.lowrank.truncated_svd; Eckart-Young: the best rank-r
approximation in Frobenius norm)::

    y = (x Rᵀ) Lᵀ + b      =  Linear(in → r, no bias)  then  Linear(r → out, bias b)

which stores r·(in + out) instead of in·out weights. Both new layers are
ordinary Dense Linear layers, so the factorized model is fine-tuned with
refcomp.nn.train like any other (Denton et al. 2014, arXiv:1404.0736;
Xue et al. 2013 retrain after the SVD in the same way).
"""

from __future__ import annotations

from ..errors import ValidationError
from ..formats.dense import Dense
from ..nn.layers import Linear
from ..nn.module import Parameter, Sequential
from .lowrank import truncated_svd
from .quantize.model_graph import prepare

__all__ = ["factorize_linear", "factorize_model"]


def factorize_linear(layer: Linear, rank: int) -> Sequential:
    """Sequential(("first", Linear(in, r, bias=False)), ("second", Linear(r, out))) equal to L R."""
    if not isinstance(layer, Linear):
        raise ValidationError("layer", "a refcomp.nn.Linear", type(layer).__name__)
    w = layer.weight.to_dense()
    left, right = truncated_svd(w, rank=rank)
    r = left.shape[1]
    dt = str(w.dtype)
    first = Linear(layer.in_features, r, bias=False, dtype=dt)
    first.weight = Dense(right.copy())
    second = Linear(r, layer.out_features, bias=layer.bias is not None, dtype=dt)
    second.weight = Dense(left.copy())
    if layer.bias is not None:
        second.bias = Parameter(layer.bias.data.copy())
    return Sequential(("first", first), ("second", second))


def factorize_model(model, ranks: dict) -> Sequential:
    """A copy of ``model`` (BatchNorm folded) with the top-level Linear layers named in ``ranks`` factorized."""
    m = prepare(model)
    if not isinstance(m, Sequential):
        raise ValidationError("model", "a refcomp.nn.Sequential", type(model).__name__)
    for name, rank in ranks.items():
        if name not in m.layers or not isinstance(m[name], Linear):
            raise ValidationError("ranks", f"names of top-level Linear layers {[n for n, l in m.layers.items() if isinstance(l, Linear)]}", name)
        m[name] = factorize_linear(m[name], rank)
    return m
