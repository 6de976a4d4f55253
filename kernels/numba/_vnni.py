"""AVX-512 VNNI micro-kernel for the Numba int8 GEMM, written as LLVM IR.

LLVM (22, as shipped with numba 0.68) does not turn any loop written in Numba
into ``vpdpbusd``: a register-blocked dot product of uint8 x int8 becomes
``vpmovzxbd`` + ``vpdpwssd`` on int32 lanes (16 useful multiply-adds per
instruction instead of 64) and tops out near 100 GOP/s here. So this module
hands LLVM the instruction itself, through ``numba.extending.intrinsic``:
``tile_kernel(rows)`` returns an intrinsic that computes one rows x 64 tile of

    C[i, j] = sum_k A[i, k] * B[k, j]          A uint8, B int8, C int32 (modulo 2**32)

with ``llvm.x86.avx512.vpdpbusd.512``. One instruction, per 32-bit lane j,
adds the four products A[i, 4q..4q+3] * B[4q..4q+3, j] (uint8 x int8, each
exact in 16 bits, the four summed exactly) to the int32 accumulator, wrapping
modulo 2**32 -- not the saturating ``vpdpbusds`` -- so the tile equals the
int64 sum reduced modulo 2**32. Layouts (made by matmul_integer.py):

- A: uint8, rows of ``lda`` bytes, K padded with zeros to a multiple of 4; each
  step broadcasts the 4 bytes A[i, 4q..4q+3] as one int32 to all 16 lanes.
- B panel: int8 ``[K/4][64 columns][4]``: the 256 bytes of step q are four
  zmm loads, lane j of load c holding B[4q..4q+3, 64p + 16c + j].
- C: int32 rows of ``ldc``; the tile stores rows x 4 zmm unaligned.

The rows x 4 accumulators (16 zmm for 4 rows) stay in registers across the
whole K loop (phi nodes), which is the register blocking of the C kernel
(docs/kernels.md section 1.2). Only call this when :func:`vnni_usable` says the
JIT targets a CPU with AVX-512 F/BW and VNNI: on any other target LLVM cannot
select the instruction and aborts the process. Numba's on-disk cache of
matmul_integer.py does not notice edits to this file: after changing it,
delete kernels/numba/__pycache__/matmul_integer.*.nb[ci].
"""

from __future__ import annotations

import functools

import numba
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["vnni_usable", "tile_kernel", "PANEL"]

PANEL = 64  # columns per tile: four zmm of 16 int32 lanes
_LANES = 16


@functools.lru_cache(maxsize=None)
def vnni_usable() -> bool:
    """True when numba compiles for this host (no NUMBA_CPU_NAME/FEATURES override)
    and the host has AVX-512 F, BW and VNNI."""
    if numba.config.CPU_NAME is not None or numba.config.CPU_FEATURES is not None:
        return False
    try:
        import llvmlite.binding as llvm

        feats = llvm.get_host_cpu_features()
        return all(feats.get(f, False) for f in ("avx512f", "avx512bw", "avx512vnni"))
    except Exception:  # noqa: BLE001 - no feature query means no VNNI path
        return False


@functools.lru_cache(maxsize=None)
def tile_kernel(rows: int, panels: int = 1):
    """Intrinsic ``tile(a, a_off, lda, bp, b_off, k4, c, c_off, ldc)``: rows x (64 panels) tile.

    Offsets are element offsets into the flat data of the arrays ``a`` (uint8),
    ``bp`` (B panels, bytes) and ``c`` (int32); ``k4`` = padded K / 4 steps;
    ``panels`` consecutive B panels (each ``k4 * 256`` bytes) share one
    broadcast of A, which gives a single row enough independent accumulators
    (rows * 4 * panels zmm) to hide the instruction's latency. The caller
    guarantees every access is in bounds (matmul_integer.py sizes the buffers).
    """

    @intrinsic
    def tile(typingctx, a, a_off, lda, bp, b_off, k4, c, c_off, ldc):
        sig = types.void(a, a_off, lda, bp, b_off, k4, c, c_off, ldc)

        def codegen(context, builder, signature, args):
            a_, a_off_, lda_, bp_, b_off_, k4_, c_, c_off_, ldc_ = args
            i8p = ir.IntType(8).as_pointer()
            i32, i64 = ir.IntType(32), ir.IntType(64)
            vec = ir.VectorType(i32, _LANES)
            vecp = vec.as_pointer()

            def const(v):
                return ir.Constant(i64, v)

            def data(k, val):
                return context.make_array(signature.args[k])(context, builder, val).data

            abase = builder.gep(builder.bitcast(data(0, a_), i8p), [a_off_])
            bbase = builder.gep(builder.bitcast(data(3, bp_), i8p), [b_off_])
            cbase = builder.gep(data(6, c_), [c_off_])
            dpbusd = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vec, [vec, vec, vec]), "llvm.x86.avx512.vpdpbusd.512")
            zero = ir.Constant(vec, None)
            width = 4 * panels  # zmm per row
            nacc = rows * width
            pstride = builder.mul(k4_, const(4 * PANEL))  # bytes from one panel to the next

            entry = builder.block
            loop = builder.append_basic_block("vnni.k")
            done = builder.append_basic_block("vnni.store")
            builder.cbranch(builder.icmp_signed(">", k4_, const(0)), loop, done)

            builder.position_at_end(loop)
            q = builder.phi(i64)
            q.add_incoming(const(0), entry)
            acc = []
            for _ in range(nacc):
                p = builder.phi(vec)
                p.add_incoming(zero, entry)
                acc.append(p)
            bstep = builder.gep(bbase, [builder.mul(q, const(4 * PANEL))])
            bv = []
            for g in range(panels):
                pstep = builder.gep(bstep, [builder.mul(pstride, const(g))])
                bv += [builder.load(builder.bitcast(builder.gep(pstep, [const(64 * col)]), vecp), align=1)
                       for col in range(4)]
            astep = builder.mul(q, const(4))
            new = []
            for r in range(rows):
                ptr = builder.gep(abase, [builder.add(astep, builder.mul(lda_, const(r)))])
                word = builder.load(builder.bitcast(ptr, i32.as_pointer()), align=1)
                bcast = builder.insert_element(ir.Constant(vec, ir.Undefined), word, ir.Constant(i32, 0))
                bcast = builder.shuffle_vector(bcast, ir.Constant(vec, ir.Undefined), ir.Constant(vec, None))
                for col in range(width):
                    new.append(builder.call(dpbusd, [acc[r * width + col], bcast, bv[col]]))
            q_next = builder.add(q, const(1))
            q.add_incoming(q_next, loop)
            for p, v in zip(acc, new):
                p.add_incoming(v, loop)
            builder.cbranch(builder.icmp_signed("<", q_next, k4_), loop, done)

            builder.position_at_end(done)
            final = []
            for v in new:  # K = 0 leaves zeros
                p = builder.phi(vec)
                p.add_incoming(zero, entry)
                p.add_incoming(v, loop)
                final.append(p)
            for r in range(rows):
                row = builder.gep(cbase, [builder.mul(ldc_, const(r))])
                for col in range(width):
                    ptr = builder.bitcast(builder.gep(row, [const(_LANES * col)]), vecp)
                    builder.store(final[r * width + col], ptr, align=1)
            return context.get_dummy_value()

        return sig, codegen

    return tile
