/*
 * tinyml_simd_conv.h - convolution / fully connected micro-kernels on the
 * tinyml_simd.h primitives: a tile of output pixels x output channels.
 */
#ifndef TINYML_SIMD_CONV_H_
#define TINYML_SIMD_CONV_H_

#include "tinyml_simd.h"

/* ---- dot-product micro-kernels -------------------------------------------- */

/* acc += sum_k (x[k] + in_offset) * w[k] over k < n, four at a time with SMLAD. */
#define TINYML_DOT_STEP(ACC, XA, XB, WP)                  \
  do {                                                    \
    const uint32_t w_ = tinyml_load4(WP);                 \
    ACC = tinyml_smlad(XA, tinyml_sxtb16(w_), ACC);       \
    ACC = tinyml_smlad(XB, tinyml_sxtb16_ror8(w_), ACC);  \
  } while (0)

#define TINYML_TILE_STEP(KK) \
  do { \
      const uint32_t v0 = tinyml_load4(x0 + (KK)); \
      const uint32_t p0a = tinyml_sxtab16(off2, v0), p0b = tinyml_sxtab16_ror8(off2, v0); \
      uint32_t p1a = 0, p1b = 0; \
      if (M > 1) { \
        const uint32_t v1 = tinyml_load4(x1 + (KK)); \
        p1a = tinyml_sxtab16(off2, v1); \
        p1b = tinyml_sxtab16_ror8(off2, v1); \
      } \
      { \
        const uint32_t wv = tinyml_load4(w0 + (KK)); \
        const uint32_t wa = tinyml_sxtb16(wv), wb = tinyml_sxtb16_ror8(wv); \
        a00 = tinyml_smlad(p0b, wb, tinyml_smlad(p0a, wa, a00)); \
        if (M > 1) a10 = tinyml_smlad(p1b, wb, tinyml_smlad(p1a, wa, a10)); \
      } \
      if (N > 1) { \
        const uint32_t wv = tinyml_load4(w0 + ws + (KK)); \
        const uint32_t wa = tinyml_sxtb16(wv), wb = tinyml_sxtb16_ror8(wv); \
        a01 = tinyml_smlad(p0b, wb, tinyml_smlad(p0a, wa, a01)); \
        if (M > 1) a11 = tinyml_smlad(p1b, wb, tinyml_smlad(p1a, wa, a11)); \
      } \
      if (N > 2) { \
        const uint32_t wv = tinyml_load4(w0 + 2 * ws + (KK)); \
        const uint32_t wa = tinyml_sxtb16(wv), wb = tinyml_sxtb16_ror8(wv); \
        a02 = tinyml_smlad(p0b, wb, tinyml_smlad(p0a, wa, a02)); \
        if (M > 1) a12 = tinyml_smlad(p1b, wb, tinyml_smlad(p1a, wa, a12)); \
      } \
      if (N > 3) { \
        const uint32_t wv = tinyml_load4(w0 + 3 * ws + (KK)); \
        const uint32_t wa = tinyml_sxtb16(wv), wb = tinyml_sxtb16_ror8(wv); \
        a03 = tinyml_smlad(p0b, wb, tinyml_smlad(p0a, wa, a03)); \
        if (M > 1) a13 = tinyml_smlad(p1b, wb, tinyml_smlad(p1a, wa, a13)); \
      } \
 \
  } while (0)

/* M (1 or 2) output pixels x N (1, 2 or 4) output channels of a convolution
 * whose window is `rows` contiguous segments of `seg` int8 each:
 *   pixel m, segment r starts at x + m * xs + r * x_row;
 *   channel n, segment r of its weights starts at w + n * ws + r * w_row.
 * Accumulators start at bias; results are requantized into out[n] (pixel 0)
 * and out1[n] (pixel 1). */
TINYML_ALWAYS_INLINE void tinyml_conv_tile_s8(const int8_t *x, int32_t xs, int32_t x_row, const int8_t *w, int32_t ws,
                                       int32_t w_row, int32_t rows, int32_t seg, int32_t in_offset,
                                       const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out,
                                       int8_t *out1, int32_t out_zp, int32_t act_min, int32_t act_max, const int M,
                                       const int N, const int simd, const int unroll) {
  const uint32_t off2 = tinyml_offset2(in_offset);
  int32_t a00 = bias[0], a01 = N > 1 ? bias[1] : 0, a02 = N > 2 ? bias[2] : 0, a03 = N > 3 ? bias[3] : 0;
  int32_t a10 = a00, a11 = a01, a12 = a02, a13 = a03;
  for (int32_t r = 0; r < rows; ++r) {
    const int8_t *x0 = x + r * x_row;
    const int8_t *x1 = x0 + xs;
    const int8_t *w0 = w + r * w_row;
    int32_t k = 0;
    if (simd) {
      for (; k + 4 * unroll <= seg; k += 4 * unroll) {
        TINYML_TILE_STEP(k);
        if (unroll > 1) TINYML_TILE_STEP(k + 4);
      }
      for (; k + 4 <= seg; k += 4) TINYML_TILE_STEP(k);
    }
    for (; k < seg; ++k) {
      const int32_t xv0 = x0[k] + in_offset;
      const int32_t xv1 = M > 1 ? x1[k] + in_offset : 0;
      a00 += xv0 * w0[k];
      if (M > 1) a10 += xv1 * w0[k];
      if (N > 1) {
        a01 += xv0 * w0[ws + k];
        if (M > 1) a11 += xv1 * w0[ws + k];
      }
      if (N > 2) {
        a02 += xv0 * w0[2 * ws + k];
        if (M > 1) a12 += xv1 * w0[2 * ws + k];
      }
      if (N > 3) {
        a03 += xv0 * w0[3 * ws + k];
        if (M > 1) a13 += xv1 * w0[3 * ws + k];
      }
    }
  }
  out[0] = tinyml_requant_fast_i8(a00, mult[0], shift[0], out_zp, act_min, act_max);
  if (N > 1) out[1] = tinyml_requant_fast_i8(a01, mult[1], shift[1], out_zp, act_min, act_max);
  if (N > 2) out[2] = tinyml_requant_fast_i8(a02, mult[2], shift[2], out_zp, act_min, act_max);
  if (N > 3) out[3] = tinyml_requant_fast_i8(a03, mult[3], shift[3], out_zp, act_min, act_max);
  if (M > 1) {
    out1[0] = tinyml_requant_fast_i8(a10, mult[0], shift[0], out_zp, act_min, act_max);
    if (N > 1) out1[1] = tinyml_requant_fast_i8(a11, mult[1], shift[1], out_zp, act_min, act_max);
    if (N > 2) out1[2] = tinyml_requant_fast_i8(a12, mult[2], shift[2], out_zp, act_min, act_max);
    if (N > 3) out1[3] = tinyml_requant_fast_i8(a13, mult[3], shift[3], out_zp, act_min, act_max);
  }
}

/* The tile kernel for every (M, N, SIMD, UNROLL) the schedules use, all constant. */
#define TINYML_CONV_TILE(M, N, S, U)                                                                               \
  TINYML_ALWAYS_INLINE void tinyml_conv_s8_##M##x##N##_s##S##u##U(                                                        \
      const int8_t *x, int32_t xs, int32_t x_row, const int8_t *w, int32_t ws, int32_t w_row, int32_t rows,         \
      int32_t seg, int32_t in_offset, const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out, \
      int8_t *out1, int32_t out_zp, int32_t act_min, int32_t act_max) {                                              \
    tinyml_conv_tile_s8(x, xs, x_row, w, ws, w_row, rows, seg, in_offset, bias, mult, shift, out, out1, out_zp,     \
                        act_min, act_max, M, N, S, U);                                                             \
  }
#define TINYML_CONV_TILES(M, N) \
  TINYML_CONV_TILE(M, N, 0, 1)  \
  TINYML_CONV_TILE(M, N, 1, 1)  \
  TINYML_CONV_TILE(M, N, 1, 2)
TINYML_CONV_TILES(1, 1)
TINYML_CONV_TILES(1, 2)
TINYML_CONV_TILES(1, 4)
TINYML_CONV_TILES(2, 1)
TINYML_CONV_TILES(2, 2)
TINYML_CONV_TILES(2, 4)

/* ---- int16 GEMM micro-kernels ---------------------------------------------- *
 * A block of M (1 or 2) output pixels: its inputs are first expanded once to int16
 * (x + in_offset, zero padded to kp, a multiple of 4) into a word-aligned scratch buffer,
 * pixel m at xs + m * kp, so every read of the input happens before any output byte of the
 * block is written. Weights are int16 [n][kp] with channel pairs interleaved four values at a
 * time ([c0 k0..3][c1 k0..3][c0 k4..7]...; an odd last channel alone), passed as their bytes
 * (word aligned), so each aligned word pair (one LDRD) feeds two SMLADs of a 2 pixels x 2
 * channels tile.
 *
 * Requantization uses constants precomputed per channel from its shift (schedules/conv2d.py
 * requant_table): {C lo, C hi, r - 1, shift} with r = -shift and C = 2^30 + 2^(30+r), r - 1 = -1
 * marking a channel with a shift outside [-31, -1] (then tinyml_requant_fast_i8). With x the
 * accumulator and V = x * mult + C (|V| < 2^63), for 1 <= r <= 31
 *   tinyml_requant_fast_i8(x) = clamp(floor((V - [x < 0] * 2^31) / 2^(31+r)) + out_zp):
 * the nested floors of SaturatingRoundingDoublingHighMul (floor((x*m + 2^30) / 2^31)) and
 * RoundingDivideByPOT ((high + 2^(r-1) - [high < 0]) >> r) merge into one, and [high < 0] may be
 * [x < 0] (they differ only when high = 0, which rounds to 0 either way for r >= 1). The high
 * word of V - [x < 0] * 2^31 is hi(V) - 1 exactly when x < 0 and bit 31 of lo(V) is clear. */
TINYML_ALWAYS_INLINE int8_t tinyml_requant_merged_i8(int32_t acc, int32_t mult, int64_t c, int32_t r1, int32_t out_zp,
                                                     int32_t act_min, int32_t act_max) {
  const int64_t v = (int64_t)acc * mult + c;
  const int32_t borrow = (int32_t)((uint32_t)acc & ~(uint32_t)v) >> 31;
  return (int8_t)tinyml_sat_i8((((int32_t)(v >> 32) + borrow) >> r1) + out_zp, act_min, act_max);
}
TINYML_ALWAYS_INLINE int8_t tinyml_requant_table_i8(int32_t acc, int32_t mult, const int32_t *rq, int32_t out_zp,
                                                    int32_t act_min, int32_t act_max, const int fast) {
  if (!fast) return tinyml_requant_fast_i8(acc, mult, rq[3], out_zp, act_min, act_max);
  return tinyml_requant_merged_i8(acc, mult, tinyml_load8a(rq), rq[2], out_zp, act_min, act_max);
}

/* n int8 at x -> n int16 x + in_offset at dst (any alignment). */
TINYML_ALWAYS_INLINE void tinyml_expand_s16(const int8_t *x, int32_t n, int16_t *dst, int32_t in_offset) {
  const uint32_t off2 = tinyml_offset2(in_offset);
  int32_t k = 0;
  for (; k + 4 <= n; k += 4) {
    const uint32_t v = tinyml_load4(x + k);
    const uint32_t a = tinyml_sxtab16(off2, v), b = tinyml_sxtab16_ror8(off2, v);
    tinyml_store4(dst + k, tinyml_pack_lo(a, b));
    tinyml_store4(dst + k + 2, tinyml_pack_hi(a, b));
  }
  for (; k < n; ++k) {
    const int16_t e = (int16_t)(x[k] + in_offset);
    memcpy(dst + k, &e, 2);
  }
}

/* The window of one output pixel into slot `slot` (kp int16) of scratch: `rows` segments of
 * `seg` int8 at x + r * x_row go to values dst + r * w_row; a clipped window (rows * seg < k,
 * at a padded border) is zeroed first, and values k..kp-1 (at most 3) are always zero. */
TINYML_ALWAYS_INLINE void tinyml_im2col_s16(const int8_t *x, int32_t x_row, int32_t rows, int32_t seg, int32_t *scratch,
                                            int32_t slot, int32_t dst, int32_t w_row, int32_t k, int32_t kp,
                                            int32_t in_offset) {
  int16_t *d = (int16_t *)scratch + slot * kp;
  if (rows * seg < k) memset(d, 0, (size_t)k * 2);
  for (int32_t i = k; i < kp; ++i) d[i] = 0;
  for (int32_t r = 0; r < rows; ++r) tinyml_expand_s16(x + r * x_row, seg, d + dst + r * w_row, in_offset);
}

/* acc += the 4-value dot product of x and w (both int16, word aligned). */
#define TINYML_DOT4(ACC, X, W) \
  ACC = tinyml_smlad(tinyml_load4a((X) + 2), tinyml_load4a((W) + 2), tinyml_smlad(tinyml_load4a(X), tinyml_load4a(W), ACC))

/* M pixels x N (1 or 2) channels: accumulate over kp, U steps of 4 per iteration, requantize
 * (the fast way unless a channel's shift is >= 0). */
TINYML_ALWAYS_INLINE void tinyml_gemm_tile_s16(const int16_t *xs, int32_t kp, const int16_t *w, const int32_t *bias,
                                               const int32_t *mult, const int32_t *rq, int8_t *out0, int8_t *out1,
                                               int32_t out_zp, int32_t act_min, int32_t act_max, const int M,
                                               const int N, const int U) {
  const int16_t *x1 = xs + kp;
  int32_t a00 = bias[0], a01 = N > 1 ? bias[1] : 0;
  int32_t a10 = a00, a11 = a01;
  if (N > 1) {
    const int16_t *xp = xs, *wp = w;
    if (kp >= 4 * U) TINYML_MAC_S16(M, xp, wp, 2 * kp, kp / (4 * U), U, a00, a01, a10, a11);
    if (kp % (4 * U)) TINYML_MAC_S16(M, xp, wp, 2 * kp, 1, 1, a00, a01, a10, a11);
  } else {
    int32_t k = 0;
#define TINYML_GEMM_STEP(KK)                                     \
  do {                                                           \
    TINYML_DOT4(a00, xs + (KK), w + (KK));                       \
    if (M > 1) TINYML_DOT4(a10, x1 + (KK), w + (KK));            \
  } while (0)
    for (; k + 4 * U <= kp; k += 4 * U) {
      TINYML_GEMM_STEP(k);
      if (U > 1) TINYML_GEMM_STEP(k + 4);
    }
    if (U > 1 && k < kp) TINYML_GEMM_STEP(k);
#undef TINYML_GEMM_STEP
  }
#define TINYML_GEMM_STORE(FAST)                                                                                 \
  do {                                                                                                          \
    out0[0] = tinyml_requant_table_i8(a00, mult[0], rq, out_zp, act_min, act_max, FAST);                        \
    if (N > 1) out0[1] = tinyml_requant_table_i8(a01, mult[1], rq + 4, out_zp, act_min, act_max, FAST);         \
    if (M > 1) out1[0] = tinyml_requant_table_i8(a10, mult[0], rq, out_zp, act_min, act_max, FAST);             \
    if (M > 1 && N > 1) out1[1] = tinyml_requant_table_i8(a11, mult[1], rq + 4, out_zp, act_min, act_max, FAST); \
  } while (0)
  if ((rq[2] | (N > 1 ? rq[6] : 0)) >= 0)
    TINYML_GEMM_STORE(1);
  else
    TINYML_GEMM_STORE(0);
#undef TINYML_GEMM_STORE
}

/* M expanded pixels (scratch xs) x all n output channels; pixel m's outputs at out + m * n. */
TINYML_ALWAYS_INLINE void tinyml_gemm_s16(const int32_t *xs, int32_t kp, const int8_t *w8, int32_t n,
                                          const int32_t *bias, const int32_t *mult, const int32_t *rq, int8_t *out,
                                          int32_t out_zp, int32_t act_min, int32_t act_max, const int M,
                                          const int U) {
  const int16_t *x = (const int16_t *)xs, *w = (const int16_t *)w8;
  int32_t c = 0;
  for (; c + 2 <= n; c += 2)
    tinyml_gemm_tile_s16(x, kp, w + c * kp, bias + c, mult + c, rq + 4 * c, out + c, out + n + c, out_zp, act_min,
                         act_max, M, 2, U);
  if (c < n)
    tinyml_gemm_tile_s16(x, kp, w + c * kp, bias + c, mult + c, rq + 4 * c, out + c, out + n + c, out_zp, act_min,
                         act_max, M, 1, U);
}

/* tinyml_conv_s8_gemm_<M>_u<U>: the GEMM over an expanded block; tinyml_conv_s8_pw_<M>_u<U>: a 1x1
 * convolution / dense block of M pixels (k int8 each, contiguous at x) expanded into scratch,
 * then the GEMM. */
#define TINYML_GEMM(M, U)                                                                                            \
  TINYML_ALWAYS_INLINE void tinyml_conv_s8_gemm_##M##_u##U(const int32_t *xs, int32_t kp, const int8_t *w, int32_t n,    \
                                                       const int32_t *bias, const int32_t *mult, const int32_t *rq, \
                                                       int8_t *out, int32_t out_zp, int32_t act_min,                \
                                                       int32_t act_max) {                                           \
    tinyml_gemm_s16(xs, kp, w, n, bias, mult, rq, out, out_zp, act_min, act_max, M, U);                              \
  }                                                                                                                  \
  TINYML_ALWAYS_INLINE void tinyml_conv_s8_pw_##M##_u##U(const int8_t *x, int32_t k, int32_t kp, int32_t in_offset,       \
                                                    int32_t *scratch, const int8_t *w, int32_t n,                   \
                                                    const int32_t *bias, const int32_t *mult, const int32_t *rq,    \
                                                    int8_t *out, int32_t out_zp, int32_t act_min,                   \
                                                    int32_t act_max) {                                              \
    for (int m = 0; m < M; ++m) tinyml_im2col_s16(x + m * k, 0, 1, k, scratch, m, 0, k, k, kp, in_offset);          \
    tinyml_gemm_s16(scratch, kp, w, n, bias, mult, rq, out, out_zp, act_min, act_max, M, U);                         \
  }
TINYML_GEMM(1, 1)
TINYML_GEMM(1, 2)
TINYML_GEMM(2, 1)
TINYML_GEMM(2, 2)

/* ---- int8-weight GEMM micro-kernels ----------------------------------------- *
 * A block of M (1 to 6) output pixels expanded once to int16 exactly as for the int16 GEMM.
 * Weights stay int8 in OHWI order, zero padded to kp (a multiple of 4) per channel, each group
 * of four stored [w0 w2 w1 w3], so SXTB16 widens (w0, w1) and SXTB16 ROR 8 (w2, w3), the pairs
 * of the two words of expanded values they multiply: no repacking in the inner loop.
 *   column kernels (gemm8c, pw8c): [n][kp], one channel at a time for all M pixels, so each
 *     widened weight word feeds M SMLADs (M >= 2; M = 1 for a short tail);
 *   row kernels (gemm8r, pw8r; M = 1, dense): channel pairs interleaved four bytes at a time
 *     ([c0 k0..3][c1 k0..3][c0 k4..7]...; an odd last channel alone).
 * Requantization reads the int32 multiplier and the shift as int8 (four to a word). */

/* One channel's accumulators a0..a<M-1> (bias b, multiplier m, shift s) requantized into
 * out[p * stride]. Fast when 1 <= r = -s <= 22 and |b| < 2^29 (so |a| < 2^30 for any kp the
 * scratch holds, and 2 a cannot overflow): high = SaturatingRoundingDoublingHighMul(a, m) =
 * floor((2 a m + 2^31) / 2^32) is SMMLAR(2 a, m, .), and RoundingDivideByPOT(high, r) + out_zp
 * = (high + (2 out_zp + 1) 2^(r-1) - [high < 0]) >> r, where [high < 0] may be [a < 0] (they
 * differ only when high = 0, which gives out_zp either way); that constant (|.| < 2^29) is
 * SMMLAR's addend. Otherwise tinyml_requant_fast_i8. */
#define TINYML_REQUANT8_STORE(M, A0, A1, A2, A3, A4, A5, B, MULT, S, OUT, STRIDE)                               \
  do {                                                                                                       \
    const int32_t r1_ = -(S) - 1;                                                                            \
    if ((uint32_t)r1_ < 22u && (uint32_t)((B) + (1 << 29)) < (1u << 30)) {                                    \
      const int32_t c_ = (int32_t)((uint32_t)(2 * out_zp + 1) << r1_);                                         \
      TINYML_REQUANT8_EACH(M, A0, A1, A2, A3, A4, A5, OUT, STRIDE, tinyml_requant8_fast, MULT, c_, r1_ + 1);  \
    } else {                                                                                                 \
      TINYML_REQUANT8_EACH(M, A0, A1, A2, A3, A4, A5, OUT, STRIDE, tinyml_requant8_general, MULT, S, 0);      \
    }                                                                                                        \
  } while (0)
#define TINYML_REQUANT8_EACH(M, A0, A1, A2, A3, A4, A5, OUT, STRIDE, F, P, Q, R)                                       \
  do {                                                                                                                 \
    (OUT)[0] = F(A0, P, Q, R, out_zp, act_min, act_max);                                                               \
    if ((M) > 1) (OUT)[(STRIDE)] = F(A1, P, Q, R, out_zp, act_min, act_max);                                          \
    if ((M) > 2) (OUT)[2 * (STRIDE)] = F(A2, P, Q, R, out_zp, act_min, act_max);                                      \
    if ((M) > 3) (OUT)[3 * (STRIDE)] = F(A3, P, Q, R, out_zp, act_min, act_max);                                      \
    if ((M) > 4) (OUT)[4 * (STRIDE)] = F(A4, P, Q, R, out_zp, act_min, act_max);                                      \
    if ((M) > 5) (OUT)[5 * (STRIDE)] = F(A5, P, Q, R, out_zp, act_min, act_max);                                      \
  } while (0)
TINYML_ALWAYS_INLINE int8_t tinyml_requant8_fast(int32_t a, int32_t m, int32_t c, int32_t r, int32_t out_zp,
                                                 int32_t act_min, int32_t act_max) {
  (void)out_zp; /* folded into c */
  return (int8_t)tinyml_sat_i8((tinyml_smmlar((int32_t)((uint32_t)a << 1), m, c) + (a >> 31)) >> r, act_min, act_max);
}
TINYML_ALWAYS_INLINE int8_t tinyml_requant8_general(int32_t a, int32_t m, int32_t s, int32_t unused, int32_t out_zp,
                                                    int32_t act_min, int32_t act_max) {
  (void)unused;
  return tinyml_requant_fast_i8(a, m, s, out_zp, act_min, act_max);
}

/* Steps of 4 values per loop iteration for unroll U over kp values: 4 when unrolled and kp
 * allows (the loop overhead is 2 instructions an iteration). */
#define TINYML_GEMM8_STEPS(U, KP) ((U) > 1 ? ((KP) >= 16 ? 4 : 2) : 1)

/* M expanded pixels (scratch xs, pixel p at xs + p * kp) x all n output channels, weights in
 * the column layout; pixel p's outputs at out + p * n. */
TINYML_ALWAYS_INLINE void tinyml_gemm8c(const int32_t *xs, int32_t kp, const int8_t *w, int32_t n, const int32_t *bias,
                                        const int32_t *mult, const int32_t *shift8, int8_t *out, int32_t out_zp,
                                        int32_t act_min, int32_t act_max, const int M, const int U) {
  const int8_t *shift = (const int8_t *)shift8;
  const int8_t *wp = w;
  const int S = TINYML_GEMM8_STEPS(U, kp);
  for (int32_t c = 0; c < n; ++c) {
    const int32_t b = bias[c];
    int32_t a0 = b, a1 = b, a2 = b, a3 = b, a4 = b, a5 = b;
    const int16_t *xp = (const int16_t *)xs;
    if (kp >= 4 * S) TINYML_MAC8_COL(M, xp, wp, 2 * kp, kp / (4 * S), S, a0, a1, a2, a3, a4, a5);
    if (kp % (4 * S)) TINYML_MAC8_COL(M, xp, wp, 2 * kp, kp % (4 * S) / 4, 1, a0, a1, a2, a3, a4, a5);
    TINYML_REQUANT8_STORE(M, a0, a1, a2, a3, a4, a5, b, mult[c], shift[c], out + c, n);
  }
}

/* One expanded pixel (scratch xs) x all n output channels, weights in the row layout. */
TINYML_ALWAYS_INLINE void tinyml_gemm8r(const int32_t *xs, int32_t kp, const int8_t *w, int32_t n, const int32_t *bias,
                                        const int32_t *mult, const int32_t *shift8, int8_t *out, int32_t out_zp,
                                        int32_t act_min, int32_t act_max, const int U) {
  const int8_t *shift = (const int8_t *)shift8;
  const int8_t *wp = w;
  const int S = TINYML_GEMM8_STEPS(U, kp);
  int32_t c = 0;
  for (; c + 2 <= n; c += 2) {
    int32_t a0 = bias[c], a1 = bias[c + 1];
    const int16_t *xp = (const int16_t *)xs;
    if (kp >= 4 * S) TINYML_MAC8_ROW(xp, wp, kp / (4 * S), S, a0, a1);
    if (kp % (4 * S)) TINYML_MAC8_ROW(xp, wp, kp % (4 * S) / 4, 1, a0, a1);
    TINYML_REQUANT8_STORE(1, a0, 0, 0, 0, 0, 0, bias[c], mult[c], shift[c], out + c, 1);
    TINYML_REQUANT8_STORE(1, a1, 0, 0, 0, 0, 0, bias[c + 1], mult[c + 1], shift[c + 1], out + c + 1, 1);
  }
  if (c < n) {
    int32_t a0 = bias[c];
    for (int32_t k = 0; k < kp; k += 4) a0 = tinyml_dot4_s8w((const int16_t *)xs + k, wp + k, a0);
    TINYML_REQUANT8_STORE(1, a0, 0, 0, 0, 0, 0, bias[c], mult[c], shift[c], out + c, 1);
  }
}

/* The row (ROW = 1: M = 1) or column GEMM. */
TINYML_ALWAYS_INLINE void tinyml_gemm8(const int32_t *xs, int32_t kp, const int8_t *w, int32_t n, const int32_t *bias,
                                       const int32_t *mult, const int32_t *shift8, int8_t *out, int32_t out_zp,
                                       int32_t act_min, int32_t act_max, const int M, const int U, const int ROW) {
  if (ROW)
    tinyml_gemm8r(xs, kp, w, n, bias, mult, shift8, out, out_zp, act_min, act_max, U);
  else
    tinyml_gemm8c(xs, kp, w, n, bias, mult, shift8, out, out_zp, act_min, act_max, M, U);
}

/* tinyml_conv_s8_gemm8<L>_<M>_u<U> (L = c: column, r: row): the int8-weight GEMM over an
 * expanded block; tinyml_conv_s8_pw8<L>_<M>_u<U>: a 1x1 convolution / dense block of M pixels
 * (k int8 each, contiguous at x) expanded into scratch, then that GEMM. */
#define TINYML_GEMM8(L, M, U, ROW)                                                                                     \
  TINYML_ALWAYS_INLINE void tinyml_conv_s8_gemm8##L##_##M##_u##U(const int32_t *xs, int32_t kp, const int8_t *w,         \
                                                             int32_t n, const int32_t *bias, const int32_t *mult,     \
                                                             const int32_t *shift8, int8_t *out, int32_t out_zp,      \
                                                             int32_t act_min, int32_t act_max) {                      \
    tinyml_gemm8(xs, kp, w, n, bias, mult, shift8, out, out_zp, act_min, act_max, M, U, ROW);                          \
  }                                                                                                                    \
  TINYML_ALWAYS_INLINE void tinyml_conv_s8_pw8##L##_##M##_u##U(const int8_t *x, int32_t k, int32_t kp,                   \
                                                           int32_t in_offset, int32_t *scratch, const int8_t *w,      \
                                                           int32_t n, const int32_t *bias, const int32_t *mult,       \
                                                           const int32_t *shift8, int8_t *out, int32_t out_zp,        \
                                                           int32_t act_min, int32_t act_max) {                        \
    for (int m = 0; m < M; ++m) tinyml_im2col_s16(x + m * k, 0, 1, k, scratch, m, 0, k, k, kp, in_offset);          \
    tinyml_gemm8(scratch, kp, w, n, bias, mult, shift8, out, out_zp, act_min, act_max, M, U, ROW);                     \
  }
#define TINYML_GEMM8C(M) TINYML_GEMM8(c, M, 1, 0) TINYML_GEMM8(c, M, 2, 0)
TINYML_GEMM8C(1)
TINYML_GEMM8C(2)
TINYML_GEMM8C(3)
TINYML_GEMM8C(4)
TINYML_GEMM8C(5)
TINYML_GEMM8C(6)
TINYML_GEMM8(r, 1, 1, 1)
TINYML_GEMM8(r, 1, 2, 1)

#endif /* TINYML_SIMD_CONV_H_ */
