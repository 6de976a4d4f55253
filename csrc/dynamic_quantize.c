/*
 * dynamic_quantize.c -- per-row dynamic uint8 quantization (refcomp.ops.dynamic_quantize_rows),
 * bit for bit the NumPy definition. For each row m of x (float32, finite):
 *
 *   r_max = max(0, max_k x[m,k]),  r_min = min(0, min_k x[m,k])
 *   scale[m] = (r_max - r_min) / 255   (1 / 255 when r_max == r_min)          (DQ1)
 *   zp[m]    = rint(clip(0 - r_min / scale[m], 0, 255))                        (DQ2)
 *   y[m,k]   = clip(rint(x[m,k] / scale[m]) + zp[m], 0, 255)                   (DQ3)
 *
 * Why the bits match: every step is one IEEE float32 operation, the same one
 * NumPy does -- subtraction, division (vdivps is correctly rounded like
 * '/'), round to nearest even (rintf in the default rounding mode;
 * vroundps with _MM_FROUND_TO_NEAREST_INT), the addition of an integer-valued
 * float, min/max -- with no contraction (-ffp-contract=off) and no
 * reciprocal. The maximum and minimum are exact whatever the order of the
 * comparisons; only the sign of a zero range end can differ from NumPy's,
 * and it never reaches a result (r_max - (-0) = r_max - 0, 0 - (-0) / s =
 * 0 - 0 / s = +0). y is an integer-valued float in [0, 255]: its
 * conversion is exact.
 * Paths: scalar, and AVX2 (also taken for REFCOMP_ISA_AVX512VNNI): 8 lanes
 * of the same operations, the last K mod 32 of a row through the scalar loop.
 */
#include <math.h>

#include "internal.h"

#if REFCOMP_X86 && !defined(REFCOMP_NO_SIMD)
#include <immintrin.h>
#endif

#define DQ_TASK_ELEMS 65536 /* elements per task: a second thread pays off above ~this */

/* DQ1 and DQ2 from the row's max and min (each already widened to contain 0). */
static void dq_params(float hi, float lo, float *scale, float *zp) {
    const float span = hi == lo ? 1.0f : hi - lo;
    const float s = span / 255.0f;
    float z = 0.0f - lo / s;
    z = z < 0.0f ? 0.0f : z;
    z = z > 255.0f ? 255.0f : z;
    *scale = s;
    *zp = rintf(z);
}

/* DQ3 for x[k0..K) of one row. */
static void dq3_scalar(int64_t k0, int64_t K, const float *x, float s, float zp, uint8_t *y) {
    for (int64_t k = k0; k < K; ++k) {
        float v = rintf(x[k] / s) + zp;
        v = v < 0.0f ? 0.0f : v;
        v = v > 255.0f ? 255.0f : v;
        y[k] = (uint8_t)v;
    }
}

static void dq_row_scalar(int64_t K, const float *x, uint8_t *y, float *scale, uint8_t *zero_point) {
    float hi = 0.0f, lo = 0.0f;
    for (int64_t k = 0; k < K; ++k) {
        hi = x[k] > hi ? x[k] : hi;
        lo = x[k] < lo ? x[k] : lo;
    }
    float s, zp;
    dq_params(hi, lo, &s, &zp);
    dq3_scalar(0, K, x, s, zp, y);
    *scale = s;
    *zero_point = (uint8_t)zp;
}

#if REFCOMP_X86 && !defined(REFCOMP_NO_SIMD)
REFCOMP_TARGET_AVX2 static inline float hmax8(__m256 v) {
    float t[8];
    _mm256_storeu_ps(t, v);
    float m = t[0];
    for (int i = 1; i < 8; ++i) m = t[i] > m ? t[i] : m;
    return m;
}
REFCOMP_TARGET_AVX2 static inline float hmin8(__m256 v) {
    float t[8];
    _mm256_storeu_ps(t, v);
    float m = t[0];
    for (int i = 1; i < 8; ++i) m = t[i] < m ? t[i] : m;
    return m;
}

/* rint(x / s) + zp, clipped, as int32 lanes (exact: integer values in [0, 255]) */
REFCOMP_TARGET_AVX2 static inline __m256i dq3_8(__m256 x, __m256 s, __m256 zp) {
    __m256 v = _mm256_round_ps(_mm256_div_ps(x, s), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    v = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(v, zp), _mm256_setzero_ps()), _mm256_set1_ps(255.0f));
    return _mm256_cvttps_epi32(v);
}

REFCOMP_TARGET_AVX2 static void dq_row_avx2(int64_t K, const float *x, uint8_t *y, float *scale,
                                            uint8_t *zero_point) {
    /* max / min from 0 (the widened range), two vectors each to hide latency */
    __m256 h0 = _mm256_setzero_ps(), h1 = h0, l0 = h0, l1 = h0;
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) {
        const __m256 a = _mm256_loadu_ps(x + k), b = _mm256_loadu_ps(x + k + 8);
        h0 = _mm256_max_ps(h0, a);
        h1 = _mm256_max_ps(h1, b);
        l0 = _mm256_min_ps(l0, a);
        l1 = _mm256_min_ps(l1, b);
    }
    float hi = hmax8(_mm256_max_ps(h0, h1)), lo = hmin8(_mm256_min_ps(l0, l1));
    for (; k < K; ++k) {
        hi = x[k] > hi ? x[k] : hi;
        lo = x[k] < lo ? x[k] : lo;
    }
    float s, zp;
    dq_params(hi, lo, &s, &zp);
    const __m256 sv = _mm256_set1_ps(s), zv = _mm256_set1_ps(zp);
    /* bytes in order: packus of 32-bit then 16-bit lanes interleaves the 128-bit
     * halves of the four vectors; vpermd puts the 4-byte groups back */
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (k = 0; k + 32 <= K; k += 32) {
        const __m256i a = _mm256_packus_epi32(dq3_8(_mm256_loadu_ps(x + k), sv, zv),
                                              dq3_8(_mm256_loadu_ps(x + k + 8), sv, zv));
        const __m256i b = _mm256_packus_epi32(dq3_8(_mm256_loadu_ps(x + k + 16), sv, zv),
                                              dq3_8(_mm256_loadu_ps(x + k + 24), sv, zv));
        _mm256_storeu_si256((__m256i *)(void *)(y + k),
                            _mm256_permutevar8x32_epi32(_mm256_packus_epi16(a, b), order));
    }
    dq3_scalar(k, K, x, s, zp, y);
    *scale = s;
    *zero_point = (uint8_t)zp;
}
#endif

typedef struct {
    int isa;
    int64_t M, K, ldx, ldy, rows_per_task;
    const float *x;
    uint8_t *y;
    float *scale;
    uint8_t *zp;
} dq_ctx;

static void dq_task(void *vctx, int64_t task) {
    const dq_ctx *c = (const dq_ctx *)vctx;
    const int64_t m0 = task * c->rows_per_task;
    const int64_t m1 = m0 + c->rows_per_task < c->M ? m0 + c->rows_per_task : c->M;
    for (int64_t m = m0; m < m1; ++m) {
#if REFCOMP_X86 && !defined(REFCOMP_NO_SIMD)
        if (c->isa >= REFCOMP_ISA_AVX2) {
            dq_row_avx2(c->K, c->x + m * c->ldx, c->y + m * c->ldy, c->scale + m, c->zp + m);
            continue;
        }
#endif
        dq_row_scalar(c->K, c->x + m * c->ldx, c->y + m * c->ldy, c->scale + m, c->zp + m);
    }
}

int refcomp_dynamic_quantize_rows_f32(int isa, int nthreads, int64_t M, int64_t K, const float *x,
                                      int64_t ldx, uint8_t *y, int64_t ldy, float *scale,
                                      uint8_t *zero_point) {
    if (M < 0 || K < 1 || ldx < K || ldy < K) return REFCOMP_EINVAL;
    isa = refcomp__resolve_isa(isa);
    if (isa < 0) return isa;
    if (M == 0) return REFCOMP_OK;
    if (!x || !y || !scale || !zero_point) return REFCOMP_EINVAL;
    int64_t rows = DQ_TASK_ELEMS / K;
    if (rows < 1) rows = 1;
    dq_ctx ctx = {isa, M, K, ldx, ldy, rows, x, y, scale, zero_point};
    return refcomp__parallel_for(nthreads, (M + rows - 1) / rows, dq_task, &ctx);
}
