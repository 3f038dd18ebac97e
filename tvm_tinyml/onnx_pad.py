"""ONNX Pad imported as Relax ops our realizer sees through.

TVM's ONNX importer lowers every Pad mode to its own TIR kernel (topi pad, mirror_pad,
replicate_pad), which hides the pad widths from a quantization pass. `relax_pad_converters()`
gives the importer a Pad converter that emits `relax.nn.pad` for mode "constant" and, for
"reflect" and "edge", one constant-index `relax.take` per padded axis (the MIRROR_PAD scheme of
the TFLite importer), so a QDQ Pad realizes into our int8 pad and gather kernels.
"""

from __future__ import annotations

import contextlib

import numpy as np
import tvm
from tvm import relax
from tvm.relax.frontend.onnx import onnx_frontend

from tvm_tinyml.frontend_movement import mirror_source


def _edge_source(size: int, before: int, after: int) -> np.ndarray:
    """Input index of each position along one axis padded by repeating its edge values."""
    return np.clip(np.arange(-before, size + after), 0, size - 1).astype(np.int32)


def _dequantized_constant(expr) -> float:
    """The float value of a constant scalar, or of DequantizeLinear applied to one."""
    if isinstance(expr, tvm.ir.GenericConst):
        return float(expr.value.numpy().reshape(-1)[0])
    if isinstance(expr, relax.Call) and expr.op.name == "relax.dequantize" and all(isinstance(a, tvm.ir.GenericConst) for a in expr.args):
        q, scale, zero_point = (float(a.value.numpy().reshape(-1)[0]) for a in expr.args)
        return (q - zero_point) * scale
    raise ValueError("Pad's constant_value must be a constant")


class RelaxPad(onnx_frontend.Pad):
    """Pad (opset 11 and later) as relax.nn.pad or constant-index takes."""

    @classmethod
    def _lower_pad(cls, bb, inputs, attr, params, allowed_modes):
        mode = attr.get("mode", b"constant").decode("utf-8")
        if mode not in ("constant", "reflect", "edge"):
            return super()._lower_pad(bb, inputs, attr, params, allowed_modes)
        if len(inputs) > 2 and inputs[2] is not None:  # a quantized pad value arrives dequantized
            inputs = [*inputs[:2], relax.const(np.float32(_dequantized_constant(inputs[2]))), *inputs[3:]]
        before, after, value = cls._parse_pads_and_axes(inputs, params)
        expr = inputs[0]
        if mode == "constant":
            widths = [int(w) for pair in zip(before, after) for w in pair]
            return bb.normalize(relax.op.nn.pad(expr, pad_width=widths, pad_value=float(value)))
        shape = [int(d) for d in expr.ty.shape]
        for axis, (size, b, a) in enumerate(zip(shape, before, after)):
            if b or a:
                table = mirror_source(size, int(b), int(a), 1) if mode == "reflect" else _edge_source(size, int(b), int(a))
                expr = bb.normalize(relax.op.take(expr, relax.const(table), axis=axis))
        return expr


@contextlib.contextmanager
def relax_pad_converters():
    """While importing: TVM's ONNX importer takes `RelaxPad` for Pad."""
    original = onnx_frontend._get_convert_map

    def convert_map() -> dict:
        return {**original(), "Pad": RelaxPad}

    onnx_frontend._get_convert_map = convert_map
    try:
        yield
    finally:
        onnx_frontend._get_convert_map = original
