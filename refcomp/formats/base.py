"""What every stored weight format offers.

A layer never looks inside its weight: it calls ``W.matmul(x)`` (y = x·Wᵀ for an
(out, in) weight), ``W.to_dense()`` when it must, and reads ``W.nbytes`` /
``W.storage_bits`` for size reports. So a compression algorithm can swap a
Dense weight for a QTensor, CSRMatrix, LowRank or Clustered one without
touching the layer.
"""

from __future__ import annotations

import abc

import numpy as np

from ..errors import FileFormatError


class WeightFormat(abc.ABC):
    """Abstract stored weight of logical shape ``shape`` (float semantics)."""

    #: logical shape of the dense weight this object stands for
    shape: tuple[int, ...]

    @abc.abstractmethod
    def to_dense(self) -> np.ndarray:
        """The float array this format represents (decoded, dequantized ...)."""

    def matmul(self, x: np.ndarray) -> np.ndarray:
        """``x @ W.T`` for a 2-D (out, in) weight and x of shape (batch, in).

        Formats override this with a cheaper computation (sparse, factorized ...)."""
        return x @ self.to_dense().T

    def take_rows(self, idx) -> np.ndarray:
        """Rows ``idx`` (any integer shape) of the dense weight: ``to_dense()[idx]``, float32
        idx.shape + shape[1:] (an embedding lookup). Formats that can decode only those rows
        override it, with the same values."""
        return self.to_dense()[idx]

    @property
    @abc.abstractmethod
    def nbytes(self) -> int:
        """Bytes needed to store this weight as the format stores it."""

    @property
    def storage_bits(self) -> int:
        """Bits needed to store this weight (sub-byte formats override)."""
        return 8 * self.nbytes

    def fields(self) -> dict[str, np.ndarray]:
        """The arrays that make up this format, by name (what a file stores)."""
        raise NotImplementedError

    def named_parameters(self):
        """(name, Parameter) a format trains beside its own data; none for stored formats."""
        return ()


def check_field_names(fields, want) -> None:
    """FileFormatError unless ``fields`` is a dict with exactly the keys ``want``.

    The first check of every ``from_fields``: a file's fields are read only
    once their names are what the format writes.
    """
    if not isinstance(fields, dict) or set(fields) != set(want):
        got = sorted(fields) if isinstance(fields, dict) else type(fields).__name__
        raise FileFormatError(f"fields: expected keys {sorted(want)}, got {got}")
