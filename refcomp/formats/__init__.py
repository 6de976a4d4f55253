"""How one weight is stored: Dense, QTensor, CSRMatrix, LowRank, Clustered.

Every format derives from :class:`refcomp.formats.base.WeightFormat`.
"""

from __future__ import annotations

import importlib

from .base import WeightFormat

_LAZY = {
    "Dense": "refcomp.formats.dense",
    "QTensor": "refcomp.formats.qtensor",
    "CSRMatrix": "refcomp.formats.csr",
    "LowRank": "refcomp.formats.lowrank",
    "Clustered": "refcomp.formats.clustered",
}

__all__ = ["WeightFormat", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'refcomp.formats' has no attribute {name!r}")
