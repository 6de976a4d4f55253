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
#include <stdlib.h>

#include "internal.h"

#if REFCOMP_X86 && !defined(REFCOMP_NO_SIMD)
#include <immintrin.h>
#endif

#define ROWS_PER_TASK 16
#define SPMM_BLOCK_ROWS 128 /* rows per task of the column-blocked kernel */

/* Column index p of W, stored as uint16 (REFCOMP_INDEX_U16) or int32
 * (REFCOMP_INDEX_I32). Every caller below passes a literal `iw`, so each
 * kernel is compiled once per index type with a plain load. */
static inline __attribute__((always_inline)) int64_t col(const void *indices, int iw, int64_t p) {
    return iw == REFCOMP_INDEX_U16 ? (int64_t)((const uint16_t *)indices)[p]
                                   : (int64_t)((const int32_t *)indices)[p];
}

/* ------------------------------------------------------------ float32
 * A "segment" is part of one row of W, non-zeros [pa, pb):
 *   y[:n] = (first ? 0 : y[:n]) + sum_{p in [pa, pb)} data[p] * X[indices[p], :n]
 * one multiply-add chain per y element, in CSR order. A whole row is one
 * segment; the column-blocked kernel below cuts rows into several, which
 * gives the same bits. */

static inline __attribute__((always_inline)) void
seg_f32_scalar(int iw, const float *data, const void *indices, int64_t pa, int64_t pb,
               const float *X, int64_t ldx, int64_t n, float *y, int first) {
    if (first)
        for (int64_t j = 0; j < n; ++j) y[j] = 0.0f;
    for (int64_t p = pa; p < pb; ++p) {
        const float w = data[p];
        const float *x = X + col(indices, iw, p) * ldx;
        for (int64_t j = 0; j < n; ++j) y[j] = y[j] + w * x[j];
    }
}

#if REFCOMP_X86 && !defined(REFCOMP_NO_SIMD)
REFCOMP_TARGET_AVX2 static inline __attribute__((always_inline)) void
seg_f32_avx2(int iw, const float *data, const void *indices, int64_t pa, int64_t pb,
             const float *X, int64_t ldx, int64_t n, float *y, int first) {
    int64_t j = 0;
    for (; j + 64 <= n; j += 64) { /* 8 ymm accumulators */
        __m256 acc[8];
        for (int v = 0; v < 8; ++v) acc[v] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(y + j + 8 * v);
        for (int64_t p = pa; p < pb; ++p) {
            const __m256 w = _mm256_set1_ps(data[p]);
            const float *x = X + col(indices, iw, p) * ldx + j;
            for (int v = 0; v < 8; ++v) acc[v] = _mm256_fmadd_ps(w, _mm256_loadu_ps(x + 8 * v), acc[v]);
        }
        for (int v = 0; v < 8; ++v) _mm256_storeu_ps(y + j + 8 * v, acc[v]);
    }
    for (; j + 8 <= n; j += 8) {
        __m256 acc = first ? _mm256_setzero_ps() : _mm256_loadu_ps(y + j);
        for (int64_t p = pa; p < pb; ++p)
            acc = _mm256_fmadd_ps(_mm256_set1_ps(data[p]), _mm256_loadu_ps(X + col(indices, iw, p) * ldx + j), acc);
        _mm256_storeu_ps(y + j, acc);
    }
    for (; j < n; ++j) {
        float acc = first ? 0.0f : y[j];
        for (int64_t p = pa; p < pb; ++p) acc = fmaf(data[p], X[col(indices, iw, p) * ldx + j], acc);
        y[j] = acc;
    }
}

REFCOMP_TARGET_AVX512VNNI static inline __attribute__((always_inline)) void
seg_f32_avx512(int iw, const float *data, const void *indices, int64_t pa, int64_t pb,
               const float *X, int64_t ldx, int64_t n, float *y, int first) {
    int64_t j = 0;
    for (; j + 128 <= n; j += 128) { /* 8 zmm accumulators */
        __m512 acc[8];
        for (int v = 0; v < 8; ++v) acc[v] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(y + j + 16 * v);
        for (int64_t p = pa; p < pb; ++p) {
            const __m512 w = _mm512_set1_ps(data[p]);
            const float *x = X + col(indices, iw, p) * ldx + j;
            for (int v = 0; v < 8; ++v) acc[v] = _mm512_fmadd_ps(w, _mm512_loadu_ps(x + 16 * v), acc[v]);
        }
        for (int v = 0; v < 8; ++v) _mm512_storeu_ps(y + j + 16 * v, acc[v]);
    }
    for (; j < n; j += 16) { /* remaining columns, the last vector masked */
        const int64_t left = n - j;
        const __mmask16 m = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
        __m512 acc = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m, y + j);
        for (int64_t p = pa; p < pb; ++p)
            acc = _mm512_fmadd_ps(_mm512_set1_ps(data[p]),
                                  _mm512_maskz_loadu_ps(m, X + col(indices, iw, p) * ldx + j), acc);
        _mm512_mask_storeu_ps(y + j, m, acc);
    }
}
#endif

/* ------------------------------------------------------------ int8 */

typedef struct spmm_ctx spmm_ctx;
typedef void (*rows_fn)(const spmm_ctx *c, int64_t r0, int64_t r1);

struct spmm_ctx {
    refcomp__task_fn f32_task;         /* float32, whole rows */
    refcomp__task_fn f32_blocked_task; /* float32, column-blocked */
    rows_fn i8_rows;                   /* int8 */
    int iw;
    int64_t rows, n;
    const int64_t *indptr;
    const void *indices;
    const void *data;
    const void *X;
    int64_t ldx;
    void *Y;
    int64_t ldy;
};

static inline __attribute__((always_inline)) void spmm_i8_rows(int iw, const spmm_ctx *c,
                                                               int64_t r0, int64_t r1) {
    const int8_t *data = (const int8_t *)c->data;
    const int16_t *X = (const int16_t *)c->X;
    int32_t *Y = (int32_t *)c->Y;
    for (int64_t r = r0; r < r1; ++r) {
        uint32_t *y = (uint32_t *)(Y + r * c->ldy);
        for (int64_t j = 0; j < c->n; ++j) y[j] = 0;
        for (int64_t p = c->indptr[r]; p < c->indptr[r + 1]; ++p) {
            const uint32_t w = (uint32_t)(int32_t)data[p];
            const int16_t *x = X + col(c->indices, iw, p) * c->ldx;
            for (int64_t j = 0; j < c->n; ++j) y[j] += w * (uint32_t)(int32_t)x[j];
        }
    }
}

/* the same loop, auto-vectorized for each ISA (wrapping uint32 arithmetic) */
#define I8_INSTANCE(TARGET, name, iw)                                               \
    TARGET static void name(const spmm_ctx *c, int64_t r0, int64_t r1) {           \
        spmm_i8_rows(iw, c, r0, r1);                                               \
    }
I8_INSTANCE(, i8_scalar_u16, REFCOMP_INDEX_U16)
I8_INSTANCE(, i8_scalar_i32, REFCOMP_INDEX_I32)
#if REFCOMP_X86 && !defined(REFCOMP_NO_SIMD)
I8_INSTANCE(REFCOMP_TARGET_AVX2, i8_avx2_u16, REFCOMP_INDEX_U16)
I8_INSTANCE(REFCOMP_TARGET_AVX2, i8_avx2_i32, REFCOMP_INDEX_I32)
I8_INSTANCE(REFCOMP_TARGET_AVX512VNNI, i8_avx512_u16, REFCOMP_INDEX_U16)
I8_INSTANCE(REFCOMP_TARGET_AVX512VNNI, i8_avx512_i32, REFCOMP_INDEX_I32)
#endif

static rows_fn select_i8(int isa, int iw) {
    switch (isa) {
#if REFCOMP_X86 && !defined(REFCOMP_NO_SIMD)
    case REFCOMP_ISA_AVX512VNNI: return iw == REFCOMP_INDEX_U16 ? i8_avx512_u16 : i8_avx512_i32;
    case REFCOMP_ISA_AVX2: return iw == REFCOMP_INDEX_U16 ? i8_avx2_u16 : i8_avx2_i32;
#endif
    default: return iw == REFCOMP_INDEX_U16 ? i8_scalar_u16 : i8_scalar_i32;
    }
}

/* ------------------------------------------------------------ tasks */

/* Column-blocked: W's columns cut into blocks; for each block every row of
 * the task adds its non-zeros of that block, so the block's rows of X (a
 * slice chosen by CSRMatrix.column_blocks) serve all rows of the task while
 * they are in cache, instead of the whole of X streaming past for every row;
 * partial sums wait in Y between blocks. Bit-identical to the whole-row
 * task (same FMA chain per element). */
typedef struct {
    spmm_ctx base;
    int64_t nblocks;
    const int64_t *block_ptr; /* [rows][nblocks + 1] */
} blocked_ctx;

/* The task loops, with the segment body inlined: at 90 % sparsity a row
 * meets a block with ~13 non-zeros, and a function call per segment cost
 * ~12 % (C harness, interleaved). `ldx`, `n`, `ldy` are parameters so that
 * a caller can pass literals and get a copy with constant strides. */
#define F32_ROWS(seg, iw, c, r0, r1, ldx, n, ldy)                                                  \
    do {                                                                                           \
        for (int64_t r = (r0); r < (r1); ++r)                                                      \
            seg(iw, (const float *)(c)->data, (c)->indices, (c)->indptr[r], (c)->indptr[r + 1],    \
                (const float *)(c)->X, ldx, n, (float *)(c)->Y + r * (ldy), 1);                    \
    } while (0)
#define F32_BLOCKED_ROWS(seg, iw, bc, r0, r1, ldx, n, ldy)                                         \
    do {                                                                                           \
        const spmm_ctx *c_ = &(bc)->base;                                                          \
        float *Y_ = (float *)c_->Y;                                                                \
        for (int64_t r = (r0); r < (r1); ++r) /* rows without non-zeros */                         \
            if (c_->indptr[r + 1] == c_->indptr[r])                                                \
                for (int64_t j = 0; j < (n); ++j) Y_[r * (ldy) + j] = 0.0f;                        \
        for (int64_t b = 0; b < (bc)->nblocks; ++b)                                                \
            for (int64_t r = (r0); r < (r1); ++r) {                                                \
                const int64_t *bp = (bc)->block_ptr + r * ((bc)->nblocks + 1);                     \
                if (bp[b + 1] > bp[b])                                                             \
                    seg(iw, (const float *)c_->data, c_->indices, bp[b], bp[b + 1],                \
                        (const float *)c_->X, ldx, n, Y_ + r * (ldy), bp[b] == c_->indptr[r]);     \
            }                                                                                      \
    } while (0)

/* One whole-row and one blocked task per (ISA, index type). With AVX-512,
 * n = 128 = one row of 8 zmm accumulators, stored contiguously (ldx = ldy =
 * 128: sparse_linear at batch 128), also gets a copy with literal strides --
 * a shift instead of a multiply per non-zero, ~5 % at 90 % sparsity. */
#define F32_TASKS(TARGET, sfx, seg, iw, SPECIAL128)                                                \
    TARGET static void f32_task_##sfx(void *vctx, int64_t task) {                                  \
        const spmm_ctx *c = (const spmm_ctx *)vctx;                                                \
        const int64_t r0 = task * ROWS_PER_TASK;                                                   \
        const int64_t r1 = r0 + ROWS_PER_TASK < c->rows ? r0 + ROWS_PER_TASK : c->rows;            \
        if (SPECIAL128 && c->n == 128 && c->ldx == 128 && c->ldy == 128)                           \
            F32_ROWS(seg, iw, c, r0, r1, 128, 128, 128);                                           \
        else                                                                                       \
            F32_ROWS(seg, iw, c, r0, r1, c->ldx, c->n, c->ldy);                                    \
    }                                                                                              \
    TARGET static void f32_blocked_task_##sfx(void *vctx, int64_t task) {                          \
        const blocked_ctx *bc = (const blocked_ctx *)vctx;                                         \
        const spmm_ctx *c = &bc->base;                                                             \
        const int64_t r0 = task * SPMM_BLOCK_ROWS;                                                 \
        const int64_t r1 = r0 + SPMM_BLOCK_ROWS < c->rows ? r0 + SPMM_BLOCK_ROWS : c->rows;        \
        if (SPECIAL128 && c->n == 128 && c->ldx == 128 && c->ldy == 128)                           \
            F32_BLOCKED_ROWS(seg, iw, bc, r0, r1, 128, 128, 128);                                  \
        else                                                                                       \
            F32_BLOCKED_ROWS(seg, iw, bc, r0, r1, c->ldx, c->n, c->ldy);                           \
    }
F32_TASKS(, scalar_u16, seg_f32_scalar, REFCOMP_INDEX_U16, 0)
F32_TASKS(, scalar_i32, seg_f32_scalar, REFCOMP_INDEX_I32, 0)
#if REFCOMP_X86 && !defined(REFCOMP_NO_SIMD)
F32_TASKS(REFCOMP_TARGET_AVX2, avx2_u16, seg_f32_avx2, REFCOMP_INDEX_U16, 0)
F32_TASKS(REFCOMP_TARGET_AVX2, avx2_i32, seg_f32_avx2, REFCOMP_INDEX_I32, 0)
F32_TASKS(REFCOMP_TARGET_AVX512VNNI, avx512_u16, seg_f32_avx512, REFCOMP_INDEX_U16, 1)
F32_TASKS(REFCOMP_TARGET_AVX512VNNI, avx512_i32, seg_f32_avx512, REFCOMP_INDEX_I32, 1)
#endif

static void select_f32(int isa, int iw, refcomp__task_fn *flat, refcomp__task_fn *blocked) {
    const int u16 = iw == REFCOMP_INDEX_U16;
    switch (isa) {
#if REFCOMP_X86 && !defined(REFCOMP_NO_SIMD)
    case REFCOMP_ISA_AVX512VNNI:
        *flat = u16 ? f32_task_avx512_u16 : f32_task_avx512_i32;
        *blocked = u16 ? f32_blocked_task_avx512_u16 : f32_blocked_task_avx512_i32;
        return;
    case REFCOMP_ISA_AVX2:
        *flat = u16 ? f32_task_avx2_u16 : f32_task_avx2_i32;
        *blocked = u16 ? f32_blocked_task_avx2_u16 : f32_blocked_task_avx2_i32;
        return;
#endif
    default:
        *flat = u16 ? f32_task_scalar_u16 : f32_task_scalar_i32;
        *blocked = u16 ? f32_blocked_task_scalar_u16 : f32_blocked_task_scalar_i32;
    }
}

static void spmm_i8_task(void *vctx, int64_t task) {
    const spmm_ctx *c = (const spmm_ctx *)vctx;
    int64_t r0 = task * ROWS_PER_TASK, r1 = r0 + ROWS_PER_TASK;
    if (r1 > c->rows) r1 = c->rows;
    c->i8_rows(c, r0, r1);
}

/* Checks shared by the entry points; fills *ctx. 1: nothing to do. */
static int spmm_setup(int *isa, int64_t rows, int64_t n, const int64_t *indptr, const void *indices,
                      int index_type, const void *data, const void *X, int64_t ldx, void *Y,
                      int64_t ldy, spmm_ctx *ctx) {
    if (rows < 0 || n < 0) return REFCOMP_EINVAL;
    if (index_type != REFCOMP_INDEX_U16 && index_type != REFCOMP_INDEX_I32) return REFCOMP_EINVAL;
    *isa = refcomp__resolve_isa(*isa);
    if (*isa < 0) return *isa;
    if (rows == 0 || n == 0) return 1;
    if (!indptr || !Y || ldy < n || ldx < n) return REFCOMP_EINVAL;
    if (indptr[rows] > 0 && (!indices || !data || !X)) return REFCOMP_EINVAL;
    spmm_ctx c = {NULL, NULL, select_i8(*isa, index_type), index_type, rows, n,
                  indptr, indices, data, X, ldx, Y, ldy};
    select_f32(*isa, index_type, &c.f32_task, &c.f32_blocked_task);
    *ctx = c;
    return REFCOMP_OK;
}

int refcomp_csr_spmm_f32(int isa, int nthreads, int64_t rows, int64_t n, const int64_t *indptr,
                         const void *indices, int index_type, const float *data, const float *X,
                         int64_t ldx, float *Y, int64_t ldy) {
    spmm_ctx ctx;
    int st = spmm_setup(&isa, rows, n, indptr, indices, index_type, data, X, ldx, Y, ldy, &ctx);
    if (st != REFCOMP_OK) return st == 1 ? REFCOMP_OK : st;
    if ((double)indptr[rows] * (double)n < 1.0e6) nthreads = 1;
    return refcomp__parallel_for(nthreads, (rows + ROWS_PER_TASK - 1) / ROWS_PER_TASK, ctx.f32_task, &ctx);
}

int refcomp_csr_spmm_f32_blocked(int isa, int nthreads, int64_t rows, int64_t n,
                                 const int64_t *indptr, const void *indices, int index_type,
                                 const float *data, int64_t nblocks, const int64_t *block_ptr,
                                 const float *X, int64_t ldx, float *Y, int64_t ldy) {
    if (nblocks < 1) return REFCOMP_EINVAL;
    blocked_ctx ctx;
    int st = spmm_setup(&isa, rows, n, indptr, indices, index_type, data, X, ldx, Y, ldy, &ctx.base);
    if (st != REFCOMP_OK) return st == 1 ? REFCOMP_OK : st;
    if (!block_ptr) return REFCOMP_EINVAL;
    for (int64_t r = 0; r < rows; ++r) { /* block_ptr must partition each row */
        const int64_t *bp = block_ptr + r * (nblocks + 1);
        if (bp[0] != indptr[r] || bp[nblocks] != indptr[r + 1]) return REFCOMP_EINVAL;
        for (int64_t b = 0; b < nblocks; ++b)
            if (bp[b + 1] < bp[b]) return REFCOMP_EINVAL;
    }
    ctx.nblocks = nblocks;
    ctx.block_ptr = block_ptr;
    if ((double)indptr[rows] * (double)n < 1.0e6) nthreads = 1;
    return refcomp__parallel_for(nthreads, (rows + SPMM_BLOCK_ROWS - 1) / SPMM_BLOCK_ROWS,
                                 ctx.base.f32_blocked_task, &ctx);
}

int refcomp_csr_spmm_i8(int isa, int nthreads, int64_t rows, int64_t n, const int64_t *indptr,
                        const void *indices, int index_type, const int8_t *data, const int16_t *X,
                        int64_t ldx, int32_t *Y, int64_t ldy) {
    spmm_ctx ctx;
    int st = spmm_setup(&isa, rows, n, indptr, indices, index_type, data, X, ldx, Y, ldy, &ctx);
    if (st != REFCOMP_OK) return st == 1 ? REFCOMP_OK : st;
    if ((double)indptr[rows] * (double)n < 1.0e6) nthreads = 1;
    return refcomp__parallel_for(nthreads, (rows + ROWS_PER_TASK - 1) / ROWS_PER_TASK, spmm_i8_task, &ctx);
}

/* ------------------------------------------------------ sparse_linear */

/* dst[j, i] = src[i, j] (+ bias[i] when bias is given) for an r x c matrix,
 * in tiles of 8 source rows x 64 columns: rows of a wide matrix are often a
 * multiple of 4 KiB apart and land in one L1 set, so a tile touches no more
 * source rows than L1 has ways. The bias add is the one float32 addition
 * y = (W x^T)^T + bias, done while the value passes by. */
static void transpose_f32(int64_t r, int64_t c, const float *src, int64_t lds, float *dst,
                          int64_t ldd, const float *bias) {
    for (int64_t i0 = 0; i0 < r; i0 += 8)
        for (int64_t j0 = 0; j0 < c; j0 += 64) {
            const int64_t i1 = i0 + 8 < r ? i0 + 8 : r, j1 = j0 + 64 < c ? j0 + 64 : c;
            for (int64_t j = j0; j < j1; ++j)
                for (int64_t i = i0; i < i1; ++i)
                    dst[j * ldd + i] = bias ? src[i * lds + j] + bias[i] : src[i * lds + j];
        }
}

#if REFCOMP_X86 && !defined(REFCOMP_NO_SIMD)
/* One 8 x 8 block (source rows i0.., columns j0..) through registers: the
 * classic unpack / shuffle / 128-bit-lane permute transpose (pure data
 * movement, so the values are the same bits), then the optional bias add. */
REFCOMP_TARGET_AVX2 static inline __attribute__((always_inline)) void
transpose8x8(const float *src, int64_t lds, float *dst, int64_t ldd, const float *bias) {
    __m256 a[8], t[8], u[8];
    for (int k = 0; k < 8; ++k) a[k] = _mm256_loadu_ps(src + k * lds);
    for (int k = 0; k < 4; ++k) {
        t[2 * k] = _mm256_unpacklo_ps(a[2 * k], a[2 * k + 1]);
        t[2 * k + 1] = _mm256_unpackhi_ps(a[2 * k], a[2 * k + 1]);
    }
    for (int h = 0; h < 2; ++h) { /* rows 0-3 of the block, then rows 4-7 */
        u[4 * h + 0] = _mm256_shuffle_ps(t[4 * h + 0], t[4 * h + 2], 0x44);
        u[4 * h + 1] = _mm256_shuffle_ps(t[4 * h + 0], t[4 * h + 2], 0xEE);
        u[4 * h + 2] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0x44);
        u[4 * h + 3] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0xEE);
    }
    const __m256 b = bias ? _mm256_loadu_ps(bias) : _mm256_setzero_ps();
    __m256 v[8]; /* the immediates must be literal at every optimization level */
    for (int k = 0; k < 4; ++k) v[k] = _mm256_permute2f128_ps(u[k], u[k + 4], 0x20);
    for (int k = 0; k < 4; ++k) v[k + 4] = _mm256_permute2f128_ps(u[k], u[k + 4], 0x31);
    for (int k = 0; k < 8; ++k) _mm256_storeu_ps(dst + k * ldd, bias ? _mm256_add_ps(v[k], b) : v[k]);
}

/* transpose_f32 by 8 x 8 blocks; the inner loop runs along the longer side
 * (measured 3-4x faster than the scalar tiles either way round for 128 x 1024,
 * where the other order sends eight 4 KiB-apart rows through one L1 set). */
REFCOMP_TARGET_AVX2 static void transpose_f32_avx2(int64_t r, int64_t c, const float *src,
                                                   int64_t lds, float *dst, int64_t ldd,
                                                   const float *bias) {
    const int64_t r8 = r / 8 * 8, c8 = c / 8 * 8;
    if (c >= r) {
        for (int64_t i0 = 0; i0 < r8; i0 += 8)
            for (int64_t j0 = 0; j0 < c8; j0 += 8)
                transpose8x8(src + i0 * lds + j0, lds, dst + j0 * ldd + i0, ldd, bias ? bias + i0 : NULL);
    } else {
        for (int64_t j0 = 0; j0 < c8; j0 += 8)
            for (int64_t i0 = 0; i0 < r8; i0 += 8)
                transpose8x8(src + i0 * lds + j0, lds, dst + j0 * ldd + i0, ldd, bias ? bias + i0 : NULL);
    }
    /* the edges: columns c8.. of every row, then rows r8.. of the first c8 columns */
    for (int64_t i = 0; i < r; ++i)
        for (int64_t j = c8; j < c; ++j) dst[j * ldd + i] = bias ? src[i * lds + j] + bias[i] : src[i * lds + j];
    for (int64_t i = r8; i < r; ++i)
        for (int64_t j = 0; j < c8; ++j) dst[j * ldd + i] = bias ? src[i * lds + j] + bias[i] : src[i * lds + j];
}
#endif

static void transpose(int isa, int64_t r, int64_t c, const float *src, int64_t lds, float *dst,
                      int64_t ldd, const float *bias) {
#if REFCOMP_X86 && !defined(REFCOMP_NO_SIMD)
    if (isa == REFCOMP_ISA_AVX2 || isa == REFCOMP_ISA_AVX512VNNI) {
        transpose_f32_avx2(r, c, src, lds, dst, ldd, bias);
        return;
    }
#endif
    (void)isa;
    transpose_f32(r, c, src, lds, dst, ldd, bias);
}

int refcomp_csr_linear_f32(int isa, int nthreads, int64_t batch, int64_t in, int64_t out,
                           const int64_t *indptr, const void *indices, int index_type,
                           const float *data, int64_t nblocks, const int64_t *block_ptr,
                           const float *x, int64_t ldx, const float *bias, float *y, int64_t ldy) {
    if (batch < 0 || in < 0 || out < 0) return REFCOMP_EINVAL;
    if (index_type != REFCOMP_INDEX_U16 && index_type != REFCOMP_INDEX_I32) return REFCOMP_EINVAL;
    int r = refcomp__resolve_isa(isa);
    if (r < 0) return r;
    if (batch == 0 || out == 0) return REFCOMP_OK;
    if (!indptr || !y || ldy < out || (in > 0 && (!x || ldx < in))) return REFCOMP_EINVAL;
    /* x^T and y^T in 64-byte aligned scratch: rows of x^T are what each non-zero scales */
    const int64_t ld = (batch + 15) / 16 * 16; /* rows start on a cache line */
    void *xt_mem = NULL, *yt_mem = NULL;
    if (posix_memalign(&xt_mem, 64, sizeof(float) * (size_t)((in ? in : 1) * ld)) != 0) return REFCOMP_ENOMEM;
    if (posix_memalign(&yt_mem, 64, sizeof(float) * (size_t)(out * ld)) != 0) {
        free(xt_mem);
        return REFCOMP_ENOMEM;
    }
    float *xt = (float *)xt_mem, *yt = (float *)yt_mem;
    transpose(r, batch, in, x, ldx, xt, ld, NULL);
    int st = nblocks > 0 && block_ptr
                 ? refcomp_csr_spmm_f32_blocked(r, nthreads, out, batch, indptr, indices, index_type, data,
                                                nblocks, block_ptr, xt, ld, yt, ld)
                 : refcomp_csr_spmm_f32(r, nthreads, out, batch, indptr, indices, index_type, data, xt,
                                        ld, yt, ld);
    if (st == REFCOMP_OK) /* y = yt^T + bias: one float32 addition per output */
        transpose(r, out, batch, yt, ld, y, ldy, bias);
    free(xt_mem);
    free(yt_mem);
    return st;
}
