/*
 * tinyml_simd_dw.h - depthwise convolution micro-kernels on the tinyml_simd.h
 * primitives: ordinary (pixel by pixel) and in-place (channel plane by plane).
 */
#ifndef TINYML_SIMD_DW_H_
#define TINYML_SIMD_DW_H_

#include "tinyml_simd.h"

/* ---- fast exact requantization ------------------------------------------------- */

/* (a * b + 2^31) >> 32, rounded high word of the product (SMMULR). */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
static inline int32_t tinyml_smmulr(int32_t a, int32_t b) {
  int32_t r;
  __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
  return r;
}
#else
static inline int32_t tinyml_smmulr(int32_t a, int32_t b) {
  return (int32_t)(((int64_t)a * b + ((int64_t)1 << 31)) >> 32);
}
#endif

/* Whether tinyml_dw_requant2 is exact for a channel: 1 <= right (= -shift) <= 22 and its
 * accumulator, bias plus `taps` products of (x - zp) in [-255, 255] by int8 weights, stays inside
 * (-2^30, 2^30) so that twice it fits an int32. */
TINYML_ALWAYS_INLINE int tinyml_dw_fast_ok(int32_t bias, int32_t right, int32_t taps) {
  const int32_t limit = (1 << 30) - 255 * 128 * taps;
  return right >= 1 && right <= 22 && bias > -limit && bias < limit;
}

/* The rounding term of tinyml_dw_requant2 with the output zero point folded in. */
TINYML_ALWAYS_INLINE int32_t tinyml_dw_nudge(int32_t right, int32_t out_zp) {
  return (1 << (right - 1)) + (int32_t)((uint32_t)out_zp << right);
}

/* tinyml_requant_i8(acc, mult, -right, out_zp, ...) from acc2 = 2 * acc and nudge =
 * tinyml_dw_nudge(right, out_zp), for a channel tinyml_dw_fast_ok accepts: SMMULR(2 acc, mult)
 * is floor((acc * mult + 2^30) / 2^31) (tinyml_requant_fast_i8's high multiply), and
 * (h + 2^(right-1) + (h < 0 ? -1 : 0)) >> right is gemmlowp's RoundingDivideByPOT; adding
 * out_zp << right before the shift adds out_zp after it (|h| < 2^30, no overflow). */
TINYML_ALWAYS_INLINE int8_t tinyml_dw_requant2(int32_t acc2, int32_t mult, int32_t right, int32_t nudge,
                                              int32_t act_min, int32_t act_max) {
  const int32_t h = tinyml_smmulr(acc2, mult);
  return (int8_t)tinyml_sat_i8((h + nudge + (h >> 31)) >> right, act_min, act_max);
}

/* The requantization parameters of the ordinary kernel, from schedules/depthwise.py's
 * `requant_transform`: rn[2 ch] = -shift, rn[2 ch + 1] = tinyml_dw_nudge (0 if not fast). */
TINYML_ALWAYS_INLINE int tinyml_dw_layer_fast(const int32_t *bias, const int32_t *rn, int32_t c, int32_t taps) {
  int ok = 1;
  for (int32_t ch = 0; ch < c; ++ch) ok &= tinyml_dw_fast_ok(bias[ch], rn[2 * ch], taps);
  return ok;
}

/* Channel ch's int8 output from its accumulator (fast: every channel passed tinyml_dw_fast_ok). */
TINYML_ALWAYS_INLINE int8_t tinyml_dw_out(int32_t acc, int32_t ch, const int32_t *mult, const int32_t *rn, const int fast,
                                         int32_t out_zp, int32_t act_min, int32_t act_max) {
  if (fast) return tinyml_dw_requant2(acc + acc, mult[ch], rn[2 * ch], rn[2 * ch + 1], act_min, act_max);
  return tinyml_requant_fast_i8(acc, mult[ch], -rn[2 * ch], out_zp, act_min, act_max);
}

/* ---- depthwise ----------------------------------------------------------------- */

/* One tap of four channels: x4 = x + xo their input bytes, w4 = w + wo their int8 weights
 * (natural order: SXTB16 pairs (c0, c2) and, rotated, (c1, c3) of both). On Cortex-M one asm
 * block, so that gcc does not hoist the loads of all taps of a window ahead and spill, with the
 * offsets as immediates when they are constants below 4096. */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#define TINYML_DW_TAP4_BODY(XADDR, WADDR)                                                                       \
  __asm__("ldr %[v], " XADDR "\n\t"                                                                            \
          "ldr %[wv], " WADDR "\n\t"                                                                           \
          "sxtab16 %[pa], %[off], %[v]\n\t"                                                                    \
          "sxtab16 %[pb], %[off], %[v], ror #8\n\t"                                                            \
          "sxtb16 %[v], %[wv]\n\t"                                                                             \
          "sxtb16 %[wv], %[wv], ror #8\n\t"                                                                    \
          "smlabb %[a0], %[pa], %[v], %[a0]\n\t"                                                               \
          "smlatt %[a2], %[pa], %[v], %[a2]\n\t"                                                               \
          "smlabb %[a1], %[pb], %[wv], %[a1]\n\t"                                                              \
          "smlatt %[a3], %[pb], %[wv], %[a3]"                                                                   \
          : [v] "=&r"(v), [wv] "=&r"(wv), [pa] "=&r"(pa), [pb] "=&r"(pb), [a0] "+r"(a[0]), [a1] "+r"(a[1]),    \
            [a2] "+r"(a[2]), [a3] "+r"(a[3])                                                                    \
          : [x] "r"(x), [w] "r"(w), [xo] "i"(xo), [wo] "i"(wo), [off] "r"(off2),                                \
            "m"(*(const uint32_t(*)[1])(x + xo)), "m"(*(const uint32_t(*)[1])(w + wo)))
#endif
TINYML_ALWAYS_INLINE void tinyml_dw_tap4(const int8_t *x, int32_t xo, const int8_t *w, int32_t wo, uint32_t off2,
                                        int32_t *a) {
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
  uint32_t v, wv, pa, pb;
  if (__builtin_constant_p(xo) && __builtin_constant_p(wo) && xo >= 0 && xo < 4096 && wo >= 0 && wo < 4096) {
    TINYML_DW_TAP4_BODY("[%[x], %[xo]]", "[%[w], %[wo]]");
  } else {
    x += xo;
    w += wo;
    xo = 0;
    wo = 0;
    TINYML_DW_TAP4_BODY("[%[x]]", "[%[w]]");
  }
#else
  const uint32_t v = tinyml_load4(x + xo), wv = tinyml_load4(w + wo);
  const uint32_t pa = tinyml_sxtab16(off2, v), pb = tinyml_sxtab16_ror8(off2, v);
  const uint32_t wa = tinyml_sxtb16(wv), wb = tinyml_sxtb16_ror8(wv);
  a[0] = tinyml_smlabb(pa, wa, a[0]);
  a[2] = tinyml_smlatt(pa, wa, a[2]);
  a[1] = tinyml_smlabb(pb, wb, a[1]);
  a[3] = tinyml_smlatt(pb, wb, a[3]);
#endif
}

/* The four outputs of channels ch .. ch+3. */
TINYML_ALWAYS_INLINE void tinyml_dw_out4(const int32_t *a, int32_t ch, const int32_t *mult, const int32_t *rn,
                                        const int fast, int8_t *out, int32_t out_zp, int32_t act_min, int32_t act_max) {
  out[ch] = tinyml_dw_out(a[0], ch, mult, rn, fast, out_zp, act_min, act_max);
  out[ch + 1] = tinyml_dw_out(a[1], ch + 1, mult, rn, fast, out_zp, act_min, act_max);
  out[ch + 2] = tinyml_dw_out(a[2], ch + 2, mult, rn, fast, out_zp, act_min, act_max);
  out[ch + 3] = tinyml_dw_out(a[3], ch + 3, mult, rn, fast, out_zp, act_min, act_max);
}

/* One output pixel of a depthwise convolution (channel multiplier 1): the window is `rows` x
 * `cols` input pixels starting at x (row stride x_row, pixel stride c), int8 weights at
 * w8 + (window row * w_row + column) * c; channels [0, 4 groups) four at a time, the rest one
 * by one. rn: see tinyml_dw_layer_fast. */
TINYML_ALWAYS_INLINE void tinyml_dw_pixel_s8(const int8_t *x, int32_t x_row, int32_t c, const int8_t *w8, int32_t w_row,
                                      int32_t rows, int32_t cols, int32_t groups, int32_t in_offset,
                                      const int32_t *bias, const int32_t *mult, const int32_t *rn, const int fast,
                                      int8_t *out, int32_t out_zp, int32_t act_min, int32_t act_max) {
  const uint32_t off2 = tinyml_offset2(in_offset);
  for (int32_t ch = 0; ch < 4 * groups; ch += 4) {
    int32_t a[4] = {bias[ch], bias[ch + 1], bias[ch + 2], bias[ch + 3]};
    for (int32_t r = 0; r < rows; ++r) {
      for (int32_t q = 0; q < cols; ++q) tinyml_dw_tap4(x + r * x_row + ch, q * c, w8 + (r * w_row + q) * c + ch, 0, off2, a);
    }
    tinyml_dw_out4(a, ch, mult, rn, fast, out, out_zp, act_min, act_max);
  }
  for (int32_t ch = 4 * groups; ch < c; ++ch) {
    int32_t a = bias[ch];
    for (int32_t r = 0; r < rows; ++r) {
      for (int32_t q = 0; q < cols; ++q) a += (x[r * x_row + q * c + ch] + in_offset) * w8[(r * w_row + q) * c + ch];
    }
    out[ch] = tinyml_dw_out(a, ch, mult, rn, fast, out_zp, act_min, act_max);
  }
}

/* tinyml_dw_pixel_s8 for a whole 3x3 window (no padding) and c = 4 groups, the nine taps
 * unrolled with constant offsets: x is the window's top-left input pixel (row stride x_row). */
TINYML_ALWAYS_INLINE void tinyml_dw3_pixel_s8(const int8_t *x, int32_t x_row, int32_t c, const int8_t *w8,
                                       int32_t in_offset, const int32_t *bias, const int32_t *mult,
                                       const int32_t *rn, const int fast, int8_t *out, int32_t out_zp,
                                       int32_t act_min, int32_t act_max) {
  const uint32_t off2 = tinyml_offset2(in_offset);
  for (int32_t ch = 0; ch < c; ch += 4) {
    int32_t a[4] = {bias[ch], bias[ch + 1], bias[ch + 2], bias[ch + 3]};
    const int8_t *x0 = x + ch, *x1 = x + x_row + ch, *x2 = x + 2 * x_row + ch, *wc = w8 + ch;
    tinyml_dw_tap4(x0, 0, wc, 0, off2, a);
    tinyml_dw_tap4(x0, c, wc, c, off2, a);
    tinyml_dw_tap4(x0, 2 * c, wc, 2 * c, off2, a);
    tinyml_dw_tap4(x1, 0, wc, 3 * c, off2, a);
    tinyml_dw_tap4(x1, c, wc, 4 * c, off2, a);
    tinyml_dw_tap4(x1, 2 * c, wc, 5 * c, off2, a);
    tinyml_dw_tap4(x2, 0, wc, 6 * c, off2, a);
    tinyml_dw_tap4(x2, c, wc, 7 * c, off2, a);
    tinyml_dw_tap4(x2, 2 * c, wc, 8 * c, off2, a);
    tinyml_dw_out4(a, ch, mult, rn, fast, out, out_zp, act_min, act_max);
  }
}

/* The output pixels of a depthwise layer in row-major order (the overlap contract): whole 3x3
 * windows (c = 4 groups) by tinyml_dw3_pixel_s8, the rest by tinyml_dw_pixel_s8 on the window
 * clipped to the input. */
TINYML_ALWAYS_INLINE void tinyml_dw_pixels_s8(const int8_t *x, int32_t h, int32_t w, int32_t c, int32_t kh, int32_t kw,
                                       int32_t sh, int32_t sw, int32_t top, int32_t left, int32_t oh, int32_t ow,
                                       const int8_t *w8, int32_t groups, int32_t in_offset, const int32_t *bias,
                                       const int32_t *mult, const int32_t *rn, const int fast, int8_t *out,
                                       int32_t out_zp, int32_t act_min, int32_t act_max) {
  for (int32_t oy = 0; oy < oh; ++oy) {
    const int32_t iy = oy * sh - top;
    const int32_t ky0 = iy < 0 ? -iy : 0, ky1 = h - iy < kh ? h - iy : kh;
    for (int32_t ox = 0; ox < ow; ++ox) {
      const int32_t ix = ox * sw - left;
      const int32_t kx0 = ix < 0 ? -ix : 0, kx1 = w - ix < kw ? w - ix : kw;
      int8_t *o = out + (oy * ow + ox) * c;
      if (kh == 3 && kw == 3 && 4 * groups == c && ky0 == 0 && ky1 == 3 && kx0 == 0 && kx1 == 3) {
        tinyml_dw3_pixel_s8(x + (iy * w + ix) * c, w * c, c, w8, in_offset, bias, mult, rn, fast, o, out_zp, act_min,
                            act_max);
      } else {
        tinyml_dw_pixel_s8(x + ((iy + ky0) * w + ix + kx0) * c, w * c, c, w8 + (ky0 * kw + kx0) * c, kw, ky1 - ky0,
                           kx1 - kx0, groups, in_offset, bias, mult, rn, fast, o, out_zp, act_min, act_max);
      }
    }
  }
}

/* A depthwise convolution (NHWC, channel multiplier 1, dilation 1) of one image: int8 weights
 * (kh, kw, c), requantization parameters rn as tinyml_dw_layer_fast reads them; the fast
 * requantization when every channel allows it. */
TINYML_ALWAYS_INLINE void tinyml_dw_layer_s8(const int8_t *x, int32_t h, int32_t w, int32_t c, int32_t kh, int32_t kw,
                                      int32_t sh, int32_t sw, int32_t top, int32_t left, int32_t oh, int32_t ow,
                                      const int8_t *w8, int32_t groups, int32_t in_offset, const int32_t *bias,
                                      const int32_t *mult, const int32_t *rn, int8_t *out, int32_t out_zp,
                                      int32_t act_min, int32_t act_max) {
  if (tinyml_dw_layer_fast(bias, rn, c, kh * kw)) {
    tinyml_dw_pixels_s8(x, h, w, c, kh, kw, sh, sw, top, left, oh, ow, w8, groups, in_offset, bias, mult, rn, 1, out,
                        out_zp, act_min, act_max);
  } else {
    tinyml_dw_pixels_s8(x, h, w, c, kh, kw, sh, sw, top, left, oh, ow, w8, groups, in_offset, bias, mult, rn, 0, out,
                        out_zp, act_min, act_max);
  }
}

/* ---- in-place depthwise: one channel plane at a time ------------------------- */

/* dst[i] = src[i * stride] for i < n (a channel plane of an NHWC tensor), a word per four bytes. */
TINYML_ALWAYS_INLINE void tinyml_dw_gather_s8(int8_t *dst, const int8_t *src, int32_t stride, int32_t n) {
  int32_t i = 0;
  for (; i + 4 <= n; i += 4, src += 4 * stride) {
    const uint32_t v = (uint32_t)(uint8_t)src[0] | (uint32_t)(uint8_t)src[stride] << 8 |
                       (uint32_t)(uint8_t)src[2 * stride] << 16 | (uint32_t)(uint8_t)src[3 * stride] << 24;
    memcpy(dst + i, &v, 4);
  }
  for (; i < n; ++i, src += stride) dst[i] = *src;
}

/* One channel, any window: plane is its h x w input, w8 its kh x kw weights (stride c), the
 * oh x ow outputs go to out (pixel stride c). Padding taps are skipped. */
TINYML_ALWAYS_INLINE void tinyml_dw_plane_s8(const int8_t *plane, int32_t h, int32_t w, int32_t kh, int32_t kw,
                                      int32_t sh, int32_t sw, int32_t dh, int32_t dw, int32_t top, int32_t left,
                                      int32_t oh, int32_t ow, const int8_t *w8, int32_t c, int32_t in_offset,
                                      int32_t bias, int32_t mult, int32_t shift, int8_t *out, int32_t out_zp,
                                      int32_t act_min, int32_t act_max) {
  for (int32_t oy = 0; oy < oh; ++oy) {
    for (int32_t ox = 0; ox < ow; ++ox) {
      int32_t s = bias;
      for (int32_t ky = 0; ky < kh; ++ky) {
        const int32_t iy = oy * sh - top + ky * dh;
        if (iy < 0 || iy >= h) continue;
        for (int32_t kx = 0; kx < kw; ++kx) {
          const int32_t ix = ox * sw - left + kx * dw;
          if (ix < 0 || ix >= w) continue;
          s += (plane[iy * w + ix] + in_offset) * w8[(ky * kw + kx) * c];
        }
      }
      out[(oy * ow + ox) * c] = tinyml_requant_fast_i8(s, mult, shift, out_zp, act_min, act_max);
    }
  }
}

/* Columns ix .. ix+3 of a plane row of w bytes as one word, the bytes outside [0, w) set to the
 * zero point (zp4 holds it in every byte); `last`: the plane ends with this row. Needs
 * -3 <= ix < w and a plane of at least 4 bytes (never reads outside it). */
TINYML_ALWAYS_INLINE uint32_t tinyml_dw_row4(const int8_t *row, int32_t ix, int32_t w, int last, uint32_t zp4) {
  uint32_t v;
  if (ix >= 0 && ix + 4 <= w) return tinyml_load4(row + ix);
  if (w >= 4) {
    if (ix < 0) return (tinyml_load4(row) << (-8 * ix)) | (zp4 >> (32 + 8 * ix));
    return (tinyml_load4(row + w - 4) >> (8 * (ix + 4 - w))) | (zp4 << (32 - 8 * (ix + 4 - w)));
  }
  v = last ? tinyml_load4(row + w - 4) >> (8 * (4 - w)) : tinyml_load4(row);
  v = (v & ((1u << (8 * w)) - 1u)) | (zp4 << (8 * w));
  if (ix < 0) return (v << (-8 * ix)) | (zp4 >> (32 + 8 * ix));
  return ix > 0 ? (v >> (8 * ix)) | (zp4 << (32 - 8 * ix)) : v;
}

/* The per-channel constants of the 3x3 plane kernel. `fast` (tinyml_dw_fast_ok): weights and
 * bias are doubled and outputs requantized by tinyml_dw_requant2; else the requantization is
 * split so that requant(acc << left, mult, shift - left) == requant(acc, mult, shift) needs no
 * branch on the sign of the shift (gcc then knows shift - left <= 0). */
typedef struct {
  uint32_t w02[3]; /* kernel row r: (w[r][0], w[r][2]) */
  uint32_t w1[2];  /* (w[0][1], w[1][1]), (w[2][1], 0) */
  uint32_t off2, zp4;
  const int32_t *mult; /* read at each use: keeps gcc's widening multiply (SMLAL) */
  int32_t bias, left, right_shift, nudge, out_zp, act_min, act_max;
} tinyml_dw3_t;

TINYML_ALWAYS_INLINE int8_t tinyml_dw3_requant(const tinyml_dw3_t *k, int32_t acc, const int fast) {
  if (fast) return tinyml_dw_requant2(acc, *k->mult, k->right_shift, k->nudge, k->act_min, k->act_max);
  return tinyml_requant_fast_i8((int32_t)((uint32_t)acc << k->left), *k->mult, k->right_shift, k->out_zp, k->act_min,
                                k->act_max);
}

/* Adds kernel row r times input row `row` to a0 (columns ix .. ix+2) and a1 (ix+1 .. ix+3);
 * w[r][1] is the bottom half of w1[r / 2], for r = 1 the top half of w1[0]. */
TINYML_ALWAYS_INLINE void tinyml_dw3_tap_row(const tinyml_dw3_t *k, const int r, const int8_t *row, int32_t ix,
                                      int32_t w, int last, const int clip, int32_t *a0, int32_t *a1) {
  const uint32_t v = clip ? tinyml_dw_row4(row, ix, w, last, k->zp4) : tinyml_load4(row + ix);
  const uint32_t pa = tinyml_sxtab16(k->off2, v), pb = tinyml_sxtab16_ror8(k->off2, v);
  if (r == 1) {
    *a0 = tinyml_smlatb(k->w1[0], pb, tinyml_smlad(pa, k->w02[r], *a0));
    *a1 = tinyml_smlatt(pa, k->w1[0], tinyml_smlad(pb, k->w02[r], *a1));
  } else {
    *a0 = tinyml_smlabb(pb, k->w1[r / 2], tinyml_smlad(pa, k->w02[r], *a0));
    *a1 = tinyml_smlatb(pa, k->w1[r / 2], tinyml_smlad(pb, k->w02[r], *a1));
  }
}

/* Output column(s) of a 3x3 window at input column ix, rows iy0 + [ky0, ky1): and with `pair`
 * (stride 1) also the next column. `clip`: ix .. ix+3 may reach outside the row. */
TINYML_ALWAYS_INLINE void tinyml_dw3_item(const tinyml_dw3_t *k, const int8_t *plane, int32_t h, int32_t w,
                                   int32_t iy0, int32_t ix, const int ky0, const int ky1, const int clip,
                                   const int pair, const int fast, int8_t *out, int32_t c) {
  int32_t a0 = k->bias, a1 = k->bias;
  const int8_t *row = plane + iy0 * w;
  if (ky0 <= 0) tinyml_dw3_tap_row(k, 0, row, ix, w, iy0 == h - 1, clip, &a0, &a1);
  if (ky0 <= 1 && ky1 > 1) tinyml_dw3_tap_row(k, 1, row + w, ix, w, iy0 + 1 == h - 1, clip, &a0, &a1);
  if (ky1 > 2) tinyml_dw3_tap_row(k, 2, row + 2 * w, ix, w, iy0 + 2 == h - 1, clip, &a0, &a1);
  out[0] = tinyml_dw3_requant(k, a0, fast);
  if (pair) out[c] = tinyml_dw3_requant(k, a1, fast);
}

/* One output row of the 3x3 plane kernel (input rows iy0 + [ky0, ky1)): the first and last
 * column steps are clipped at the plane's edges, the ones between read whole words. */
TINYML_ALWAYS_INLINE void tinyml_dw3_row(const tinyml_dw3_t *k, const int8_t *plane, int32_t h, int32_t w,
                                  int32_t iy0, const int ky0, const int ky1, int32_t sw, int32_t left, int32_t ow,
                                  const int fast, int8_t *out, int32_t c) {
  const int32_t step = sw == 1 ? 2 : 1;
  const int32_t last = (ow - 1) / step * step;
  tinyml_dw3_item(k, plane, h, w, iy0, -left, ky0, ky1, 1, step == 2 && ow > 1, fast, out, c);
  for (int32_t ox = step; ox < last; ox += step) {
    tinyml_dw3_item(k, plane, h, w, iy0, ox * sw - left, ky0, ky1, 0, step == 2, fast, out + ox * c, c);
  }
  if (last > 0) {
    tinyml_dw3_item(k, plane, h, w, iy0, last * sw - left, ky0, ky1, 1, step == 2 && last + 1 < ow, fast,
                    out + last * c, c);
  }
}

/* Every output row of the 3x3 plane kernel: the clipped first and last ones skip the kernel
 * rows outside the plane. */
TINYML_ALWAYS_INLINE void tinyml_dw3_rows(const tinyml_dw3_t *k, const int8_t *plane, int32_t h, int32_t w, int32_t sh,
                                   int32_t sw, int32_t top, int32_t left, int32_t oh, int32_t ow, const int fast,
                                   int8_t *out, int32_t c) {
  tinyml_dw3_row(k, plane, h, w, -top, top, h + top < 3 ? h + top : 3, sw, left, ow, fast, out, c);
  for (int32_t oy = 1; oy < oh - 1; ++oy) {
    tinyml_dw3_row(k, plane, h, w, oy * sh - top, 0, 3, sw, left, ow, fast, out + oy * ow * c, c);
  }
  if (oh > 1) {
    const int32_t iy0 = (oh - 1) * sh - top;
    tinyml_dw3_row(k, plane, h, w, iy0, 0, h - iy0 < 3 ? h - iy0 : 3, sw, left, ow, fast, out + (oh - 1) * ow * c, c);
  }
}

/* (a, b) as the two halfwords of a word. */
TINYML_ALWAYS_INLINE uint32_t tinyml_dw_pair16(int32_t a, int32_t b) { return (uint32_t)(uint16_t)a | (uint32_t)b << 16; }

/* One channel of a 3x3 depthwise convolution, stride 1 or 2, pads 0 or 1, dilation 1, on its
 * h x w input plane (h * w >= 4): w8 its int8 weights (stride c), the oh x ow outputs to out
 * (pixel stride c). Padding reads the zero point (in_offset + zp = 0). */
TINYML_ALWAYS_INLINE void tinyml_dw3_plane_s8(const int8_t *plane, int32_t h, int32_t w, int32_t sh, int32_t sw,
                                       int32_t top, int32_t left, int32_t oh, int32_t ow, const int8_t *w8,
                                       int32_t c, int32_t in_offset, int32_t bias, const int32_t *mult, int32_t shift,
                                       int8_t *out, int32_t out_zp, int32_t act_min, int32_t act_max) {
  tinyml_dw3_t k;
  const int fast = tinyml_dw_fast_ok(bias, -shift, 9);
  const int32_t f = fast ? 2 : 1;
  k.w02[0] = tinyml_dw_pair16(f * w8[0], f * w8[2 * c]);
  k.w02[1] = tinyml_dw_pair16(f * w8[3 * c], f * w8[5 * c]);
  k.w02[2] = tinyml_dw_pair16(f * w8[6 * c], f * w8[8 * c]);
  k.w1[0] = tinyml_dw_pair16(f * w8[c], f * w8[4 * c]);
  k.w1[1] = tinyml_dw_pair16(f * w8[7 * c], 0);
  k.off2 = tinyml_offset2(in_offset);
  k.zp4 = (uint32_t)(uint8_t)(-in_offset) * 0x01010101u;
  k.bias = f * bias;
  k.mult = mult;
  k.out_zp = out_zp;
  k.act_min = act_min;
  k.act_max = act_max;
  if (fast) {
    k.left = 0;
    k.right_shift = -shift;
    k.nudge = tinyml_dw_nudge(-shift, out_zp);
    tinyml_dw3_rows(&k, plane, h, w, sh, sw, top, left, oh, ow, 1, out, c);
  } else {
    k.left = shift > 0 ? shift : 0;
    k.right_shift = shift > 0 ? 0 : shift;
    k.nudge = 0;
    tinyml_dw3_rows(&k, plane, h, w, sh, sw, top, left, oh, ow, 0, out, c);
  }
}

#endif /* TINYML_SIMD_DW_H_ */
