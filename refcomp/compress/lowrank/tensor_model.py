"""CP and TT decompositions of a model's layers: a Conv2d becomes four convolutions, a Linear a TTLinear.

CP of a kernel K (out, in, kh, kw) (refcomp.compress.lowrank.tensor.cp_als),
K[o, c, u, v] = Σ_r λ_r A[o, r] B[c, r] C[u, r] D[v, r], runs as four
convolutions (Lebedev, Ganin, Rakhuba, Oseledets, Lempitsky 2015,
"Speeding-up Convolutional Neural Networks Using Fine-tuned CP-Decomposition",
ICLR, arXiv:1412.6553, eq. 4):

    first  1×1      in → R,  weight B[c, r]                     (no bias)
    vert   kh×1     R → R,   weight C[u, r], groups = R         (stride, padding, dilation along h)
    horiz  1×kw     R → R,   weight D[v, r], groups = R         (... along w)
    last   1×1      R → out, weight λ_r A[o, r], the bias                            (CP.3)

(λ_r is spread as λ_r^{1/4} over the four weights: the same kernel, with
factor scales alike, which keeps fine-tuning stable.)

TT of the kernel with its modes ordered (in, kh, kw, out) (tensor.tt_svd):
K[o, c, u, v] = G_1[c] G_2[u] G_3[v] G_4[o] (cores (1, in, r_1), (r_1, kh, r_2),
(r_2, kw, r_3), (r_3, out, 1)), the same four convolutions with full channel
mixing in the middle (the TT ranks play the channels):

    first 1×1 in → r_1 (G_1),  vert kh×1 r_1 → r_2 (G_2),  horiz 1×kw r_2 → r_3 (G_3),
    last 1×1 r_3 → out (G_4, the bias)                                                (TT.6)

Both are exact: the output at (i, j) sums the same products over (c, u, v) as
K does, and the zero padding maps to zero through bias-free linear maps. A
Linear becomes a refcomp.nn.TTLinear whose cores are tensor.tt_matrix's (TT.3).
Every new layer trains with refcomp.nn.train.
"""

from __future__ import annotations

import copy

import numpy as np

from ...errors import ValidationError
from ...formats.dense import Dense
from ...nn.graph import replace_module
from ...nn.layers import Conv2d, Linear, TTLinear
from ...nn.module import Parameter, Sequential
from .tensor import cp_als, tt_matrix, tt_svd, tt_to_tensor

__all__ = ["cp_conv", "tt_conv", "tt_linear", "decompose_model"]


def _check_conv(layer):
    if not isinstance(layer, Conv2d) or layer.groups != 1:
        raise ValidationError("layer", "a refcomp.nn.Conv2d with groups 1", type(layer).__name__)


def _four_convs(layer, w_first, w_vert, w_horiz, w_last, groups_mid: int) -> Sequential:
    (sh, sw), (ph, pw), (dh, dw) = layer.stride, layer.padding, layer.dilation
    dt = str(layer.weight.to_dense().dtype)

    def conv(n_in, n_out, kernel, weight, bias=False, groups=1, **geometry):
        c = Conv2d(n_in, n_out, kernel, bias=bias, groups=groups, dtype=dt, **geometry)
        c.weight = Dense(np.ascontiguousarray(weight, dtype=dt))
        return c

    first = conv(layer.in_channels, w_first.shape[0], 1, w_first)
    vert = conv(w_vert.shape[1] * groups_mid, w_vert.shape[0], (layer.kernel_size[0], 1), w_vert,
                groups=groups_mid, stride=(sh, 1), padding=(ph, 0), dilation=(dh, 1))
    horiz = conv(w_horiz.shape[1] * groups_mid, w_horiz.shape[0], (1, layer.kernel_size[1]), w_horiz,
                 groups=groups_mid, stride=(1, sw), padding=(0, pw), dilation=(1, dw))
    last = conv(w_last.shape[1], layer.out_channels, 1, w_last, bias=layer.bias is not None)
    if layer.bias is not None:
        last.bias = Parameter(layer.bias.data.copy())
    return Sequential(("first", first), ("vert", vert), ("horiz", horiz), ("last", last))


def cp_conv(layer: Conv2d, rank: int, *, rng=None, n_iter: int = 200) -> tuple:
    """(Sequential of (CP.3), relative error ‖K − CP‖_F/‖K‖_F) for a Conv2d (groups 1); cp_als's SVD start."""
    _check_conv(layer)
    k = layer.weight.to_dense()
    lam, (a, b, c, d), errors = cp_als(k, rank, rng=rng, n_iter=n_iter)
    s = lam ** 0.25     # λ_r spread evenly over the four factors: same kernel, balanced scales to fine-tune
    seq = _four_convs(layer, (b * s).T[:, :, None, None], (c * s).T[:, None, :, None], (d * s).T[:, None, None, :],
                      (a * s)[:, :, None, None], groups_mid=rank)
    return seq, errors[-1]


def tt_conv(layer: Conv2d, *, eps=None, max_rank=None) -> tuple:
    """(Sequential of (TT.6), relative error ‖K − TT‖_F/‖K‖_F, TT-SVD's discarded norms) for a Conv2d
    (groups 1); (TT.2) bounds the error by sqrt(Σ discarded²)/‖K‖_F (≤ eps)."""
    _check_conv(layer)
    k = layer.weight.to_dense()
    cores, discarded = tt_svd(k.transpose(1, 2, 3, 0), eps=eps, max_rank=max_rank)
    g1, g2, g3, g4 = cores
    err = np.linalg.norm(tt_to_tensor(cores).transpose(3, 0, 1, 2) - k) / (np.linalg.norm(k) or 1.0)
    seq = _four_convs(layer, g1[0].T[:, :, None, None], g2.transpose(2, 0, 1)[:, :, :, None],
                      g3.transpose(2, 0, 1)[:, :, None, :], g4[:, :, 0].T[:, :, None, None], groups_mid=1)
    return seq, float(err), discarded


def tt_linear(layer: Linear, out_modes, in_modes, *, eps=None, max_rank=None) -> tuple:
    """(TTLinear with the TT-matrix cores of the layer's weight (TT.3) and its bias, discarded norms)."""
    if not isinstance(layer, Linear):
        raise ValidationError("layer", "a refcomp.nn.Linear", type(layer).__name__)
    w = layer.weight.to_dense()
    cores, discarded = tt_matrix(w, out_modes, in_modes, eps=eps, max_rank=max_rank)
    tt = TTLinear(in_modes, out_modes, [g.shape[3] for g in cores[:-1]], bias=layer.bias is not None,
                  cores=cores, dtype=str(w.dtype))
    if layer.bias is not None:
        tt.bias = Parameter(layer.bias.data.copy())
    return tt, discarded


def decompose_model(model, specs: dict) -> tuple:
    """A copy of ``model`` with the named layers decomposed, and a report.

    specs : {name: {"method": "cp", "rank": R} (Conv2d), or {"method": "tt", "eps": ε, "max_rank": r}
        (Conv2d; a Linear adds "out_modes" and "in_modes")}. ``rng`` / ``n_iter`` may go with "cp".
    Returns (model, {name: {"method", "params", "dense_params", "rel_error"}}), rel_error
    ‖W − Ŵ‖_F/‖W‖_F of the weight. ``model`` is untouched.
    """
    if not isinstance(specs, dict):
        raise ValidationError("specs", "a dict {layer name: spec}", type(specs).__name__)
    out = copy.deepcopy(model)
    modules = dict(out.named_modules())
    report = {}
    for name, spec in specs.items():
        layer = modules.get(name)
        method = spec.get("method") if isinstance(spec, dict) else None
        opts = {k: v for k, v in spec.items() if k != "method"} if isinstance(spec, dict) else {}
        w = layer.weight.to_dense() if isinstance(layer, (Linear, Conv2d)) else None
        allowed = {("cp", Conv2d): {"rank", "rng", "n_iter"}, ("tt", Conv2d): {"eps", "max_rank"},
                   ("tt", Linear): {"eps", "max_rank", "out_modes", "in_modes"}}.get((method, type(layer)))
        if allowed is not None and not set(opts) <= allowed:
            raise ValidationError(f"specs[{name!r}]", f"options among {sorted(allowed)}", sorted(opts))
        if method == "cp" and isinstance(layer, Conv2d):
            new, err = cp_conv(layer, **opts)
        elif method == "tt" and isinstance(layer, Conv2d):
            new, err, _ = tt_conv(layer, **opts)
        elif method == "tt" and isinstance(layer, Linear):
            new, _ = tt_linear(layer, **opts)
            err = float(np.linalg.norm(new.to_dense() - w) / (np.linalg.norm(w) or 1.0))
        else:
            raise ValidationError(f"specs[{name!r}]", "a Conv2d with method 'cp' or 'tt', or a Linear with 'tt'",
                                  f"{type(layer).__name__} with {spec!r}")
        replace_module(out, name, new)
        report[name] = {"method": method, "params": new.num_parameters(), "dense_params": layer.num_parameters(),
                        "rel_error": float(err)}
    return out, report
