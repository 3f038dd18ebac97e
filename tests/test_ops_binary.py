"""Binary elementwise int8 ops bit-exact against TFLite Micro (family: binary).

ADD, SUB, MUL, MAXIMUM, MINIMUM and SQUARED_DIFFERENCE, each with two activations, with an
activation and a constant of any broadcastable shape (a 0-d or one-element scalar included) on
either side, broadcasting at ranks 1 to 5, every fused activation the op's options carry, and
inside small graphs (conv -> op -> conv, a MobileNetV3 squeeze-excite block). Every model runs
through the generated C and through TFLM on seeded random inputs (`test_ops.check`), outputs
compared bit for bit and required to take several distinct values.
"""

from __future__ import annotations

import numpy as np
import pytest

from test_ops import IN_Q, I8, act, add_conv, check, rng
from tflite_builder import ModelBuilder
from tvm_tinyml import quant_params as qp
from tvm_tinyml.errors import UnsupportedOperatorError
from tvm_tinyml.overlap import last_reader

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
    with pytest.raises(UnsupportedOperatorError, match="ADD|add.*two constants"):
        check(tmp_path, b.build([x], [z]))


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
    w = add_binary(b, op, z, y, [1, 6, 6, 6], out_q=dict(scale=0.3, zero_point=-20) if op == "SQUARED_DIFFERENCE" else None)
    out, _ = add_conv(b, w, [1, 6, 6, 6], 5, kernel=3, seed=13, in_scale=OUT_Q[op]["scale"])
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


# ---------------------------------------------------------------- memory overlap rule


@pytest.mark.parametrize("op", ["sub", "maximum", "minimum", "squared_difference"])
def test_overlap_rule_matches_add(op):
    """The new kernels share ADD's loop, so they get its streaming rule, for either operand."""
    shapes = [(1, 4, 4, 6), (1, 1, 1, 6)]
    for index in (0, 1):
        np.testing.assert_array_equal(last_reader(op, {}, index, shapes, (1, 4, 4, 6)),
                                      last_reader("add", {}, index, shapes, (1, 4, 4, 6)))
