"""Data-movement operators, bit-exact against TFLite Micro.

Same pattern as test_ops.py: tiny int8 .tflite models built with `tflite_builder`, random
inputs through the generated C and through TFLM. Every op is checked on its own over its
options, and inside a small graph between convolutions (so its input and output are
tensors other kernels write and read).
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tvm_tinyml
from replay import kernel_trace, overlap_is_safe
from test_ops import I8, IN_Q, act, add_conv, check, i32_const, int8_data, pad_then_conv, padded
from tflite_builder import ModelBuilder, run_tflm
from tvm import relax
from tvm_tinyml.errors import TinyMLError, UnsupportedOperatorError
from tvm_tinyml.frontend_movement import mirror_source, strided_slice_axes
from tvm_tinyml.overlap import max_overlap_delta

OTHER_Q = dict(scale=0.03, zero_point=11)  # a second quantization (ops that ignore it copy bytes)


def unary(op: str, in_shape, out_shapes, consts=(), in_q=IN_Q, out_q=IN_Q, **options) -> bytes:
    """`op` on one int8 input plus constant inputs; one int8 output per entry of `out_shapes`."""
    b = ModelBuilder()
    x = act(b, in_shape, **in_q)
    extra = [b.add_tensor(**c) for c in consts]
    ys = [act(b, s, **out_q) for s in out_shapes]
    b.add_operator(op, [x, *extra], ys, **options)
    return b.build([x], ys)


def between_convs(op: str, in_shape, out_shapes, consts=(), const_first=False, **options) -> bytes:
    """conv -> `op` -> one conv per output: the op reads and writes kernel-made tensors."""
    b = ModelBuilder()
    x = act(b, in_shape)
    y, _ = add_conv(b, x, in_shape, in_shape[-1], kernel=1, seed=1, out_q=IN_Q)
    extra = [b.add_tensor(**c) for c in consts]
    ys = [act(b, s) for s in out_shapes]
    b.add_operator(op, [*extra, y] if const_first else [y, *extra], ys, **options)
    outs = [add_conv(b, t, s, 3, kernel=1, seed=5 + k)[0] for k, (t, s) in enumerate(zip(ys, out_shapes))]
    return b.build([x], outs)


# ---------------------------------------------------------------- PAD / PADV2


@pytest.mark.parametrize("shape, pads", [
    ([1, 3, 3, 2], [[0, 0], [0, 0], [0, 0], [1, 2]]),
    ([1, 4, 4, 3], [[1, 0], [0, 1], [2, 0], [0, 3]]),
    ([2, 5, 3], [[0, 1], [2, 0], [1, 1]]),
    ([6, 4], [[1, 2], [3, 0]]),
    ([5], [[2, 3]]),
    ([1, 2, 3, 2, 2], [[0, 0], [1, 0], [0, 1], [0, 0], [1, 1]]),
])
def test_pad_any_axis(tmp_path, shape, pads):
    check(tmp_path, unary("PAD", shape, [padded(shape, pads)], [i32_const(pads)]))


def test_pad_other_quantization_copies_bytes(tmp_path):
    """TFLM copies the input bytes and pads with the output zero point whatever the scales."""
    pads = [[0, 0], [1, 0], [0, 0], [0, 2]]
    check(tmp_path, unary("PAD", [1, 3, 3, 2], [padded([1, 3, 3, 2], pads)], [i32_const(pads)], out_q=OTHER_Q))


@pytest.mark.parametrize("pads", [[[0, 0], [0, 0], [0, 0], [2, 1]], [[0, 0], [1, 1], [0, 2], [0, 0]]])
def test_padv2_constant(tmp_path, pads):
    value = dict(shape=[1], dtype=I8, data=np.array([-77]), **IN_Q)
    check(tmp_path, unary("PADV2", [1, 3, 4, 2], [padded([1, 3, 4, 2], pads)], [i32_const(pads), value]))


def test_pad_channels_for_residual_add(tmp_path):
    """BlazeFace's pattern: conv (24 ch) -> PAD channels to 28 -> ADD with a 28-channel branch -> conv."""
    b = ModelBuilder()
    x = act(b, [1, 6, 6, 24])
    y, _ = add_conv(b, x, [1, 6, 6, 24], 24, kernel=1, seed=2, out_q=IN_Q)
    pads = [[0, 0], [0, 0], [0, 0], [0, 4]]
    p = act(b, [1, 6, 6, 28])
    b.add_operator("PAD", [y, b.add_tensor(**i32_const(pads))], [p])
    z, _ = add_conv(b, x, [1, 6, 6, 24], 28, kernel=3, seed=3, out_q=IN_Q)
    s = act(b, [1, 6, 6, 28], scale=0.08, zero_point=-2)
    b.add_operator("ADD", [p, z], [s], fused_activation_function="RELU")
    out, _ = add_conv(b, s, [1, 6, 6, 28], 8, kernel=1, seed=4, in_scale=0.08)
    check(tmp_path, b.build([x], [out]))


def relax_model(shape, body):
    """A Relax `main(x: int8[shape])` returning `body(bb, x)`, built for the host."""
    x = relax.Var("x", relax.TensorType(tuple(shape), "int8"))
    bb = relax.BlockBuilder()
    with bb.function("main", [x]):
        with bb.dataflow():
            out = bb.emit_output(body(bb, x))
        bb.emit_func_output(out)
    return tvm_tinyml.build(bb.finalize(), target="host")


def test_qdq_pad_on_channels():
    """An ONNX-style dequantize -> float pad (channels) -> quantize becomes one pad_nd kernel."""
    scale, zp = relax.const(np.float32(0.05)), relax.const(np.int8(-7))

    def body(bb, x):
        real = bb.emit(relax.op.dequantize(x, scale, zp))
        padded = bb.emit(relax.op.nn.pad(real, [0, 0, 0, 0, 1, 0, 2, 3]))
        return relax.op.quantize(padded, scale, zp, out_dtype="int8")

    artifact = relax_model([1, 3, 2, 4], body)
    assert artifact.metadata["layers"] == ["pad_nd"]
    data = int8_data([1, 3, 2, 4], 0)
    expected = np.pad(data, [(0, 0), (0, 0), (1, 0), (2, 3)], constant_values=-7)
    np.testing.assert_array_equal(artifact.run_host([data])[0].reshape(expected.shape), expected)


def test_int8_take_with_negative_constant_indices():
    """Relax take (as ONNX Gather imports) counts negative indices from the back."""
    indices = np.array([-1, 0, -3, 2], np.int64)
    artifact = relax_model([2, 5, 3], lambda bb, x: relax.op.take(x, relax.const(indices), axis=1))
    data = int8_data([2, 5, 3], 1)
    expected = np.take(data, indices, axis=1)
    np.testing.assert_array_equal(artifact.run_host([data])[0].reshape(expected.shape), expected)


def test_spatial_pad_still_fused_into_conv(tmp_path):
    """A spatial PAD before a VALID conv stays the conv's padding (no pad kernel)."""
    artifact = check(tmp_path, pad_then_conv([1, 5, 5, 3], [[0, 0], [1, 1], [1, 1], [0, 0]], 4, seed=6))
    assert artifact.metadata["layers"] == ["conv2d"]


# ---------------------------------------------------------------- reshapes, transpose, concat, pack


@pytest.mark.parametrize("op, in_shape, out_shape, options", [
    ("SQUEEZE", [1, 4, 1, 6], [4, 6], dict(squeeze_dims=[0, 2])),
    ("SQUEEZE", [1, 1, 5], [5], dict()),
])
def test_squeeze(tmp_path, op, in_shape, out_shape, options):
    check(tmp_path, unary(op, in_shape, [out_shape], **options))


@pytest.mark.parametrize("axis, out_shape", [(0, [1, 4, 6]), (-1, [4, 6, 1]), (1, [4, 1, 6])])
def test_expand_dims(tmp_path, axis, out_shape):
    check(tmp_path, unary("EXPAND_DIMS", [4, 6], [out_shape], [i32_const([axis])]))


def test_reshape_other_quantization_copies_bytes(tmp_path):
    check(tmp_path, unary("RESHAPE", [2, 3, 4], [[6, 4]], [i32_const([6, 4])], out_q=OTHER_Q, new_shape=[6, 4]))


def test_squeeze_between_convs(tmp_path):
    b = ModelBuilder()
    x = act(b, [1, 1, 6, 4])
    y, _ = add_conv(b, x, [1, 1, 6, 4], 4, kernel=1, seed=1, out_q=IN_Q)
    s = act(b, [1, 6, 4])
    b.add_operator("SQUEEZE", [y], [s], squeeze_dims=[1])
    e = act(b, [1, 6, 1, 4])
    b.add_operator("EXPAND_DIMS", [s, b.add_tensor(**i32_const([2]))], [e])
    z, _ = add_conv(b, e, [1, 6, 1, 4], 3, kernel=1, seed=2)
    check(tmp_path, b.build([x], [z]))


@pytest.mark.parametrize("shape, perm", [
    ([5, 7], [1, 0]),
    ([2, 3, 4], [1, 2, 0]),
    ([1, 3, 4, 5], [0, 3, 1, 2]),
    ([2, 3, 2, 4], [3, 2, 1, 0]),
    ([2, 3, 2, 2, 3], [4, 1, 3, 0, 2]),
])
def test_transpose_ranks(tmp_path, shape, perm):
    check(tmp_path, unary("TRANSPOSE", shape, [[shape[p] for p in perm]], [i32_const(perm)]))


def test_transpose_other_quantization_copies_bytes(tmp_path):
    check(tmp_path, unary("TRANSPOSE", [3, 4, 5], [[5, 3, 4]], [i32_const([2, 0, 1])], out_q=OTHER_Q))


def test_transpose_between_convs(tmp_path):
    check(tmp_path, between_convs("TRANSPOSE", [1, 4, 6, 3], [[1, 6, 4, 3]], [i32_const([0, 2, 1, 3])]))


@pytest.mark.parametrize("rank, axis, count", [(4, 0, 2), (4, 1, 4), (4, 2, 3), (4, 3, 5), (3, -2, 3), (2, 1, 2), (2, 0, 3)])
def test_concatenation_any_axis(tmp_path, rank, axis, count):
    base = [2, 3, 2, 4][:rank]
    shapes = []
    for i in range(count):
        shape = list(base)
        shape[axis] += i
        shapes.append(shape)
    out_shape = list(base)
    out_shape[axis] = sum(s[axis] for s in shapes)
    b = ModelBuilder()
    xs = [act(b, s) for s in shapes]
    y = act(b, out_shape)
    b.add_operator("CONCATENATION", xs, [y], axis=axis, fused_activation_function="NONE")
    check(tmp_path, b.build(xs, [y]))


@pytest.mark.parametrize("shape, axis, count", [([3, 4], 0, 2), ([3, 4], 1, 3), ([3, 4], 2, 2), ([2, 3, 2], -1, 4)])
def test_pack(tmp_path, shape, axis, count):
    rank = len(shape) + 1
    out_shape = list(shape)
    out_shape.insert(axis % rank, count)
    b = ModelBuilder()
    xs = [act(b, shape) for _ in range(count)]
    y = act(b, out_shape)
    b.add_operator("PACK", xs, [y], axis=axis, values_count=count)
    check(tmp_path, b.build(xs, [y]))


def test_unpack_pack_between_convs(tmp_path):
    """conv -> UNPACK (channels) -> PACK (back, reversed order) -> conv."""
    b = ModelBuilder()
    x = act(b, [1, 4, 4, 3])
    y, _ = add_conv(b, x, [1, 4, 4, 3], 3, kernel=1, seed=1, out_q=IN_Q)
    parts = [act(b, [1, 4, 4]) for _ in range(3)]
    b.add_operator("UNPACK", [y], parts, num=3, axis=3)
    p = act(b, [1, 4, 4, 3])
    b.add_operator("PACK", parts[::-1], [p], axis=-1, values_count=3)
    z, _ = add_conv(b, p, [1, 4, 4, 3], 4, kernel=3, seed=2)
    check(tmp_path, b.build([x], [z]))


# ---------------------------------------------------------------- splits and slices


def split_model(shape, axis: int, num: int) -> bytes:
    """SPLIT (the axis is the first input) into `num` equal outputs."""
    out_shape = list(shape)
    out_shape[axis] //= num
    b = ModelBuilder()
    axis_t = b.add_tensor(**i32_const([axis]))
    x = act(b, shape)
    ys = [act(b, out_shape) for _ in range(num)]
    b.add_operator("SPLIT", [axis_t, x], ys, num_splits=num)
    return b.build([x], ys)


@pytest.mark.parametrize("shape, axis, num", [([2, 6, 4], 1, 3), ([1, 4, 4, 6], 3, 2), ([4, 5], 0, 4), ([4, 6], -1, 3)])
def test_split(tmp_path, shape, axis, num):
    check(tmp_path, split_model(shape, axis, num))


def test_split_between_convs(tmp_path):
    in_shape = [1, 4, 4, 6]
    check(tmp_path, between_convs("SPLIT", in_shape, [[1, 4, 4, 2]] * 3, [i32_const([3])], const_first=True, num_splits=3))


@pytest.mark.parametrize("shape, axis, sizes", [([2, 7, 3], 1, [2, 4, 1]), ([5, 4], 0, [1, -1, 2]), ([3, 8], -1, [5, 3])])
def test_split_v(tmp_path, shape, axis, sizes):
    rest = shape[axis] - sum(s for s in sizes if s != -1)
    outs = []
    for size in sizes:
        out = list(shape)
        out[axis] = rest if size == -1 else size
        outs.append(out)
    model = unary("SPLIT_V", shape, outs, [i32_const(sizes), i32_const([axis])], num_splits=len(sizes))
    check(tmp_path, model)


@pytest.mark.parametrize("shape, axis", [([3, 4], 0), ([3, 4, 2], 1), ([2, 3, 4], -1)])
def test_unpack(tmp_path, shape, axis):
    out_shape = [d for a, d in enumerate(shape) if a != axis % len(shape)]
    count = shape[axis]
    check(tmp_path, unary("UNPACK", shape, [out_shape] * count, num=count, axis=axis))


@pytest.mark.parametrize("shape, begin, size", [
    ([1, 5, 6, 4], [0, 1, 2, 1], [1, 3, -1, 2]),
    ([4, 7], [1, 0], [2, -1]),
    ([3, 4, 5], [2, 1, 0], [1, 3, 5]),
])
def test_slice(tmp_path, shape, begin, size):
    out_shape = [d - b if n == -1 else n for d, b, n in zip(shape, begin, size)]
    check(tmp_path, unary("SLICE", shape, [out_shape], [i32_const(begin), i32_const(size)]))


def test_slice_between_convs(tmp_path):
    consts = [i32_const([0, 1, 0, 1]), i32_const([1, 3, -1, 2])]
    check(tmp_path, between_convs("SLICE", [1, 5, 4, 4], [[1, 3, 4, 2]], consts))


STRIDED_CASES = [
    # shape, begin, end, strides, begin_mask, end_mask, shrink_axis_mask
    ([1, 6, 8, 4], [0, 1, 0, 0], [1, 5, 8, 4], [1, 2, 3, 1], 0, 0, 0),
    ([1, 6, 8, 4], [0, -1, -2, 3], [1, -7, 0, 0], [1, -1, -2, -1], 0, 0b0010, 0),
    ([1, 6, 8, 4], [0, 4, 1, 0], [1, 0, 7, 4], [1, -2, 1, 1], 0b0001, 0b0001, 0),
    ([5, 6], [1, 0], [4, 0], [1, 1], 0b10, 0b10, 0b01),
    ([5, 6], [-2, 5], [0, 0], [1, -1], 0, 0b10, 0b01),
    ([3, 4, 5], [0, 1, 0], [3, 3, 5], [2, 1, -1], 0b100, 0b100, 0b010),
    ([4, 6], [1, -100], [100, 100], [1, 2], 0, 0, 0),
    ([2, 3, 4], [1, 2, -1], [2, -4, 0], [1, -1, -1], 0b001, 0b010, 0),
    ([2, 7], [0, 6], [2, 0], [1, -3], 0b01, 0b11, 0b01),
]


@pytest.mark.parametrize("shape, begin, end, strides, begin_mask, end_mask, shrink", STRIDED_CASES)
def test_strided_slice(tmp_path, shape, begin, end, strides, begin_mask, end_mask, shrink):
    axes = strided_slice_axes(shape, begin, end, strides, begin_mask, end_mask, shrink)
    out_shape = [count for a, (_, _, count) in enumerate(axes) if not shrink & (1 << a)]
    model = unary("STRIDED_SLICE", shape, [out_shape], [i32_const(begin), i32_const(end), i32_const(strides)],
                  begin_mask=begin_mask, end_mask=end_mask, shrink_axis_mask=shrink)
    check(tmp_path, model)


def test_strided_slice_ignores_what_tflm_ignores(tmp_path):
    """TFLM's StridedSlice never reads the offset option, ellipsis_mask or new_axis_mask:
    end stays an end (not a size from begin), and no axis is inserted."""
    shape, begin, end, strides = [4, 6], [1, 2], [3, 5], [1, 1]
    model = unary("STRIDED_SLICE", shape, [[2, 3]], [i32_const(begin), i32_const(end), i32_const(strides)],
                  offset=True, new_axis_mask=0b01, ellipsis_mask=0b10)
    check(tmp_path, model)


def test_strided_slice_between_convs(tmp_path):
    consts = [i32_const([0, 5, 0, 0]), i32_const([1, 0, 7, 3]), i32_const([1, -2, 2, 1])]
    model = between_convs("STRIDED_SLICE", [1, 6, 7, 3], [[1, 3, 4, 3]], consts, begin_mask=0b1001, end_mask=0b0001)
    check(tmp_path, model)


def test_strided_slice_axes_follow_tflm():
    """The per-axis arithmetic on hand-checked cases (TFLM's clamping and masks)."""
    assert strided_slice_axes([8], [-1], [0], [-3], 0, 0, 0) == [(7, -3, 3)]
    assert strided_slice_axes([8], [100], [-100], [-1], 0, 0, 0) == [(7, -1, 8)]
    assert strided_slice_axes([8], [3], [0], [1], 0, 1, 0) == [(3, 1, 5)]
    assert strided_slice_axes([8], [-3], [0], [1], 0, 0, 1) == [(5, 1, 1)]


# ---------------------------------------------------------------- gathers


@pytest.mark.parametrize("shape, axis, indices", [
    ([5, 4], 0, [[4, 0, 2], [1, 1, 3]]),
    ([3, 6, 2], 1, [5, 0, 3, 3]),
    ([2, 3, 7], -1, [[6], [2]]),
    ([6, 3], 0, 2),
])
def test_gather(tmp_path, shape, axis, indices):
    indices = np.asarray(indices, np.int32)
    a = axis % len(shape)
    out_shape = shape[:a] + list(indices.shape) + shape[a + 1:]
    check(tmp_path, unary("GATHER", shape, [out_shape], [i32_const(indices)], axis=axis))


@pytest.mark.parametrize("shape, axis, batch_dims, indices", [
    ([2, 5, 3], 1, 1, [[4, 0], [2, 2]]),
    ([2, 3, 4, 2], 2, 1, [[3, 0, 1], [2, 2, 0]]),
    ([2, 3, 4], 2, -1, [[[1, 0], [3, 3], [2, 1]], [[0, 0], [1, 2], [3, 1]]]),
])
def test_gather_batch_dims(tmp_path, shape, axis, batch_dims, indices):
    indices = np.asarray(indices, np.int32)
    bd = batch_dims % indices.ndim
    out_shape = shape[:axis] + list(indices.shape[bd:]) + shape[axis + 1:]
    check(tmp_path, unary("GATHER", shape, [out_shape], [i32_const(indices)], axis=axis, batch_dims=batch_dims))


def test_gather_between_convs(tmp_path):
    model = between_convs("GATHER", [1, 4, 5, 3], [[1, 4, 3, 3]], [i32_const([4, 1, 1])], axis=2)
    check(tmp_path, model)


@pytest.mark.parametrize("shape, axis, index_shape", [([5, 4], 0, [3]), ([2, 6, 3], 1, [2, 2]), ([1, 4, 7], -1, [])])
def test_gather_indices_input(tmp_path, shape, axis, index_shape):
    """Indices as an int32 model input (random valid indices)."""
    b = ModelBuilder()
    x = act(b, shape)
    idx = b.add_tensor(index_shape, np.int32)
    a = axis % len(shape)
    y = act(b, shape[:a] + index_shape + shape[a + 1:])
    b.add_operator("GATHER", [x, idx], [y], axis=axis)
    model = b.build([x, idx], [y])
    check_inputs(tmp_path, model, [[int8_data(shape, k), indices(shape[a], index_shape, k)] for k in range(4)])


def indices(size: int, shape, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, size, shape).astype(np.int32)


def check_inputs(tmp_path, model: bytes, input_sets):
    """Like test_ops.check, with given input sets (for int32 index inputs)."""
    path = tmp_path / "model.tflite"
    path.write_bytes(model)
    artifact = tvm_tinyml.build(str(path), target="host")
    for inputs in input_sets:
        (ours,), (ref,) = artifact.run_host(inputs), run_tflm(model, inputs)
        assert len(np.unique(ref)) >= min(4, ref.size)
        np.testing.assert_array_equal(ours.reshape(ref.shape), ref)


def movement_chain() -> bytes:
    """PAD (channels) -> STRIDED_SLICE (negative stride) -> GATHER (int32 input indices) ->
    MIRROR_PAD -> TRANSPOSE -> SPACE_TO_DEPTH -> conv."""
    b = ModelBuilder()
    x = act(b, [1, 4, 6, 4])
    idx = b.add_tensor([3], np.int32)
    p = act(b, [1, 4, 6, 6])
    b.add_operator("PAD", [x, b.add_tensor(**i32_const([[0, 0], [0, 0], [0, 0], [1, 1]]))], [p])
    s = act(b, [1, 4, 3, 6])
    consts = [b.add_tensor(**i32_const(v)) for v in ([0, 0, 5, 0], [1, 4, 0, 6], [1, 1, -2, 1])]
    b.add_operator("STRIDED_SLICE", [p, *consts], [s], end_mask=0b0100)
    g = act(b, [1, 4, 3, 3])
    b.add_operator("GATHER", [s, idx], [g], axis=3)
    m = act(b, [1, 6, 4, 3])
    b.add_operator("MIRROR_PAD", [g, b.add_tensor(**i32_const([[0, 0], [1, 1], [0, 1], [0, 0]]))], [m], mode=0)
    t = act(b, [1, 4, 6, 3])
    b.add_operator("TRANSPOSE", [m, b.add_tensor(**i32_const([0, 2, 1, 3]))], [t])
    d = act(b, [1, 2, 3, 12])
    b.add_operator("SPACE_TO_DEPTH", [t], [d], block_size=2)
    out, _ = add_conv(b, d, [1, 2, 3, 12], 5, kernel=1, seed=7)
    return b.build([x, idx], [out])


def test_movement_chain(tmp_path):
    check_inputs(tmp_path, movement_chain(), [[int8_data([1, 4, 6, 4], k), indices(6, [3], k)] for k in range(4)])


@pytest.mark.parametrize("target, flags", [
    ("stm32f746", ["-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-d16"]),
    ("stm32f412", ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]),
])
def test_movement_kernels_build_for_cortex_m(tmp_path, target, flags):
    path = tmp_path / "chain.tflite"
    path.write_bytes(movement_chain())
    artifact = tvm_tinyml.build(str(path), target=target)
    assert {"pad_nd", "strided_slice", "gather", "transpose"} <= set(artifact.metadata["layers"])
    out = artifact.export(tmp_path / "c")
    command = [shutil.which("arm-none-eabi-gcc") or "arm-none-eabi-gcc", *flags, "-O2", "-Wall", "-Werror", "-c",
               str(out / f"{artifact.name}.c"), "-o", str(tmp_path / "model.o")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stderr == "", result.stderr


@pytest.mark.parametrize("mode", [0, 1])  # REFLECT, SYMMETRIC
@pytest.mark.parametrize("shape, pads", [
    ([1, 4, 5, 2], [[0, 0], [2, 1], [1, 3], [0, 0]]),
    ([3, 4], [[1, 2], [0, 3]]),
    ([2, 3, 4], [[1, 0], [0, 2], [2, 2]]),
])
def test_mirror_pad(tmp_path, mode, shape, pads):
    check(tmp_path, unary("MIRROR_PAD", shape, [padded(shape, pads)], [i32_const(pads)], mode=mode))


def test_mirror_source_tables():
    assert mirror_source(4, 2, 3, 1).tolist() == [2, 1, 0, 1, 2, 3, 2, 1, 0]
    assert mirror_source(4, 2, 3, 0).tolist() == [1, 0, 0, 1, 2, 3, 3, 2, 1]


def test_mirror_pad_between_convs(tmp_path):
    pads = [[0, 0], [1, 1], [1, 1], [0, 0]]
    check(tmp_path, between_convs("MIRROR_PAD", [1, 4, 4, 3], [[1, 6, 6, 3]], [i32_const(pads)], mode=0))


# ---------------------------------------------------------------- block shuffles


@pytest.mark.parametrize("shape, block", [([1, 4, 6, 2], 2), ([2, 6, 3, 1], 3)])
def test_space_to_depth(tmp_path, shape, block):
    n, h, w, c = shape
    check(tmp_path, unary("SPACE_TO_DEPTH", shape, [[n, h // block, w // block, c * block * block]], block_size=block))


@pytest.mark.parametrize("shape, block", [([1, 2, 3, 8], 2), ([2, 1, 2, 18], 3)])
def test_depth_to_space(tmp_path, shape, block):
    n, h, w, c = shape
    check(tmp_path, unary("DEPTH_TO_SPACE", shape, [[n, h * block, w * block, c // (block * block)]], block_size=block))


def test_space_depth_between_convs(tmp_path):
    b = ModelBuilder()
    x = act(b, [1, 4, 4, 3])
    y, _ = add_conv(b, x, [1, 4, 4, 3], 3, kernel=1, seed=1, out_q=IN_Q)
    s = act(b, [1, 2, 2, 12])
    b.add_operator("SPACE_TO_DEPTH", [y], [s], block_size=2)
    z, _ = add_conv(b, s, [1, 2, 2, 12], 12, kernel=1, seed=2, out_q=IN_Q)
    d = act(b, [1, 4, 4, 3])
    b.add_operator("DEPTH_TO_SPACE", [z], [d], block_size=2)
    out, _ = add_conv(b, d, [1, 4, 4, 3], 4, kernel=3, seed=3)
    check(tmp_path, b.build([x], [out]))


@pytest.mark.parametrize("shape, block", [([1, 4, 6, 2], [2, 2]), ([2, 6, 6, 3], [3, 2]), ([1, 6, 2], [3])])
def test_space_to_batch_nd(tmp_path, shape, block):
    out_shape = [shape[0] * int(np.prod(block))] + [d // k for d, k in zip(shape[1:-1], block)] + [shape[-1]]
    pads = [[0, 0]] * len(block)
    check(tmp_path, unary("SPACE_TO_BATCH_ND", shape, [out_shape], [i32_const(block), i32_const(pads)]))


@pytest.mark.parametrize("shape, block, pads", [([2, 5, 4, 3], [2, 3], [[1, 0], [1, 1]]), ([1, 5, 2], [3], [[2, 2]])])
def test_space_to_batch_nd_padded(tmp_path, shape, block, pads):
    """TFLM's padding bytes are undefined (never-set output_offset): the data bytes must match
    TFLM exactly and the padding must be the output zero point, as in TFLite."""
    spatial = [d + a + b for d, (a, b) in zip(shape[1:-1], pads)]
    out_shape = [shape[0] * int(np.prod(block))] + [d // k for d, k in zip(spatial, block)] + [shape[-1]]
    model = unary("SPACE_TO_BATCH_ND", shape, [out_shape], [i32_const(block), i32_const(pads)], out_q=OTHER_Q)
    path = tmp_path / "s2b.tflite"
    path.write_bytes(model)
    artifact = tvm_tinyml.build(str(path), target="host")
    data = space_to_batch_mask(shape, block, pads)
    for seed in range(3):
        x = int8_data(shape, seed)
        (ours,), (ref,) = artifact.run_host([x]), run_tflm(model, [x])
        ours = ours.reshape(ref.shape)
        np.testing.assert_array_equal(ours[data], ref[data])
        assert np.all(ours[~data] == OTHER_Q["zero_point"]) and (~data).any() and len(np.unique(ref[data])) > 4


def space_to_batch_mask(shape, block, pads) -> np.ndarray:
    """Which SPACE_TO_BATCH_ND output elements hold input data (not padding), from the
    definition: out[(dy * bw + dx) * N + b, y, x] = padded[b, y * bh + dy, x * bw + dx]."""
    shape4 = shape if len(shape) == 4 else [shape[0], shape[1], 1, shape[2]]
    (bh, bw), pads4 = (block + [1])[:2], (pads + [[0, 0]])[:2]
    n, h, w, c = shape4
    inside = np.pad(np.ones((n, h, w, c), bool), [(0, 0), *pads4, (0, 0)])
    ph, pw = inside.shape[1:3]
    out = np.zeros((bh * bw * n, ph // bh, pw // bw, c), bool)
    for dy in range(bh):
        for dx in range(bw):
            out[(dy * bw + dx) * n:(dy * bw + dx + 1) * n] = inside[:, dy::bh, dx::bw]
    return out.reshape([bh * bw * n] + [ph // bh] + ([pw // bw] if len(shape) == 4 else []) + [c])


@pytest.mark.parametrize("shape, block, crops", [
    ([4, 2, 3, 2], [2, 2], [[0, 0], [0, 0]]),
    ([12, 3, 2, 3], [2, 3], [[1, 0], [2, 1]]),
    ([6, 3, 2], [3], [[2, 1]]),
])
def test_batch_to_space_nd(tmp_path, shape, block, crops):
    spatial = [d * k - a - b for d, k, (a, b) in zip(shape[1:-1], block, crops)]
    out_shape = [shape[0] // int(np.prod(block))] + spatial + [shape[-1]]
    model = unary("BATCH_TO_SPACE_ND", shape, [out_shape], [i32_const(block), i32_const(crops)])
    check(tmp_path, model)


def test_space_batch_between_convs(tmp_path):
    """The dilated-conv pattern TFLite converters emit: SPACE_TO_BATCH_ND -> conv -> BATCH_TO_SPACE_ND."""
    b = ModelBuilder()
    x = act(b, [1, 8, 8, 3])
    y, _ = add_conv(b, x, [1, 8, 8, 3], 3, kernel=1, seed=1, out_q=IN_Q)
    s = act(b, [4, 4, 4, 3])
    b.add_operator("SPACE_TO_BATCH_ND", [y, b.add_tensor(**i32_const([2, 2])), b.add_tensor(**i32_const([[0, 0], [0, 0]]))], [s])
    z, _ = add_conv(b, s, [4, 4, 4, 3], 4, kernel=3, padding="VALID", seed=2, out_q=IN_Q)
    d = act(b, [1, 3, 4, 4])
    b.add_operator("BATCH_TO_SPACE_ND", [z, b.add_tensor(**i32_const([2, 2])), b.add_tensor(**i32_const([[1, 0], [0, 0]]))], [d])
    out, _ = add_conv(b, d, [1, 3, 4, 4], 3, kernel=1, seed=3)
    check(tmp_path, b.build([x], [out]))


@pytest.mark.parametrize("op, in_shape, out_shape, consts, options", [
    ("SLICE", [4, 5], [2, 5], [i32_const([1, 0]), i32_const([2, -1])], {}),
    ("STRIDED_SLICE", [4, 5], [4, 2], [i32_const([0, 4]), i32_const([4, 0]), i32_const([1, -2])], {}),
    ("GATHER", [4, 5], [4, 3], [i32_const([4, 0, 2])], dict(axis=1)),
    ("MIRROR_PAD", [4, 5], [6, 5], [i32_const([[1, 1], [0, 0]])], dict(mode=1)),
    ("DEPTH_TO_SPACE", [1, 2, 2, 8], [1, 4, 4, 2], [], dict(block_size=2)),
    ("SQUEEZE", [1, 4, 5], [4, 5], [], {}),
])
def test_other_output_quantization_copies_bytes(tmp_path, op, in_shape, out_shape, consts, options):
    """TFLM moves the bytes whatever the output quantization: so do we."""
    check(tmp_path, unary(op, in_shape, [out_shape], consts, out_q=OTHER_Q, **options))


# ---------------------------------------------------------------- overlap rules, replayed


@st.composite
def movement_kernels(draw):
    """A random pad_nd or strided_slice kernel: (op, attrs, in_shape, out_shape)."""
    in_shape = draw(st.lists(st.integers(1, 5), min_size=1, max_size=4))
    if draw(st.booleans()):
        before = [draw(st.integers(0, 2)) for _ in in_shape]
        out_shape = [d + b + draw(st.integers(0, 2)) for d, b in zip(in_shape, before)]
        return "pad_nd", {"before": before, "pad_value": 0}, in_shape, out_shape
    begin, strides, out_shape = [], [], []
    for d in in_shape:
        stride = draw(st.sampled_from([-2, -1, 1, 2, 3]))
        start = draw(st.integers(0, d - 1))
        room = start // -stride + 1 if stride < 0 else (d - 1 - start) // stride + 1
        begin.append(start)
        strides.append(stride)
        out_shape.append(draw(st.integers(1, room)))
    return "strided_slice", {"begin": begin, "strides": strides}, in_shape, out_shape


@settings(max_examples=150, deadline=None)
@given(kernel=movement_kernels())
def test_movement_overlap_rules_are_safe_and_tight(kernel):
    op, attrs, in_shape, out_shape = kernel
    delta = max_overlap_delta(op, attrs, 0, [tuple(in_shape)], 1, tuple(out_shape), 1)
    trace = kernel_trace(op, attrs, [in_shape], out_shape, 0)
    in_size, out_size = int(np.prod(in_shape)), int(np.prod(out_shape))
    assert delta is not None
    assert overlap_is_safe(trace, delta, in_size)
    assert delta > 0 or delta == max(d for d in range(-out_size, 1) if overlap_is_safe(trace, d, in_size))


# ---------------------------------------------------------------- refused cases


def build_refused(tmp_path, model: bytes, message: str) -> None:
    path = tmp_path / "refused.tflite"
    path.write_bytes(model)
    with pytest.raises(UnsupportedOperatorError, match=message):
        tvm_tinyml.build(str(path), target="host")


def test_int16_slice_is_refused(tmp_path):
    q16 = dict(scale=0.001, zero_point=0, dtype=np.int16)
    model = unary("SLICE", [4, 4], [[2, 4]], [i32_const([1, 0]), i32_const([2, -1])], in_q=q16, out_q=q16)
    build_refused(tmp_path, model, r"SLICE on int16 tensors \(int8 only\)")


def test_too_wide_mirror_pad_is_refused(tmp_path):
    model = unary("MIRROR_PAD", [1, 2, 4, 2], [[1, 6, 4, 2]], [i32_const([[0, 0], [2, 2], [0, 0], [0, 0]])], mode=0)
    build_refused(tmp_path, model, r"MIRROR_PAD wider than the axis \(1 at most\)")


def test_empty_strided_slice_is_refused(tmp_path):
    model = unary("STRIDED_SLICE", [4, 4], [[0, 4]], [i32_const([3, 0]), i32_const([1, 4]), i32_const([1, 1])])
    path = tmp_path / "refused.tflite"
    path.write_bytes(model)
    with pytest.raises(TinyMLError, match=r"dimension 0 is 0 \(shape \[0, 4\]\)"):  # the validator, before import
        tvm_tinyml.build(str(path), target="host")
