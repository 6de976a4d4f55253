/*
 * spmm.c -- CSR sparse matrix times dense matrix: Y = W X.
 *
 * Row-wise "axpy" form: Y[r, :] = sum_p data[p] * X[indices[p], :], the sum
 * taken in CSR order starting from 0. X rows are contiguous, so each
 * non-zero costs one broadcast and a few vector multiply-adds over the n
 * columns (sparse_linear passes x^T, so n is the batch). Rows are split
 * among threads; a row's arithmetic never depends on the split.
 *
 * float32: the scalar path rounds the product and the sum separately
 * (compiled with -ffp-contract=off); the AVX2/AVX-512 paths use fused
 * multiply-add, one rounding per step. Both stay within the bound stated in
 * refcomp.h. int8: products and sums in int32 modulo 2^32 -- exact when the
 * result fits int32 (refcomp.ops.sparse_linear checks a bound before calling).
 */
#include <math.h>

#include "internal.h"

#if REFCOMP_X86 && !defined(REFCOMP_NO_SIMD)
#include <immintrin.h>
#endif

#define ROWS_PER_TASK 16
#define SPMM_BLOCK_ROWS 128 /* rows per task of the AVX-512 float path */
#ifndef SPMM_PF
#define SPMM_PF 6 /* non-zeros of look-ahead for software prefetch */
#endif

typedef struct {
    int isa;
    int64_t rows, n;
    const int64_t *indptr, *indices;
    const void *data;
    const void *X;
    int64_t ldx;
    void *Y;
    int64_t ldy;
} spmm_ctx;

/* ------------------------------------------------------------ float32 */

static void spmm_f32_rows_scalar(const spmm_ctx *c, int64_t r0, int64_t r1) {
    const float *data = (const float *)c->data, *X = (const float *)c->X;
    float *Y = (float *)c->Y;
    for (int64_t r = r0; r < r1; ++r) {
        float *y = Y + r * c->ldy;
        for (int64_t j = 0; j < c->n; ++j) y[j] = 0.0f;
        for (int64_t p = c->indptr[r]; p < c->indptr[r + 1]; ++p) {
            const float w = data[p];
            const float *x = X + c->indices[p] * c->ldx;
            for (int64_t j = 0; j < c->n; ++j) y[j] = y[j] + w * x[j];
        }
    }
}

#if REFCOMP_X86 && !defined(REFCOMP_NO_SIMD)
REFCOMP_TARGET_AVX2 static void spmm_f32_rows_avx2(const spmm_ctx *c, int64_t r0, int64_t r1) {
    const float *data = (const float *)c->data, *X = (const float *)c->X;
    float *Y = (float *)c->Y;
    const int64_t n = c->n;
    for (int64_t r = r0; r < r1; ++r) {
        float *y = Y + r * c->ldy;
        const int64_t p0 = c->indptr[r], p1 = c->indptr[r + 1];
        int64_t j = 0;
        for (; j + 64 <= n; j += 64) { /* 8 ymm accumulators */
            __m256 acc[8];
            for (int v = 0; v < 8; ++v) acc[v] = _mm256_setzero_ps();
            for (int64_t p = p0; p < p1; ++p) {
                __m256 w = _mm256_set1_ps(data[p]);
                const float *x = X + c->indices[p] * c->ldx + j;
                for (int v = 0; v < 8; ++v)
                    acc[v] = _mm256_fmadd_ps(w, _mm256_loadu_ps(x + 8 * v), acc[v]);
            }
            for (int v = 0; v < 8; ++v) _mm256_storeu_ps(y + j + 8 * v, acc[v]);
        }
        for (; j + 8 <= n; j += 8) {
            __m256 acc = _mm256_setzero_ps();
            for (int64_t p = p0; p < p1; ++p)
                acc = _mm256_fmadd_ps(_mm256_set1_ps(data[p]),
                                      _mm256_loadu_ps(X + c->indices[p] * c->ldx + j), acc);
            _mm256_storeu_ps(y + j, acc);
        }
        for (; j < n; ++j) {
            float acc = 0.0f;
            for (int64_t p = p0; p < p1; ++p) acc = fmaf(data[p], X[c->indices[p] * c->ldx + j], acc);
            y[j] = acc;
        }
    }
}

/* One row segment: y[:n] = (first ? 0 : y[:n]) + sum_{p in [pa, pb)} data[p] X[indices[p], :n],
 * fused multiply-add in CSR order. Splitting a row into segments therefore
 * gives the same bits as one pass over the row. */
REFCOMP_TARGET_AVX512VNNI static inline __attribute__((always_inline)) void
seg_f32_avx512(const float *data, const int64_t *indices, int64_t pa, int64_t pb, const float *X,
               int64_t ldx, int64_t n, float *y, int first) {
    int64_t j = 0;
    for (; j + 128 <= n; j += 128) { /* 8 zmm accumulators */
        __m512 acc[8];
        for (int v = 0; v < 8; ++v) acc[v] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(y + j + 16 * v);
        for (int64_t p = pa; p < pb; ++p) {
            /* X rows come in no predictable order: fetch a few non-zeros ahead */
            if (p + SPMM_PF < pb) {
                const char *nx = (const char *)(X + indices[p + SPMM_PF] * ldx + j);
                for (int v = 0; v < 8; ++v) _mm_prefetch(nx + 64 * v, _MM_HINT_T0);
            }
            const __m512 w = _mm512_set1_ps(data[p]);
            const float *x = X + indices[p] * ldx + j;
            for (int v = 0; v < 8; ++v) acc[v] = _mm512_fmadd_ps(w, _mm512_loadu_ps(x + 16 * v), acc[v]);
        }
        for (int v = 0; v < 8; ++v) _mm512_storeu_ps(y + j + 16 * v, acc[v]);
    }
    for (; j < n; j += 16) { /* remaining columns, the last vector masked */
        const int64_t left = n - j;
        const __mmask16 m = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
        __m512 acc = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m, y + j);
        for (int64_t p = pa; p < pb; ++p)
            acc = _mm512_fmadd_ps(_mm512_set1_ps(data[p]), _mm512_maskz_loadu_ps(m, X + indices[p] * ldx + j), acc);
        _mm512_mask_storeu_ps(y + j, m, acc);
    }
}

/* Rows [r0, r1) in column blocks: for each block of KB columns of W (KB rows
 * of X, sized to stay in L1), every row adds its non-zeros of that block.
 * X is then read from L1 instead of L2/L3; the price is one reload of the
 * row's partial sums per block, so blocks are widened until a row has ~8
 * non-zeros per block on average. Same arithmetic order as unblocked. */
REFCOMP_TARGET_AVX512VNNI static void spmm_f32_rows_avx512(const spmm_ctx *c, int64_t r0,
                                                           int64_t r1) {
    const float *data = (const float *)c->data, *X = (const float *)c->X;
    const int64_t *indptr = c->indptr, *indices = c->indices;
    float *Y = (float *)c->Y;
    const int64_t n = c->n, nrows = r1 - r0;
    int64_t cursor[SPMM_BLOCK_ROWS];
    int64_t cols = 0, nnz = indptr[r1] - indptr[r0];
    for (int64_t r = r0; r < r1; ++r)
        if (indptr[r + 1] > indptr[r] && indices[indptr[r + 1] - 1] + 1 > cols)
            cols = indices[indptr[r + 1] - 1] + 1;
    int64_t kb = 32768 / (4 * (n > 0 ? n : 1)); /* X block of ~32 KiB */
    if (kb < 16) kb = 16;
    /* widen the block while the average row has < 8 non-zeros in it */
    while (kb < cols && (double)nnz * (double)kb < 8.0 * (double)nrows * (double)cols) kb *= 2;
    if (kb >= cols) { /* one block: plain row-by-row pass */
        for (int64_t r = r0; r < r1; ++r)
            seg_f32_avx512(data, indices, indptr[r], indptr[r + 1], X, c->ldx, n, Y + r * c->ldy, 1);
        return;
    }
    for (int64_t r = r0; r < r1; ++r) cursor[r - r0] = indptr[r];
    for (int64_t k0 = 0; k0 < cols; k0 += kb) {
        const int64_t k1 = k0 + kb;
        for (int64_t r = r0; r < r1; ++r) {
            const int64_t pa = cursor[r - r0], end = indptr[r + 1];
            int64_t pb = pa;
            while (pb < end && indices[pb] < k1) ++pb;
            /* first segment of the row iff the row had no earlier non-zero */
            if (pb > pa) seg_f32_avx512(data, indices, pa, pb, X, c->ldx, n, Y + r * c->ldy, pa == indptr[r]);
            cursor[r - r0] = pb;
        }
    }
    for (int64_t r = r0; r < r1; ++r) /* empty rows */
        if (indptr[r + 1] == indptr[r])
            for (int64_t j = 0; j < n; ++j) Y[r * c->ldy + j] = 0.0f;
}
#endif

static int64_t f32_rows_per_task(int isa) {
    return isa == REFCOMP_ISA_AVX512VNNI ? SPMM_BLOCK_ROWS : ROWS_PER_TASK;
}

static void spmm_f32_task(void *vctx, int64_t task) {
    const spmm_ctx *c = (const spmm_ctx *)vctx;
    const int64_t per = f32_rows_per_task(c->isa);
    int64_t r0 = task * per, r1 = r0 + per;
    if (r1 > c->rows) r1 = c->rows;
    switch (c->isa) {
#if REFCOMP_X86 && !defined(REFCOMP_NO_SIMD)
    case REFCOMP_ISA_AVX512VNNI: spmm_f32_rows_avx512(c, r0, r1); break;
    case REFCOMP_ISA_AVX2: spmm_f32_rows_avx2(c, r0, r1); break;
#endif
    default: spmm_f32_rows_scalar(c, r0, r1);
    }
}

/* ------------------------------------------------------------ int8 */

static inline __attribute__((always_inline)) void spmm_i8_rows(const spmm_ctx *c, int64_t r0,
                                                               int64_t r1) {
    const int8_t *data = (const int8_t *)c->data;
    const int16_t *X = (const int16_t *)c->X;
    int32_t *Y = (int32_t *)c->Y;
    for (int64_t r = r0; r < r1; ++r) {
        uint32_t *y = (uint32_t *)(Y + r * c->ldy);
        for (int64_t j = 0; j < c->n; ++j) y[j] = 0;
        for (int64_t p = c->indptr[r]; p < c->indptr[r + 1]; ++p) {
            const uint32_t w = (uint32_t)(int32_t)data[p];
            const int16_t *x = X + c->indices[p] * c->ldx;
            for (int64_t j = 0; j < c->n; ++j) y[j] += w * (uint32_t)(int32_t)x[j];
        }
    }
}

static void spmm_i8_rows_scalar(const spmm_ctx *c, int64_t r0, int64_t r1) {
    spmm_i8_rows(c, r0, r1);
}
#if REFCOMP_X86 && !defined(REFCOMP_NO_SIMD)
/* the same loop, auto-vectorized for each ISA (wrapping uint32 arithmetic) */
REFCOMP_TARGET_AVX2 static void spmm_i8_rows_avx2(const spmm_ctx *c, int64_t r0, int64_t r1) {
    spmm_i8_rows(c, r0, r1);
}
REFCOMP_TARGET_AVX512VNNI static void spmm_i8_rows_avx512(const spmm_ctx *c, int64_t r0,
                                                          int64_t r1) {
    spmm_i8_rows(c, r0, r1);
}
#endif

static void spmm_i8_task(void *vctx, int64_t task) {
    const spmm_ctx *c = (const spmm_ctx *)vctx;
    int64_t r0 = task * ROWS_PER_TASK, r1 = r0 + ROWS_PER_TASK;
    if (r1 > c->rows) r1 = c->rows;
    switch (c->isa) {
#if REFCOMP_X86 && !defined(REFCOMP_NO_SIMD)
    case REFCOMP_ISA_AVX512VNNI: spmm_i8_rows_avx512(c, r0, r1); break;
    case REFCOMP_ISA_AVX2: spmm_i8_rows_avx2(c, r0, r1); break;
#endif
    default: spmm_i8_rows_scalar(c, r0, r1);
    }
}

static int spmm_run(int isa, int nthreads, int64_t rows, int64_t n, const int64_t *indptr,
                    const int64_t *indices, const void *data, const void *X, int64_t ldx, void *Y,
                    int64_t ldy, refcomp__task_fn task, int f32) {
    if (rows < 0 || n < 0) return REFCOMP_EINVAL;
    isa = refcomp__resolve_isa(isa);
    if (isa < 0) return isa;
    if (rows == 0 || n == 0) return REFCOMP_OK;
    if (!indptr || !Y || ldy < n || ldx < n) return REFCOMP_EINVAL;
    if (indptr[rows] > 0 && (!indices || !data || !X)) return REFCOMP_EINVAL;
    spmm_ctx ctx = {isa, rows, n, indptr, indices, data, X, ldx, Y, ldy};
    if ((double)indptr[rows] * (double)n < 1.0e6) nthreads = 1;
    const int64_t per = f32 ? f32_rows_per_task(isa) : ROWS_PER_TASK;
    return refcomp__parallel_for(nthreads, (rows + per - 1) / per, task, &ctx);
}

int refcomp_csr_spmm_f32(int isa, int nthreads, int64_t rows, int64_t n, const int64_t *indptr,
                         const int64_t *indices, const float *data, const float *X, int64_t ldx,
                         float *Y, int64_t ldy) {
    return spmm_run(isa, nthreads, rows, n, indptr, indices, data, X, ldx, Y, ldy, spmm_f32_task, 1);
}

int refcomp_csr_spmm_i8(int isa, int nthreads, int64_t rows, int64_t n, const int64_t *indptr,
                        const int64_t *indices, const int8_t *data, const int16_t *X, int64_t ldx,
                        int32_t *Y, int64_t ldy) {
    return spmm_run(isa, nthreads, rows, n, indptr, indices, data, X, ldx, Y, ldy, spmm_i8_task, 0);
}
