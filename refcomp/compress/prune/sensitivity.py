"""Pruning sensitivity: accuracy versus sparsity, one layer at a time.

Han et al. 2015 (arXiv:1506.02626) Fig. 5: prune a single layer to sparsity s
(magnitude, no retraining), every other layer untouched, and measure the
accuracy; a layer whose curve stays flat to high s tolerates a high ratio.
The curves pick per-layer ratios (scope "layer"); refcomp does not choose for
you, it returns the data:

    acc[l][s] = accuracy(model with W_l ← W_l ⊙ mask(|W_l|, s))    for l in layers, s in sparsities   (D.24)

Each layer's curve is an independent task (the model, the data, the layer's
scores): ``executor`` runs them in this process (``"serial"``), in worker
processes (``"process"``) or on a dask cluster (``"dask"``), or through any
``concurrent.futures.Executor`` given; the curves are identical
(refcomp.executors).
"""

from __future__ import annotations

import io

import numpy as np

from ...checks import ratio
from ...errors import ValidationError
from ...executors import run_tasks
from ...io.atomic import write_atomic
from ...io.provenance import png_metadata
from ...nn.train import evaluate
from .model import layer_scores, model_masks, prunable_layers

__all__ = ["sensitivity", "plot_sensitivity", "sensitivity_markdown"]


def sensitivity(model, data, *, layers=None, sparsities=(0.0, 0.5, 0.7, 0.8, 0.9, 0.95),
                criterion: str = "magnitude", calibration=None, executor="serial") -> dict:
    """{layer: [(sparsity, accuracy), ...]} on ``data = (x, y)``; the model is left as it came.

    executor : "serial", "process", "dask" or a concurrent.futures.Executor
        (refcomp.executors.run_tasks); one task per layer.
    """
    sp = [ratio(s, f"sparsities[{i}]") for i, s in enumerate(sparsities)]
    if not sp:
        raise ValidationError("sparsities", "at least one ratio", "none")
    chosen = prunable_layers(model, layers)
    scores = layer_scores(model, criterion, layers=list(chosen), data=calibration)
    curves = run_tasks(_layer_curve, [(model, data, name, scores[name], sp) for name in chosen], executor)
    return dict(zip(chosen, curves))


def _layer_curve(model, data, name: str, scores, sparsities) -> list:
    """[(s, accuracy with only layer ``name`` pruned to s by ``scores``), ...]; the layer restored after each."""
    layer = prunable_layers(model, [name])[name]
    saved = layer.weight.data.copy()
    curve = []
    try:
        for s in sparsities:
            mask = model_masks({name: scores}, s)[name]
            layer.weight.data[~mask] = 0
            curve.append((s, float(evaluate(model, data)["accuracy"])))
            layer.weight.data[...] = saved
    finally:
        layer.weight.data[...] = saved
    return curve


def sensitivity_markdown(curves: dict) -> str:
    """One row per layer, one column per sparsity (accuracy in %)."""
    if not curves:
        raise ValidationError("curves", "the non-empty result of sensitivity()", curves)
    sp = [s for s, _ in next(iter(curves.values()))]
    lines = ["| layer | " + " | ".join(f"{100 * s:.0f}%" for s in sp) + " |", "|---|" + "---|" * len(sp)]
    for name, curve in curves.items():
        lines.append(f"| {name} | " + " | ".join(f"{100 * a:.2f}" for _, a in curve) + " |")
    return "\n".join(lines) + "\n"


def plot_sensitivity(curves: dict, path) -> bool:
    """Accuracy vs sparsity per layer as a PNG (Agg backend); False if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, curve in curves.items():
        s, a = np.array(curve).T
        ax.plot(100 * s, 100 * a, marker="o", label=name)
    ax.set_xlabel("sparsity of the layer (%)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("pruning sensitivity (one layer at a time, no retraining)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata=png_metadata())
    write_atomic(path, buf.getvalue())      # a complete PNG or none (Ctrl-C), with the usual permissions
    plt.close(fig)
    return True
