"""Binary elementwise int8 ops bit-exact against TFLite Micro (family: binary).

ADD, SUB, MUL, MAXIMUM, MINIMUM and SQUARED_DIFFERENCE, each with two activations, with an
activation and a constant of any broadcastable shape (a 0-d or one-element scalar included) on
either side, broadcasting at ranks 1 to 6, every fused activation the op's options carry, and
inside small graphs (conv -> op -> conv, a MobileNetV3 squeeze-excite block); and PAD on any
axes, which the residual shortcuts next to these ops use. Every model runs
through the generated C and through TFLM on seeded random inputs (`test_ops.check`), outputs
compared bit for bit and required to take several distinct values.
"""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from tvm.script import ir as I
from tvm.script import relax as R

import tvm_tinyml

from replay import kernel_trace, overlap_is_safe
from test_models import ARM_FLAGS, ARM_GCC
from test_ops import IN_Q, I8, act, add_conv, check, rng
from test_quantize_realize import kernel_calls, kernel_ops, realize
from tflite_builder import ModelBuilder, run_tflm
from tvm_tinyml import quant_params as qp
from tvm_tinyml.errors import UnsupportedOperatorError
from tvm_tinyml.overlap import max_overlap_delta

FUSED = ("ADD", "SUB", "MUL")  # ops whose options carry a fused activation
OPS = (*FUSED, "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE")
LHS_Q = IN_Q
RHS_Q = dict(scale=0.03, zero_point=9)
# Output quantization per op, chosen so outputs spread over many int8 values.
OUT_Q = {
    "ADD": dict(scale=0.07, zero_point=-4),
    "SUB": dict(scale=0.07, zero_point=3),
    "MUL": dict(scale=0.09, zero_point=2),
    "MAXIMUM": dict(scale=0.04, zero_point=5),
    "MINIMUM": dict(scale=0.04, zero_point=5),
    "SQUARED_DIFFERENCE": dict(scale=0.2, zero_point=-128),
}


def operand(shape, q=RHS_Q, const: bool = False, seed: int = 0) -> dict:
    """An operand spec: add_tensor kwargs, with random int8 data if it is a constant."""
    spec = dict(shape=list(shape), dtype=I8, **q)
    if const:
        spec["data"] = rng(seed).integers(-128, 128, shape).astype(I8)
    return spec


def add_binary(b: ModelBuilder, op: str, lhs: int, rhs: int, out_shape, out_q=None, activation="NONE") -> int:
    """Append `op`(lhs, rhs) with output quantization `out_q` (default OUT_Q[op]); returns its output."""
    y = act(b, out_shape, **(out_q or OUT_Q[op]))
    options = dict(fused_activation_function=activation) if op in FUSED else {}
    b.add_operator(op, [lhs, rhs], [y], **options)
    return y


def make_binary(op: str, lhs: dict, rhs: dict, activation="NONE", out_q=None) -> bytes:
    """A one-op model; operands without `data` are graph inputs, in order."""
    b = ModelBuilder()
    tensors = [b.add_tensor(**spec) for spec in (lhs, rhs)]
    out_shape = list(np.broadcast_shapes(tuple(lhs["shape"]), tuple(rhs["shape"])))
    y = add_binary(b, op, *tensors, out_shape, out_q, activation)
    return b.build([t for t, spec in zip(tensors, (lhs, rhs)) if "data" not in spec], [y])


# ---------------------------------------------------------------- activation x activation

BROADCASTS = {
    "rank1": ([16], [16]),
    "rank2": ([3, 5], [3, 1]),
    "rank3": ([2, 1, 5], [1, 4, 1]),
    "rank4_same": ([1, 4, 4, 6], [1, 4, 4, 6]),
    "rank4_channel": ([1, 4, 4, 6], [1, 1, 1, 6]),
    "rank4_both": ([1, 1, 3, 6], [1, 4, 1, 1]),
    "rank4_vs_rank1": ([1, 3, 4, 5], [5]),
    "rank5": ([2, 3, 1, 4, 3], [1, 3, 2, 1, 3]),
    "rank6": ([2, 1, 3, 1, 2, 3], [1, 2, 1, 2, 1, 3]),
}


@pytest.mark.parametrize("shapes", sorted(BROADCASTS))
@pytest.mark.parametrize("op", OPS)
def test_two_activations(tmp_path, op, shapes):
    lhs_shape, rhs_shape = BROADCASTS[shapes]
    check(tmp_path, make_binary(op, operand(lhs_shape, LHS_Q), operand(rhs_shape)))


@pytest.mark.parametrize("activation", ["RELU", "RELU6", "RELU_N1_TO_1"])
@pytest.mark.parametrize("op", FUSED)
def test_fused_activation(tmp_path, op, activation):
    model = make_binary(op, operand([1, 4, 4, 6], LHS_Q), operand([1, 1, 1, 6]), activation)
    check(tmp_path, model)


@pytest.mark.parametrize("op", ["ADD", "SUB", "SQUARED_DIFFERENCE"])
def test_same_input_scales(tmp_path, op):
    """Equal input scales: the input multipliers are exactly 1/2 (a power-of-two edge case)."""
    q = dict(scale=0.05, zero_point=3)
    check(tmp_path, make_binary(op, operand([1, 4, 4, 6], q), operand([1, 4, 4, 6], q)))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("op", ["ADD", "SUB", "MUL", "SQUARED_DIFFERENCE"])
def test_random_scales(tmp_path, op, seed):
    """Random scales and zero points: the Prepare-time multipliers must match TFLM's for
    arbitrary ratios, not just round ones."""
    g = rng(500 + seed)
    s1, s2 = (float(v) for v in g.uniform(0.005, 0.2, 2))
    z1, z2, z_out = (int(v) for v in g.integers(-60, 60, 3))
    # an output scale near the result's natural scale, randomly off by up to 2x either way
    natural = {"ADD": max(s1, s2) * 2, "SUB": max(s1, s2) * 2, "MUL": s1 * s2 * 60, "SQUARED_DIFFERENCE": max(s1, s2) ** 2 * 200}[op]
    out_q = dict(scale=natural * float(2 ** g.uniform(-1, 1)), zero_point=-128 if op == "SQUARED_DIFFERENCE" else z_out)
    lhs, rhs = operand([1, 3, 4, 5], dict(scale=s1, zero_point=z1)), operand([1, 1, 4, 5], dict(scale=s2, zero_point=z2))
    check(tmp_path, make_binary(op, lhs, rhs, out_q=out_q))


# (op, lhs scale, rhs scale, output scale, output zero point). The SUB and SQUARED_DIFFERENCE
# scales were found by a search: there, multipliers computed from float32 ratios instead of
# double ones (the two readings of TFLM's Prepare) change a few of the 65536 outputs.
PAIR_CASES = {
    "sub_a": ("SUB", 0.0292352382093668, 0.1357717663049698, 0.3330093026161194, 1),
    "sub_b": ("SUB", 0.17278040945529938, 0.1786206066608429, 0.36227279901504517, 1),
    "add": ("ADD", 0.08388760685920715, 0.043710045516490936, 0.0951341837644577, 1),
    "mul": ("MUL", 0.05, 0.03, 0.09, 2),
    "squared_difference_a": ("SQUARED_DIFFERENCE", 0.14180587232112885, 0.06231522932648659, 3.9572954177856445, -128),
    "squared_difference_b": ("SQUARED_DIFFERENCE", 0.13566206395626068, 0.14435061812400818, 3.2387783527374268, -128),
}


@pytest.mark.parametrize("case", sorted(PAIR_CASES))
def test_every_input_pair(tmp_path, case):
    """All 256 x 256 int8 input pairs ([256, 1] x [1, 256]) against TFLM."""
    op, s1, s2, out_scale, out_zp = PAIR_CASES[case]
    lhs, rhs = operand([256, 1], dict(scale=s1, zero_point=3)), operand([1, 256], dict(scale=s2, zero_point=-5))
    model = make_binary(op, lhs, rhs, out_q=dict(scale=out_scale, zero_point=out_zp))
    path = tmp_path / "pairs.tflite"
    path.write_bytes(model)
    values = np.arange(-128, 128).astype(I8)
    xs = [values.reshape(256, 1), values.reshape(1, 256)]
    (ours,), (ref,) = tvm_tinyml.build(str(path), target="host").run_host(xs), run_tflm(model, xs)
    assert len(np.unique(ref)) > 50
    np.testing.assert_array_equal(ours.reshape(ref.shape), ref)


@pytest.mark.parametrize("op", ["ADD", "MUL", "SUB"])
def test_same_tensor_both_operands(tmp_path, op):
    """op(x, x): two reads of one activation (not SQUARED_DIFFERENCE's d * d pattern)."""
    b = ModelBuilder()
    x = act(b, [1, 4, 4, 6])
    y = add_binary(b, op, x, x, [1, 4, 4, 6], out_q=dict(scale=0.02, zero_point=-100) if op == "SUB" else None)
    check(tmp_path, b.build([x], [y]), min_distinct=1 if op == "SUB" else 4)


@pytest.mark.parametrize("op", ["MAXIMUM", "MINIMUM"])
def test_max_min_compare_raw_values(tmp_path, op):
    """TFLM compares raw int8 values whatever the scales; we must do the same."""
    lhs, rhs = operand([1, 5, 5, 4], dict(scale=0.2, zero_point=-30)), operand([1, 5, 5, 4], dict(scale=0.01, zero_point=40))
    check(tmp_path, make_binary(op, lhs, rhs, out_q=dict(scale=0.5, zero_point=0)))


@pytest.mark.parametrize("in_scales, out_q", [
    ((0.002, 0.003), dict(scale=0.001, zero_point=-128)),
    ((0.05, 0.2), dict(scale=4.0, zero_point=-128)),
], ids=["fine", "coarse"])
def test_squared_difference_scales(tmp_path, in_scales, out_q):
    """Small input scales with a fine output, and a coarse output (large right shift)."""
    lhs = operand([1, 4, 4, 6], dict(scale=in_scales[0], zero_point=-7))
    rhs = operand([1, 4, 4, 6], dict(scale=in_scales[1], zero_point=2))
    check(tmp_path, make_binary("SQUARED_DIFFERENCE", lhs, rhs, out_q=out_q))


# ---------------------------------------------------------------- activation x constant

CONST_SHAPES = {
    "full": [1, 4, 4, 6],
    "channel": [6],
    "channel_4d": [1, 1, 1, 6],
    "row": [1, 4, 1, 1],
    "one_element": [1],
    "scalar_0d": [],
}


@pytest.mark.parametrize("const_shape", sorted(CONST_SHAPES))
@pytest.mark.parametrize("const_side", ["rhs", "lhs"])
@pytest.mark.parametrize("op", OPS)
def test_constant_operand(tmp_path, op, const_side, const_shape):
    x = operand([1, 4, 4, 6], LHS_Q)
    c = operand(CONST_SHAPES[const_shape], const=True, seed=len(const_shape))
    lhs, rhs = (x, c) if const_side == "rhs" else (c, x)
    check(tmp_path, make_binary(op, lhs, rhs))


@pytest.mark.parametrize("op", FUSED)
def test_constant_operand_fused_relu6(tmp_path, op):
    x, c = operand([1, 4, 4, 6], LHS_Q), operand([1, 1, 1, 6], const=True, seed=3)
    check(tmp_path, make_binary(op, c, x, "RELU6"))


def test_constant_broadcast_to_larger_rank(tmp_path):
    """A constant of higher rank than the activation: the output takes the constant's rank."""
    x, c = operand([4, 6], LHS_Q), operand([2, 1, 4, 1], const=True, seed=5)
    check(tmp_path, make_binary("MUL", x, c))


def test_rank5_constant(tmp_path):
    x, c = operand([1, 2, 3, 4, 5], LHS_Q), operand([1, 2, 1, 1, 5], const=True, seed=6)
    check(tmp_path, make_binary("SUB", x, c))


def test_two_constants_are_rejected(tmp_path):
    """A binary op of two constants (TFLite's converter folds these) fails with one clean line."""
    b = ModelBuilder()
    x = act(b, [1, 4])
    c1, c2 = (b.add_tensor(**operand([1, 4], const=True, seed=s)) for s in (1, 2))
    y = add_binary(b, "ADD", c1, c2, [1, 4])
    z = add_binary(b, "ADD", x, y, [1, 4])
    with pytest.raises(UnsupportedOperatorError, match="quantized add of two constants is not supported"):
        check(tmp_path, b.build([x], [z]))


@pytest.mark.parametrize("op", ["ADD", "SUB"])
def test_output_scale_below_the_kernels_range_is_refused(tmp_path, op):
    """An output scale under 2^-19 x the input scales (the fuzzer's SUB(x, x), calibrated on zeros)
    is one clean line, not an assertion (TFLM's Prepare rejects it too)."""
    model = make_binary(op, operand([1, 4], LHS_Q), operand([1, 4]), out_q=dict(scale=4e-8, zero_point=0))
    with pytest.raises(UnsupportedOperatorError, match=f"ADD/SUB with output scale 4e-08 below 2\\^-19"):
        check(tmp_path, model)


def test_constant_becomes_an_int8_kernel_input():
    """QuantizeRealize hands a constant operand (here 0-d, on the left) to the kernel as an int8
    constant tensor of the same values (one element for a 0-d scalar), in operand order."""

    @I.ir_module
    class Before:
        @R.function
        def main(x: R.Tensor((1, 4, 4, 6), "int8")) -> R.Tensor((1, 4, 4, 6), "int8"):
            with R.dataflow():
                fc = R.dequantize(R.const(77, "int8"), R.const(0.01, "float32"), R.const(3, "int32"), out_dtype="float32", axis=0)
                fx = R.dequantize(x, R.const(0.05, "float32"), R.const(-7, "int32"), out_dtype="float32", axis=0)
                d = R.subtract(fc, fx)
                q = R.quantize(d, R.const(0.07, "float32"), R.const(3, "int32"), out_dtype="int8", axis=-1)
                R.output(q)
            return q

    after = realize(Before)
    assert kernel_ops(after) == ["sub"]
    (func, call), = kernel_calls(after)
    const, activation = call.args[1].fields
    assert activation.same_as(after["main"].params[0])
    assert const.value.numpy().dtype == np.int8 and const.value.numpy().tolist() == [77]
    params = qp.sub_params(0.01, 3, 0.05, -7, 0.07, 3, -128, 127)
    assert json.loads(str(func.attrs["tinyml.attrs"]))["params"] == list(params.values())


# ---------------------------------------------------------------- inside graphs


@pytest.mark.parametrize("op", OPS)
def test_between_convs(tmp_path, op):
    """conv -> op(activation, constant [C]) -> conv, and conv -> op(that, the first conv) -> conv."""
    b = ModelBuilder()
    shape = [1, 6, 6, 4]
    x = act(b, shape)
    y, _ = add_conv(b, x, shape, 6, kernel=3, seed=11, out_q=LHS_Q)
    c = b.add_tensor(**operand([6], const=True, seed=12))
    z = add_binary(b, op, y, c, [1, 6, 6, 6])
    w_q = dict(scale=0.3, zero_point=-20) if op == "SQUARED_DIFFERENCE" else OUT_Q[op]
    w = add_binary(b, op, z, y, [1, 6, 6, 6], out_q=w_q)
    out, _ = add_conv(b, w, [1, 6, 6, 6], 5, kernel=3, seed=13, in_scale=w_q["scale"])
    check(tmp_path, b.build([x], [out]))


def test_prelu_style_block(tmp_path):
    """FaceMesh's activation: conv -> MUL by a [1, 1, C] constant (alpha * x), both branches
    requantized (int8 QUANTIZE) to one scale, MAXIMUM, then a conv."""
    b = ModelBuilder()
    shape = [1, 5, 5, 8]
    x = act(b, shape)
    y, _ = add_conv(b, x, shape, 8, kernel=3, seed=51, out_q=LHS_Q)
    alpha = b.add_tensor(**operand([1, 1, 8], dict(scale=0.008, zero_point=0), const=True, seed=52))
    scaled = add_binary(b, "MUL", y, alpha, shape, out_q=dict(scale=0.045, zero_point=-11))
    common = dict(scale=0.055, zero_point=-28)
    branches = []
    for t in (y, scaled):
        r = act(b, shape, **common)
        b.add_operator("QUANTIZE", [t], [r])
        branches.append(r)
    m = add_binary(b, "MAXIMUM", *branches, shape, out_q=common)
    out, _ = add_conv(b, m, shape, 6, kernel=1, seed=53, in_scale=common["scale"])
    check(tmp_path, b.build([x], [out]))


@pytest.mark.parametrize("hw, channels", [(4, 8), (7, 16)])
def test_squeeze_excite_block(tmp_path, hw, channels):
    """MobileNetV3 squeeze-excite: MEAN -> CONV_2D+RELU6 (hard sigmoid) -> MUL by a 0-d int8
    scalar -> MUL [1,H,W,C] x [1,1,1,C] (the user's regression case)."""
    b = ModelBuilder()
    shape = [1, hw, hw, channels]
    x = act(b, shape)
    y, _ = add_conv(b, x, shape, channels, kernel=3, seed=21, out_q=LHS_Q)
    pooled_q = dict(scale=0.02, zero_point=-3)
    pooled = act(b, [1, 1, 1, channels], **pooled_q)
    b.add_operator("MEAN", [y, b.add_tensor([2], np.int32, data=np.array([1, 2]))], [pooled], keep_dims=True)
    gate_q = dict(scale=6.0 / 255, zero_point=-128)  # RELU6 output over the whole int8 range
    gate, _ = add_conv(b, pooled, [1, 1, 1, channels], channels, kernel=1, activation="RELU6", seed=22,
                       in_scale=pooled_q["scale"], out_q=gate_q)
    sixth = b.add_tensor([], I8, scale=1.0 / (6 * 127), zero_point=0, data=np.array(127))
    hard_sigmoid = act(b, [1, 1, 1, channels], scale=1.0 / 255, zero_point=-128)
    b.add_operator("MUL", [gate, sixth], [hard_sigmoid], fused_activation_function="NONE")
    out = add_binary(b, "MUL", y, hard_sigmoid, shape, out_q=dict(scale=0.03, zero_point=-2))
    check(tmp_path, b.build([x], [out]))


# ---------------------------------------------------------------- PAD on any axis (residual shortcuts)


@pytest.mark.parametrize("in_shape, pads", [
    ([1, 3, 3, 4], [[0, 0], [0, 0], [0, 0], [0, 4]]),
    ([1, 3, 3, 4], [[0, 0], [1, 0], [0, 2], [2, 1]]),
    ([2, 3, 4], [[1, 0], [0, 0], [3, 0]]),
    ([5, 6], [[0, 2], [1, 1]]),
    ([1, 2, 3, 2, 3], [[0, 0], [1, 0], [0, 1], [0, 0], [2, 2]]),
], ids=["channels", "spatial_and_channels", "rank3", "rank2", "rank5"])
@pytest.mark.parametrize("op", ["PAD", "PADV2"])
def test_pad_any_axis(tmp_path, op, in_shape, pads):
    b = ModelBuilder()
    x = act(b, in_shape)
    y = act(b, list(np.add(in_shape, np.sum(pads, axis=1))))
    inputs = [x, b.add_tensor([len(pads), 2], np.int32, data=np.array(pads))]
    if op == "PADV2":
        inputs.append(b.add_tensor([], I8, **IN_Q, data=np.array(40)))
    b.add_operator(op, inputs, [y])
    check(tmp_path, b.build([x], [y]))


def test_channel_pad_shortcut(tmp_path):
    """FaceMesh's downsampling residual: MAX_POOL_2D -> channel PAD -> ADD with a conv branch."""
    b = ModelBuilder()
    x = act(b, [1, 6, 6, 4])
    pooled = act(b, [1, 3, 3, 4])
    b.add_operator("MAX_POOL_2D", [x], [pooled], filter_height=2, filter_width=2, stride_h=2, stride_w=2, padding="VALID")
    shortcut = act(b, [1, 3, 3, 8])
    b.add_operator("PAD", [pooled, b.add_tensor([4, 2], np.int32, data=np.array([[0, 0], [0, 0], [0, 0], [0, 4]]))], [shortcut])
    branch, _ = add_conv(b, x, [1, 6, 6, 4], 8, kernel=3, stride=2, seed=31, out_q=RHS_Q)
    y = add_binary(b, "ADD", shortcut, branch, [1, 3, 3, 8])
    check(tmp_path, b.build([x], [y]))


def make_chain() -> bytes:
    """Every op of the family in one chain, constants (a 0-d one too) on both sides, then a channel PAD."""
    b = ModelBuilder()
    shape = [1, 4, 4, 6]
    x = act(b, shape)
    value = x
    for k, op in enumerate(OPS):
        const = b.add_tensor(**operand([] if k % 2 else [6], const=True, seed=40 + k))
        inputs = (value, const) if k % 2 else (const, value)
        value = add_binary(b, op, *inputs, shape, out_q=IN_Q)
        value = add_binary(b, op, value, x, shape, out_q=IN_Q)
    y = act(b, [1, 4, 4, 8])
    b.add_operator("PAD", [value, b.add_tensor([4, 2], np.int32, data=np.array([[0, 0], [0, 0], [0, 0], [1, 1]]))], [y])
    return b.build([x], [y])


def test_chain_of_every_op(tmp_path):
    check(tmp_path, make_chain())


@pytest.mark.parametrize("core", sorted(ARM_FLAGS))
def test_chain_c_builds_for_cortex_m(tmp_path, core):
    """The family's C helpers compile warning-free with arm-none-eabi-gcc -Wall -Werror."""
    path = tmp_path / "chain.tflite"
    path.write_bytes(make_chain())
    artifact = tvm_tinyml.build(str(path), target="stm32f746" if core == "cortex-m7" else "stm32f412")
    out = artifact.export(tmp_path / "out")
    command = [ARM_GCC, *ARM_FLAGS[core], "-O2", "-Wall", "-Werror", "-c", str(out / f"{artifact.name}.c"), "-o", str(tmp_path / "model.o")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stderr == "", result.stderr


# ---------------------------------------------------------------- memory overlap rule


@pytest.mark.parametrize("shapes", sorted(BROADCASTS))
@pytest.mark.parametrize("op", ["sub", "maximum", "minimum", "squared_difference"])
def test_overlap_rule_is_safe_and_tight_against_a_replay(op, shapes):
    """The new kernels stream their output like ADD: the overlap rule, for either operand, is
    safe and the largest safe offset at or below zero in a brute-force replay (tests/replay.py)."""
    in_shapes = [tuple(s) for s in BROADCASTS[shapes]]
    out_shape = tuple(np.broadcast_shapes(*in_shapes))
    out_size = int(np.prod(out_shape))
    for index, in_shape in enumerate(in_shapes):
        delta = max_overlap_delta(op, {}, index, in_shapes, 1, out_shape, 1)
        trace = kernel_trace(op, {}, in_shapes, out_shape, index)
        in_size = int(np.prod(in_shape))
        assert overlap_is_safe(trace, delta, in_size)
        assert delta > 0 or delta == max(d for d in range(-out_size, 1) if overlap_is_safe(trace, d, in_size))
