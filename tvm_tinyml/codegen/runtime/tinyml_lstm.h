/*
 * tinyml_lstm.h - TFLite Micro's fully integer UNIDIRECTIONAL_SEQUENCE_LSTM
 * (int8 input/output and hidden state, int8 weights, int32 biases, int16 cell
 * state and gate activations), bit-exact with micro/kernels/lstm_eval.{h,cc}.
 *
 * Portable C99, static inline, no allocation. Needs tinyml_math.h. The layer's
 * integer parameters are an int32 table (layout TINYML_LSTM_*), computed by
 * tvm_tinyml/sequence_params.py as UnidirectionalSequenceLstmPrepare does.
 * Gates are ordered input, forget, cell, output (TFLite's tensor order): the
 * weights are [4][state][input] and [4][state][state], the biases [4][state].
 *
 * State: `hidden` (int8, batch * state) and `cell` (int16, batch * state) are
 * the op's variable tensors, reset at every call as TFLM's interpreter resets
 * them (hidden to its zero point, cell to 0). `gates` is int16 scratch of
 * 4 * rows * state, rows = batch if time-major, else 1.
 */
#ifndef TINYML_LSTM_H_
#define TINYML_LSTM_H_

#include <stdint.h>

enum {
  TINYML_LSTM_BATCH,
  TINYML_LSTM_TIME,
  TINYML_LSTM_INPUT_DIM,
  TINYML_LSTM_STATE_DIM,
  TINYML_LSTM_TIME_MAJOR,
  TINYML_LSTM_INPUT_OFFSET,  /* -input zero point */
  TINYML_LSTM_HIDDEN_ZP,     /* hidden state (= output) zero point */
  TINYML_LSTM_CELL_CLIP,     /* quantized cell clip, -1: no clipping */
  TINYML_LSTM_CELL_POWER,    /* cell state scale = 2^CELL_POWER */
  TINYML_LSTM_GATE_FC,       /* per gate: input FC mult, shift, recurrent FC mult, shift */
  TINYML_LSTM_FORGET_MUL = TINYML_LSTM_GATE_FC + 16, /* forget x cell: mult, shift */
  TINYML_LSTM_INPUT_MUL = TINYML_LSTM_FORGET_MUL + 2, /* input x cell gate: mult, shift */
  TINYML_LSTM_OUTPUT_MUL = TINYML_LSTM_INPUT_MUL + 2, /* tanh(cell) x output: mult, shift */
  TINYML_LSTM_NUM_PARAMS = TINYML_LSTM_OUTPUT_MUL + 2
};

enum { TINYML_GATE_INPUT, TINYML_GATE_FORGET, TINYML_GATE_CELL, TINYML_GATE_OUTPUT };

/* sigmoid(i / 24) in 0.16 fixed point, 256 entries (tflite's sigmoid_table_uint16),
 * shared by the int16 logistic and tanh. */
static const uint16_t tinyml_sigmoid_table_u16[256] = {
    32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498,
    40149, 40794, 41432, 42064, 42688, 43304, 43912, 44511, 45102, 45683, 46255,
    46817, 47369, 47911, 48443, 48964, 49475, 49975, 50464, 50942, 51409, 51865,
    52311, 52745, 53169, 53581, 53983, 54374, 54755, 55125, 55485, 55834, 56174,
    56503, 56823, 57133, 57433, 57724, 58007, 58280, 58544, 58800, 59048, 59288,
    59519, 59743, 59959, 60168, 60370, 60565, 60753, 60935, 61110, 61279, 61441,
    61599, 61750, 61896, 62036, 62172, 62302, 62428, 62549, 62666, 62778, 62886,
    62990, 63090, 63186, 63279, 63368, 63454, 63536, 63615, 63691, 63765, 63835,
    63903, 63968, 64030, 64090, 64148, 64204, 64257, 64308, 64357, 64405, 64450,
    64494, 64536, 64576, 64614, 64652, 64687, 64721, 64754, 64786, 64816, 64845,
    64873, 64900, 64926, 64950, 64974, 64997, 65019, 65039, 65060, 65079, 65097,
    65115, 65132, 65149, 65164, 65179, 65194, 65208, 65221, 65234, 65246, 65258,
    65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337, 65345, 65352, 65360,
    65367, 65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425,
    65429, 65433, 65438, 65442, 65445, 65449, 65453, 65456, 65459, 65462, 65465,
    65468, 65471, 65474, 65476, 65479, 65481, 65483, 65485, 65488, 65489, 65491,
    65493, 65495, 65497, 65498, 65500, 65501, 65503, 65504, 65505, 65507, 65508,
    65509, 65510, 65511, 65512, 65513, 65514, 65515, 65516, 65517, 65517, 65518,
    65519, 65520, 65520, 65521, 65522, 65522, 65523, 65523, 65524, 65524, 65525,
    65525, 65526, 65526, 65526, 65527, 65527, 65528, 65528, 65528, 65529, 65529,
    65529, 65529, 65530, 65530, 65530, 65530, 65531, 65531, 65531, 65531, 65531,
    65532, 65532, 65532, 65532, 65532, 65532, 65533, 65533, 65533, 65533, 65533,
    65533, 65533, 65533, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534,
    65534, 65534, 65535};

static inline int16_t tinyml_sat_i16(int32_t x) {
  return (int16_t)(x < -32768 ? -32768 : (x > 32767 ? 32767 : x));
}

/* reference_integer_ops::Logistic, int16 Q3.12 -> Q0.15, power-of-two input
 * scale (input_multiplier 0, shift 0: the value is scaled by 3). */
static inline int16_t tinyml_logistic_i16(int16_t x) {
  const int32_t v = (int32_t)x * 3;
  const uint32_t a = (uint32_t)(v < 0 ? -v : v);
  const uint32_t uh = a >> 9;
  uint32_t r;
  if (uh >= 255) {
    r = (uint32_t)0x7FFF << 10;
  } else {
    const uint32_t ua = tinyml_sigmoid_table_u16[uh];
    const uint32_t ub = tinyml_sigmoid_table_u16[uh + 1];
    r = (ua << 9) + (a & 0x1ff) * (ub - ua);
  }
  r = v >= 0 ? r + (1u << 9) : (1u << 25) - r + (1u << 9) - 1;
  return (int16_t)(r >> 10);
}

/* lstm_internal::Tanh -> reference_integer_ops::Tanh, int16 input of scale
 * 2^power -> Q0.15. */
static inline int16_t tinyml_tanh_i16(int16_t x, int32_t power) {
  int32_t shift = 15 + power - 3, mult = 0, round;
  int32_t v, r;
  uint32_t a, uh;
  if (shift < 0) {
    shift = -shift;
    mult = 3;
  }
  if (mult == 0) {
    mult = 3 << shift;
    shift = 0;
  }
  round = shift > 0 ? 1 << (shift - 1) : 0;
  v = ((int32_t)x * mult + round) >> shift;
  a = (uint32_t)(v < 0 ? -v : v);
  uh = a >> 8;
  if (uh >= 255) {
    r = 0xFFFF << 8;
  } else {
    const uint32_t ua = tinyml_sigmoid_table_u16[uh];
    const uint32_t ub = tinyml_sigmoid_table_u16[uh + 1];
    r = (int32_t)((ua << 8) + (a & 0xFF) * (ub - ua));
  }
  r = v >= 0 ? r - (1 << 23) + (1 << 7) : -r + (1 << 23) + (1 << 7) - 1;
  return (int16_t)(r >> 8);
}

/* One integer FC row: sum_k w[k] * (x[k] + offset) (+ bias), requantized and
 * clamped to int16 (reference_integer_ops::FullyConnected, int16 output). */
static inline int16_t tinyml_lstm_fc_row(const int8_t *x, const int8_t *w,
                                         int32_t n, int32_t offset,
                                         int32_t bias, int32_t mult,
                                         int32_t shift) {
  int32_t acc = 0, k;
  for (k = 0; k < n; ++k) acc += (int32_t)w[k] * ((int32_t)x[k] + offset);
  return tinyml_sat_i16(tinyml_mul_by_quantized_multiplier(acc + bias, mult, shift));
}

/* reference_integer_ops::MulElementwise of two symmetric int16 values. */
static inline int32_t tinyml_lstm_mul(int32_t a, int32_t b, const int32_t *mul) {
  return tinyml_mul_by_quantized_multiplier(a * b, mul[0], mul[1]);
}

/* lstm_internal::CalculateLstmGate for `rows` rows: input FC + recurrent FC
 * (saturating int16 add), then tanh (the cell gate) or sigmoid (the others). */
static inline void tinyml_lstm_gate(const int8_t *x, const int8_t *h,
                                    const int8_t *w_in, const int8_t *w_rec,
                                    const int32_t *bias, const int32_t *p,
                                    int32_t gate, int32_t rows,
                                    int16_t *out) {
  const int32_t n_in = p[TINYML_LSTM_INPUT_DIM], n = p[TINYML_LSTM_STATE_DIM];
  const int32_t *fc = p + TINYML_LSTM_GATE_FC + 4 * gate;
  const int8_t *wi = w_in + gate * n * n_in, *wr = w_rec + gate * n * n;
  int32_t b, s;
  for (b = 0; b < rows; ++b) {
    for (s = 0; s < n; ++s) {
      const int16_t from_input = tinyml_lstm_fc_row(x + b * n_in, wi + s * n_in, n_in,
                                                    p[TINYML_LSTM_INPUT_OFFSET], bias[gate * n + s], fc[0], fc[1]);
      const int16_t from_hidden = tinyml_lstm_fc_row(h + b * n, wr + s * n, n,
                                                     -p[TINYML_LSTM_HIDDEN_ZP], 0, fc[2], fc[3]);
      const int16_t sum = tinyml_sat_i16((int32_t)from_input + from_hidden);
      out[b * n + s] = gate == TINYML_GATE_CELL ? tinyml_tanh_i16(sum, -12) : tinyml_logistic_i16(sum);
    }
  }
}

/* lstm_internal::LstmStep for `rows` rows of input `x`: gates, cell update,
 * hidden update; the new hidden state is also copied to `out`. */
static inline void tinyml_lstm_step(const int8_t *x, const int8_t *w_in,
                                    const int8_t *w_rec, const int32_t *bias,
                                    const int32_t *p, int32_t rows, int8_t *h,
                                    int16_t *c, int16_t *gates, int8_t *out) {
  const int32_t size = rows * p[TINYML_LSTM_STATE_DIM];
  const int32_t clip = p[TINYML_LSTM_CELL_CLIP];
  int16_t *g_in = gates, *g_forget = gates + size, *g_cell = gates + 2 * size, *g_out = gates + 3 * size;
  int32_t i;
  tinyml_lstm_gate(x, h, w_in, w_rec, bias, p, TINYML_GATE_INPUT, rows, g_in);
  tinyml_lstm_gate(x, h, w_in, w_rec, bias, p, TINYML_GATE_FORGET, rows, g_forget);
  tinyml_lstm_gate(x, h, w_in, w_rec, bias, p, TINYML_GATE_CELL, rows, g_cell);
  tinyml_lstm_gate(x, h, w_in, w_rec, bias, p, TINYML_GATE_OUTPUT, rows, g_out);
  for (i = 0; i < size; ++i) {
    const int16_t kept = tinyml_sat_i16(tinyml_lstm_mul(g_forget[i], c[i], p + TINYML_LSTM_FORGET_MUL));
    const int16_t added = tinyml_sat_i16(tinyml_lstm_mul(g_in[i], g_cell[i], p + TINYML_LSTM_INPUT_MUL));
    int16_t cell = tinyml_sat_i16((int32_t)kept + added);
    if (clip >= 0) cell = cell > clip ? (int16_t)clip : (cell < -clip ? (int16_t)-clip : cell);
    c[i] = cell;
  }
  for (i = 0; i < size; ++i) {
    const int32_t t = tinyml_tanh_i16(c[i], p[TINYML_LSTM_CELL_POWER]);
    h[i] = tinyml_clamp_i8(p[TINYML_LSTM_HIDDEN_ZP] + tinyml_lstm_mul(t, g_out[i], p + TINYML_LSTM_OUTPUT_MUL), -128, 127);
    out[i] = h[i];
  }
}

/* EvalLstm: time-major input [T][B][I] steps all batches at once; batch-major
 * [B][T][I] runs each batch's sequence on its own state rows. */
static inline void tinyml_lstm_i8(const int8_t *input, const int8_t *w_in,
                                  const int8_t *w_rec, const int32_t *bias,
                                  const int32_t *p, int8_t *output, int8_t *h,
                                  int16_t *c, int16_t *gates) {
  const int32_t batch = p[TINYML_LSTM_BATCH], time = p[TINYML_LSTM_TIME];
  const int32_t n_in = p[TINYML_LSTM_INPUT_DIM], n = p[TINYML_LSTM_STATE_DIM];
  int32_t b, t;
  for (b = 0; b < batch * n; ++b) {
    h[b] = (int8_t)p[TINYML_LSTM_HIDDEN_ZP];
    c[b] = 0;
  }
  if (p[TINYML_LSTM_TIME_MAJOR]) {
    for (t = 0; t < time; ++t)
      tinyml_lstm_step(input + t * batch * n_in, w_in, w_rec, bias, p, batch, h, c, gates, output + t * batch * n);
    return;
  }
  for (b = 0; b < batch; ++b)
    for (t = 0; t < time; ++t)
      tinyml_lstm_step(input + (b * time + t) * n_in, w_in, w_rec, bias, p, 1, h + b * n, c + b * n, gates,
                       output + (b * time + t) * n);
}

#endif /* TINYML_LSTM_H_ */
