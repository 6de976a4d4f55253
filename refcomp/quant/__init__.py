"""The quantization core: dtypes, QParams, schemes, observers, fake quantization.

- :mod:`~refcomp.numerics.dtypes`     QDType table (int2 ... int32, float8, float4, float16, bfloat16)
- :mod:`~refcomp.numerics.rounding`   half_to_even (ONNX) / half_away (TFLite)
- :mod:`~refcomp.quant.qparams`    QParams: scale, zero point, dtype, axis, block_size
- :mod:`~refcomp.quant.choose`     choose_qparams: asymmetric / symmetric / restricted / reduce_range
- :mod:`~refcomp.quant.affine`     quantize / dequantize (wrappers over refcomp.ops.*_linear)
- :mod:`~refcomp.quant.fake_quant` fake_quantize, its straight-through gradient, FakeQuantize
- :mod:`~refcomp.quant.observers`  MinMax, MovingAverageMinMax, Percentile, MSE, Entropy
- :mod:`~refcomp.quant.packing`    2-/4-bit codes packed into bytes (ONNX layout)

The arithmetic is taught in docs/quantization.md; code cites its equation numbers.
"""

from ..numerics.dtypes import QDTYPES, QDType, qdtype
from ..numerics.rounding import ROUNDING_MODES
from .affine import dequantize, quantize
from .choose import choose_qparams, quant_range
from .fake_quant import FakeQuantize, fake_quantize, fake_quantize_grad
from .observers import (
    EntropyObserver,
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    MSEObserver,
    Observer,
    PercentileObserver,
)
from .packing import pack_bits, unpack_bits
from .qparams import QParams

__all__ = [
    "QDType",
    "QDTYPES",
    "qdtype",
    "ROUNDING_MODES",
    "QParams",
    "choose_qparams",
    "quant_range",
    "quantize",
    "dequantize",
    "fake_quantize",
    "fake_quantize_grad",
    "FakeQuantize",
    "Observer",
    "MinMaxObserver",
    "MovingAverageMinMaxObserver",
    "PercentileObserver",
    "MSEObserver",
    "EntropyObserver",
    "pack_bits",
    "unpack_bits",
]
