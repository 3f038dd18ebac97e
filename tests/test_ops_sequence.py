"""Recurrent ops (int8 UNIDIRECTIONAL_SEQUENCE_LSTM, int8 SVDF with an int16 or int8 state)
bit-exact against TFLite Micro.

Single-op models mirror the tensor list of tflm_trained_lstm_int8.tflite (24 inputs: input,
8 int8 weights, 4 int32 biases, variable int8 hidden and int16 cell states; no peephole,
projection or layer norm, which TFLM's integer kernel rejects). Weight scales put each gate's
pre-activation at a few units (Q3.12), so the gates, the cell and the hidden state take many
values. SVDF models take every rank / memory / batch shape TFLM's Prepare accepts. Then the
ops inside small graphs, the two real LSTM models from shared/models/external, and the variants
we reject.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

import tvm_tinyml
from test_ops import IN_Q, I8, act, check, rng
from test_models import ARM_FLAGS, ARM_GCC
from tflite_builder import ModelBuilder
from tvm_tinyml.errors import UnsupportedOperatorError
from tvm_tinyml.verify import verify

EXTERNAL = Path(__file__).resolve().parent.parent / "models" / "external"  # vendored (licenses in its README)
LSTM_MODELS = ["tflm_trained_lstm_int8", "tflm_dtln_noise_suppression"]
HIDDEN_SCALE = 1 / 128  # tanh(cell) x sigmoid lies in (-1, 1)


def gate_weight_scale(terms: int, in_scale: float) -> float:
    """A weight scale that puts a sum of `terms` random int8 products at about 1.5 (real)."""
    return 1.5 / (np.sqrt(terms) * 74 * 74 * in_scale)


def add_lstm(b: ModelBuilder, x: int, in_shape, state: int, *, time_major=False, hidden_zp=0, hidden_scale=HIDDEN_SCALE,
             cell_power=-12, activation="TANH", cell_clip=10.0, in_q=IN_Q, seed=0, peephole=False) -> tuple[int, list[int]]:
    """Append an int8 UNIDIRECTIONAL_SEQUENCE_LSTM reading `x` ([B, T, I], or [T, B, I] time-major)."""
    g = rng(seed)
    n_in = in_shape[2]
    batch = in_shape[1] if time_major else in_shape[0]

    def weights(cols: int, in_scale: float) -> list[int]:
        scales = gate_weight_scale(cols, in_scale) * g.uniform(0.7, 1.3, 4)
        return [b.add_tensor([state, cols], I8, scale=float(s), data=g.integers(-127, 128, (state, cols))) for s in scales]

    w_in, w_rec = weights(n_in, in_q["scale"]), weights(state, hidden_scale)
    bias_scale = in_q["scale"] * gate_weight_scale(n_in, in_q["scale"])
    biases = [b.add_tensor([state], np.int32, scale=bias_scale, data=g.integers(-3000, 3000, state)) for _ in range(4)]
    cell_to = [b.add_tensor([state], np.int16, scale=1e-3, data=g.integers(-500, 500, state)) for _ in range(3)] if peephole else [-1] * 3
    hidden = b.add_tensor([batch, state], I8, scale=hidden_scale, zero_point=hidden_zp, variable=True)
    cell = b.add_tensor([batch, state], np.int16, scale=2.0**cell_power, variable=True)
    out_shape = [in_shape[0], in_shape[1], state]
    y = act(b, out_shape, scale=hidden_scale, zero_point=hidden_zp)
    inputs = [x, *w_in, *w_rec, *cell_to, *biases, -1, -1, hidden, cell, -1, -1, -1, -1]
    b.add_operator("UNIDIRECTIONAL_SEQUENCE_LSTM", inputs, [y], fused_activation_function=activation,
                   cell_clip=cell_clip, proj_clip=0.0, time_major=time_major)
    return y, out_shape


def lstm_model(in_shape, state: int, **options) -> bytes:
    b = ModelBuilder()
    x = act(b, in_shape)
    y, _ = add_lstm(b, x, in_shape, state, **options)
    return b.build([x], [y])


# ---------------------------------------------------------------- single op


@pytest.mark.parametrize("in_shape, state, options", [
    ([1, 5, 8], 6, dict()),  # batch-major, one sequence (the MNIST model's layout)
    ([1, 1, 12], 16, dict(hidden_zp=-4, cell_power=-11)),  # one step (DTLN's layout), tanh of a 2^-11 cell
    ([3, 4, 5], 4, dict(hidden_zp=3, cell_power=-10)),  # batch-major, three sequences on their own states
    ([4, 2, 6], 5, dict(time_major=True, hidden_zp=-9)),  # time-major: all batches stepped together
    ([1, 6, 7], 8, dict(cell_clip=0.0, cell_power=-13)),  # no cell clipping
    ([2, 3, 4], 3, dict(time_major=True, cell_clip=0.4, cell_power=-15)),  # tight clip, tanh shift path > 0
    ([1, 4, 6], 5, dict(hidden_zp=2, cell_clip=3.0, cell_power=-9)),
    ([1, 5, 6], 4, dict(cell_power=-11.6)),  # a cell scale off a power of two: TFLM rounds its log2
    ([2, 3, 5], 6, dict(hidden_scale=0.0073633, hidden_zp=-4)),  # DTLN's second hidden quantization
])
def test_lstm(tmp_path, in_shape, state, options):
    check(tmp_path, lstm_model(in_shape, state, seed=sum(in_shape) * state, **options), min_distinct=8)


def test_lstm_other_input_quantization(tmp_path):
    in_q = dict(scale=0.012, zero_point=25)
    b = ModelBuilder()
    x = act(b, [1, 5, 9], **in_q)
    y, _ = add_lstm(b, x, [1, 5, 9], 7, in_q=in_q, hidden_zp=-1, seed=7)
    check(tmp_path, b.build([x], [y]), min_distinct=8)


# ---------------------------------------------------------------- in a graph


def add_fc(b: ModelBuilder, x: int, rows: int, depth: int, units: int, seed: int, in_scale: float) -> int:
    """A per-tensor int8 FULLY_CONNECTED [rows, depth] -> [rows, units] (IN_Q output)."""
    g = rng(seed)
    w_scale = gate_weight_scale(depth, in_scale) * 1.5
    w = b.add_tensor([units, depth], I8, scale=w_scale, data=g.integers(-127, 128, (units, depth)))
    bias = b.add_tensor([units], np.int32, scale=in_scale * w_scale, data=g.integers(-2000, 2000, units))
    y = act(b, [rows, units], scale=0.03, zero_point=-5)
    b.add_operator("FULLY_CONNECTED", [x, w, bias], [y])
    return y


def test_fc_lstm_lstm_fc(tmp_path):
    """FC -> RESHAPE -> LSTM -> LSTM -> RESHAPE -> FC: the LSTM's input and output are other
    kernels' arena tensors, and two layers each plan their own state."""
    steps, depth, n_in, state = 6, 10, 8, 7
    b = ModelBuilder()
    x = act(b, [steps, depth])
    h = add_fc(b, x, steps, depth, n_in, seed=1, in_scale=IN_Q["scale"])
    seq_shape = [1, steps, n_in]
    seq = act(b, seq_shape, scale=0.03, zero_point=-5)
    b.add_operator("RESHAPE", [h, b.add_tensor([3], np.int32, data=np.array(seq_shape))], [seq], new_shape=seq_shape)
    l1, shape1 = add_lstm(b, seq, seq_shape, state, in_q=dict(scale=0.03, zero_point=-5), seed=2)
    l2, _ = add_lstm(b, l1, shape1, state, in_q=dict(scale=HIDDEN_SCALE, zero_point=0), hidden_zp=-6, seed=3)
    flat = act(b, [1, steps * state], scale=HIDDEN_SCALE, zero_point=-6)
    b.add_operator("RESHAPE", [l2, b.add_tensor([2], np.int32, data=np.array([1, steps * state]))], [flat],
                   new_shape=[1, steps * state])
    y = add_fc(b, flat, 1, steps * state, 12, seed=4, in_scale=HIDDEN_SCALE)
    artifact = check(tmp_path, b.build([x], [y]), min_distinct=6)
    assert artifact.metadata["layers"].count("unidirectional_sequence_lstm") == 2
    scratch = [t for t in artifact.memory.tensors if t["op"] == "scratch"]
    assert sorted(t["bytes"] for t in scratch) == sorted([state, 2 * state, 4 * 2 * state] * 2)  # planned, not stack


# ---------------------------------------------------------------- real models


@pytest.mark.parametrize("name", LSTM_MODELS)
def test_real_lstm_model_bit_exact(name):
    result = verify(str(EXTERNAL / f"{name}.tflite"), inputs=20, seed=2)
    assert result.bit_exact and result.max_abs_diff == 0, result


@pytest.mark.parametrize("name", LSTM_MODELS)
def test_real_lstm_model_with_tvm_memory_plan(name):
    """TVM's plan places each kernel's scratch outputs too (tvm_plan maps every output)."""
    result = verify(str(EXTERNAL / f"{name}.tflite"), inputs=5, memory_planner="tvm")
    assert result.bit_exact, result


def svdf_model(tmp_path: Path) -> str:
    b = ModelBuilder()
    x = act(b, [2, 6])
    y = add_svdf(b, x, 2, 6, 8, 2, 4, seed=9)
    path = tmp_path / "svdf.tflite"
    path.write_bytes(b.build([x], [y]))
    return str(path)


@pytest.mark.parametrize("core", sorted(ARM_FLAGS))
@pytest.mark.parametrize("op", ["lstm", "svdf"])
def test_sequence_c_builds_for_cortex_m(tmp_path, core, op):
    model = str(EXTERNAL / "tflm_dtln_noise_suppression.tflite") if op == "lstm" else svdf_model(tmp_path)
    artifact = tvm_tinyml.build(model)
    source = artifact.export(tmp_path / "out") / f"{artifact.name}.c"
    assert f"tinyml_{op}_i8(" in source.read_text()
    command = [ARM_GCC, *ARM_FLAGS[core], "-O2", "-Wall", "-Werror", "-c", str(source), "-o", str(tmp_path / "m.o")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stderr == "", result.stderr


def test_lstm_macs_count_the_gate_fcs():
    artifact = tvm_tinyml.build(str(EXTERNAL / "tflm_trained_lstm_int8.tflite"), target="host")
    assert artifact.metadata["macs"] == 28 * 4 * 20 * (28 + 20) + 10 * 560


# ---------------------------------------------------------------- SVDF

SVDF_STATE_SCALE = 2.0**-10


def add_svdf(b: ModelBuilder, x: int, batch: int, n_in: int, filters: int, rank: int, memory: int, *,
             in_q=IN_Q, state_zp=0, out_zp=4, activation="NONE", state_type=np.int16, seed=0) -> int:
    """Append an int8 SVDF (time weights and state of `state_type`) reading `x` [batch, n_in]."""
    g = rng(seed)
    units = filters // rank
    state_lsb, time_max = (2000, 3000) if state_type == np.int16 else (40, 127)  # typical |state|, |time weight|
    feature_scale = state_lsb / (74 * 74 * np.sqrt(n_in)) * SVDF_STATE_SCALE / in_q["scale"]
    time_scale = 1e-3
    wf = b.add_tensor([filters, n_in], I8, scale=feature_scale, data=g.integers(-127, 128, (filters, n_in)))
    wt = b.add_tensor([filters, memory], state_type, scale=time_scale, data=g.integers(-time_max, time_max, (filters, memory)))
    bias_max = int(state_lsb * time_max)
    bias = b.add_tensor([units], np.int32, scale=SVDF_STATE_SCALE * time_scale, data=g.integers(-bias_max, bias_max, units))
    state = b.add_tensor([batch, filters * memory], state_type, scale=SVDF_STATE_SCALE, zero_point=state_zp, variable=True)
    out_scale = SVDF_STATE_SCALE * time_scale * time_max / np.sqrt(3) * state_lsb * np.sqrt(rank) / 40  # output ~ 40 LSB
    y = act(b, [batch, units], scale=float(out_scale), zero_point=out_zp)
    b.add_operator("SVDF", [x, wf, wt, bias, state], [y], rank=rank, fused_activation_function=activation)
    return y


@pytest.mark.parametrize("batch, n_in, filters, rank, memory, options", [
    (1, 8, 6, 1, 4, dict()),
    (2, 5, 8, 2, 3, dict(out_zp=-10)),
    (3, 10, 12, 3, 5, dict(state_zp=3)),
    (1, 16, 4, 4, 1, dict()),  # one unit of rank 4, memory 1
    (2, 6, 6, 1, 8, dict(activation="RELU")),  # TFLM's integer SVDF ignores the fused activation
    (2, 8, 6, 2, 4, dict(state_type=np.int8)),  # int8 state and time weights
    (1, 12, 9, 3, 3, dict(state_type=np.int8, state_zp=-7, out_zp=-20)),  # int8 state reset to its zero point
])
def test_svdf(tmp_path, batch, n_in, filters, rank, memory, options):
    b = ModelBuilder()
    x = act(b, [batch, n_in])
    y = add_svdf(b, x, batch, n_in, filters, rank, memory, seed=n_in * filters + memory, **options)
    check(tmp_path, b.build([x], [y]), min_distinct=min(filters // rank * batch, 4))


def test_fc_svdf_fc(tmp_path):
    """FC -> SVDF -> FC, a keyword-spotting shape: the SVDF reads and feeds other kernels."""
    b = ModelBuilder()
    x = act(b, [1, 20])
    h = add_fc(b, x, 1, 20, 16, seed=5, in_scale=IN_Q["scale"])
    s = add_svdf(b, h, 1, 16, 12, 2, 5, in_q=dict(scale=0.03, zero_point=-5), out_zp=-3, seed=6)
    out_scale = b._tensors[s].quantization.scale[0]
    y = add_fc(b, s, 1, 6, 8, seed=7, in_scale=out_scale)
    artifact = check(tmp_path, b.build([x], [y]), min_distinct=6)
    assert "svdf" in artifact.metadata["layers"]
    assert [t["bytes"] for t in artifact.memory.tensors if t["op"] == "scratch"] == [12 * 5 * 2]


# ---------------------------------------------------------------- rejected variants


def test_lstm_peephole_is_rejected(tmp_path):
    path = tmp_path / "peephole.tflite"
    path.write_bytes(lstm_model([1, 3, 4], 4, peephole=True))
    with pytest.raises(UnsupportedOperatorError, match=r"operator #0 \(UNIDIRECTIONAL_SEQUENCE_LSTM\) with peephole connections is not supported"):
        tvm_tinyml.build(str(path), target="host")


def test_lstm_relu_cell_activation_is_rejected(tmp_path):
    path = tmp_path / "relu.tflite"
    path.write_bytes(lstm_model([1, 3, 4], 4, activation="RELU"))
    with pytest.raises(UnsupportedOperatorError, match=r"operator #0 \(UNIDIRECTIONAL_SEQUENCE_LSTM\) with cell activation 1 is not supported \(TANH only\)"):
        tvm_tinyml.build(str(path), target="host")


def test_svdf_mixed_state_types_are_rejected(tmp_path):
    b = ModelBuilder()
    x = act(b, [1, 4])
    wf = b.add_tensor([2, 4], I8, scale=0.01, data=np.ones((2, 4)))
    wt = b.add_tensor([2, 3], I8, scale=0.01, data=np.ones((2, 3)))
    bias = b.add_tensor([2], np.int32, scale=1e-4, data=np.zeros(2))
    state = b.add_tensor([1, 6], np.int16, scale=0.01, variable=True)
    y = act(b, [1, 2])
    b.add_operator("SVDF", [x, wf, wt, bias, state], [y], rank=1)
    path = tmp_path / "svdf_mixed.tflite"
    path.write_bytes(b.build([x], [y]))
    with pytest.raises(UnsupportedOperatorError,
                       match=r"operator #0 \(SVDF\) with int16 state and int8 time weights is not supported"):
        tvm_tinyml.build(str(path), target="host")
