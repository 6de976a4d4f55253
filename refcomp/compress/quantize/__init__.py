"""Array-level quantization algorithms for weights (docs/gptq_and_ptq.md).

- rtn             round-to-nearest, per channel or in groups (int8, int4/g128 ...)
- gptq            GPTQ: Hessian from calibration inputs, error compensation
- lowbit          binary (BinaryConnect, XNOR-Net), ternary (TWN), power-of-two
- bias_correction the mean output shift of a quantized layer, removed (DFQ §4.2)
- cle             cross-layer equalization of two layers around a ReLU (DFQ §4.1)
- grid            the uniform grid RTN and GPTQ round onto (their QTensor's QParams)

These work on NumPy arrays only. Whole refcomp.nn models (import the module):

- ptq             static W8A8 PTQ: BN folding, calibration, the integer-only model (CLE / bias correction options)
- cle_model       cross-layer equalization along a model's chains of layers
- bias_correction_model  empirical bias correction from a layer's calibration inputs
- integer_model   the integer-only model: layers holding QTensor weights and activation qparams
- simulate        an integer-only model's output codes computed by float layers (the same codes)
- dynamic         dynamic quantization (activations quantized per batch or per token)
- embedding       int8 embedding tables, one scale per row
- weight_only     int8 / int4-group weight-only models by RTN or GPTQ
- qat             quantization-aware training (observers or LSQ), export to integer
- lowbit_model    binary / ternary models retrained with the STE
- binary_model    fully binary models (XNOR weights + BinarySign activations), packed bit-count inference
- shift_model     power-of-two weights with shift-only integer inference (refcomp.ops.shift_linear)
- model_graph     a Sequential read as quantization stages
"""

from .bias_correction import correct_bias, expected_output_shift, input_mean, relu_gaussian_mean
from .cle import equalization_scales, equalize_chain, equalize_pair
from .gptq import HessianAccumulator, gptq_quantize, hessian_from_inputs
from .lowbit import (
                     PowerOfTwo,
                     binarize,
                     binarize_grad,
                     power_of_two_grad,
                     power_of_two_quantize,
                     ternarize,
                     ternarize_grad,
                     xnor_binarize,
                     xnor_grad,
)
from .rtn import rtn_quantize

__all__ = [
    "rtn_quantize",
    "HessianAccumulator",
    "hessian_from_inputs",
    "gptq_quantize",
    "binarize",
    "binarize_grad",
    "xnor_binarize",
    "xnor_grad",
    "ternarize",
    "ternarize_grad",
    "PowerOfTwo",
    "power_of_two_quantize",
    "power_of_two_grad",
    "expected_output_shift",
    "correct_bias",
    "input_mean",
    "relu_gaussian_mean",
    "equalization_scales",
    "equalize_pair",
    "equalize_chain",
]
