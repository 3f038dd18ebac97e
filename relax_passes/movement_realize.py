"""QuantizeRealize for int8 data-movement ops: each becomes one byte-moving kernel.

The TFLite importer (`tvm_tinyml.frontend_movement`) emits these on the int8 tensors
themselves; quantization passes through unchanged, as in TFLite Micro. A spatial-only pad of
a 4-D activation stays the "pad" kernel that a following convolution absorbs as padding.
"""

from __future__ import annotations

import numpy as np
from tvm import relax
from tvm.ir.expr import Call, Var

from schedules import qnn_compute as qc
from schedules import qnn_movement as qm
from tvm_tinyml.errors import UnsupportedOperatorError

MOVEMENT_RELAX_OPS = frozenset(
    {"relax.strided_slice", "relax.permute_dims", "relax.nn.pad", "relax.take", "relax.concat"}
)


def _ints(expr) -> list[int]:
    """Python ints of a Relax tuple of PrimValues or a ShapeExpr."""
    values = expr.values if isinstance(expr, relax.ShapeExpr) else [f.value for f in expr.fields]
    return [int(v) for v in values]


def shape_of(expr) -> list[int]:
    """The static shape of a Relax expression, as ints."""
    return [int(d) for d in expr.ty.shape]


def canonical_begin(begin: int, size: int, stride: int) -> int:
    """A strided_slice begin as Relax reads it: negative from the back, clamped for the stride's sign."""
    if begin < 0:
        begin += size
    low, high = (0, size) if stride > 0 else (-1, size - 1)
    return min(max(begin, low), high)


class MovementRealizer:
    """Mixin for `_Realizer` (uses its env, bindings, `_emit`, `_constant` and `pad_of`)."""

    def _movement_sources(self, name: str, value: Call) -> list | None:
        """The realized int8 operands of data-movement op `name`, or None if they are not activations."""
        if name == "relax.concat":
            fields = self._def(value.args[0]).fields
            return [self.env[f] for f in fields] if all(f in self.env for f in fields) else None
        return [self.env[value.args[0]]] if value.args[0] in self.env else None

    def _realize_movement(self, name: str, var: Var, value: Call):
        """Emit the kernel of int8 data-movement op `name` whose operands are realized."""
        sources = self._movement_sources(name, value)
        if name == "relax.concat":
            return self._emit(qc.concatenate, sources, axis=int(value.attrs.axis) % len(var.ty.shape), op="concatenate")
        (src,) = sources
        if name == "relax.permute_dims":
            rank = len(var.ty.shape)
            axes = [int(a) % rank for a in value.attrs.axes] if value.attrs.axes is not None else list(range(rank))[::-1]
            return self._emit(qc.transpose, src, axes=axes, op="transpose")
        if name == "relax.strided_slice":
            return self._realize_strided_slice(var, value, src)
        if name == "relax.nn.pad":
            return self._realize_int8_pad(var, value, src)
        return self._realize_take(var, value, src)

    def _realize_strided_slice(self, var: Var, value: Call, src):
        shape = shape_of(value.args[0])
        begin, strides = [0] * len(shape), [1] * len(shape)
        steps = _ints(value.args[4]) if len(value.args) > 4 else [1] * len(shape)
        for axis, b, s in zip(_ints(value.args[1]), _ints(value.args[2]), steps):
            axis %= len(shape)
            begin[axis], strides[axis] = canonical_begin(b, shape[axis], s), s
        return self._emit(qm.strided, src, begin=begin, strides=strides, out_shape=shape_of(var), op="strided_slice")

    def _realize_int8_pad(self, var: Var, value: Call, src):
        attrs = value.attrs
        if attrs.pad_mode != "constant":
            raise UnsupportedOperatorError(f"int8 pad mode {attrs.pad_mode} is not supported")
        return self._pad_kernel(src, [int(w) for w in attrs.pad_width], int(attrs.pad_value), shape_of(var))

    def _pad_kernel(self, src, widths: list[int], pad_value: int, out_shape: list[int]):
        """A spatial-only pad of a 4-D activation is the "pad" kernel a following convolution
        absorbs (`pad_of`); any other pad is a "pad_nd" kernel."""
        if not -128 <= pad_value <= 127:
            raise UnsupportedOperatorError(f"PAD value {pad_value} is outside the int8 range")
        h, w = (1, 2) if self.layout == "NHWC" else (2, 3)
        if len(widths) == 8 and not any(v for i, v in enumerate(widths) if i // 2 not in (h, w)):
            pads = (widths[2 * h], widths[2 * w], widths[2 * h + 1], widths[2 * w + 1])
            result = self._emit(qc.pad, src, op="pad", pads=pads, pad_value=pad_value, layout=self.layout)
            self.pad_of[result] = (src, pads, pad_value)
            return result
        return self._emit(qm.pad_nd, src, before=widths[0::2], out_shape=out_shape, pad_value=pad_value, op="pad_nd")

    def _realize_take(self, var: Var, value: Call, src):
        axis = int(value.attrs.axis) % len(value.args[0].ty.shape)
        const = self._constant(value.args[1])
        if const is not None:
            size = int(value.args[0].ty.shape[axis])
            const = np.where(const < 0, const + size, const)  # numpy/ONNX negative indices
            if const.size and (const.min() < 0 or const.max() >= size):
                raise UnsupportedOperatorError(f"GATHER with constant indices outside [0, {size})")
            return self._emit(qm.take, src, relax.const(const.astype(np.int32)), axis=axis, clamp=False, op="gather")
        indices = self.env.get(value.args[1])
        if indices is None or value.args[1].ty.dtype != "int32":
            raise UnsupportedOperatorError("GATHER indices must be int32 constants or int32 model inputs")
        return self._emit(qm.take, src, indices, axis=axis, clamp=True, op="gather")
