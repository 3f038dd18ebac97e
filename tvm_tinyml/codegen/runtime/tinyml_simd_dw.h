/*
 * tinyml_simd_dw.h - depthwise convolution micro-kernels on the tinyml_simd.h
 * primitives: ordinary (pixel by pixel) and in-place (channel plane by plane).
 */
#ifndef TINYML_SIMD_DW_H_
#define TINYML_SIMD_DW_H_

#include "tinyml_simd.h"

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

/* One tap of four channels: x4 their input bytes, w4 their weights stored (c0, c2, c1, c3). */
TINYML_ALWAYS_INLINE void tinyml_dw_tap4(const int8_t *x4, const int16_t *w4, uint32_t off2, int32_t *a) {
  const uint32_t v = tinyml_load4(x4);
  const uint32_t pa = tinyml_sxtab16(off2, v), pb = tinyml_sxtab16_ror8(off2, v);
  const uint32_t w02 = tinyml_load4(w4), w13 = tinyml_load4(w4 + 2);
  a[0] = tinyml_smlabb(pa, w02, a[0]);
  a[2] = tinyml_smlatt(pa, w02, a[2]);
  a[1] = tinyml_smlabb(pb, w13, a[1]);
  a[3] = tinyml_smlatt(pb, w13, a[3]);
}

/* tinyml_dw_pixel_s8 for a whole 3x3 window (no padding), all nine taps unrolled with
 * constant offsets: x is the window's top-left input pixel (row stride x_row). */
TINYML_ALWAYS_INLINE void tinyml_dw3_pixel_s8(const int8_t *x, int32_t x_row, int32_t c, const int16_t *w16,
                                       int32_t groups, int32_t in_offset, const int32_t *bias,
                                       const int32_t *mult, const int32_t *shift, int8_t *out, int32_t out_zp,
                                       int32_t act_min, int32_t act_max) {
  const uint32_t off2 = tinyml_offset2(in_offset);
  for (int32_t ch = 0; ch < 4 * groups; ch += 4) {
    int32_t a[4] = {bias[ch], bias[ch + 1], bias[ch + 2], bias[ch + 3]};
    tinyml_dw_tap4(x + ch, w16 + ch, off2, a);
    tinyml_dw_tap4(x + c + ch, w16 + c + ch, off2, a);
    tinyml_dw_tap4(x + 2 * c + ch, w16 + 2 * c + ch, off2, a);
    tinyml_dw_tap4(x + x_row + ch, w16 + 3 * c + ch, off2, a);
    tinyml_dw_tap4(x + x_row + c + ch, w16 + 4 * c + ch, off2, a);
    tinyml_dw_tap4(x + x_row + 2 * c + ch, w16 + 5 * c + ch, off2, a);
    tinyml_dw_tap4(x + 2 * x_row + ch, w16 + 6 * c + ch, off2, a);
    tinyml_dw_tap4(x + 2 * x_row + c + ch, w16 + 7 * c + ch, off2, a);
    tinyml_dw_tap4(x + 2 * x_row + 2 * c + ch, w16 + 8 * c + ch, off2, a);
    out[ch] = tinyml_requant_fast_i8(a[0], mult[ch], shift[ch], out_zp, act_min, act_max);
    out[ch + 1] = tinyml_requant_fast_i8(a[1], mult[ch + 1], shift[ch + 1], out_zp, act_min, act_max);
    out[ch + 2] = tinyml_requant_fast_i8(a[2], mult[ch + 2], shift[ch + 2], out_zp, act_min, act_max);
    out[ch + 3] = tinyml_requant_fast_i8(a[3], mult[ch + 3], shift[ch + 3], out_zp, act_min, act_max);
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

/* One channel, any window: plane is its h x w input, w16 its kh x kw weights (stride c), the
 * oh x ow outputs go to out (pixel stride c). Padding taps are skipped. */
TINYML_ALWAYS_INLINE void tinyml_dw_plane_s8(const int8_t *plane, int32_t h, int32_t w, int32_t kh, int32_t kw,
                                      int32_t sh, int32_t sw, int32_t dh, int32_t dw, int32_t top, int32_t left,
                                      int32_t oh, int32_t ow, const int16_t *w16, int32_t c, int32_t in_offset,
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
          s += (plane[iy * w + ix] + in_offset) * w16[(ky * kw + kx) * c];
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

/* The per-channel constants of the 3x3 plane kernel. The requantization is split so that
 * requant(acc << left, mult, shift - left) == requant(acc, mult, shift) needs no branch
 * on the sign of the shift (gcc then knows shift - left <= 0). */
typedef struct {
  uint32_t w02[3]; /* kernel row r: (w[r][0], w[r][2]) */
  uint32_t w1[2];  /* (w[0][1], w[1][1]), (w[2][1], 0) */
  uint32_t off2, zp4;
  const int32_t *mult; /* read at each use: keeps gcc's widening multiply (SMLAL) */
  int32_t bias, left, right_shift, out_zp, act_min, act_max;
} tinyml_dw3_t;

TINYML_ALWAYS_INLINE int8_t tinyml_dw3_requant(const tinyml_dw3_t *k, int32_t acc) {
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
                                   const int pair, int8_t *out, int32_t c) {
  int32_t a0 = k->bias, a1 = k->bias;
  const int8_t *row = plane + iy0 * w;
  if (ky0 <= 0) tinyml_dw3_tap_row(k, 0, row, ix, w, iy0 == h - 1, clip, &a0, &a1);
  if (ky0 <= 1 && ky1 > 1) tinyml_dw3_tap_row(k, 1, row + w, ix, w, iy0 + 1 == h - 1, clip, &a0, &a1);
  if (ky1 > 2) tinyml_dw3_tap_row(k, 2, row + 2 * w, ix, w, iy0 + 2 == h - 1, clip, &a0, &a1);
  out[0] = tinyml_dw3_requant(k, a0);
  if (pair) out[c] = tinyml_dw3_requant(k, a1);
}

/* One output row of the 3x3 plane kernel (input rows iy0 + [ky0, ky1)): the first and last
 * column steps are clipped at the plane's edges, the ones between read whole words. */
TINYML_ALWAYS_INLINE void tinyml_dw3_row(const tinyml_dw3_t *k, const int8_t *plane, int32_t h, int32_t w,
                                  int32_t iy0, const int ky0, const int ky1, int32_t sw, int32_t left, int32_t ow,
                                  int8_t *out, int32_t c) {
  const int32_t step = sw == 1 ? 2 : 1;
  const int32_t last = (ow - 1) / step * step;
  tinyml_dw3_item(k, plane, h, w, iy0, -left, ky0, ky1, 1, step == 2 && ow > 1, out, c);
  for (int32_t ox = step; ox < last; ox += step) {
    tinyml_dw3_item(k, plane, h, w, iy0, ox * sw - left, ky0, ky1, 0, step == 2, out + ox * c, c);
  }
  if (last > 0) {
    tinyml_dw3_item(k, plane, h, w, iy0, last * sw - left, ky0, ky1, 1, step == 2 && last + 1 < ow, out + last * c, c);
  }
}

/* One channel of a 3x3 depthwise convolution, stride 1 or 2, pads 0 or 1, dilation 1, on its
 * h x w input plane (h * w >= 4): w16 its weights (stride c), the oh x ow outputs to out (pixel
 * stride c). Padding reads the zero point (in_offset + zp = 0); the clipped first and last
 * output rows skip the kernel rows outside the plane. */
TINYML_ALWAYS_INLINE void tinyml_dw3_plane_s8(const int8_t *plane, int32_t h, int32_t w, int32_t sh, int32_t sw,
                                       int32_t top, int32_t left, int32_t oh, int32_t ow, const int16_t *w16,
                                       int32_t c, int32_t in_offset, int32_t bias, const int32_t *mult, int32_t shift,
                                       int8_t *out, int32_t out_zp, int32_t act_min, int32_t act_max) {
  tinyml_dw3_t k;
  k.w02[0] = (uint32_t)(uint16_t)w16[0] | (uint32_t)(uint16_t)w16[2 * c] << 16;
  k.w02[1] = (uint32_t)(uint16_t)w16[3 * c] | (uint32_t)(uint16_t)w16[5 * c] << 16;
  k.w02[2] = (uint32_t)(uint16_t)w16[6 * c] | (uint32_t)(uint16_t)w16[8 * c] << 16;
  k.w1[0] = (uint32_t)(uint16_t)w16[c] | (uint32_t)(uint16_t)w16[4 * c] << 16;
  k.w1[1] = (uint32_t)(uint16_t)w16[7 * c];
  k.off2 = tinyml_offset2(in_offset);
  k.zp4 = (uint32_t)(uint8_t)(-in_offset) * 0x01010101u;
  k.bias = bias;
  k.mult = mult;
  k.left = shift > 0 ? shift : 0;
  k.right_shift = shift > 0 ? 0 : shift;
  k.out_zp = out_zp;
  k.act_min = act_min;
  k.act_max = act_max;
  tinyml_dw3_row(&k, plane, h, w, -top, top, h + top < 3 ? h + top : 3, sw, left, ow, out, c);
  for (int32_t oy = 1; oy < oh - 1; ++oy) {
    tinyml_dw3_row(&k, plane, h, w, oy * sh - top, 0, 3, sw, left, ow, out + oy * ow * c, c);
  }
  if (oh > 1) {
    const int32_t iy0 = (oh - 1) * sh - top;
    tinyml_dw3_row(&k, plane, h, w, iy0, 0, h - iy0 < 3 ? h - iy0 : 3, sw, left, ow, out + (oh - 1) * ow * c, c);
  }
}

#endif /* TINYML_SIMD_DW_H_ */
