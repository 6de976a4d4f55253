"""Misaligned operands: every C-bound kernel gets the NumPy answer and hands C only aligned buffers.

A C-contiguous array can start at any byte (np.frombuffer(buf, offset=1), a
view of a packed record, a slice of a uint8 buffer); the C library loads
int16 / int32 / int64 / float32 elements through typed pointers, and a
misaligned typed load is undefined behaviour (UBSan flagged six such sites).
The wrappers in refcomp.kernels.c therefore copy every operand that is not
aligned for its dtype before C sees it. Checked two ways: a spy on
``ffi.from_buffer`` asserts that no misaligned array is passed to C (this
fails on any machine, even where x86 tolerates the load), and
scripts/ubsan_kernels.py runs this file against a build of csrc/ under
-fsanitize=undefined (``.venv/bin/python scripts/ubsan_kernels.py``).
"""

import os

import numpy as np
import pytest

import refcomp.ops as ops
from refcomp.formats import CSRMatrix

from .._support.csr import sparse_dense
from .conftest import C_ISAS, int_array
from .test_gelu import assert_g2

c = pytest.importorskip("refcomp.kernels.c") if C_ISAS else None
pytestmark = pytest.mark.skipif(not C_ISAS, reason="C kernels not built")


def misaligned(a):
    """A C-contiguous copy of ``a`` that starts one byte past an aligned address (so not aligned)."""
    a = np.asarray(a)
    buf = np.zeros(a.nbytes + 65, np.uint8)
    off = (-buf.ctypes.data) % 64 + 1
    out = buf[off:off + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    assert out.flags.c_contiguous and (a.dtype.alignment == 1 or not out.flags.aligned)
    return out


class _AlignedOnlyFFI:
    """refcomp.kernels.c's ffi, but from_buffer refuses an array not aligned for its dtype.

    Under scripts/ubsan_kernels.py (REFCOMP_UBSAN=1) it only counts: there the
    sanitized C itself is the judge, and must see what an unguarded wrapper sends.
    """

    def __init__(self, ffi):
        self._ffi = ffi
        self.seen = 0
        self.strict = os.environ.get("REFCOMP_UBSAN") != "1"

    def __getattr__(self, name):
        return getattr(self._ffi, name)

    def from_buffer(self, obj, *args, **kw):
        if isinstance(obj, np.ndarray):
            assert obj.flags.aligned or not self.strict, f"a misaligned {obj.dtype} array {obj.shape} reached C"
            self.seen += 1
        return self._ffi.from_buffer(obj, *args, **kw)


@pytest.fixture(params=C_ISAS)
def spy(request, monkeypatch):
    monkeypatch.setenv("REFCOMP_ISA", request.param)
    s = _AlignedOnlyFFI(c.ffi)
    monkeypatch.setattr(c, "ffi", s)
    return s


def test_matmul_integer(spy):
    rng = np.random.default_rng(0)
    a, b = int_array(rng, (5, 37), np.uint8), int_array(rng, (37, 9), np.int8)
    za, zb = rng.integers(0, 256, 5).astype(np.int32), rng.integers(-128, 128, 9).astype(np.int32)
    bias = rng.integers(-1000, 1000, 9).astype(np.int32)
    want = (a.astype(np.int64) - za[:, None]) @ (b.astype(np.int64) - zb) + bias
    for B in (b, c.PackedB(b)):
        got = c.matmul_integer(a, B, misaligned(za), misaligned(zb), misaligned(bias))
        np.testing.assert_array_equal(got, want)
    # the op, through a PackedWeight, with the numpy definition as the reference
    pw = ops.pack_weight(b, np.int8(3))
    np.testing.assert_array_equal(ops.matmul_integer(a, pw, np.uint8(7), backend="c"),
                                  ops.matmul_integer(a, b, np.uint8(7), np.int8(3), backend="numpy"))
    assert spy.seen  # buffers did go to C, through the spy


def test_requantize(spy):
    rng = np.random.default_rng(1)
    acc = rng.integers(-(2**20), 2**20, (6, 11)).astype(np.int32)
    mult = rng.uniform(1e-4, 1e-2, 11).astype(np.float32)
    zp = rng.integers(-5, 5, 11).astype(np.int32)
    want = np.clip(np.rint(acc.astype(np.float32) * mult) + zp, -128, 127)
    np.testing.assert_array_equal(c.requantize_float(misaligned(acc), misaligned(mult), misaligned(zp), -128, 127),
                                  want)
    qm = rng.integers(2**30, 2**31 - 1, 11).astype(np.int32)
    shift = -rng.integers(1, 20, 11).astype(np.int32)
    want = ops.requantize(acc, (qm, shift), zp.astype(np.int8), output_dtype="int8", method="fixed_point",
                          axis=1, backend="numpy")
    got = c.requantize_fixed_point(misaligned(acc), misaligned(qm), misaligned(shift), misaligned(zp), -128, 127)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(
        ops.requantize(misaligned(acc), (misaligned(qm), misaligned(shift)), zp.astype(np.int8),
                       output_dtype="int8", method="fixed_point", axis=1, backend="c"), want)
    assert spy.seen  # buffers did go to C, through the spy


@pytest.mark.parametrize("shape,n", [((40, 70), 5), ((300, 1024), 32)])  # the second: column-blocked
def test_csr_kernels(spy, shape, n):
    rng = np.random.default_rng(2)
    dense = sparse_dense(rng, shape, 0.3)
    W = CSRMatrix.from_dense(dense)
    X = rng.standard_normal((shape[1], n)).astype(np.float32)
    x = rng.standard_normal((n, shape[1])).astype(np.float32)
    bias = rng.standard_normal(shape[0]).astype(np.float32)
    tol = dict(rtol=1e-5, atol=1e-4)
    # the kernels' own arguments, each misaligned (indices in both index types the kernels take)
    for idx in (W.kernel_indices, W.indices.astype(np.int32)):
        args = (misaligned(W.indptr), misaligned(idx), misaligned(W.data), shape)
        blocks = W.column_blocks(n)
        if blocks is not None:
            blocks = (blocks[0], misaligned(blocks[1]))
        np.testing.assert_allclose(c.csr_spmm_f32(*args, misaligned(X), blocks=blocks), dense @ X, **tol)
        np.testing.assert_allclose(c.csr_linear_f32(*args, misaligned(x), misaligned(bias), blocks=blocks),
                                   x @ dense.T + bias, **tol)
    # the ops
    np.testing.assert_allclose(ops.csr_matmul(W, misaligned(X), backend="c"), dense @ X, **tol)
    np.testing.assert_allclose(ops.sparse_linear(misaligned(x), W, misaligned(bias), backend="c"),
                               x @ dense.T + bias, **tol)
    # int8 data x int16 X -> exact int32
    qd = np.clip(np.rint(dense * 20), -127, 127).astype(np.int8)
    Q = CSRMatrix.from_dense(qd)
    X16 = rng.integers(-300, 300, (shape[1], n)).astype(np.int16)
    want = qd.astype(np.int64) @ X16
    got = c.csr_spmm_i8(misaligned(Q.indptr), misaligned(Q.kernel_indices), Q.data, shape, misaligned(X16))
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(ops.csr_matmul(Q, misaligned(X16), backend="c"), want)
    assert spy.seen  # buffers did go to C, through the spy


def test_gelu(spy):
    x = np.linspace(-6, 6, 1001, dtype=np.float32).reshape(7, 143)
    for got in (c.gelu(misaligned(x)), ops.gelu(misaligned(x), backend="c")):
        assert_g2(x, got)  # within eq. G2 of refcomp.ops.gelu's numpy definition
    assert spy.seen  # buffers did go to C, through the spy
