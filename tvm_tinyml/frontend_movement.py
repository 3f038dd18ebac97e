"""TFLite data-movement operators on int8 tensors, with TFLite Micro's semantics.

These operators only move bytes in TFLite Micro (no requantization), so they are imported
as integer Relax ops on the int8 tensors themselves, never in QDQ form: reshape (RESHAPE,
SQUEEZE, EXPAND_DIMS), strided_slice with canonical begins (SLICE, STRIDED_SLICE, SPLIT, SPLIT_V,
UNPACK), concat (PACK), nn.pad (PAD, PADV2, SPACE_TO_BATCH_ND), take (GATHER, MIRROR_PAD as
one index table per padded axis) and permute_dims (TRANSPOSE, SPACE_TO_DEPTH,
DEPTH_TO_SPACE, SPACE_TO_BATCH_ND, BATCH_TO_SPACE_ND). QuantizeRealize turns each into one
kernel (reshape stays an alias).
"""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax
from tvm.relax.frontend.tflite import tflite_frontend

MOVEMENT_OPS = frozenset(
    {
        "SQUEEZE",
        "EXPAND_DIMS",
        "PACK",
        "UNPACK",
        "SPLIT",
        "SPLIT_V",
        "SLICE",
        "STRIDED_SLICE",
        "GATHER",
        "MIRROR_PAD",
        "SPACE_TO_DEPTH",
        "DEPTH_TO_SPACE",
        "SPACE_TO_BATCH_ND",
        "BATCH_TO_SPACE_ND",
        "PAD",
        "PADV2",
        "TRANSPOSE",
        "RESHAPE",
    }
)


def _unsupported(message: str):
    return tvm.error.OpNotImplemented(message)


def strided_slice_axes(shape, begin, end, strides, begin_mask: int, end_mask: int, shrink_mask: int):
    """Per-axis (start, step, count) of TFLite Micro's STRIDED_SLICE (strided_slice_logic.h).

    TFLite Micro ignores ellipsis_mask, new_axis_mask and the offset option.
    """
    axes = []
    for axis, size in enumerate(shape):
        stride, bit = int(strides[axis]), 1 << axis
        if stride == 0:
            raise _unsupported("STRIDED_SLICE with a zero stride")
        start = _clamp_index(int(begin[axis]), size, stride)
        if begin_mask & bit:
            start = 0 if stride > 0 else size - 1
        if shrink_mask & bit:
            stop = start if start >= size else start + 1
        else:
            stop = _clamp_index(int(end[axis]), size, stride)
            if end_mask & bit:
                stop = size if stride > 0 else -1
        count = max(0, -(-(stop - start) // stride))
        axes.append((start, stride, count))
    return axes


def _clamp_index(index: int, size: int, stride: int) -> int:
    """A begin/end index made non-negative and clamped as TFLite does for the stride's sign."""
    if index < 0:
        index += size
    low, high = (0, size) if stride > 0 else (-1, size - 1)
    return min(max(index, low), high)


def mirror_source(size: int, before: int, after: int, offset: int) -> np.ndarray:
    """Input index of each padded position along one axis (mirror_pad.cc GetInputDimension);
    offset 1 is REFLECT (edge not repeated), 0 is SYMMETRIC."""
    source = []
    for p in range(before + size + after):
        if p < before:
            first = before + offset - 1
            source.append(first - min(p, first - offset))
        elif p - before >= size:
            last = size - (1 + offset)
            source.append(last - min(p - before - size, last))
        else:
            source.append(p - before)
    return np.array(source, np.int32)


class MovementConverter:
    """Mixin for QDQOperatorConverter: int8 data-movement converters (see module doc)."""

    # ---------------------------------------------------------------- helpers
    def _movement_input(self, op, index: int = 0):
        """(expr, shape) of an int8 input; other quantized types are refused."""
        tensor = self.get_input_tensors(op)[index]
        dtype = self.get_tensor_type_str(tensor.tensor.Type())
        if dtype != "int8":
            raise _unsupported(f"{self.get_op_code_str(op)} on {dtype} tensors (int8 only)")
        return self.get_tensor_expr(tensor), [int(d) for d in self.get_tensor_shape(tensor)]

    def _output_shape(self, op, index: int = 0) -> list[int]:
        """The TFLite shape of output `index`."""
        return [int(d) for d in self.get_tensor_shape(self.get_output_tensors(op)[index])]

    def _const_ints(self, op, index: int) -> list[int]:
        """The flattened values of constant input `index`; refused if it is computed."""
        tensor = self.get_input_tensors(op)[index]
        if self.has_expr(tensor.tensor_idx):
            raise _unsupported(f"{self.get_op_code_str(op)} with a non-constant input {index}")
        return [int(v) for v in np.asarray(self.get_tensor_value(tensor)).reshape(-1)]

    def _output_zero_point(self, op) -> int:
        return int(tflite_frontend.get_scalar_from_constant(self.get_output_tensors(op)[0].qnn_params["zero_point"]))

    def _options(self, op, name: str):
        """The op's builtin options table `name` (e.g. "SplitOptions")."""
        module = __import__(f"tflite.{name}", fromlist=[name])
        return self._get_builtin_options(op, getattr(module, name))

    def _strided(self, expr, shape, axes, out_shape, what: str):
        """strided_slice of (start, step, count) per axis, then reshape to `out_shape`."""
        if any(count <= 0 for _, _, count in axes):
            raise _unsupported(f"{what} with an empty output")
        begin, end, strides = [], [], []
        for (start, step, count), size in zip(axes, shape):
            last = start + (count - 1) * step
            stop = last + (1 if step > 0 else -1)
            begin.append(start)
            strides.append(step)
            end.append(stop if stop >= 0 else -size - 1)  # relax reads a negative end from the back
        if all((start, step, count) == (0, 1, size) for (start, step, count), size in zip(axes, shape)):
            return relax.op.reshape(expr, out_shape)
        out = relax.op.strided_slice(expr, list(range(len(shape))), begin, end, strides)
        return relax.op.reshape(out, out_shape)

    @staticmethod
    def _whole(shape, axis: int, start: int, count: int):
        """Slice axes taking `count` elements from `start` on `axis` and everything elsewhere."""
        return [(start, 1, count) if a == axis else (0, 1, d) for a, d in enumerate(shape)]

    def _split(self, op, expr, shape, axis: int, sizes: list[int]):
        """One slice per output, of `sizes[k]` elements along `axis` (a tuple if several)."""
        axis %= len(shape)
        starts = np.cumsum([0] + sizes[:-1])
        parts = [
            self._strided(expr, shape, self._whole(shape, axis, int(s), n), self._output_shape(op, k), "SPLIT")
            for k, (s, n) in enumerate(zip(starts, sizes))
        ]
        return relax.Tuple(parts) if len(parts) > 1 else parts[0]

    # ---------------------------------------------------------------- reshapes
    def _reshaped(self, op):
        """The int8 input reshaped to the output tensor's shape."""
        expr, _ = self._movement_input(op)
        return relax.op.reshape(expr, self._output_shape(op))

    def convert_reshape(self, op):
        """RESHAPE of int8 (TFLite Micro copies bytes whatever the quantization)."""
        if not self.is_quantized(op) or self.get_tensor_type_str(self.get_input_tensors(op)[0].tensor.Type()) != "int8":
            return super().convert_reshape(op)
        return self._reshaped(op)

    def convert_squeeze(self, op):
        """SQUEEZE: a reshape."""
        return self._reshaped(op) if self.is_quantized(op) else super().convert_squeeze(op)

    def convert_expand_dims(self, op):
        """EXPAND_DIMS: a reshape."""
        return self._reshaped(op) if self.is_quantized(op) else super().convert_expand_dims(op)

    # ---------------------------------------------------------------- slices
    def convert_slice(self, op):
        """SLICE: begin and size (-1: to the end) per axis."""
        if not self.is_quantized(op):
            return super().convert_slice(op)
        expr, shape = self._movement_input(op)
        begin, size = self._const_ints(op, 1), self._const_ints(op, 2)
        axes = [(b, 1, d - b if n == -1 else n) for b, n, d in zip(begin, size, shape)]
        return self._strided(expr, shape, axes, self._output_shape(op), "SLICE")

    def convert_strided_slice(self, op):
        """STRIDED_SLICE with begin/end masks, shrink_axis_mask and negative strides."""
        if not self.is_quantized(op):
            return super().convert_strided_slice(op)
        expr, shape = self._movement_input(op)
        if len(shape) > 4:
            raise _unsupported("STRIDED_SLICE on more than 4 dimensions")
        options = self._options(op, "StridedSliceOptions")
        begin, end, strides = (self._const_ints(op, i) for i in (1, 2, 3))
        if not len(begin) == len(end) == len(strides) == len(shape):
            raise _unsupported("STRIDED_SLICE with begin/end/strides not one per input axis")
        axes = strided_slice_axes(
            shape, begin, end, strides, options.BeginMask(), options.EndMask(), options.ShrinkAxisMask()
        )
        kept = [count for axis, (_, _, count) in enumerate(axes) if not options.ShrinkAxisMask() & (1 << axis)]
        out_shape = self._output_shape(op)
        if kept != out_shape:
            raise _unsupported(f"STRIDED_SLICE whose output shape {out_shape} is not the slice's {kept}")
        return self._strided(expr, shape, axes, out_shape, "STRIDED_SLICE")

    def convert_split(self, op):
        """SPLIT into num_splits equal parts (inputs: axis, data)."""
        if self.get_input_tensors(op)[1].qnn_params is None:
            return super().convert_split(op)
        expr, shape = self._movement_input(op, 1)
        (axis,) = self._const_ints(op, 0)
        count = self._options(op, "SplitOptions").NumSplits()
        return self._split(op, expr, shape, axis, [shape[axis % len(shape)] // count] * count)

    def convert_split_v(self, op):
        """SPLIT_V with explicit sizes (one may be -1: the rest)."""
        if not self.is_quantized(op):
            return super().convert_split_v(op)
        expr, shape = self._movement_input(op)
        sizes, (axis,) = self._const_ints(op, 1), self._const_ints(op, 2)
        if -1 in sizes:
            sizes[sizes.index(-1)] = shape[axis % len(shape)] - (sum(sizes) + 1)
        return self._split(op, expr, shape, axis, sizes)

    def convert_unpack(self, op):
        """UNPACK: one slice of size 1 per output, the axis dropped."""
        if not self.is_quantized(op):
            return super().convert_unpack(op)
        expr, shape = self._movement_input(op)
        options = self._options(op, "UnpackOptions")
        axis = options.Axis() % len(shape)
        return self._split(op, expr, shape, axis, [1] * shape[axis])

    def convert_pack(self, op):
        """PACK: each input reshaped with a new unit axis, then concatenated."""
        if not self.is_quantized(op):
            return super().convert_pack(op)
        out_shape = self._output_shape(op)
        axis = self._options(op, "PackOptions").Axis() % len(out_shape)
        unit = out_shape[:axis] + [1] + out_shape[axis + 1 :]
        parts = [relax.op.reshape(self._movement_input(op, i)[0], unit) for i in range(len(self.get_input_tensors(op)))]
        return relax.op.concat(parts, axis)

    # ---------------------------------------------------------------- gathers
    def convert_gather(self, op):
        """GATHER along an axis with int32 indices (constant, or an activation if batch_dims is 0)."""
        if not self.is_quantized(op):
            return super().convert_gather(op)
        expr, shape = self._movement_input(op)
        options = self._options(op, "GatherOptions")
        indices = self.get_input_tensors(op)[1]
        if self.get_tensor_type_str(indices.tensor.Type()) != "int32":
            raise _unsupported("GATHER with non-int32 indices")
        axis = options.Axis() % len(shape)
        index_shape = [int(d) for d in self.get_tensor_shape(indices)]
        batch_dims = options.BatchDims() + (len(index_shape) if options.BatchDims() < 0 else 0)
        if self.has_expr(indices.tensor_idx):
            if batch_dims:
                raise _unsupported("GATHER with batch_dims and non-constant indices")
            return relax.op.take(expr, self.get_expr(indices.tensor_idx), axis=axis)
        values = np.asarray(self.get_tensor_value(indices), np.int64).reshape(index_shape)
        if values.size and (values.min() < 0 or values.max() >= shape[axis]):
            raise _unsupported(f"GATHER with indices outside [0, {shape[axis]})")
        out_shape = self._output_shape(op)
        if batch_dims == 0:
            return relax.op.take(expr, relax.const(values.astype(np.int32)), axis=axis)
        # batch_dims > 0: gather rows of the input flattened to [batch * outer * axis, inner].
        batch, outer = int(np.prod(shape[:batch_dims])), int(np.prod(shape[batch_dims:axis]))
        inner = int(np.prod(shape[axis + 1 :]))
        coords = values.reshape(batch, 1, -1)
        rows = (np.arange(batch)[:, None, None] * outer + np.arange(outer)[None, :, None]) * shape[axis] + coords
        flat = relax.op.reshape(expr, [batch * outer * shape[axis], inner])
        out = relax.op.take(flat, relax.const(rows.reshape(-1).astype(np.int32)), axis=0)
        return relax.op.reshape(out, out_shape)

    def convert_mirror_pad(self, op):
        """MIRROR_PAD (REFLECT or SYMMETRIC): one index-table GATHER per padded axis."""
        if not self.is_quantized(op):
            return super().convert_mirror_pad(op)
        from tflite.MirrorPadMode import MirrorPadMode

        expr, shape = self._movement_input(op)
        pads = self._const_ints(op, 1)
        offset = 1 if self._options(op, "MirrorPadOptions").Mode() == MirrorPadMode.REFLECT else 0
        for axis, size in enumerate(shape):
            before, after = pads[2 * axis], pads[2 * axis + 1]
            if before or after:
                if max(before, after) > size - offset:
                    raise _unsupported(f"MIRROR_PAD wider than the axis ({size - offset} at most)")
                table = mirror_source(size, before, after, offset)
                expr = relax.op.take(expr, relax.const(table), axis=axis)
        return expr

    # ---------------------------------------------------------------- pads and permutations
    def convert_pad(self, op):
        """PAD / PADV2 on any axes, padding with the output zero point or the raw constant value."""
        if not self.is_quantized(op):
            return super().convert_pad(op)
        expr, _ = self._movement_input(op)
        widths = self._const_ints(op, 1)
        inputs = self.get_input_tensors(op)
        if len(inputs) == 3:
            value = int(np.asarray(self.get_tensor_value(inputs[2])).reshape(-1)[0])
        else:
            value = self._output_zero_point(op)
        return relax.op.nn.pad(expr, pad_width=widths, pad_value=float(value))

    def convert_transpose(self, op):
        """TRANSPOSE of any rank."""
        if not self.is_quantized(op):
            return super().convert_transpose(op)
        expr, shape = self._movement_input(op)
        axes = self._const_ints(op, 1) or list(range(len(shape)))[::-1]
        return relax.op.permute_dims(expr, axes)

    def _regroup(self, expr, split_shape, axes, out_shape):
        """reshape -> permute_dims -> reshape: the block shuffles of the *_TO_* operators."""
        return relax.op.reshape(relax.op.permute_dims(relax.op.reshape(expr, split_shape), axes), out_shape)

    def convert_space_to_depth(self, op):
        """SPACE_TO_DEPTH (NHWC): out[b, y, x, (dy * bs + dx) * C + c] = in[b, y*bs + dy, x*bs + dx, c]."""
        if not self.is_quantized(op):
            return super().convert_space_to_depth(op)
        expr, (n, h, w, c) = self._movement_input(op)
        bs = self._options(op, "SpaceToDepthOptions").BlockSize()
        return self._regroup(expr, [n, h // bs, bs, w // bs, bs, c], [0, 1, 3, 2, 4, 5], self._output_shape(op))

    def convert_depth_to_space(self, op):
        """DEPTH_TO_SPACE (NHWC), the inverse of SPACE_TO_DEPTH."""
        if not self.is_quantized(op):
            return super().convert_depth_to_space(op)
        expr, (n, h, w, c) = self._movement_input(op)
        bs = self._options(op, "DepthToSpaceOptions").BlockSize()
        return self._regroup(expr, [n, h, w, bs, bs, c // (bs * bs)], [0, 1, 3, 2, 4, 5], self._output_shape(op))

    def _spatial_4d(self, op, shape, pairs_index: int):
        """Input shape as NHWC (3-D inputs get W = 1), block shape and the flat pads/crops pairs."""
        block = self._const_ints(op, 1)
        pairs = self._const_ints(op, pairs_index)
        if len(shape) == 3:
            shape, block, pairs = [shape[0], shape[1], 1, shape[2]], block + [1], pairs + [0, 0]
        if len(shape) != 4:
            raise _unsupported(f"{self.get_op_code_str(op)} on {len(shape)}-D tensors (3-D or 4-D)")
        return shape, block, pairs

    def convert_space_to_batch_nd(self, op):
        """SPACE_TO_BATCH_ND: pad H and W with the output zero point, then shuffle the blocks
        into the batch: out batch (dy * bw + dx) * N + b.

        (TFLite pads with the zero point; TFLite Micro with `output_offset` of a persistent
        buffer it never sets, so its padding bytes are undefined.)
        """
        if not self.is_quantized(op):
            return super().convert_space_to_batch_nd(op)
        expr, shape = self._movement_input(op)
        (n, h, w, c), (bh, bw), (top, bottom, left, right) = self._spatial_4d(op, shape, 2)
        expr = relax.op.reshape(expr, [n, h, w, c])
        if top or bottom or left or right:
            value = float(self._output_zero_point(op))
            expr = relax.op.nn.pad(expr, pad_width=[0, 0, top, bottom, left, right, 0, 0], pad_value=value)
        h, w = h + top + bottom, w + left + right
        return self._regroup(expr, [n, h // bh, bh, w // bw, bw, c], [2, 4, 0, 1, 3, 5], self._output_shape(op))

    def convert_batch_to_space_nd(self, op):
        """BATCH_TO_SPACE_ND: shuffle batch blocks back into H and W, then crop."""
        if not self.is_quantized(op):
            return super().convert_batch_to_space_nd(op)
        expr, shape = self._movement_input(op)
        (nb, h, w, c), (bh, bw), (top, bottom, left, right) = self._spatial_4d(op, shape, 2)
        n = nb // (bh * bw)
        full = [n, h * bh, w * bw, c]
        expr = self._regroup(expr, [bh, bw, n, h, w, c], [2, 3, 0, 4, 1, 5], full)
        crop = [(0, 1, n), (top, 1, full[1] - top - bottom), (left, 1, full[2] - left - right), (0, 1, c)]
        return self._strided(expr, full, crop, self._output_shape(op), "BATCH_TO_SPACE_ND")
