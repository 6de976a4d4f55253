/*
 * refcomp.h -- the public C99 interface of refcomp's native kernels.
 *
 * One header for every caller: the cffi extension refcomp.kernels._crefcomp,
 * and any C/C++ runtime that links librefcomp.a / librefcomp.so directly.
 * The numeric contract of each function is stated here; csrc/README.md and
 * docs/kernels.md explain why the fast paths meet it.
 *
 * Conventions
 *   - Matrices are row-major with an explicit leading dimension (elements
 *     between the starts of two consecutive rows); ld >= number of columns.
 *   - Sizes are int64_t and must be >= 0; a size of 0 is a valid no-op.
 *   - `isa` selects the code path: REFCOMP_ISA_AUTO picks the best one this
 *     CPU supports; asking for a path the CPU (or this build) cannot run
 *     returns REFCOMP_EISA.  The choice is an argument, never global state.
 *   - `nthreads` >= 1 splits the output over that many POSIX threads; every
 *     output element is computed by the same instruction sequence whatever
 *     the split, so results are identical for every thread count.
 *   - Functions return REFCOMP_OK (0) or a negative refcomp_status. They do
 *     not print, abort or touch errno. Arguments are checked for null
 *     pointers and impossible sizes; the *values* (indices of a CSR matrix,
 *     ...) are the caller's responsibility where stated ("precondition").
 */
#ifndef REFCOMP_H
#define REFCOMP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ status */
enum refcomp_status {
    REFCOMP_OK = 0,
    REFCOMP_EINVAL = -1, /* null pointer, negative size, ld < columns ...   */
    REFCOMP_ENOMEM = -2, /* allocation failed                              */
    REFCOMP_EISA = -3,   /* the requested ISA path cannot run here         */
    REFCOMP_ETHREAD = -4 /* reserved: a failed pthread_create falls back to the calling thread */
};

/* ---------------------------------------------------------------- ISA paths */
enum refcomp_isa {
    REFCOMP_ISA_AUTO = 0,      /* best supported path                      */
    REFCOMP_ISA_SCALAR = 1,    /* portable C99, every machine              */
    REFCOMP_ISA_AVX2 = 2,      /* AVX2 (vpmaddwd on 16-bit operands)       */
    REFCOMP_ISA_AVX512VNNI = 3 /* AVX-512 F/BW/VL + VNNI (vpdpbusd)        */
};

/* 1 if `isa` can run on this CPU with this build, else 0 (AUTO -> 1). */
int refcomp_isa_supported(int isa);
/* The path REFCOMP_ISA_AUTO resolves to on this CPU. */
int refcomp_isa_best(void);
/* A static name: "scalar", "avx2", "avx512vnni" (or "unknown"). */
const char *refcomp_isa_name(int isa);

/* ------------------------------------------------------- integer GEMM (int32)
 *
 *   C[i,j] = bias[j] + sum_{k<K} (A[i,k] - a_zero_point[i]) * (B[k,j] - b_zero_point[j])
 *
 * A: M x K, uint8 (a_is_signed = 0) or int8 (a_is_signed = 1), leading dim lda.
 * B: K x N, int8 (b_is_signed = 1) or uint8 (b_is_signed = 0), leading dim ldb.
 * a_zero_point: int32[M] (one per row of A) or NULL for 0.
 * b_zero_point: int32[N] (one per column of B) or NULL for 0.
 * bias: int32[N] or NULL.   C: int32, M x N, leading dim ldc.
 *
 * Exactness: every path computes the right-hand side in two's-complement
 * arithmetic modulo 2^32. So C is exact whenever the exact value fits in
 * int32 -- in particular whenever K * max|A - za| * max|B - zb| + max|bias|
 * <= 2^31 - 1, which is the precondition refcomp.ops checks before calling.
 * Outside it, C is the exact value reduced modulo 2^32 (never saturated,
 * never undefined behaviour). No path uses vpmaddubsw or vpdpbusds, the
 * instructions that saturate.
 */
int refcomp_matmul_integer(int isa, int nthreads, int64_t M, int64_t K, int64_t N,
                           const void *A, int64_t lda, int a_is_signed,
                           const int32_t *a_zero_point,
                           const void *B, int64_t ldb, int b_is_signed,
                           const int32_t *b_zero_point,
                           const int32_t *bias, int32_t *C, int64_t ldc);

/* Packed B: B re-laid out once (values shifted to uint8, groups of 4
 * consecutive k), plus its column sums. The layout is the one the best path
 * of this CPU reads: bytes in panels of 64 columns (AVX-512 VNNI, scalar),
 * or int16 k pairs in strips of 16 columns (AVX2; about twice the memory of
 * B). Every isa multiplies either layout. Pack a weight once and reuse it
 * across calls: same results as the unpacked call. */
typedef struct refcomp_packed_b refcomp_packed_b;

int refcomp_pack_b(int64_t K, int64_t N, const void *B, int64_t ldb, int b_is_signed,
                   refcomp_packed_b **out);
void refcomp_packed_b_free(refcomp_packed_b *packed);
int64_t refcomp_packed_b_rows(const refcomp_packed_b *packed); /* K */
int64_t refcomp_packed_b_cols(const refcomp_packed_b *packed); /* N */

int refcomp_matmul_integer_packed(int isa, int nthreads, int64_t M,
                                  const void *A, int64_t lda, int a_is_signed,
                                  const int32_t *a_zero_point,
                                  const refcomp_packed_b *B, const int32_t *b_zero_point,
                                  const int32_t *bias, int32_t *C, int64_t ldc);

/* ------------------------------------------------------- requantization
 * Both: acc int32 M x N (leading dim ld_acc) -> out int32 M x N (leading dim
 * ld_out), per-column parameters of length N (broadcast a per-tensor value
 * by repeating it), result clipped to [qmin, qmax] (qmin <= qmax).
 *
 * Float method (ONNX QLinearMatMul / QLinearConv):
 *   out = clip(round_half_even(float32(acc) * multiplier[j]) + zero_point[j], qmin, qmax)
 * where float32(acc) rounds to nearest even, the product is ONE float32
 * multiplication (round to nearest even, no FMA, no double), and the rounding
 * to integer is half-to-even. Non-finite products (multiplier inf/nan) are
 * the caller's problem: refcomp.ops rejects non-finite multipliers. The
 * rounded value is clipped against [qmin - zp, qmax - zp] in double before
 * zp is added, which equals clipping r + zp (exact in float64 for every
 * |r| < 2^53; larger r is clipped either way), so no intermediate overflows.
 * Requires qmin - zp and qmax - zp inside int32 (else REFCOMP_EINVAL).
 * Paths: AVX2 (also taken for REFCOMP_ISA_AVX512VNNI) when the bounds are
 * below 2^24 in magnitude, else scalar; every path gives the same bits.
 *
 * Fixed-point method (gemmlowp / TFLite MultiplyByQuantizedMultiplier):
 *   x  = acc * 2^max(shift,0)                        (saturated to int32)
 *   h  = SaturatingRoundingDoublingHighMul(x, multiplier[j])
 *   r  = RoundingDivideByPOT(h, max(-shift, 0))
 *   out = clip(r + zero_point[j], qmin, qmax)        (sum in int64)
 * with -31 <= shift[j] <= 30 (else REFCOMP_EINVAL). Scalar C (int64 where
 * a sum could overflow) on every path; refcomp.ops raises instead of
 * saturating x.
 */
int refcomp_requantize_float(int isa, int64_t M, int64_t N, const int32_t *acc, int64_t ld_acc,
                             const float *multiplier, const int32_t *zero_point,
                             int32_t qmin, int32_t qmax, int32_t *out, int64_t ld_out);

int refcomp_requantize_fixed_point(int isa, int64_t M, int64_t N, const int32_t *acc, int64_t ld_acc,
                                   const int32_t *multiplier, const int32_t *shift,
                                   const int32_t *zero_point, int32_t qmin, int32_t qmax,
                                   int32_t *out, int64_t ld_out);

/* gemmlowp's two primitives, exposed for tests and for C callers. */
int32_t refcomp_saturating_rounding_doubling_high_mul(int32_t a, int32_t b);
int32_t refcomp_rounding_divide_by_pot(int32_t x, int exponent); /* 0 <= exponent <= 31 */

#define REFCOMP_INDEX_U16 16 /* uint16_t column indices */
#define REFCOMP_INDEX_I32 32 /* int32_t column indices */

/* ------------------------------------------------------- sparse x dense
 * W is a CSR matrix with `rows` rows: row r holds the entries
 * data[p], column indices[p], for indptr[r] <= p < indptr[r+1].
 * Offsets are int64 (nnz may pass 2^31). Column indices are uint16 or int32,
 * named by index_type: REFCOMP_INDEX_U16 (W has at most 65536 columns) or
 * REFCOMP_INDEX_I32. The kernels are bound by memory traffic at high
 * sparsity, and the narrower index stream leaves more of L2 to the rows of X:
 * at 90 % sparsity measured ~4 % (int32) and ~8 % (uint16) faster than
 * int64 indices (docs/kernels.md). Any other index_type: REFCOMP_EINVAL.
 * Precondition (checked by refcomp.formats.CSRMatrix, NOT here):
 * indptr[0] = 0, indptr non-decreasing, every index in [0, cols of W).
 *
 * f32:  Y[r, :n] = sum_p data[p] * X[indices[p], :n]          (float32)
 *   X: (cols of W) x n, leading dim ldx; Y: rows x n, leading dim ldy.
 *   Each Y element is accumulated from 0 in CSR order; the AVX paths use
 *   fused multiply-add, so each step rounds once instead of twice. Error
 *   bound: |Y - exact| <= gamma_nnz(r) * sum_p |data[p]| |X[indices[p], j]|,
 *   gamma_m = m*u/(1 - m*u), u = 2^-24.
 * i8:   Y[r, :n] = sum_p data[p] * X[indices[p], :n]  in int32 modulo 2^32
 *   data int8, X int16, Y int32: exact when the value fits int32.
 */
int refcomp_csr_spmm_f32(int isa, int nthreads, int64_t rows, int64_t n,
                         const int64_t *indptr, const void *indices, int index_type,
                         const float *data, const float *X, int64_t ldx, float *Y, int64_t ldy);

/* The same product, W's columns cut into blocks: block_ptr[r * (nblocks + 1) + b]
 * is the first non-zero of row r in block b (so block_ptr[r*(nblocks+1)] =
 * indptr[r], block_ptr[r*(nblocks+1) + nblocks] = indptr[r+1], non-decreasing;
 * checked, else REFCOMP_EINVAL). Each block's rows of X are reused by 128 rows
 * of W while in L1. Bit-identical to refcomp_csr_spmm_f32 on the same path. */
int refcomp_csr_spmm_f32_blocked(int isa, int nthreads, int64_t rows, int64_t n,
                                 const int64_t *indptr, const void *indices, int index_type,
                                 const float *data, int64_t nblocks, const int64_t *block_ptr, const float *X,
                                 int64_t ldx, float *Y, int64_t ldy);

/* sparse_linear (refcomp.ops.sparse_linear, eq. S1): y = x W^T + bias, float32.
 *   x: batch x in (leading dim ldx); W: CSR with `out` rows, column indices in
 *   [0, in); bias: float32[out] or NULL; y: batch x out (leading dim ldy).
 * Computed as (W x^T)^T through refcomp_csr_spmm_f32 (or, with nblocks > 0 and
 * block_ptr, refcomp_csr_spmm_f32_blocked: same bits) on aligned scratch
 * copies, then ONE float32 addition of bias: same bits as spmm + add. */
int refcomp_csr_linear_f32(int isa, int nthreads, int64_t batch, int64_t in, int64_t out,
                           const int64_t *indptr, const void *indices, int index_type,
                           const float *data, int64_t nblocks, const int64_t *block_ptr,
                           const float *x, int64_t ldx, const float *bias, float *y, int64_t ldy);

int refcomp_csr_spmm_i8(int isa, int nthreads, int64_t rows, int64_t n,
                        const int64_t *indptr, const void *indices, int index_type,
                        const int8_t *data, const int16_t *X, int64_t ldx, int32_t *Y, int64_t ldy);

/* ------------------------------------------------------- GELU (float32)
 * ONNX Gelu-20, approximate = "none":  y[i] = x[i] * Phi(x[i]),
 * Phi(x) = (1 + erf(x / sqrt 2)) / 2, for i < n; y may equal x (in place).
 * Evaluated as the NumPy definition (refcomp.ops.gelu, eq. G1) evaluates it,
 * one float32 rounding per step:
 *     z = x / f32(sqrt 2),  e = erf(z),  y = x * (0.5 * (1 + e))
 * with e from gelu.c's own polynomial erf (within 1.13 ulp of the true erf)
 * instead of the C library's double erf. Bound against the definition:
 *     |y - y_def| <= 2^-24 |x| + ulp(y_def)                       (eq. G2)
 * because e is within 1 ulp (<= 2^-24) of the definition's e, 1 + e then
 * moves by at most 2^-24 plus one rounding step, and the product rounds once.
 * For x > 0 that is within 2 ulp of y_def; for x < 0 it is the absolute error
 * the definition itself makes when it rounds 1 + e to float32 (2^-25 |x|).
 * Never NaN for finite x; y = x for x >= 5.57, y = -0 for x <= -5.57; NaN -> NaN,
 * +inf -> +inf, -inf -> NaN (-inf * 0, as the definition).
 * Paths: scalar (every multiplication and addition rounded; the Numba twin
 * returns the same bits) and AVX2 + FMA (also run for REFCOMP_ISA_AVX512VNNI;
 * the same polynomials with fused Horner steps; its last n mod 8 elements run
 * the scalar code). Both meet eq. G2, so they are within twice it of each
 * other. Results do not depend on nthreads.
 */
int refcomp_gelu_f32(int isa, int nthreads, int64_t n, const float *x, float *y);

/* ------------------------------------------------------- per-row dynamic quantization
 * refcomp.ops.dynamic_quantize_rows (ONNX DynamicQuantizeLinear on each row of
 * its own), float32 x: M x K (leading dim ldx), K >= 1 -> y uint8 M x K
 * (leading dim ldy), scale float32[M], zero_point uint8[M]. For each row m:
 *   r_max = max(0, max_k x[m,k]),  r_min = min(0, min_k x[m,k])
 *   scale[m] = (r_max - r_min) / 255  (1 / 255 when r_max == r_min)
 *   zero_point[m] = round(clip(0 - r_min / scale[m], 0, 255))
 *   y[m,k] = clip(round(x[m,k] / scale[m]) + zero_point[m], 0, 255)
 * every step one float32 IEEE operation, round half to even: the same bits
 * as the NumPy definition on every path (scalar; AVX2, also taken for
 * REFCOMP_ISA_AVX512VNNI) and for every nthreads. Precondition (checked by
 * refcomp.ops, NOT here): every x finite. K < 1 or ld < K: REFCOMP_EINVAL.
 */
int refcomp_dynamic_quantize_rows_f32(int isa, int nthreads, int64_t M, int64_t K, const float *x,
                                      int64_t ldx, uint8_t *y, int64_t ldy, float *scale,
                                      uint8_t *zero_point);

/* ------------------------------------------------------- bit-count inner product
 * refcomp.ops.binary_matmul (XNOR-Net / BNN): A (M rows) and B (N rows) hold
 * +-1 vectors of length K packed as W = ceil(K/64) uint64 words per row
 * (leading dims lda, ldb >= W, in words): element k is bit k%64 of word k/64,
 * bit 1 = -1. C: int32, M x N, leading dim ldc >= N:
 *     C[i,j] = K - 2 * sum_w popcount(A[i,w] XOR B[j,w])      (eq. B1)
 * Precondition (checked by refcomp.ops, NOT here): the bits after element
 * K-1 of each row's last word are 0 in both operands. Exact on every path
 * (scalar: portable SWAR popcount; AVX2 / AVX512VNNI: the POPCNT
 * instruction when the CPU has it) and for every nthreads.
 * K < 1 or K > INT32_MAX, ld too small: REFCOMP_EINVAL.
 */
int refcomp_binary_matmul(int isa, int nthreads, int64_t M, int64_t N, int64_t K, const uint64_t *A,
                          int64_t lda, const uint64_t *B, int64_t ldb, int32_t *C, int64_t ldc);

#ifdef __cplusplus
}
#endif
#endif /* REFCOMP_H */
