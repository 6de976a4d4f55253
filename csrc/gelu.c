/*
 * gelu.c -- GELU (ONNX Gelu-20, approximate = "none") on float32.
 *
 * The NumPy definition is refcomp/ops/gelu.py (eq. G1):
 *     z = f32(x / f32(sqrt 2)),  e = erf(z) rounded to float32,
 *     y = f32(x * f32(0.5 * f32(1 + e)))
 * This file computes the same sequence of float32 operations, with e from a
 * polynomial erf of its own instead of the C library's double erf (about
 * 10 ns per element). Only e differs from the definition; erf_f32 is within
 * 1.13 ulp of the true erf, so e is at most 1 ulp from the definition's
 * (benchmarks/check_gelu_exhaustive.py checks every float32 input), and
 *     |y - y_def| <= 2^-24 |x| + ulp(y_def)                       (eq. G2)
 * (refcomp.h states why; tests/kernels/test_gelu.py tests it).
 *
 * The erf (coefficients fitted by benchmarks/fit_gelu_erf.py):
 *     a = min(|z|, ZMAX)
 *     a <  Z0:  erf(a) = a + a * R(a^2)                 R degree 5
 *     a >= Z0:  erf(a) = 1 - exp(-a^2) * G(ERF_A*a + ERF_B)   G degree 8 (G ~ erfcx)
 *     exp(v) = 2^k (1 + r + r^2 E(r)), k = rint(v log2 e), r = v - k ln2 (two-constant
 *              Cody-Waite; k ln2_hi is exact because ln2_hi has 16 significant bits)
 * and erf(z) takes z's sign. erfc(ZMAX) < 2^-25, so 1 - exp(-a^2) G rounds to
 * exactly 1 at a = ZMAX: y = x for x >= ZMAX sqrt 2, y = -0 for x <= -ZMAX sqrt 2.
 *
 * Scalar and AVX2 evaluate the same polynomials in the same order. The scalar
 * path (compiled with -ffp-contract=off) rounds every multiplication and
 * addition, as the Numba twin does, so those two agree bit for bit; the AVX2
 * path fuses each Horner step (and the exp reduction) into one FMA, which is
 * 1.6x faster (1.07 vs 1.7 ns per element here) and as accurate. The two
 * differ in the last bit of e now and then; each meets eq. G2, so they are
 * within 2 (2^-24 |x| + ulp(y_def)) of each other. An FMA in the scalar path
 * would have to call libm's fmaf on machines without FMA (many ns each).
 *
 * Lanes of one AVX2 vector evaluate both branches and blend.
 * Special values: NaN -> NaN; +inf -> +inf; -inf -> NaN (-inf * 0, as the
 * definition returns).
 */
#include <math.h>
#include <string.h>

#include "internal.h"

#if REFCOMP_X86 && !defined(REFCOMP_NO_SIMD)
#include <immintrin.h>
#endif

/* benchmarks/fit_gelu_erf.py prints these three tables and ERF_A / ERF_B. */
static const float ERF_R[6] = {0.128379151f, -0.376125246f, 0.112821408f, -0.0267789066f,
                               0.005011959f, -0.000609033916f};
static const float ERF_G[9] = {0.217017844f, -0.119305395f, 0.0621986575f, -0.0316139013f,
                               0.0135759609f, -0.00634737127f, 0.00802530348f, 0.00536554493f,
                               0.0038127494f};
static const float EXP_E[5] = {0.49999994f, 0.166665211f, 0.041668389f, 0.00836871564f,
                               0.00138145941f};
#define DEG_E 4 /* degree of E */
#define ERF_A 0.658436239f
#define ERF_B -1.5925926f
#define ERF_Z0 0.9f
#define ERF_ZMAX 3.9375f
#define SQRT2_F32 1.41421354f /* f32(sqrt 2): the divisor the definition uses */
#define LOG2E_F32 1.44269504f
#define LN2_HI 0.693145751953125f /* 16 significant bits: k * LN2_HI is exact for |k| < 2^8 */
#define LN2_LO 1.42860677e-06f
#define RINT_MAGIC 12582912.0f /* 1.5 * 2^23: (t + M) - M rounds t to an integer, ties to even */

#define GELU_TASK 16384 /* elements per thread-pool task (64 KiB of input) */

static inline float erf_small(float a) {
    float w = a * a;
    float p = ERF_R[5];
    p = p * w + ERF_R[4];
    p = p * w + ERF_R[3];
    p = p * w + ERF_R[2];
    p = p * w + ERF_R[1];
    p = p * w + ERF_R[0];
    return a + a * p;
}

static inline float erf_big(float a) {
    float v = -(a * a);
    float kf = (v * LOG2E_F32 + RINT_MAGIC) - RINT_MAGIC; /* k in [-23, 0] since a <= ZMAX */
    float r = (v - kf * LN2_HI) - kf * LN2_LO;
    float p = EXP_E[DEG_E];
    for (int j = DEG_E - 1; j >= 0; --j) p = p * r + EXP_E[j];
    p = (r * r) * p + r + 1.0f;
    uint32_t bits = (uint32_t)((int32_t)kf + 127) << 23; /* 2^k, a normal number */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    float t = a * ERF_A + ERF_B;
    float g = ERF_G[8];
    for (int j = 7; j >= 0; --j) g = g * t + ERF_G[j];
    return 1.0f - (p * scale) * g;
}

static inline float gelu_scalar1(float x) {
    float z = x / SQRT2_F32;
    float a = fabsf(z);
    a = a < ERF_ZMAX ? a : ERF_ZMAX; /* NaN -> ZMAX as _mm256_min_ps does; y stays NaN through x */
    float e = a < ERF_Z0 ? erf_small(a) : erf_big(a);
    e = copysignf(e, z);
    return x * (0.5f * (1.0f + e));
}

static void gelu_scalar(int64_t n, const float *x, float *y) {
    for (int64_t i = 0; i < n; ++i) y[i] = gelu_scalar1(x[i]);
}

#if REFCOMP_X86 && !defined(REFCOMP_NO_SIMD)
REFCOMP_TARGET_AVX2 static inline __m256 horner8(__m256 p, __m256 t, __m256 c) {
    return _mm256_fmadd_ps(p, t, c); /* one rounding; the scalar path rounds p * t, then + c */
}

/* One vector of 8: gelu_scalar1's steps, both branches, blended; Horner steps fused. */
REFCOMP_TARGET_AVX2 static inline __m256 gelu8(__m256 vx) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 z = _mm256_div_ps(vx, _mm256_set1_ps(SQRT2_F32));
    __m256 a = _mm256_min_ps(_mm256_andnot_ps(sign, z), _mm256_set1_ps(ERF_ZMAX));
    __m256 w = _mm256_mul_ps(a, a);
    /* a < Z0 */
    __m256 p = _mm256_set1_ps(ERF_R[5]);
    p = horner8(p, w, _mm256_set1_ps(ERF_R[4]));
    p = horner8(p, w, _mm256_set1_ps(ERF_R[3]));
    p = horner8(p, w, _mm256_set1_ps(ERF_R[2]));
    p = horner8(p, w, _mm256_set1_ps(ERF_R[1]));
    p = horner8(p, w, _mm256_set1_ps(ERF_R[0]));
    __m256 es = _mm256_fmadd_ps(a, p, a);
    /* a >= Z0: exp(-a^2) */
    __m256 v = _mm256_xor_ps(w, sign);
    __m256 magic = _mm256_set1_ps(RINT_MAGIC);
    __m256 kf = _mm256_sub_ps(_mm256_fmadd_ps(v, _mm256_set1_ps(LOG2E_F32), magic), magic);
    __m256 r = _mm256_fnmadd_ps(kf, _mm256_set1_ps(LN2_LO), _mm256_fnmadd_ps(kf, _mm256_set1_ps(LN2_HI), v));
    __m256 q = _mm256_set1_ps(EXP_E[DEG_E]);
    for (int j = DEG_E - 1; j >= 0; --j) q = horner8(q, r, _mm256_set1_ps(EXP_E[j]));
    q = _mm256_add_ps(_mm256_fmadd_ps(_mm256_mul_ps(r, r), q, r), _mm256_set1_ps(1.0f));
    __m256i k = _mm256_cvtps_epi32(kf); /* kf is an integer: exact */
    __m256 scale = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k, _mm256_set1_epi32(127)), 23));
    /* times G(t) */
    __m256 t = _mm256_fmadd_ps(a, _mm256_set1_ps(ERF_A), _mm256_set1_ps(ERF_B));
    __m256 g = _mm256_set1_ps(ERF_G[8]);
    for (int j = 7; j >= 0; --j) g = horner8(g, t, _mm256_set1_ps(ERF_G[j]));
    __m256 eb = _mm256_fnmadd_ps(_mm256_mul_ps(q, scale), g, _mm256_set1_ps(1.0f));
    __m256 e = _mm256_blendv_ps(eb, es, _mm256_cmp_ps(a, _mm256_set1_ps(ERF_Z0), _CMP_LT_OQ));
    e = _mm256_or_ps(e, _mm256_and_ps(z, sign)); /* e >= 0 here: copysign */
    __m256 c = _mm256_mul_ps(_mm256_set1_ps(0.5f), _mm256_add_ps(_mm256_set1_ps(1.0f), e));
    return _mm256_mul_ps(vx, c);
}

REFCOMP_TARGET_AVX2 static void gelu_avx2(int64_t n, const float *x, float *y) {
    int64_t i = 0;
    /* two independent vectors per step: the polynomial chains are latency bound
     * (~90 cycles from load to store), and interleaving them keeps both FP add
     * and both FP multiply pipes busy */
    for (; i + 16 <= n; i += 16) {
        __m256 y0 = gelu8(_mm256_loadu_ps(x + i)), y1 = gelu8(_mm256_loadu_ps(x + i + 8));
        _mm256_storeu_ps(y + i, y0);
        _mm256_storeu_ps(y + i + 8, y1);
    }
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, gelu8(_mm256_loadu_ps(x + i)));
    gelu_scalar(n - i, x + i, y + i); /* the last n mod 8: unfused, within eq. G2 like the rest */
}
#endif

typedef struct {
    int isa;
    int64_t n;
    const float *x;
    float *y;
} gelu_ctx;

static void gelu_task(void *vctx, int64_t task) {
    const gelu_ctx *c = (const gelu_ctx *)vctx;
    int64_t lo = task * GELU_TASK, len = c->n - lo < GELU_TASK ? c->n - lo : GELU_TASK;
#if REFCOMP_X86 && !defined(REFCOMP_NO_SIMD)
    if (c->isa >= REFCOMP_ISA_AVX2) {
        gelu_avx2(len, c->x + lo, c->y + lo);
        return;
    }
#endif
    gelu_scalar(len, c->x + lo, c->y + lo);
}

int refcomp_gelu_f32(int isa, int nthreads, int64_t n, const float *x, float *y) {
    if (n < 0) return REFCOMP_EINVAL;
    isa = refcomp__resolve_isa(isa);
    if (isa < 0) return isa;
    if (n == 0) return REFCOMP_OK;
    if (!x || !y) return REFCOMP_EINVAL;
    gelu_ctx ctx = {isa, n, x, y};
    return refcomp__parallel_for(nthreads, (n + GELU_TASK - 1) / GELU_TASK, gelu_task, &ctx);
}
