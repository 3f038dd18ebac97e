"""Prepare-time integer parameters of the recurrent TFLite ops, computed as TFLite Micro does.

`svdf_params` mirrors PrepareSvdf (micro/kernels/svdf_common.cc) and returns the int32 table
`tinyml_svdf_i8` reads (TINYML_SVDF_* in codegen/runtime/tinyml_svdf.h). `lstm_params` mirrors UnidirectionalSequenceLstmPrepare (micro/kernels/lstm_eval_common.cc:
CreateLstmSizeInfo, PrepareGateParametersInteger, CreateLstmCellStateInfo) and returns the int32
table `tinyml_lstm_i8` reads (layout TINYML_LSTM_* in codegen/runtime/tinyml_lstm.h).
The file's gate intermediates play no part: TFLM fixes the gate pre-activation scale at 2^-12
(Q3.12) and the gate outputs at 2^-15 (Q0.15).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tvm_tinyml.quant_params import fully_connected_multiplier, quantize_multiplier

GATE_INPUT_SCALE = 2.0**-12  # FC output / nonlinearity input, Q3.12
GATE_OUTPUT_SCALE = 2.0**-15  # nonlinearity output, Q0.15
_NUM_PARAMS = 9 + 16 + 6


def _f32(x: float) -> float:
    """A flatbuffer (float32) scale as the double TFLM promotes it to."""
    return float(np.float32(x))


@dataclass(frozen=True)
class LstmQuant:
    """The quantization an integer LSTM layer's Prepare reads (scales as in the flatbuffer)."""

    input_scale: float
    input_zp: int
    hidden_scale: float  # the hidden (output) state, int8
    hidden_zp: int
    cell_scale: float  # the int16 cell state
    input_weight_scales: tuple[float, float, float, float]  # gates input, forget, cell, output
    recurrent_weight_scales: tuple[float, float, float, float]


def checked_log2(x: float) -> int:
    """tflite::CheckedLog2's rounded exponent, in float32 arithmetic as TFLM computes it."""
    log2 = np.float32(np.log(np.float32(x))) * (np.float32(1.0) / np.float32(np.log(np.float32(2.0))))
    return int(np.round(np.float64(log2)))  # |log2| is never near a half for a state scale


def _inter_gate_mul(s1: float, s2: float, s_out: float) -> list[int]:
    """CreateInterGateMulParams: (multiplier, shift) of double(s1) * double(s2) / double(s_out)."""
    return list(quantize_multiplier(_f32(s1) * _f32(s2) / _f32(s_out)))


def _gate_fc(input_scale: float, weight_scale: float) -> list[int]:
    """CreateGateParams' FC requantization into the Q3.12 gate input: (multiplier, shift)."""
    mult, shift = fully_connected_multiplier(input_scale, np.float32([weight_scale]), GATE_INPUT_SCALE)
    return [int(mult[0]), int(shift[0])]


def quantized_cell_clip(cell_clip: float, cell_scale: float) -> int:
    """CreateLstmCellStateInfo's int16 clip, or -1 when the cell is not clipped (clip <= 0)."""
    if _f32(cell_clip) <= 0:
        return -1
    return int(min(max(_f32(cell_clip) / _f32(cell_scale), -32768.0), 32767.0))  # truncation, as static_cast


def lstm_params(
    input_shape: tuple[int, int, int],
    state_dim: int,
    time_major: bool,
    q: LstmQuant,
    cell_clip: float,
) -> np.ndarray:
    """The layer's int32 parameter table (see module doc)."""
    time, batch = (input_shape[0], input_shape[1]) if time_major else (input_shape[1], input_shape[0])
    table = [batch, time, input_shape[2], state_dim, int(time_major), -q.input_zp, q.hidden_zp,
             quantized_cell_clip(cell_clip, q.cell_scale), checked_log2(q.cell_scale)]
    for w_in, w_rec in zip(q.input_weight_scales, q.recurrent_weight_scales):
        table += _gate_fc(q.input_scale, w_in) + _gate_fc(q.hidden_scale, w_rec)
    table += _inter_gate_mul(GATE_OUTPUT_SCALE, q.cell_scale, q.cell_scale)  # forget x cell -> cell
    table += _inter_gate_mul(GATE_OUTPUT_SCALE, GATE_OUTPUT_SCALE, q.cell_scale)  # input x cell gate -> cell
    table += _inter_gate_mul(GATE_OUTPUT_SCALE, GATE_OUTPUT_SCALE, q.hidden_scale)  # tanh(cell) x output -> hidden
    assert len(table) == _NUM_PARAMS
    return np.array(table, dtype=np.int32)


@dataclass(frozen=True)
class SvdfQuant:
    """The per-tensor quantization PrepareSvdf reads (scales as in the flatbuffer)."""

    input_scale: float
    input_zp: int
    feature_weight_scale: float
    time_weight_scale: float
    state_scale: float
    state_zp: int
    output_scale: float
    output_zp: int


def svdf_params(batch: int, input_dim: int, filters: int, rank: int, memory: int, q: SvdfQuant,
                state_bits: int = 16) -> np.ndarray:
    """The SVDF layer's int32 parameter table for an int`state_bits` state. TFLM combines each
    effective scale in float32 (`float * float / float`) before widening it to double, and
    resets an int8 variable tensor to its zero point, an int16 one to 0."""
    f32 = np.float32
    scale_1 = float(f32(q.input_scale) * f32(q.feature_weight_scale) / f32(q.state_scale))
    scale_2 = float(f32(q.state_scale) * f32(q.time_weight_scale) / f32(q.output_scale))
    table = [batch, input_dim, filters, rank, memory, q.input_zp, q.state_zp, state_bits,
             q.state_zp if state_bits == 8 else 0, q.output_zp]
    table += list(quantize_multiplier(scale_1)) + list(quantize_multiplier(scale_2))
    return np.array(table, dtype=np.int32)
