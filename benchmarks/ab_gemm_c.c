/*
 * ab_gemm_c.c -- A/B of refcomp_matmul_integer_packed between builds of the
 * C library, in one process: each librefcomp.so is dlopen()ed with
 * RTLD_LOCAL (so the same symbol names do not clash) and the builds are timed
 * round-robin, best loop kept, process CPU time, one thread.
 *
 *   make -C csrc BUILD=/tmp/old ...   (the older checkout's csrc) ; make -C csrc BUILD=/tmp/new
 *   cc -O2 benchmarks/ab_gemm_c.c -ldl -o /tmp/ab_gemm_c
 *   /tmp/ab_gemm_c ROUNDS /tmp/old/librefcomp.so /tmp/new/librefcomp.so [M K N ...]
 *
 * uint8 A (zero point 128 for every row) x int8 B (zero point 0), B packed
 * once per build, no bias; GOP/s = 2 M K N / t. The outputs of the builds
 * are compared ("same" = identical int32 bits). Default shapes: the FFN of
 * all-MiniLM-L6-v2 on a [32, 128] batch and on one sequence.
 */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct refcomp_packed_b refcomp_packed_b;
typedef int (*pack_fn)(int64_t, int64_t, const void *, int64_t, int, refcomp_packed_b **);
typedef int (*gemm_fn)(int, int, int64_t, const void *, int64_t, int, const int32_t *,
                       const refcomp_packed_b *, const int32_t *, const int32_t *, int32_t *, int64_t);

static double cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

#define MAXLIB 8

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s ROUNDS LIB.so [LIB.so ...] [-- M K N ...]\n", argv[0]);
        return 2;
    }
    const int rounds = atoi(argv[1]);
    int nlib = 0, a = 2;
    pack_fn pack[MAXLIB];
    gemm_fn gemm[MAXLIB];
    for (; a < argc && strcmp(argv[a], "--") != 0 && nlib < MAXLIB; ++a, ++nlib) {
        void *h = dlopen(argv[a], RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            fprintf(stderr, "%s\n", dlerror());
            return 1;
        }
        pack[nlib] = (pack_fn)dlsym(h, "refcomp_pack_b");
        gemm[nlib] = (gemm_fn)dlsym(h, "refcomp_matmul_integer_packed");
        if (!pack[nlib] || !gemm[nlib]) {
            fprintf(stderr, "%s: symbols missing\n", argv[a]);
            return 1;
        }
        printf("[%d] %s\n", nlib, argv[a]);
    }
    int64_t deflt[] = {4096, 384, 1536, 4096, 1536, 384, 128, 384, 1536, 128, 1536, 384};
    int64_t *shapes = deflt, nshapes = 4;
    if (a < argc && strcmp(argv[a], "--") == 0 && (argc - a - 1) % 3 == 0 && argc - a - 1 > 0) {
        nshapes = (argc - a - 1) / 3;
        shapes = malloc(sizeof(int64_t) * 3 * (size_t)nshapes);
        for (int64_t i = 0; i < 3 * nshapes; ++i) shapes[i] = atoll(argv[a + 1 + i]);
    }
    srand(1);
    for (int64_t s = 0; s < nshapes; ++s) {
        const int64_t M = shapes[3 * s], K = shapes[3 * s + 1], N = shapes[3 * s + 2];
        uint8_t *A = malloc((size_t)(M * K)), *B = malloc((size_t)(K * N));
        int32_t *za = malloc(sizeof(int32_t) * (size_t)M);
        for (int64_t i = 0; i < M * K; ++i) A[i] = (uint8_t)rand();
        for (int64_t i = 0; i < K * N; ++i) B[i] = (uint8_t)rand();
        for (int64_t i = 0; i < M; ++i) za[i] = 128;
        int32_t *C[MAXLIB];
        refcomp_packed_b *P[MAXLIB];
        double best[MAXLIB];
        for (int l = 0; l < nlib; ++l) {
            C[l] = malloc(sizeof(int32_t) * (size_t)(M * N));
            if (pack[l](K, N, B, N, 1, &P[l]) != 0) return 1;
            best[l] = 1e30;
        }
        for (int r = 0; r < rounds; ++r)
            for (int l = 0; l < nlib; ++l) {
                int reps = 0;
                double t0 = cpu_seconds(), t;
                do {
                    if (gemm[l](0, 1, M, A, K, 0, za, P[l], NULL, NULL, C[l], N) != 0) return 1;
                    ++reps;
                    t = cpu_seconds() - t0;
                } while (t < 0.25);
                if (t / reps < best[l]) best[l] = t / reps;
            }
        printf("%lldx%lldx%lld:", (long long)M, (long long)K, (long long)N);
        for (int l = 0; l < nlib; ++l) printf("  [%d] %.1f GOP/s", l, 2.0 * (double)(M * K * N) / best[l] / 1e9);
        for (int l = 1; l < nlib; ++l)
            printf("  [%d] %s", l, memcmp(C[0], C[l], sizeof(int32_t) * (size_t)(M * N)) ? "DIFFERS" : "same");
        printf("\n");
        fflush(stdout);
        free(A); free(B); free(za);
        for (int l = 0; l < nlib; ++l) free(C[l]);
    }
    return 0;
}
