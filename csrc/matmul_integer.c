/*
 * matmul_integer.c -- exact integer GEMM, int8/uint8 x int8/uint8 -> int32.
 *
 *   C[i,j] = bias[j] + sum_k (A[i,k] - za[i]) (B[k,j] - zb[j])           (1)
 *
 * Numerics (docs/kernels.md, eq. 1-4):
 *
 * 1. Every operand pair is reduced to int8 A x uint8 B (vpdpbusd multiplies
 *    an unsigned byte vector by a signed one; B is the vector operand and A
 *    the broadcast one) by shifting values and folding the shift into the
 *    zero points:  a = a' + sa with a' = a ^ 0x80 = a - 128 (sa = 128) for
 *    uint8 A, a' = a (sa = 0) for int8 A;  b = b' + sb with b' = b ^ 0x80 =
 *    b + 128 (sb = -128) for int8 B, b' = b (sb = 0) for uint8 B. Then
 *    (a - za)(b - zb) = (a' - za')(b' - zb') with za' = za - sa, zb' = zb - sb.   (2)
 * 2. Zero-point folding: with ra'[i] = sum_k a'[i,k], cb'[j] = sum_k b'[k,j],
 *      C = sum_k a' b' - zb' ra' - za' cb' + K za' zb' + bias              (3)
 *    so the inner loop is a plain product of raw uint8 x int8 values.
 * 3. Every term of (3) is computed in wrapping 32-bit arithmetic (uint32 in
 *    C, vpaddd / vpmaddwd / vpdpbusd in SIMD, which all wrap), i.e. in
 *    Z/2^32. (3) is an identity over the integers, hence also modulo 2^32:
 *    the result is the exact value mod 2^32, which IS the exact value
 *    whenever that fits int32 (4). Intermediate terms may wrap freely.
 * 4. No instruction on the path saturates. vpmaddwd (AVX2) multiplies
 *    int16 a' in [-128,127] (sign-extended) by int16 b' in [0,255] (zero-
 *    extended: stored so in the pair layout, widened per pass from bytes in
 *    the byte layout) and adds the two products of a 32-bit lane: |pair
 *    sum| <= 2 * 128 * 255 = 65280 < 2^31, exact (the one case vpmaddwd
 *    wraps, both pairs -32768 * -32768, cannot occur); vpaddd then adds the
 *    pair sums with wrap-around. vpdpbusd (VNNI) adds four uint8 x int8
 *    products to an int32 lane with wrap-around (vpdpbusds, the saturating
 *    form, is never used; neither is vpmaddubsw, whose int16 pair sum
 *    saturates at 255*127*2).
 *
 * Layouts of the packed B (refcomp_packed_b.layout; the path that packs
 * chooses, every path multiplies either):
 *  - LAYOUT_U8X4 (VNNI and scalar packs): panels of NR = 64 columns; inside
 *    a panel, groups of 4 consecutive k; inside a group, 64 columns x 4
 *    bytes, i.e. exactly one 256-byte block = four zmm registers of
 *    vpdpbusd operands. A's 4 bytes per row and group are the
 *    instruction's broadcast memory operand ({1to16}), which costs no
 *    separate broadcast instruction. N is padded to a multiple of 64.
 *  - LAYOUT_I16X2 (AVX2 pack): strips of NS = 16 columns; inside a strip,
 *    the same groups of 4 k as 2 k pairs; inside a pair, 16 columns x 2
 *    int16 b' (32 bytes per 8 columns = one ymm, each 32-bit lane one
 *    column's two consecutive b'). A broadcast of a row's two int16 a'
 *    times that ymm is, by vpmaddwd, 8 columns' partial sums: no horizontal
 *    add, no widening per pass. Twice the bytes per element of the byte
 *    layout; N is padded to a multiple of 16.
 * K is padded to a multiple of 4 with zeros in both.
 * A is packed per call into panels of MR = 6 rows with the same k groups
 * (int16 a' for the vpmaddwd kernels, bytes for the others).
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#if REFCOMP_X86 && !defined(REFCOMP_NO_SIMD)
#include <immintrin.h>
#endif

#define NR 64 /* columns per B panel */
#define MR 6  /* rows per A panel */
#define KG 4  /* consecutive k per group */
#define M_PANELS_PER_TASK 16

/* The two packed layouts of B (refcomp_packed_b.layout), chosen by the path
 * that packs it (refcomp__pack_b_isa); every path multiplies either. */
#define LAYOUT_U8X4 REFCOMP__LAYOUT_U8X4   /* bytes: [npanels][kgroups][NR][KG] (VNNI, scalar) */
#define LAYOUT_I16X2 REFCOMP__LAYOUT_I16X2 /* int16 pairs: [nstrips][kgroups][2][NS][2] (AVX2) */
#define NS 16          /* columns per strip of LAYOUT_I16X2 */

struct refcomp_packed_b {
    int64_t K, N;
    int64_t kgroups, npanels, nstrips;
    int b_is_signed;
    int layout;       /* LAYOUT_U8X4 or LAYOUT_I16X2 */
    uint8_t *data;    /* b' values in that layout, zero padded */
    uint32_t *colsum; /* [N], cb'[j] mod 2^32 */
};

/* Bytes of packed data: 256 per (64-column panel, k group) for LAYOUT_U8X4,
 * 128 per (16-column strip, k group) for LAYOUT_I16X2 (int16 b', so twice
 * the bytes per element, but N is padded to 16 instead of 64). */
static size_t packed_bytes(const refcomp_packed_b *p) {
    return p->layout == LAYOUT_I16X2 ? (size_t)(p->nstrips * p->kgroups) * NS * KG * sizeof(int16_t)
                                     : (size_t)(p->npanels * p->kgroups) * NR * KG;
}

/* --------------------------------------------------------------- packing */

/* Memory on a 64-byte boundary: every 64-byte vector load of packed data
 * then touches one cache line, not two. Free with free(). */
static void *alloc64(size_t nbytes) {
    void *p = NULL;
    if (nbytes == 0) nbytes = 1;
    nbytes = (nbytes + 63) / 64 * 64;
    if (posix_memalign(&p, 64, nbytes) != 0) return NULL;
    return p;
}

/* The same, zeroed (the padding of the scalar packs relies on it). */
static void *zalloc64(size_t nbytes) {
    void *p = alloc64(nbytes);
    if (p) memset(p, 0, nbytes ? nbytes : 1);
    return p;
}

/* Pack panel `panel` of B (all k groups) the portable way. */
static void pack_b_panel_scalar(refcomp_packed_b *p, const uint8_t *b, int64_t ldb, uint8_t flip,
                                int64_t panel) {
    const int64_t K = p->K, j0 = panel * NR, nc = p->N - j0 < NR ? p->N - j0 : NR;
    /* one k group (4 rows of B) at a time: each column's 4 bytes are gathered
     * and written as one 32-bit word, so the writes are sequential */
    for (int64_t g = 0; g < p->kgroups; ++g) {
        const int64_t k0 = g * KG, kn = K - k0 < KG ? K - k0 : KG;
        uint8_t *dst = (uint8_t *)p->data + (panel * p->kgroups + g) * NR * KG;
        for (int64_t c = 0; c < nc; ++c) {
            uint8_t v[KG] = {0, 0, 0, 0}; /* k >= K stays 0 */
            uint32_t s = 0;
            for (int q = 0; q < kn; ++q) {
                v[q] = (uint8_t)(b[(k0 + q) * ldb + j0 + c] ^ flip);
                s += v[q];
            }
            memcpy(dst + c * KG, v, KG);
            p->colsum[j0 + c] += s;
        }
    }
}

#if REFCOMP_X86 && !defined(REFCOMP_NO_SIMD)
/* The same panel with AVX-512: 4 rows x 64 columns of B are interleaved into
 * [column][4 k] order by byte/word unpacks and a 4x4 transpose of 128-bit
 * lanes; column sums come from vpdpbusd against a vector of ones (exact: it
 * adds each column's four signed bytes into its int32 lane). Columns past N
 * load as 0 and are not flipped, so the padding stays 0. */
REFCOMP_TARGET_AVX512VNNI static void pack_b_panel_avx512(refcomp_packed_b *p, const uint8_t *b,
                                                          int64_t ldb, uint8_t flip,
                                                          int64_t panel) {
    const int64_t K = p->K, j0 = panel * NR, nc = p->N - j0 < NR ? p->N - j0 : NR;
    const __mmask64 m = nc >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << nc) - 1);
    const __m512i flipv = _mm512_maskz_set1_epi8(m, (char)flip), ones = _mm512_set1_epi8(1);
    __m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0;
    for (int64_t g = 0; g < p->kgroups; ++g) {
        __m512i z[KG];
        for (int q = 0; q < KG; ++q) {
            const int64_t k = g * KG + q;
            z[q] = k < K ? _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, b + k * ldb + j0), flipv)
                         : _mm512_setzero_si512();
        }
        const __m512i t0 = _mm512_unpacklo_epi8(z[0], z[1]), t1 = _mm512_unpackhi_epi8(z[0], z[1]);
        const __m512i t2 = _mm512_unpacklo_epi8(z[2], z[3]), t3 = _mm512_unpackhi_epi8(z[2], z[3]);
        /* lane L of u0..u3: columns 16L+0..3, +4..7, +8..11, +12..15, 4 bytes each */
        const __m512i u0 = _mm512_unpacklo_epi16(t0, t2), u1 = _mm512_unpackhi_epi16(t0, t2);
        const __m512i u2 = _mm512_unpacklo_epi16(t1, t3), u3 = _mm512_unpackhi_epi16(t1, t3);
        const __m512i v0 = _mm512_shuffle_i64x2(u0, u1, _MM_SHUFFLE(1, 0, 1, 0));
        const __m512i v1 = _mm512_shuffle_i64x2(u2, u3, _MM_SHUFFLE(1, 0, 1, 0));
        const __m512i v2 = _mm512_shuffle_i64x2(u0, u1, _MM_SHUFFLE(3, 2, 3, 2));
        const __m512i v3 = _mm512_shuffle_i64x2(u2, u3, _MM_SHUFFLE(3, 2, 3, 2));
        const __m512i o0 = _mm512_shuffle_i64x2(v0, v1, _MM_SHUFFLE(2, 0, 2, 0)); /* cols 0..15  */
        const __m512i o1 = _mm512_shuffle_i64x2(v0, v1, _MM_SHUFFLE(3, 1, 3, 1)); /* cols 16..31 */
        const __m512i o2 = _mm512_shuffle_i64x2(v2, v3, _MM_SHUFFLE(2, 0, 2, 0)); /* cols 32..47 */
        const __m512i o3 = _mm512_shuffle_i64x2(v2, v3, _MM_SHUFFLE(3, 1, 3, 1)); /* cols 48..63 */
        uint8_t *dst = p->data + (panel * p->kgroups + g) * NR * KG;
        _mm512_storeu_si512((void *)(dst + 0), o0);
        _mm512_storeu_si512((void *)(dst + 64), o1);
        _mm512_storeu_si512((void *)(dst + 128), o2);
        _mm512_storeu_si512((void *)(dst + 192), o3);
        s0 = _mm512_dpbusd_epi32(s0, o0, ones); /* o0 unsigned x 1 */
        s1 = _mm512_dpbusd_epi32(s1, o1, ones); /* o1 unsigned x 1 */
        s2 = _mm512_dpbusd_epi32(s2, o2, ones); /* o2 unsigned x 1 */
        s3 = _mm512_dpbusd_epi32(s3, o3, ones); /* o3 unsigned x 1 */
    }
    uint32_t sums[NR];
    _mm512_storeu_si512((void *)&sums[0], s0);
    _mm512_storeu_si512((void *)&sums[16], s1);
    _mm512_storeu_si512((void *)&sums[32], s2);
    _mm512_storeu_si512((void *)&sums[48], s3);
    for (int64_t c = 0; c < nc; ++c) p->colsum[j0 + c] += sums[c];
}
#endif

/* LAYOUT_I16X2, strip `strip` (columns 16 strip .. +15), k groups g0 and
 * later, the portable way: element (k, c) of the strip, k = 4g + 2h + q, is
 * int16 b' at [g][h][c][q], so each 32-bit lane of a 16-column row of one k
 * pair h holds one column's two consecutive b' -- the operand vpmaddwd
 * multiplies by a broadcast pair of a'. k >= K and columns >= N stay 0. */
static void pack_b_strip_pairs_scalar(refcomp_packed_b *p, const uint8_t *b, int64_t ldb, uint8_t flip,
                                      int64_t strip, int64_t g0) {
    const int64_t K = p->K, j0 = strip * NS, nc = p->N - j0 < NS ? p->N - j0 : NS;
    int16_t *base = (int16_t *)(void *)p->data + strip * p->kgroups * NS * KG;
    /* the buffer is not zeroed in advance (the AVX2 pass writes every byte of
     * its groups): the padding of these groups is */
    memset(base + g0 * NS * KG, 0, (size_t)(p->kgroups - g0) * NS * KG * sizeof(int16_t));
    for (int64_t g = g0; g < p->kgroups; ++g)
        for (int q4 = 0; q4 < KG; ++q4) {
            const int64_t k = g * KG + q4;
            if (k >= K) break;
            int16_t *dst = base + (g * 2 + q4 / 2) * NS * 2 + q4 % 2;
            for (int64_t c = 0; c < nc; ++c) {
                const uint8_t v = (uint8_t)(b[k * ldb + j0 + c] ^ flip);
                dst[c * 2] = v;
                p->colsum[j0 + c] += v;
            }
        }
}

#if REFCOMP_X86 && !defined(REFCOMP_NO_SIMD)
/* The same for nstr <= 4 full strips side by side (up to 64 columns, so
 * each row of B is read a cache line at a time, not 16 bytes per pass):
 * per k pair and strip, the two rows' 16 bytes are interleaved by
 * vpunpck{l,h}bw (b'[k][c], b'[k+1][c] side by side) and zero-extended to
 * int16 by vpmovzxbw: 8 columns x 2 k per ymm. Column sums: vpmaddwd by 1
 * adds each column's two b' into its int32 lane. The last k group of 1-3
 * rows goes through the scalar loop. 384 x 1536 on Zen 3: 0.092 ms one
 * strip at a time into a zeroed buffer, 0.044 ms so (the byte layout's
 * AVX2 pass took 0.041 ms for half the bytes). */
REFCOMP_TARGET_AVX2 static void pack_b_strips_pairs_avx2(refcomp_packed_b *p, const uint8_t *b,
                                                         int64_t ldb, uint8_t flip, int64_t strip0,
                                                         int nstr) {
    const int64_t full = p->K / KG;
    const __m128i flipv = _mm_set1_epi8((char)flip);
    const __m256i ones16 = _mm256_set1_epi16(1);
    __m256i sum[2 * NR / NS];
    for (int v = 0; v < 2 * nstr; ++v) sum[v] = _mm256_setzero_si256();
    for (int64_t g = 0; g < full; ++g)
        for (int h = 0; h < 2; ++h) {
            const uint8_t *r0 = b + (g * KG + 2 * h) * ldb + strip0 * NS, *r1 = r0 + ldb;
            for (int t = 0; t < nstr; ++t) {
                const __m128i x0 = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(r0 + t * NS)), flipv);
                const __m128i x1 = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(r1 + t * NS)), flipv);
                const __m256i lo = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(x0, x1)); /* columns 0..7  */
                const __m256i hi = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(x0, x1)); /* columns 8..15 */
                int16_t *dst = (int16_t *)(void *)p->data + ((strip0 + t) * p->kgroups + g) * NS * KG + h * NS * 2;
                _mm256_store_si256((__m256i *)(void *)dst, lo);
                _mm256_store_si256((__m256i *)(void *)(dst + 16), hi);
                sum[2 * t] = _mm256_add_epi32(sum[2 * t], _mm256_madd_epi16(lo, ones16));
                sum[2 * t + 1] = _mm256_add_epi32(sum[2 * t + 1], _mm256_madd_epi16(hi, ones16));
            }
        }
    for (int t = 0; t < nstr; ++t) {
        uint32_t sums[NS];
        _mm256_storeu_si256((__m256i *)(void *)&sums[0], sum[2 * t]);
        _mm256_storeu_si256((__m256i *)(void *)&sums[8], sum[2 * t + 1]);
        for (int c = 0; c < NS; ++c) p->colsum[(strip0 + t) * NS + c] += sums[c];
        pack_b_strip_pairs_scalar(p, b, ldb, flip, strip0 + t, full);
    }
}
#endif

/* refcomp_pack_b with an explicit path, which picks the layout: the AVX2
 * path packs LAYOUT_I16X2 (what its kernel reads straight from memory), the
 * others LAYOUT_U8X4 (the VNNI operands; the scalar path keeps the portable
 * byte form). The test driver checks each path's bytes against its layout. */
int refcomp__pack_b_isa(int isa, int64_t K, int64_t N, const void *B, int64_t ldb,
                        int b_is_signed, refcomp_packed_b **out) {
    if (!out || K < 0 || N < 0 || (K > 0 && N > 0 && (!B || ldb < N))) return REFCOMP_EINVAL;
    *out = NULL;
    isa = refcomp__resolve_isa(isa);
    if (isa < 0) return isa;
    refcomp_packed_b *p = (refcomp_packed_b *)calloc(1, sizeof *p);
    if (!p) return REFCOMP_ENOMEM;
    p->K = K;
    p->N = N;
    p->kgroups = (K + KG - 1) / KG;
    p->npanels = (N + NR - 1) / NR;
    p->nstrips = (N + NS - 1) / NS;
    p->b_is_signed = b_is_signed ? 1 : 0;
    p->layout = isa == REFCOMP_ISA_AVX2 ? LAYOUT_I16X2 : LAYOUT_U8X4;
    /* the pair packers zero their own padding */
    p->data = (uint8_t *)(p->layout == LAYOUT_I16X2 ? alloc64(packed_bytes(p)) : zalloc64(packed_bytes(p)));
    p->colsum = (uint32_t *)calloc(N ? (size_t)N : 1, sizeof(uint32_t));
    if (!p->data || !p->colsum) {
        refcomp_packed_b_free(p);
        return REFCOMP_ENOMEM;
    }
    const uint8_t flip = b_is_signed ? 0x80 : 0x00; /* b' = b + 128 for int8 B */
    if (p->layout == LAYOUT_I16X2) {
        for (int64_t strip = 0; strip < p->nstrips;) {
#if REFCOMP_X86 && !defined(REFCOMP_NO_SIMD)
            const int64_t nfull = p->N / NS - strip; /* full strips left */
            if (nfull > 0) {
                const int nstr = nfull < NR / NS ? (int)nfull : NR / NS;
                pack_b_strips_pairs_avx2(p, (const uint8_t *)B, ldb, flip, strip, nstr);
                strip += nstr;
                continue;
            }
#endif
            pack_b_strip_pairs_scalar(p, (const uint8_t *)B, ldb, flip, strip, 0);
            ++strip;
        }
        *out = p;
        return REFCOMP_OK;
    }
    for (int64_t panel = 0; panel < p->npanels; ++panel) {
#if REFCOMP_X86 && !defined(REFCOMP_NO_SIMD)
        if (isa == REFCOMP_ISA_AVX512VNNI) {
            pack_b_panel_avx512(p, (const uint8_t *)B, ldb, flip, panel);
            continue;
        }
#endif
        pack_b_panel_scalar(p, (const uint8_t *)B, ldb, flip, panel);
    }
    *out = p;
    return REFCOMP_OK;
}

int refcomp_pack_b(int64_t K, int64_t N, const void *B, int64_t ldb, int b_is_signed,
                   refcomp_packed_b **out) {
    return refcomp__pack_b_isa(REFCOMP_ISA_AUTO, K, N, B, ldb, b_is_signed, out);
}

/* The packed bytes, layout and column sums, for the test driver. */
const uint8_t *refcomp__packed_b_data(const refcomp_packed_b *p, size_t *nbytes,
                                     const uint32_t **colsum, int *layout) {
    *nbytes = packed_bytes(p);
    *layout = p->layout;
    *colsum = p->colsum;
    return p->data;
}

void refcomp_packed_b_free(refcomp_packed_b *packed) {
    if (!packed) return;
    free(packed->data);
    free(packed->colsum);
    free(packed);
}

int64_t refcomp_packed_b_rows(const refcomp_packed_b *packed) { return packed ? packed->K : -1; }
int64_t refcomp_packed_b_cols(const refcomp_packed_b *packed) { return packed ? packed->N : -1; }

/* A -> [mpanels][kgroups][MR][KG] of a' (int8) or of a' widened to int16
 * (AVX2 path), and ra'[i] mod 2^32. Rows are copied 4 bytes (one k group)
 * at a time; the padding (k >= K, rows >= M) stays zero from zalloc64. */
static void pack_a(int64_t M, int64_t K, const uint8_t *a, int64_t lda, int a_is_signed,
                   int wide, void *dst, int64_t kgroups, uint32_t *rowsum) {
    const uint8_t flip = a_is_signed ? 0x00 : 0x80; /* a' = a - 128 for uint8 A */
    const uint32_t flip4 = flip * 0x01010101u;
    const int64_t full = K / KG;
    for (int64_t i = 0; i < M; ++i) {
        const uint8_t *row = a + i * lda;
        const int64_t ip = i / MR, r = i % MR;
        uint32_t s = 0;
        for (int64_t k = 0; k < K; ++k) s += (uint32_t)(int32_t)(int8_t)(uint8_t)(row[k] ^ flip);
        rowsum[i] = s;
        if (!wide) {
            uint8_t *d = (uint8_t *)dst + (ip * kgroups * MR + r) * KG;
            for (int64_t g = 0; g < full; ++g) {
                uint32_t w;
                memcpy(&w, row + g * KG, 4);
                w ^= flip4;
                memcpy(d + g * MR * KG, &w, 4);
            }
            for (int64_t k = full * KG; k < K; ++k) d[full * MR * KG + k % KG] = (uint8_t)(row[k] ^ flip);
        } else {
            int16_t *d = (int16_t *)dst + (ip * kgroups * MR + r) * KG;
            for (int64_t g = 0; g < full; ++g)
                for (int q = 0; q < KG; ++q) d[g * MR * KG + q] = (int8_t)(uint8_t)(row[g * KG + q] ^ flip);
            for (int64_t k = full * KG; k < K; ++k) d[full * MR * KG + k % KG] = (int8_t)(uint8_t)(row[k] ^ flip);
        }
    }
}

#if REFCOMP_X86 && !defined(REFCOMP_NO_SIMD)
/* pack_a for the VNNI path (int8 a', not wide), 64 bytes of each of the MR
 * rows of a panel at a time: a' = a ^ flip (masked past K, so the padding
 * stays 0), ra' from vpdpbusd against a vector of ones (each lane adds four
 * signed bytes of a', wrapping), and the [group][row][4 bytes] interleave as
 * vpermt2d / blends of dwords: output dword o (0..95) of a 16-group chunk is
 * dword o / MR of row o % MR. Same bytes and sums as pack_a. */
REFCOMP_TARGET_AVX512VNNI static void pack_a_avx512(int64_t M, int64_t K, const uint8_t *a,
                                                    int64_t lda, int a_is_signed, uint8_t *dst,
                                                    int64_t kgroups, uint32_t *rowsum) {
    const uint8_t flip = a_is_signed ? 0x00 : 0x80;
    const __m512i ones = _mm512_set1_epi8(1);
    /* per output vector v: indices into the (row 2p, row 2p+1) pair and which
     * pair each lane comes from */
    int32_t idx[MR][16];
    __mmask16 from1[MR], from2[MR];
    for (int v = 0; v < MR; ++v) {
        from1[v] = from2[v] = 0;
        for (int l = 0; l < 16; ++l) {
            const int o = 16 * v + l, r = o % MR, g = o / MR;
            idx[v][l] = g + 16 * (r & 1);
            if (r / 2 == 1) from1[v] |= (__mmask16)(1u << l);
            if (r / 2 == 2) from2[v] |= (__mmask16)(1u << l);
        }
    }
    for (int64_t i0 = 0; i0 < M; i0 += MR) {
        const int mr = M - i0 < MR ? (int)(M - i0) : MR;
        uint8_t *panel = dst + (i0 / MR) * kgroups * MR * KG;
        __m512i sum[MR], x[MR];
        for (int r = 0; r < MR; ++r) sum[r] = _mm512_setzero_si512();
        for (int64_t k0 = 0; k0 < K; k0 += 64) {
            const int64_t kn = K - k0 < 64 ? K - k0 : 64;
            const __mmask64 m = kn == 64 ? ~(__mmask64)0 : (((__mmask64)1 << kn) - 1);
            const __m512i fl = _mm512_maskz_set1_epi8(m, (char)flip);
            for (int r = 0; r < MR; ++r) {
                x[r] = r < mr ? _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, a + (i0 + r) * lda + k0), fl)
                              : _mm512_setzero_si512();
                sum[r] = _mm512_dpbusd_epi32(sum[r], ones, x[r]); /* ones unsigned x a' signed */
            }
            const int64_t nbytes = (kn + KG - 1) / KG * MR * KG; /* of this chunk's groups */
            uint8_t *d = panel + k0 / KG * MR * KG;
            for (int v = 0; v < MR; ++v) {
                const int64_t left = nbytes - 64 * v;
                if (left <= 0) break;
                const __m512i iv = _mm512_loadu_si512((const void *)idx[v]);
                __m512i o = _mm512_permutex2var_epi32(x[0], iv, x[1]);
                o = _mm512_mask_mov_epi32(o, from1[v], _mm512_permutex2var_epi32(x[2], iv, x[3]));
                o = _mm512_mask_mov_epi32(o, from2[v], _mm512_permutex2var_epi32(x[4], iv, x[5]));
                const __mmask64 sm = left >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << left) - 1);
                _mm512_mask_storeu_epi8(d + 64 * v, sm, o);
            }
        }
        for (int r = 0; r < mr; ++r) rowsum[i0 + r] = (uint32_t)_mm512_reduce_add_epi32(sum[r]);
    }
}
#endif

/* ------------------------------------------------------- micro-kernels
 * Each computes tile[r][c] = sum_k a'[r,k] b'[k,c] (mod 2^32) for one
 * MR-row A panel and one NR-column B panel, rows r < mr. */

static void kernel_scalar(int mr, const uint8_t *pa, const uint8_t *pb, int64_t kgroups,
                          uint32_t tile[MR][NR]) {
    for (int r = 0; r < mr; ++r)
        for (int c = 0; c < NR; ++c) tile[r][c] = 0;
    for (int64_t g = 0; g < kgroups; ++g) {
        const uint8_t *ag = pa + g * MR * KG;
        const uint8_t *bg = pb + g * NR * KG;
        for (int r = 0; r < mr; ++r)
            for (int c = 0; c < NR; ++c) {
                uint32_t s = tile[r][c];
                for (int q = 0; q < KG; ++q)
                    s += (uint32_t)(int32_t)(int8_t)ag[r * KG + q] * (uint32_t)bg[c * KG + q];
                tile[r][c] = s;
            }
    }
}

/* kernel_scalar on a LAYOUT_I16X2 strip (16 columns): b'[4g + 2h + q][c]
 * at [g][h][c][q]; A as for kernel_scalar (int8 a', [g][r][q]). */
static void kernel_scalar_pairs(int mr, const uint8_t *pa, const int16_t *pb, int64_t kgroups,
                                uint32_t tile[MR][NR]) {
    for (int r = 0; r < mr; ++r)
        for (int c = 0; c < NS; ++c) tile[r][c] = 0;
    for (int64_t g = 0; g < kgroups; ++g) {
        const uint8_t *ag = pa + g * MR * KG;
        const int16_t *bg = pb + g * 2 * NS * 2;
        for (int r = 0; r < mr; ++r)
            for (int c = 0; c < NS; ++c) {
                uint32_t s = tile[r][c];
                for (int q = 0; q < KG; ++q)
                    s += (uint32_t)(int32_t)(int8_t)ag[r * KG + q] *
                         (uint32_t)bg[(q / 2) * NS * 2 + c * 2 + q % 2];
                tile[r][c] = s;
            }
    }
}

#if REFCOMP_X86 && !defined(REFCOMP_NO_SIMD)

/* AVX2: vpmaddwd on 16-bit operands. One 8-column strip at a time: a ymm of
 * b' holds 4 columns x 4 k (zero-extended straight from memory), a broadcast
 * of 4 k of a' is multiplied in, giving 2 partial sums per column; vphaddd
 * joins them. At most 3 rows per pass, so that 3 x 2 accumulators, 2 vectors
 * of b' and the 3 broadcasts fit the 16 ymm registers: the former 6-row pass
 * needed 12 + 2 + 6 (the compiler hoists the broadcasts) and spilled 8
 * accumulators to the stack, a store and a reload per accumulator and k
 * group; two 3-row passes, which widen the strip of b' twice, and two k
 * groups per iteration run ~1.4x faster (87 -> 120 GOP/s at 4096 x 384 x
 * 1536 on Zen 3, one thread; docs/performance.md). */
REFCOMP_TARGET_AVX2 static inline __attribute__((always_inline)) void
kernel_avx2_rows(const int rows, const int r0, const int16_t *pa, const uint8_t *pb,
                 int64_t kgroups, uint32_t tile[MR][NR]) {
    for (int s = 0; s < NR / 8; ++s) {
        __m256i acc[3][2];
        for (int r = 0; r < 3; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
        /* two k groups per iteration: GCC 12 copies each accumulator once per
         * iteration (a register move), so this halves the copies (+7 %); the two
         * products of a row are added first (wrapping int32: any order is exact) */
        int64_t g = 0;
        for (; g + 2 <= kgroups; g += 2) {
            const uint8_t *bg = pb + (g * NR + s * 8) * KG;
            const __m256i b_lo = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)bg));
            const __m256i b_hi = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(bg + 16)));
            const __m256i b_lo2 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(bg + NR * KG)));
            const __m256i b_hi2 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(bg + NR * KG + 16)));
            const int16_t *ag = pa + (g * MR + r0) * KG;
            for (int r = 0; r < rows; ++r) {
                int64_t a4, a4b;
                memcpy(&a4, ag + r * KG, sizeof a4);
                memcpy(&a4b, ag + (MR + r) * KG, sizeof a4b);
                const __m256i av = _mm256_set1_epi64x(a4), av2 = _mm256_set1_epi64x(a4b);
                acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_add_epi32(_mm256_madd_epi16(av, b_lo), _mm256_madd_epi16(av2, b_lo2)));
                acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_add_epi32(_mm256_madd_epi16(av, b_hi), _mm256_madd_epi16(av2, b_hi2)));
            }
        }
        for (; g < kgroups; ++g) {
            const uint8_t *bg = pb + (g * NR + s * 8) * KG;
            const __m256i b_lo = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)bg));
            const __m256i b_hi = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(bg + 16)));
            const int16_t *ag = pa + (g * MR + r0) * KG;
            for (int r = 0; r < rows; ++r) {
                int64_t a4;
                memcpy(&a4, ag + r * KG, sizeof a4);
                const __m256i av = _mm256_set1_epi64x(a4);
                acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(av, b_lo));
                acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(av, b_hi));
            }
        }
        for (int r = 0; r < rows; ++r) {
            /* hadd within 128-bit lanes gives columns 0,1,4,5 | 2,3,6,7 */
            __m256i h = _mm256_hadd_epi32(acc[r][0], acc[r][1]);
            h = _mm256_permute4x64_epi64(h, 0xD8);
            _mm256_storeu_si256((__m256i *)&tile[r0 + r][s * 8], h);
        }
    }
}

REFCOMP_TARGET_AVX2 static void kernel_avx2(int mr, const int16_t *pa, const uint8_t *pb,
                                            int64_t kgroups, uint32_t tile[MR][NR]) {
    switch (mr) {
    case 6: kernel_avx2_rows(3, 0, pa, pb, kgroups, tile); kernel_avx2_rows(3, 3, pa, pb, kgroups, tile); break;
    case 5: kernel_avx2_rows(3, 0, pa, pb, kgroups, tile); kernel_avx2_rows(2, 3, pa, pb, kgroups, tile); break;
    case 4: kernel_avx2_rows(2, 0, pa, pb, kgroups, tile); kernel_avx2_rows(2, 2, pa, pb, kgroups, tile); break;
    case 3: kernel_avx2_rows(3, 0, pa, pb, kgroups, tile); break;
    case 2: kernel_avx2_rows(2, 0, pa, pb, kgroups, tile); break;
    default: kernel_avx2_rows(1, 0, pa, pb, kgroups, tile); break;
    }
}

/* AVX2 on LAYOUT_I16X2: a 6-row x 16-column tile in 12 ymm accumulators.
 * Per k pair: 2 ymm of b' (16 columns x 2 k as int16, each 32-bit lane one
 * column's pair), one vpbroadcastd per row of its two int16 a', and
 * vpmaddwd gives each column's two products summed in its int32 lane --
 * the final per-column sums, so no vphaddd, and no zero extension of B per
 * pass (the packing did it once). 12 accumulators + 2 b' + 1 broadcast +
 * 1 product = 16 ymm, no spill (GCC 12 -O3; check the asm when changing
 * this). The rows are a compile-time constant of each instance, so the
 * unused accumulators of a short last panel vanish. tile[r][c], c < 16. */
/* acc += vpmaddwd(broadcast of row r's two int16 a', b') for both 8-column
 * halves, one asm statement per row: from intrinsics GCC 12 hoists the
 * broadcasts of all rows and regroups (acc + p0) + p1 as acc + (p0 + p1),
 * which needs more than 16 ymm and spills accumulators (108 vs 132 GOP/s at
 * 4096 x 384 x 1536 on Zen 3). Both vpmaddwd before both vpaddd: 132 -> 141,
 * and 148 -> 158 GOP/s for the kernel alone with its data in L1 (the adds
 * no longer wait in the queue right behind the multiply they depend on). */
#define PAIRS_ROW(r, h)                                                                       \
    do {                                                                                      \
        if ((r) < rows) {                                                                     \
            __m256i t, u;                                                                     \
            __asm__("vpbroadcastd %[a], %[t]\n\t"                                              \
                    "vpmaddwd %[b0], %[t], %[u]\n\t"                                           \
                    "vpmaddwd %[b1], %[t], %[t]\n\t"                                           \
                    "vpaddd %[u], %[c0], %[c0]\n\t"                                            \
                    "vpaddd %[t], %[c1], %[c1]"                                               \
                    : [c0] "+x"(c##r##0), [c1] "+x"(c##r##1), [t] "=&x"(t), [u] "=&x"(u)      \
                    : [a] "m"(*(const int32_t *)(const void *)(ag + (r) * KG + 2 * (h))),     \
                      [b0] "x"(b0), [b1] "x"(b1));                                            \
        }                                                                                     \
    } while (0)
#define PAIRS_STORE(r)                                                                        \
    do {                                                                                      \
        if ((r) < rows) {                                                                     \
            _mm256_store_si256((__m256i *)(void *)&tile[r][0], c##r##0);                      \
            _mm256_store_si256((__m256i *)(void *)&tile[r][8], c##r##1);                      \
        }                                                                                     \
    } while (0)
/* the fused epilogue (see VNNI_STORE_C): C = acc + colconst[j] + rowconst[i] */
#define PAIRS_STORE_C(r)                                                                      \
    do {                                                                                      \
        if ((r) < rows) {                                                                     \
            const __m256i rc = _mm256_set1_epi32((int)rowconst[r]);                           \
            int32_t *crow = C + (int64_t)(r) * ldc;                                           \
            _mm256_storeu_si256((__m256i *)(void *)crow,                                      \
                                _mm256_add_epi32(_mm256_add_epi32(c##r##0, k0), rc));          \
            _mm256_storeu_si256((__m256i *)(void *)(crow + 8),                                \
                                _mm256_add_epi32(_mm256_add_epi32(c##r##1, k1), rc));          \
        }                                                                                     \
    } while (0)

REFCOMP_TARGET_AVX2 static inline __attribute__((always_inline)) void
kernel_pairs_rows(const int rows, const int16_t *pa, const int16_t *pb, int64_t kgroups,
                  uint32_t tile[MR][NR], int32_t *C, int64_t ldc, const uint32_t *colconst,
                  const uint32_t *rowconst) {
    /* named accumulators, not an array: an array lived on the stack */
    __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256i c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (int64_t g = 0; g < kgroups; ++g) {
        const int16_t *ag = pa + g * MR * KG, *bg = pb + g * 2 * NS * 2;
        for (int h = 0; h < 2; ++h) { /* the group's two k pairs */
            const __m256i b0 = _mm256_load_si256((const __m256i *)(const void *)(bg + h * NS * 2));
            const __m256i b1 = _mm256_load_si256((const __m256i *)(const void *)(bg + h * NS * 2 + 16));
            PAIRS_ROW(0, h); PAIRS_ROW(1, h); PAIRS_ROW(2, h); PAIRS_ROW(3, h); PAIRS_ROW(4, h); PAIRS_ROW(5, h);
        }
    }
    if (C) { /* a full strip with per-tensor zero points: straight into C */
        const __m256i k0 = _mm256_loadu_si256((const __m256i *)(const void *)colconst);
        const __m256i k1 = _mm256_loadu_si256((const __m256i *)(const void *)(colconst + 8));
        PAIRS_STORE_C(0); PAIRS_STORE_C(1); PAIRS_STORE_C(2); PAIRS_STORE_C(3); PAIRS_STORE_C(4); PAIRS_STORE_C(5);
        return;
    }
    PAIRS_STORE(0); PAIRS_STORE(1); PAIRS_STORE(2); PAIRS_STORE(3); PAIRS_STORE(4); PAIRS_STORE(5);
}

/* One out-of-line instance per row count: each gets its own register
 * allocation, which a switch over inlined copies in one function did not.
 * C non-NULL: C (the tile's top left, leading dim ldc) = acc + colconst[c]
 * + rowconst[r] for all 16 columns; else the accumulators go to tile. */
#define KERNEL_PAIRS(n)                                                                     \
    REFCOMP_TARGET_AVX2 __attribute__((noinline)) static void kernel_pairs##n(              \
        const int16_t *pa, const int16_t *pb, int64_t kgroups, uint32_t tile[MR][NR],       \
        int32_t *C, int64_t ldc, const uint32_t *colconst, const uint32_t *rowconst) {      \
        kernel_pairs_rows(n, pa, pb, kgroups, tile, C, ldc, colconst, rowconst);            \
    }
KERNEL_PAIRS(1)
KERNEL_PAIRS(2)
KERNEL_PAIRS(3)
KERNEL_PAIRS(4)
KERNEL_PAIRS(5)
KERNEL_PAIRS(6)

static void kernel_pairs(int mr, const int16_t *pa, const int16_t *pb, int64_t kgroups,
                         uint32_t tile[MR][NR], int32_t *C, int64_t ldc, const uint32_t *colconst,
                         const uint32_t *rowconst) {
    switch (mr) {
    case 6: kernel_pairs6(pa, pb, kgroups, tile, C, ldc, colconst, rowconst); break;
    case 5: kernel_pairs5(pa, pb, kgroups, tile, C, ldc, colconst, rowconst); break;
    case 4: kernel_pairs4(pa, pb, kgroups, tile, C, ldc, colconst, rowconst); break;
    case 3: kernel_pairs3(pa, pb, kgroups, tile, C, ldc, colconst, rowconst); break;
    case 2: kernel_pairs2(pa, pb, kgroups, tile, C, ldc, colconst, rowconst); break;
    default: kernel_pairs1(pa, pb, kgroups, tile, C, ldc, colconst, rowconst); break;
    }
}

/* AVX-512 VNNI: per k group, 4 zmm of b' (64 columns x 4 k) and one
 * broadcast of 4 bytes of a' per row; vpdpbusd adds the 4 products of each
 * column into its int32 lane (wrapping). The 6-row kernel keeps its 24
 * accumulators in named registers (an array would live on the stack); rows
 * past M are zero padding of the packed A, computed and not stored. */
/* acc += vpdpbusd(b (unsigned bytes, register), a (4 signed bytes of row r,
 * broadcast from memory: the {1to16} operand form, which needs no separate
 * broadcast instruction -- measured ~10 % faster on Zen 4 than a
 * vpbroadcastd per row). Inline asm because compilers hoist a broadcast used
 * four times into a register. */
#define VNNI_DP(acc, b, p) \
    __asm__("vpdpbusd %[m]%{1to16%}, %[bb], %[c]" : [c] "+v"(acc) : [bb] "v"(b), [m] "m"(*(const int32_t *)(p)))
#define VNNI_ROW(r)                                                       \
    do {                                                                  \
        VNNI_DP(c##r##0, b0, ag + (r) * KG);                              \
        VNNI_DP(c##r##1, b1, ag + (r) * KG);                              \
        VNNI_DP(c##r##2, b2, ag + (r) * KG);                              \
        VNNI_DP(c##r##3, b3, ag + (r) * KG);                              \
    } while (0)
/* k group g: the four zmm of b' (64 columns x 4 k) and the 4-byte row
 * entries of a' that VNNI_ROW broadcasts (every VNNI kernel's loop head) */
#define VNNI_LOAD_B(g)                                                    \
    const uint8_t *bg = pb + (g) * NR * KG;                               \
    const uint8_t *ag = pa + (g) * MR * KG;                               \
    const __m512i b0 = _mm512_loadu_si512((const void *)(bg + 0));        \
    const __m512i b1 = _mm512_loadu_si512((const void *)(bg + 64));       \
    const __m512i b2 = _mm512_loadu_si512((const void *)(bg + 128));      \
    const __m512i b3 = _mm512_loadu_si512((const void *)(bg + 192))
#define VNNI_DECL(r)                                                      \
    __m512i c##r##0 = _mm512_setzero_si512(), c##r##1 = c##r##0, c##r##2 = c##r##0, \
            c##r##3 = c##r##0
#define VNNI_STORE(r)                                                     \
    do {                                                                  \
        _mm512_storeu_si512((void *)&tile[r][0], c##r##0);                \
        _mm512_storeu_si512((void *)&tile[r][16], c##r##1);               \
        _mm512_storeu_si512((void *)&tile[r][32], c##r##2);               \
        _mm512_storeu_si512((void *)&tile[r][48], c##r##3);               \
    } while (0)

REFCOMP_TARGET_AVX512VNNI static void kernel_vnni6(const uint8_t *pa, const uint8_t *pb,
                                                   int64_t kgroups, uint32_t tile[MR][NR]) {
    VNNI_DECL(0); VNNI_DECL(1); VNNI_DECL(2); VNNI_DECL(3); VNNI_DECL(4); VNNI_DECL(5);
    for (int64_t g = 0; g < kgroups; ++g) {
        VNNI_LOAD_B(g);
        VNNI_ROW(0); VNNI_ROW(1); VNNI_ROW(2); VNNI_ROW(3); VNNI_ROW(4); VNNI_ROW(5);
    }
    VNNI_STORE(0); VNNI_STORE(1); VNNI_STORE(2); VNNI_STORE(3); VNNI_STORE(4); VNNI_STORE(5);
}

/* one row (M = 1, matrix-vector): 4 accumulators, no wasted padding rows */
REFCOMP_TARGET_AVX512VNNI static void kernel_vnni1(const uint8_t *pa, const uint8_t *pb,
                                                   int64_t kgroups, uint32_t tile[MR][NR]) {
    VNNI_DECL(0);
    for (int64_t g = 0; g < kgroups; ++g) {
        VNNI_LOAD_B(g);
        VNNI_ROW(0);
    }
    VNNI_STORE(0);
}

/* up to three rows (the tail of M = 128 is 2 rows): 12 accumulators */
REFCOMP_TARGET_AVX512VNNI static void kernel_vnni3(const uint8_t *pa, const uint8_t *pb,
                                                   int64_t kgroups, uint32_t tile[MR][NR]) {
    VNNI_DECL(0); VNNI_DECL(1); VNNI_DECL(2);
    for (int64_t g = 0; g < kgroups; ++g) {
        VNNI_LOAD_B(g);
        VNNI_ROW(0); VNNI_ROW(1); VNNI_ROW(2);
    }
    VNNI_STORE(0); VNNI_STORE(1); VNNI_STORE(2);
}

/* Fused epilogue for uniform zero points (za'[i] = za', zb'[j] = zb' for all
 * i, j -- the per-tensor case): eq. (3) splits into a column term and a row
 * term, precomputed by the driver (mod 2^32),
 *   colconst[j] = bias[j] - za' colfix[j],   rowconst[i] = -zb' ra'[i],
 * so C = acc + colconst[j] + rowconst[i]: two vpaddd on the accumulators
 * in registers and a (masked) store straight into C, instead of a store to
 * the tile, a reload and two vpmulld per vector (epilogue_avx512). */
#define VNNI_COLS_DECL                                                    \
    const __mmask16 m0 = vmask(nc, 0), m1 = vmask(nc, 1), m2 = vmask(nc, 2), m3 = vmask(nc, 3); \
    const __m512i k0 = _mm512_maskz_loadu_epi32(m0, colconst + 0);       \
    const __m512i k1 = _mm512_maskz_loadu_epi32(m1, colconst + 16);      \
    const __m512i k2 = _mm512_maskz_loadu_epi32(m2, colconst + 32);      \
    const __m512i k3 = _mm512_maskz_loadu_epi32(m3, colconst + 48)
#define VNNI_STORE_C(r)                                                   \
    do {                                                                  \
        if ((r) < mr) {                                                   \
            const __m512i rc = _mm512_set1_epi32((int)rowconst[r]);       \
            int32_t *crow = C + (int64_t)(r) * ldc;                       \
            _mm512_mask_storeu_epi32(crow + 0, m0, _mm512_add_epi32(_mm512_add_epi32(c##r##0, k0), rc));  \
            _mm512_mask_storeu_epi32(crow + 16, m1, _mm512_add_epi32(_mm512_add_epi32(c##r##1, k1), rc)); \
            _mm512_mask_storeu_epi32(crow + 32, m2, _mm512_add_epi32(_mm512_add_epi32(c##r##2, k2), rc)); \
            _mm512_mask_storeu_epi32(crow + 48, m3, _mm512_add_epi32(_mm512_add_epi32(c##r##3, k3), rc)); \
        }                                                                 \
    } while (0)

/* lanes of 16-column vector v that are inside the nc valid columns */
static inline __attribute__((always_inline)) __mmask16 vmask(int64_t nc, int v) {
    const int64_t left = nc - 16 * v;
    return left >= 16 ? (__mmask16)0xFFFF : left <= 0 ? (__mmask16)0 : (__mmask16)((1u << left) - 1u);
}

/* Panels [ip0, ip1) of A, each of 4-6 rows, against one B panel, in one
 * call: the column terms and masks stay in registers for all of them, and
 * no call per tile (+1-3 % at K = 384, where a tile is only ~2300 cycles). */
REFCOMP_TARGET_AVX512VNNI static void kernel_vnni6_fused(int64_t M, int64_t ip0, int64_t ip1,
                                                         const uint8_t *pa_all, const uint8_t *pb,
                                                         int64_t kgroups, int32_t *C_panel, int64_t ldc,
                                                         const uint32_t *colconst,
                                                         const uint32_t *rowconst_all, int64_t nc) {
    VNNI_COLS_DECL;
    for (int64_t ip = ip0; ip < ip1; ++ip) {
        const int64_t i0 = ip * MR;
        const int mr = (int)(M - i0 < MR ? M - i0 : MR);
        const uint8_t *pa = pa_all + ip * kgroups * MR * KG;
        int32_t *C = C_panel + i0 * ldc;
        const uint32_t *rowconst = rowconst_all + i0;
        VNNI_DECL(0); VNNI_DECL(1); VNNI_DECL(2); VNNI_DECL(3); VNNI_DECL(4); VNNI_DECL(5);
        for (int64_t g = 0; g < kgroups; ++g) {
            VNNI_LOAD_B(g);
            VNNI_ROW(0); VNNI_ROW(1); VNNI_ROW(2); VNNI_ROW(3); VNNI_ROW(4); VNNI_ROW(5);
        }
        VNNI_STORE_C(0); VNNI_STORE_C(1); VNNI_STORE_C(2); VNNI_STORE_C(3); VNNI_STORE_C(4); VNNI_STORE_C(5);
    }
}

REFCOMP_TARGET_AVX512VNNI static void kernel_vnni(int mr, const uint8_t *pa, const uint8_t *pb,
                                                  int64_t kgroups, uint32_t tile[MR][NR]) {
    if (mr == 1)
        kernel_vnni1(pa, pb, kgroups, tile);
    else if (mr <= 3)
        kernel_vnni3(pa, pb, kgroups, tile);
    else
        kernel_vnni6(pa, pb, kgroups, tile);
}
#endif

/* ----------------------------------------------------------- the driver */

/* The micro-kernel a call runs: the path's own, on the layout B was packed in. */
enum {
    KERN_SCALAR,       /* LAYOUT_U8X4, scalar */
    KERN_SCALAR_PAIRS, /* LAYOUT_I16X2, scalar */
    KERN_AVX2_U8X4,    /* LAYOUT_U8X4 on the AVX2 path (a pack made by the VNNI path) */
    KERN_AVX2_PAIRS,   /* LAYOUT_I16X2 on the AVX2 or VNNI path */
    KERN_VNNI          /* LAYOUT_U8X4 on the VNNI path */
};

typedef struct {
    int isa, kern;
    int64_t M, N, K, kgroups, mpanels, mblocks;
    const void *pa;         /* packed A */
    const refcomp_packed_b *pb;
    const uint32_t *rowsum; /* ra'[i] */
    const uint32_t *zap;    /* za'[i] */
    const uint32_t *zbp;    /* zb'[j] */
    const uint32_t *colfix; /* cb'[j] - K zb'[j] */
    const uint32_t *bias;   /* bias[j] or 0 */
    const uint32_t *colconst; /* bias[j] - za' colfix[j], when za', zb' are uniform (AVX2, VNNI), else NULL */
    const uint32_t *rowconst; /* -zb' ra'[i], idem */
    int32_t *C;
    int64_t ldc;
} gemm_ctx;

/* C[i0+r, j0+c] = tile[r][c] + bias[j] - zb'[j] ra'[i] - za'[i] colfix[j] (mod 2^32):
 * eq. (3) for the valid part of one tile. The same loop is compiled for each
 * ISA (the baseline x86-64 build has no 32-bit vector multiply). */
static inline __attribute__((always_inline)) void epilogue(const gemm_ctx *x,
                                                           uint32_t tile[MR][NR], int64_t i0,
                                                           int mr, int64_t j0, int64_t nc) {
    const uint32_t *bias = x->bias + j0, *zbp = x->zbp + j0, *colfix = x->colfix + j0;
    for (int r = 0; r < mr; ++r) {
        const int64_t i = i0 + r;
        const uint32_t ra = x->rowsum[i], za = x->zap[i];
        uint32_t *crow = (uint32_t *)(x->C + i * x->ldc + j0); /* same bits as int32 */
        const uint32_t *t = tile[r];
        for (int64_t c = 0; c < nc; ++c) crow[c] = t[c] + bias[c] - zbp[c] * ra - za * colfix[c];
    }
}
static void epilogue_scalar(const gemm_ctx *x, uint32_t tile[MR][NR], int64_t i0, int mr,
                            int64_t j0, int64_t nc) {
    epilogue(x, tile, i0, mr, j0, nc);
}
#if REFCOMP_X86 && !defined(REFCOMP_NO_SIMD)
REFCOMP_TARGET_AVX2 static void epilogue_avx2(const gemm_ctx *x, uint32_t tile[MR][NR], int64_t i0,
                                              int mr, int64_t j0, int64_t nc) {
    if (x->colconst) {
        /* per-tensor zero points: eq. (3) regrouped as acc + colconst[j] + rowconst[i]
         * (see VNNI_STORE_C), two vpaddd per vector instead of two vpmulld, which
         * took ~10 % of the AVX2 GEMM's time at K = 384 */
        const uint32_t *colconst = x->colconst + j0;
        for (int r = 0; r < mr; ++r) {
            const uint32_t rc = x->rowconst[i0 + r];
            uint32_t *crow = (uint32_t *)(x->C + (i0 + r) * x->ldc + j0);
            const uint32_t *t = tile[r];
            for (int64_t c = 0; c < nc; ++c) crow[c] = t[c] + colconst[c] + rc;
        }
        return;
    }
    epilogue(x, tile, i0, mr, j0, nc);
}
/* eq. (3) with explicit 16-lane vectors and masked loads/stores for the
 * last columns (GCC's auto-vectorized loop above was ~4x slower here). */
REFCOMP_TARGET_AVX512VNNI static void epilogue_avx512(const gemm_ctx *x, uint32_t tile[MR][NR],
                                                      int64_t i0, int mr, int64_t j0, int64_t nc) {
    __m512i bias[NR / 16], zbp[NR / 16], colfix[NR / 16];
    __mmask16 m[NR / 16];
    for (int v = 0; v < NR / 16; ++v) {
        const int64_t left = nc - 16 * v;
        m[v] = left >= 16 ? (__mmask16)0xFFFF : left <= 0 ? (__mmask16)0 : (__mmask16)((1u << left) - 1u);
        bias[v] = _mm512_maskz_loadu_epi32(m[v], x->bias + j0 + 16 * v);
        zbp[v] = _mm512_maskz_loadu_epi32(m[v], x->zbp + j0 + 16 * v);
        colfix[v] = _mm512_maskz_loadu_epi32(m[v], x->colfix + j0 + 16 * v);
    }
    for (int r = 0; r < mr; ++r) {
        const int64_t i = i0 + r;
        const __m512i ra = _mm512_set1_epi32((int)x->rowsum[i]), za = _mm512_set1_epi32((int)x->zap[i]);
        int32_t *crow = x->C + i * x->ldc + j0;
        for (int v = 0; v < NR / 16; ++v) {
            if (!m[v]) break;
            __m512i t = _mm512_load_si512((const void *)&tile[r][16 * v]);
            t = _mm512_add_epi32(t, bias[v]);
            t = _mm512_sub_epi32(t, _mm512_mullo_epi32(zbp[v], ra));
            t = _mm512_sub_epi32(t, _mm512_mullo_epi32(za, colfix[v]));
            _mm512_mask_storeu_epi32(crow + 16 * v, m[v], t);
        }
    }
}
#endif

/* The valid part of one tile through eq. (3), on the ISA's epilogue. */
static void epilogue_isa(const gemm_ctx *x, uint32_t tile[MR][NR], int64_t i0, int mr, int64_t j0,
                         int64_t nc) {
    switch (x->isa) {
#if REFCOMP_X86 && !defined(REFCOMP_NO_SIMD)
    case REFCOMP_ISA_AVX512VNNI: epilogue_avx512(x, tile, i0, mr, j0, nc); break;
    case REFCOMP_ISA_AVX2: epilogue_avx2(x, tile, i0, mr, j0, nc); break;
#endif
    default: epilogue_scalar(x, tile, i0, mr, j0, nc);
    }
}

/* A task on LAYOUT_I16X2: each of the task's A panels against the 16-column
 * strips of 64-column panel jp (the A panel stays in L1, the four strips come
 * from L2; measured ~4 % faster at M = 4096 than strips outer, A inner, and
 * no different from two strips per pass, whose B would stay in L1). */
static void gemm_task_pairs(const gemm_ctx *x, int64_t jp, int64_t ip0, int64_t ip1) {
    uint32_t tile[MR][NR] __attribute__((aligned(64)));
    const int64_t s1 = (jp + 1) * (NR / NS) < x->pb->nstrips ? (jp + 1) * (NR / NS) : x->pb->nstrips;
    for (int64_t ip = ip0; ip < ip1; ++ip) {
        for (int64_t strip = jp * (NR / NS); strip < s1; ++strip) {
            const int16_t *pb = (const int16_t *)(const void *)x->pb->data + strip * x->kgroups * NS * KG;
            const int64_t j0 = strip * NS, nc = x->N - j0 < NS ? x->N - j0 : NS;
            const int64_t i0 = ip * MR;
            const int mr = (int)(x->M - i0 < MR ? x->M - i0 : MR);
#if REFCOMP_X86 && !defined(REFCOMP_NO_SIMD)
            if (x->kern == KERN_AVX2_PAIRS) {
                /* per-tensor zero points and a full strip: the kernel writes C */
                const int fused = x->colconst && nc == NS;
                kernel_pairs(mr, (const int16_t *)x->pa + ip * x->kgroups * MR * KG, pb, x->kgroups, tile,
                             fused ? x->C + i0 * x->ldc + j0 : NULL, x->ldc,
                             fused ? x->colconst + j0 : NULL, fused ? x->rowconst + i0 : NULL);
                if (fused) continue;
            } else
#endif
                kernel_scalar_pairs(mr, (const uint8_t *)x->pa + ip * x->kgroups * MR * KG, pb,
                                    x->kgroups, tile);
            epilogue_isa(x, tile, i0, mr, j0, nc);
        }
    }
}

static void gemm_task(void *vctx, int64_t task) {
    const gemm_ctx *x = (const gemm_ctx *)vctx;
    int64_t jp = task / x->mblocks, mb = task % x->mblocks;
    int64_t ip0 = mb * M_PANELS_PER_TASK, ip1 = ip0 + M_PANELS_PER_TASK;
    if (ip1 > x->mpanels) ip1 = x->mpanels;
    if (x->kern == KERN_AVX2_PAIRS || x->kern == KERN_SCALAR_PAIRS) {
        gemm_task_pairs(x, jp, ip0, ip1);
        return;
    }
    const uint8_t *pb = x->pb->data + jp * x->kgroups * NR * KG;
    int64_t j0 = jp * NR, nc = x->N - j0 < NR ? x->N - j0 : NR;
    uint32_t tile[MR][NR] __attribute__((aligned(64)));
#if REFCOMP_X86 && !defined(REFCOMP_NO_SIMD)
    if (x->kern == KERN_VNNI && x->colconst) {
        /* the fused 6-row kernel takes every panel of 4-6 rows; a last panel
         * of 1-3 rows (M mod 6) goes through the small kernels below */
        int64_t ipf = ip1;
        if (ipf > ip0 && x->M - (ipf - 1) * MR <= 3) --ipf;
        if (ipf > ip0)
            kernel_vnni6_fused(x->M, ip0, ipf, (const uint8_t *)x->pa, pb, x->kgroups, x->C + j0,
                               x->ldc, x->colconst + j0, x->rowconst, nc);
        ip0 = ipf;
    }
#endif
    for (int64_t ip = ip0; ip < ip1; ++ip) {
        int64_t i0 = ip * MR;
        int mr = (int)(x->M - i0 < MR ? x->M - i0 : MR);
        switch (x->kern) {
#if REFCOMP_X86 && !defined(REFCOMP_NO_SIMD)
        case KERN_VNNI:
            kernel_vnni(mr, (const uint8_t *)x->pa + ip * x->kgroups * MR * KG, pb, x->kgroups,
                        tile);
            break;
        case KERN_AVX2_U8X4:
            kernel_avx2(mr, (const int16_t *)x->pa + ip * x->kgroups * MR * KG, pb, x->kgroups,
                        tile);
            break;
#endif
        default:
            kernel_scalar(mr, (const uint8_t *)x->pa + ip * x->kgroups * MR * KG, pb, x->kgroups,
                          tile);
        }
        /* epilogue, eq. (3): acc + bias - zb' ra' - za' (cb' - K zb'), compiled per ISA */
        epilogue_isa(x, tile, i0, mr, j0, nc);
    }
}

int refcomp_matmul_integer_packed(int isa, int nthreads, int64_t M, const void *A, int64_t lda,
                                  int a_is_signed, const int32_t *a_zero_point,
                                  const refcomp_packed_b *B, const int32_t *b_zero_point,
                                  const int32_t *bias, int32_t *C, int64_t ldc) {
    if (!B || M < 0) return REFCOMP_EINVAL;
    const int64_t K = B->K, N = B->N;
    if (M > 0 && N > 0 && (!C || ldc < N)) return REFCOMP_EINVAL;
    if (M > 0 && K > 0 && (!A || lda < K)) return REFCOMP_EINVAL;
    isa = refcomp__resolve_isa(isa);
    if (isa < 0) return isa;
    if (M == 0 || N == 0) return REFCOMP_OK;

    /* the path's kernel for B's layout: an AVX-512 machine runs a LAYOUT_I16X2
     * pack with the AVX2 pair kernel (it has AVX2), an AVX2 call on a
     * LAYOUT_U8X4 pack (made by the VNNI path) the byte-layout AVX2 kernel */
    int kern = B->layout == LAYOUT_I16X2 ? KERN_SCALAR_PAIRS : KERN_SCALAR;
#if REFCOMP_X86 && !defined(REFCOMP_NO_SIMD)
    if (isa != REFCOMP_ISA_SCALAR)
        kern = B->layout == LAYOUT_I16X2 ? KERN_AVX2_PAIRS
               : isa == REFCOMP_ISA_AVX512VNNI ? KERN_VNNI : KERN_AVX2_U8X4;
#endif
    /* A as int16 a' for the vpmaddwd kernels, as int8 a' for the others */
    const int wide = kern == KERN_AVX2_U8X4 || kern == KERN_AVX2_PAIRS;
    const int64_t kgroups = B->kgroups;
    const int64_t mpanels = (M + MR - 1) / MR;
    size_t abytes = (size_t)(mpanels * kgroups) * MR * KG * (wide ? 2 : 1);
    /* pack_a_avx512 writes every byte, padding included; the scalar pack_a
     * leaves the padding to zalloc64 */
    int vector_pack = 0;
#if REFCOMP_X86 && !defined(REFCOMP_NO_SIMD)
    vector_pack = kern == KERN_VNNI;
#endif
    void *pa = vector_pack ? alloc64(abytes) : zalloc64(abytes);
    uint32_t *rows = (uint32_t *)malloc(3 * (size_t)M * sizeof(uint32_t));
    uint32_t *cols = (uint32_t *)malloc(4 * (size_t)N * sizeof(uint32_t));
    if (!pa || !rows || !cols) {
        free(pa);
        free(rows);
        free(cols);
        return REFCOMP_ENOMEM;
    }
    uint32_t *rowsum = rows, *zap = rows + M;
    uint32_t *zbp = cols, *colfix = cols + N, *biasv = cols + 2 * N;
#if REFCOMP_X86 && !defined(REFCOMP_NO_SIMD)
    if (vector_pack)
        pack_a_avx512(M, K, (const uint8_t *)A, lda, a_is_signed, (uint8_t *)pa, kgroups, rowsum);
    else
#endif
        pack_a(M, K, (const uint8_t *)A, lda, a_is_signed, wide, pa, kgroups, rowsum);
    /* za' = za - sa (sa = 128 for uint8 A), zb' = zb - sb (sb = -128 for int8 B) */
    const uint32_t sa = a_is_signed ? 0u : 128u;
    const uint32_t sb = B->b_is_signed ? (uint32_t)-128 : 0u;
    for (int64_t i = 0; i < M; ++i)
        zap[i] = (a_zero_point ? (uint32_t)a_zero_point[i] : 0u) - sa;
    for (int64_t j = 0; j < N; ++j) {
        zbp[j] = (b_zero_point ? (uint32_t)b_zero_point[j] : 0u) - sb;
        colfix[j] = B->colsum[j] - (uint32_t)K * zbp[j];
        biasv[j] = bias ? (uint32_t)bias[j] : 0u;
    }
    /* per-tensor zero points (every za'[i] equal, every zb'[j] equal): the
     * fused epilogue's row and column terms, eq. (3) regrouped mod 2^32 */
    int uniform = 1;
    for (int64_t i = 1; i < M && uniform; ++i) uniform = zap[i] == zap[0];
    for (int64_t j = 1; j < N && uniform; ++j) uniform = zbp[j] == zbp[0];
    uint32_t *colconst = NULL, *rowconst = NULL;
    if (uniform && isa != REFCOMP_ISA_SCALAR) {
        colconst = cols + 3 * N;
        rowconst = rows + 2 * M;
        for (int64_t j = 0; j < N; ++j) colconst[j] = biasv[j] - zap[0] * colfix[j];
        for (int64_t i = 0; i < M; ++i) rowconst[i] = 0u - zbp[0] * rowsum[i];
    }
    gemm_ctx ctx = {isa,    kern, M,   N,      K,      kgroups, mpanels,
                    (mpanels + M_PANELS_PER_TASK - 1) / M_PANELS_PER_TASK,
                    pa,     B,   rowsum, zap,    zbp,     colfix,
                    biasv,  colconst, rowconst, C,   ldc};
    /* tiny problems: thread start-up would cost more than the work */
    if ((double)M * (double)N * (double)K < 2.0e6) nthreads = 1;
    int st = refcomp__parallel_for(nthreads, B->npanels * ctx.mblocks, gemm_task, &ctx);
    free(pa);
    free(rows);
    free(cols);
    return st;
}

int refcomp_matmul_integer(int isa, int nthreads, int64_t M, int64_t K, int64_t N, const void *A,
                           int64_t lda, int a_is_signed, const int32_t *a_zero_point,
                           const void *B, int64_t ldb, int b_is_signed,
                           const int32_t *b_zero_point, const int32_t *bias, int32_t *C,
                           int64_t ldc) {
    if (M < 0 || K < 0 || N < 0) return REFCOMP_EINVAL;
    if (M > 0 && K > 0 && (!A || lda < K)) return REFCOMP_EINVAL; /* before B is read */
    if (M > 0 && N > 0 && (!C || ldc < N)) return REFCOMP_EINVAL;
    int r = refcomp__resolve_isa(isa);
    if (r < 0) return r;
    refcomp_packed_b *pb = NULL;
    /* B in the layout of the path that runs (AVX2: int16 pairs) */
    int st = refcomp__pack_b_isa(r, K, N, B, ldb, b_is_signed, &pb);
    if (st != REFCOMP_OK) return st;
    st = refcomp_matmul_integer_packed(isa, nthreads, M, A, lda, a_is_signed, a_zero_point, pb,
                                       b_zero_point, bias, C, ldc);
    refcomp_packed_b_free(pb);
    return st;
}
