"""Model-level transforms that compose two or more refcomp calls, so a recipe step can name them.

Every other step calls a refcomp.compress function directly (registry.py). The
functions here take the model first and return ``(model, report)``; ``model``
is never modified. Their keyword arguments are the recipe keys of the step.
"""

from __future__ import annotations

import copy

from ...compress.distill.student import drop_layers, slice_width
from ...compress.distill.train import distill_train
from ...compress.lowrank.model import factorize_model
from ...compress.prune.model import prunable_layers, prune_with_schedule
from ...compress.prune.schedules import Iterative
from ...compress.prune.structured import apply_structured, shrink, structured_keep
from ...compress.quantize.qat import prepare_qat, to_integer, train_qat
from ...compress.share.trained_quantization import clustered_layers
from ...errors import ValidationError
from ...formats.relative_csr import RelativeIndexCSR, size_table
from ...nn.train import evaluate

__all__ = ["prune_gradual", "prune_structured", "qat", "huffman", "lowrank", "distill", "evaluate_model"]


def prune_gradual(model, train_set, *, sparsity: float | dict[str, float], rounds: int = 3, epochs_per_round: int = 2,
                  criterion: str = "magnitude", lr: float = 0.01, momentum: float = 0.9,
                  weight_decay: float = 0.0, batch_size: int = 64, seed: int = 0) -> tuple:
    """Prune ↔ retrain in ``rounds`` rounds, each layer reaching its ``sparsity`` {name: ratio} at the last
    (one ratio: every Linear / Conv2d layer).

    Round r (1…R) prunes to s·(1 − (1 − r/R)³), the cubic ramp of Zhu & Gupta 2017 over rounds, as
    the Deep Compression pipeline does; ``epochs_per_round`` epochs of masked retraining follow each.
    Returns (pruned copy whose layers hold their masks, {"masks": ...}).
    """
    if not isinstance(sparsity, dict):
        sparsity = dict.fromkeys(prunable_layers(model), sparsity)
    top = max(sparsity.values()) if sparsity else 0.0
    milestones = [(r * epochs_per_round, top * (1.0 - (1.0 - (r + 1) / rounds) ** 3)) for r in range(rounds)]
    if top == 0.0:
        milestones = [(0, 0.0)]     # Iterative refuses a ramp of zeros; nothing is pruned either way
    return prune_with_schedule(model, Iterative(milestones), train_set, epochs=rounds * epochs_per_round,
                               sparsity_of_layer=sparsity, criterion=criterion, lr=lr, momentum=momentum,
                               weight_decay=weight_decay, batch_size=batch_size, rng=seed,
                               calibration=None if criterion == "magnitude" else train_set)


def prune_structured(model, *, sparsity: dict[str, float], norm: int = 1) -> tuple:
    """Remove the neurons / filters of smallest L``norm`` weight norm: ``sparsity`` {layer: fraction of rows}.

    structured_keep → apply_structured → shrink: the result is a smaller dense model.
    Returns (the smaller copy, shrink's report {name: {"kept", "removed"}}).
    """
    keep = structured_keep(model, sparsity, norm=norm)
    zeroed, _ = apply_structured(model, keep)
    return shrink(zeroed, keep)


def qat(model, calibration_x, train_set, *, epochs: int = 2, freeze_observers_epoch: int = 1,
        lr: float = 0.01, momentum: float = 0.9, batch_size: int = 64, lsq: bool = False,
        seed: int = 0) -> tuple:
    """Quantization-aware training to an integer-only W8A8 model: prepare_qat → train_qat → to_integer.

    Activation ranges start from ``calibration_x``; ``lsq`` learns the step sizes (LSQ).
    Returns (the integer model, {"history": train_qat's records, "bytes": ...}).
    """
    fake, _ = prepare_qat(model, calibration_x, lsq=lsq)
    history = train_qat(fake, train_set, epochs=epochs, freeze_observers_epoch=freeze_observers_epoch,
                        lr=lr, momentum=momentum, batch_size=batch_size, rng=seed)
    q, report = to_integer(fake)
    return q, {"history": history, "bytes": report.get("bytes")}


def huffman(model, *, index_bits: int | dict[str, int] = 5, layout: str = "flat") -> tuple:
    """Store every clustered layer (a ``cluster`` step before) as Huffman-coded relative-index CSR.

    index_bits : the width of the index gaps, one for all layers or {name: bits};
    layout : "flat" (Deep Compression's single stream) or "rows" (row pointers).
    Returns (a copy whose clustered layers hold RelativeIndexCSR, {"table": size_table rows}).
    """
    layers = clustered_layers(model)
    if not layers:
        raise ValidationError("huffman", "a model with clustered layers (a 'cluster' step before)", "none")
    bits = index_bits if isinstance(index_bits, dict) else dict.fromkeys(layers, index_bits)
    missing = sorted(set(layers) - set(bits))
    if missing:
        raise ValidationError("index_bits", f"a width for every clustered layer {sorted(layers)}",
                              f"none for {missing}")
    out = copy.deepcopy(model)
    storage = {}
    for name, layer in clustered_layers(out).items():
        storage[name] = RelativeIndexCSR.from_clustered(layer.weight, index_bits=bits[name], layout=layout)
        layer.weight = storage[name]
    return out, {"table": size_table(storage)}


def lowrank(model, calibration_batches, *, ranks: dict[str, int], whitened: bool = False, percdamp: float = 0.01) -> tuple:
    """Factorize the layers named in ``ranks`` {name: rank} by truncated SVD (factorize_model).

    whitened : the SVD whitened by the calibration inputs (docs/lowrank.md eq. 11).
    """
    return factorize_model(model, ranks, calibration_batches=calibration_batches if whitened else None,
                           percdamp=percdamp)


def distill(model, train_set, *, widths: dict[str, int] | None = None, drop: list[str] | None = None,
            criterion: str = "l1", epochs: int = 10, batch_size: int = 64, lr: float = 0.05,
            momentum: float = 0.9, alpha: float = 0.5, temperature: float = 4.0, targets: str = "soft",
            seed: int = 0) -> tuple:
    """A student cut from ``model`` (the teacher) and trained against it (Hinton et al. 2015).

    widths : {layer: units kept} (slice_width, by ``criterion``); drop : square Linear layers removed
    (drop_layers); at least one of the two. Returns (the trained student, {"history": ...}).
    """
    if not widths and not drop:
        raise ValidationError("widths / drop", "a table of widths or a list of layers to drop", "neither")
    student = model
    if drop:
        student, _ = drop_layers(student, drop)
    if widths:
        student, _ = slice_width(student, widths, criterion=criterion)
    history = distill_train(student, model, train_set, epochs=epochs, batch_size=batch_size, lr=lr,
                            momentum=momentum, alpha=alpha, temperature=temperature, targets=targets, rng=seed)
    return student, {"history": history}


def evaluate_model(model, test_set, *, batch_size: int = 1000) -> tuple:
    """No change to the model: its loss and accuracy on the test data, as a step of its own."""
    return model, evaluate(model, test_set, batch_size=batch_size)
