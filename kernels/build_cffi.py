"""cffi builder (API mode) for refcomp's C library: module ``refcomp.kernels._crefcomp``.

setup.py wires it with ``cffi_modules=["kernels/build_cffi.py:ffibuilder"]``;
``pip install -e .`` compiles csrc/*.c into the extension. Flags: -O3 and
-ffp-contract=off (the float paths promise a given rounding sequence, see
csrc/README.md); no -march: the SIMD functions carry target attributes and
are chosen at run time. API-mode calls release the GIL.
Run directly (``python kernels/build_cffi.py``) to build in place.
"""

from __future__ import annotations

import os

from cffi import FFI

_HERE = os.path.dirname(os.path.abspath(__file__))
_CSRC = os.path.join(os.path.dirname(_HERE), "csrc")
SOURCES = ["cpu.c", "threads.c", "matmul_integer.c", "requantize.c", "spmm.c"]

# The declarations of csrc/refcomp.h that Python uses (cffi's cdef takes no preprocessor).
CDEF = """
int refcomp_isa_supported(int isa);
int refcomp_isa_best(void);
const char *refcomp_isa_name(int isa);

int refcomp_matmul_integer(int isa, int nthreads, int64_t M, int64_t K, int64_t N,
                           const void *A, int64_t lda, int a_is_signed, const int32_t *a_zero_point,
                           const void *B, int64_t ldb, int b_is_signed, const int32_t *b_zero_point,
                           const int32_t *bias, int32_t *C, int64_t ldc);
typedef struct refcomp_packed_b refcomp_packed_b;
int refcomp_pack_b(int64_t K, int64_t N, const void *B, int64_t ldb, int b_is_signed,
                   refcomp_packed_b **out);
void refcomp_packed_b_free(refcomp_packed_b *packed);
int64_t refcomp_packed_b_rows(const refcomp_packed_b *packed);
int64_t refcomp_packed_b_cols(const refcomp_packed_b *packed);
int refcomp_matmul_integer_packed(int isa, int nthreads, int64_t M,
                                  const void *A, int64_t lda, int a_is_signed, const int32_t *a_zero_point,
                                  const refcomp_packed_b *B, const int32_t *b_zero_point,
                                  const int32_t *bias, int32_t *C, int64_t ldc);

int refcomp_requantize_float(int isa, int64_t M, int64_t N, const int32_t *acc, int64_t ld_acc,
                             const float *multiplier, const int32_t *zero_point,
                             int32_t qmin, int32_t qmax, int32_t *out, int64_t ld_out);
int refcomp_requantize_fixed_point(int isa, int64_t M, int64_t N, const int32_t *acc, int64_t ld_acc,
                                   const int32_t *multiplier, const int32_t *shift,
                                   const int32_t *zero_point, int32_t qmin, int32_t qmax,
                                   int32_t *out, int64_t ld_out);
int32_t refcomp_saturating_rounding_doubling_high_mul(int32_t a, int32_t b);
int32_t refcomp_rounding_divide_by_pot(int32_t x, int exponent);

int refcomp_csr_spmm_f32(int isa, int nthreads, int64_t rows, int64_t n,
                         const int64_t *indptr, const int64_t *indices, const float *data,
                         const float *X, int64_t ldx, float *Y, int64_t ldy);
int refcomp_csr_spmm_f32_blocked(int isa, int nthreads, int64_t rows, int64_t n,
                                 const int64_t *indptr, const int64_t *indices, const float *data,
                                 int64_t nblocks, const int64_t *block_ptr, const float *X,
                                 int64_t ldx, float *Y, int64_t ldy);
int refcomp_csr_linear_f32(int isa, int nthreads, int64_t batch, int64_t in, int64_t out,
                           const int64_t *indptr, const int64_t *indices, const float *data,
                           int64_t nblocks, const int64_t *block_ptr,
                           const float *x, int64_t ldx, const float *bias, float *y, int64_t ldy);
int refcomp_csr_spmm_i8(int isa, int nthreads, int64_t rows, int64_t n,
                        const int64_t *indptr, const int64_t *indices, const int8_t *data,
                        const int16_t *X, int64_t ldx, int32_t *Y, int64_t ldy);
"""


def _rel(path: str) -> str:
    # setuptools wants source paths relative to the project root (the cwd of setup.py)
    try:
        return os.path.relpath(path)
    except ValueError:  # different drive (Windows)
        return path


ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "refcomp.kernels._crefcomp",
    '#include "refcomp.h"',
    sources=[_rel(os.path.join(_CSRC, s)) for s in SOURCES],
    include_dirs=[_rel(_CSRC)],
    extra_compile_args=["-O3", "-ffp-contract=off"],
    libraries=["m"],
    extra_link_args=["-lpthread"],
)

if __name__ == "__main__":
    ffibuilder.compile(tmpdir=os.path.join(_CSRC, "build", "cffi"), verbose=True)
