"""Per-operator bit-exactness of the generated C against TFLite Micro.

Every test builds a tiny int8 .tflite model with `tflite_builder`, compiles it with
`tvm_tinyml.build(path, target="host")`, runs a few seeded random int8 inputs through the C
(`Artifact.run_host`) and through TFLM, and requires identical outputs. Quantization
parameters are chosen so the reference output takes many distinct values (asserted), so a
wrong rounding or offset cannot hide behind saturation.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import tvm_tinyml
from tflite_builder import ModelBuilder, run_tflm
from tvm_tinyml.verify import verify

NUM_INPUTS = 5
IN_Q = dict(scale=0.05, zero_point=-7)  # input activations: real range about [-6, 6.7]
I8 = np.int8


# ---------------------------------------------------------------- helpers


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def int8_data(shape, seed: int) -> np.ndarray:
    return rng(seed).integers(-128, 128, shape).astype(I8)


def same_or_valid(size: int, kernel: int, stride: int, padding: str, dilation: int = 1) -> int:
    effective = (kernel - 1) * dilation + 1
    if padding == "SAME":
        return -(-size // stride)
    return -(-(size - effective + 1) // stride)


def weight_scales(channels: int, seed: int) -> np.ndarray:
    """Realistic per-channel filter scales in [0.001, 0.02]."""
    return rng(seed).uniform(0.001, 0.02, channels).astype(np.float32)


def acc_out_scale(in_scale: float, w_scales: np.ndarray, terms: int) -> float:
    """An output scale that puts a sum of `terms` random int8 products at a few dozen LSB std."""
    # uniform int8: std ~74; activations minus zero point and weights both about that wide.
    return float(in_scale * np.median(w_scales) * 74 * 74 * np.sqrt(terms) / 40)


def check(tmp_path: Path, model: bytes, name: str = "model", seed: int = 0, min_distinct: int = 4):
    """Build `model`, run NUM_INPUTS random input sets through C and TFLM, compare bit-exactly."""
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(model)
    artifact = tvm_tinyml.build(str(path), target="host")
    specs = artifact.metadata["inputs"]
    for k in range(NUM_INPUTS):
        xs = [int8_data(spec["shape"], 1000 * seed + 10 * k + j) for j, spec in enumerate(specs)]
        refs = run_tflm(model, xs)
        ours = artifact.run_host(xs)
        assert len(ours) == len(refs)
        for i, (o, r) in enumerate(zip(ours, refs)):
            assert o.dtype == r.dtype
            assert len(np.unique(r)) >= min(min_distinct, r.size), f"output {i} is degenerate: {np.unique(r)}"
            np.testing.assert_array_equal(o.reshape(r.shape), r, err_msg=f"output {i}, input set {k}")
    return artifact


def act(builder: ModelBuilder, shape, scale=IN_Q["scale"], zero_point=IN_Q["zero_point"], dtype=I8) -> int:
    return builder.add_tensor(shape, dtype, scale=scale, zero_point=zero_point)


def add_conv(b: ModelBuilder, x: int, in_shape, cout: int, *, kernel=3, stride=1, padding="SAME",
             activation="NONE", dilation=1, seed=0, out_q=None, in_scale=IN_Q["scale"]):
    """Append a per-channel int8 CONV_2D (weights OHWI, int32 bias) reading `x`; returns (y, shape)."""
    n, h, w, cin = in_shape
    g = rng(seed)
    w_scales = weight_scales(cout, seed + 1)
    weights = b.add_tensor([cout, kernel, kernel, cin], I8, scale=w_scales, zero_point=0,
                           data=g.integers(-127, 128, (cout, kernel, kernel, cin)))
    bias = b.add_tensor([cout], np.int32, scale=in_scale * w_scales, zero_point=0,
                        data=g.integers(-3000, 3000, cout))
    oh = same_or_valid(h, kernel, stride, padding, dilation)
    ow = same_or_valid(w, kernel, stride, padding, dilation)
    if out_q is None:
        out_q = dict(scale=acc_out_scale(in_scale, w_scales, kernel * kernel * cin), zero_point=5)
    y = act(b, [n, oh, ow, cout], **out_q)
    b.add_operator("CONV_2D", [x, weights, bias], [y], padding=padding, stride_h=stride, stride_w=stride,
                   dilation_h_factor=dilation, dilation_w_factor=dilation,
                   fused_activation_function=activation)
    return y, [n, oh, ow, cout]


def single(op: str, in_shape, out_shape, out_q=None, consts=(), **options) -> bytes:
    """One `op` on one int8 input (IN_Q) plus constant inputs `consts` (add_tensor kwargs)."""
    b = ModelBuilder()
    x = act(b, in_shape)
    extra = [b.add_tensor(**c) for c in consts]
    y = act(b, out_shape, **(out_q or IN_Q))
    b.add_operator(op, [x, *extra], [y], **options)
    return b.build([x], [y])


def i32_const(values) -> dict:
    values = np.asarray(values, np.int32)
    return dict(shape=list(values.shape), dtype=np.int32, data=values)


def padded(shape, pads) -> list[int]:
    """The shape after padding `pads` ([before, after] per axis)."""
    return [d + a + b for d, (a, b) in zip(shape, pads)]


def pad_then_conv(in_shape, pads, cout: int, **conv) -> bytes:
    """An explicit PAD (with the input zero point) feeding a VALID conv (`add_conv` options)."""
    b = ModelBuilder()
    x = act(b, in_shape)
    p = act(b, padded(in_shape, pads))
    b.add_operator("PAD", [x, b.add_tensor(**i32_const(pads))], [p])
    y, _ = add_conv(b, p, padded(in_shape, pads), cout, padding="VALID", **conv)
    return b.build([x], [y])


# ---------------------------------------------------------------- CONV_2D / DEPTHWISE_CONV_2D


@pytest.mark.parametrize("kernel, stride, padding, activation, cin, cout", [
    (3, 1, "SAME", "NONE", 4, 8),
    (3, 2, "SAME", "RELU", 4, 8),
    (3, 1, "VALID", "RELU6", 3, 5),
    (3, 2, "VALID", "NONE", 8, 4),
    (1, 1, "VALID", "NONE", 8, 16),
    (1, 2, "SAME", "RELU6", 4, 3),
    (3, 1, "SAME", "RELU", 1, 16),
    (1, 1, "VALID", "NONE", 1, 3),  # every reduction axis has extent 1
])
def test_conv2d(tmp_path, kernel, stride, padding, activation, cin, cout):
    b = ModelBuilder()
    shape = [1, 8, 8, cin]
    x = act(b, shape)
    y, _ = add_conv(b, x, shape, cout, kernel=kernel, stride=stride, padding=padding, activation=activation,
                    seed=kernel * 100 + stride * 10 + cout)
    check(tmp_path, b.build([x], [y]))


def test_conv2d_dilated(tmp_path):
    b = ModelBuilder()
    x = act(b, [1, 9, 9, 4])
    y, _ = add_conv(b, x, [1, 9, 9, 4], 6, kernel=3, padding="SAME", dilation=2, seed=7)
    check(tmp_path, b.build([x], [y]))


def test_conv2d_relu6_clamps_both_ends(tmp_path):
    """A narrow output scale so that RELU6's upper bound (6.0) lies inside the int8 range."""
    b = ModelBuilder()
    x = act(b, [1, 8, 8, 4])
    y, _ = add_conv(b, x, [1, 8, 8, 4], 8, activation="RELU6", seed=1,
                    out_q=dict(scale=0.03, zero_point=-100))
    check(tmp_path, b.build([x], [y]), min_distinct=8)


def make_depthwise(in_shape, multiplier, stride, padding, activation, seed=0) -> bytes:
    n, h, w, cin = in_shape
    cout = cin * multiplier
    g = rng(seed)
    b = ModelBuilder()
    x = act(b, in_shape)
    w_scales = weight_scales(cout, seed + 1)
    weights = b.add_tensor([1, 3, 3, cout], I8, scale=w_scales, zero_point=0, quantized_dimension=3,
                           data=g.integers(-127, 128, (1, 3, 3, cout)))
    bias = b.add_tensor([cout], np.int32, scale=IN_Q["scale"] * w_scales, zero_point=0,
                        data=g.integers(-3000, 3000, cout))
    oh, ow = same_or_valid(h, 3, stride, padding), same_or_valid(w, 3, stride, padding)
    out_scale = acc_out_scale(IN_Q["scale"], w_scales, 9)
    y = act(b, [n, oh, ow, cout], scale=out_scale, zero_point=-3)
    b.add_operator("DEPTHWISE_CONV_2D", [x, weights, bias], [y], padding=padding, stride_h=stride,
                   stride_w=stride, depth_multiplier=multiplier, fused_activation_function=activation)
    return b.build([x], [y])


@pytest.mark.parametrize("multiplier, stride, padding, activation", [
    (1, 1, "SAME", "NONE"),
    (1, 2, "SAME", "RELU6"),
    (1, 1, "VALID", "RELU6"),
    (2, 1, "SAME", "NONE"),
    (2, 2, "VALID", "RELU6"),
    (1, 1, "VALID", "NONE"),  # 1x1 window: reduction axes of extent 1
])
def test_depthwise_conv2d(tmp_path, multiplier, stride, padding, activation):
    check(tmp_path, make_depthwise([1, 8, 8, 4], multiplier, stride, padding, activation, seed=stride + 3 * multiplier))


# ---------------------------------------------------------------- FULLY_CONNECTED


def make_fully_connected(in_shape, units, *, with_bias=True, activation="NONE", per_channel=False, seed=0):
    depth = int(np.prod(in_shape[1:]))
    g = rng(seed)
    w_scale = weight_scales(units, seed + 1) if per_channel else np.float32(0.01)
    b = ModelBuilder()
    x = act(b, in_shape)
    weights = b.add_tensor([units, depth], I8, scale=w_scale, zero_point=0,
                           data=g.integers(-127, 128, (units, depth)))
    bias = -1
    if with_bias:
        bias = b.add_tensor([units], np.int32, scale=IN_Q["scale"] * w_scale, zero_point=0,
                            data=g.integers(-5000, 5000, units))
    out_scale = acc_out_scale(IN_Q["scale"], np.atleast_1d(w_scale), depth)
    y = act(b, [in_shape[0], units], scale=out_scale, zero_point=-10)
    b.add_operator("FULLY_CONNECTED", [x, weights, bias], [y], fused_activation_function=activation)
    return b.build([x], [y])


@pytest.mark.parametrize("in_shape", [[1, 32], [1, 2, 2, 8]], ids=["rank2", "rank4"])
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("activation", ["NONE", "RELU"])
def test_fully_connected(tmp_path, in_shape, with_bias, activation):
    """FULLY_CONNECTED flattens its input to [-1, K] (K = weights' second dimension)."""
    model = make_fully_connected(in_shape, 16, with_bias=with_bias, activation=activation, seed=len(in_shape) + with_bias)
    check(tmp_path, model, min_distinct=3)


def test_fully_connected_per_channel_batch(tmp_path):
    check(tmp_path, make_fully_connected([3, 24], 12, per_channel=True, seed=5))


# ---------------------------------------------------------------- ADD / MUL


BINARY_SHAPES = {
    "same": ([1, 4, 4, 6], [1, 4, 4, 6]),
    "bcast_channel": ([1, 4, 4, 6], [1, 1, 1, 6]),
    "bcast_spatial": ([1, 4, 4, 6], [1, 4, 4, 1]),
    "bcast_both": ([1, 1, 1, 6], [1, 4, 4, 1]),
}


def make_binary(op: str, lhs_shape, rhs_shape, q_lhs, q_rhs, q_out, activation="NONE") -> bytes:
    b = ModelBuilder()
    lhs, rhs = act(b, lhs_shape, **q_lhs), act(b, rhs_shape, **q_rhs)
    out_shape = list(np.broadcast_shapes(tuple(lhs_shape), tuple(rhs_shape)))
    y = act(b, out_shape, **q_out)
    b.add_operator(op, [lhs, rhs], [y], fused_activation_function=activation)
    return b.build([lhs, rhs], [y])


@pytest.mark.parametrize("shapes", sorted(BINARY_SHAPES))
@pytest.mark.parametrize("activation", ["NONE", "RELU"])
def test_add(tmp_path, shapes, activation):
    model = make_binary("ADD", *BINARY_SHAPES[shapes], dict(scale=0.05, zero_point=-7),
                        dict(scale=0.13, zero_point=12), dict(scale=0.09, zero_point=-4), activation)
    check(tmp_path, model)


def test_add_same_quantization(tmp_path):
    q = dict(scale=0.05, zero_point=3)
    check(tmp_path, make_binary("ADD", [1, 4, 4, 6], [1, 4, 4, 6], q, q, dict(scale=0.1, zero_point=-2)))


@pytest.mark.parametrize("shapes", sorted(BINARY_SHAPES))
@pytest.mark.parametrize("activation", ["NONE", "RELU"])
def test_mul(tmp_path, shapes, activation):
    model = make_binary("MUL", *BINARY_SHAPES[shapes], dict(scale=0.05, zero_point=-7),
                        dict(scale=0.02, zero_point=9), dict(scale=0.04, zero_point=2), activation)
    check(tmp_path, model)


# ---------------------------------------------------------------- pooling and MEAN


@pytest.mark.parametrize("op", ["AVERAGE_POOL_2D", "MAX_POOL_2D"])
@pytest.mark.parametrize("pool, stride, padding, activation", [
    (2, 2, "VALID", "NONE"),
    (3, 1, "SAME", "NONE"),
    (3, 2, "SAME", "RELU"),
    (2, 2, "VALID", "RELU6"),
    (1, 1, "VALID", "NONE"),  # 1x1 window: reduction axes of extent 1
])
def test_pool2d(tmp_path, op, pool, stride, padding, activation):
    h = 7 if stride == 2 and padding == "SAME" else 8  # odd size: uneven SAME padding
    in_shape = [1, h, h, 4]
    oh = same_or_valid(h, pool, stride, padding)
    # Pooling requires equal input and output quantization; zp > -128 so RELU clamps.
    q = dict(scale=0.05, zero_point=-7)
    b = ModelBuilder()
    x, y = act(b, in_shape, **q), act(b, [1, oh, oh, 4], **q)
    b.add_operator(op, [x], [y], filter_height=pool, filter_width=pool, stride_h=stride, stride_w=stride,
                   padding=padding, fused_activation_function=activation)
    check(tmp_path, b.build([x], [y]))


@pytest.mark.parametrize("axes, keep_dims", [([1, 2], True), ([1, 2], False), ([2], True), ([1], False)])
@pytest.mark.parametrize("requantize", [False, True], ids=["same_q", "new_q"])
def test_mean(tmp_path, axes, keep_dims, requantize):
    in_shape = [1, 5, 6, 4]
    out_shape = [1 if a in axes else d for a, d in enumerate(in_shape)]
    if not keep_dims:
        out_shape = [d for a, d in enumerate(in_shape) if a not in axes]
    # the mean of n uniform values has std ~74/sqrt(n) LSB: pick a finer output scale
    out_q = dict(scale=0.012, zero_point=4) if requantize else IN_Q
    model = single("MEAN", in_shape, out_shape, out_q, [i32_const(axes)], keep_dims=keep_dims)
    check(tmp_path, model)


# ---------------------------------------------------------------- data movement


@pytest.mark.parametrize("axis, count", [(3, 2), (3, 3), (1, 2), (1, 3), (-1, 2)])
def test_concatenation(tmp_path, axis, count):
    shapes = [[1, 3 + i if axis == 1 else 4, 4, 2 + i if axis % 4 == 3 else 3] for i in range(count)]
    out_shape = list(shapes[0])
    out_shape[axis] = sum(s[axis] for s in shapes)
    b = ModelBuilder()
    xs = [act(b, s) for s in shapes]
    y = act(b, out_shape)
    b.add_operator("CONCATENATION", xs, [y], axis=axis, fused_activation_function="NONE")
    check(tmp_path, b.build(xs, [y]))


@pytest.mark.parametrize("pads", [[[0, 0], [1, 1], [1, 1], [0, 0]], [[0, 0], [2, 0], [1, 3], [0, 0]]])
def test_pad(tmp_path, pads):
    in_shape = [1, 5, 4, 3]
    check(tmp_path, single("PAD", in_shape, padded(in_shape, pads), consts=[i32_const(pads)]))


@pytest.mark.parametrize("in_shape, out_shape", [([1, 4, 4, 4], [1, 64]), ([1, 64], [1, 4, 2, 8]), ([1, 6, 4, 2], [1, 3, 8, 2])])
def test_reshape(tmp_path, in_shape, out_shape):
    model = single("RESHAPE", in_shape, out_shape, consts=[i32_const(out_shape)], new_shape=out_shape)
    check(tmp_path, model)


def test_reshape_between_convs(tmp_path):
    """RESHAPE is an alias in our graph: make sure a kernel reads it correctly."""
    b = ModelBuilder()
    x = act(b, [1, 4, 4, 4])
    y, shape = add_conv(b, x, [1, 4, 4, 4], 4, kernel=1, seed=3, out_q=IN_Q)
    new_shape = [1, 2, 8, 4]
    r = act(b, new_shape)
    b.add_operator("RESHAPE", [y, b.add_tensor(**i32_const(new_shape))], [r], new_shape=new_shape)
    z, _ = add_conv(b, r, new_shape, 6, kernel=3, seed=4)
    check(tmp_path, b.build([x], [z]))


@pytest.mark.parametrize("shape, perm", [
    ([1, 3, 4, 2], [0, 3, 1, 2]),
    ([1, 3, 4, 2], [0, 2, 1, 3]),
    ([2, 3, 5], [2, 0, 1]),
])
def test_transpose(tmp_path, shape, perm):
    out_shape = [shape[p] for p in perm]
    check(tmp_path, single("TRANSPOSE", shape, out_shape, consts=[i32_const(perm)]))


@pytest.mark.parametrize("size_in, size_out", [((4, 4), (8, 8)), ((3, 5), (7, 9)), ((6, 8), (4, 5))])
@pytest.mark.parametrize("align_corners, half_pixel", [(False, False), (True, False), (False, True)])
def test_resize_nearest_neighbor(tmp_path, size_in, size_out, align_corners, half_pixel):
    model = single("RESIZE_NEAREST_NEIGHBOR", [1, *size_in, 3], [1, *size_out, 3], consts=[i32_const(size_out)],
                   align_corners=align_corners, half_pixel_centers=half_pixel)
    check(tmp_path, model)


# ---------------------------------------------------------------- activations and QUANTIZE


@pytest.mark.parametrize("in_shape", [[1, 10], [1, 2, 3, 8]])
@pytest.mark.parametrize("in_scale", [0.02, 0.05])
def test_softmax(tmp_path, in_shape, in_scale):
    b = ModelBuilder()
    x = act(b, in_shape, scale=in_scale, zero_point=-7)
    y = act(b, in_shape, scale=1.0 / 256, zero_point=-128)
    b.add_operator("SOFTMAX", [x], [y], beta=1.0)
    check(tmp_path, b.build([x], [y]))


@pytest.mark.parametrize("op", ["RELU", "RELU6"])
@pytest.mark.parametrize("out_q", [IN_Q, dict(scale=0.03, zero_point=-90)], ids=["same_q", "new_q"])
def test_relu(tmp_path, op, out_q):
    check(tmp_path, single(op, [1, 8, 8, 4], [1, 8, 8, 4], out_q))


def test_logistic(tmp_path):
    check(tmp_path, single("LOGISTIC", [1, 8, 8, 4], [1, 8, 8, 4], dict(scale=1.0 / 256, zero_point=-128)))


@pytest.mark.parametrize("in_q", [dict(scale=0.01, zero_point=20), dict(scale=0.3, zero_point=-128)],
                         ids=["fine", "coarse"])
def test_logistic_input_scales(tmp_path, in_q):
    """A fine scale that never saturates and a coarse one that mostly does."""
    b = ModelBuilder()
    x, y = act(b, [1, 6, 6, 4], **in_q), act(b, [1, 6, 6, 4], scale=1.0 / 256, zero_point=-128)
    b.add_operator("LOGISTIC", [x], [y])
    check(tmp_path, b.build([x], [y]))


def test_hard_swish(tmp_path):
    check(tmp_path, single("HARD_SWISH", [1, 8, 8, 4], [1, 8, 8, 4], dict(scale=0.04, zero_point=-60)))


@pytest.mark.parametrize("in_q, out_q", [
    (dict(scale=0.005, zero_point=3), dict(scale=0.004, zero_point=-30)),  # reluish exponent < 0
    (dict(scale=0.2, zero_point=-100), dict(scale=0.15, zero_point=-128)),  # saturating reluish shift
])
def test_hard_swish_scales(tmp_path, in_q, out_q):
    b = ModelBuilder()
    x, y = act(b, [1, 6, 6, 4], **in_q), act(b, [1, 6, 6, 4], **out_q)
    b.add_operator("HARD_SWISH", [x], [y])
    check(tmp_path, b.build([x], [y]))


def test_conv_hard_swish_conv(tmp_path):
    """HARD_SWISH between convolutions (MobileNetV3 style): the float pattern is matched in context."""
    b = ModelBuilder()
    x = act(b, [1, 8, 8, 3])
    y, shape = add_conv(b, x, [1, 8, 8, 3], 8, kernel=3, seed=51)
    h = act(b, shape, scale=0.03, zero_point=-40)
    b.add_operator("HARD_SWISH", [y], [h])
    z, _ = add_conv(b, h, shape, 4, kernel=1, seed=52, in_scale=0.03)
    check(tmp_path, b.build([x], [z]))


@pytest.mark.parametrize("out_q", [dict(scale=0.08, zero_point=3), dict(scale=0.02, zero_point=-20),
                                   dict(scale=0.05, zero_point=10)])
def test_quantize_requantize(tmp_path, out_q):
    check(tmp_path, single("QUANTIZE", [1, 8, 8, 4], [1, 8, 8, 4], out_q))


@pytest.mark.parametrize("out_q", [dict(scale=0.08, zero_point=3), dict(scale=0.02, zero_point=-20)])
def test_quantize_requantize_after_op(tmp_path, out_q):
    """int8 -> int8 QUANTIZE consuming another op's output (MAX_POOL_2D keeps IN_Q)."""
    b = ModelBuilder()
    x, pooled, y = act(b, [1, 8, 8, 4]), act(b, [1, 7, 7, 4]), act(b, [1, 7, 7, 4], **out_q)
    b.add_operator("MAX_POOL_2D", [x], [pooled], filter_height=2, filter_width=2, stride_h=1, stride_w=1,
                   padding="VALID")
    b.add_operator("QUANTIZE", [pooled], [y])
    check(tmp_path, b.build([x], [y]))


# ---------------------------------------------------------------- multi-op models


def test_pad_then_conv(tmp_path):
    """An explicit PAD (with the input zero point) feeding a VALID conv: fused into the conv."""
    check(tmp_path, pad_then_conv([1, 6, 6, 4], [[0, 0], [1, 1], [2, 1], [0, 0]], 6, kernel=3, stride=2, seed=11))


def test_branch_add(tmp_path):
    """One input feeds two convolutions whose outputs are added."""
    b = ModelBuilder()
    shape = [1, 8, 8, 4]
    x = act(b, shape)
    left, _ = add_conv(b, x, shape, 8, kernel=3, seed=21, activation="RELU")
    right, _ = add_conv(b, x, shape, 8, kernel=1, seed=22)
    y = act(b, [1, 8, 8, 8], scale=0.2, zero_point=-1)
    b.add_operator("ADD", [left, right], [y], fused_activation_function="NONE")
    check(tmp_path, b.build([x], [y]))


def add_classifier_head(b: ModelBuilder, features: int, channels: int, classes: int, seed: int) -> int:
    """MEAN over H, W -> FULLY_CONNECTED -> SOFTMAX on `features` ([1, H, W, channels], IN_Q)."""
    pooled = act(b, [1, 1, 1, channels], scale=0.02, zero_point=-30)
    b.add_operator("MEAN", [features, b.add_tensor(**i32_const([1, 2]))], [pooled], keep_dims=True)
    g = rng(seed)
    weights = b.add_tensor([classes, channels], I8, scale=0.01, zero_point=0,
                           data=g.integers(-127, 128, (classes, channels)))
    bias = b.add_tensor([classes], np.int32, scale=0.02 * 0.01, zero_point=0, data=g.integers(-500, 500, classes))
    logits = act(b, [1, classes], scale=acc_out_scale(0.02, np.array([0.01]), channels) / 2, zero_point=0)
    b.add_operator("FULLY_CONNECTED", [pooled, weights, bias], [logits])
    probs = act(b, [1, classes], scale=1.0 / 256, zero_point=-128)
    b.add_operator("SOFTMAX", [logits], [probs], beta=1.0)
    return probs


def test_classifier(tmp_path):
    """A conv trunk and a classifier tail: MEAN -> FULLY_CONNECTED -> SOFTMAX."""
    b = ModelBuilder()
    x = act(b, [1, 8, 8, 3])
    trunk, _ = add_conv(b, x, [1, 8, 8, 3], 8, kernel=3, stride=2, seed=31, activation="RELU6", out_q=IN_Q)
    probs = add_classifier_head(b, trunk, 8, 6, seed=33)
    check(tmp_path, b.build([x], [probs]), min_distinct=3)


def test_two_outputs(tmp_path):
    """A trunk with two heads (a conv map and a pooled FC classifier) as two graph outputs."""
    b = ModelBuilder()
    x = act(b, [1, 8, 8, 3])
    trunk, shape = add_conv(b, x, [1, 8, 8, 3], 8, kernel=3, stride=2, seed=31, activation="RELU6", out_q=IN_Q)
    head1, _ = add_conv(b, trunk, shape, 4, kernel=1, seed=32)
    probs = add_classifier_head(b, trunk, 8, 5, seed=33)
    art = check(tmp_path, b.build([x], [head1, probs]), min_distinct=3)
    assert [o["shape"] for o in art.metadata["outputs"]] == [[1, 4, 4, 4], [1, 5]]


FLOAT_IO_SCALE = float(np.float32(1 / 51))  # needs 9 significant digits to print exactly


def make_float_io_model() -> bytes:
    b = ModelBuilder()
    xf = b.add_tensor([1, 8, 8, 3], np.float32, name="input_f32")
    xq = act(b, [1, 8, 8, 3], scale=FLOAT_IO_SCALE, zero_point=-1)
    b.add_operator("QUANTIZE", [xf], [xq])
    yq, shape = add_conv(b, xq, [1, 8, 8, 3], 6, kernel=3, stride=1, seed=41, in_scale=FLOAT_IO_SCALE, activation="RELU")
    yf = b.add_tensor(shape, np.float32, name="output_f32")
    b.add_operator("DEQUANTIZE", [yq], [yf])
    return b.build([xf], [yf])


@pytest.mark.parametrize("float_io", [False, True], ids=["int8_entry", "float_entry"])
def test_float_io_model(tmp_path, float_io):
    path = tmp_path / "float_io.tflite"
    path.write_bytes(make_float_io_model())
    result = verify(str(path), inputs=5, float_io=float_io)
    assert result.bit_exact and result.max_abs_diff == 0, result


def test_float_io_model_direct(tmp_path):
    """The float entry point computes exactly what TFLM computes on float inputs."""
    model = make_float_io_model()
    path = tmp_path / "float_io.tflite"
    path.write_bytes(model)
    art = tvm_tinyml.build(str(path), target="host", float_io=True)
    assert art.metadata["inputs"][0]["dtype"] == "float32"
    for k in range(NUM_INPUTS):
        xq = int8_data([1, 8, 8, 3], k).astype(np.float32)
        x = (xq + 1) * np.float32(FLOAT_IO_SCALE)  # the grid points
        x += rng(k).uniform(-0.6, 0.6, x.shape).astype(np.float32) * np.float32(FLOAT_IO_SCALE)  # and in between
        (ref,) = run_tflm(model, [x])
        (ours,) = art.run_host([x])
        assert ours.dtype == np.float32 and len(np.unique(ref)) > 4
        np.testing.assert_array_equal(ours.reshape(ref.shape), ref)


# ---------------------------------------------------------------- flash budget


def test_weights_over_the_flash_budget_stay_int8_where_it_costs_least(tmp_path):
    """With `weights="int16"`, int16 weight pairs would pass 3/4 of an STM32F411's 512 KiB: the
    big fully connected layer (1 MAC per weight byte) goes back to int8 weights, the 1x1 conv
    (16 MACs per weight byte) keeps int16; the result stays bit-exact and fits."""
    b = ModelBuilder()
    x = act(b, [1, 4, 4, 8])
    y, shape = add_conv(b, x, [1, 4, 4, 8], 24, kernel=1, seed=3)
    g = rng(4)
    depth, units = int(np.prod(shape[1:])), 800
    weights = b.add_tensor([units, depth], I8, scale=0.01, zero_point=0, data=g.integers(-127, 128, (units, depth)))
    out = act(b, [1, units], scale=acc_out_scale(1.0, np.atleast_1d(np.float32(0.01)), depth), zero_point=-10)
    b.add_operator("FULLY_CONNECTED", [y, weights, -1], [out])
    model = b.build([x], [out])
    path = tmp_path / "big_fc.tflite"
    path.write_bytes(model)
    artifact = tvm_tinyml.build(str(path), target="stm32f411", weights="int16")
    int8_bytes = units * depth
    assert artifact.memory.flash_bytes <= 512 * 1024 * 3 // 4 < 2 * int8_bytes
    source = artifact.sources["big_fc.c"]
    assert re.search(r"tinyml_conv_s8_(pw|gemm)_\d_u\d\(", source)  # the conv: int16 path
    assert re.search(r"tinyml_conv_s8_pw8r_1_u\d\(", source)  # the dense: int8 weights
    xs = [int8_data([1, 4, 4, 8], 7)]
    np.testing.assert_array_equal(artifact.run_host(xs)[0].reshape(1, units), run_tflm(model, xs)[0])
