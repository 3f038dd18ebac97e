/*
 * tinyml_simd.h - int8 micro-kernels for Cortex-M DSP cores (SMLAD, SXTAB16,
 * SMLAxy), with a portable C fallback so the very same C runs on the host.
 *
 * The generated kernels (schedules/conv2d.py, schedules/depthwise.py) loop
 * over output pixels in row-major order in TIR and call these helpers for a
 * tile of pixels x output channels; a helper only computes int32 accumulators
 * (exactly: every product and sum is the integer one) and requantizes them
 * with tinyml_requant_fast_i8, which is TFLite Micro's MultiplyByQuantized-
 * Multiplier (double rounding) rewritten with fewer instructions and equal to
 * tinyml_requant_i8 for every int32 accumulator and every multiplier in
 * [0, 2^31) (tests/test_tuning_kernels.py checks it).
 *
 * Nothing here allocates: accumulators live in registers (locals).
 */
#ifndef TINYML_SIMD_H_
#define TINYML_SIMD_H_

#include <stdint.h>
#include <string.h>

/* Micro-kernels are always inlined: their tile sizes must reach the loops as constants
 * wherever a model calls them, whatever gcc's unit-growth limits decide. */
#if defined(__GNUC__)
#define TINYML_ALWAYS_INLINE static inline __attribute__((always_inline))
#else
#define TINYML_ALWAYS_INLINE static inline
#endif

/* ---- DSP primitives ------------------------------------------------------ */

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
static inline uint32_t tinyml_sxtb16(uint32_t x) {
  uint32_t r;
  __asm__("sxtb16 %0, %1" : "=r"(r) : "r"(x));
  return r;
}
static inline uint32_t tinyml_sxtb16_ror8(uint32_t x) {
  uint32_t r;
  __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
  return r;
}
static inline uint32_t tinyml_sxtab16(uint32_t a, uint32_t x) {
  uint32_t r;
  __asm__("sxtab16 %0, %1, %2" : "=r"(r) : "r"(a), "r"(x));
  return r;
}
static inline uint32_t tinyml_sxtab16_ror8(uint32_t a, uint32_t x) {
  uint32_t r;
  __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(x));
  return r;
}
static inline int32_t tinyml_smlad(uint32_t x, uint32_t y, int32_t acc) {
  int32_t r;
  __asm__("smlad %0, %1, %2, %3" : "=r"(r) : "r"(x), "r"(y), "r"(acc));
  return r;
}
static inline int32_t tinyml_smlabb(uint32_t x, uint32_t y, int32_t acc) {
  int32_t r;
  __asm__("smlabb %0, %1, %2, %3" : "=r"(r) : "r"(x), "r"(y), "r"(acc));
  return r;
}
static inline int32_t tinyml_smlatt(uint32_t x, uint32_t y, int32_t acc) {
  int32_t r;
  __asm__("smlatt %0, %1, %2, %3" : "=r"(r) : "r"(x), "r"(y), "r"(acc));
  return r;
}
static inline int32_t tinyml_smlatb(uint32_t x, uint32_t y, int32_t acc) {
  int32_t r;
  __asm__("smlatb %0, %1, %2, %3" : "=r"(r) : "r"(x), "r"(y), "r"(acc));
  return r;
}
#else
static inline int32_t tinyml_lo16(uint32_t x) { return (int32_t)(int16_t)(uint16_t)(x & 0xFFFFu); }
static inline int32_t tinyml_hi16(uint32_t x) { return (int32_t)(int16_t)(uint16_t)(x >> 16); }
static inline uint32_t tinyml_pack16(int32_t lo, int32_t hi) {
  return ((uint32_t)lo & 0xFFFFu) | ((uint32_t)hi << 16);
}
static inline uint32_t tinyml_sxtb16(uint32_t x) {
  return tinyml_pack16((int8_t)(uint8_t)(x & 0xFFu), (int8_t)(uint8_t)((x >> 16) & 0xFFu));
}
static inline uint32_t tinyml_sxtb16_ror8(uint32_t x) { return tinyml_sxtb16((x >> 8) | (x << 24)); }
static inline uint32_t tinyml_sxtab16(uint32_t a, uint32_t x) {
  uint32_t b = tinyml_sxtb16(x);
  return tinyml_pack16(tinyml_lo16(a) + tinyml_lo16(b), tinyml_hi16(a) + tinyml_hi16(b));
}
static inline uint32_t tinyml_sxtab16_ror8(uint32_t a, uint32_t x) { return tinyml_sxtab16(a, (x >> 8) | (x << 24)); }
static inline int32_t tinyml_smlad(uint32_t x, uint32_t y, int32_t acc) {
  return (int32_t)((uint32_t)acc + (uint32_t)(tinyml_lo16(x) * tinyml_lo16(y)) + (uint32_t)(tinyml_hi16(x) * tinyml_hi16(y)));
}
static inline int32_t tinyml_smlabb(uint32_t x, uint32_t y, int32_t acc) {
  return (int32_t)((uint32_t)acc + (uint32_t)(tinyml_lo16(x) * tinyml_lo16(y)));
}
static inline int32_t tinyml_smlatt(uint32_t x, uint32_t y, int32_t acc) {
  return (int32_t)((uint32_t)acc + (uint32_t)(tinyml_hi16(x) * tinyml_hi16(y)));
}
static inline int32_t tinyml_smlatb(uint32_t x, uint32_t y, int32_t acc) {
  return (int32_t)((uint32_t)acc + (uint32_t)(tinyml_hi16(x) * tinyml_lo16(y)));
}
#endif

/* Unaligned little-endian 32-bit load (one LDR on Cortex-M4/M7). */
static inline uint32_t tinyml_load4(const void *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

/* The input offset (-zero point) in both halfwords, for SXTAB16. */
static inline uint32_t tinyml_offset2(int32_t in_offset) {
  return ((uint32_t)in_offset & 0xFFFFu) | ((uint32_t)in_offset << 16);
}

/* ---- requantization -------------------------------------------------------- */

/* Equal to tinyml_requant_i8 (TFLM MultiplyByQuantizedMultiplier, double
 * rounding, then + out_zp and clamp) for multiplier in [0, 2^31):
 * SaturatingRoundingDoublingHighMul(a, m) = trunc((a*m + nudge) / 2^31) equals
 * floor((a*m + 2^30) / 2^31) for both signs of a*m (the saturating case needs
 * m = INT32_MIN), and RoundingDivideByPOT keeps gemmlowp's form. */
TINYML_ALWAYS_INLINE int8_t tinyml_requant_fast_i8(int32_t acc, int32_t multiplier, int32_t shift, int32_t out_zp,
                                            int32_t act_min, int32_t act_max) {
  const int32_t x = shift > 0 ? (int32_t)((uint32_t)acc << shift) : acc;
  const int32_t right = shift > 0 ? 0 : -shift;
  const int32_t high = (int32_t)(((int64_t)x * multiplier + ((int64_t)1 << 30)) >> 31);
  const int32_t mask = (int32_t)((1u << right) - 1u);
  const int32_t remainder = high & mask;
  const int32_t threshold = (mask >> 1) + (int32_t)((uint32_t)high >> 31);
  int32_t r = (high >> right) + (remainder > threshold ? 1 : 0) + out_zp;
  r = r < act_min ? act_min : r;
  r = r > act_max ? act_max : r;
  return (int8_t)r;
}

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

/* ---- depthwise ----------------------------------------------------------------- */

/* One output pixel of a depthwise convolution (channel multiplier 1), channels
 * [c0, c0 + 4 * groups) four at a time: the window is `rows` x `cols` input
 * pixels starting at x (row stride x_row, pixel stride c), weights int16 with
 * each group of four channels stored (c0, c2, c1, c3) at w16 + pos * c_pad,
 * pos = window row * w_row + column. */
TINYML_ALWAYS_INLINE void tinyml_dw_pixel_s8(const int8_t *x, int32_t x_row, int32_t c, const int16_t *w16, int32_t w_row,
                                      int32_t c_pad, int32_t rows, int32_t cols, int32_t c0, int32_t groups,
                                      int32_t in_offset, const int32_t *bias, const int32_t *mult,
                                      const int32_t *shift, int8_t *out, int32_t out_zp, int32_t act_min,
                                      int32_t act_max) {
  const uint32_t off2 = tinyml_offset2(in_offset);
  for (int32_t g = 0; g < groups; ++g) {
    const int32_t ch = c0 + 4 * g;
    int32_t a0 = bias[ch], a1 = bias[ch + 1], a2 = bias[ch + 2], a3 = bias[ch + 3];
    for (int32_t r = 0; r < rows; ++r) {
      const int8_t *xp = x + r * x_row + ch;
      const int16_t *wp = w16 + r * w_row * c_pad + ch;
      for (int32_t q = 0; q < cols; ++q) {
        const uint32_t v = tinyml_load4(xp + q * c);
        const uint32_t pa = tinyml_sxtab16(off2, v), pb = tinyml_sxtab16_ror8(off2, v);
        const uint32_t w02 = tinyml_load4(wp + q * c_pad), w13 = tinyml_load4(wp + q * c_pad + 2);
        a0 = tinyml_smlabb(pa, w02, a0);
        a2 = tinyml_smlatt(pa, w02, a2);
        a1 = tinyml_smlabb(pb, w13, a1);
        a3 = tinyml_smlatt(pb, w13, a3);
      }
    }
    out[ch] = tinyml_requant_fast_i8(a0, mult[ch], shift[ch], out_zp, act_min, act_max);
    out[ch + 1] = tinyml_requant_fast_i8(a1, mult[ch + 1], shift[ch + 1], out_zp, act_min, act_max);
    out[ch + 2] = tinyml_requant_fast_i8(a2, mult[ch + 2], shift[ch + 2], out_zp, act_min, act_max);
    out[ch + 3] = tinyml_requant_fast_i8(a3, mult[ch + 3], shift[ch + 3], out_zp, act_min, act_max);
  }
}

/* The same pixel, channels [c0, c1) one at a time (weights in natural order in w16). */
TINYML_ALWAYS_INLINE void tinyml_dw_pixel_scalar_s8(const int8_t *x, int32_t x_row, int32_t c, const int16_t *w16,
                                             int32_t w_row, int32_t c_pad, int32_t rows, int32_t cols, int32_t c0,
                                             int32_t c1, int32_t in_offset, const int32_t *bias,
                                             const int32_t *mult, const int32_t *shift, int8_t *out, int32_t out_zp,
                                             int32_t act_min, int32_t act_max) {
  for (int32_t ch = c0; ch < c1; ++ch) {
    int32_t a = bias[ch];
    for (int32_t r = 0; r < rows; ++r) {
      for (int32_t q = 0; q < cols; ++q) {
        a += (x[r * x_row + q * c + ch] + in_offset) * w16[(r * w_row + q) * c_pad + ch];
      }
    }
    out[ch] = tinyml_requant_fast_i8(a, mult[ch], shift[ch], out_zp, act_min, act_max);
  }
}

/* One channel of the in-place depthwise kernel: its input plane is in
 * `plane` (h x w int8); writes the oh x ow outputs of the channel at out
 * (pixel stride c). w9 are the channel's kh x kw weights (int16). A 3x3,
 * stride 1, dilation 1 interior is computed two outputs at a time with SMLAD. */
TINYML_ALWAYS_INLINE void tinyml_dw_plane_s8(const int8_t *plane, int32_t h, int32_t w, int32_t kh, int32_t kw,
                                      int32_t sh, int32_t sw, int32_t dh, int32_t dw, int32_t top, int32_t left,
                                      int32_t oh, int32_t ow, const int16_t *w9, int32_t in_offset, int32_t bias,
                                      int32_t mult, int32_t shift, int8_t *out, int32_t c, int32_t out_zp,
                                      int32_t act_min, int32_t act_max, int32_t simd) {
  const uint32_t off2 = tinyml_offset2(in_offset);
  const int fast = simd && kh == 3 && kw == 3 && sh == 1 && sw == 1 && dh == 1 && dw == 1;
  uint32_t w02[3] = {0, 0, 0}, w1[3] = {0, 0, 0};
  if (fast) {
    for (int i = 0; i < 3; ++i) {
      w02[i] = ((uint32_t)(uint16_t)w9[3 * i]) | ((uint32_t)(uint16_t)w9[3 * i + 2] << 16);
      w1[i] = (uint32_t)(uint16_t)w9[3 * i + 1];
    }
  }
  for (int32_t oy = 0; oy < oh; ++oy) {
    const int32_t iy0 = oy * sh - top;
    const int row_inside = iy0 >= 0 && iy0 + (kh - 1) * dh < h;
    int32_t ox = 0;
    while (ox < ow) {
      const int32_t ix0 = ox * sw - left;
      if (fast && row_inside && ix0 >= 0 && ox + 1 < ow && ix0 + 4 <= w) {
        const int8_t *p = plane + iy0 * w + ix0;
        int32_t s0 = bias, s1 = bias;
        for (int i = 0; i < 3; ++i) {
          const uint32_t v = tinyml_load4(p + i * w);
          const uint32_t pa = tinyml_sxtab16(off2, v), pb = tinyml_sxtab16_ror8(off2, v);
          s0 = tinyml_smlabb(pb, w1[i], tinyml_smlad(pa, w02[i], s0));
          s1 = tinyml_smlatb(pa, w1[i], tinyml_smlad(pb, w02[i], s1));
        }
        out[(oy * ow + ox) * c] = tinyml_requant_fast_i8(s0, mult, shift, out_zp, act_min, act_max);
        out[(oy * ow + ox + 1) * c] = tinyml_requant_fast_i8(s1, mult, shift, out_zp, act_min, act_max);
        ox += 2;
        continue;
      }
      {
        int32_t s = bias;
        for (int32_t ky = 0; ky < kh; ++ky) {
          const int32_t iy = iy0 + ky * dh;
          if (iy < 0 || iy >= h) continue;
          for (int32_t kx = 0; kx < kw; ++kx) {
            const int32_t ix = ix0 + kx * dw;
            if (ix < 0 || ix >= w) continue;
            s += (plane[iy * w + ix] + in_offset) * w9[ky * kw + kx];
          }
        }
        out[(oy * ow + ox) * c] = tinyml_requant_fast_i8(s, mult, shift, out_zp, act_min, act_max);
        ox += 1;
      }
    }
  }
}

#endif /* TINYML_SIMD_H_ */
