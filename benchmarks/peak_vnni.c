/*
 * peak_vnni.c -- the single-core ceiling the int8 GEMM is measured against.
 *
 *   cc -O2 benchmarks/peak_vnni.c -o /tmp/peak_vnni && /tmp/peak_vnni
 *
 * 24 independent vpdpbusd chains on registers only (no memory operands), as
 * many as the GEMM's 6 x 64 tile keeps: the rate at which one core can issue
 * the instruction, each doing 16 lanes x 4 = 64 multiply-adds (128 ops).
 * Also the float32 FMA rate (12 chains of zmm FMAs) for the sparse kernel.
 * Prints the best of 5 one-second-ish runs (process CPU time). Needs a CPU
 * with AVX-512 VNNI; the target attributes keep the rest of the file generic.
 */
#define _POSIX_C_SOURCE 200809L
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

#define DP(i) "vpdpbusd %[x], %[y], %[a" #i "]\n\t"
#define ACC(i) [a##i] "+v"(a##i)

__attribute__((target("avx512f,avx512bw,avx512vnni"), noinline)) static int vnni_loop(long n) {
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0,
            a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
    __m512i b0 = a0, b1 = a0, b2 = a0, b3 = a0, b4 = a0, b5 = a0, b6 = a0, b7 = a0, b8 = a0,
            b9 = a0, b10 = a0, b11 = a0;
    const __m512i x = _mm512_set1_epi8(3), y = _mm512_set1_epi8(5);
    for (long i = 0; i < n; ++i) {
        /* an asm statement takes at most 30 operands: two of 12 chains each */
        __asm__ volatile(DP(0) DP(1) DP(2) DP(3) DP(4) DP(5) DP(6) DP(7) DP(8) DP(9) DP(10) DP(11)
                         : ACC(0), ACC(1), ACC(2), ACC(3), ACC(4), ACC(5), ACC(6), ACC(7), ACC(8),
                           ACC(9), ACC(10), ACC(11)
                         : [x] "v"(x), [y] "v"(y));
        __asm__ volatile(DP(0) DP(1) DP(2) DP(3) DP(4) DP(5) DP(6) DP(7) DP(8) DP(9) DP(10) DP(11)
                         : [a0] "+v"(b0), [a1] "+v"(b1), [a2] "+v"(b2), [a3] "+v"(b3),
                           [a4] "+v"(b4), [a5] "+v"(b5), [a6] "+v"(b6), [a7] "+v"(b7),
                           [a8] "+v"(b8), [a9] "+v"(b9), [a10] "+v"(b10), [a11] "+v"(b11)
                         : [x] "v"(x), [y] "v"(y));
    }
    __m512i s = _mm512_add_epi32(a0, b0);
    s = _mm512_add_epi32(s, _mm512_add_epi32(a1, b1));
    s = _mm512_add_epi32(s, _mm512_add_epi32(a2, b2));
    s = _mm512_add_epi32(s, _mm512_add_epi32(a3, b3));
    s = _mm512_add_epi32(s, _mm512_add_epi32(a4, b4));
    s = _mm512_add_epi32(s, _mm512_add_epi32(a5, b5));
    s = _mm512_add_epi32(s, _mm512_add_epi32(a6, b6));
    s = _mm512_add_epi32(s, _mm512_add_epi32(a7, b7));
    s = _mm512_add_epi32(s, _mm512_add_epi32(a8, b8));
    s = _mm512_add_epi32(s, _mm512_add_epi32(a9, b9));
    s = _mm512_add_epi32(s, _mm512_add_epi32(a10, b10));
    s = _mm512_add_epi32(s, _mm512_add_epi32(a11, b11));
    return _mm512_reduce_add_epi32(s);
}

#define FMA(i) "vfmadd231ps %[x], %[y], %[a" #i "]\n\t"

__attribute__((target("avx512f"), noinline)) static float fma_loop(long n) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0,
           a8 = a0, a9 = a0, a10 = a0, a11 = a0;
    const __m512 x = _mm512_set1_ps(1e-3f), y = _mm512_set1_ps(1e-3f);
    for (long i = 0; i < n; ++i)
        __asm__ volatile(FMA(0) FMA(1) FMA(2) FMA(3) FMA(4) FMA(5) FMA(6) FMA(7) FMA(8) FMA(9) FMA(10) FMA(11)
                         : ACC(0), ACC(1), ACC(2), ACC(3), ACC(4), ACC(5), ACC(6), ACC(7), ACC(8),
                           ACC(9), ACC(10), ACC(11)
                         : [x] "v"(x), [y] "v"(y));
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    return _mm512_reduce_add_ps(s);
}

int main(void) {
    const long n = 20000000;
    double best_dp = 1e30, best_fma = 1e30;
    long sink = 0;
    for (int rep = 0; rep < 5; ++rep) {
        double t = now();
        sink += vnni_loop(n);
        t = now() - t;
        if (t < best_dp) best_dp = t;
        t = now();
        sink += (long)fma_loop(n);
        t = now() - t;
        if (t < best_fma) best_fma = t;
    }
    const double dp = 24.0 * (double)n / best_dp, fm = 12.0 * (double)n / best_fma;
    printf("vpdpbusd: %.2f G/s = %.1f GOP/s (int8, 128 ops each)\n", dp / 1e9, dp * 128 / 1e9);
    printf("vfmadd231ps zmm: %.2f G/s = %.1f GFLOP/s (float32, 32 flops each)\n", fm / 1e9, fm * 32 / 1e9);
    return sink == 42; /* keeps the loops */
}
