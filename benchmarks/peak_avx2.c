/*
 * peak_avx2.c -- the single-core ceiling of the exact AVX2 GEMM's arithmetic.
 *
 *   cc -O2 benchmarks/peak_avx2.c -o /tmp/peak_avx2 && /tmp/peak_avx2
 *
 * Register-only loops (no memory operands) of what the AVX2 micro-kernel
 * issues per row and k pair: vpmaddwd (16 int16 products summed in pairs
 * into 8 int32 lanes: 16 multiply-adds, 32 ops per ymm) and the vpaddd that
 * accumulates each result. Three
 * loops: vpmaddwd alone (its issue rate), vpmaddwd + vpaddd pairs in the
 * kernel's order (two products, then their two additions), and 7 products
 * before their 7 additions. GOP/s counts 32 ops per vpmaddwd. Best of 5
 * runs, process CPU time. Needs AVX2.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

#define MA(d) "vpmaddwd %%ymm14, %%ymm15, %%ymm" #d "\n\t"
#define AD(d, s) "vpaddd %%ymm" #s ", %%ymm" #d ", %%ymm" #d "\n\t"
#define CLOBBER "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", \
                "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "cc"

__attribute__((target("avx2"), noinline)) static void madd_only(long n) {
    __asm__ volatile("1:\n\t" MA(0) MA(1) MA(2) MA(3) MA(4) MA(5) MA(6) MA(7) MA(8) MA(9) MA(10) MA(11)
                     "dec %0\n\tjnz 1b\n\tvzeroupper" : "+r"(n) : : CLOBBER);
}
__attribute__((target("avx2"), noinline)) static void madd_add_2(long n) {
    __asm__ volatile("1:\n\t" MA(0) MA(1) AD(6, 0) AD(7, 1) MA(2) MA(3) AD(8, 2) AD(9, 3) MA(4) MA(5)
                     AD(10, 4) AD(11, 5) "dec %0\n\tjnz 1b\n\tvzeroupper" : "+r"(n) : : CLOBBER);
}
__attribute__((target("avx2"), noinline)) static void madd_add_7(long n) {
    __asm__ volatile("1:\n\t" MA(0) MA(1) MA(2) MA(3) MA(4) MA(5) MA(12) AD(6, 0) AD(7, 1) AD(8, 2)
                     AD(9, 3) AD(10, 4) AD(11, 5) AD(13, 12) "dec %0\n\tjnz 1b\n\tvzeroupper"
                     : "+r"(n) : : CLOBBER);
}

static void run(const char *name, void (*f)(long), double madds_per_iter) {
    const long n = 20000000;
    double best = 1e30;
    for (int r = 0; r < 5; ++r) {
        double t = now();
        f(n);
        t = now() - t;
        if (t < best) best = t;
    }
    const double rate = (double)n * madds_per_iter / best;
    printf("%-28s %.2f vpmaddwd/ns  %.1f GOP/s\n", name, rate / 1e9, rate * 32.0 / 1e9);
}

int main(void) {
    run("vpmaddwd only", madd_only, 12);
    run("2 vpmaddwd, 2 vpaddd", madd_add_2, 6);
    run("7 vpmaddwd, 7 vpaddd", madd_add_7, 7);
    return 0;
}
