"""The Deep Compression pipeline's configuration: every knob, its checks, the presets."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

from ...checks import integer, ratio
from ...compress.prune.model import CRITERIA
from ...errors import ValidationError
from ..recipe.merge import merge_tables

__all__ = ["PipelineConfig", "PRESETS"]


@dataclasses.dataclass
class PipelineConfig:
    """Every knob of the pipeline; :meth:`from_dict` reads the same keys from TOML.

    sparsity, weight_bits, index_bits : {layer name: value} (the layers compressed).
    prune_rounds, prune_epochs : R rounds of prune → retrain, ``prune_epochs`` epochs each.
    prune_lr : retraining lr (cosine-decayed over all rounds); weight_decay : its L2 penalty.
    regularizer : "none" | "l1" | "elastic_net", the penalty reg_l1·Σ|w| + (reg_l2/2)·Σw² on the
        compressed layers' weights during the pruning retraining (refcomp.nn.regularizers; Han et al.
        2015 §3.1 compare L1 and L2 before pruning); "l1" needs reg_l1 > 0 and reg_l2 = 0,
        "elastic_net" both > 0, "none" both 0. regularizer_update : "proximal" (soft-thresholding
        after each step, R.2 of regularizers.py) or "subgradient" (λ1·sign(w) added to the gradient).
    criterion : "magnitude" (the paper's) | "activation" | "taylor" | "snip" (refcomp.compress.prune.model);
        the data-driven ones use the first ``calibration_samples`` training samples.
    finetune_epochs, finetune_lr : centroid fine-tuning (§3.3).
    layout : "flat" (the paper's single stream) or "rows" (CSR with row pointers).
    """

    sparsity: dict
    weight_bits: dict
    index_bits: dict
    prune_rounds: int = 3
    criterion: str = "magnitude"
    calibration_samples: int = 512
    prune_epochs: int = 2
    prune_lr: float = 0.01
    weight_decay: float = 0.0
    regularizer: str = "none"
    reg_l1: float = 0.0
    reg_l2: float = 0.0
    regularizer_update: str = "proximal"
    momentum: float = 0.9
    batch_size: int = 64
    cluster_init: str = "linear"
    finetune_epochs: int = 1
    finetune_lr: float = 1e-4
    layout: str = "flat"
    seed: int = 0

    def __post_init__(self):
        for field in ("sparsity", "weight_bits", "index_bits"):
            if not isinstance(getattr(self, field), Mapping) or not getattr(self, field):
                raise ValidationError(field, "a non-empty mapping layer name -> value",
                                      repr(getattr(self, field)))
        names = list(self.sparsity)
        for field in ("weight_bits", "index_bits"):
            if sorted(getattr(self, field)) != sorted(names):
                raise ValidationError(field, f"the same layer names as sparsity {names}", sorted(getattr(self, field)))
        self.sparsity = {n: ratio(v, f"sparsity[{n!r}]") for n, v in self.sparsity.items()}
        self.weight_bits = {n: integer(v, f"weight_bits[{n!r}]", minimum=1, maximum=8)
                            for n, v in self.weight_bits.items()}
        self.index_bits = {n: integer(v, f"index_bits[{n!r}]", minimum=1, maximum=16)
                           for n, v in self.index_bits.items()}
        self.prune_rounds = integer(self.prune_rounds, "prune_rounds", minimum=1)
        self.prune_epochs = integer(self.prune_epochs, "prune_epochs", minimum=1)
        self.finetune_epochs = integer(self.finetune_epochs, "finetune_epochs", minimum=0)
        self.batch_size = integer(self.batch_size, "batch_size", minimum=1)
        self.calibration_samples = integer(self.calibration_samples, "calibration_samples", minimum=1)

        if self.criterion not in CRITERIA:
            raise ValidationError("criterion", f"one of {CRITERIA}", repr(self.criterion))
        self.seed = integer(self.seed, "seed", minimum=0)
        for field in ("prune_lr", "finetune_lr", "momentum", "weight_decay", "reg_l1", "reg_l2"):
            v = getattr(self, field)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValidationError(field, "a finite number >= 0", repr(v))
        if self.regularizer not in ("none", "l1", "elastic_net"):
            raise ValidationError("regularizer", "'none', 'l1' or 'elastic_net'", repr(self.regularizer))
        if self.regularizer_update not in ("proximal", "subgradient"):
            raise ValidationError("regularizer_update", "'proximal' or 'subgradient'", repr(self.regularizer_update))
        # a strength the chosen regularizer would ignore is a mistake, not a default
        need = {"none": (False, False), "l1": (True, False), "elastic_net": (True, True)}[self.regularizer]
        for field, wanted in zip(("reg_l1", "reg_l2"), need):
            if (getattr(self, field) > 0) != wanted:
                raise ValidationError(field, f"{'> 0' if wanted else '0'} with regularizer={self.regularizer!r}",
                                      repr(getattr(self, field)))
        if self.cluster_init not in ("linear", "density", "random"):
            raise ValidationError("cluster_init", "'linear', 'density' or 'random'", repr(self.cluster_init))
        if self.layout not in ("flat", "rows"):
            raise ValidationError("layout", "'flat' or 'rows'", repr(self.layout))

    @classmethod
    def from_dict(cls, d: Mapping, base: "PipelineConfig | None" = None) -> "PipelineConfig":
        """Keys of the dataclass; unknown keys are an error. ``base`` supplies the missing ones.

        ``d`` is merged into ``base`` key by key, tables recursively (refcomp.pipelines.recipe.merge):
        ``[sparsity] fc1 = 0.9`` changes fc1 and keeps the preset's other layers. A layer the preset
        does not have must then come with its sparsity, weight_bits and index_bits alike; the error
        names the table the override wrote.
        """
        if not isinstance(d, Mapping):
            raise ValidationError("config", "a table of pipeline settings", type(d).__name__)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValidationError("config", f"keys among {sorted(known)}", f"unknown {unknown}")
        for field in _LAYER_TABLES:
            if field in d and not isinstance(d[field], Mapping):
                raise ValidationError(field, "a table layer name -> value", repr(d[field]))
        values = merge_tables(dataclasses.asdict(base), d) if base is not None else dict(d)
        if base is not None:
            _check_same_layers(values, d)
        return cls(**values)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_LAYER_TABLES = ("sparsity", "weight_bits", "index_bits")


def _check_same_layers(values: Mapping, written: Mapping) -> None:
    """After merging: the three layer tables name the same layers; else name a table the override wrote."""
    names = {field: set(values[field]) for field in _LAYER_TABLES}
    odd = sorted(set().union(*names.values()) - set.intersection(*names.values()))
    if not odd:
        return
    layer = odd[0]
    # the override's table that brought the layer in (the preset's three tables agree)
    field = next((f for f in _LAYER_TABLES if layer in written.get(f, {})), None) or \
        next(f for f in _LAYER_TABLES if layer in names[f])
    lacking = [f for f in _LAYER_TABLES if layer not in names[f]]
    raise ValidationError(f"{field}[{layer!r}]", "a layer of the preset, or a new layer given in each of sparsity, "
                          "weight_bits and index_bits", f"{layer!r} missing from {' and '.join(lacking)}")


#: Paper-style settings per reference model (Deep Compression Tables 2 and 3 as the starting point,
#: tuned on this 8,000-image split; docs/deep_compression.md §7 gives the measured results).
PRESETS = {
    "lenet_300_100": dict(
        sparsity={"fc1": 0.94, "fc2": 0.91, "fc3": 0.74},
        weight_bits={"fc1": 5, "fc2": 5, "fc3": 5},
        index_bits={"fc1": 5, "fc2": 5, "fc3": 5},
        prune_rounds=5, prune_epochs=10, prune_lr=0.02, finetune_epochs=1, finetune_lr=1e-4),
    "lenet5": dict(
        sparsity={"conv1": 0.34, "conv2": 0.88, "fc1": 0.93, "fc2": 0.81},
        weight_bits={"conv1": 5, "conv2": 5, "fc1": 5, "fc2": 5},
        index_bits={"conv1": 4, "conv2": 5, "fc1": 5, "fc2": 5},
        prune_rounds=4, prune_epochs=4, prune_lr=0.05, finetune_epochs=1, finetune_lr=1e-4),
    "digits_mlp": dict(
        sparsity={"fc1": 0.8, "fc2": 0.5},
        weight_bits={"fc1": 5, "fc2": 5},
        index_bits={"fc1": 4, "fc2": 4},
        prune_rounds=2, prune_epochs=3, prune_lr=0.02, finetune_epochs=1, finetune_lr=1e-3),
}
