"""Bit-exactness against TFLite Micro of the matrix family: FULLY_CONNECTED with keep_num_dims,
BATCH_MATMUL and TRANSPOSE_CONV (single ops and inside small graphs).

Same method as tests/test_ops.py: tiny int8 models, seeded random inputs, generated C vs TFLM.
"""

from __future__ import annotations

import numpy as np
import pytest

from test_ops import IN_Q, I8, act, add_conv, check, rng
from tflite_builder import ModelBuilder
from tvm_tinyml.errors import UnsupportedOperatorError

# ---------------------------------------------------------------- FULLY_CONNECTED keep_num_dims


def fc_model(in_shape, units: int, keep_num_dims: bool, activation="NONE", seed=0) -> bytes:
    depth = in_shape[-1]
    g = rng(seed)
    b = ModelBuilder()
    x = act(b, in_shape)
    weights = b.add_tensor([units, depth], I8, scale=0.01, zero_point=0, data=g.integers(-127, 128, (units, depth)))
    bias = b.add_tensor([units], np.int32, scale=IN_Q["scale"] * 0.01, zero_point=0, data=g.integers(-3000, 3000, units))
    rows = int(np.prod(in_shape[:-1]))
    out_shape = [*in_shape[:-1], units] if keep_num_dims else [rows, units]
    y = act(b, out_shape, scale=float(IN_Q["scale"] * 0.01 * 74 * 74 * np.sqrt(depth) / 40), zero_point=-10)
    b.add_operator("FULLY_CONNECTED", [x, weights, bias], [y], fused_activation_function=activation, keep_num_dims=keep_num_dims)
    return b.build([x], [y])


@pytest.mark.parametrize("in_shape", [[1, 24], [3, 24], [2, 5, 24], [1, 3, 4, 24]], ids=["r2", "r2_rows", "r3", "r4"])
@pytest.mark.parametrize("keep_num_dims", [True, False], ids=["keep", "flat"])
@pytest.mark.parametrize("activation", ["NONE", "RELU"])
def test_fully_connected_keep_num_dims(tmp_path, in_shape, keep_num_dims, activation):
    check(tmp_path, fc_model(in_shape, 12, keep_num_dims, activation, seed=len(in_shape)))


# ---------------------------------------------------------------- BATCH_MATMUL


LHS_Q = dict(scale=0.05, zero_point=-7)
RHS_Q = dict(scale=0.03, zero_point=5)


def matmul_shape(shape, adjoint: bool) -> list[int]:
    return [*shape[:-2], shape[-1], shape[-2]] if adjoint else list(shape)


def batch_matmul_model(lhs_shape, rhs_shape, adj_x=False, adj_y=False, rhs_const=False, rhs_q=RHS_Q, seed=0) -> bytes:
    """`lhs_shape` / `rhs_shape` are the logical [..., M, K] / [..., K, N]; adj stores them transposed."""
    b = ModelBuilder()
    lhs = act(b, matmul_shape(lhs_shape, adj_x), **LHS_Q)
    rhs_stored = matmul_shape(rhs_shape, adj_y)
    if rhs_const:
        rhs = b.add_tensor(rhs_stored, I8, data=rng(seed).integers(-128, 128, rhs_stored), **rhs_q)
    else:
        rhs = act(b, rhs_stored, **rhs_q)
    batch = np.broadcast_shapes(tuple(lhs_shape[:-2]), tuple(rhs_shape[:-2]))
    k = lhs_shape[-1]
    out_scale = LHS_Q["scale"] * rhs_q["scale"] * 74 * 74 * np.sqrt(k) / 40
    y = act(b, [*batch, lhs_shape[-2], rhs_shape[-1]], scale=float(out_scale), zero_point=3)
    b.add_operator("BATCH_MATMUL", [lhs, rhs], [y], adj_x=adj_x, adj_y=adj_y)
    return b.build([lhs] if rhs_const else [lhs, rhs], [y])


BMM_SHAPES = {
    "2d": ([4, 6], [6, 5]),
    "3d": ([2, 4, 6], [2, 6, 5]),
    "4d": ([2, 3, 4, 6], [2, 3, 6, 5]),
    "bcast_rhs": ([3, 4, 6], [1, 6, 5]),
    "bcast_lhs": ([1, 4, 6], [3, 6, 5]),
    "bcast_rank": ([2, 3, 4, 6], [6, 5]),
    "bcast_both": ([2, 1, 4, 6], [1, 3, 6, 5]),
}


@pytest.mark.parametrize("shapes", sorted(BMM_SHAPES))
@pytest.mark.parametrize("adj_x, adj_y", [(False, False), (True, False), (False, True), (True, True)],
                         ids=["nn", "tn", "nt", "tt"])
def test_batch_matmul(tmp_path, shapes, adj_x, adj_y):
    check(tmp_path, batch_matmul_model(*BMM_SHAPES[shapes], adj_x=adj_x, adj_y=adj_y))


@pytest.mark.parametrize("shapes", ["2d", "3d", "bcast_rank"])
@pytest.mark.parametrize("adj_y", [False, True])
@pytest.mark.parametrize("rhs_zp", [0, 5])
def test_batch_matmul_constant_rhs(tmp_path, shapes, adj_y, rhs_zp):
    """A constant RHS: with zero point 0 and rank 2 it runs as FULLY_CONNECTED's kernel."""
    rhs_q = dict(scale=0.03, zero_point=rhs_zp)
    check(tmp_path, batch_matmul_model(*BMM_SHAPES[shapes], adj_y=adj_y, rhs_const=True, rhs_q=rhs_q, seed=4))


def test_conv_batch_matmul_conv(tmp_path):
    """conv -> BATCH_MATMUL of the feature map with itself (adj_y: a Gram matrix per row) -> conv."""
    b = ModelBuilder()
    x = act(b, [1, 4, 5, 3])
    y, _ = add_conv(b, x, [1, 4, 5, 3], 6, kernel=3, seed=8, out_q=IN_Q)
    gram = act(b, [1, 4, 5, 5], scale=float(IN_Q["scale"] ** 2 * 74 * 74 * np.sqrt(6) / 40), zero_point=0)
    b.add_operator("BATCH_MATMUL", [y, y], [gram], adj_x=False, adj_y=True)
    z, _ = add_conv(b, gram, [1, 4, 5, 5], 4, kernel=1, seed=9, in_scale=float(IN_Q["scale"] ** 2 * 74 * 74 * np.sqrt(6) / 40))
    check(tmp_path, b.build([x], [z]))


# ---------------------------------------------------------------- TRANSPOSE_CONV


def transpose_conv_out(size: int, kernel: int, stride: int, padding: str) -> int:
    """The output size the TFLite converter gives a TRANSPOSE_CONV of an input of `size`."""
    return size * stride if padding == "SAME" else (size - 1) * stride + kernel


def add_transpose_conv(b: ModelBuilder, x: int, in_shape, cout: int, *, kernel, stride, padding, with_bias=True,
                       per_channel=True, activation="NONE", seed=0, in_scale=IN_Q["scale"]):
    """Append an int8 TRANSPOSE_CONV (weights OHWI) reading `x`; returns (y, shape)."""
    n, h, w, cin = in_shape
    g = rng(seed)
    w_scales = rng(seed + 1).uniform(0.002, 0.02, cout).astype(np.float32) if per_channel else np.float32(0.01)
    weights = b.add_tensor([cout, kernel, kernel, cin], I8, scale=w_scales, zero_point=0,
                           data=g.integers(-127, 128, (cout, kernel, kernel, cin)))
    out_shape = [n, transpose_conv_out(h, kernel, stride, padding), transpose_conv_out(w, kernel, stride, padding), cout]
    shape = b.add_tensor([4], np.int32, data=np.array(out_shape, np.int32))
    inputs = [shape, weights, x]
    if with_bias:
        inputs.append(b.add_tensor([cout], np.int32, scale=in_scale * np.atleast_1d(w_scales), zero_point=0,
                                   data=g.integers(-3000, 3000, cout)))
    # each output sums about (kernel / stride)^2 * cin products
    terms = max(1, (kernel // stride) ** 2) * cin
    y = act(b, out_shape, scale=float(in_scale * np.median(w_scales) * 74 * 74 * np.sqrt(terms) / 40), zero_point=-6)
    b.add_operator("TRANSPOSE_CONV", inputs, [y], padding=padding, stride_h=stride, stride_w=stride,
                   fused_activation_function=activation)
    return y, out_shape


@pytest.mark.parametrize("kernel, stride, padding", [
    (3, 2, "SAME"), (3, 1, "SAME"), (2, 2, "SAME"), (4, 2, "SAME"), (3, 2, "VALID"), (2, 2, "VALID"), (3, 1, "VALID"),
    (5, 3, "SAME"),
])
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "nobias"])
def test_transpose_conv(tmp_path, kernel, stride, padding, with_bias):
    b = ModelBuilder()
    x = act(b, [1, 4, 5, 3])
    y, _ = add_transpose_conv(b, x, [1, 4, 5, 3], 6, kernel=kernel, stride=stride, padding=padding,
                              with_bias=with_bias, seed=kernel + stride)
    check(tmp_path, b.build([x], [y]))


@pytest.mark.parametrize("activation", ["RELU", "RELU6"])
@pytest.mark.parametrize("per_channel", [True, False], ids=["per_channel", "per_tensor"])
def test_transpose_conv_activation_and_weights(tmp_path, activation, per_channel):
    b = ModelBuilder()
    x = act(b, [1, 3, 3, 4])
    y, _ = add_transpose_conv(b, x, [1, 3, 3, 4], 5, kernel=3, stride=2, padding="SAME",
                              per_channel=per_channel, activation=activation, seed=3)
    check(tmp_path, b.build([x], [y]))


def test_transpose_conv_odd_output_size_is_refused(tmp_path):
    """An output size TVM's conv2d_transpose cannot express is a clean error, not a wrong result."""
    b = ModelBuilder()
    x = act(b, [1, 4, 4, 2])
    weights = b.add_tensor([3, 3, 3, 2], I8, scale=0.01, zero_point=0, data=rng(1).integers(-127, 128, (3, 3, 3, 2)))
    shape = b.add_tensor([4], np.int32, data=np.array([1, 10, 10, 3], np.int32))
    y = act(b, [1, 10, 10, 3])
    b.add_operator("TRANSPOSE_CONV", [shape, weights, x], [y], padding="VALID", stride_h=2, stride_w=2)
    with pytest.raises(UnsupportedOperatorError, match="TRANSPOSE_CONV from 4x4 to 10x10"):
        check(tmp_path, b.build([x], [y]))


def test_conv_transpose_conv_conv(tmp_path):
    """An encoder-decoder: conv (stride 2) -> TRANSPOSE_CONV (stride 2) -> conv."""
    b = ModelBuilder()
    x = act(b, [1, 8, 8, 3])
    y, shape = add_conv(b, x, [1, 8, 8, 3], 6, kernel=3, stride=2, seed=11, out_q=IN_Q, activation="RELU")
    z, shape = add_transpose_conv(b, y, shape, 4, kernel=3, stride=2, padding="SAME", seed=12)
    zq = b._tensors[z].quantization.scale[0]
    out, _ = add_conv(b, z, shape, 5, kernel=3, seed=13, in_scale=zq)
    check(tmp_path, b.build([x], [out]))


def test_batch_matmul_per_channel_rhs_is_refused(tmp_path):
    """TFLM's BATCH_MATMUL reads one scale per operand: per-channel operands are refused."""
    b = ModelBuilder()
    lhs = act(b, [4, 6], **LHS_Q)
    rhs = b.add_tensor([6, 5], I8, scale=[0.01] * 5, zero_point=[0] * 5, quantized_dimension=1,
                       data=rng(2).integers(-128, 128, (6, 5)))
    y = act(b, [4, 5])
    b.add_operator("BATCH_MATMUL", [lhs, rhs], [y])
    with pytest.raises(UnsupportedOperatorError, match="BATCH_MATMUL with per-channel or float operands"):
        check(tmp_path, b.build([lhs], [y]))
