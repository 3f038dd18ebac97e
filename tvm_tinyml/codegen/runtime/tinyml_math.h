/*
 * tinyml_math.h - int8 arithmetic bit-exact with the TFLite Micro reference
 * kernels (default double-rounding build, i.e. TFLITE_SINGLE_ROUNDING unset).
 *
 * Header-only C99, depends on <stdint.h> only. Every function is static
 * inline; the per-op parameters (multipliers, shifts, offsets, activation
 * ranges) are computed at compile time by tvm_tinyml/quant_params.py exactly
 * as the TFLM kernels' Prepare() computes them.
 *
 * Conventions (same as TFLM):
 *   - multiplier is a Q0.31 value in [2^30, 2^31) (or 0),
 *   - shift > 0 is a left shift, shift < 0 a right shift,
 *   - *_offset arguments are NEGATED input zero points (offset = -zp),
 *     *_zp arguments are plain zero points.
 *
 * Signed left shifts are done on uint32_t and converted back, which gives
 * the two's complement wrap-around TFLM gets from `x * (1 << s)` without
 * undefined behaviour; signed right shifts are assumed arithmetic (true for
 * GCC, Clang, armcc, IAR), as gemmlowp assumes.
 */
#ifndef TINYML_MATH_H_
#define TINYML_MATH_H_

#include <float.h>
#include <math.h>
#include <stdint.h>

/* Every layer's kernel is compiled as a function of its own, neither inlined into its caller nor
 * specialised for its call's constant arguments (gcc's noipa), so its code does not depend on
 * where it is called from: `tvm-tinyml tune` measures the code the model runs. */
#if defined(__GNUC__) && !defined(__clang__)
#define TINYML_KERNEL static __attribute__((noipa))
#elif defined(__GNUC__)
#define TINYML_KERNEL static __attribute__((noinline))
#else
#define TINYML_KERNEL static
#endif

/* ---- gemmlowp fixed-point primitives (fixedpoint/fixedpoint.h) ---------- */

/* gemmlowp::SaturatingRoundingDoublingHighMul<int32_t> (ARM VQRDMULH). */
static inline int32_t tinyml_sat_rounding_doubling_high_mul(int32_t a,
                                                            int32_t b) {
  int64_t ab, nudge;
  if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;
  ab = (int64_t)a * (int64_t)b;
  nudge = ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
  return (int32_t)((ab + nudge) / ((int64_t)1 << 31)); /* truncating div */
}

/* gemmlowp::RoundingDivideByPOT: x / 2^exponent, ties away from zero.
 * exponent in [0, 31]. */
static inline int32_t tinyml_rounding_divide_by_pot(int32_t x,
                                                    int32_t exponent) {
  const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* x * 2^exponent with two's complement wrap-around (gemmlowp ShiftLeft). */
static inline int32_t tinyml_shift_left(int32_t x, int32_t exponent) {
  return (int32_t)((uint32_t)x << exponent);
}

/* gemmlowp SaturatingRoundingMultiplyByPOT<exponent> for exponent > 0. */
static inline int32_t tinyml_saturating_shift_left(int32_t x,
                                                   int32_t exponent) {
  const int32_t threshold = (int32_t)(((int64_t)1 << (31 - exponent)) - 1);
  if (x > threshold) return INT32_MAX;
  if (x < -threshold) return INT32_MIN;
  return tinyml_shift_left(x, exponent);
}

/* ---- requantization (tensorflow/lite/kernels/internal/common.cc) -------- */

/* tflite::MultiplyByQuantizedMultiplier(int32_t, int32_t, int), double
 * rounding. Also equals MultiplyByQuantizedMultiplierSmallerThanOneExp
 * (shift <= 0) and ...GreaterThanOne (shift >= 0). */
static inline int32_t tinyml_mul_by_quantized_multiplier(int32_t x,
                                                         int32_t multiplier,
                                                         int32_t shift) {
  const int32_t left_shift = shift > 0 ? shift : 0;
  const int32_t right_shift = shift > 0 ? 0 : -shift;
  return tinyml_rounding_divide_by_pot(
      tinyml_sat_rounding_doubling_high_mul(tinyml_shift_left(x, left_shift),
                                            multiplier),
      right_shift);
}

static inline int8_t tinyml_clamp_i8(int32_t x, int32_t lo, int32_t hi) {
  return (int8_t)(x < lo ? lo : (x > hi ? hi : x));
}

/* Output stage of reference_integer_ops::ConvPerChannel /
 * DepthwiseConvPerChannel / FullyConnected (acc already includes the bias). */
static inline int8_t tinyml_requant_i8(int32_t acc, int32_t multiplier,
                                       int32_t shift, int32_t out_zp,
                                       int32_t act_min, int32_t act_max) {
  return tinyml_clamp_i8(
      tinyml_mul_by_quantized_multiplier(acc, multiplier, shift) + out_zp,
      act_min, act_max);
}

/* ---- elementwise ops ----------------------------------------------------- */

/* An ADD/SUB/SQUARED_DIFFERENCE input rescaled to the common scale:
 * MultiplyByQuantizedMultiplierSmallerThanOneExp((offset + x) << left_shift). */
static inline int32_t tinyml_scale_input_i8(int32_t x, int32_t offset,
                                            int32_t left_shift,
                                            int32_t mult, int32_t shift) {
  return tinyml_mul_by_quantized_multiplier(
      tinyml_shift_left(offset + x, left_shift), mult, shift);
}

/* reference_integer_ops::AddFunc (int8). Arguments are the keys of
 * quant_params.add_params() in order; in*_offset = -zero_point,
 * in*_shift / out_shift <= 0, left_shift = 20. */
static inline int8_t tinyml_add_i8(int32_t a, int32_t b, int32_t in1_offset,
                                   int32_t in1_mult, int32_t in1_shift,
                                   int32_t in2_offset, int32_t in2_mult,
                                   int32_t in2_shift, int32_t left_shift,
                                   int32_t out_mult, int32_t out_shift,
                                   int32_t out_zp, int32_t act_min,
                                   int32_t act_max) {
  const int32_t raw_sum =
      tinyml_scale_input_i8(a, in1_offset, left_shift, in1_mult, in1_shift) +
      tinyml_scale_input_i8(b, in2_offset, left_shift, in2_mult, in2_shift);
  return tinyml_clamp_i8(
      tinyml_mul_by_quantized_multiplier(raw_sum, out_mult, out_shift) +
          out_zp,
      act_min, act_max);
}

/* reference_integer_ops::MulElementwise / BroadcastMul6DSlow (int8).
 * Arguments are the keys of quant_params.mul_params() in order. */
static inline int8_t tinyml_mul_i8(int32_t a, int32_t b, int32_t in1_offset,
                                   int32_t in2_offset, int32_t out_mult,
                                   int32_t out_shift, int32_t out_zp,
                                   int32_t act_min, int32_t act_max) {
  return tinyml_clamp_i8(
      out_zp + tinyml_mul_by_quantized_multiplier(
                   (in1_offset + a) * (in2_offset + b), out_mult, out_shift),
      act_min, act_max);
}

/* ---- binary elementwise ops (family: binary) ------------------------------ */

/* reference_ops::SubElementwise / BroadcastQuantSubSlow (int8). Arguments are
 * the keys of quant_params.sub_params() in order (same layout as ADD). */
static inline int8_t tinyml_sub_i8(int32_t a, int32_t b, int32_t in1_offset,
                                   int32_t in1_mult, int32_t in1_shift,
                                   int32_t in2_offset, int32_t in2_mult,
                                   int32_t in2_shift, int32_t left_shift,
                                   int32_t out_mult, int32_t out_shift,
                                   int32_t out_zp, int32_t act_min,
                                   int32_t act_max) {
  const int32_t raw_sub =
      tinyml_scale_input_i8(a, in1_offset, left_shift, in1_mult, in1_shift) -
      tinyml_scale_input_i8(b, in2_offset, left_shift, in2_mult, in2_shift);
  return tinyml_clamp_i8(
      tinyml_mul_by_quantized_multiplier(raw_sub, out_mult, out_shift) +
          out_zp,
      act_min, act_max);
}

/* SquaredDifference (micro/kernels/squared_difference.cc, int8). Arguments
 * are the keys of quant_params.squared_difference_params() in order, then
 * the int8 clamp (TFLM: -128, 127); left_shift = 7, out_shift may be > 0. */
static inline int8_t tinyml_squared_difference_i8(
    int32_t a, int32_t b, int32_t in1_offset, int32_t in1_mult,
    int32_t in1_shift, int32_t in2_offset, int32_t in2_mult, int32_t in2_shift,
    int32_t left_shift, int32_t out_mult, int32_t out_shift, int32_t out_zp,
    int32_t act_min, int32_t act_max) {
  const int32_t raw_diff =
      tinyml_scale_input_i8(a, in1_offset, left_shift, in1_mult, in1_shift) -
      tinyml_scale_input_i8(b, in2_offset, left_shift, in2_mult, in2_shift);
  return tinyml_clamp_i8(
      tinyml_mul_by_quantized_multiplier(raw_diff * raw_diff, out_mult,
                                         out_shift) +
          out_zp,
      act_min, act_max);
}

/* MaximumOp / MinimumOp (reference/maximum_minimum.h): TFLM compares the raw
 * int8 values whatever the quantization; then the fused int8 clamp. */
static inline int8_t tinyml_maximum_i8(int32_t a, int32_t b, int32_t lo,
                                       int32_t hi) {
  return tinyml_clamp_i8(a > b ? a : b, lo, hi);
}

static inline int8_t tinyml_minimum_i8(int32_t a, int32_t b, int32_t lo,
                                       int32_t hi) {
  return tinyml_clamp_i8(a < b ? a : b, lo, hi);
}

/* ---- pooling / reduction ------------------------------------------------- */

/* reference_integer_ops::AveragePool (int8): sum of the raw int8 values in
 * the (padding-clipped) window, count = number of summed values. */
static inline int8_t tinyml_avgpool_round_i8(int32_t sum, int32_t count,
                                             int32_t act_min,
                                             int32_t act_max) {
  const int32_t avg =
      sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count;
  return tinyml_clamp_i8(avg, act_min, act_max);
}

/* reference_ops::QuantizedMeanOrSum<int8_t, int32_t> with compute_sum=false
 * (TFLM MEAN for int8, any axes): sum of the raw int8 values over the
 * num_elements reduced elements. multiplier/shift already include the
 * 1/num_elements factor: take them from quant_params.mean_params(). */
static inline int8_t tinyml_mean_i8(int32_t sum, int32_t num_elements,
                                    int32_t in_zp, int32_t multiplier,
                                    int32_t shift, int32_t out_zp) {
  return tinyml_clamp_i8(
      tinyml_mul_by_quantized_multiplier(sum - in_zp * num_elements,
                                         multiplier, shift) +
          out_zp,
      INT8_MIN, INT8_MAX);
}

/* ---- softmax ------------------------------------------------------------- */

/* gemmlowp::exp_on_interval_between_negative_one_quarter_and_0_excl, Q0.31. */
static inline int32_t tinyml_exp_on_interval_m1_4_to_0(int32_t a) {
  const int32_t constant_term = 1895147668;     /* exp(-1/8) */
  const int32_t constant_1_over_3 = 715827883;  /* 1/3 */
  const int32_t x = a + (1 << 28);              /* a + 1/8 */
  const int32_t x2 = tinyml_sat_rounding_doubling_high_mul(x, x);
  const int32_t x3 = tinyml_sat_rounding_doubling_high_mul(x2, x);
  const int32_t x4 = tinyml_sat_rounding_doubling_high_mul(x2, x2);
  const int32_t x4_over_4 = tinyml_rounding_divide_by_pot(x4, 2);
  const int32_t poly = tinyml_rounding_divide_by_pot(
      tinyml_sat_rounding_doubling_high_mul(x4_over_4 + x3,
                                            constant_1_over_3) +
          x2,
      1);
  return constant_term +
         tinyml_sat_rounding_doubling_high_mul(constant_term, x + poly);
}

/* gemmlowp::exp_on_negative_values for FixedPoint<int32_t, integer_bits> input
 * (integer_bits 4 or 5: Q4.27 or Q5.26), Q0.31 result. */
static inline int32_t tinyml_exp_on_negative_values(int32_t a, int integer_bits) {
  static const int32_t kBarrelMultipliers[7] = {
      1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
  const int32_t one_quarter = (int32_t)1 << (29 - integer_bits);
  const int32_t a_mod_quarter_minus_one_quarter =
      (a & (one_quarter - 1)) - one_quarter;
  const int32_t remainder = a_mod_quarter_minus_one_quarter - a;
  int32_t result = tinyml_exp_on_interval_m1_4_to_0(
      tinyml_saturating_shift_left(a_mod_quarter_minus_one_quarter, integer_bits));
  int i;
  for (i = 0; i < integer_bits + 2; ++i) { /* exp(-2^k), k = -2..integer_bits-1 */
    if (remainder & ((int32_t)1 << (29 - integer_bits + i))) {
      result = tinyml_sat_rounding_doubling_high_mul(result,
                                                     kBarrelMultipliers[i]);
    }
  }
  return a == 0 ? INT32_MAX : result;
}

/* The Newton-Raphson division shared by gemmlowp's one_over_one_plus_x_for_x_in_0_1 and
 * one_minus_x_over_one_plus_x_for_x_in_0_1: 1 / ((a + 1) / 2) as Q2.29, a in Q0.31. */
static inline int32_t tinyml_newton_inverse_half_sum_q2(int32_t a) {
  const int32_t constant_48_over_17 = 1515870810;    /* Q2.29 */
  const int32_t constant_neg_32_over_17 = -1010580540; /* Q2.29 */
  const int32_t one_q2 = 1 << 29;
  /* RoundingHalfSum(a, One) */
  const int64_t sum = (int64_t)a + INT32_MAX;
  const int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
  int32_t x = constant_48_over_17 + tinyml_sat_rounding_doubling_high_mul(
                                        half_denominator,
                                        constant_neg_32_over_17);
  int i;
  for (i = 0; i < 3; ++i) {
    const int32_t one_minus_half_denominator_times_x =
        one_q2 - tinyml_sat_rounding_doubling_high_mul(half_denominator, x);
    x = x + tinyml_saturating_shift_left(
                tinyml_sat_rounding_doubling_high_mul(
                    x, one_minus_half_denominator_times_x),
                2);
  }
  return x;
}

/* gemmlowp::one_over_one_plus_x_for_x_in_0_1, Q0.31 in and out. */
static inline int32_t tinyml_one_over_one_plus_x_for_x_in_0_1(int32_t a) {
  return tinyml_saturating_shift_left(tinyml_newton_inverse_half_sum_q2(a), 1);
}

/* tflite::GetReciprocal (kernels/internal/common.h). */
static inline int32_t tinyml_get_reciprocal(int32_t x,
                                            int32_t x_integer_digits,
                                            int32_t *num_bits_over_unit) {
  int32_t headroom_plus_one = 0; /* CountLeadingZeros((uint32_t)x), x > 0 */
  while (headroom_plus_one < 32 &&
         !(((uint32_t)x << headroom_plus_one) & 0x80000000u)) {
    ++headroom_plus_one;
  }
  *num_bits_over_unit = x_integer_digits - headroom_plus_one;
  return tinyml_one_over_one_plus_x_for_x_in_0_1((int32_t)(
      ((uint32_t)x << headroom_plus_one) - ((uint32_t)1 << 31)));
}

/* Q5.26 scaled difference for one softmax input (softmax.h inner loops). */
static inline int32_t tinyml_softmax_exp_i8(int32_t input_diff,
                                            int32_t input_multiplier,
                                            int32_t input_left_shift) {
  return tinyml_exp_on_negative_values(tinyml_mul_by_quantized_multiplier(
      input_diff, input_multiplier, input_left_shift), 5);
}

/* reference_ops::Softmax<int8_t, int8_t> for ONE row of `depth` values (the
 * caller loops over the outer dimensions). Output scale 1/256, zero point
 * -128. Parameters from quant_params.softmax_params(). */
static inline void tinyml_softmax_i8(const int8_t *in, int8_t *out,
                                     int32_t depth, int32_t input_multiplier,
                                     int32_t input_left_shift,
                                     int32_t diff_min) {
  int32_t max_in_row = INT8_MIN;
  int32_t sum_of_exps = 0; /* Q12.19 */
  int32_t num_bits_over_unit, shifted_scale, exponent, c;
  for (c = 0; c < depth; ++c) {
    if (in[c] > max_in_row) max_in_row = in[c];
  }
  for (c = 0; c < depth; ++c) {
    const int32_t input_diff = (int32_t)in[c] - max_in_row;
    if (input_diff >= diff_min) {
      sum_of_exps += tinyml_rounding_divide_by_pot(
          tinyml_softmax_exp_i8(input_diff, input_multiplier,
                                input_left_shift),
          12); /* Rescale<kAccumulationIntegerBits = 12> */
    }
  }
  shifted_scale = tinyml_get_reciprocal(sum_of_exps, 12, &num_bits_over_unit);
  exponent = num_bits_over_unit + 31 - 8;
  for (c = 0; c < depth; ++c) {
    const int32_t input_diff = (int32_t)in[c] - max_in_row;
    if (input_diff >= diff_min) {
      const int32_t exp_in_0 = tinyml_softmax_exp_i8(
          input_diff, input_multiplier, input_left_shift);
      const int32_t unsat_output = tinyml_rounding_divide_by_pot(
          tinyml_sat_rounding_doubling_high_mul(shifted_scale, exp_in_0),
          exponent);
      out[c] = tinyml_clamp_i8(unsat_output + INT8_MIN, INT8_MIN, INT8_MAX);
    } else {
      out[c] = INT8_MIN;
    }
  }
}

/* Softmax over the last axis of a [rows, depth] tensor: one tinyml_softmax_i8 per row. */
static inline void tinyml_softmax_rows_i8(const int8_t *in, int8_t *out,
                                          int32_t rows, int32_t depth,
                                          int32_t input_multiplier,
                                          int32_t input_left_shift,
                                          int32_t diff_min) {
  int32_t r;
  for (r = 0; r < rows; ++r) {
    tinyml_softmax_i8(in + r * depth, out + r * depth, depth, input_multiplier,
                      input_left_shift, diff_min);
  }
}

/* ---- float ends (QUANTIZE / DEQUANTIZE) --------------------------------- */

/* reference_ops::AffineQuantize: round(x / scale) half away from zero (as
 * std::round, computed without libm: x - trunc(x) is exact in float), plus
 * zero_point, saturated to int8. */
static inline int8_t tinyml_quantize_f32(float x, float scale,
                                         int32_t zero_point) {
  float scaled = x / scale;
  int32_t q;
  float frac;
  if (scaled > 1024.0f) scaled = 1024.0f; /* keep the conversion defined */
  if (scaled < -1024.0f) scaled = -1024.0f;
  q = (int32_t)scaled;
  frac = scaled - (float)q;
  q += (frac >= 0.5f) - (frac <= -0.5f);
  return tinyml_clamp_i8(q + zero_point, INT8_MIN, INT8_MAX);
}

/* reference_ops::Dequantize: scale * (q - zero_point); the product of a
 * float scale and a small integer is exact in double, so float is the same. */
static inline float tinyml_dequantize_i8(int32_t q, float scale,
                                         int32_t zero_point) {
  return scale * (float)(q - zero_point);
}

/* ---- logistic (LOGISTIC) ------------------------------------------------ */

/* gemmlowp::logistic for FixedPoint<int32_t, 4> (Q4.27) input, Q0.31
 * result. */
static inline int32_t tinyml_logistic_q4(int32_t a) {
  int32_t result_if_positive;
  if (a == 0) return (int32_t)1 << 30; /* one half */
  result_if_positive = tinyml_one_over_one_plus_x_for_x_in_0_1(
      tinyml_exp_on_negative_values(a > 0 ? -a : a, 4));
  return a > 0 ? result_if_positive : INT32_MAX - result_if_positive;
}

/* The front TFLM's int8 LOGISTIC and TANH share: the input relative to its
 * zero point; outside +-input_range_radius the result saturates (*saturated
 * set to INT8_MIN or INT8_MAX), else *saturated is 0 and the input is
 * returned rescaled to Q4.27. */
static inline int32_t tinyml_sigmoid_input_q4(int32_t x, int32_t input_zp,
                                              int32_t input_range_radius,
                                              int32_t input_multiplier,
                                              int32_t input_left_shift,
                                              int8_t *saturated) {
  const int32_t input = x - input_zp;
  *saturated = input <= -input_range_radius ? INT8_MIN
               : input >= input_range_radius ? INT8_MAX
                                             : 0;
  if (*saturated) return 0;
  return tinyml_mul_by_quantized_multiplier(input, input_multiplier,
                                            input_left_shift);
}

/* reference_integer_ops::Logistic (int8) for one element; output scale
 * 1/256, zero point -128. Arguments after x are the keys of
 * quant_params.logistic_params() in order. */
static inline int8_t tinyml_logistic_i8(int32_t x, int32_t input_zp,
                                        int32_t input_range_radius,
                                        int32_t input_multiplier,
                                        int32_t input_left_shift) {
  int8_t saturated;
  const int32_t a = tinyml_sigmoid_input_q4(x, input_zp, input_range_radius,
                                            input_multiplier,
                                            input_left_shift, &saturated);
  if (saturated) return saturated;
  return tinyml_clamp_i8(
      tinyml_rounding_divide_by_pot(tinyml_logistic_q4(a), 23) + INT8_MIN,
      INT8_MIN, INT8_MAX);
}

/* ---- hard swish (HARD_SWISH) -------------------------------------------- */

/* gemmlowp::SaturatingRoundingDoublingHighMul<int16_t>. */
static inline int16_t tinyml_sat_rounding_doubling_high_mul_i16(int16_t a,
                                                                int16_t b) {
  const int32_t ab = (int32_t)a * (int32_t)b;
  const int32_t nudge = ab >= 0 ? (1 << 14) : (1 - (1 << 14));
  if (a == INT16_MIN && b == INT16_MIN) return INT16_MAX;
  return (int16_t)((ab + nudge) / (1 << 15)); /* truncating div */
}

/* reference_ops::SaturatingDoublingHighMul (hard_swish.h): as above but
 * rounding toward zero. */
static inline int16_t tinyml_sat_doubling_high_mul_i16(int16_t a, int16_t b) {
  if (a == INT16_MIN && b == INT16_MIN) return INT16_MAX;
  return (int16_t)(((int32_t)a * (int32_t)b) / (1 << 15));
}

/* gemmlowp::RoundingDivideByPOT<int16_t>, exponent in [0, 31]; gemmlowp's
 * int16 mask (1 << exponent) - 1 wraps to -1 from exponent 16 on. */
static inline int16_t tinyml_rounding_divide_by_pot_i16(int16_t x,
                                                        int32_t exponent) {
  const int16_t mask = (int16_t)(exponent >= 16 ? -1 : (1 << exponent) - 1);
  const int16_t remainder = (int16_t)(x & mask);
  const int16_t threshold = (int16_t)((mask >> 1) + (x < 0 ? 1 : 0));
  return (int16_t)((x >> exponent) + (remainder > threshold ? 1 : 0));
}

/* reference_ops::SaturatingLeftShift (hard_swish.h), amount >= 0. A nonzero
 * int16 shifted by 16 or more saturates, so the shift is capped at 16 to
 * stay in int32 arithmetic. */
static inline int16_t tinyml_saturating_left_shift_i16(int16_t value,
                                                       int32_t amount) {
  const int32_t result =
      (int32_t)value * ((int32_t)1 << (amount < 16 ? amount : 16));
  return (int16_t)(result > INT16_MAX   ? INT16_MAX
                   : result < INT16_MIN ? INT16_MIN
                                        : result);
}

/* reference_ops::HardSwish<int8_t> for one element. Arguments after x are the
 * keys of quant_params.hard_swish_params() in order (int16 multipliers,
 * output_exponent <= 0). */
static inline int8_t tinyml_hard_swish_i8(int32_t x, int32_t input_zp,
                                          int32_t output_zp,
                                          int32_t reluish_multiplier,
                                          int32_t reluish_exponent,
                                          int32_t output_multiplier,
                                          int32_t output_exponent) {
  const int16_t input_value = (int16_t)(x - input_zp);
  const int16_t hires_input = (int16_t)(input_value * (1 << 7));
  const int16_t preshift_output = tinyml_sat_rounding_doubling_high_mul_i16(
      hires_input, (int16_t)output_multiplier);
  int16_t reluish = hires_input;
  int16_t output_value;
  if (reluish_exponent > 0) {
    reluish = tinyml_saturating_left_shift_i16(reluish, reluish_exponent - 1);
  }
  reluish = tinyml_sat_rounding_doubling_high_mul_i16(
      reluish, (int16_t)reluish_multiplier);
  if (reluish_exponent > 0) {
    reluish = tinyml_saturating_left_shift_i16(reluish, 1);
  }
  if (reluish_exponent < 0) {
    reluish = tinyml_rounding_divide_by_pot_i16(reluish, -reluish_exponent);
  }
  reluish = (int16_t)((reluish + (1 << 15)) >> 1); /* [-1, 1] -> [0, 1] */
  output_value = tinyml_rounding_divide_by_pot_i16(
      tinyml_sat_doubling_high_mul_i16(reluish, preshift_output),
      -output_exponent);
  /* |output_value| <= 32640, so adding the zero point fits in TFLM's int16_t */
  return tinyml_clamp_i8(output_value + output_zp, INT8_MIN, INT8_MAX);
}

/* ---- reduce family: LOG_SOFTMAX, SUM ------------------------------------ */

/* tflite::SaturatingRoundingMultiplyByPOTParam for exponent >= 0. */
static inline int32_t tinyml_sat_shift_left_param(int32_t x, int32_t exponent) {
  return exponent == 0 ? x : tinyml_saturating_shift_left(x, exponent);
}

/* tflite::SaturatingAddNonGemmlowp / SaturatingSub (int32). */
static inline int32_t tinyml_saturate_i32(int64_t x) {
  return (int32_t)(x > INT32_MAX ? INT32_MAX : (x < INT32_MIN ? INT32_MIN : x));
}

/* tflite::CountLeadingZeros(uint32_t) (32 for 0). */
static inline int32_t tinyml_clz_u32(uint32_t x) {
  int32_t n = 0;
  while (n < 32 && !((x << n) & 0x80000000u)) ++n;
  return n;
}

/* int32 wrap-around add / sub (gemmlowp's raw FixedPoint + and -). */
static inline int32_t tinyml_wrap_add(int32_t a, int32_t b) {
  return (int32_t)((uint32_t)a + (uint32_t)b);
}
static inline int32_t tinyml_wrap_sub(int32_t a, int32_t b) {
  return (int32_t)((uint32_t)a - (uint32_t)b);
}

/* tflite::log_x_for_x_greater_than_or_equal_to_1_impl<5, 12>: Q12.19 input,
 * Q5.26 result (common.h). Accumulation in Q6.25. */
static inline int32_t tinyml_log_x_ge_1_q12_to_q5(int32_t z_a) {
  const int32_t log_2 = 1488522236, sqrt_sqrt_half = 1805811301;
  const int32_t sqrt_half = 1518500250, alpha_n = 117049297;
  const int32_t alpha_d = 127690142, alpha_i = 1057819769;
  const int32_t alpha_f = 638450708;
  const int32_t shifted_quarter = tinyml_rounding_divide_by_pot(536870912, 6);
  const int32_t z_a_headroom_plus_1 = tinyml_clz_u32((uint32_t)z_a);
  const int32_t r_a_tmp = tinyml_sat_shift_left_param(z_a, z_a_headroom_plus_1 - 1);
  const int32_t r_a_raw = tinyml_sat_shift_left_param(
      tinyml_sat_rounding_doubling_high_mul(r_a_tmp, sqrt_half), 1);
  const int32_t z_a_pow_2_adj = tinyml_saturate_i32(
      (int64_t)tinyml_sat_shift_left_param(12 - z_a_headroom_plus_1, 25) + shifted_quarter);
  const int32_t z_b = tinyml_sat_rounding_doubling_high_mul(z_a, sqrt_half);
  const int32_t z_b_headroom = tinyml_clz_u32((uint32_t)z_b) - 1;
  const int32_t r_b_raw = tinyml_sat_shift_left_param(z_a, z_b_headroom);
  const int32_t z_b_pow_2_adj = tinyml_saturate_i32(
      (int64_t)tinyml_sat_shift_left_param(12 - z_b_headroom, 25) - shifted_quarter);
  const int32_t r = r_a_raw < r_b_raw ? r_a_raw : r_b_raw;
  const int32_t z_pow_2_adj = z_a_pow_2_adj > z_b_pow_2_adj ? z_a_pow_2_adj : z_b_pow_2_adj;
  const int64_t half_sum = (int64_t)r + sqrt_sqrt_half; /* RoundingHalfSum */
  const int32_t p = (int32_t)((half_sum + (half_sum >= 0 ? 1 : -1)) / 2);
  const int32_t q_half = tinyml_wrap_sub(r, sqrt_sqrt_half);
  const int32_t q = tinyml_wrap_add(q_half, q_half);
  const int32_t common_sq = tinyml_sat_rounding_doubling_high_mul(q, q);
  const int32_t num = tinyml_wrap_add(
      tinyml_sat_rounding_doubling_high_mul(q, r),
      tinyml_sat_rounding_doubling_high_mul(
          tinyml_sat_rounding_doubling_high_mul(q, common_sq), alpha_n));
  const int32_t denom_minus_one = tinyml_wrap_add(
      tinyml_sat_rounding_doubling_high_mul(
          p, tinyml_wrap_add(tinyml_wrap_add(alpha_i, q),
                             tinyml_sat_rounding_doubling_high_mul(alpha_d, common_sq))),
      tinyml_sat_rounding_doubling_high_mul(alpha_f, q));
  const int32_t recip_denom = tinyml_one_over_one_plus_x_for_x_in_0_1(denom_minus_one);
  const int32_t num_scaled = tinyml_rounding_divide_by_pot(num, 6);
  return tinyml_saturating_shift_left(
      tinyml_wrap_add(tinyml_sat_rounding_doubling_high_mul(z_pow_2_adj, log_2),
                      tinyml_sat_rounding_doubling_high_mul(num_scaled, recip_denom)),
      1);
}

/* reference_ops::LogSoftmaxQuantized<int8_t> over the last axis of a
 * [rows, depth] tensor; output scale 16/256, zero point 127. Parameters from
 * quant_params.log_softmax_params(). */
static inline void tinyml_log_softmax_rows_i8(
    const int8_t *in, int8_t *out, int32_t rows, int32_t depth,
    int32_t input_multiplier, int32_t input_left_shift,
    int32_t reverse_scaling_divisor, int32_t reverse_scaling_left_shift,
    int32_t diff_min) {
  int32_t row, c;
  for (row = 0; row < rows; ++row, in += depth, out += depth) {
    int32_t max_in_row = INT8_MIN, sum_of_exps = 0, log_sum, adjusted_diff_min;
    for (c = 0; c < depth; ++c) {
      if (in[c] > max_in_row) max_in_row = in[c];
    }
    for (c = 0; c < depth; ++c) {
      const int32_t input_diff = (int32_t)in[c] - max_in_row;
      if (input_diff >= diff_min) {
        sum_of_exps += tinyml_rounding_divide_by_pot(
            tinyml_softmax_exp_i8(input_diff, input_multiplier, input_left_shift), 12);
      }
    }
    log_sum = tinyml_log_x_ge_1_q12_to_q5(sum_of_exps);
    adjusted_diff_min = tinyml_mul_by_quantized_multiplier(
        tinyml_wrap_add(log_sum, INT32_MIN), reverse_scaling_divisor,
        reverse_scaling_left_shift);
    if (adjusted_diff_min < diff_min - 1) adjusted_diff_min = diff_min - 1;
    for (c = 0; c < depth; ++c) {
      const int32_t input_diff = (int32_t)in[c] - max_in_row;
      if (input_diff > adjusted_diff_min) {
        const int32_t diff_q5 = tinyml_mul_by_quantized_multiplier(
            input_diff, input_multiplier, input_left_shift);
        out[c] = tinyml_clamp_i8(
            tinyml_rounding_divide_by_pot(tinyml_wrap_sub(diff_q5, log_sum), 22) + INT8_MAX,
            INT8_MIN, INT8_MAX);
      } else {
        out[c] = INT8_MIN;
      }
    }
  }
}

/* reference_ops::LogSoftmax (float) over the last axis of a [rows, depth]
 * tensor: x - max - log(sum(exp(x - max))), in float as TFLM computes it. */
static inline void tinyml_log_softmax_rows_f32(const float *in, float *out,
                                               int32_t rows, int32_t depth) {
  int32_t row, c;
  for (row = 0; row < rows; ++row, in += depth, out += depth) {
    float max = -FLT_MAX, sum = 0.f, log_sum;
    for (c = 0; c < depth; ++c) {
      if (max < in[c]) max = in[c];
    }
    for (c = 0; c < depth; ++c) sum += expf(in[c] - max);
    log_sum = logf(sum);
    for (c = 0; c < depth; ++c) out[c] = in[c] - max - log_sum;
  }
}

/* ---- activations (LEAKY_RELU, PRELU, TANH) ------------------------------ */

/* reference_ops::QuantizeLeakyRelu (int8) for one element. Arguments after x
 * are the keys of act_params.leaky_relu_params() in order; a negative alpha
 * multiplier is applied as its magnitude, then negated, as TFLM does. */
static inline int8_t tinyml_leaky_relu_i8(int32_t x, int32_t input_zp,
                                          int32_t output_zp,
                                          int32_t identity_mult,
                                          int32_t identity_shift,
                                          int32_t alpha_mult,
                                          int32_t alpha_shift) {
  const int32_t input = x - input_zp;
  int32_t scaled;
  if (input >= 0) {
    scaled = tinyml_mul_by_quantized_multiplier(input, identity_mult,
                                                identity_shift);
  } else {
    scaled = tinyml_mul_by_quantized_multiplier(
        input, alpha_mult < 0 ? -alpha_mult : alpha_mult, alpha_shift);
    scaled = alpha_mult < 0 ? -scaled : scaled;
  }
  return tinyml_clamp_i8(output_zp + scaled, INT8_MIN, INT8_MAX);
}

/* reference_ops::BroadcastPrelu4DSlow (int8) for one element pair. Arguments
 * after x, alpha are the keys of act_params.prelu_params() in order. */
static inline int8_t tinyml_prelu_i8(int32_t x, int32_t alpha,
                                     int32_t input_offset, int32_t alpha_offset,
                                     int32_t mult_1, int32_t shift_1,
                                     int32_t mult_2, int32_t shift_2,
                                     int32_t output_zp) {
  const int32_t input = input_offset + x;
  const int32_t scaled =
      input >= 0 ? tinyml_mul_by_quantized_multiplier(input, mult_1, shift_1)
                 : tinyml_mul_by_quantized_multiplier(
                       input * (alpha_offset + alpha), mult_2, shift_2);
  return tinyml_clamp_i8(scaled + output_zp, INT8_MIN, INT8_MAX);
}

/* gemmlowp::tanh for FixedPoint<int32_t, 4> (Q4.27) input, Q0.31 result:
 * tanh(|a|) = one_minus_x_over_one_plus_x(exp(-2|a|)), the Q4 raw value read
 * as Q5 being the doubling. */
static inline int32_t tinyml_tanh_q4(int32_t a) {
  int32_t t;
  if (a == 0) return 0;
  t = tinyml_saturating_shift_left(
      tinyml_newton_inverse_half_sum_q2(
          tinyml_exp_on_negative_values(a < 0 ? a : -a, 5)) -
          (1 << 29),
      2);
  return a < 0 ? -t : t;
}

/* reference_integer_ops::Tanh (int8) for one element: raw Q0.7 output (TFLM
 * ignores the output quantization). Arguments after x are the keys of
 * act_params.tanh_params() in order. */
static inline int8_t tinyml_tanh_i8(int32_t x, int32_t input_zp,
                                    int32_t input_range_radius,
                                    int32_t input_multiplier,
                                    int32_t input_left_shift) {
  int8_t saturated;
  const int32_t a = tinyml_sigmoid_input_q4(x, input_zp, input_range_radius,
                                            input_multiplier,
                                            input_left_shift, &saturated);
  if (saturated) return saturated;
  return tinyml_clamp_i8(tinyml_rounding_divide_by_pot(tinyml_tanh_q4(a), 24),
                         INT8_MIN, INT8_MAX);
}

#endif /* TINYML_MATH_H_ */
