/*
 * test_driver.c -- checks every ISA path of the C library against naive
 * int64 / double references, on random and extreme inputs. Run by
 * `make test` and, under AddressSanitizer + UBSan, by `make sanitize`.
 * Exit status 0 when every check passes.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h" /* refcomp.h + the pack_b cross-path check */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) { /* xorshift64*: deterministic, no global libc state */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 2685821657736338717ull) >> 32);
}

static int failures = 0;
#define CHECK(cond, ...)                                   \
    do {                                                   \
        if (!(cond)) {                                     \
            if (failures++ < 20) {                         \
                fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
                fprintf(stderr, __VA_ARGS__);              \
                fputc('\n', stderr);                       \
            }                                              \
        }                                                  \
    } while (0)

/* mode 0 random, 1 max (255 / 127), 2 min (0 / -128), 3 alternating extremes */
static void fill_bytes(uint8_t *p, int64_t n, int is_signed, int mode) {
    for (int64_t i = 0; i < n; ++i) {
        uint8_t hi = is_signed ? 127 : 255, lo = is_signed ? (uint8_t)0x80 : 0;
        switch (mode) {
        case 1: p[i] = hi; break;
        case 2: p[i] = lo; break;
        case 3: p[i] = (rnd() & 1) ? hi : lo; break;
        default: p[i] = (uint8_t)rnd();
        }
    }
}

static int64_t val(uint8_t b, int is_signed) { return is_signed ? (int64_t)(int8_t)b : (int64_t)b; }

static void check_gemm(int64_t M, int64_t K, int64_t N, int as, int bs, int mode, int zp_mode) {
    int64_t lda = K + 3, ldb = N + 5, ldc = N + 2; /* non-trivial leading dims */
    uint8_t *A = malloc((size_t)(M * lda) + 1), *B = malloc((size_t)(K * ldb) + 1);
    int32_t *za = malloc(sizeof(int32_t) * (size_t)(M + 1)), *zb = malloc(sizeof(int32_t) * (size_t)(N + 1));
    int32_t *bias = malloc(sizeof(int32_t) * (size_t)(N + 1));
    int32_t *C = malloc(sizeof(int32_t) * (size_t)(M * ldc + 1));
    int64_t *ref = malloc(sizeof(int64_t) * (size_t)(M * N + 1));
    fill_bytes(A, M * lda, as, mode);
    fill_bytes(B, K * ldb, bs, mode == 3 ? 3 : (mode ? 3 - mode : 0)); /* opposite extremes */
    /* zp_mode 0: zero points 0; 1: random per row / column; 2: one random
     * value for all rows and one for all columns (the fused-epilogue path) */
    const int32_t za0 = (int32_t)val((uint8_t)rnd(), as), zb0 = (int32_t)val((uint8_t)rnd(), bs);
    for (int64_t i = 0; i < M; ++i)
        za[i] = zp_mode == 0 ? 0 : zp_mode == 2 ? za0 : (int32_t)val((uint8_t)rnd(), as);
    for (int64_t j = 0; j < N; ++j) {
        zb[j] = zp_mode == 0 ? 0 : zp_mode == 2 ? zb0 : (int32_t)val((uint8_t)rnd(), bs);
        bias[j] = (int32_t)(rnd() % 2001) - 1000;
    }
    for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
            int64_t s = bias[j];
            for (int64_t k = 0; k < K; ++k)
                s += (val(A[i * lda + k], as) - za[i]) * (val(B[k * ldb + j], bs) - zb[j]);
            ref[i * N + j] = s;
        }
    for (int isa = REFCOMP_ISA_SCALAR; isa <= REFCOMP_ISA_AVX512VNNI; ++isa) {
        if (!refcomp_isa_supported(isa)) continue;
        for (int threads = 1; threads <= 2; ++threads) {
            memset(C, 0x55, sizeof(int32_t) * (size_t)(M * ldc));
            int st = refcomp_matmul_integer(isa, threads, M, K, N, A, lda, as, za, B, ldb, bs, zb,
                                            bias, C, ldc);
            CHECK(st == REFCOMP_OK, "status %d", st);
            for (int64_t i = 0; i < M; ++i)
                for (int64_t j = 0; j < N; ++j) {
                    int64_t r = ref[i * N + j];
                    if (r < INT32_MIN || r > INT32_MAX) continue; /* outside the contract */
                    CHECK(C[i * ldc + j] == r, "gemm %s t=%d M=%lld K=%lld N=%lld as=%d bs=%d mode=%d "
                          "[%lld,%lld] got %d want %lld", refcomp_isa_name(isa), threads,
                          (long long)M, (long long)K, (long long)N, as, bs, mode, (long long)i,
                          (long long)j, C[i * ldc + j], (long long)r);
                }
        }
    }
    /* every packing path writes its layout (AVX2: int16 pairs, the others
     * bytes; internal.h) with the right column sums, and every path's kernel
     * multiplies every pack: the byte-layout AVX2 kernel serves an AVX2 call
     * on a VNNI-made pack, the pair kernels a scalar or VNNI call on an
     * AVX2-made one */
    for (int pisa = REFCOMP_ISA_SCALAR; pisa <= REFCOMP_ISA_AVX512VNNI; ++pisa) {
        refcomp_packed_b *q = NULL;
        if (!refcomp_isa_supported(pisa)) continue;
        CHECK(refcomp__pack_b_isa(pisa, K, N, B, ldb, bs, &q) == REFCOMP_OK, "pack %s", refcomp_isa_name(pisa));
        if (!q) continue;
        CHECK(refcomp_packed_b_rows(q) == K && refcomp_packed_b_cols(q) == N, "packed dims");
        size_t nbytes;
        const uint32_t *colsum;
        int layout;
        const uint8_t *d = refcomp__packed_b_data(q, &nbytes, &colsum, &layout);
        const int pairs = pisa == REFCOMP_ISA_AVX2;
        CHECK(layout == (pairs ? REFCOMP__LAYOUT_I16X2 : REFCOMP__LAYOUT_U8X4), "layout of %s",
              refcomp_isa_name(pisa));
        const int64_t kg = (K + 3) / 4, cols = pairs ? 16 : 64, nb = (N + cols - 1) / cols;
        const size_t want_bytes = (size_t)(nb * kg * cols * 4) * (pairs ? 2 : 1);
        CHECK(nbytes == want_bytes, "packed size %zu, want %zu (%s)", nbytes, want_bytes, refcomp_isa_name(pisa));
        int bad = 0;
        for (int64_t blk = 0; nbytes == want_bytes && blk < nb; ++blk)
            for (int64_t g = 0; g < kg; ++g)
                for (int64_t c = 0; c < cols; ++c)
                    for (int q4 = 0; q4 < 4; ++q4) {
                        const int64_t k = 4 * g + q4, j = blk * cols + c;
                        const unsigned want = k < K && j < N ? (uint8_t)(B[k * ldb + j] ^ (bs ? 0x80 : 0)) : 0;
                        unsigned got;
                        if (pairs) {
                            int16_t v;
                            memcpy(&v, d + 2 * ((((blk * kg + g) * 2 + q4 / 2) * 16 + c) * 2 + q4 % 2), 2);
                            got = (unsigned)(uint16_t)v;
                        } else {
                            got = d[((blk * kg + g) * 64 + c) * 4 + q4];
                        }
                        bad += got != want;
                    }
        CHECK(bad == 0, "%d packed values wrong (%s)", bad, refcomp_isa_name(pisa));
        for (int64_t j = 0; j < N; ++j) {
            uint32_t s = 0;
            for (int64_t k = 0; k < K; ++k) s += (uint8_t)(B[k * ldb + j] ^ (bs ? 0x80 : 0));
            CHECK(colsum[j] == s, "column sum %lld (%s)", (long long)j, refcomp_isa_name(pisa));
        }
        for (int isa = REFCOMP_ISA_SCALAR; isa <= REFCOMP_ISA_AVX512VNNI; ++isa) {
            if (!refcomp_isa_supported(isa)) continue;
            memset(C, 0x55, sizeof(int32_t) * (size_t)(M * ldc));
            CHECK(refcomp_matmul_integer_packed(isa, 1, M, A, lda, as, za, q, zb, bias, C, ldc) == REFCOMP_OK,
                  "packed status");
            for (int64_t i = 0; i < M; ++i)
                for (int64_t j = 0; j < N; ++j) {
                    int64_t r = ref[i * N + j];
                    if (r >= INT32_MIN && r <= INT32_MAX)
                        CHECK(C[i * ldc + j] == r, "packed gemm, pack %s, run %s, M=%lld K=%lld N=%lld [%lld,%lld]",
                              refcomp_isa_name(pisa), refcomp_isa_name(isa), (long long)M, (long long)K,
                              (long long)N, (long long)i, (long long)j);
                }
        }
        refcomp_packed_b_free(q);
    }
    free(A); free(B); free(za); free(zb); free(bias); free(C); free(ref);
}

/* refcomp_dynamic_quantize_rows_f32 on every path against the definition
 * written out here step by step in float32 (volatile: one rounding per
 * step, as NumPy), on rows with every kind of range, ties of the rounding
 * (x / scale = n + 0.5) and lengths around the vector widths */
static void check_dynamic_quantize(void) {
    const int64_t M = 23, K = 71, ldx = K + 3, ldy = K + 5;
    float *x = malloc(sizeof(float) * (size_t)(M * ldx));
    uint8_t *y = malloc((size_t)(M * ldy)), *zp = malloc((size_t)M);
    float *sc = malloc(sizeof(float) * (size_t)M);
    for (int64_t m = 0; m < M; ++m)
        for (int64_t k = 0; k < ldx; ++k) {
            float v = (float)((int)(rnd() % 20001) - 10000) / 997.0f;
            switch (m % 6) {
            case 1: v = v < 0 ? -v : v; break;       /* all >= 0: zero point 0 */
            case 2: v = v > 0 ? -v : v; break;       /* all <= 0: zero point 255 */
            case 3: v = 0.0f; break;                 /* all 0: scale 1 / 255 */
            case 4: v = (float)((int)(rnd() % 511) - 255) * 0.5f; break; /* halves: ties */
            case 5: v = (k % 7) ? 0.0f : (float)(int)(rnd() % 3) - 1.0f; break;
            default: break;
            }
            x[m * ldx + k] = v;
        }
    for (int isa = REFCOMP_ISA_SCALAR; isa <= REFCOMP_ISA_AVX512VNNI; ++isa) {
        if (!refcomp_isa_supported(isa)) continue;
        for (int64_t kk = 1; kk <= K; kk += (kk < 40 ? 1 : 15)) /* row lengths 1..40, then 55, 70 */
            for (int threads = 1; threads <= 2; ++threads) {
                memset(y, 0xAB, (size_t)(M * ldy));
                CHECK(refcomp_dynamic_quantize_rows_f32(isa, threads, M, kk, x, ldx, y, ldy, sc, zp) == REFCOMP_OK,
                      "dq status");
                for (int64_t m = 0; m < M; ++m) {
                    volatile float hi = 0.0f, lo = 0.0f;
                    for (int64_t k = 0; k < kk; ++k) {
                        if (x[m * ldx + k] > hi) hi = x[m * ldx + k];
                        if (x[m * ldx + k] < lo) lo = x[m * ldx + k];
                    }
                    volatile float span = hi == lo ? 1.0f : hi - lo;
                    volatile float s = span / 255.0f;
                    volatile float q = lo / s;
                    volatile float z = 0.0f - q;
                    z = z < 0.0f ? 0.0f : (z > 255.0f ? 255.0f : z);
                    const float zr = rintf(z);
                    CHECK(sc[m] == s && zp[m] == (uint8_t)zr, "dq params %s K=%lld row %lld",
                          refcomp_isa_name(isa), (long long)kk, (long long)m);
                    for (int64_t k = 0; k < kk; ++k) {
                        volatile float d = x[m * ldx + k] / s;
                        volatile float v = rintf(d) + zr;
                        v = v < 0.0f ? 0.0f : (v > 255.0f ? 255.0f : v);
                        CHECK(y[m * ldy + k] == (uint8_t)v, "dq %s K=%lld [%lld,%lld] got %d want %d",
                              refcomp_isa_name(isa), (long long)kk, (long long)m, (long long)k,
                              y[m * ldy + k], (int)(uint8_t)v);
                    }
                    for (int64_t k = kk; k < ldy; ++k) CHECK(y[m * ldy + k] == 0xAB, "dq wrote past K");
                }
            }
    }
    CHECK(refcomp_dynamic_quantize_rows_f32(0, 1, 2, 0, x, ldx, y, ldy, sc, zp) == REFCOMP_EINVAL, "dq K = 0");
    CHECK(refcomp_dynamic_quantize_rows_f32(0, 1, 0, 3, NULL, 3, NULL, 3, NULL, NULL) == REFCOMP_OK, "dq M = 0");
    free(x); free(y); free(zp); free(sc);
}

static void check_requantize(void) {
    const int64_t M = 7, N = 19;
    int32_t acc[7 * 19], out[7 * 19], zp[19], sh[19], mq[19];
    float mult[19];
    for (int64_t j = 0; j < N; ++j) {
        zp[j] = (int32_t)(rnd() % 256) - 128;
        mult[j] = (float)ldexp((double)(rnd() % 1000 + 1) / 1000.0, -(int)(rnd() % 12));
        sh[j] = -(int32_t)(rnd() % 31);
        mq[j] = (int32_t)(rnd() & 0x7fffffff);
    }
    for (int64_t i = 0; i < M * N; ++i) acc[i] = (int32_t)rnd();
    acc[0] = INT32_MIN; acc[1] = INT32_MAX; acc[2] = 0; acc[3] = -1;
    for (int isa = REFCOMP_ISA_SCALAR; isa <= REFCOMP_ISA_AVX512VNNI; ++isa) {
        if (!refcomp_isa_supported(isa)) continue;
        CHECK(refcomp_requantize_float(isa, M, N, acc, N, mult, zp, -128, 127, out, N) == REFCOMP_OK, "rq");
        for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < N; ++j) {
                float p = (float)acc[i * N + j] * mult[j];
                double r = (double)rintf(p) + zp[j];
                int32_t want = (int32_t)(r < -128 ? -128 : (r > 127 ? 127 : r));
                CHECK(out[i * N + j] == want, "requantize_float %s [%lld,%lld]", refcomp_isa_name(isa),
                      (long long)i, (long long)j);
            }
    }
    CHECK(refcomp_requantize_fixed_point(0, M, N, acc, N, mq, sh, zp, 0, 255, out, N) == REFCOMP_OK,
          "rqfp");
    for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
            /* exact rational reference: acc * m / 2^(31 - shift), half away from zero
             * twice (gemmlowp rounds the high mul, then the shift) */
            int64_t ab = (int64_t)acc[i * N + j] * mq[j];
            int64_t h = (ab >= 0 ? ab + (1ll << 30) : ab - (1ll << 30) + 1) / (1ll << 31);
            int e = -sh[j];
            int64_t q = h >= 0 ? (h + (e ? (1ll << (e - 1)) : 0)) >> e
                               : -((-h + (e ? (1ll << (e - 1)) - 1 : 0)) >> e);
            int64_t y = q + zp[j];
            int32_t want = (int32_t)(y < 0 ? 0 : (y > 255 ? 255 : y));
            CHECK(out[i * N + j] == want, "requantize_fixed_point [%lld,%lld] got %d want %d",
                  (long long)i, (long long)j, out[i * N + j], want);
        }
    CHECK(refcomp_saturating_rounding_doubling_high_mul(INT32_MIN, INT32_MIN) == INT32_MAX, "srdhm");
    CHECK(refcomp_rounding_divide_by_pot(-3, 1) == -2 && refcomp_rounding_divide_by_pot(3, 1) == 2 &&
          refcomp_rounding_divide_by_pot(-5, 2) == -1, "rdivpot");
    sh[0] = 31;
    CHECK(refcomp_requantize_fixed_point(0, M, N, acc, N, mq, sh, zp, 0, 255, out, N) == REFCOMP_EINVAL,
          "shift out of range rejected");
}

static void check_spmm(int64_t rows, int64_t cols, int64_t n, int density_pct, int tight) {
    int64_t *indptr = malloc(sizeof(int64_t) * (size_t)(rows + 1));
    int32_t *indices = malloc(sizeof(int32_t) * (size_t)(rows * cols + 1));
    float *data = malloc(sizeof(float) * (size_t)(rows * cols + 1));
    int8_t *data8 = malloc((size_t)(rows * cols + 1));
    /* tight: ldx = ldy = n, so n = 128 takes the AVX-512 copy with literal strides */
    int64_t ldx = tight ? n : n + 1, ldy = tight ? n : n + 3;
    float *X = malloc(sizeof(float) * (size_t)(cols * ldx + 1));
    int16_t *X16 = malloc(sizeof(int16_t) * (size_t)(cols * ldx + 1));
    float *Y = malloc(sizeof(float) * (size_t)(rows * ldy + 1));
    int32_t *Y32 = malloc(sizeof(int32_t) * (size_t)(rows * ldy + 1));
    float *Ysame = malloc(sizeof(float) * (size_t)(rows * ldy + 1));
    uint16_t *indices16 = malloc(sizeof(uint16_t) * (size_t)(rows * cols + 1));
    int64_t nnz = 0;
    indptr[0] = 0;
    for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < cols; ++c)
            if ((int)(rnd() % 100) < density_pct) {
                indices[nnz] = (int32_t)c;
                indices16[nnz] = (uint16_t)c;
                data[nnz] = (float)((int)(rnd() % 2001) - 1000) / 512.0f;
                data8[nnz] = (int8_t)(uint8_t)rnd();
                ++nnz;
            }
        indptr[r + 1] = nnz;
    }
    for (int64_t i = 0; i < cols * ldx; ++i) {
        X[i] = (float)((int)(rnd() % 2001) - 1000) / 256.0f;
        X16[i] = (int16_t)((int)(rnd() % 511) - 255);
    }
    CHECK(refcomp_csr_spmm_f32(REFCOMP_ISA_AUTO, 1, rows, n, indptr, indices, 64, data, X, ldx, Y, ldy)
          == REFCOMP_EINVAL, "unknown index type refused");
    for (int isa = REFCOMP_ISA_SCALAR; isa <= REFCOMP_ISA_AVX512VNNI; ++isa) {
        if (!refcomp_isa_supported(isa)) continue;
        /* every check for int32 and for uint16 column indices; same bits from both */
        for (int it = 0; it < 2; ++it)
        for (int threads = 1; threads <= 2; ++threads) {
            const int itype = it ? REFCOMP_INDEX_U16 : REFCOMP_INDEX_I32;
            const void *ix = it ? (const void *)indices16 : (const void *)indices;
            CHECK(refcomp_csr_spmm_f32(isa, threads, rows, n, indptr, ix, itype, data, X, ldx, Y, ldy)
                  == REFCOMP_OK, "spmm status");
            if (it == 0 && threads == 1)
                memcpy(Ysame, Y, sizeof(float) * (size_t)(rows * ldy));
            for (int64_t r = 0; r < rows; ++r)
                for (int64_t j = 0; j < n; ++j)
                    CHECK(Y[r * ldy + j] == Ysame[r * ldy + j], "spmm %s index type %d threads %d [%lld,%lld]",
                          refcomp_isa_name(isa), itype, threads, (long long)r, (long long)j);
            CHECK(refcomp_csr_spmm_i8(isa, threads, rows, n, indptr, ix, itype, data8, X16, ldx, Y32,
                                      ldy) == REFCOMP_OK, "spmm i8 status");
            /* sparse_linear: y = x W^T + bias with x = X^T, same bits as spmm + one add */
            float *xb = malloc(sizeof(float) * (size_t)(n * cols + 1));
            float *yb = malloc(sizeof(float) * (size_t)(n * rows + 1));
            float *bias = malloc(sizeof(float) * (size_t)(rows + 1));
            for (int64_t j = 0; j < n; ++j)
                for (int64_t k = 0; k < cols; ++k) xb[j * cols + k] = X[k * ldx + j];
            for (int64_t r = 0; r < rows; ++r) bias[r] = (float)((int)(rnd() % 200) - 100) / 8.0f;
            CHECK(refcomp_csr_linear_f32(isa, threads, n, cols, rows, indptr, ix, itype, data, 0, NULL,
                                         xb, cols, bias, yb, rows) == REFCOMP_OK, "linear status");
            /* column-blocked product: same bits, for several block widths */
            for (int64_t kb = 1; kb <= cols; kb *= 7) {
                const int64_t nb = (cols + kb - 1) / kb;
                int64_t *bp = malloc(sizeof(int64_t) * (size_t)(rows * (nb + 1) + 1));
                float *Yb = malloc(sizeof(float) * (size_t)(rows * ldy + 1));
                for (int64_t r = 0; r < rows; ++r) {
                    int64_t p = indptr[r];
                    for (int64_t b = 0; b <= nb; ++b) {
                        while (p < indptr[r + 1] && indices[p] < b * kb) ++p;
                        bp[r * (nb + 1) + b] = b == nb ? indptr[r + 1] : p;
                    }
                }
                CHECK(refcomp_csr_spmm_f32_blocked(isa, threads, rows, n, indptr, ix, itype, data, nb, bp,
                                                   X, ldx, Yb, ldy) == REFCOMP_OK, "blocked status");
                for (int64_t r = 0; r < rows; ++r)
                    for (int64_t j = 0; j < n; ++j)
                        CHECK(Yb[r * ldy + j] == Y[r * ldy + j], "blocked %s kb=%lld [%lld,%lld]",
                              refcomp_isa_name(isa), (long long)kb, (long long)r, (long long)j);
                if (rows > 0) { /* a block_ptr that does not partition the rows is refused */
                    bp[nb] += 1;
                    CHECK(refcomp_csr_spmm_f32_blocked(isa, threads, rows, n, indptr, ix, itype, data, nb,
                                                       bp, X, ldx, Yb, ldy) == REFCOMP_EINVAL, "bad block_ptr");
                }
                free(bp);
                free(Yb);
            }
            for (int64_t r = 0; r < rows; ++r)
                for (int64_t j = 0; j < n; ++j)
                    CHECK(yb[j * rows + r] == Y[r * ldy + j] + bias[r], "linear %s [%lld,%lld]",
                          refcomp_isa_name(isa), (long long)j, (long long)r);
            free(xb); free(yb); free(bias);
            for (int64_t r = 0; r < rows; ++r)
                for (int64_t j = 0; j < n; ++j) {
                    double exact = 0, absum = 0;
                    int64_t iexact = 0;
                    for (int64_t p = indptr[r]; p < indptr[r + 1]; ++p) {
                        double t = (double)data[p] * X[indices[p] * ldx + j];
                        exact += t;
                        absum += fabs(t);
                        iexact += (int64_t)data8[p] * X16[indices[p] * ldx + j];
                    }
                    double m = (double)(indptr[r + 1] - indptr[r]), u = ldexp(1.0, -24);
                    double bound = m * u / (1 - m * u) * absum;
                    CHECK(fabs(Y[r * ldy + j] - exact) <= bound, "spmm f32 %s [%lld,%lld]",
                          refcomp_isa_name(isa), (long long)r, (long long)j);
                    CHECK(Y32[r * ldy + j] == iexact, "spmm i8 %s [%lld,%lld]",
                          refcomp_isa_name(isa), (long long)r, (long long)j);
                }
        }
    }
    free(indptr); free(indices); free(indices16); free(data); free(data8); free(X); free(X16); free(Y); free(Y32);
    free(Ysame);
}


/* GELU: every path meets eq. G2 of refcomp.h against the definition's
 * sequence of float32 steps with the C library's erf. */
static float gelu_def(float x) {
    float z = x / 1.41421354f;
    float e = (float)erf((double)z);
    return x * (0.5f * (1.0f + e));
}

static void check_gelu(int64_t n, int mode) {
    float *x = calloc((size_t)(n + 1), sizeof(float)), *ys = calloc((size_t)(n + 1), sizeof(float));
    float *y = calloc((size_t)(n + 1), sizeof(float));
    for (int64_t i = 0; i < n; ++i) {
        if (mode == 0) { /* any bit pattern: every exponent, denormals, inf, NaN */
            uint32_t b = rnd();
            memcpy(&x[i], &b, sizeof(float));
        } else { /* the range where erf is not yet +-1 */
            x[i] = ((float)rnd() / 4294967296.0f - 0.5f) * 16.0f;
        }
    }
    for (int isa = REFCOMP_ISA_SCALAR; isa <= REFCOMP_ISA_AVX512VNNI; ++isa) {
        if (!refcomp_isa_supported(isa)) continue;
        CHECK(refcomp_gelu_f32(isa, 1, n, x, ys) == REFCOMP_OK, "gelu status");
        for (int64_t i = 0; i < n; ++i) {
            float d = gelu_def(x[i]);
            if (isnan(d) || isnan(ys[i])) {
                CHECK(isnan(d) && isnan(ys[i]), "gelu %s NaN mismatch at x = %a: %a vs %a", refcomp_isa_name(isa),
                      (double)x[i], (double)ys[i], (double)d);
                continue;
            }
            double ulp = (double)nextafterf(fabsf(d), INFINITY) - fabsf(d);
            double bound = ldexp(fabs((double)x[i]), -24) + ulp;
            CHECK(fabs((double)ys[i] - d) <= bound, "gelu %s eq. G2 at x = %a: %a vs %a", refcomp_isa_name(isa),
                  (double)x[i], (double)ys[i], (double)d);
        }
        /* 2 threads and in place: the same bits as 1 thread on this path */
        CHECK(refcomp_gelu_f32(isa, 2, n, x, y) == REFCOMP_OK, "gelu status");
        CHECK(n == 0 || memcmp(y, ys, sizeof(float) * (size_t)n) == 0, "gelu %s 2 threads", refcomp_isa_name(isa));
        memcpy(y, x, sizeof(float) * (size_t)n);
        CHECK(refcomp_gelu_f32(isa, 1, n, y, y) == REFCOMP_OK, "gelu in place status");
        CHECK(n == 0 || memcmp(y, ys, sizeof(float) * (size_t)n) == 0, "gelu %s in place", refcomp_isa_name(isa));
    }
    free(x);
    free(ys);
    free(y);
}

/* the bit-count product against the +-1 products summed one element at a time */
static void check_binary_matmul(int64_t M, int64_t N, int64_t K, int ld_extra) {
    int64_t W = (K + 63) / 64, ld = W + ld_extra;
    uint64_t *A = calloc((size_t)(M * ld + 1), 8), *B = calloc((size_t)(N * ld + 1), 8);
    int32_t *C = calloc((size_t)(M * N + 1), 4), *C2 = calloc((size_t)(M * N + 1), 4);
    for (int64_t i = 0; i < M * ld; ++i) A[i] = ((uint64_t)rnd() << 32) | rnd();
    for (int64_t i = 0; i < N * ld; ++i) B[i] = ((uint64_t)rnd() << 32) | rnd();
    if (K % 64) /* pad bits 0 (the precondition) */
        for (int64_t r = 0; r < M + N; ++r) {
            uint64_t *row = r < M ? A + r * ld : B + (r - M) * ld;
            row[W - 1] &= (~0ull) >> (64 - K % 64);
        }
    for (int isa = REFCOMP_ISA_SCALAR; isa <= REFCOMP_ISA_AVX512VNNI; ++isa) {
        if (!refcomp_isa_supported(isa)) continue;
        CHECK(refcomp_binary_matmul(isa, 1, M, N, K, A, ld, B, ld, C, N) == REFCOMP_OK, "bmm status");
        CHECK(refcomp_binary_matmul(isa, 3, M, N, K, A, ld, B, ld, C2, N) == REFCOMP_OK, "bmm status");
        for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < N; ++j) {
                int64_t dot = 0;
                for (int64_t k = 0; k < K; ++k) {
                    int a = (int)((A[i * ld + k / 64] >> (k % 64)) & 1), b = (int)((B[j * ld + k / 64] >> (k % 64)) & 1);
                    dot += (a == b) ? 1 : -1; /* bit 1 = -1: equal bits multiply to +1 */
                }
                CHECK(C[i * N + j] == dot, "bmm %s M%lld N%lld K%lld [%lld,%lld]: %d vs %lld", refcomp_isa_name(isa),
                      (long long)M, (long long)N, (long long)K, (long long)i, (long long)j, C[i * N + j],
                      (long long)dot);
                CHECK(C2[i * N + j] == C[i * N + j], "bmm %s 3 threads", refcomp_isa_name(isa));
            }
    }
    free(A);
    free(B);
    free(C);
    free(C2);
}

int main(void) {
    printf("refcomp test driver: best ISA %s\n", refcomp_isa_name(refcomp_isa_best()));
    for (int s = 1; s <= 17; s += 4)
        for (int as = 0; as <= 1; ++as)
            for (int bs = 0; bs <= 1; ++bs)
                for (int mode = 0; mode <= 3; ++mode)
                    check_gemm(s, s + 2 * mode + 1, 17 - s + 1, as, bs, mode, mode & 1);
    for (int as = 0; as <= 1; ++as) /* uniform zero points: every tile shape, masked columns */
        for (int bs = 0; bs <= 1; ++bs)
            for (int mode = 0; mode <= 3; ++mode)
                for (int64_t m = 1; m <= 13; m += 3) check_gemm(m, 5 + 7 * mode, 64 + 17 * m, as, bs, mode, 2);
    /* the pair layout's edges: M = 1..7 (every short last panel), K mod 4 = 0..3
     * and odd, N around a 16-column strip and a 64-column panel */
    for (int64_t m = 1; m <= 7; ++m)
        for (int64_t k = 1; k <= 9; k += 2 + (m & 1))
            check_gemm(m, k + 4 * m, 1 + 5 * m + 16 * (m % 5), (int)(m & 1), (int)(k & 1), (int)(m % 4), (int)(k % 3));
    check_gemm(7, 6, 16, 0, 1, 0, 2);
    check_gemm(7, 10, 48, 1, 1, 3, 1);
    check_gemm(12, 18, 63, 0, 0, 1, 2);
    check_gemm(25, 130, 129, 0, 1, 0, 2);
    check_gemm(13, 300, 130, 0, 1, 0, 1);
    check_gemm(4, 0, 5, 0, 1, 0, 1); /* K = 0: C = bias */
    check_gemm(100, 1000, 70, 1, 1, 0, 1); /* several K blocks, several A panels */
    check_gemm(70, 257, 67, 1, 0, 3, 1);
    check_gemm(200, 77, 130, 0, 1, 1, 2); /* fused kernel over many panels per task, 2-row tail */
    check_gemm(99, 64, 65, 1, 0, 0, 0);   /* idem, zero points 0 (uniform after the shift), 3-row tail */
    check_gemm(196, 40, 64, 0, 1, 3, 2);  /* a 4-row last panel inside the fused kernel */
    check_gemm(3, 4099, 5, 0, 1, 1, 0); /* 255 * 127 * 4099 fits int32 */
    check_gemm(2, 65536, 3, 0, 1, 3, 0);
    check_gemm(1, 70000, 2, 0, 0, 1, 0); /* outside int32: only in-range entries are compared */
    check_requantize();
    check_dynamic_quantize();
    check_spmm(37, 50, 130, 30, 0);
    check_spmm(20, 300, 17, 10, 0);
    check_spmm(5, 8, 1, 100, 0);
    check_spmm(300, 1000, 130, 10, 0); /* column-blocked AVX-512 path */
    check_spmm(150, 3000, 20, 3, 0);
    check_spmm(0, 8, 3, 50, 0);
    check_spmm(37, 50, 128, 30, 1);   /* n = 128, contiguous: the literal-stride copies */
    check_spmm(300, 1000, 128, 10, 1);
    check_spmm(300, 1000, 128, 10, 0); /* n = 128 with padded rows: the general copies */
    for (int64_t n = 0; n <= 19; ++n) check_gelu(n, (int)(n & 1)); /* vector tails */
    check_gelu(100000, 0);
    check_gelu(100000, 1);
    {
        float sx[8] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 1e-45f, -1e-45f, 3.0e38f}, sy[8];
        for (int isa = REFCOMP_ISA_SCALAR; isa <= REFCOMP_ISA_AVX512VNNI; ++isa) {
            if (!refcomp_isa_supported(isa)) continue;
            CHECK(refcomp_gelu_f32(isa, 1, 8, sx, sy) == REFCOMP_OK, "gelu specials status");
            CHECK(sy[0] == 0.0f && !signbit(sy[0]) && sy[1] == 0.0f && signbit(sy[1]), "gelu(+-0)");
            CHECK(sy[2] == INFINITY && isnan(sy[3]) && isnan(sy[4]), "gelu(inf, -inf, nan)");
            CHECK(sy[7] == 3.0e38f, "gelu(huge) = huge");
        }
        CHECK(refcomp_gelu_f32(0, 1, -1, sx, sy) == REFCOMP_EINVAL, "gelu n < 0 rejected");
        CHECK(refcomp_gelu_f32(0, 1, 1, NULL, sy) == REFCOMP_EINVAL, "gelu null x rejected");
        CHECK(refcomp_gelu_f32(99, 1, 1, sx, sy) == REFCOMP_EISA, "gelu unknown isa rejected");
    }
    check_binary_matmul(5, 7, 1, 0);
    check_binary_matmul(37, 9, 300, 1); /* 2 x 4 blocks with row and column tails, padded rows */
    check_binary_matmul(3, 2, 64, 0);
    check_binary_matmul(18, 13, 1000, 2);
    {
        uint64_t w[1] = {0};
        int32_t c[1];
        CHECK(refcomp_binary_matmul(0, 1, 1, 1, 0, w, 1, w, 1, c, 1) == REFCOMP_EINVAL, "bmm K = 0 rejected");
        CHECK(refcomp_binary_matmul(0, 1, 1, 1, 65, w, 1, w, 1, c, 1) == REFCOMP_EINVAL, "bmm lda < W rejected");
        CHECK(refcomp_binary_matmul(0, 1, 1, 1, 5, NULL, 1, w, 1, c, 1) == REFCOMP_EINVAL, "bmm null A rejected");
    }
    /* argument checks */
    int32_t c1[1];
    uint8_t a1[1] = {1};
    CHECK(refcomp_matmul_integer(0, 1, 1, 1, 1, NULL, 1, 0, NULL, a1, 1, 1, NULL, NULL, c1, 1) ==
          REFCOMP_EINVAL, "null A rejected");
    CHECK(refcomp_matmul_integer(99, 1, 1, 1, 1, a1, 1, 0, NULL, a1, 1, 1, NULL, NULL, c1, 1) ==
          REFCOMP_EISA, "unknown isa rejected");
    CHECK(refcomp_matmul_integer(0, 1, 1, 2, 1, a1, 1, 0, NULL, a1, 1, 1, NULL, NULL, c1, 1) ==
          REFCOMP_EINVAL, "lda < K rejected");
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("all checks passed\n");
    return 0;
}
