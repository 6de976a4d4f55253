/*
 * binary_matmul.c -- the bit-count inner product of packed ±1 vectors (XNOR-Net / BNN).
 *
 * The NumPy definition is refcomp/ops/binary_matmul.py (eq. B1):
 *     C[i,j] = K - 2 * sum_w popcount(A[i,w] XOR B[j,w])
 * A row is W = ceil(K/64) uint64 words, bit 1 = -1; the pad bits after
 * element K-1 are 0 in both operands (refcomp.ops checks it), so they never
 * count, and K is the true length. Every path sums the same integers, so
 * every path and thread count returns the same C.
 *
 * Paths: scalar -- a portable SWAR popcount (Hacker's Delight 5-1, C99
 * only); AVX2 and AVX-512 VNNI -- the POPCNT instruction through
 * __builtin_popcountll compiled with target("popcnt") and called only when
 * the CPU reports it (every AVX2 CPU has it, but the check costs nothing).
 */
#include "internal.h"

#define BMM_ROWS 16 /* rows of A per thread-pool task */

static inline int64_t popcount_swar(uint64_t v) {
    v = v - ((v >> 1) & 0x5555555555555555ULL);
    v = (v & 0x3333333333333333ULL) + ((v >> 2) & 0x3333333333333333ULL);
    v = (v + (v >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
    return (int64_t)((v * 0x0101010101010101ULL) >> 56);
}

static void bmm_rows_scalar(int64_t i0, int64_t i1, int64_t N, int64_t K, int64_t W,
                            const uint64_t *A, int64_t lda, const uint64_t *B, int64_t ldb,
                            int32_t *C, int64_t ldc) {
    for (int64_t i = i0; i < i1; ++i)
        for (int64_t j = 0; j < N; ++j) {
            int64_t d = 0;
            for (int64_t w = 0; w < W; ++w) d += popcount_swar(A[i * lda + w] ^ B[j * ldb + w]);
            C[i * ldc + j] = (int32_t)(K - 2 * d);
        }
}

#if REFCOMP_X86 && !defined(REFCOMP_NO_SIMD)
__attribute__((target("popcnt"))) static void bmm_rows_popcnt(
    int64_t i0, int64_t i1, int64_t N, int64_t K, int64_t W, const uint64_t *A, int64_t lda,
    const uint64_t *B, int64_t ldb, int32_t *C, int64_t ldc) {
    for (int64_t i = i0; i < i1; ++i)
        for (int64_t j = 0; j < N; ++j) {
            const uint64_t *a = A + i * lda, *b = B + j * ldb;
            int64_t d0 = 0, d1 = 0, w = 0; /* two chains: popcnt has 3-cycle latency, 1/cycle throughput */
            for (; w + 2 <= W; w += 2) {
                d0 += __builtin_popcountll(a[w] ^ b[w]);
                d1 += __builtin_popcountll(a[w + 1] ^ b[w + 1]);
            }
            if (w < W) d0 += __builtin_popcountll(a[w] ^ b[w]);
            C[i * ldc + j] = (int32_t)(K - 2 * (d0 + d1));
        }
}

static int has_popcnt(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("popcnt");
}
#endif

typedef struct {
    int fast;
    int64_t M, N, K, W;
    const uint64_t *A, *B;
    int64_t lda, ldb, ldc;
    int32_t *C;
} bmm_ctx;

static void bmm_task(void *vctx, int64_t task) {
    const bmm_ctx *c = (const bmm_ctx *)vctx;
    int64_t i0 = task * BMM_ROWS, i1 = i0 + BMM_ROWS < c->M ? i0 + BMM_ROWS : c->M;
#if REFCOMP_X86 && !defined(REFCOMP_NO_SIMD)
    if (c->fast) {
        bmm_rows_popcnt(i0, i1, c->N, c->K, c->W, c->A, c->lda, c->B, c->ldb, c->C, c->ldc);
        return;
    }
#endif
    bmm_rows_scalar(i0, i1, c->N, c->K, c->W, c->A, c->lda, c->B, c->ldb, c->C, c->ldc);
}

int refcomp_binary_matmul(int isa, int nthreads, int64_t M, int64_t N, int64_t K, const uint64_t *A,
                          int64_t lda, const uint64_t *B, int64_t ldb, int32_t *C, int64_t ldc) {
    if (M < 0 || N < 0 || K < 1 || K > INT32_MAX) return REFCOMP_EINVAL;
    isa = refcomp__resolve_isa(isa);
    if (isa < 0) return isa;
    if (M == 0 || N == 0) return REFCOMP_OK;
    int64_t W = (K + 63) / 64;
    if (!A || !B || !C || lda < W || ldb < W || ldc < N) return REFCOMP_EINVAL;
    bmm_ctx ctx = {0, M, N, K, W, A, B, lda, ldb, ldc, C};
#if REFCOMP_X86 && !defined(REFCOMP_NO_SIMD)
    ctx.fast = isa >= REFCOMP_ISA_AVX2 && has_popcnt();
#endif
    return refcomp__parallel_for(nthreads, (M + BMM_ROWS - 1) / BMM_ROWS, bmm_task, &ctx);
}
