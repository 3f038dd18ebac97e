"""Binary elementwise int8 kernels beyond ADD/MUL (family: binary): SUB, SQUARED_DIFFERENCE,
MAXIMUM, MINIMUM.

Each is one broadcasting `te.compute` over the output (numpy broadcasting; an operand of lower
rank is aligned to the trailing axes) calling a `tinyml_math.h` helper per element, the same
loop as `qnn_compute.elementwise_add`, so the streaming-overlap rule of ADD/MUL holds for them.
Constant operands come in as int8 constant tensors.
"""

from __future__ import annotations

from typing import Sequence

from schedules.qnn_compute import _broadcast_binary


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
