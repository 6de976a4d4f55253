"""The one registry of recipe steps: step name -> the function it calls and what the runner supplies.

A step's keys are exactly the keyword arguments of its function (params.py)
minus ``needs``, the arguments the runner fills from the data: "train" and
"test" ((x, y) parts of --data), "calibration_x" (the first --calibration
training inputs), "calibration_batches" (those inputs cut in batches, or the
MiniLM calibration sentences), "calibration_set" (calibration inputs and their
labels). ``checks`` add the range / choice contracts the type alone does not
say, so that a recipe fails before any work rather than in its fifth step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from ...checks import integer, one_of, ratio, real
from ...errors import ValidationError
from ...compress.lowrank.search import factorize_to_budget
from ...compress.precision.model import cast_model, mixed_bits_model
from ...compress.prune.deploy import to_csr
from ...compress.prune.model import CRITERIA, GRANULARITIES, masked_fine_tune, model_masks, prune_model
from ...compress.prune.sparsegpt import sparsegpt_model
from ...compress.quantize.dynamic import quantize_dynamic
from ...compress.quantize.embedding import quantize_embeddings
from ...compress.quantize.ptq import quantize_static
from ...compress.quantize.static_inputs import quantize_static_inputs
from ...compress.quantize.weight_only import quantize_weights
from ...compress.share.trained_quantization import cluster_model, finetune_centroids
from . import steps
from .params import Param, parameters

__all__ = ["StepSpec", "STEPS", "CONTEXT"]

#: what the runner can supply, in words (for the error when a route lacks it)
CONTEXT = {"train": "training data (x, y)", "test": "test data (x, y)",
           "calibration_x": "calibration inputs", "calibration_batches": "calibration batches",
           "calibration_set": "labelled calibration data (x, y)"}


def _each(check):
    """A check applied to a value or to every value of a table ({layer: value})."""
    def run(value, argument):
        if isinstance(value, dict):
            for k, v in value.items():
                check(v, f"{argument}[{k!r}]")
        else:
            check(value, argument)
    return run


def _int(minimum=None, maximum=None):
    return _each(lambda v, a: integer(v, a, minimum=minimum, maximum=maximum))


def _real(low=0.0, high=float("inf"), **kw):
    return _each(lambda v, a: real(v, a, low=low, high=high, **kw))


def _choice(*choices):
    return _each(lambda v, a: one_of(v, a, choices))


def _needs(key: str, when: str, value, *, of: str):
    """A rule: ``key`` must be given when ``when`` == ``value`` (checked with the other keys of the step)."""
    def rule(keys, label):
        if keys.get(when) == value and key not in keys:
            raise ValidationError(f"{label}: {key}", f"a value with {when} = {value!r} ({of})", "none")
    return rule


def _exactly_one(*names):
    """A rule: exactly one of ``names`` is given."""
    def rule(keys, label):
        given = [n for n in names if n in keys]
        if len(given) != 1:
            raise ValidationError(f"{label}: {' / '.join(names)}", f"exactly one of {', '.join(names)}",
                                  ", ".join(given) if given else "none")
    return rule


def _at_least_one(*names):
    """A rule: one or more of ``names`` is given."""
    def rule(keys, label):
        if not any(n in keys for n in names):
            raise ValidationError(f"{label}: {' / '.join(names)}", f"at least one of {', '.join(names)}", "none")
    return rule


def _all(*rules):
    def rule(keys, label):
        for r in rules:
            r(keys, label)
    return rule


_RATIO = _each(ratio)
_EPOCHS, _BATCH, _LR, _MOMENTUM = _int(1), _int(1), _real(), _real(0.0, 1.0, high_open=True)
_SEED = _int(0)
_TRAINING = {"epochs": _EPOCHS, "batch_size": _BATCH, "lr": _LR, "momentum": _MOMENTUM}


@dataclasses.dataclass(frozen=True)
class StepSpec:
    """One step kind: ``fn(model, <needs>, **keys) -> (model, report)``."""
    fn: Callable
    family: str
    summary: str
    needs: dict = dataclasses.field(default_factory=dict)      # fn's argument -> CONTEXT key
    exclude: tuple = ()                                         # fn's arguments a recipe cannot set
    types: dict = dataclasses.field(default_factory=dict)       # annotation text for unannotated ones
    checks: dict = dataclasses.field(default_factory=dict)      # key -> check(value, argument)
    also: Callable | None = None                                # fn(**kw) passes kw on to this one
    rule: Callable | None = None                                # rule(keys, label): keys that go together

    @property
    def params(self) -> dict[str, Param]:
        """{key: Param}: the recipe keys this step takes."""
        out = parameters(self.fn, exclude=(*self.needs, *self.exclude), types=self.types)
        if self.also is not None:
            for name, p in parameters(self.also, exclude=("sparsity", "previous")).items():
                out.setdefault(name, p)
        return out


STEPS: dict[str, StepSpec] = {
    # --- prune
    "prune": StepSpec(prune_model, "prune", "one-shot pruning by a criterion and granularity (prune_model)",
                      needs={"data": "calibration_set"}, exclude=("previous",),
                      types={"sparsity": "float | dict[str, float]", "layers": "list[str] | None"},
                      also=model_masks,
                      checks={"sparsity": _RATIO, "criterion": _choice(*CRITERIA),
                              "granularity": _choice(*GRANULARITIES), "scope": _choice("layer", "global")},
                      rule=_all(_needs("n", "granularity", "nm", of="n kept of every m"),
                                _needs("m", "granularity", "nm", of="n kept of every m"))),
    "prune_gradual": StepSpec(steps.prune_gradual, "prune", "prune <-> retrain rounds on a cubic ramp",
                              needs={"train_set": "train"},
                              checks={"sparsity": _RATIO, "rounds": _int(1), "epochs_per_round": _EPOCHS,
                                      "criterion": _choice(*CRITERIA), "weight_decay": _real(), "seed": _SEED,
                                      **{k: v for k, v in _TRAINING.items() if k != "epochs"}}),
    "prune_structured": StepSpec(steps.prune_structured, "prune", "remove whole neurons / filters (a smaller model)",
                                 checks={"sparsity": _RATIO, "norm": _choice(1, 2)}),
    "sparsegpt": StepSpec(sparsegpt_model, "prune", "SparseGPT: unstructured or N:M by second-order updates",
                          needs={"calibration_batches": "calibration_batches"},
                          types={"layers": "list[str] | None"},
                          checks={"sparsity": _RATIO, "percdamp": _real(), "block_size": _int(1)},
                          rule=_exactly_one("sparsity", "n_m")),
    "fine_tune": StepSpec(masked_fine_tune, "train", "SGD training that keeps pruned weights at zero",
                          needs={"train_set": "train"}, exclude=("masks", "progress", "val_data", "loss"),
                          types={"schedule": "str"},
                          checks={**_TRAINING, "rng": _SEED, "schedule": _choice("cosine", "constant")}),
    "to_csr": StepSpec(to_csr, "prune", "store the sparse layers as CSR (the sparse kernels)",
                       types={"layers": "list[str] | None"}, checks={"min_sparsity": _RATIO}),
    # --- quantize
    "quantize_static": StepSpec(quantize_static, "quantize", "W8A8 static post-training quantization",
                                needs={"calibration_x": "calibration_x"}, exclude=("observer_kwargs",),
                                checks={"observer": _choice("minmax", "percentile", "mse", "entropy"),
                                        "activation_dtype": _choice("uint8", "int8"), "batch_size": _BATCH,
                                        "weight_bits": _choice(8, 4, 2),
                                        "weight_granularity": _choice("per_channel", "per_tensor"),
                                        "requantize": _choice("fixed_point", "float")}),
    "quantize_static_inputs": StepSpec(quantize_static_inputs, "quantize",
                                       "W8A8 static of any graph's Linear inputs (SmoothQuant optional)",
                                       needs={"calibration": "calibration_batches"}, exclude=("observer_kwargs",),
                                       types={"smooth_layers": "list[str] | None"},
                                       checks={"observer": _choice("minmax", "percentile", "mse", "entropy"),
                                               "smooth_alpha": _real(0.0, 1.0)}),
    "quantize_dynamic": StepSpec(quantize_dynamic, "quantize", "W8A8 dynamic (activation ranges at run time)"),
    "quantize_weights": StepSpec(quantize_weights, "quantize", "weight-only RTN or GPTQ, any bits, groups",
                                 needs={"calibration_batches": "calibration_batches"},
                                 exclude=("calibration_x", "batch_size"),
                                 types={"bits": "int | dict[str, int]"},
                                 checks={"bits": _int(2, 8), "group_size": _int(1), "method": _choice("rtn", "gptq"),
                                         "percdamp": _real()}),
    "quantize_embeddings": StepSpec(quantize_embeddings, "quantize", "embedding tables int8, one scale per row"),
    "qat": StepSpec(steps.qat, "quantize", "quantization-aware training to an integer-only W8A8 model",
                    needs={"calibration_x": "calibration_x", "train_set": "train"},
                    checks={**_TRAINING, "seed": _SEED, "freeze_observers_epoch": _int(0)}),
    # --- share
    "cluster": StepSpec(cluster_model, "share", "k-means weight sharing (2^bits centroids per layer)",
                        exclude=("masks",), types={"bits": "int | dict[str, int]", "layers": "list[str] | None",
                                                   "rng": "int | None"},
                        checks={"bits": _int(1, 8), "init": _choice("linear", "density", "random"),
                                "rng": _SEED, "max_iter": _int(1)},
                        rule=_needs("rng", "init", "random", of="the seed of the random initial centroids")),
    "finetune_centroids": StepSpec(finetune_centroids, "share", "train the shared centroids by summed gradients",
                                   needs={"train_set": "train"}, exclude=("on_epoch",), checks={**_TRAINING, "rng": _SEED}),
    "huffman": StepSpec(steps.huffman, "share", "Huffman-coded relative-index CSR of the clustered layers",
                        checks={"index_bits": _int(1, 16), "layout": _choice("flat", "rows")}),
    # --- low rank, distillation, precision
    "lowrank": StepSpec(steps.lowrank, "lowrank", "truncated SVD of the named layers (optionally whitened)",
                        needs={"calibration_batches": "calibration_batches"},
                        checks={"ranks": _int(1), "percdamp": _real()}),
    "lowrank_budget": StepSpec(factorize_to_budget, "lowrank", "ranks searched to fit a parameter budget",
                               needs={"val_set": "calibration_set"}, types={"layers": "list[str] | None"},
                               checks={"max_params": _int(1), "shrink": _real(0.0, 1.0, low_open=True,
                                                                               high_open=True),
                                       "tolerance": _int(0)}),
    "distill": StepSpec(steps.distill, "distill", "a thinner student trained against the model",
                        needs={"train_set": "train"},
                        checks={**_TRAINING, "seed": _SEED, "widths": _int(1), "criterion": _choice("l1", "l2"),
                                "alpha": _real(0.0, 1.0), "temperature": _real(0.0, low_open=True),
                                "targets": _choice("soft", "hard")},
                        rule=_at_least_one("widths", "drop")),
    "cast": StepSpec(cast_model, "precision", "weights stored in float16 / bfloat16",
                     checks={"dtype": _choice("float16", "bfloat16"), "on_overflow": _choice("raise", "saturate")}),
    "mixed_bits": StepSpec(mixed_bits_model, "precision", "per-layer RTN widths chosen under a byte budget",
                           needs={"calibration_x": "calibration_x"}, types={"bit_choices": "list[int]"},
                           checks={"budget_bytes": _int(1), "bit_choices": _each(lambda v, a: [
                               integer(b, a, minimum=2, maximum=8) for b in v]),
                               "group_size": _int(1), "method": _choice("exact", "greedy")}),
    "evaluate": StepSpec(steps.evaluate_model, "evaluate", "loss and accuracy on the test data, model unchanged",
                         needs={"test_set": "test"}, checks={"batch_size": _BATCH}),
}
