"""QuantizeRealize handler for ONNX: an elementwise float chain of one int8 tensor as a table.

ONNX QDQ models mean what onnxruntime computes node by node in float (`ORT_DISABLE_ALL`):
dequantize, the float op, quantize with round-half-to-even. For a chain of elementwise float
ops whose only activation leaf is one dequantized int8 tensor (Sigmoid, Tanh, HardSigmoid,
HardSwish, LeakyRelu, PRelu, Clip, Relu, and arithmetic with constants), that result depends
on the int8 input value alone, or on it and the index along one axis when a constant varies
there (PRelu's per-channel slope); a reshape in the chain (QOperator's float Flatten before an
island) is a view of the table's result. `ExactLookupRealizer` evaluates the chain in float32 at
compile time for all 256 input values and emits one table lookup, 256 entries (`lookup`) or
256 per channel (`lookup_channel`). The TFLite path never uses it (its kernels follow TFLM).
"""

from __future__ import annotations

import numpy as np
from tvm import relax
from tvm.ir.expr import Call

from schedules import qnn_activations as qa

_F32 = np.float32
_UNARY = {
    "relax.sigmoid": lambda x: _F32(1) / (_F32(1) + np.exp(-x)),
    "relax.tanh": np.tanh,
    "relax.exp": np.exp,
    "relax.negative": np.negative,
    "relax.abs": np.abs,
    "relax.nn.relu": lambda x: np.maximum(x, _F32(0)),
}
_BINARY = {
    "relax.add": np.add,
    "relax.subtract": np.subtract,
    "relax.multiply": np.multiply,
    "relax.divide": np.divide,
    "relax.minimum": np.minimum,
    "relax.maximum": np.maximum,
}


class _NotElementwise(Exception):
    """The float expression is not an elementwise chain of one dequantized tensor."""


class ExactLookupRealizer:
    """Mixin for `quantize_realize._Realizer` (uses `_def`, `_dequant`, `_constant`, `_emit`)."""

    def _exact_lookup(self, expr, out_scale: float, out_zp: int, lo: int, hi: int):
        """The table kernel for quantize(expr) if `expr` is such a chain (see module doc), else None."""
        real = self._chain_values(expr)
        if real is None:
            return None
        q = np.rint(real / _F32(out_scale)) + out_zp
        return self._table_kernel(np.clip(q, lo, hi).astype(np.int8), expr, "lookup")

    def _float_lookup(self, expr):
        """A float32 model output that is such a chain (QOperator leaves a float HardSigmoid at the
        end): one int8 -> float32 table, the chain's exact float values, else None."""
        real = self._chain_values(expr)
        return None if real is None else self._table_kernel(real, expr, "lookup_f32")

    def _chain_values(self, expr) -> np.ndarray | None:
        """The chain's float32 values for the 256 inputs (axis 0), or None if it is not one."""
        self._leaf, self._viewed = None, False
        rank = len(expr.ty.shape) if isinstance(expr.ty, relax.TensorType) and expr.ty.shape is not None else 0
        values = np.arange(-128, 128, dtype=np.int32).reshape((256,) + (1,) * rank)
        try:
            real = self._evaluate(expr, values, rank)
        except _NotElementwise:
            return None
        if self._leaf is None or _op_name(self._def(expr)) == "relax.dequantize":
            return None  # a constant, or a plain requantize (its own kernel)
        leaf_shape, shape = ([int(d) for d in e.ty.shape] for e in (self._leaf.src, expr))
        if leaf_shape != shape and not (self._viewed and np.prod(leaf_shape) == np.prod(shape)):
            return None  # a constant broadcasts the tensor to a larger shape
        return real.astype(_F32)

    def _table_kernel(self, table: np.ndarray, expr, op: str):
        """`lookup` / `lookup_channel` of the chain's leaf with `table` (axis 0: the 256 inputs)."""
        shape = [int(d) for d in expr.ty.shape]
        varying = [a for a, d in enumerate(table.shape[1:]) if d != 1]
        table = np.broadcast_to(table, (256,) + table.shape[1:]).reshape(256, -1)
        if not varying:
            result = self._emit(qa.lookup, self._leaf.src, relax.const(np.ascontiguousarray(table[:, 0])), op=op)
            return self.bb.emit(relax.op.reshape(result, shape)) if self._viewed else result
        if len(varying) > 1 or self._viewed:
            return None
        per_axis = np.ascontiguousarray(table.T)  # [size along the axis, 256]
        return self._emit(qa.lookup_channel, self._leaf.src, relax.const(per_axis), axis=varying[0], op=op.replace("lookup", "lookup_channel"))

    def _evaluate(self, expr, values: np.ndarray, rank: int) -> np.ndarray:
        """float32 value of `expr` with its activation leaf taking `values` (axis 0: the 256 inputs)."""
        const = self._constant(expr)
        if const is not None:
            if const.dtype != np.float32:
                raise _NotElementwise
            return const.astype(_F32)
        value = self._def(expr)
        name = _op_name(value)
        if name == "relax.reshape" and self._dequant(value) is None:  # a view of the activation (Flatten)
            self._viewed = True
            return self._evaluate(value.args[0], values, rank)
        if name in ("relax.dequantize", "relax.reshape", "relax.permute_dims"):
            return self._dequantized(value, values)  # reshape/permute_dims: of a quantized constant
        if name in _UNARY:
            return _UNARY[name](self._evaluate(value.args[0], values, rank)).astype(_F32)
        if name in _BINARY:
            a, b = (self._evaluate(arg, values, rank) for arg in value.args[:2])
            return _BINARY[name](a, b).astype(_F32)
        if name == "relax.clip":
            x = self._evaluate(value.args[0], values, rank)
            return np.clip(x, _F32(float(value.args[1].value)), _F32(float(value.args[2].value))).astype(_F32)
        if name == "relax.nn.leakyrelu":
            x = self._evaluate(value.args[0], values, rank)
            return np.where(x >= 0, x, x * _F32(float(value.attrs.alpha))).astype(_F32)
        if name == "relax.nn.prelu":
            x = self._evaluate(value.args[0], values, rank)
            slope = self._evaluate(value.args[1], values, rank)
            axis = int(value.attrs.axis) % rank
            slope = slope.reshape(slope.shape[-1:] + (1,) * (rank - 1 - axis)) if slope.ndim == 1 else slope
            return np.where(x >= 0, x, x * slope).astype(_F32)
        raise _NotElementwise

    def _dequantized(self, call: Call, values: np.ndarray) -> np.ndarray:
        leaf = self._dequant(call)
        if leaf is None:
            raise _NotElementwise
        scale, zp = leaf.scale.astype(_F32), leaf.zero_point.astype(np.int32)
        if isinstance(leaf.src, np.ndarray):  # a quantized constant
            return ((leaf.src.astype(np.int32) - zp) * scale).astype(_F32)
        if _op_name(call) != "relax.dequantize" or leaf.scale.size != 1 or leaf.zero_point.size != 1:
            raise _NotElementwise
        if self._leaf is not None and not self._leaf.src.same_as(leaf.src):
            raise _NotElementwise  # two activations
        self._leaf = leaf
        return ((values - zp.reshape(-1)[0]) * scale.reshape(-1)[0]).astype(_F32)


def _op_name(value) -> str:
    return value.op.name if isinstance(value, Call) and hasattr(value.op, "name") else ""
