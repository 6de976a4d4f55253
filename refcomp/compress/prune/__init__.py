"""Pruning on arrays: importance criteria, masks, schedules, mask application.

criteria   scores: magnitude, structure norms, activation-based, Taylor, SNIP, |gradient|, GraSP
gradflow   mean gradients and the Hessian-gradient product Hg (finite differences) for GraSP
masks      scores -> bool mask: unstructured, N:M, blocks, rows/filters, channels;
           per-layer or global scope
schedules  sparsity per step: one-shot, iterative, gradual cubic (Zhu & Gupta 2017)
apply      keep pruned weights, their gradients and optimizer state at zero
model      the same on a refcomp.nn model: named layers, masked fine-tuning, schedules
structured remove neurons / filters for real: a smaller dense model
neurons    signed activation × weight neuron importance; freezing low-gradient neurons
regrow     prune-and-regrow while training: SET, RigL (a refcomp.nn.train callback)
l0         hard-concrete gates with the expected-L0 penalty (Louizos et al. 2018)
activation_l1  L1 penalty on hidden activations (Glorot et al. 2011): sparse activations
depth      remove whole hidden layers of an MLP (fold into the next Linear), the accuracy trade-off
sparsegpt  one-shot pruning with OBS error compensation from calibration inputs (SparseGPT)

The math, with numbered equations, is in docs/deep_compression.md.
"""

from .activation_l1 import (ActivationL1Penalty, activation_sparsity, add_activation_l1,
                            remove_activation_l1, train_activation_l1)
from .apply import apply_mask, apply_masks, masked
from .criteria import (
    STRUCTURES,
    activation_importance,
    gradient_magnitude,
    grasp,
    grasp_keep_scores,
    magnitude,
    snip,
    structure_norms,
    taylor_first_order,
)
from .depth import depth_tradeoff, drop_layer, merge_linear_pair, removable_layers
from .l0 import L0Penalty, add_gates, fold_gates, l0_prune
from .masks import (
    block_mask,
    channel_mask,
    filter_mask,
    global_masks,
    layerwise_masks,
    nm_mask,
    row_mask,
    sparsity_of,
    unstructured_mask,
)
from .gradflow import hessian_gradient_product, mean_gradients
from .model import (
    MaskedOptimizer,
    apply_model_masks,
    layer_scores,
    masked_fine_tune,
    model_masks,
    model_sparsity,
    prunable_layers,
    prune_model,
    prune_with_schedule,
    weight_masks,
)
from .neurons import (FrozenNeuronOptimizer, low_gradient_neurons, neuron_keep, prune_neurons,
                      signed_neuron_importance, train_frozen)
from .regrow import DynamicSparsity, cosine_fraction, drop_smallest, rigl_update, set_update, sparse_train
from .schedules import Cubic, Iterative, OneShot, Schedule
from .sparsegpt import sparsegpt_model, sparsegpt_prune
from .structured import apply_structured, shrink, structured_keep

__all__ = [
    "STRUCTURES",
    "magnitude",
    "structure_norms",
    "activation_importance",
    "taylor_first_order",
    "snip",
    "gradient_magnitude",
    "grasp",
    "grasp_keep_scores",
    "hessian_gradient_product",
    "mean_gradients",
    "unstructured_mask",
    "nm_mask",
    "block_mask",
    "row_mask",
    "filter_mask",
    "channel_mask",
    "global_masks",
    "layerwise_masks",
    "sparsity_of",
    "Schedule",
    "OneShot",
    "Iterative",
    "Cubic",
    "apply_mask",
    "apply_masks",
    "masked",
    "prunable_layers",
    "layer_scores",
    "model_masks",
    "apply_model_masks",
    "prune_model",
    "weight_masks",
    "model_sparsity",
    "MaskedOptimizer",
    "masked_fine_tune",
    "prune_with_schedule",
    "structured_keep",
    "apply_structured",
    "shrink",
    "sparsegpt_prune",
    "sparsegpt_model",
    "signed_neuron_importance",
    "low_gradient_neurons",
    "neuron_keep",
    "prune_neurons",
    "FrozenNeuronOptimizer",
    "train_frozen",
    "drop_smallest",
    "set_update",
    "rigl_update",
    "cosine_fraction",
    "DynamicSparsity",
    "sparse_train",
    "L0Penalty",
    "add_gates",
    "fold_gates",
    "l0_prune",
    "ActivationL1Penalty",
    "add_activation_l1",
    "remove_activation_l1",
    "activation_sparsity",
    "train_activation_l1",
    "merge_linear_pair",
    "removable_layers",
    "drop_layer",
    "depth_tradeoff",
]
