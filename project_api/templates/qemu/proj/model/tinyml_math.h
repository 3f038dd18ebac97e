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
  const int32_t x1 = tinyml_shift_left(in1_offset + a, left_shift);
  const int32_t x2 = tinyml_shift_left(in2_offset + b, left_shift);
  const int32_t raw_sum =
      tinyml_mul_by_quantized_multiplier(x1, in1_mult, in1_shift) +
      tinyml_mul_by_quantized_multiplier(x2, in2_mult, in2_shift);
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

/* gemmlowp::exp_on_negative_values for FixedPoint<int32_t, 5> (Q5.26) input,
 * Q0.31 result. */
static inline int32_t tinyml_exp_on_negative_values_q5(int32_t a) {
  static const int32_t kBarrelMultipliers[7] = {
      1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
  const int32_t one_quarter = 1 << 24;
  const int32_t a_mod_quarter_minus_one_quarter =
      (a & (one_quarter - 1)) - one_quarter;
  const int32_t remainder = a_mod_quarter_minus_one_quarter - a;
  int32_t result = tinyml_exp_on_interval_m1_4_to_0(
      tinyml_saturating_shift_left(a_mod_quarter_minus_one_quarter, 5));
  int32_t i;
  for (i = 0; i < 7; ++i) { /* exp(-2^k), k = -2..4, bit 24 + i */
    if (remainder & ((int32_t)1 << (24 + i))) {
      result = tinyml_sat_rounding_doubling_high_mul(result,
                                                     kBarrelMultipliers[i]);
    }
  }
  return a == 0 ? INT32_MAX : result;
}

/* gemmlowp::one_over_one_plus_x_for_x_in_0_1, Q0.31 in and out. */
static inline int32_t tinyml_one_over_one_plus_x_for_x_in_0_1(int32_t a) {
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
  return tinyml_saturating_shift_left(x, 1);
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
  return tinyml_exp_on_negative_values_q5(tinyml_mul_by_quantized_multiplier(
      input_diff, input_multiplier, input_left_shift));
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

/* gemmlowp::exp_on_negative_values for FixedPoint<int32_t, 4> (Q4.27) input,
 * Q0.31 result. */
static inline int32_t tinyml_exp_on_negative_values_q4(int32_t a) {
  static const int32_t kBarrelMultipliers[6] = {
      1672461947, 1302514674, 790015084, 290630308, 39332535, 720401};
  const int32_t one_quarter = 1 << 25;
  const int32_t a_mod_quarter_minus_one_quarter =
      (a & (one_quarter - 1)) - one_quarter;
  const int32_t remainder = a_mod_quarter_minus_one_quarter - a;
  int32_t result = tinyml_exp_on_interval_m1_4_to_0(
      tinyml_saturating_shift_left(a_mod_quarter_minus_one_quarter, 4));
  int32_t i;
  for (i = 0; i < 6; ++i) { /* exp(-2^k), k = -2..3, bit 25 + i */
    if (remainder & ((int32_t)1 << (25 + i))) {
      result = tinyml_sat_rounding_doubling_high_mul(result,
                                                     kBarrelMultipliers[i]);
    }
  }
  return a == 0 ? INT32_MAX : result;
}

/* gemmlowp::logistic for FixedPoint<int32_t, 4> (Q4.27) input, Q0.31
 * result. */
static inline int32_t tinyml_logistic_q4(int32_t a) {
  int32_t result_if_positive;
  if (a == 0) return (int32_t)1 << 30; /* one half */
  result_if_positive = tinyml_one_over_one_plus_x_for_x_in_0_1(
      tinyml_exp_on_negative_values_q4(a > 0 ? -a : a));
  return a > 0 ? result_if_positive : INT32_MAX - result_if_positive;
}

/* reference_integer_ops::Logistic (int8) for one element; output scale
 * 1/256, zero point -128. Arguments after x are the keys of
 * quant_params.logistic_params() in order. */
static inline int8_t tinyml_logistic_i8(int32_t x, int32_t input_zp,
                                        int32_t input_range_radius,
                                        int32_t input_multiplier,
                                        int32_t input_left_shift) {
  const int32_t input = x - input_zp;
  if (input <= -input_range_radius) return INT8_MIN;
  if (input >= input_range_radius) return INT8_MAX;
  return tinyml_clamp_i8(
      tinyml_rounding_divide_by_pot(
          tinyml_logistic_q4(tinyml_mul_by_quantized_multiplier(
              input, input_multiplier, input_left_shift)),
          23) +
          INT8_MIN,
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

#endif /* TINYML_MATH_H_ */
