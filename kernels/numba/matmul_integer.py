"""Numba twin of refcomp.ops.matmul_integer (backend="numba").

    C[i, j] = sum_k (a[i, k] - za[i]) * (b[k, j] - zb[j])          (int32, modulo 2**32)

Both paths multiply raw bytes, A as uint8 and B as int8, and fold the zero
points in afterwards (gemmlowp's zero-point decomposition, docs/kernels.md 1.3):

    a int8  -> a' = a xor 0x80 = a + 128 (uint8),  za' = za + 128
    b uint8 -> b' = b xor 0x80 = b - 128 (int8),   zb' = zb - 128
    C = sum_k a'b'  -  zb'[j] * rowsum(a')[i]  -  za'[i] * colsum(b')[j]  +  K za'[i] zb'[j]

Every term is an integer, the raw sum wraps modulo 2**32 in int32 lanes and
the correction is added in int64 and reduced modulo 2**32, so the result is
the exact sum modulo 2**32 for every input: exact whenever it fits int32,
which the op guarantees before calling (``K * max|a - za| * max|b - zb| <=
2**31 - 1``). A zero-point term is skipped when its zero point is 0: uint8 A
times int8 B with zero points 0 is the raw product alone.

Paths (``path=`` argument, default "auto"):

- "vnni": AVX-512 VNNI ``vpdpbusd`` tiles of 4 rows x 64 columns (1 row x 256
  or 1 x 64 columns for the last M mod 4 rows), B packed into [N/64][K/4][64][4] panels (on every
  call, or once with :class:`PackedB`), A padded to a multiple of 4 bytes per
  row. The instruction is
  emitted through a Numba intrinsic (kernels/numba/_vnni.py): LLVM does not
  produce it from a Python loop. Used when the JIT targets a CPU with it.
- "portable": plain Numba, 4 x 4 register-blocked dot products over k with B
  transposed; LLVM vectorizes the sixteen int32 reductions (``vpdpwssd`` /
  ``vpmaddwd`` on x86). Remainder rows and columns use a 1 x 1 loop.

``prange`` splits tiles (or row blocks) among threads; a tile's arithmetic does
not depend on the split, so every thread count gives the same integers.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ...errors import BackendUnavailableError, ValidationError
from ._threads import parallel_region
from ._vnni import PANEL, tile_kernel, vnni_usable

__all__ = ["matmul_integer", "PackedB", "PATHS", "best_path"]

PATHS = ("auto", "vnni", "portable")

_SERIAL_BELOW = 2_000_000  # multiply-adds
_tile4 = tile_kernel(4)  # 4 rows x 64 columns: 16 accumulators
_tile1x4 = tile_kernel(1, 4)  # 1 row x 256 columns: 16 accumulators
_tile1 = tile_kernel(1)  # 1 row x 64 columns: the last panels of the last rows


# ------------------------------------------------------------------ packing
@njit(cache=True)
def _pack_b_panels(b, flip, k4, nb):  # pragma: no cover - compiled
    # panels[p, q, c, t] = b[4q + t, 64p + c] xor flip (bytes of int8 b'), zero padded;
    # each step q interleaves four rows of B, written in order
    K, N = b.shape
    out = np.zeros((nb, k4, PANEL, 4), np.uint8)
    for p in range(nb):
        j0 = PANEL * p
        cols = min(PANEL, N - j0)
        for q in range(k4):
            o = out[p, q]
            if 4 * q + 4 <= K:
                r0, r1, r2, r3 = b[4 * q], b[4 * q + 1], b[4 * q + 2], b[4 * q + 3]
                for c in range(cols):
                    o[c, 0] = r0[j0 + c] ^ flip
                    o[c, 1] = r1[j0 + c] ^ flip
                    o[c, 2] = r2[j0 + c] ^ flip
                    o[c, 3] = r3[j0 + c] ^ flip
            else:  # the last K mod 4 rows; the rest of the step stays zero
                for t in range(K - 4 * q):
                    row = b[4 * q + t]
                    for c in range(cols):
                        o[c, t] = row[j0 + c] ^ flip
    return out


@njit(cache=True)
def _column_sums(b):  # pragma: no cover - compiled
    K, N = b.shape
    cs = np.zeros(N, np.int64)
    for k in range(K):
        for j in range(N):
            cs[j] += np.int64(b[k, j])
    return cs


def _raw_bytes(x, flip: int, shape) -> np.ndarray:
    """x xor flip as a zero-padded C-contiguous uint8 array of ``shape``."""
    xu = np.ascontiguousarray(x).view(np.uint8)
    if flip:
        xu = xu ^ np.uint8(flip)
    if xu.shape == tuple(shape):
        return np.ascontiguousarray(xu)
    out = np.zeros(shape, np.uint8)
    out[: xu.shape[0], : xu.shape[1]] = xu
    return out


class PackedB:
    """B prepared once for repeated products with one weight (as refcomp.kernels.c.PackedB).

    Holds b' = b xor 0x80 for uint8 B (the int8 value b - 128) or b itself for
    int8 B, as bytes, in the layout of ``path`` ("vnni": [N/64][K/4][64][4]
    panels; "portable": B transposed), plus colsum(b') in int64.
    """

    def __init__(self, b, *, path="auto"):
        b = np.asarray(b)
        if b.ndim != 2 or b.dtype not in (np.int8, np.uint8):
            raise ValidationError("b", "a 2-D int8 or uint8 array", f"{b.ndim}-D {b.dtype}")
        self.path = _resolve(path)
        self.shape = b.shape
        self.dtype = b.dtype
        K, N = b.shape
        self.flip = 0x80 if b.dtype == np.uint8 else 0
        self._b = b  # for colsum, computed only when a zero point needs it
        self._colsum = None
        if self.path == "vnni":
            self.k4, self.nb = (K + 3) // 4, (N + PANEL - 1) // PANEL
            self.data = _pack_b_panels(np.ascontiguousarray(b).view(np.uint8), np.uint8(self.flip), self.k4, self.nb)
        else:
            self.data = _raw_bytes(b.T, self.flip, (N, K)).view(np.int8)

    @property
    def colsum(self) -> np.ndarray:
        """colsum(b') = sum_k b'[k, j] in int64 (b' = b - 128 for uint8 B)."""
        if self._colsum is None:
            K = self.shape[0]
            self._colsum = _column_sums(np.ascontiguousarray(self._b)) - (128 * K if self.flip else 0)
            self._b = None
        return self._colsum


# ------------------------------------------------------------------ products
@njit(parallel=True, cache=True)
def _vnni_product(ap, panels, raw):  # pragma: no cover - compiled
    # raw[:, :64 nb] = a' @ b' in int32 lanes; ap [M, 4 k4] uint8, panels [nb, k4, 64, 4]
    M, kp = ap.shape
    nb, k4 = panels.shape[0], panels.shape[1]
    ldc = raw.shape[1]
    m4 = M // 4
    g4 = nb // 4  # groups of 4 panels for the last M mod 4 rows, then single panels
    ng = g4 + nb % 4
    for t in prange(m4 * nb + (M - 4 * m4) * ng):
        if t < m4 * nb:
            i, p = 4 * (t // nb), t % nb
            _tile4(ap, i * kp, kp, panels, p * k4 * 4 * PANEL, k4, raw, i * ldc + p * PANEL, ldc)
        else:
            u = t - m4 * nb
            i, g = 4 * m4 + u // ng, u % ng
            if g < g4:
                p = 4 * g
                _tile1x4(ap, i * kp, kp, panels, p * k4 * 4 * PANEL, k4, raw, i * ldc + p * PANEL, ldc)
            else:
                p = 4 * g4 + g - g4
                _tile1(ap, i * kp, kp, panels, p * k4 * 4 * PANEL, k4, raw, i * ldc + p * PANEL, ldc)


@njit(parallel=True, cache=True)
def _blocked_product(ap, bt, raw):  # pragma: no cover - compiled
    # raw = a' @ bt.T in int32, 4 x 4 blocks; np.int32(...) wraps every partial sum
    M, K = ap.shape
    N = bt.shape[0]
    n4 = N - N % 4
    for ib in prange((M + 3) // 4):
        i = 4 * ib
        if i + 4 <= M:
            a0, a1, a2, a3 = ap[i], ap[i + 1], ap[i + 2], ap[i + 3]
            for j in range(0, n4, 4):
                b0, b1, b2, b3 = bt[j], bt[j + 1], bt[j + 2], bt[j + 3]
                s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = np.int32(0)
                s20 = s21 = s22 = s23 = s30 = s31 = s32 = s33 = np.int32(0)
                for k in range(K):
                    x0, x1, x2, x3 = np.int32(a0[k]), np.int32(a1[k]), np.int32(a2[k]), np.int32(a3[k])
                    y0, y1, y2, y3 = np.int32(b0[k]), np.int32(b1[k]), np.int32(b2[k]), np.int32(b3[k])
                    s00 = np.int32(s00 + x0 * y0); s01 = np.int32(s01 + x0 * y1)  # noqa: E702
                    s02 = np.int32(s02 + x0 * y2); s03 = np.int32(s03 + x0 * y3)  # noqa: E702
                    s10 = np.int32(s10 + x1 * y0); s11 = np.int32(s11 + x1 * y1)  # noqa: E702
                    s12 = np.int32(s12 + x1 * y2); s13 = np.int32(s13 + x1 * y3)  # noqa: E702
                    s20 = np.int32(s20 + x2 * y0); s21 = np.int32(s21 + x2 * y1)  # noqa: E702
                    s22 = np.int32(s22 + x2 * y2); s23 = np.int32(s23 + x2 * y3)  # noqa: E702
                    s30 = np.int32(s30 + x3 * y0); s31 = np.int32(s31 + x3 * y1)  # noqa: E702
                    s32 = np.int32(s32 + x3 * y2); s33 = np.int32(s33 + x3 * y3)  # noqa: E702
                raw[i, j], raw[i, j + 1], raw[i, j + 2], raw[i, j + 3] = s00, s01, s02, s03
                raw[i + 1, j], raw[i + 1, j + 1], raw[i + 1, j + 2], raw[i + 1, j + 3] = s10, s11, s12, s13
                raw[i + 2, j], raw[i + 2, j + 1], raw[i + 2, j + 2], raw[i + 2, j + 3] = s20, s21, s22, s23
                raw[i + 3, j], raw[i + 3, j + 1], raw[i + 3, j + 2], raw[i + 3, j + 3] = s30, s31, s32, s33
            j0 = n4
        else:
            j0 = 0
        # the edges: columns n4.. of a full block, or every column of the last rows
        for r in range(i, min(i + 4, M)):
            ar = ap[r]
            for j in range(j0, N):
                br = bt[j]
                s = np.int32(0)
                for k in range(K):
                    s = np.int32(s + np.int32(ar[k]) * np.int32(br[k]))
                raw[r, j] = s


@njit(parallel=True, cache=True)
def _fold_zero_points(raw, rs, cs, za, zb, k, out):  # pragma: no cover - compiled
    # out = raw - zb' rowsum(a') - za' colsum(b') + K za' zb'   (modulo 2**32)
    M, N = out.shape
    for i in prange(M):
        zi, ri = za[i], rs[i]
        for j in range(N):
            v = np.int64(raw[i, j]) - zb[j] * ri - zi * cs[j] + k * zi * zb[j]
            out[i, j] = np.int32(v)


# ------------------------------------------------------------------ entry point
def best_path() -> str:
    return "vnni" if vnni_usable() else "portable"


def _resolve(path: str) -> str:
    if path not in PATHS:
        raise ValidationError("path", f"one of {PATHS}", repr(path))
    if path == "auto":
        return best_path()
    if path == "vnni" and not vnni_usable():
        raise BackendUnavailableError("numba path 'vnni' needs AVX-512 F/BW/VNNI on the JIT's target CPU")
    return path


def matmul_integer(a, b, a_zero_point, b_zero_point, *, threads=None, path="auto"):
    """(a - a_zero_point[:, None]) @ (b - b_zero_point[None, :]) in int32, modulo 2**32.

    a: uint8|int8 [M, K]; b: int8|uint8 [K, N] or a :class:`PackedB`; zero points
    int32 [M] / [N] or scalars (the registration contract of refcomp.backend
    "matmul_integer"). ``path``: "auto" (vnni when the CPU has it) | "vnni" |
    "portable"; a PackedB brings its own.
    """
    pb = b if isinstance(b, PackedB) else PackedB(b, path=path)
    a = np.asarray(a)
    if a.ndim != 2 or a.dtype not in (np.int8, np.uint8):
        raise ValidationError("a", "a 2-D int8 or uint8 array", f"{a.ndim}-D {a.dtype}")
    M, K = a.shape
    N = pb.shape[1]
    if pb.shape[0] != K:
        raise ValidationError("b", f"{K} rows (the columns of a)", f"{pb.shape[0]}")
    # a' = a xor 0x80 turns int8 into uint8 (a = a' - 128); b' likewise turns uint8 into int8 (b = b' + 128)
    a_flip = 0x80 if a.dtype == np.int8 else 0
    za = np.asarray(a_zero_point, np.int64).ravel()
    zb = np.asarray(b_zero_point, np.int64).ravel()
    if za.size not in (1, M) or zb.size not in (1, N):
        raise ValidationError("a_zero_point / b_zero_point", f"scalars or [{M}] / [{N}]", f"{za.size} / {zb.size}")
    if a_flip:
        za = za + 128
    if pb.flip:
        zb = zb - 128
    # like the C library: below ~2e6 multiply-adds a second thread costs more than it saves
    with parallel_region(1 if M * K * N < _SERIAL_BELOW else threads):
        out = np.empty((M, N), np.int32)
        if pb.path == "vnni":
            ap = _raw_bytes(a, a_flip, (M, 4 * pb.k4))
            raw = out if N == pb.nb * PANEL else np.empty((M, pb.nb * PANEL), np.int32)
            _vnni_product(ap, pb.data, raw)
        else:
            ap = _raw_bytes(a, a_flip, (M, K))
            raw = out
            _blocked_product(ap, pb.data, raw)
        fold_a, fold_b = bool(za.any()), bool(zb.any())
        if fold_a or fold_b:
            # a zero term needs no sum: rowsum(a') multiplies zb', colsum(b') multiplies za'
            rs = a.sum(axis=1, dtype=np.int64) + (128 * K if a_flip else 0) if fold_b else np.zeros(M, np.int64)
            cs = pb.colsum if fold_a else np.zeros(N, np.int64)
            za = np.ascontiguousarray(np.broadcast_to(za, (M,)))
            zb = np.ascontiguousarray(np.broadcast_to(zb, (N,)))
            _fold_zero_points(raw, rs, cs, za, zb, K, out)
        elif raw is not out:
            out[...] = raw[:, :N]
        return out
