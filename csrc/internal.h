/*
 * internal.h -- helpers shared by the csrc/ sources; not part of the API.
 */
#ifndef REFCOMP_INTERNAL_H
#define REFCOMP_INTERNAL_H

#include <stdint.h>

#include "refcomp.h"

/* Per-function target attributes let one translation unit hold scalar, AVX2
 * and AVX-512 code without -march: each fast function is compiled for its
 * ISA only and is called only after refcomp_isa_supported() said yes. */
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define REFCOMP_X86 1
#define REFCOMP_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define REFCOMP_TARGET_AVX512VNNI \
    __attribute__((target("avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni")))
#else
#define REFCOMP_X86 0
#endif

/* Resolve REFCOMP_ISA_AUTO and check support: returns the isa or REFCOMP_EISA. */
int refcomp__resolve_isa(int isa);

/* Run task(ctx, t) for t in [0, ntasks) on up to nthreads threads (the calling
 * thread included). Tasks must write disjoint outputs. If a thread cannot be
 * created its share runs on the calling thread, so the work is always
 * complete and the result is the same; returns REFCOMP_OK. */
typedef void (*refcomp__task_fn)(void *ctx, int64_t task);
int refcomp__parallel_for(int nthreads, int64_t ntasks, refcomp__task_fn task, void *ctx);

/* refcomp_pack_b on a chosen path, and a view of the packed bytes, their
 * layout and the column sums (tests). The layouts (matmul_integer.c):
 * U8X4, b' bytes [N/64][K/4][64 columns][4 k], made by the scalar and VNNI
 * paths; I16X2, int16 b' [N/16][K/4][2 k pairs][16 columns][2 k], made by
 * the AVX2 path. N and K are rounded up, the padding is 0. */
#define REFCOMP__LAYOUT_U8X4 0
#define REFCOMP__LAYOUT_I16X2 1
int refcomp__pack_b_isa(int isa, int64_t K, int64_t N, const void *B, int64_t ldb,
                        int b_is_signed, refcomp_packed_b **out);
const uint8_t *refcomp__packed_b_data(const refcomp_packed_b *p, size_t *nbytes,
                                     const uint32_t **colsum, int *layout);

#endif
