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
 * the CPU reports it (every AVX2 CPU has it, but the check costs nothing),
 * in 2 x 4 blocks of C.
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
#define POPCNT_TARGET __attribute__((target("popcnt")))

/* one C element; the tail of the blocked loops below */
POPCNT_TARGET static inline int64_t mismatches(const uint64_t *a, const uint64_t *b, int64_t W) {
    int64_t d = 0;
    for (int64_t w = 0; w < W; ++w) d += __builtin_popcountll(a[w] ^ b[w]);
    return d;
}

/* 2 rows of A x 4 rows of B per block: each loaded word is used 4 (A) or 2 (B) times and the
 * 8 independent popcount chains hide POPCNT's latency; the sums are the same integers. */
POPCNT_TARGET static void bmm_rows_popcnt(int64_t i0, int64_t i1, int64_t N, int64_t K, int64_t W,
                                          const uint64_t *A, int64_t lda, const uint64_t *B,
                                          int64_t ldb, int32_t *C, int64_t ldc) {
    int64_t i = i0;
    for (; i + 2 <= i1; i += 2) {
        const uint64_t *a0 = A + i * lda, *a1 = a0 + lda;
        int64_t j = 0;
        for (; j + 4 <= N; j += 4) {
            const uint64_t *b0 = B + j * ldb, *b1 = b0 + ldb, *b2 = b1 + ldb, *b3 = b2 + ldb;
            int64_t d[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            for (int64_t w = 0; w < W; ++w) {
                uint64_t x0 = a0[w], x1 = a1[w], y0 = b0[w], y1 = b1[w], y2 = b2[w], y3 = b3[w];
                d[0] += __builtin_popcountll(x0 ^ y0);
                d[1] += __builtin_popcountll(x0 ^ y1);
                d[2] += __builtin_popcountll(x0 ^ y2);
                d[3] += __builtin_popcountll(x0 ^ y3);
                d[4] += __builtin_popcountll(x1 ^ y0);
                d[5] += __builtin_popcountll(x1 ^ y1);
                d[6] += __builtin_popcountll(x1 ^ y2);
                d[7] += __builtin_popcountll(x1 ^ y3);
            }
            for (int t = 0; t < 4; ++t) {
                C[i * ldc + j + t] = (int32_t)(K - 2 * d[t]);
                C[(i + 1) * ldc + j + t] = (int32_t)(K - 2 * d[4 + t]);
            }
        }
        for (; j < N; ++j) {
            C[i * ldc + j] = (int32_t)(K - 2 * mismatches(a0, B + j * ldb, W));
            C[(i + 1) * ldc + j] = (int32_t)(K - 2 * mismatches(a1, B + j * ldb, W));
        }
    }
    for (; i < i1; ++i)
        for (int64_t j = 0; j < N; ++j)
            C[i * ldc + j] = (int32_t)(K - 2 * mismatches(A + i * lda, B + j * ldb, W));
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
