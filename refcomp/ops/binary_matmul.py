"""The bit-count inner product of ±1 vectors (XNOR-Net / BNN), and the packing it runs on.

A ±1 vector of length K is stored as W = ceil(K / 64) uint64 words, one bit
per element: element k is bit k mod 64 of word k // 64, and the bit is 1 for
−1 (the sign bit: x < 0) and 0 for +1 (``pack_signs``; x = 0 counts as +1, the
rule of refcomp.compress.quantize.lowbit.binarize). For two such vectors a, b
the elements agree where the bits do, so with d = #disagreements::

    a · b = (K − d) − d = K − 2 · popcount(a XOR b)                        (eq. B1)

summed word by word (Rastegari et al. 2016, "XNOR-Net", arXiv:1603.05279
§3.2; Hubara, Courbariaux et al. 2016, "Binarized Neural Networks",
arXiv:1602.02830 §2.4, who count the agreements, XNOR, instead: the same
integer, 2 · popcount(XNOR) − K).

Padding rule (K not a multiple of 64): the 64·W − K bits after element K − 1
are 0 in *both* operands, so XOR is 0 there and they add no disagreement;
K in eq. B1 is the true length, never 64·W (with 64·W every product would be
off by the pad count, and an XNOR count would have to subtract the pads).
``binary_matmul`` refuses words whose pad bits are set.

binary_matmul(a, b, k):
    a uint64 (M, W), b uint64 (N, W) (the rows of a weight (out, in), like a
    Linear's), k int with W = ceil(k / 64) → int32 (M, N),
    C[i, j] = k − 2 · Σ_w popcount(a[i, w] XOR b[j, w]) = Σ_k ±1·±1.
    Exact integers (|C| ≤ k < 2^31); no rounding, no saturation.

Fast backends (refcomp.kernels: C, csrc/binary_matmul.c, with a portable
popcount and a hardware one chosen at run time; Numba) return the same
integers (tests/kernels/test_binary_matmul.py).
"""

from __future__ import annotations

import numpy as np

from .. import backend as _backend
from ..checks import dtype_in, float_array, integer, numeric_array
from ..errors import ShapeError, ValidationError

__all__ = ["pack_signs", "binary_matmul", "words_for"]


def words_for(k: int) -> int:
    """ceil(k / 64): the uint64 words of one packed vector of k elements."""
    return -(-k // 64)


def pack_signs(x) -> np.ndarray:
    """x real (M, K) → uint64 (M, ceil(K/64)): bit k of row i is 1 where x[i, k] < 0; pad bits 0."""
    x = float_array(x, "x", ndim=2)
    m, k = x.shape
    neg = np.zeros((m, 64 * words_for(k)), np.uint8)
    neg[:, :k] = x < 0
    # packbits little-endian puts element 8j+t in bit t of byte j; '<u8' reads bytes 8w..8w+7 as word w
    return np.packbits(neg, axis=1, bitorder="little").view("<u8").astype(np.uint64).reshape(m, words_for(k))


def _check_packed(v, argument: str, words: int, k: int) -> np.ndarray:
    v = numeric_array(v, argument)
    dtype_in(v, argument, (np.uint64,))
    if v.ndim != 2 or v.shape[1] != words:
        raise ShapeError(argument, f"a (rows, {words}) array (ceil(k / 64) words for k = {k})", f"shape {v.shape}")
    if k % 64 and v.size and np.any(v[:, -1] >> np.uint64(k % 64)):
        raise ValidationError(argument, f"pad bits {k % 64}..63 of the last word zero (k = {k})", "pad bits set")
    return v


def binary_matmul(a, b, k, *, backend="auto") -> np.ndarray:
    """C = k − 2·popcount(a XOR b) per row pair (eq. B1): a uint64 (M, W), b uint64 (N, W) → int32 (M, N)."""
    k = integer(k, "k", minimum=1, maximum=2**31 - 1)
    words = words_for(k)
    a = _check_packed(a, "a", words, k)
    b = _check_packed(b, "b", words, k)
    fast = _backend.implementation("binary_matmul", backend)
    if fast is not None:
        return fast(a, b, k)
    out = np.empty((a.shape[0], b.shape[0]), np.int32)
    for i in range(a.shape[0]):  # one row at a time keeps the (N, W) XOR small
        d = np.bitwise_count(a[i][None, :] ^ b).sum(axis=1, dtype=np.int64)
        out[i] = k - 2 * d
    return out
