"""Array-level quantization algorithms for weights (docs/gptq_and_ptq.md).

- rtn             round-to-nearest, per channel or in groups (int8, int4/g128 ...)
- gptq            GPTQ: Hessian from calibration inputs, error compensation
- lowbit          binary (BinaryConnect, XNOR-Net), ternary (TWN), power-of-two
- bias_correction the mean output shift of a quantized layer, removed (DFQ §4.2)
- cle             cross-layer equalization of two layers around a ReLU (DFQ §4.1)
- grid            the uniform grid RTN and GPTQ round onto (GroupQuantized)

These work on NumPy arrays only; wiring them to refcomp.nn layers (PTQ of
whole models, QAT) builds on them.
"""

from .bias_correction import correct_bias, expected_output_shift, input_mean, relu_gaussian_mean
from .cle import equalization_scales, equalize_chain, equalize_pair
from .gptq import HessianAccumulator, gptq_quantize, hessian_from_inputs
from .grid import GroupQuantized
from .lowbit import (PowerOfTwo, binarize, binarize_grad, power_of_two_grad, power_of_two_quantize,
                     ternarize, ternarize_grad, xnor_binarize, xnor_grad)
from .rtn import rtn_dequantize, rtn_quantize

__all__ = [
    "GroupQuantized",
    "rtn_quantize",
    "rtn_dequantize",
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
