"""Weight-only quantization of whole models: RTN or GPTQ, int8 / int4 in groups.

Every Conv2d / Linear weight W (O, K) — a convolution kernel read as its
im2col matrix (O, C·kh·kw) — is replaced by a refcomp.formats.QTensor holding
b-bit codes with one scale per output row (``group_size=None``) or per
(row, group of ``group_size`` inputs); activations stay float. The layer
computes x·Ŵᵀ with Ŵ the dequantized weight (docs/gptq_and_ptq.md §1-2, §9).

``method="rtn"`` rounds every weight to its grid (rtn.py).

``method="gptq"`` (Frantar et al. 2022, arXiv:2210.17323 §4, applied layer by
layer as in the authors' code): the layers are quantized in forward order;
the Hessian of layer ℓ is built from the inputs layer ℓ receives when the
calibration set runs through the model *whose layers before ℓ are already
quantized*, so each layer also compensates the error its inputs carry::

    X_ℓ = inputs of layer ℓ in  (Q(W_1), …, Q(W_{ℓ−1}), W_ℓ, …)(x_calib)
    H_ℓ = 2 X_ℓᵀ X_ℓ / n,    Q(W_ℓ) = gptq_quantize(W_ℓ, H_ℓ)              (G1)

For a Conv2d, the rows of X_ℓ are its im2col receptive fields (one per
output position), so the same (G1) applies to the (O, C·kh·kw) matrix.

The model may be any refcomp.nn graph with one input: layer ℓ's inputs are
captured with a forward hook while the calibration batches run through the
whole (partly quantized) model, so "forward order" is the order of
``named_modules()`` (a Graph's node order, a Sequential's layer order).
"""

from __future__ import annotations

import numpy as np

from ...errors import ValidationError
from ...nn.layers import Conv2d, Linear
from ...nn.module import Parameter
from ...ops.im2col import im2col
from .gptq import HessianAccumulator, gptq_quantize
from .model_graph import prepare
from .rtn import rtn_quantize

__all__ = ["quantize_weights", "layer_inputs", "model_bytes"]


def layer_inputs(layer, x: np.ndarray) -> np.ndarray:
    """The rows X the layer multiplies by Wᵀ: x itself (Linear) or the im2col fields (Conv2d, groups=1)."""
    if isinstance(layer, Linear):
        return x.reshape(len(x), -1)
    _, _, oh, ow = layer.output_shape(x.shape)
    ph, pw = layer.padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x
    return im2col(xp, layer.kernel_size, layer.stride, layer.dilation, (oh, ow)).T   # (N·OH·OW, C·kh·kw)


def quantize_weights(model, *, bits=8, group_size: int | None = None, method: str = "rtn",
                     calibration_x=None, percdamp: float = 0.01, act_order: bool = False,
                     batch_size: int = 256) -> tuple:
    """A copy of ``model`` with every Conv2d / Linear weight quantized (module docstring).

    ``bits`` is one width for all layers, or a dict {layer name: bits} (mixed
    precision, e.g. from refcomp.compress.precision.model.select_layer_bits);
    a layer missing from the dict stays float.

    Returns (model, report) where report maps each layer name to
    {"shape", "bytes", "float_bytes", "output_mse"} — output_mse being the
    mean squared error of X Ŵᵀ against X Wᵀ on the layer's calibration inputs
    (only with calibration_x).
    """
    if method not in ("rtn", "gptq"):
        raise ValidationError("method", "'rtn' or 'gptq'", repr(method))
    if method == "gptq" and calibration_x is None:
        raise ValidationError("calibration_x", "calibration inputs (GPTQ needs a Hessian)", None)
    m = prepare(model)
    layers = [(name, layer) for name, layer in m.named_modules() if isinstance(layer, (Conv2d, Linear))]
    h = None if calibration_x is None else np.asarray(calibration_x, dtype=np.float32)
    report = {}
    for name, layer in layers:
        b = bits.get(name) if isinstance(bits, dict) else bits
        if b is None:
            continue
        if isinstance(layer, Conv2d) and layer.groups != 1:
            raise ValidationError(f"layer {name!r}", "groups=1 for weight-only quantization", layer.groups)
        w = layer.weight.to_dense()
        w2 = w.reshape(w.shape[0], -1).astype(np.float64)
        x_rows = None
        if h is not None:
            # (G1): the inputs this layer receives with the layers before it already quantized
            acc = HessianAccumulator(w2.shape[1])
            for rows in _calibration_rows(m, layer, h, batch_size):
                acc.add(rows)
                if x_rows is None:
                    x_rows = rows[: 4096]
        if method == "gptq":
            q = gptq_quantize(w2, acc.hessian(), bits=b, group_size=group_size, percdamp=percdamp,
                              act_order=act_order)
        else:
            q = rtn_quantize(w2, bits=b, group_size=group_size)
        # q is (O, K): a Conv2d multiplies a 2-D format by its im2col matrix
        rec = {"shape": list(w.shape), "bits": b, "bytes": int(q.nbytes), "float_bytes": int(w.nbytes)}
        if x_rows is not None:
            d = x_rows @ (q.to_dense().astype(np.float64) - w2).T
            rec["output_mse"] = float(np.mean(d * d))
        report[name] = rec
        layer.weight = q
    return m, report


def _calibration_rows(model, layer, x: np.ndarray, batch_size: int):
    """For each calibration batch, the rows ``layer`` multiplies by Wᵀ (float64), captured by a forward hook."""
    seen = []
    handle = layer.register_forward_hook(lambda module, inputs, output: seen.append(layer_inputs(layer, inputs[0])))
    try:
        for i in range(0, len(x), batch_size):
            model.forward(x[i:i + batch_size])
            if len(seen) != 1:
                raise ValidationError("model", "a forward that runs each Conv2d / Linear once per batch",
                                      f"{len(seen)} runs of one layer")
            yield seen.pop().astype(np.float64)
    finally:
        handle.remove()


def model_bytes(model) -> int:
    """Bytes of every weight (in its format: WeightFormat.nbytes) and every Parameter (bias ...)."""
    return int(sum(p.data.nbytes if isinstance(p, Parameter) else p.nbytes for _, p in model.named_weights()))
