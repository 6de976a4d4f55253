"""Rounding rules used when a real number becomes an integer.

``half_to_even``  (banker's rounding): ties go to the even neighbour.
    ONNX QuantizeLinear, QLinearMatMul, QLinearConv, DynamicQuantizeLinear
    ("rounding to nearest ties to even"); IEEE 754 roundTiesToEven; np.rint.
``half_away``     ties go away from zero: round(x) = sign(x)·floor(|x| + 1/2).
    TFLite reference kernels (std::round), gemmlowp's RoundingDivideByPOT.

    >>> half_to_even(np.array([0.5, 1.5, 2.5, -0.5, -2.5]))
    array([ 0.,  2.,  2., -0., -2.])
    >>> half_away(np.array([0.5, 1.5, 2.5, -0.5, -2.5]))
    array([ 1.,  2.,  3., -1., -3.])
"""

from __future__ import annotations

import numpy as np

from ..errors import ValidationError

__all__ = ["ROUNDING_MODES", "half_to_even", "half_away", "round_with"]

ROUNDING_MODES = ("half_to_even", "half_away")


def half_to_even(x: np.ndarray) -> np.ndarray:
    return np.rint(x)


def half_away(x: np.ndarray) -> np.ndarray:
    # Not floor(|x| + 0.5): that sum can round up (0.49999999999999994 + 0.5 == 1.0).
    # x - trunc(x) is exact in binary floating point, so the tie test is exact.
    t = np.trunc(x)
    return t + np.sign(x) * (np.abs(x - t) >= 0.5)


def round_with(x: np.ndarray, mode: str = "half_to_even") -> np.ndarray:
    if mode == "half_to_even":
        return half_to_even(x)
    if mode == "half_away":
        return half_away(x)
    raise ValidationError("rounding", f"one of {ROUNDING_MODES}", repr(mode))
