"""PowerOfTwo: a weight stored as sign-and-exponent codes, ŵ = sign · 2^exponent.

Logarithmic quantization (Miyashita, Lee, Murmann 2016, arXiv:1603.01025, §3;
the algorithm is refcomp.compress.quantize.lowbit.power_of_two_quantize):
with ``bits`` b, one bit is the sign and the other b − 1 bits index the
2^(b−1) − 1 exponents of the window [e_min, e_max] plus a code for zero::

    ŵ = sign · 2^exponent,   sign ∈ {−1, 0, 1},   e_min = e_max − (2^(b−1) − 1) + 1 ≤ exponent ≤ e_max

A multiplication by ŵ is a shift, which is why the format exists.

Arrays: ``sign`` int8 and ``exponent`` int8 of the weight's shape (exponent
is e_min where sign is 0). Storage (:attr:`nbytes`): b bits per weight, packed,
plus one byte for e_max. Fields (a file): sign, exponent and
``window = [max_exponent, bits]`` (int64).
"""

from __future__ import annotations

import numpy as np

from ..errors import DTypeError, FileFormatError, ShapeError, ValidationError
from .._frozen import frozen
from .base import WeightFormat, check_field_names

__all__ = ["PowerOfTwo"]


class PowerOfTwo(WeightFormat):
    """Sign-and-exponent codes: ŵ = sign · 2^exponent, 0 where sign is 0."""

    trainable = False

    def __init__(self, sign, exponent, max_exponent: int, bits: int):
        # private, immutable copies: the shift kernels trust the window checked below (refcomp._frozen)
        sign, exponent = frozen(sign), frozen(exponent)
        for name, a in (("sign", sign), ("exponent", exponent)):
            if a.dtype != np.int8:
                raise DTypeError(name, "an int8 array", f"dtype {a.dtype}")
        if exponent.shape != sign.shape:
            raise ShapeError("exponent", f"the shape of sign {sign.shape}", f"shape {exponent.shape}")
        self.min_exponent, self.max_exponent, self.bits = self.window(max_exponent, bits)
        if sign.size and (np.abs(sign.astype(np.int16)).max() > 1 or exponent.min() < self.min_exponent
                          or exponent.max() > self.max_exponent):
            raise ValidationError("sign, exponent", f"signs in {{-1, 0, 1}} and exponents in "
                                  f"[{self.min_exponent}, {self.max_exponent}]",
                                  f"signs in [{sign.min()}, {sign.max()}], exponents in [{exponent.min()}, {exponent.max()}]")
        self.sign, self.exponent = sign, exponent
        self.shape = sign.shape

    @staticmethod
    def window(max_exponent: int, bits: int) -> tuple[int, int, int]:
        """(e_min, e_max, bits) of a checked window: bits in [2, 8], [e_min, e_max] within [-126, 127]."""
        if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 2 <= bits <= 8:
            raise ValidationError("bits", "an integer in [2, 8]", repr(bits))
        if isinstance(max_exponent, bool) or not isinstance(max_exponent, (int, np.integer)):
            raise ValidationError("max_exponent", "an integer", repr(max_exponent))
        e_max, b = int(max_exponent), int(bits)
        e_min = e_max - (2 ** (b - 1) - 1) + 1
        if not (-126 <= e_min and e_max <= 127):
            raise ValidationError("max_exponent", "exponents within int8 and float32 range [-126, 127]",
                                  f"window [{e_min}, {e_max}]")
        return e_min, e_max, b

    def to_dense(self) -> np.ndarray:
        return (self.sign * np.exp2(self.exponent.astype(np.float64))).astype(np.float32)

    @property
    def nbytes(self) -> int:
        return -(-self.sign.size * self.bits // 8) + 1

    def fields(self) -> dict[str, np.ndarray]:
        return {"sign": self.sign, "exponent": self.exponent,
                "window": np.array([self.max_exponent, self.bits], np.int64)}

    @classmethod
    def from_fields(cls, fields: dict[str, np.ndarray]) -> "PowerOfTwo":
        """Inverse of :meth:`fields`, with the constructor's validation; FileFormatError otherwise."""
        check_field_names(fields, {"sign", "exponent", "window"})
        window = np.asarray(fields["window"])
        if window.dtype != np.int64 or window.shape != (2,):
            raise FileFormatError(f"fields['window']: expected 2 int64 values, got {window.dtype} {window.shape}")
        try:
            return cls(fields["sign"], fields["exponent"], int(window[0]), int(window[1]))
        except ValidationError as exc:
            raise FileFormatError(f"fields: {exc}") from None

    def __repr__(self) -> str:
        return f"PowerOfTwo(shape={self.shape}, bits={self.bits}, window=[{self.min_exponent}, {self.max_exponent}])"
