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

The model may be any refcomp.nn model or graph, with one input or several:
layer ℓ's inputs are captured with a forward hook while the calibration
batches run through the whole (partly quantized) model, so "forward order" is
the order of ``named_modules()`` (a Graph's node order, a Sequential's layer
order). Calibration data, for a model with inputs (a_1, …, a_m):

* one input: an array (N, ...), cut into ``batch_size`` rows (float32);
* several inputs: a tuple (A_1, …, A_m) of arrays with the same N, cut into
  ``batch_size`` rows jointly, each keeping its dtype (token ids stay int);
* ``calibration_batches``: the batches themselves, each an array or a tuple,
  run as ``model.forward(*batch)`` (refcomp.nn.run_batch). Their shapes may
  differ from batch to batch: sentences bucketed by length, so that few
  padding positions enter the Hessian.

Every row a layer multiplies counts in its Hessian, padding positions of a
sequence model included (the layer computes them, although a masked mean
pool ignores them); bucketing by length keeps them few.
"""

from __future__ import annotations

import numpy as np

from ...errors import ShapeError, ValidationError
from ...nn.layers import Conv2d, Linear
from ...nn.module import Parameter, run_batch
from ...ops.im2col import im2col
from .gptq import HessianAccumulator, gptq_quantize
from .model_graph import prepare
from .rtn import rtn_quantize

__all__ = ["quantize_weights", "layer_inputs", "layerwise_hessians", "calibration_batch_list", "model_bytes"]


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
                     batch_size: int = 256, calibration_batches=None) -> tuple:
    """A copy of ``model`` with every Conv2d / Linear weight quantized (module docstring).

    ``bits`` is one width for all layers, or a dict {layer name: bits} (mixed
    precision, e.g. from refcomp.compress.precision.model.select_layer_bits);
    a layer missing from the dict stays float.

    ``calibration_x`` is an array (N, ...) for a one-input model, or a tuple of
    arrays (N, ...), one per model input in the order of its ``inputs``, cut
    into batches of ``batch_size`` samples. ``calibration_batches`` instead
    gives the batches as a sequence, each an array or a tuple of arrays
    (``model.forward(*batch)``), used as given. At most one of the two; GPTQ
    needs one of them.

    Returns (model, report) where report maps each layer name to
    {"shape", "bytes", "float_bytes", "output_mse"} — output_mse being the
    mean squared error of X Ŵᵀ against X Wᵀ on the layer's calibration inputs
    (only with calibration data; at most 4,096 rows of the first batch).
    """
    if method not in ("rtn", "gptq"):
        raise ValidationError("method", "'rtn' or 'gptq'", repr(method))
    if calibration_x is not None and calibration_batches is not None:
        raise ValidationError("calibration_batches", "None when calibration_x is given (one source of "
                              "calibration data)", "both given")
    if method == "gptq" and calibration_x is None and calibration_batches is None:
        raise ValidationError("calibration_x", "calibration inputs (GPTQ needs a Hessian)", None)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValidationError("batch_size", "an int >= 1", repr(batch_size))
    if calibration_batches is not None:
        batches = calibration_batch_list(calibration_batches)
    elif calibration_x is not None:
        batches = _cut_batches(calibration_x, int(batch_size))
    else:
        batches = None
    m = prepare(model)
    layers = [(name, layer) for name, layer in m.named_modules() if isinstance(layer, (Conv2d, Linear))]
    chosen = [(name, layer) for name, layer in layers
              if (bits.get(name) if isinstance(bits, dict) else bits) is not None]
    for name, layer in chosen:
        if isinstance(layer, Conv2d) and layer.groups != 1:
            raise ValidationError(f"layer {name!r}", "groups=1 for weight-only quantization", layer.groups)
    stats = (layerwise_hessians(m, [n for n, _ in chosen], batches) if batches is not None
             else ((name, layer, None, None) for name, layer in chosen))
    report = {}
    for name, layer, hessian, x_rows in stats:
        b = bits.get(name) if isinstance(bits, dict) else bits
        w = layer.weight.to_dense()
        w2 = w.reshape(w.shape[0], -1).astype(np.float64)
        if method == "gptq":
            q = gptq_quantize(w2, hessian, bits=b, group_size=group_size, percdamp=percdamp, act_order=act_order)
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


def layerwise_hessians(model, names, batches):
    """For each layer named in ``names``, in model order: (name, layer, H, x_rows).

    H = 2/n · XᵀX (gptq eq. 4) of the rows X the layer multiplies by Wᵀ
    (layer_inputs) while ``batches`` run through ``model`` as it is *when the
    layer's turn comes*: this is a generator, so a caller that replaces a
    layer's weight (or the layer itself, nn.replace_module) before asking for
    the next one makes every later layer see the already-compressed inputs —
    the sequential order (G1) of GPTQ, shared by SparseGPT and whitened
    low-rank. x_rows: at most 4,096 rows of the first batch (for an
    output-error report). One forward pass per layer and batch.
    """
    batches = calibration_batch_list(batches)
    modules = dict(model.named_modules())
    wanted = set(names)
    order = [n for n in modules if n in wanted]
    missing = [n for n in names if n not in modules or not isinstance(modules[n], (Conv2d, Linear))]
    if missing:
        raise ValidationError("layers", "names of Linear / Conv2d layers of the model", f"unknown {missing}")
    for name in order:
        layer = modules[name]
        w = layer.weight
        acc, x_rows = HessianAccumulator(int(np.prod(w.shape[1:]))), None
        for rows in _calibration_rows(model, layer, batches):
            acc.add(rows)
            if x_rows is None:
                x_rows = rows[: 4096]
        yield name, layer, acc.hessian(), x_rows


def _model_inputs(arrays: tuple, argument: str) -> tuple:
    """A tuple of arrays (n, ...) with one common n >= 1, the inputs of a multi-input model; dtypes kept."""
    if not arrays:
        raise ValidationError(argument, "a non-empty tuple of arrays (one per model input)", "()")
    arrays = tuple(np.asarray(a) for a in arrays)   # dtypes kept: token ids must stay integers
    n = {a.shape[0] if a.ndim else None for a in arrays}
    if None in n or len(n) != 1 or 0 in n:
        raise ShapeError(argument, "arrays (n, ...) with one common n >= 1", f"shapes {[a.shape for a in arrays]}")
    return arrays


def _cut_batches(x, batch_size: int) -> list:
    """``calibration_x`` as a list of batches of ``batch_size`` samples: arrays, or tuples of arrays."""
    if isinstance(x, tuple):
        arrays = _model_inputs(x, "calibration_x")
        return [tuple(a[i:i + batch_size] for a in arrays) for i in range(0, len(arrays[0]), batch_size)]
    a = np.asarray(x, dtype=np.float32)             # one input: float32, as it always was
    if a.ndim == 0 or len(a) == 0:
        raise ShapeError("calibration_x", "a non-empty array (N, ...)", f"shape {a.shape}")
    return [a[i:i + batch_size] for i in range(0, len(a), batch_size)]


def calibration_batch_list(batches) -> list:
    """``calibration_batches`` checked, as a list (it is run once per layer); each batch an array or a tuple of arrays."""
    if isinstance(batches, (np.ndarray, tuple)) or not hasattr(batches, "__iter__"):
        # a tuple would be read as one batch's inputs, an array as one batch: refuse both rather than guess
        raise ValidationError("calibration_batches", "a list of batches (each an array or a tuple of arrays)",
                              type(batches).__name__)
    out = []
    for i, b in enumerate(batches):
        if isinstance(b, tuple):
            b = _model_inputs(b, f"calibration_batches[{i}]")
        else:
            b = np.asarray(b)
            if b.ndim == 0 or len(b) == 0:
                raise ShapeError(f"calibration_batches[{i}]", "a non-empty array (n, ...)", f"shape {b.shape}")
        out.append(b)
    if not out:
        raise ValidationError("calibration_batches", "at least one batch", "none")
    return out


def _calibration_rows(model, layer, batches: list):
    """For each calibration batch, the rows ``layer`` multiplies by Wᵀ (float64), captured by a forward hook."""
    seen = []
    handle = layer.register_forward_hook(lambda module, inputs, output: seen.append(layer_inputs(layer, inputs[0])))
    try:
        for batch in batches:
            run_batch(model, batch)
            if len(seen) != 1:
                raise ValidationError("model", "a forward that runs each Conv2d / Linear once per batch",
                                      f"{len(seen)} runs of one layer")
            yield seen.pop().astype(np.float64)
    finally:
        handle.remove()


def model_bytes(model) -> int:
    """Bytes of every weight (in its format: WeightFormat.nbytes) and every Parameter (bias ...)."""
    return int(sum(p.data.nbytes if isinstance(p, Parameter) else p.nbytes for _, p in model.named_weights()))
