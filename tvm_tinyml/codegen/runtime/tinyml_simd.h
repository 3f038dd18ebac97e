/*
 * tinyml_simd.h - DSP primitives for Cortex-M (SMLAD, SXTAB16, SMLAxy) with a
 * portable C fallback so the very same C runs on the host, and the fast exact
 * requantization; the micro-kernels built on them are in tinyml_simd_conv.h
 * and tinyml_simd_dw.h (the code generator inlines all three, in that order).
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

/* x clamped to [lo, hi] within [-128, 127]: one SSAT, and a compare for a bound inside it
 * (none when the bounds are the int8 ones and constant after inlining). */
static inline int32_t tinyml_sat_i8(int32_t x, int32_t lo, int32_t hi) {
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
  __asm__("ssat %0, #8, %1" : "=r"(x) : "r"(x));
#else
  x = x < -128 ? -128 : x > 127 ? 127 : x;
#endif
  if (lo > -128) x = x < lo ? lo : x;
  if (hi < 127) x = x > hi ? hi : x;
  return x;
}

/* Unaligned little-endian 32-bit load (one LDR on Cortex-M4/M7). */
static inline uint32_t tinyml_load4(const void *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

/* Aligned 32-bit load (two of them at adjacent addresses may become one LDRD, which
 * needs word alignment); the host build keeps memcpy. */
static inline uint32_t tinyml_load4a(const void *p) {
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
  return *(const uint32_t *)__builtin_assume_aligned(p, 4);
#else
  return tinyml_load4(p);
#endif
}

/* Word-aligned little-endian 64-bit load (one LDRD; gcc splits it into two LDR otherwise). */
static inline int64_t tinyml_load8a(const void *p) {
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
  uint32_t lo, hi;
  __asm__("ldrd %0, %1, [%2]" : "=r"(lo), "=r"(hi) : "r"(p), "m"(*(const uint32_t(*)[2])p));
  return (int64_t)(((uint64_t)hi << 32) | lo);
#else
  int64_t v;
  memcpy(&v, p, 8);
  return v;
#endif
}

/* Unaligned little-endian 32-bit store (one STR on Cortex-M4/M7). */
static inline void tinyml_store4(void *p, uint32_t v) { memcpy(p, &v, 4); }

/* The low (PKHBT) and high (PKHTB) halfwords of a and b: (a.lo, b.lo) and (a.hi, b.hi). */
static inline uint32_t tinyml_pack_lo(uint32_t a, uint32_t b) { return (a & 0xFFFFu) | (b << 16); }
static inline uint32_t tinyml_pack_hi(uint32_t a, uint32_t b) { return (a >> 16) | (b & 0xFFFF0000u); }

/* The input offset (-zero point) in both halfwords, for SXTAB16. */
static inline uint32_t tinyml_offset2(int32_t in_offset) {
  return ((uint32_t)in_offset & 0xFFFFu) | ((uint32_t)in_offset << 16);
}

/* An M (1 or 2) pixels x 2 channels int16 dot-product tile: `n` times (n >= 1) U (1 or 2)
 * steps of a<p><c> += the 4-value dot product of pixel p's values (*x, and X1_BYTES further)
 * and channel c's (*w, and 4 values further), then x += 4, w += 8. Words aligned; X1_BYTES a
 * constant multiple of 4 below 1024. On Cortex-M the loop is one asm block (per step 3 LDRD
 * with the pointer updates folded in and 4 M SMLAD; 13 registers), as gcc's register
 * allocation of it in C spills. */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#define TINYML_MAC_STEP_1                       \
  "ldrd %[x0a], %[x0b], [%[x]], #8\n\t"         \
  "ldrd %[wa], %[wb], [%[w]], #16\n\t"         \
  "smlad %[a00], %[x0a], %[wa], %[a00]\n\t"    \
  "smlad %[a00], %[x0b], %[wb], %[a00]\n\t"    \
  "ldrd %[wa], %[wb], [%[w], #-8]\n\t"         \
  "smlad %[a01], %[x0a], %[wa], %[a01]\n\t"    \
  "smlad %[a01], %[x0b], %[wb], %[a01]\n\t"
#define TINYML_MAC_STEP_2                       \
  "ldrd %[x0a], %[x0b], [%[x]], #8\n\t"         \
  "ldrd %[x1a], %[x1b], [%[x], %[x1]]\n\t"     \
  "ldrd %[wa], %[wb], [%[w]], #16\n\t"         \
  "smlad %[a00], %[x0a], %[wa], %[a00]\n\t"    \
  "smlad %[a10], %[x1a], %[wa], %[a10]\n\t"    \
  "smlad %[a00], %[x0b], %[wb], %[a00]\n\t"    \
  "smlad %[a10], %[x1b], %[wb], %[a10]\n\t"    \
  "ldrd %[wa], %[wb], [%[w], #-8]\n\t"         \
  "smlad %[a01], %[x0a], %[wa], %[a01]\n\t"    \
  "smlad %[a11], %[x1a], %[wa], %[a11]\n\t"    \
  "smlad %[a01], %[x0b], %[wb], %[a01]\n\t"    \
  "smlad %[a11], %[x1b], %[wb], %[a11]\n\t"
#define TINYML_MAC_LOOP "subs %[n], %[n], #1\n\tbne 1b"
#define TINYML_MAC_ASM(STEPS, X, W, X1_BYTES, N, A00, A01, A10, A11)                                         \
  do {                                                                                                      \
    uint32_t x0a_, x0b_, x1a_, x1b_, wa_, wb_;                                                              \
    int32_t n_ = (N);                                                                                       \
    __asm__("1:\n\t" STEPS                                                                                  \
            : [x0a] "=&r"(x0a_), [x0b] "=&r"(x0b_), [x1a] "=&r"(x1a_), [x1b] "=&r"(x1b_), [wa] "=&r"(wa_),    \
              [wb] "=&r"(wb_), [a00] "+r"(A00), [a01] "+r"(A01), [a10] "+r"(A10), [a11] "+r"(A11), [x] "+r"(X), \
              [w] "+r"(W), [n] "+r"(n_)                                                                     \
            : [x1] "n"((X1_BYTES) - 8)                                                                      \
            : "memory", "cc");                                                                              \
  } while (0)
#define TINYML_MAC_S16_M(STEP, X, W, X1_BYTES, N, U, A00, A01, A10, A11)                                       \
  do {                                                                                                       \
    if ((N) == 1 && (U) == 1) /* one pass: no loop */                                                       \
      TINYML_MAC_ASM(STEP, X, W, X1_BYTES, N, A00, A01, A10, A11);                                           \
    else if ((N) == 1)                                                                                       \
      TINYML_MAC_ASM(STEP STEP, X, W, X1_BYTES, N, A00, A01, A10, A11);                                      \
    else if ((U) > 1)                                                                                        \
      TINYML_MAC_ASM(STEP STEP TINYML_MAC_LOOP, X, W, X1_BYTES, N, A00, A01, A10, A11);                      \
    else                                                                                                     \
      TINYML_MAC_ASM(STEP TINYML_MAC_LOOP, X, W, X1_BYTES, N, A00, A01, A10, A11);                           \
  } while (0)
#define TINYML_MAC_S16(M, X, W, X1_BYTES, N, U, A00, A01, A10, A11)                         \
  do {                                                                                    \
    if ((M) > 1)                                                                          \
      TINYML_MAC_S16_M(TINYML_MAC_STEP_2, X, W, X1_BYTES, N, U, A00, A01, A10, A11);      \
    else                                                                                  \
      TINYML_MAC_S16_M(TINYML_MAC_STEP_1, X, W, X1_BYTES, N, U, A00, A01, A10, A11);      \
  } while (0)
#else
#define TINYML_MAC_S16(M, X, W, X1_BYTES, N, U, A00, A01, A10, A11)                      \
  do {                                                                                 \
    for (int32_t s_ = 0; s_ < (N) * (U); ++s_, (X) += 4, (W) += 8) {                   \
      for (int i_ = 0; i_ < 4; i_ += 2) {                                              \
        const uint32_t x0_ = tinyml_load4((X) + i_);                                   \
        const uint32_t w0_ = tinyml_load4((W) + i_), w1_ = tinyml_load4((W) + 4 + i_); \
        A00 = tinyml_smlad(x0_, w0_, A00);                                             \
        A01 = tinyml_smlad(x0_, w1_, A01);                                             \
        if ((M) > 1) {                                                                 \
          const uint32_t x1_ = tinyml_load4((X) + (X1_BYTES) / 2 + i_);                \
          A10 = tinyml_smlad(x1_, w0_, A10);                                           \
          A11 = tinyml_smlad(x1_, w1_, A11);                                           \
        }                                                                              \
      }                                                                                \
    }                                                                                  \
  } while (0)
#endif

/* Tiles with int8 weights stored [w0 w2 w1 w3] per group of four (SXTB16 widens (w0, w1),
 * SXTB16 ROR 8 (w2, w3)) over int16 pixel values, x word aligned; each step covers 4 values,
 * then x += 4. U (1, 2 or 4) steps per iteration, `n` >= 1 iterations.
 *   TINYML_MAC8_COL: M (1 to 6) pixels (pixel p at x + p * X1_BYTES) x 1 channel (w += 4 a
 *     step): a<p> += the dot products; per step 1 LDR, 2 SXTB16, M LDRD and 2 M SMLAD.
 *   TINYML_MAC8_ROW: 1 pixel x 2 channels (4 bytes each, interleaved: w += 8 a step):
 *     a0 and a1 += the dot products; per step 1 LDRD, 2 LDR, 4 SXTB16 and 4 SMLAD.
 * X1_BYTES a constant multiple of 4 with (M - 1) * X1_BYTES below 1024. On Cortex-M each loop
 * is one asm block (13 registers at most). */

/* acc += the 4-value dot product of int16 values at x and 4 int8 weights at w ([w0 w2 w1 w3]). */
static inline int32_t tinyml_dot4_s8w(const int16_t *x, const int8_t *w, int32_t acc) {
  const uint32_t wv = tinyml_load4(w);
  return tinyml_smlad(tinyml_load4(x + 2), tinyml_sxtb16_ror8(wv), tinyml_smlad(tinyml_load4(x), tinyml_sxtb16(wv), acc));
}
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#define TINYML_MAC8_PIX(A, O)                           \
  "ldrd %[xa], %[xb], [%[x], %[" O "]]\n\t"             \
  "smlad %[" A "], %[xa], %[t], %[" A "]\n\t"           \
  "smlad %[" A "], %[xb], %[w], %[" A "]\n\t"
#define TINYML_MAC8_COL_HEAD                            \
  "ldr %[w], [%[wp]], #4\n\t"                           \
  "sxtb16 %[t], %[w]\n\t"                               \
  "sxtb16 %[w], %[w], ror #8\n\t"                       \
  "ldrd %[xa], %[xb], [%[x]], #8\n\t"                   \
  "smlad %[a0], %[xa], %[t], %[a0]\n\t"                 \
  "smlad %[a0], %[xb], %[w], %[a0]\n\t"
#define TINYML_MAC8_COL_1 TINYML_MAC8_COL_HEAD
#define TINYML_MAC8_COL_2 TINYML_MAC8_COL_HEAD TINYML_MAC8_PIX("a1", "o1")
#define TINYML_MAC8_COL_3 TINYML_MAC8_COL_2 TINYML_MAC8_PIX("a2", "o2")
#define TINYML_MAC8_COL_4 TINYML_MAC8_COL_3 TINYML_MAC8_PIX("a3", "o3")
#define TINYML_MAC8_COL_5 TINYML_MAC8_COL_4 TINYML_MAC8_PIX("a4", "o4")
#define TINYML_MAC8_COL_6 TINYML_MAC8_COL_5 TINYML_MAC8_PIX("a5", "o5")
#define TINYML_MAC8_CH(A)                               \
  "ldr %[w], [%[wp]], #4\n\t"                           \
  "sxtb16 %[t], %[w]\n\t"                               \
  "smlad %[" A "], %[xa], %[t], %[" A "]\n\t"           \
  "sxtb16 %[t], %[w], ror #8\n\t"                       \
  "smlad %[" A "], %[xb], %[t], %[" A "]\n\t"
#define TINYML_MAC8_ROW_1 "ldrd %[xa], %[xb], [%[x]], #8\n\t" TINYML_MAC8_CH("a0") TINYML_MAC8_CH("a1")
#define TINYML_MAC8_ASM(STEP, U, X, W, X1_BYTES, N, A0, A1, A2, A3, A4, A5)                                    \
  do {                                                                                                      \
    uint32_t xa_, xb_, w_, t_;                                                                              \
    int32_t n_ = (N);                                                                                       \
    if ((N) == 1 && (U) == 1) /* one pass: no loop */                                                      \
      __asm__(STEP TINYML_MAC8_OPERANDS(X, W, X1_BYTES, A0, A1, A2, A3, A4, A5));                          \
    else if ((N) == 1 && (U) == 2)                                                                          \
      __asm__(STEP STEP TINYML_MAC8_OPERANDS(X, W, X1_BYTES, A0, A1, A2, A3, A4, A5));                     \
    else if ((N) == 1)                                                                                      \
      __asm__(STEP STEP STEP STEP TINYML_MAC8_OPERANDS(X, W, X1_BYTES, A0, A1, A2, A3, A4, A5));           \
    else if ((U) > 2)                                                                                       \
      __asm__("1:\n\t" STEP STEP STEP STEP TINYML_MAC_LOOP                                                    \
              TINYML_MAC8_OPERANDS(X, W, X1_BYTES, A0, A1, A2, A3, A4, A5));                               \
    else if ((U) > 1)                                                                                       \
      __asm__("1:\n\t" STEP STEP TINYML_MAC_LOOP TINYML_MAC8_OPERANDS(X, W, X1_BYTES, A0, A1, A2, A3, A4, A5)); \
    else                                                                                                    \
      __asm__("1:\n\t" STEP TINYML_MAC_LOOP TINYML_MAC8_OPERANDS(X, W, X1_BYTES, A0, A1, A2, A3, A4, A5));   \
  } while (0)
#define TINYML_MAC8_OPERANDS(X, W, X1_BYTES, A0, A1, A2, A3, A4, A5)                                        \
  : [xa] "=&r"(xa_), [xb] "=&r"(xb_), [w] "=&r"(w_), [t] "=&r"(t_), [a0] "+r"(A0), [a1] "+r"(A1),             \
    [a2] "+r"(A2), [a3] "+r"(A3), [a4] "+r"(A4), [a5] "+r"(A5), [x] "+r"(X), [wp] "+r"(W), [n] "+r"(n_)      \
  : [o1] "n"((X1_BYTES) - 8), [o2] "n"(2 * (X1_BYTES) - 8), [o3] "n"(3 * (X1_BYTES) - 8),                   \
    [o4] "n"(4 * (X1_BYTES) - 8), [o5] "n"(5 * (X1_BYTES) - 8)                                              \
  : "memory", "cc"
#define TINYML_MAC8_COL(M, X, W, X1_BYTES, N, U, A0, A1, A2, A3, A4, A5)                                     \
  do {                                                                                                    \
    if ((M) == 1) TINYML_MAC8_ASM(TINYML_MAC8_COL_1, U, X, W, X1_BYTES, N, A0, A1, A2, A3, A4, A5);       \
    if ((M) == 2) TINYML_MAC8_ASM(TINYML_MAC8_COL_2, U, X, W, X1_BYTES, N, A0, A1, A2, A3, A4, A5);       \
    if ((M) == 3) TINYML_MAC8_ASM(TINYML_MAC8_COL_3, U, X, W, X1_BYTES, N, A0, A1, A2, A3, A4, A5);       \
    if ((M) == 4) TINYML_MAC8_ASM(TINYML_MAC8_COL_4, U, X, W, X1_BYTES, N, A0, A1, A2, A3, A4, A5);       \
    if ((M) == 5) TINYML_MAC8_ASM(TINYML_MAC8_COL_5, U, X, W, X1_BYTES, N, A0, A1, A2, A3, A4, A5);       \
    if ((M) == 6) TINYML_MAC8_ASM(TINYML_MAC8_COL_6, U, X, W, X1_BYTES, N, A0, A1, A2, A3, A4, A5);       \
  } while (0)
#define TINYML_MAC8_ROW(X, W, N, U, A0, A1)                                                                  \
  do {                                                                                                    \
    int32_t u2_ = 0, u3_ = 0, u4_ = 0, u5_ = 0;                                                           \
    TINYML_MAC8_ASM(TINYML_MAC8_ROW_1, U, X, W, 8, N, A0, A1, u2_, u3_, u4_, u5_);                        \
  } while (0)
#else
#define TINYML_MAC8_COL(M, X, W, X1_BYTES, N, U, A0, A1, A2, A3, A4, A5)     \
  do {                                                                    \
    for (int32_t s_ = 0; s_ < (N) * (U); ++s_, (X) += 4, (W) += 4) {      \
      A0 = tinyml_dot4_s8w(X, W, A0);                                  \
      if ((M) > 1) A1 = tinyml_dot4_s8w((X) + (X1_BYTES) / 2, W, A1);  \
      if ((M) > 2) A2 = tinyml_dot4_s8w((X) + (X1_BYTES), W, A2);      \
      if ((M) > 3) A3 = tinyml_dot4_s8w((X) + 3 * (X1_BYTES) / 2, W, A3); \
      if ((M) > 4) A4 = tinyml_dot4_s8w((X) + 2 * (X1_BYTES), W, A4);  \
      if ((M) > 5) A5 = tinyml_dot4_s8w((X) + 5 * (X1_BYTES) / 2, W, A5); \
    }                                                                     \
  } while (0)
#define TINYML_MAC8_ROW(X, W, N, U, A0, A1)                               \
  do {                                                                    \
    for (int32_t s_ = 0; s_ < (N) * (U); ++s_, (X) += 4, (W) += 8) {      \
      A0 = tinyml_dot4_s8w(X, W, A0);                                  \
      A1 = tinyml_dot4_s8w(X, (W) + 4, A1);                            \
    }                                                                     \
  } while (0)
#endif

/* (c * 2^32 + a * b + 2^31) >> 32: SMMLAR. */
static inline int32_t tinyml_smmlar(int32_t a, int32_t b, int32_t c) {
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
  int32_t r;
  __asm__("smmlar %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(c));
  return r;
#else
  return (int32_t)(((int64_t)(((uint64_t)(uint32_t)c) << 32) + (int64_t)a * b + ((int64_t)1 << 31)) >> 32);
#endif
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

#endif /* TINYML_SIMD_H_ */
