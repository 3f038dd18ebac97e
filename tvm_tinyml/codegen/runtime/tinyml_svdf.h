/*
 * tinyml_svdf.h - TFLite Micro's integer SVDF (int8 input/output and feature
 * weights, int32 bias, an int16 or int8 activation state with time weights of
 * the same type), bit-exact with EvalIntegerSvdfReference<T>
 * (micro/kernels/svdf_common.cc). The state is kept in int16 either way: an
 * int8 state's values are wrapped to int8 as TFLM stores them, and int8 time
 * weights arrive widened to int16.
 *
 * Portable C99, static inline, no allocation. Needs tinyml_math.h. The layer's
 * integer parameters are an int32 table (layout TINYML_SVDF_*), computed by
 * tvm_tinyml/sequence_params.py as PrepareSvdf does.
 *
 * `state` (batch * filters * memory) is the op's variable tensor, reset at
 * every call as TFLM's interpreter resets it (int16: 0, int8: its zero point),
 * so the one-step shift of the memory TFLM does first changes nothing.
 * TFLM's two int32 scratch buffers are not needed: each unit's sum is
 * accumulated in a register.
 */
#ifndef TINYML_SVDF_H_
#define TINYML_SVDF_H_

#include <stdint.h>

enum {
  TINYML_SVDF_BATCH,
  TINYML_SVDF_INPUT_DIM,
  TINYML_SVDF_FILTERS,
  TINYML_SVDF_RANK,
  TINYML_SVDF_MEMORY,
  TINYML_SVDF_INPUT_ZP,
  TINYML_SVDF_STATE_ZP,
  TINYML_SVDF_STATE_BITS, /* 16 or 8: the type TFLM keeps the state in */
  TINYML_SVDF_STATE_RESET,
  TINYML_SVDF_OUTPUT_ZP,
  TINYML_SVDF_FEATURE_MUL, /* input x feature weights -> state: mult, shift */
  TINYML_SVDF_OUTPUT_MUL = TINYML_SVDF_FEATURE_MUL + 2, /* state x time weights -> output: mult, shift */
  TINYML_SVDF_NUM_PARAMS = TINYML_SVDF_OUTPUT_MUL + 2
};

static inline void tinyml_svdf_i8(const int8_t *input, const int8_t *w_feature,
                                  const int16_t *w_time, const int32_t *bias,
                                  const int32_t *p, int8_t *output, int16_t *state) {
  const int32_t batch = p[TINYML_SVDF_BATCH], n_in = p[TINYML_SVDF_INPUT_DIM];
  const int32_t filters = p[TINYML_SVDF_FILTERS], rank = p[TINYML_SVDF_RANK];
  const int32_t memory = p[TINYML_SVDF_MEMORY], units = filters / rank;
  const int32_t state_zp = p[TINYML_SVDF_STATE_ZP], size = batch * filters * memory;
  const int32_t bits = p[TINYML_SVDF_STATE_BITS], state_max = (1 << (bits - 1)) - 1;
  int32_t b, i, j, r;
  for (i = 0; i < size; ++i) state[i] = (int16_t)p[TINYML_SVDF_STATE_RESET];
  /* feature FC into each filter's newest memory slot */
  for (b = 0; b < batch; ++b) {
    for (i = 0; i < filters; ++i) {
      const int8_t *w = w_feature + i * n_in, *x = input + b * n_in;
      int32_t dot = 0;
      for (j = 0; j < n_in; ++j) dot += (int32_t)w[j] * ((int32_t)x[j] - p[TINYML_SVDF_INPUT_ZP]);
      dot = tinyml_mul_by_quantized_multiplier(dot, p[TINYML_SVDF_FEATURE_MUL], p[TINYML_SVDF_FEATURE_MUL + 1]);
      dot = dot < -state_max - 1 ? -state_max - 1 : (dot > state_max ? state_max : dot);
      dot += state_zp;
      state[(b * filters + i) * memory + memory - 1] = bits == 8 ? (int8_t)dot : (int16_t)dot;
    }
  }
  /* each unit: bias + its `rank` filters' time weights along their memory, requantized to int8 */
  for (b = 0; b < batch; ++b) {
    for (i = 0; i < units; ++i) {
      int32_t acc = bias[i];
      for (r = i * rank; r < (i + 1) * rank; ++r) {
        const int16_t *w = w_time + r * memory, *s = state + (b * filters + r) * memory;
        int32_t sum = 0;
        for (j = 0; j < memory; ++j) sum += (int32_t)w[j] * ((int32_t)s[j] - state_zp);
        acc += sum;
      }
      output[b * units + i] = tinyml_clamp_i8(
          tinyml_mul_by_quantized_multiplier(acc, p[TINYML_SVDF_OUTPUT_MUL], p[TINYML_SVDF_OUTPUT_MUL + 1]) +
              p[TINYML_SVDF_OUTPUT_ZP],
          -128, 127);
    }
  }
}

#endif /* TINYML_SVDF_H_ */
