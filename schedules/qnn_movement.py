"""Data-movement compute definitions (int8 in, same bytes out), TOPI style.

These kernels only move bytes, as TFLite Micro's PAD, SLICE, STRIDED_SLICE, SPLIT, GATHER,
MIRROR_PAD... do: no requantization. Each returns one tensor named "out" so the default
schedule applies; reshapes are aliases and never become kernels.
"""

from __future__ import annotations

from typing import Sequence

from tvm import te, tirx

INT8 = "int8"


def strided(data: te.Tensor, *, begin: Sequence[int], strides: Sequence[int], out_shape: Sequence[int]) -> te.Tensor:
    """out[i] = data[begin + i * strides] per axis (strides may be negative; all reads in bounds)."""
    return te.compute(
        tuple(out_shape),
        lambda *i: data[tuple(b + s * x for b, s, x in zip(begin, strides, i))],
        name="out",
    )


def pad_nd(data: te.Tensor, *, before: Sequence[int], out_shape: Sequence[int], pad_value: int) -> te.Tensor:
    """Constant padding on any axes: `before[a]` elements before axis a, `pad_value` outside."""

    def _value(*i):
        src = tuple(x - b for x, b in zip(i, before))
        inside = [
            tirx.all(s >= 0, s < int(dim))
            for s, b, dim, out in zip(src, before, data.shape, out_shape)
            if b or int(out) != int(dim)
        ]
        if not inside:
            return data[src]
        return tirx.if_then_else(tirx.all(*inside), data[src], tirx.const(pad_value, data.dtype))

    return te.compute(tuple(out_shape), _value, name="out")


def take(data: te.Tensor, indices: te.Tensor, *, axis: int, clamp: bool) -> te.Tensor:
    """GATHER along `axis` with int32 `indices` (batch_dims 0): the axis becomes indices' shape.

    With `clamp` (indices computed at run time) an index is clamped into the axis, so a bad
    index cannot read outside the tensor.
    """
    rank = len(indices.shape)
    size = int(data.shape[axis])
    out_shape = tuple(data.shape[:axis]) + tuple(indices.shape) + tuple(data.shape[axis + 1 :])

    def _value(*i):
        index = indices[i[axis : axis + rank]]
        if clamp:
            index = tirx.max(tirx.min(index, size - 1), 0)
        return data[i[:axis] + (index,) + i[axis + rank :]]

    return te.compute(out_shape, _value, name="out")
