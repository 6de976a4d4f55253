"""How one weight is stored: every weight format, each a WeightFormat a layer holds.

=================  ==============================================================
Dense              the float array itself
QTensor            quantized codes + QParams (per tensor, per axis, per block; any
                   dtype of refcomp.numerics.dtypes, sub-byte packed, float8)
CSRMatrix          compressed sparse rows (scipy's canonical form); the nnz values an
                   array, a 1-D QTensor (quantized CSR) or a 1-D Clustered (clustered CSR)
RelativeIndexCSR   Deep Compression's CSR with fixed-width relative indices and
                   cluster-index weights, optionally Huffman-coded (relative_csr)
LowRank            two factors L R
Clustered          codebook + per-weight cluster indices (+ pruning mask)
HalfPrecision      float16 / bfloat16 storage
Hashed             HashedNets: K real weights shared by a seeded hash and a sign hash
PowerOfTwo         sign-and-exponent codes
DynamicQuantized   an int8 QTensor multiplied by the input quantized per call
                   (DynamicQuantizeLinear + MatMulInteger, "dynamic quantization")
StaticQuantized    an int8 QTensor multiplied by the input quantized with calibrated
                   QParams, optionally SmoothQuant-smoothed ("static W8A8", float out)
=================  ==============================================================

Every format computes through refcomp.ops and never calls a compression
algorithm (those are refcomp.compress, above). huffman is the entropy code
the relative-index CSR uses for its fields.
"""

from __future__ import annotations

from .base import WeightFormat
from .clustered import Clustered
from .csr import CSRMatrix
from .dense import Dense
from .dynamic import DynamicQuantized
from .half import HalfPrecision
from .hashed import Hashed
from .lowrank import LowRank
from .power_of_two import PowerOfTwo
from .qtensor import QTensor
from .relative_csr import RelativeIndexCSR
from .static import StaticQuantized

__all__ = ["WeightFormat", "Dense", "QTensor", "CSRMatrix", "RelativeIndexCSR", "LowRank", "Clustered",
           "HalfPrecision", "Hashed", "PowerOfTwo", "DynamicQuantized", "StaticQuantized"]
