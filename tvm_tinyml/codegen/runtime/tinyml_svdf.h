/*
 * tinyml_svdf.h - TFLite Micro's integer SVDF with an int16 activation state
 * (int8 input/output and feature weights, int16 time weights, int32 bias),
 * bit-exact with EvalIntegerSvdfReference<int16_t> (micro/kernels/svdf_common.cc).
 *
 * Portable C99, static inline, no allocation. Needs tinyml_math.h. The layer's
 * integer parameters are an int32 table (layout TINYML_SVDF_*), computed by
 * tvm_tinyml/sequence_params.py as PrepareSvdf does.
 *
 * `state` (int16, batch * filters * memory) is the op's variable tensor,
 * reset to 0 at every call as TFLM's interpreter resets an int16 variable
 * (so the one-step shift of the memory TFLM does first changes nothing).
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
  int32_t b, i, j, r;
  for (i = 0; i < size; ++i) state[i] = 0;
  /* feature FC into each filter's newest memory slot */
  for (b = 0; b < batch; ++b) {
    for (i = 0; i < filters; ++i) {
      const int8_t *w = w_feature + i * n_in, *x = input + b * n_in;
      int32_t dot = 0;
      for (j = 0; j < n_in; ++j) dot += (int32_t)w[j] * ((int32_t)x[j] - p[TINYML_SVDF_INPUT_ZP]);
      dot = tinyml_mul_by_quantized_multiplier(dot, p[TINYML_SVDF_FEATURE_MUL], p[TINYML_SVDF_FEATURE_MUL + 1]);
      dot = dot < -32768 ? -32768 : (dot > 32767 ? 32767 : dot);
      state[(b * filters + i) * memory + memory - 1] = (int16_t)(state_zp + dot);
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
