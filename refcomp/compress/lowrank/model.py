"""Low-rank factorization of a model's Linear and Conv2d layers: one layer becomes two or three.

A Linear layer y = x Wᵀ + b with W (out, in) is replaced by the truncated SVD
W ≈ L R, L = U_r Σ_r (out, r), R = V_rᵀ (r, in) (docs/lowrank.md eq. 1,
refcomp.compress.lowrank.factorize.truncated_svd; Eckart-Young: the best rank-r
approximation in Frobenius norm)::

    y = (x Rᵀ) Lᵀ + b      =  Linear(in → r, no bias)  then  Linear(r → out, bias b)

which stores r·(in + out) instead of in·out weights. Both new layers are
ordinary Dense Linear layers, so the factorized model is fine-tuned with
refcomp.nn.train like any other (Denton et al. 2014, arXiv:1404.0736;
Xue et al. 2013 retrain after the SVD in the same way).

A Conv2d with kernel W (out, in, kh, kw) (groups = 1) is factorized in one
of two ways (docs/lowrank.md §§4-5; refcomp.compress.lowrank.factorize):
- SVD of the reshaped kernel W (out, in·kh·kw) ≈ L R (conv_svd): a Conv2d
  (in → r, kh×kw, the original stride / padding / dilation, no bias), then
  a 1×1 Conv2d (r → out, bias b). Every output position sees the same
  im2col patch p, and W p ≈ L (R p), so the pair computes the factorization
  exactly. Stores r·(in·kh·kw + out) weights.
- Tucker-2 (tucker2; Kim et al. 2016, arXiv:1511.06530): a 1×1 Conv2d
  (in → r_in, U_inᵀ), the core Conv2d (r_in → r_out, kh×kw, the original
  stride / padding / dilation), a 1×1 Conv2d (r_out → out, U_out, bias b).
  The 1×1 convolutions act pointwise, so they commute with the padding
  (zeros map to zeros) and the three layers compute C ×₀ U_out ×₁ U_in
  exactly. Stores in·r_in + r_in·r_out·kh·kw + r_out·out weights.

At full rank (r = min(out, in·kh·kw); r_out = out, r_in = in) both equal
the original layer up to float rounding.
"""

from __future__ import annotations

import numpy as np

from ...errors import ValidationError
from ...formats.dense import Dense
from ...nn.layers import Conv2d, Linear
from ...nn.graph import replace_module
from ...nn.module import Module, Parameter, Sequential
from ..quantize.model_graph import prepare
from ..quantize.weight_only import layerwise_hessians, model_bytes
from .factorize import conv_svd, truncated_svd, tucker2

__all__ = ["factorize_linear", "factorize_conv", "tucker2_conv", "factorize_model"]


def factorize_linear(layer: Linear, rank: int, *, hessian=None, percdamp: float = 0.01) -> Sequential:
    """Sequential(("first", Linear(in, r, bias=False)), ("second", Linear(r, out))) equal to L R.

    hessian : None (plain truncated SVD) or H of the layer's inputs (the whitened SVD,
    docs/lowrank.md eq. 11: the best rank r for the layer's output on those inputs)."""
    if not isinstance(layer, Linear):
        raise ValidationError("layer", "a refcomp.nn.Linear", type(layer).__name__)
    w = layer.weight.to_dense()
    left, right = truncated_svd(w, rank=rank, hessian=hessian, percdamp=percdamp)
    r = left.shape[1]
    dt = str(w.dtype)
    first = Linear(layer.in_features, r, bias=False, dtype=dt)
    first.weight = Dense(right.copy())
    second = Linear(r, layer.out_features, bias=layer.bias is not None, dtype=dt)
    second.weight = Dense(left.copy())
    if layer.bias is not None:
        second.bias = Parameter(layer.bias.data.copy())
    return Sequential(("first", first), ("second", second))


def _check_conv(layer) -> None:
    if not isinstance(layer, Conv2d):
        raise ValidationError("layer", "a refcomp.nn.Conv2d", type(layer).__name__)
    if layer.groups != 1:
        raise ValidationError("layer.groups", "1 (a grouped convolution is not one matrix)", layer.groups)


def _conv(n_in, n_out, kernel, *, like=None, bias=False, weight, dtype):
    geometry = {} if like is None else {"stride": like.stride, "padding": like.padding, "dilation": like.dilation}
    c = Conv2d(n_in, n_out, kernel, bias=bias, dtype=dtype, **geometry)
    c.weight = Dense(weight.copy())
    return c


def factorize_conv(layer: Conv2d, rank: int, *, hessian=None, percdamp: float = 0.01) -> Sequential:
    """Sequential(("first", Conv2d(in, r, kh×kw, no bias)), ("second", Conv2d(r, out, 1×1))) by conv_svd
    (whitened by ``hessian`` of the im2col rows when given)."""
    _check_conv(layer)
    w = layer.weight.to_dense()
    first_w, second_w = conv_svd(w, rank=rank, hessian=hessian, percdamp=percdamp)
    r, dt = first_w.shape[0], str(w.dtype)
    first = _conv(layer.in_channels, r, layer.kernel_size, like=layer, weight=first_w, dtype=dt)
    second = _conv(r, layer.out_channels, 1, bias=layer.bias is not None, weight=second_w, dtype=dt)
    if layer.bias is not None:
        second.bias = Parameter(layer.bias.data.copy())
    return Sequential(("first", first), ("second", second))


def tucker2_conv(layer: Conv2d, ranks) -> Sequential:
    """Sequential(("first", 1×1 in → r_in), ("core", kh×kw r_in → r_out), ("last", 1×1 r_out → out)).

    ranks : (r_out, r_in), as refcomp.compress.lowrank.factorize.tucker2.
    """
    _check_conv(layer)
    w = layer.weight.to_dense()
    first_w, core_w, last_w = tucker2(w, ranks=tuple(ranks) if isinstance(ranks, list) else ranks)
    r_in, r_out, dt = first_w.shape[0], last_w.shape[1], str(w.dtype)
    first = _conv(layer.in_channels, r_in, 1, weight=first_w, dtype=dt)
    core = _conv(r_in, r_out, layer.kernel_size, like=layer, weight=core_w, dtype=dt)
    last = _conv(r_out, layer.out_channels, 1, bias=layer.bias is not None, weight=last_w, dtype=dt)
    if layer.bias is not None:
        last.bias = Parameter(layer.bias.data.copy())
    return Sequential(("first", first), ("core", core), ("last", last))


def factorize_model(model, ranks: dict, *, calibration_batches=None, percdamp: float = 0.01) -> tuple[Module, dict]:
    """(a copy of ``model`` (BatchNorm folded) with the layers named in ``ranks`` factorized,
    report {name: {"rank", "bytes", "float_bytes"}}); ``model`` is untouched.

    ranks : {name: r} — truncated SVD of a Linear (factorize_linear) or of a
        reshaped Conv2d kernel (factorize_conv); {name: (r_out, r_in)} —
        Tucker-2 of a Conv2d (tucker2_conv). Names as in ``named_modules()``:
        a Sequential's layer names, or a graph's dotted ones ("layer0.fc1",
        "layer0.attn.q_proj"); the factorized layer takes the original's place.
    calibration_batches : None, or batches as for GPTQ (each an array or a
        tuple of arrays): then every SVD is the whitened one (docs/lowrank.md
        eq. 11), layer by layer in model order, each whitened by the inputs it
        receives from the already-factorized layers before it
        (quantize.weight_only.layerwise_hessians); the report adds
        "output_mse" on those inputs. Tucker-2 ranks are refused then.
    """
    m = prepare(model)
    if not isinstance(ranks, dict):
        raise ValidationError("ranks", "a dict {layer name: rank or (r_out, r_in)}", type(ranks).__name__)
    modules = dict(m.named_modules())
    for name, rank in ranks.items():
        layer = modules.get(name)
        if not isinstance(layer, (Linear, Conv2d)):
            names = [n for n, l in modules.items() if isinstance(l, (Linear, Conv2d))]
            shown = names if len(names) <= 8 else names[:8] + ["..."]
            raise ValidationError("ranks", f"names of Linear / Conv2d layers {shown}", name)
        if isinstance(rank, (tuple, list)):
            if not isinstance(layer, Conv2d):
                raise ValidationError(f"ranks[{name!r}]", "an int rank (Tucker-2 ranks are for Conv2d)", repr(rank))
            if calibration_batches is not None:
                raise ValidationError(f"ranks[{name!r}]", "an int rank (the whitened factorization is an SVD; "
                                      "Tucker-2 has no calibration form here)", repr(rank))
    if calibration_batches is None:
        stats = ((name, modules[name], None, None) for name in ranks)
    else:
        stats = layerwise_hessians(m, list(ranks), calibration_batches)
    report = {}
    for name, layer, hessian, x_rows in stats:
        rank = ranks[name]
        if isinstance(rank, (tuple, list)):
            new = tucker2_conv(layer, rank)
        elif isinstance(layer, Conv2d):
            new = factorize_conv(layer, rank, hessian=hessian, percdamp=percdamp)
        else:
            new = factorize_linear(layer, rank, hessian=hessian, percdamp=percdamp)
        replace_module(m, name, new)
        report[name] = {"rank": rank, "bytes": model_bytes(new), "float_bytes": model_bytes(layer)}
        if x_rows is not None:
            w = layer.weight.to_dense()
            w2 = w.reshape(w.shape[0], -1).astype(np.float64)
            left, right = (new["second"], new["first"])
            w_r = (left.weight.to_dense().reshape(w.shape[0], -1).astype(np.float64)
                   @ right.weight.to_dense().reshape(right.weight.shape[0], -1).astype(np.float64))
            d = x_rows @ (w_r - w2).T
            report[name]["output_mse"] = float(np.mean(d * d))
    return m, report
