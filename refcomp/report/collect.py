"""Record parts built from refcomp objects: the provenance of a run, a quantized model's layers and weights."""

from __future__ import annotations

import datetime

import numpy as np

from .._version import __version__
from ..formats.base import WeightFormat
from .record import histogram, qparams_grid

__all__ = ["provenance", "compressed_layers", "layer_entry", "weight_entry", "model_parts", "model_bytes"]


def provenance(command: str, *, data: str | None = None, split: str | None = None, seed: int | None = None,
               **extra) -> dict:
    """The record's provenance: the command, this refcomp's version, now (UTC), and what was given."""
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    out = {"command": command, "refcomp_version": __version__, "date": now.isoformat().replace("+00:00", "Z")}
    out.update({k: v for k, v in {"data": data, "split": split, "seed": seed, **extra}.items() if v is not None})
    return out


def _qparams(weight):
    """The QParams of a quantized weight format (QTensor, or a format wrapping one), else None."""
    qp = getattr(weight, "qparams", None)
    if qp is None and isinstance(getattr(weight, "weight", None), WeightFormat):
        qp = getattr(weight.weight, "qparams", None)
    return qp


def compressed_layers(before, after) -> list[tuple[str, object, object]]:
    """(name, weight before, weight after) of every module whose ``weight`` the compression turned into
    another format (a Dense or float Parameter left as it was is not a compressed layer).

    A module the compression wrapped (static quantization makes ``fc1`` an island
    ``fc1.quantize``, ``fc1.layer``, ``fc1.dequantize``) is matched to the module of ``before``
    whose name is its nearest prefix, and named by it.
    """
    old = {n: m.weight for n, m in before.named_modules() if getattr(m, "weight", None) is not None}
    out = []
    for name, module in after.named_modules():
        w = getattr(module, "weight", None)
        if not isinstance(w, WeightFormat) or type(w).__name__ == "Dense":
            continue
        match = name
        while match not in old and "." in match:
            match = match.rsplit(".", 1)[0]
        if match in old:
            out.append((match, old[match], w))
    return out


def _nbytes(weight) -> int:
    if isinstance(weight, WeightFormat):
        return int(weight.nbytes)
    return int(np.asarray(getattr(weight, "data", weight)).nbytes)


def layer_entry(name: str, before, after) -> dict:
    """The record's ``layers`` entry of one compressed layer."""
    return {"name": name, "shape": [int(d) for d in after.shape], "format": type(after).__name__,
            "bytes_before": _nbytes(before), "bytes_after": _nbytes(after)}


def _values(weight) -> np.ndarray:
    return weight.to_dense() if isinstance(weight, WeightFormat) else np.asarray(getattr(weight, "data", weight))


def weight_entry(name: str, weight, *, values=None, bins: int = 60) -> dict:
    """The record's ``weights`` entry of one layer: the histogram of ``values`` (default the
    decoded ``weight``) and, for a quantized format, its quantization grid."""
    entry = {"layer": name, "histogram": histogram(_values(weight) if values is None else values, bins=bins)}
    qp = _qparams(weight)
    if qp is not None and qp.dtype.name.startswith(("int", "uint")):
        entry["grid"], entry["grid_kind"] = qparams_grid(qp)
    elif getattr(weight, "codebook", None) is not None:          # weight sharing: the shared values
        entry["grid"] = [float(c) for c in np.ravel(weight.codebook)]
        entry["grid_kind"] = "centroids"
    return entry


def model_bytes(model) -> int:
    """Bytes of every weight and parameter of ``model`` as stored (formats by their ``nbytes``)."""
    return sum(_nbytes(w) for _, w in model.named_weights())


def model_parts(before, after) -> tuple[list, list]:
    """The record's ``layers`` and ``weights`` of a compression ``before`` -> ``after`` (two models
    of the same modules): each compressed layer's bytes, and the histogram of its weights *before*
    (what the grid had to cover) with the grid of the format it became."""
    layers, weights = [], []
    for name, old, new in compressed_layers(before, after):
        layers.append(layer_entry(name, old, new))
        weights.append(weight_entry(name, new, values=_values(old)))
    return layers, weights
