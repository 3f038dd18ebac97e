"""Bit-exactness against TFLite Micro of the int8 activations (RELU family, LEAKY_RELU, PRELU,
LOGISTIC, HARD_SWISH, TANH, ELU, RSQRT) and of RESIZE_BILINEAR.

Unary activations are functions of one int8 value, so besides the random inputs of
`test_ops.check` every test feeds each of the 256 int8 values once (`check_every_value`).
Options are swept: quantization (fine/coarse scales, extreme zero points), alpha values
(fractional, > 1, negative, zero), alpha shapes and broadcasting, resize modes and ratios.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

import tvm_tinyml
import tvm_tinyml.frontend
from replay import kernel_trace, overlap_is_safe
from test_memory_planner import assert_overlaps_replay_safely
from test_quantize_realize import call_constants, kernel_calls, kernel_ops, realize
from test_ops import I8, IN_Q, acc_out_scale, act, add_conv, check, i32_const, int8_data, single, weight_scales
from tflite_builder import ModelBuilder, run_tflm
from tvm_tinyml.errors import UnsupportedOperatorError
from tvm_tinyml.overlap import max_overlap_delta
from tvm_tinyml.run import run_on_board

SHAPE = [1, 4, 8, 8]  # 256 elements: every int8 value once
QUANTS = [
    dict(scale=0.05, zero_point=-7),
    dict(scale=0.004, zero_point=40),
    dict(scale=0.3, zero_point=-128),
    dict(scale=0.02, zero_point=100),
]
QUANT_IDS = ["mid", "fine", "coarse_zp_min", "zp_high"]


def every_value(shape, low: int = -128, seed: int = 0) -> np.ndarray:
    """Every int8 value from `low` up (cycled to fill `shape`), in a seeded random order."""
    values = np.arange(low, 128)
    values = np.resize(values, int(np.prod(shape)))
    return np.random.default_rng(seed).permutation(values).astype(I8).reshape(shape)


def check_every_value(tmp_path, model: bytes, low: int = -128, min_distinct: int = 8, random: bool = True):
    """`check` (random inputs) plus one input holding every int8 value >= `low`; extra inputs
    (e.g. a PRELU alpha activation) get random values. Degeneracy is judged on the latter
    (`min_distinct`): a saturating quantization may leave few values in a random sample."""
    path = tmp_path / "every.tflite"
    path.write_bytes(model)
    artifact = check(tmp_path, model, min_distinct=2) if random else tvm_tinyml.build(str(path), target="host")
    specs = artifact.metadata["inputs"]
    xs = [every_value(specs[0]["shape"], low)] + [int8_data(s["shape"], 7 + j) for j, s in enumerate(specs[1:])]
    (ref,) = run_tflm(model, xs)
    (ours,) = artifact.run_host(xs)
    assert len(np.unique(ref)) >= min_distinct, f"degenerate reference: {np.unique(ref)}"
    np.testing.assert_array_equal(ours.reshape(ref.shape), ref)
    return artifact


def unary(op: str, in_q: dict, out_q: dict, shape=SHAPE, **options) -> bytes:
    b = ModelBuilder()
    x, y = act(b, shape, **in_q), act(b, shape, **out_q)
    b.add_operator(op, [x], [y], **options)
    return b.build([x], [y])


# ---------------------------------------------------------------- RELU family


RELU_OUT = [dict(scale=0.05, zero_point=-7), dict(scale=0.01, zero_point=-100)]


@pytest.mark.parametrize("in_q", QUANTS, ids=QUANT_IDS)
@pytest.mark.parametrize("out_q", RELU_OUT, ids=["same", "fine"])
def test_relu_every_value(tmp_path, in_q, out_q):
    """RELU requantizes with the input/output multiplier and clamps at the output zero."""
    check_every_value(tmp_path, unary("RELU", in_q, out_q), min_distinct=4)


@pytest.mark.parametrize("in_q", [QUANTS[0], QUANTS[2], dict(scale=0.03, zero_point=-100)], ids=["mid", "coarse", "wide"])
@pytest.mark.parametrize("out_q", RELU_OUT, ids=["same", "other"])
def test_relu6_every_value(tmp_path, in_q, out_q):
    """RELU6 clamps raw values to [zp, q(6.0)] of the input, ignoring the output quantization
    (TFLM requires q(6.0) to fit in int8, so the input quantizations here keep it inside)."""
    check_every_value(tmp_path, unary("RELU6", in_q, out_q), min_distinct=4)


@pytest.mark.parametrize("op", ["RELU_N1_TO_1", "RELU_0_TO_1"])
def test_relu_without_tflm_kernel_is_refused(tmp_path, op):
    """TFLite Micro has no kernel for these (no bit-exact reference): a clean refusal."""
    model = unary(op, IN_Q, IN_Q)
    with pytest.raises(RuntimeError):
        run_tflm(model, [int8_data(SHAPE, 0)])
    path = tmp_path / "m.tflite"
    path.write_bytes(model)
    with pytest.raises(UnsupportedOperatorError, match=f"{op}.*TFLite Micro has no kernel"):
        tvm_tinyml.build(str(path), target="host")


# ---------------------------------------------------------------- LEAKY_RELU


@pytest.mark.parametrize("alpha", [0.2, 0.01, 1.5, -0.3, 0.0])
def test_leaky_relu_alpha(tmp_path, alpha):
    check_every_value(tmp_path, unary("LEAKY_RELU", IN_Q, dict(scale=0.03, zero_point=-20), alpha=alpha))


@pytest.mark.parametrize("in_q", QUANTS, ids=QUANT_IDS)
@pytest.mark.parametrize("out_q", [dict(scale=0.05, zero_point=-7), dict(scale=0.1, zero_point=60)], ids=["a", "b"])
def test_leaky_relu_quantization(tmp_path, in_q, out_q):
    check_every_value(tmp_path, unary("LEAKY_RELU", in_q, out_q, alpha=0.1), min_distinct=4)


# Scales whose float32 quotient and double quotient quantize to multipliers giving different
# unsaturated outputs: they pin which arithmetic the TFLM build uses (double).
MULTIPLIER_SENSITIVE = [(0.012943156063556671, 0.008866259828209877, -57),
                        (0.09300907701253891, 0.1768546998500824, -76),
                        (0.0687461644411087, 0.07490961253643036, 30)]


@pytest.mark.parametrize("op, options", [("RELU", {}), ("LEAKY_RELU", {"alpha": 0.2})], ids=["relu", "leaky"])
@pytest.mark.parametrize("s_in, s_out, zp", MULTIPLIER_SENSITIVE, ids=["a", "b", "c"])
def test_identity_multiplier_precision(tmp_path, op, options, s_in, s_out, zp):
    model = unary(op, dict(scale=s_in, zero_point=zp), dict(scale=s_out, zero_point=-128), **options)
    check_every_value(tmp_path, model)


# ---------------------------------------------------------------- PRELU


def prelu_model(x_shape, alpha_shape, alpha_q=dict(scale=0.02, zero_point=3), out_q=dict(scale=0.03, zero_point=-20),
                alpha_const: bool = True, in_q=IN_Q, seed: int = 0) -> bytes:
    b = ModelBuilder()
    x = act(b, x_shape, **in_q)
    data = np.random.default_rng(seed).integers(-128, 128, alpha_shape) if alpha_const else None
    alpha = b.add_tensor(alpha_shape, I8, **alpha_q, data=data)
    y = act(b, x_shape, **out_q)
    b.add_operator("PRELU", [x, alpha], [y])
    return b.build([x] if alpha_const else [x, alpha], [y])


@pytest.mark.parametrize("alpha_shape", [[8], [1, 1, 8], [1, 1, 1, 8], [4, 8, 8], [8, 1], [1]],
                         ids=["C", "11C", "111C", "HWC", "W1", "scalar"])
def test_prelu_alpha_broadcast(tmp_path, alpha_shape):
    check_every_value(tmp_path, prelu_model(SHAPE, alpha_shape))


@pytest.mark.parametrize("alpha_q", [dict(scale=0.02, zero_point=3), dict(scale=0.004, zero_point=-128),
                                     dict(scale=0.1, zero_point=0)], ids=["a", "b", "c"])
@pytest.mark.parametrize("in_q", QUANTS[:3], ids=QUANT_IDS[:3])
def test_prelu_quantization(tmp_path, alpha_q, in_q):
    check_every_value(tmp_path, prelu_model(SHAPE, [1, 1, 8], alpha_q=alpha_q, in_q=in_q), min_distinct=4)


@pytest.mark.parametrize("alpha_shape", [SHAPE, [1, 1, 8]], ids=["same", "broadcast"])
def test_prelu_alpha_activation(tmp_path, alpha_shape):
    """TFLM accepts a non-constant alpha: a second int8 graph input."""
    check_every_value(tmp_path, prelu_model(SHAPE, alpha_shape, alpha_const=False))


def test_prelu_per_channel_alpha_is_refused(tmp_path):
    model = prelu_model(SHAPE, [1, 1, 8], alpha_q=dict(scale=[0.01 * (i + 1) for i in range(8)], zero_point=0,
                                                       quantized_dimension=2))
    path = tmp_path / "m.tflite"
    path.write_bytes(model)
    with pytest.raises(UnsupportedOperatorError, match="PRELU with a per-channel quantized alpha"):
        tvm_tinyml.build(str(path), target="host")


# ---------------------------------------------------------------- LOGISTIC, HARD_SWISH, TANH


@pytest.mark.parametrize("in_q", QUANTS, ids=QUANT_IDS)
def test_logistic_every_value(tmp_path, in_q):
    check_every_value(tmp_path, unary("LOGISTIC", in_q, dict(scale=1 / 256, zero_point=-128)), min_distinct=4)


def test_logistic_ignores_output_scale_like_tflm(tmp_path):
    """TFLM's int8 LOGISTIC checks only the output zero point (-128) and writes raw Q0.8."""
    check_every_value(tmp_path, unary("LOGISTIC", IN_Q, dict(scale=0.01, zero_point=-128)))


def test_logistic_other_output_zero_point_is_refused(tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(unary("LOGISTIC", IN_Q, dict(scale=1 / 256, zero_point=0)))
    with pytest.raises(UnsupportedOperatorError, match="logistic needs output zero point -128"):
        tvm_tinyml.build(str(path), target="host")


@pytest.mark.parametrize("in_q", QUANTS, ids=QUANT_IDS)
@pytest.mark.parametrize("out_q", [dict(scale=0.04, zero_point=-60), dict(scale=0.02, zero_point=-120)], ids=["a", "b"])
def test_hard_swish_every_value(tmp_path, in_q, out_q):
    check_every_value(tmp_path, unary("HARD_SWISH", in_q, out_q), min_distinct=4)


@pytest.mark.parametrize("in_q", QUANTS + [dict(scale=0.001, zero_point=0)], ids=QUANT_IDS + ["tiny"])
def test_tanh(tmp_path, in_q):
    check_every_value(tmp_path, unary("TANH", in_q, dict(scale=1 / 128, zero_point=0)), min_distinct=4)


def test_tanh_ignores_output_quantization_like_tflm(tmp_path):
    """TFLM's int8 TANH writes raw Q0.7 whatever the output tensor says; so do we."""
    check_every_value(tmp_path, unary("TANH", IN_Q, dict(scale=0.05, zero_point=10)))


# ---------------------------------------------------------------- ELU, RSQRT (lookup tables)


@pytest.mark.parametrize("in_q", QUANTS, ids=QUANT_IDS)
@pytest.mark.parametrize("out_q", [dict(scale=0.03, zero_point=-20), dict(scale=0.008, zero_point=-128)], ids=["a", "b"])
def test_elu(tmp_path, in_q, out_q):
    check_every_value(tmp_path, unary("ELU", in_q, out_q), min_distinct=4)


@pytest.mark.parametrize("in_q, out_q", [
    (dict(scale=0.05, zero_point=-128), dict(scale=0.03, zero_point=-100)),
    (dict(scale=0.002, zero_point=-128), dict(scale=0.2, zero_point=-128)),
    (dict(scale=1.5, zero_point=-128), dict(scale=0.004, zero_point=-128)),
    (dict(scale=0.01, zero_point=20), dict(scale=0.05, zero_point=0)),
])
def test_rsqrt(tmp_path, in_q, out_q):
    """TFLM fails on inputs below the zero point (negative reals), so only those >= zp are fed."""
    check_every_value(tmp_path, unary("RSQRT", in_q, out_q), low=in_q["zero_point"], min_distinct=4, random=False)


# ---------------------------------------------------------------- RESIZE_BILINEAR


@pytest.mark.parametrize("size_in, size_out", [((4, 4), (8, 8)), ((3, 5), (7, 9)), ((6, 8), (4, 5)),
                                               ((5, 5), (5, 5)), ((1, 4), (3, 8)), ((4, 6), (1, 1))])
@pytest.mark.parametrize("align_corners, half_pixel", [(False, False), (True, False), (False, True)])
def test_resize_bilinear(tmp_path, size_in, size_out, align_corners, half_pixel):
    model = single("RESIZE_BILINEAR", [1, *size_in, 3], [1, *size_out, 3], consts=[i32_const(size_out)],
                   align_corners=align_corners, half_pixel_centers=half_pixel)
    check(tmp_path, model, min_distinct=1 if size_out == (1, 1) else 4)


def test_resize_bilinear_batch_and_requantized_output(tmp_path):
    """Batch 2, and an output quantization different from the input's: TFLM interpolates the
    raw values and ignores both, so do we."""
    model = single("RESIZE_BILINEAR", [2, 3, 4, 5], [2, 6, 7, 5], out_q=dict(scale=0.02, zero_point=30),
                   consts=[i32_const([6, 7])], half_pixel_centers=True)
    check(tmp_path, model)


def test_resize_bilinear_align_and_half_pixel_is_refused(tmp_path):
    model = single("RESIZE_BILINEAR", [1, 4, 4, 3], [1, 8, 8, 3], consts=[i32_const([8, 8])],
                   align_corners=True, half_pixel_centers=True)
    path = tmp_path / "m.tflite"
    path.write_bytes(model)
    with pytest.raises(UnsupportedOperatorError, match="align_corners and half_pixel_centers"):
        tvm_tinyml.build(str(path), target="host")


# ---------------------------------------------------------------- in small graphs


def test_conv_prelu_conv(tmp_path):
    """Palm-detection style: CONV_2D -> PRELU (per-channel [1, 1, C] alpha) -> CONV_2D."""
    b = ModelBuilder()
    x = act(b, [1, 8, 8, 3])
    y, shape = add_conv(b, x, [1, 8, 8, 3], 8, seed=61)
    alpha = b.add_tensor([1, 1, 8], I8, scale=0.02, zero_point=0, data=np.arange(-60, 60, 15))
    p = act(b, shape, scale=0.04, zero_point=-16)
    b.add_operator("PRELU", [y, alpha], [p])
    z, _ = add_conv(b, p, shape, 4, kernel=1, seed=62, in_scale=0.04)
    check(tmp_path, b.build([x], [z]))


def test_chain_of_activations_between_convs(tmp_path):
    """CONV -> LEAKY_RELU -> ELU -> TANH -> CONV: every kernel reads the previous one's output;
    the memory plan's overlaps are replayed."""
    b = ModelBuilder()
    x = act(b, [1, 8, 8, 3])
    y, shape = add_conv(b, x, [1, 8, 8, 3], 8, seed=71)
    h1 = act(b, shape, scale=0.03, zero_point=-30)
    b.add_operator("LEAKY_RELU", [y], [h1], alpha=0.2)
    h2 = act(b, shape, scale=0.02, zero_point=-50)
    b.add_operator("ELU", [h1], [h2])
    h3 = act(b, shape, scale=1 / 128, zero_point=0)
    b.add_operator("TANH", [h2], [h3])
    z, _ = add_conv(b, h3, shape, 4, kernel=1, seed=72, in_scale=1 / 128)
    artifact = check(tmp_path, b.build([x], [z]))
    assert assert_overlaps_replay_safely(artifact.graph, artifact.plan) > 0  # some kernel did share bytes


def test_hard_swish_logistic_between_convs(tmp_path):
    """CONV -> HARD_SWISH -> LOGISTIC -> CONV, the plan's overlaps replayed."""
    b = ModelBuilder()
    x = act(b, [1, 8, 8, 3])
    y, shape = add_conv(b, x, [1, 8, 8, 3], 8, seed=75)
    h = act(b, shape, scale=0.03, zero_point=-40)
    b.add_operator("HARD_SWISH", [y], [h])
    g = act(b, shape, scale=1 / 256, zero_point=-128)
    b.add_operator("LOGISTIC", [h], [g])
    z, _ = add_conv(b, g, shape, 4, kernel=1, seed=76, in_scale=1 / 256)
    artifact = check(tmp_path, b.build([x], [z]))
    assert assert_overlaps_replay_safely(artifact.graph, artifact.plan) > 0  # some kernel did share bytes


def test_upsample_add_conv(tmp_path):
    """Feature-pyramid style: CONV (stride 2) -> RESIZE_BILINEAR x2 -> ADD with the input's
    CONV branch -> PRELU -> CONV."""
    b = ModelBuilder()
    x = act(b, [1, 8, 8, 3])
    small_q = dict(scale=acc_out_scale(IN_Q["scale"], weight_scales(6, 82), 27), zero_point=5)
    small, _ = add_conv(b, x, [1, 8, 8, 3], 6, stride=2, seed=81, out_q=small_q)
    up = act(b, [1, 8, 8, 6], **small_q)
    size = b.add_tensor([2], np.int32, data=np.array([8, 8]))
    b.add_operator("RESIZE_BILINEAR", [small, size], [up], half_pixel_centers=True)
    big, shape = add_conv(b, x, [1, 8, 8, 3], 6, seed=82)
    s = act(b, shape, scale=0.06, zero_point=4)
    b.add_operator("ADD", [up, big], [s])
    alpha = b.add_tensor([6], I8, scale=0.01, zero_point=-5, data=np.arange(-30, 30, 10))
    p = act(b, shape, scale=0.05, zero_point=-10)
    b.add_operator("PRELU", [s, alpha], [p])
    z, _ = add_conv(b, p, shape, 4, kernel=1, seed=83, in_scale=0.05)
    artifact = check(tmp_path, b.build([x], [z]))
    assert assert_overlaps_replay_safely(artifact.graph, artifact.plan) > 0  # some kernel did share bytes


# ---------------------------------------------------------------- overlap rules, replayed


@pytest.mark.parametrize("op", ["leaky_relu", "tanh", "lookup", "logistic", "hard_swish"])
def test_unary_overlap_rule_is_safe_and_tight(op):
    shape = (1, 3, 4, 5)
    size = int(np.prod(shape))
    delta = max_overlap_delta(op, {}, 0, [shape], 1, shape, 1)
    trace = kernel_trace(op, {}, [shape], shape, 0)
    assert overlap_is_safe(trace, delta, size)
    assert not overlap_is_safe(trace, delta + 1, size)


@pytest.mark.parametrize("alpha_shape", [(1, 3, 4, 5), (5,), (4, 1)])
@pytest.mark.parametrize("index", [0, 1])
def test_prelu_overlap_rule_is_safe(alpha_shape, index):
    shapes = [(1, 3, 4, 5), alpha_shape]
    out = shapes[0]
    delta = max_overlap_delta("prelu", {}, index, shapes, 1, out, 1)
    trace = kernel_trace("prelu", {}, shapes, out, index)
    assert overlap_is_safe(trace, delta, int(np.prod(shapes[index])))


def test_resize_bilinear_offers_no_overlap():
    assert max_overlap_delta("resize_bilinear", {}, 0, [(1, 4, 4, 3)], 1, (1, 8, 8, 3), 1) is None


# ---------------------------------------------------------------- on Cortex-M


def every_op_model() -> bytes:
    """CONV -> PRELU -> LEAKY_RELU -> ELU -> TANH -> RESIZE_BILINEAR -> CONV, plus an RSQRT
    output of a RELU (non-negative reals, so TFLM accepts every value)."""
    b = ModelBuilder()
    x = act(b, [1, 6, 6, 3])
    y, shape = add_conv(b, x, [1, 6, 6, 3], 8, seed=91)
    alpha = b.add_tensor([1, 1, 8], I8, scale=0.02, zero_point=0, data=np.arange(-60, 60, 15))
    chain = [("PRELU", dict(scale=0.04, zero_point=-16), {}), ("LEAKY_RELU", dict(scale=0.03, zero_point=-30), {"alpha": 0.3}),
             ("ELU", dict(scale=0.02, zero_point=-50), {}), ("TANH", dict(scale=1 / 128, zero_point=0), {})]
    for op, out_q, options in chain:
        h = act(b, shape, **out_q)
        b.add_operator(op, [y, alpha] if op == "PRELU" else [y], [h], **options)
        y = h
    up_shape = [1, 11, 11, 8]
    up = act(b, up_shape, scale=1 / 128, zero_point=0)
    b.add_operator("RESIZE_BILINEAR", [y, b.add_tensor([2], np.int32, data=np.array([11, 11]))], [up], align_corners=True)
    z, _ = add_conv(b, up, up_shape, 4, kernel=1, seed=92, in_scale=1 / 128)
    r = act(b, up_shape, scale=0.01, zero_point=-128)
    b.add_operator("RELU", [up], [r])
    s = act(b, up_shape, scale=0.1, zero_point=-128)
    b.add_operator("RSQRT", [r], [s])
    return b.build([x], [z, s])


def test_every_op_graph_on_host(tmp_path):
    check(tmp_path, every_op_model())


def test_every_op_graph_builds_for_cortex_m_without_helpers(tmp_path):
    """-Wall -Werror with arm-none-eabi-gcc, and no libgcc call."""
    path = tmp_path / "every.tflite"
    path.write_bytes(every_op_model())
    out = tvm_tinyml.build(str(path), target="stm32f746").export(tmp_path / "c")
    obj = tmp_path / "model.o"
    command = ["arm-none-eabi-gcc", "-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-d16", "-O2",
               "-Wall", "-Werror", "-c", str(out / "every.c"), "-o", str(obj)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    symbols = subprocess.run(["arm-none-eabi-nm", "-u", str(obj)], capture_output=True, text=True, timeout=60).stdout
    assert set(symbols.split()) - {"U"} <= {"memcpy", "memset"}, symbols


def test_every_op_graph_on_qemu_m7(tmp_path):
    path = tmp_path / "every.tflite"
    path.write_bytes(every_op_model())
    result = run_on_board(str(path), "qemu-m7", inputs=2)
    assert result.bit_exact and result.passed, result


# ---------------------------------------------------------------- structure after QuantizeRealize


def test_every_op_graph_realizes_to_one_integer_kernel_per_op(tmp_path):
    """Each activation is one int8 kernel; PRELU keeps its [1, 1, C] alpha (not broadcast to
    the activation's size), ELU and RSQRT carry a 256-entry int8 table."""
    path = tmp_path / "every.tflite"
    path.write_bytes(every_op_model())
    mod = realize(tvm_tinyml.frontend.from_tflite(str(path)))
    ops = kernel_ops(mod)
    assert ops[:6] == ["conv2d", "prelu", "leaky_relu", "lookup", "tanh", "resize_bilinear"]
    assert sorted(ops[6:]) == ["conv2d", "lookup", "requantize"]  # the two branches after the resize
    for param in mod["main"].params:
        assert param.ty.dtype == "int8"
    constants = {op: call_constants(call) for op, (_, call) in zip(kernel_ops(mod), kernel_calls(mod))}
    assert [c.shape for c in constants["prelu"]] == [(1, 1, 8)]
    assert [(c.shape, c.dtype) for c in constants["lookup"]] == [((256,), np.int8)]
