/*
 * requantize.c -- int32 accumulator -> quantized integer, float or fixed point.
 *
 * The NumPy definitions are refcomp/ops/requantize.py (eq. R1, R2); these
 * functions reproduce them bit for bit:
 *
 * Float (eq. R1):  y = clip(rint_even(f32(acc) * M) + zp, qmin, qmax)
 *   f32(acc) is the round-to-nearest-even conversion (cvtsi2ss/vcvtdq2ps),
 *   the product ONE float32 multiplication (compiled with -ffp-contract=off,
 *   so never fused), rint_even is roundps/rintf in the default rounding mode.
 *   NumPy then adds zp and clips in float64; here the clip is done first
 *   against [qmin - zp, qmax - zp] -- the same thing, because r is an integer
 *   and both bounds are integers (exact in double), and r + zp is exact in
 *   float64 for |r| < 2^53 while any larger r is clipped either way.
 *
 * Fixed point (eq. R2, gemmlowp): SaturatingRoundingDoublingHighMul then
 *   RoundingDivideByPOT, all in integers; int64 where a sum could overflow.
 */
#include <math.h>

#include "internal.h"

#if REFCOMP_X86 && !defined(REFCOMP_NO_SIMD)
#include <immintrin.h>
#endif

static inline int32_t clip_round_f32(int32_t acc, float m, double lo, double hi, int32_t zp) {
    float prod = (float)acc * m;
    double r = (double)rintf(prod);
    if (r < lo) r = lo; /* also maps -inf to lo */
    if (r > hi) r = hi;
    return (int32_t)r + zp; /* r + zp in [qmin, qmax]: no overflow */
}

static void requant_float_scalar(int64_t M, int64_t N, const int32_t *acc, int64_t ld_acc,
                                 const float *mult, const int32_t *zp, int32_t qmin, int32_t qmax,
                                 int32_t *out, int64_t ld_out) {
    for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j)
            out[i * ld_out + j] = clip_round_f32(acc[i * ld_acc + j], mult[j],
                                                 (double)qmin - zp[j], (double)qmax - zp[j], zp[j]);
}

#if REFCOMP_X86 && !defined(REFCOMP_NO_SIMD)
/* 8 lanes at a time; bounds lo/hi are computed in float only when exact
 * (|qmin - zp|, |qmax - zp| < 2^24), which the caller checks. */
REFCOMP_TARGET_AVX2 static void requant_float_avx2(int64_t M, int64_t N, const int32_t *acc,
                                                   int64_t ld_acc, const float *mult,
                                                   const int32_t *zp, int32_t qmin, int32_t qmax,
                                                   int32_t *out, int64_t ld_out) {
    for (int64_t i = 0; i < M; ++i) {
        const int32_t *a = acc + i * ld_acc;
        int32_t *o = out + i * ld_out;
        int64_t j = 0;
        for (; j + 8 <= N; j += 8) {
            __m256i z = _mm256_loadu_si256((const __m256i *)(zp + j));
            __m256 lo = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_set1_epi32(qmin), z));
            __m256 hi = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_set1_epi32(qmax), z));
            __m256 p = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)(a + j))),
                                     _mm256_loadu_ps(mult + j));
            __m256 r = _mm256_round_ps(p, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            /* max/min return the second operand when the first is NaN; r is never NaN */
            r = _mm256_min_ps(_mm256_max_ps(r, lo), hi);
            _mm256_storeu_si256((__m256i *)(o + j), _mm256_add_epi32(_mm256_cvtps_epi32(r), z));
        }
        for (; j < N; ++j)
            o[j] = clip_round_f32(a[j], mult[j], (double)qmin - zp[j], (double)qmax - zp[j], zp[j]);
    }
}
#endif

int refcomp_requantize_float(int isa, int64_t M, int64_t N, const int32_t *acc, int64_t ld_acc,
                             const float *multiplier, const int32_t *zero_point, int32_t qmin,
                             int32_t qmax, int32_t *out, int64_t ld_out) {
    if (M < 0 || N < 0 || qmin > qmax) return REFCOMP_EINVAL;
    isa = refcomp__resolve_isa(isa);
    if (isa < 0) return isa;
    if (M == 0 || N == 0) return REFCOMP_OK;
    if (!acc || !multiplier || !zero_point || !out || ld_acc < N || ld_out < N)
        return REFCOMP_EINVAL;
    for (int64_t j = 0; j < N; ++j) /* the result must fit int32 after adding zp */
        if ((int64_t)qmin - zero_point[j] < INT32_MIN || (int64_t)qmax - zero_point[j] > INT32_MAX)
            return REFCOMP_EINVAL;
#if REFCOMP_X86 && !defined(REFCOMP_NO_SIMD)
    int exact_bounds = 1;
    for (int64_t j = 0; j < N; ++j) {
        int64_t lo = (int64_t)qmin - zero_point[j], hi = (int64_t)qmax - zero_point[j];
        if (lo < -(1 << 24) || hi > (1 << 24)) exact_bounds = 0;
    }
    if (exact_bounds && isa >= REFCOMP_ISA_AVX2) {
        requant_float_avx2(M, N, acc, ld_acc, multiplier, zero_point, qmin, qmax, out, ld_out);
        return REFCOMP_OK;
    }
#endif
    requant_float_scalar(M, N, acc, ld_acc, multiplier, zero_point, qmin, qmax, out, ld_out);
    return REFCOMP_OK;
}

int32_t refcomp_saturating_rounding_doubling_high_mul(int32_t a, int32_t b) {
    if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;
    int64_t ab = (int64_t)a * (int64_t)b;
    int64_t nudge = ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31)); /* C division truncates */
}

int32_t refcomp_rounding_divide_by_pot(int32_t x, int exponent) {
    int64_t mask = ((int64_t)1 << exponent) - 1;
    int64_t remainder = (int64_t)x & mask;
    int64_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    /* arithmetic shift of a negative value: floor division, done in int64 */
    int64_t q = (x >= 0) ? ((int64_t)x >> exponent) : -((-(int64_t)x + mask) >> exponent);
    return (int32_t)(q + (remainder > threshold ? 1 : 0));
}

int refcomp_requantize_fixed_point(int isa, int64_t M, int64_t N, const int32_t *acc,
                                   int64_t ld_acc, const int32_t *multiplier,
                                   const int32_t *shift, const int32_t *zero_point, int32_t qmin,
                                   int32_t qmax, int32_t *out, int64_t ld_out) {
    if (M < 0 || N < 0 || qmin > qmax) return REFCOMP_EINVAL;
    isa = refcomp__resolve_isa(isa); /* validated; one scalar path serves all */
    if (isa < 0) return isa;
    if (M == 0 || N == 0) return REFCOMP_OK;
    if (!acc || !multiplier || !shift || !zero_point || !out || ld_acc < N || ld_out < N)
        return REFCOMP_EINVAL;
    for (int64_t j = 0; j < N; ++j)
        if (shift[j] < -31 || shift[j] > 30) return REFCOMP_EINVAL;
    for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
            int left = shift[j] > 0 ? shift[j] : 0, right = shift[j] > 0 ? 0 : -shift[j];
            int64_t x = (int64_t)acc[i * ld_acc + j] * ((int64_t)1 << left);
            if (x > INT32_MAX) x = INT32_MAX; /* refcomp.ops raises here instead */
            if (x < INT32_MIN) x = INT32_MIN;
            int32_t h = refcomp_saturating_rounding_doubling_high_mul((int32_t)x, multiplier[j]);
            int64_t y = (int64_t)refcomp_rounding_divide_by_pot(h, right) + zero_point[j];
            out[i * ld_out + j] = (int32_t)(y < qmin ? qmin : (y > qmax ? qmax : y));
        }
    return REFCOMP_OK;
}
