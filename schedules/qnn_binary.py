"""Binary elementwise int8 kernels beyond ADD/MUL (family: binary): SUB, SQUARED_DIFFERENCE,
MAXIMUM, MINIMUM, and ONNX's Add / Sub / Mul in float (`binary_exact`).

Each is one broadcasting `te.compute` over the output (numpy broadcasting; an operand of lower
rank is aligned to the trailing axes) calling a `tinyml_math.h` helper per element, the same
loop as `qnn_compute.elementwise_add`, so the streaming-overlap rule of ADD/MUL holds for them.
Constant operands come in as int8 constant tensors.
"""

from __future__ import annotations

from typing import Sequence

from tvm import te

from schedules.qnn_compute import INT32, _broadcast_binary, _broadcast_index
from schedules.qnn_reduce import quantize_real

_FLOAT_OPS = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b}


def elementwise_sub(lhs, rhs, out_shape, params: Sequence[int]):
    """Broadcasting int8 SUB; `params` are the scalar arguments of tinyml_sub_i8 after the inputs."""
    return _broadcast_binary(lhs, rhs, out_shape, "tinyml_sub_i8", params)


def squared_difference(lhs, rhs, out_shape, params: Sequence[int]):
    """Broadcasting int8 SQUARED_DIFFERENCE (tinyml_squared_difference_i8)."""
    return _broadcast_binary(lhs, rhs, out_shape, "tinyml_squared_difference_i8", params)


def maximum(lhs, rhs, out_shape, params: Sequence[int]):
    """Broadcasting raw int8 MAXIMUM; `params` = (act_min, act_max) of a fused int8 clamp."""
    return _broadcast_binary(lhs, rhs, out_shape, "tinyml_maximum_i8", params)


def minimum(lhs, rhs, out_shape, params: Sequence[int]):
    """Broadcasting raw int8 MINIMUM; `params` = (act_min, act_max) of a fused int8 clamp."""
    return _broadcast_binary(lhs, rhs, out_shape, "tinyml_minimum_i8", params)


def binary_exact(lhs, rhs, lhs_table, rhs_table, out_scale, *, out_shape, kind: str, out_zp: int, act_min: int, act_max: int):
    """ONNX Add / Sub / Mul (`kind` add, sub, mul) as onnxruntime computes them: both operands
    dequantized by their 256-entry float32 tables (table[q + 128] = (q - zero point) * scale), one
    float32 operation, then QuantizeLinear with the one-element `out_scale` (qnn_reduce.quantize_real)."""
    op = _FLOAT_OPS[kind]

    def out(*i):
        a = lhs_table[lhs[_broadcast_index(lhs, i)].astype(INT32) + 128]
        b = rhs_table[rhs[_broadcast_index(rhs, i)].astype(INT32) + 128]
        return quantize_real(op(a, b), out_scale[0], out_zp, False, act_min, act_max)

    return te.compute(tuple(out_shape), out, name="out")
