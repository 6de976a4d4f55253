"""A Sequential model read as quantization stages (shared by PTQ, QAT, GPTQ on models).

Integer inference requantizes once per compute layer, after its activation
(Jacob et al. 2018, arXiv:1712.05877 §2.4: "the activation function is fused
into the requantization"). So a model is cut into *stages*:

=========================  ==========================================================
stage                      layers
=========================  ==========================================================
``compute``                Conv2d or Linear, plus the ReLU right after it (fused)
``maxpool``                MaxPool2d (max commutes with the monotone quantization map)
``relu``                   a ReLU that does not follow a compute layer
``flatten``                Flatten
``identity``               Dropout (eval mode is the identity)
=========================  ==========================================================

Nested Sequentials are read in order, as if flat. Anything else (BatchNorm
left unfolded, AvgPool2d, Tanh, ...) has no exact integer stage here and
raises ValidationError naming the layer.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from ...errors import ValidationError
from ...nn.fold import fold_batchnorm
from ...nn.layers import Conv2d, Dropout, Flatten, Linear, MaxPool2d, ReLU
from ...nn.graph import Graph
from ...nn.module import Module, Sequential

__all__ = ["Stage", "flat_layers", "stages_of", "stage_output_modules", "value_stage", "prepare"]


@dataclass
class Stage:
    """One quantization stage: ``kind`` (table above), ``name``, its float ``layer``, fused ``relu``."""

    kind: str
    name: str
    layer: Module | None
    relu: bool = False

    def forward_float(self, x):
        """The float computation of the stage (eval mode)."""
        if self.layer is not None and self.kind != "identity":
            x = self.layer.forward(x)
        if self.relu and self.kind == "compute":
            x = x * (x > 0)
        return x


def flat_layers(model: Module, prefix: str = "") -> list[tuple[str, Module]]:
    """(dotted name, layer) of every leaf layer, nested Sequentials expanded in order."""
    if not isinstance(model, Sequential):
        return [(prefix, model)]
    out = []
    for name, layer in model.layers.items():
        full = f"{prefix}.{name}" if prefix else name
        out.extend(flat_layers(layer, full) if isinstance(layer, Sequential) else [(full, layer)])
    return out


def value_stage(name: str, layer: Module) -> Stage:
    """The stage of a layer without weights (maxpool, relu, flatten, identity)."""
    for cls, kind in ((MaxPool2d, "maxpool"), (ReLU, "relu"), (Flatten, "flatten"), (Dropout, "identity")):
        if isinstance(layer, cls):
            return Stage(kind, name, layer)
    raise ValidationError(f"model layer {name!r}",
                          "Conv2d, Linear, ReLU, MaxPool2d, Flatten or Dropout (BatchNorm folded)",
                          type(layer).__name__)


def stages_of(model: Module) -> list[Stage]:
    """The stages of ``model`` (see the module table); BatchNorm must be folded already."""
    layers = flat_layers(model)
    stages, i = [], 0
    while i < len(layers):
        name, layer = layers[i]
        if isinstance(layer, (Conv2d, Linear)):
            relu = i + 1 < len(layers) and isinstance(layers[i + 1][1], ReLU)
            stages.append(Stage("compute", name, layer, relu))
            i += 2 if relu else 1
            continue
        stages.append(value_stage(name, layer))
        i += 1
    if not any(s.kind == "compute" for s in stages):
        raise ValidationError("model", "at least one Conv2d or Linear layer", "none")
    return stages


def stage_output_modules(model: Module) -> dict[str, Module]:
    """{compute stage name: the layer whose output is the stage's output} (its fused ReLU, else itself).

    A forward hook on these layers sees exactly what each compute stage hands
    on (how calibration observes the activations).
    """
    layers = flat_layers(model)
    out = {}
    for s in stages_of(model):
        if s.kind == "compute":
            i = next(k for k, (_, layer) in enumerate(layers) if layer is s.layer)
            out[s.name] = layers[i + 1][1] if s.relu else s.layer
    return out


def prepare(model: Module) -> Module:
    """An eval-mode copy of ``model`` with every BatchNorm folded into the layer before it."""
    if not isinstance(model, Module):
        raise ValidationError("model", "a refcomp.nn.Module", type(model).__name__)
    folded = fold_batchnorm(model) if isinstance(model, (Sequential, Graph)) else copy.deepcopy(model)
    return folded.eval()
