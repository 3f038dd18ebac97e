"""Bit-exactness against TFLite Micro of the reduce family: MEAN, SUM, REDUCE_MAX / REDUCE_MIN,
ARG_MAX / ARG_MIN, SOFTMAX and LOG_SOFTMAX (single ops and inside small graphs).

Same method as tests/test_ops.py: tiny int8 models, seeded random inputs, generated C vs TFLM.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tvm_tinyml
from replay import kernel_trace, overlap_is_safe
from test_models import ARM_FLAGS, ARM_GCC
from test_ops import IN_Q, I8, act, add_conv, check, i32_const, single
from tflite_builder import ModelBuilder, schema
from tvm_tinyml.errors import UnsupportedOperatorError
from tvm_tinyml.overlap import max_overlap_delta
from tvm_tinyml.run import run_on_board
from tvm_tinyml.verify import verify

IN_SHAPE = [1, 5, 6, 4]
# (axes, keep_dims) over IN_SHAPE: every rank of output, negative and repeated axes, all axes.
REDUCE_AXES = [
    ([1, 2], True), ([1, 2], False), ([2], True), ([1], False), ([3], False), ([-1], True),
    ([0, 3], False), ([2, 1, -3], True), ([0, 1, 2, 3], False), ([0, 1, 2, 3], True),
]
AXES_IDS = [f"{'_'.join(map(str, a))}{'_keep' if k else ''}" for a, k in REDUCE_AXES]


def reduced_shape(in_shape, axes, keep_dims) -> list[int]:
    axes = {a % len(in_shape) for a in axes}
    if keep_dims:
        return [1 if a in axes else d for a, d in enumerate(in_shape)]
    return [d for a, d in enumerate(in_shape) if a not in axes]


def reduce_model(op: str, axes, keep_dims, out_q=None, in_shape=IN_SHAPE) -> bytes:
    out_shape = reduced_shape(in_shape, axes, keep_dims)
    return single(op, in_shape, out_shape, out_q, [i32_const(axes)], keep_dims=keep_dims)


def count(in_shape, axes) -> int:
    return int(np.prod([in_shape[a % len(in_shape)] for a in set(a % len(in_shape) for a in axes)]))


# ---------------------------------------------------------------- MEAN / SUM


@pytest.mark.parametrize("axes, keep_dims", REDUCE_AXES, ids=AXES_IDS)
def test_mean_axes(tmp_path, axes, keep_dims):
    n = count(IN_SHAPE, axes)
    # the mean of n uniform values has std ~74/sqrt(n) LSB: a finer output scale keeps it wide
    out_q = dict(scale=IN_Q["scale"] * min(1.0, 3 / np.sqrt(n)), zero_point=4)
    check(tmp_path, reduce_model("MEAN", axes, keep_dims, out_q))


@pytest.mark.parametrize("axes, keep_dims", REDUCE_AXES, ids=AXES_IDS)
def test_sum_axes(tmp_path, axes, keep_dims):
    """SUM requantizes the raw sum: the output scale grows with sqrt(count) to stay in range."""
    n = count(IN_SHAPE, axes)
    out_q = dict(scale=IN_Q["scale"] * np.sqrt(n) * 74 / 40, zero_point=-3)
    check(tmp_path, reduce_model("SUM", axes, keep_dims, out_q))


@pytest.mark.parametrize("out_q", [dict(scale=0.05, zero_point=-7), dict(scale=0.31, zero_point=20),
                                   dict(scale=0.9, zero_point=-100)], ids=["same_q", "coarse", "saturating"])
def test_sum_quantization(tmp_path, out_q):
    """Same quantization as the input (saturates often), coarser, and a far-off zero point."""
    check(tmp_path, reduce_model("SUM", [2], True, out_q), min_distinct=3)


# ---------------------------------------------------------------- REDUCE_MAX / REDUCE_MIN


@pytest.mark.parametrize("op", ["REDUCE_MAX", "REDUCE_MIN"])
@pytest.mark.parametrize("axes, keep_dims", REDUCE_AXES, ids=AXES_IDS)
def test_reduce_min_max(tmp_path, op, axes, keep_dims):
    check(tmp_path, reduce_model(op, axes, keep_dims), min_distinct=2)


def test_reduce_max_needs_same_quantization(tmp_path):
    with pytest.raises(UnsupportedOperatorError, match="REDUCE_MAX with different input and output quantization"):
        check(tmp_path, reduce_model("REDUCE_MAX", [1], True, dict(scale=0.1, zero_point=0)))


# ---------------------------------------------------------------- ARG_MAX / ARG_MIN


TENSOR_TYPE = {np.int32: schema.TensorType.INT32, np.int64: schema.TensorType.INT64}


def arg_model(op: str, in_shape, axis: int, out_dtype) -> bytes:
    b = ModelBuilder()
    x = act(b, in_shape)
    out_shape = [d for a, d in enumerate(in_shape) if a != axis % len(in_shape)]
    y = b.add_tensor(out_shape, out_dtype)
    b.add_operator(op, [x, b.add_tensor(**i32_const([axis]))], [y], output_type=TENSOR_TYPE[out_dtype])
    return b.build([x], [y])


@pytest.mark.parametrize("op", ["ARG_MAX", "ARG_MIN"])
@pytest.mark.parametrize("in_shape, axis", [([1, 10], 1), ([1, 10], -1), ([1, 4, 5, 6], 3), ([1, 4, 5, 6], 1),
                                            ([2, 7], 0), ([3, 40, 2], 1)])
def test_arg_min_max(tmp_path, op, in_shape, axis):
    check(tmp_path, arg_model(op, in_shape, axis, np.int32), min_distinct=2)


def test_arg_max_int64_output_is_unsupported(tmp_path):
    """TFLM's ARG_MAX / ARG_MIN only write int32 indices."""
    with pytest.raises(UnsupportedOperatorError, match="ARG_MAX with int64 output"):
        check(tmp_path, arg_model("ARG_MAX", [1, 10], 1, np.int64))


def test_arg_max_ties_pick_the_first(tmp_path):
    """A narrow input range (values in [-2, 1] after a conv clamps) makes ties the rule."""
    b = ModelBuilder()
    x = act(b, [1, 4, 4, 3])
    y, shape = add_conv(b, x, [1, 4, 4, 3], 16, kernel=1, seed=7, out_q=dict(scale=4.0, zero_point=0))
    idx = b.add_tensor([1, 4, 4], np.int32)
    b.add_operator("ARG_MAX", [y, b.add_tensor(**i32_const([3]))], [idx], output_type=schema.TensorType.INT32)
    check(tmp_path, b.build([x], [idx]), min_distinct=2)


# ---------------------------------------------------------------- SOFTMAX / LOG_SOFTMAX


@pytest.mark.parametrize("in_shape", [[1, 10], [3, 7], [1, 3, 9], [1, 2, 3, 8]], ids=["r2", "r2_rows", "r3", "r4"])
@pytest.mark.parametrize("beta", [1.0, 0.5, 1.7])
def test_softmax_beta(tmp_path, in_shape, beta):
    b = ModelBuilder()
    x = act(b, in_shape, scale=0.03, zero_point=-7)
    y = act(b, in_shape, scale=1.0 / 256, zero_point=-128)
    b.add_operator("SOFTMAX", [x], [y], beta=beta)
    check(tmp_path, b.build([x], [y]))


LOG_SOFTMAX_Q = dict(scale=16.0 / 256, zero_point=127)


@pytest.mark.parametrize("in_shape", [[1, 10], [4, 6], [1, 3, 9], [1, 2, 3, 8], [1, 100]],
                         ids=["r2", "r2_rows", "r3", "r4", "wide"])
@pytest.mark.parametrize("in_scale", [0.01, 0.03, 0.08])
def test_log_softmax(tmp_path, in_shape, in_scale):
    b = ModelBuilder()
    x = act(b, in_shape, scale=in_scale, zero_point=-7)
    y = act(b, in_shape, **LOG_SOFTMAX_Q)
    b.add_operator("LOG_SOFTMAX", [x], [y])
    check(tmp_path, b.build([x], [y]))


@pytest.mark.parametrize("in_scale, zero_point", [(0.002, 0), (0.05, 100), (0.3, -128), (1.0, 3)])
def test_log_softmax_many_rows(tmp_path, in_scale, zero_point):
    """Many rows and extreme input scales: exercises the log's range and the adjusted cut-off."""
    b = ModelBuilder()
    x = act(b, [64, 12], scale=in_scale, zero_point=zero_point)
    y = act(b, [64, 12], **LOG_SOFTMAX_Q)
    b.add_operator("LOG_SOFTMAX", [x], [y])
    check(tmp_path, b.build([x], [y]))


def test_log_softmax_needs_fixed_output_quantization(tmp_path):
    with pytest.raises(UnsupportedOperatorError, match="LOG_SOFTMAX needs output scale 16/256"):
        check(tmp_path, single("LOG_SOFTMAX", [1, 10], [1, 10], dict(scale=0.1, zero_point=127)))


# ---------------------------------------------------------------- in graphs


def test_conv_reductions_conv(tmp_path):
    """conv -> SUM over channels (keep dims) -> conv, and conv -> REDUCE_MAX over W -> conv."""
    b = ModelBuilder()
    x = act(b, [1, 6, 6, 3])
    y, shape = add_conv(b, x, [1, 6, 6, 3], 8, kernel=3, seed=11, out_q=IN_Q)
    s = act(b, [1, 6, 6, 1], scale=0.3, zero_point=2)
    b.add_operator("SUM", [y, b.add_tensor(**i32_const([3]))], [s], keep_dims=True)
    z, _ = add_conv(b, s, [1, 6, 6, 1], 4, kernel=3, seed=12, in_scale=0.3)
    m = act(b, [1, 6, 1, 8])
    b.add_operator("REDUCE_MAX", [y, b.add_tensor(**i32_const([2]))], [m], keep_dims=True)
    w, _ = add_conv(b, m, [1, 6, 1, 8], 5, kernel=1, seed=13)
    check(tmp_path, b.build([x], [z, w]))


def test_conv_mean_fc_log_softmax_argmax(tmp_path):
    """A classifier: conv -> MEAN -> FULLY_CONNECTED -> LOG_SOFTMAX, and ARG_MAX of the logits."""
    b = ModelBuilder()
    x = act(b, [1, 8, 8, 3])
    y, _ = add_conv(b, x, [1, 8, 8, 3], 8, kernel=3, stride=2, seed=21, activation="RELU", out_q=IN_Q)
    pooled = act(b, [1, 8], scale=0.02, zero_point=-30)
    b.add_operator("MEAN", [y, b.add_tensor(**i32_const([1, 2]))], [pooled], keep_dims=False)
    g = np.random.default_rng(22)
    weights = b.add_tensor([10, 8], I8, scale=0.01, zero_point=0, data=g.integers(-127, 128, (10, 8)))
    bias = b.add_tensor([10], np.int32, scale=0.02 * 0.01, zero_point=0, data=g.integers(-500, 500, 10))
    logits = act(b, [1, 10], scale=0.08, zero_point=3)
    b.add_operator("FULLY_CONNECTED", [pooled, weights, bias], [logits])
    logp = act(b, [1, 10], **LOG_SOFTMAX_Q)
    b.add_operator("LOG_SOFTMAX", [logits], [logp])
    label = b.add_tensor([1], np.int32)
    b.add_operator("ARG_MAX", [logits, b.add_tensor(**i32_const([1]))], [label], output_type=schema.TensorType.INT32)
    check(tmp_path, b.build([x], [logp, label]), min_distinct=1)


def float_end_model(op: str, rows: int = 1) -> bytes:
    """float -> QUANTIZE -> FULLY_CONNECTED -> DEQUANTIZE -> float `op` (LOG_SOFTMAX), as converters
    leave a float softmax-like tail."""
    b = ModelBuilder()
    xf = b.add_tensor([rows, 16], np.float32, name="input_f32")
    xq = act(b, [rows, 16], scale=0.02, zero_point=-3)
    b.add_operator("QUANTIZE", [xf], [xq])
    g = np.random.default_rng(5)
    weights = b.add_tensor([10, 16], I8, scale=0.01, zero_point=0, data=g.integers(-127, 128, (10, 16)))
    logits = act(b, [rows, 10], scale=0.05, zero_point=4)
    b.add_operator("FULLY_CONNECTED", [xq, weights, -1], [logits])
    lf = b.add_tensor([rows, 10], np.float32)
    b.add_operator("DEQUANTIZE", [logits], [lf])
    yf = b.add_tensor([rows, 10], np.float32, name="output_f32")
    b.add_operator(op, [lf], [yf])
    return b.build([xf], [yf])


@pytest.mark.parametrize("rows", [1, 3])
@pytest.mark.parametrize("float_io", [False, True], ids=["int8_entry", "float_entry"])
def test_float_log_softmax_end(tmp_path, rows, float_io):
    """TFLM runs a LOG_SOFTMAX after the DEQUANTIZE in float: the output must match to the bit."""
    path = tmp_path / "float_end.tflite"
    path.write_bytes(float_end_model("LOG_SOFTMAX", rows))
    result = verify(str(path), inputs=5, float_io=float_io)
    assert result.bit_exact and result.max_abs_diff == 0, result


def test_verify_int32_indices(tmp_path):
    """`verify` compares int32 ARG_MAX outputs (no int8 domain) exactly."""
    path = tmp_path / "argmax.tflite"
    path.write_bytes(arg_model("ARG_MAX", [4, 10], 1, np.int32))
    result = verify(str(path), inputs=5)
    assert result.bit_exact and result.max_abs_diff == 0, result


def reduce_graph() -> bytes:
    """Every int8 kernel of the family in one model: SUM, MEAN, REDUCE_MIN, ARG_MIN, SOFTMAX
    (beta), LOG_SOFTMAX, each a graph output."""
    b = ModelBuilder()
    x = act(b, [1, 4, 4, 6])
    axes = b.add_tensor(**i32_const([1, 2]))
    outputs = []
    for op, q in (("SUM", dict(scale=0.5, zero_point=1)), ("MEAN", IN_Q), ("REDUCE_MIN", IN_Q)):
        y = act(b, [1, 6], **q)
        b.add_operator(op, [x, axes], [y], keep_dims=False)
        outputs.append(y)
    idx = b.add_tensor([1, 4, 6], np.int32)
    b.add_operator("ARG_MIN", [x, b.add_tensor(**i32_const([2]))], [idx], output_type=schema.TensorType.INT32)
    probs = act(b, [1, 6], scale=1.0 / 256, zero_point=-128)
    b.add_operator("SOFTMAX", [outputs[0]], [probs], beta=0.3)
    logp = act(b, [1, 6], **LOG_SOFTMAX_Q)
    b.add_operator("LOG_SOFTMAX", [outputs[1]], [logp])
    return b.build([x], [*outputs, idx, probs, logp])


def test_reduce_graph(tmp_path):
    check(tmp_path, reduce_graph(), min_distinct=2)


@pytest.mark.parametrize("model", [reduce_graph, lambda: float_end_model("LOG_SOFTMAX", 2)], ids=["int8", "float_end"])
def test_reduce_kernels_build_for_cortex_m(tmp_path, model):
    """The family's C builds with -Wall -Werror for Cortex-M7 (float ends only call expf/logf)."""
    path = tmp_path / "model.tflite"
    path.write_bytes(model())
    out = tvm_tinyml.build(str(path), target="stm32f746").export(tmp_path / "out")
    command = [ARM_GCC, *ARM_FLAGS["cortex-m7"], "-O2", "-Wall", "-Werror", "-c", str(out / "model.c"), "-o", str(tmp_path / "model.o")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    symbols = subprocess.run(["arm-none-eabi-nm", str(tmp_path / "model.o")], capture_output=True, text=True, timeout=60).stdout
    undefined = {line.split()[-1] for line in symbols.splitlines() if line.split()[0] == "U"}
    assert undefined <= {"memcpy", "memset", "expf", "logf"}, undefined


@pytest.mark.parametrize("model", [reduce_graph, lambda: float_end_model("LOG_SOFTMAX", 2)], ids=["int8", "float_end"])
def test_reduce_family_on_qemu_m7(tmp_path, model):
    """On the emulated Cortex-M7 too (newlib's expf/logf agree with glibc's on its DP FPU build)."""
    path = tmp_path / "model.tflite"
    path.write_bytes(model())
    result = run_on_board(str(path), "qemu-m7", inputs=3)
    assert result.bit_exact and result.max_abs_diff == 0, result


def test_arg_max_int64_axis_is_unsupported(tmp_path):
    b = ModelBuilder()
    x = act(b, [1, 10])
    y = b.add_tensor([1], np.int32)
    b.add_operator("ARG_MAX", [x, b.add_tensor([1], np.int64, data=np.array([1]))], [y], output_type=schema.TensorType.INT32)
    with pytest.raises(UnsupportedOperatorError, match="ARG_MAX with an int64 axis"):
        check(tmp_path, b.build([x], [y]))


# ---------------------------------------------------------------- overlap rules, replayed


@settings(max_examples=60, deadline=None)
@given(
    op=st.sampled_from(["sum", "reduce_max", "reduce_min", "log_softmax"]),
    shape=st.lists(st.integers(1, 5), min_size=1, max_size=4),
    data=st.data(),
)
def test_reduce_overlap_rules_are_safe_and_tight(op, shape, data):
    """The family's overlap rules (tvm_tinyml/overlap.py) against a brute-force replay."""
    shape = tuple(shape)
    if op == "log_softmax":
        attrs, out_shape = {}, shape
    else:
        axes = sorted(data.draw(st.sets(st.integers(0, len(shape) - 1), min_size=1)))
        attrs, out_shape = {"axes": axes}, tuple(1 if a in axes else d for a, d in enumerate(shape))
    delta = max_overlap_delta(op, attrs, 0, [shape], 1, out_shape, 1)
    trace = kernel_trace(op, attrs, [shape], out_shape, 0)
    in_size, out_size = int(np.prod(shape)), int(np.prod(out_shape))
    assert overlap_is_safe(trace, delta, in_size)
    assert delta > 0 or delta == max(d for d in range(-out_size, 1) if overlap_is_safe(trace, d, in_size))


def test_overlapping_reductions_in_a_chain(tmp_path):
    """conv -> REDUCE_MIN -> conv -> LOG_SOFTMAX -> conv, planned with the family's overlap rules
    (REDUCE_MIN's output lands on its input) and still bit-exact."""
    b = ModelBuilder()
    x = act(b, [1, 6, 6, 3])
    y, _ = add_conv(b, x, [1, 6, 6, 3], 8, kernel=3, seed=41, out_q=IN_Q)
    m = act(b, [1, 6, 1, 8])
    b.add_operator("REDUCE_MIN", [y, b.add_tensor(**i32_const([2]))], [m], keep_dims=True)
    z, _ = add_conv(b, m, [1, 6, 1, 8], 8, kernel=1, seed=42, out_q=dict(scale=0.1, zero_point=0))
    logp = act(b, [1, 6, 1, 8], **LOG_SOFTMAX_Q)
    b.add_operator("LOG_SOFTMAX", [z], [logp])
    w, _ = add_conv(b, logp, [1, 6, 1, 8], 4, kernel=1, seed=43, in_scale=LOG_SOFTMAX_Q["scale"])
    artifact = check(tmp_path, b.build([x], [w]))
    tensors = artifact.memory.tensors
    reduced = next(i for i, t in enumerate(tensors) if t["op"] == "reduce_min")
    source, result = tensors[reduced - 1], tensors[reduced]
    assert source["op"] == "conv2d"
    assert result["offset"] < source["offset"] + source["bytes"] and source["offset"] < result["offset"] + result["bytes"]
