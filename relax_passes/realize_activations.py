"""QuantizeRealize handlers of the int8 activations and of bilinear resize.

`ActivationRealizer` is a mixin of `quantize_realize._Realizer`: its `_q_<relax op>` methods
are dispatched like the others, with the float op feeding an `R.quantize` and that quantize's
output parameters (`_OutQuant`). The float patterns come from `tvm_tinyml.frontend`:

- LEAKY_RELU: `nn.leakyrelu(x)`; TANH: `tanh(x)`; RSQRT: `rsqrt(x)`;
- PRELU: `where(x >= 0, x, x * alpha)` (alpha a constant or an activation, broadcast);
- ELU: `where(x < 0, exp(x) - 1, x)`;
- RESIZE_BILINEAR: `image.resize2d(x, method="linear")`.
"""

from __future__ import annotations

import numpy as np
from tvm import relax
from tvm.ir.expr import Call

from schedules import qnn_activations as qa
from tvm_tinyml import act_params as ap
from tvm_tinyml.errors import UnsupportedOperatorError


def _is_call(value, name: str) -> bool:
    return isinstance(value, Call) and getattr(value.op, "name", "") == name


def _ints(params: dict) -> list[int]:
    return [int(v) for v in params.values()]


class ActivationRealizer:
    """Handlers for LEAKY_RELU, PRELU, TANH, ELU, RSQRT and RESIZE_BILINEAR (see module doc)."""

    def _q_nn_leakyrelu(self, call: Call, out, bias):
        x = self._input(call.args[0])
        params = ap.leaky_relu_params(x.scalar_scale, x.scalar_zp, float(call.attrs.alpha), out.scale, out.zero_point)
        return self._emit(qa.leaky_relu, x.src, params=_ints(params), op="leaky_relu", act_min=out.act_min, act_max=out.act_max)

    def _q_tanh(self, call: Call, out, bias):
        x = self._input(call.args[0])
        params = ap.tanh_params(x.scalar_scale, x.scalar_zp)
        return self._emit(qa.tanh, x.src, params=_ints(params), op="tanh", act_min=out.act_min, act_max=out.act_max)

    def _q_rsqrt(self, call: Call, out, bias):
        x = self._input(call.args[0])
        return self._lookup(x, ap.rsqrt_table(x.scalar_scale, x.scalar_zp, out.scale, out.zero_point), out, "RSQRT")

    def _q_where(self, call: Call, out, bias):
        cond = self._def(call.args[0])
        if _is_call(cond, "relax.greater_equal") and self._is_prelu(call, cond):
            return self._prelu(call, out)
        if _is_call(cond, "relax.less") and self._is_elu(call, cond):
            x = self._input(cond.args[0])
            return self._lookup(x, ap.elu_table(x.scalar_scale, x.scalar_zp, out.scale, out.zero_point), out, "ELU")
        raise UnsupportedOperatorError("quantized where is only supported as PRELU or ELU")

    # ---------------------------------------------------------------- pattern checks
    def _is_prelu(self, call: Call, cond: Call) -> bool:
        """where(x >= 0, x, x * alpha)."""
        x = cond.args[0]
        mul = self._def(call.args[2])
        return (self._is_scalar(cond.args[1], 0.0) and call.args[1].same_as(x)
                and _is_call(mul, "relax.multiply") and mul.args[0].same_as(x))

    def _is_elu(self, call: Call, cond: Call) -> bool:
        """where(x < 0, exp(x) - 1, x)."""
        x = cond.args[0]
        sub = self._def(call.args[1])
        if not (self._is_scalar(cond.args[1], 0.0) and call.args[2].same_as(x) and _is_call(sub, "relax.subtract")):
            return False
        exp = self._def(sub.args[0])
        return _is_call(exp, "relax.exp") and exp.args[0].same_as(x) and self._is_scalar(sub.args[1], 1.0)

    # ---------------------------------------------------------------- kernels
    def _full_range(self, out, op: str) -> None:
        if (out.act_min, out.act_max) != (-128, 127):
            raise UnsupportedOperatorError(f"{op} followed by a clamp is not supported")

    def _lookup(self, x, table: np.ndarray, out, op: str):
        self._full_range(out, op)
        return self._emit(qa.lookup, x.src, relax.const(table), op="lookup")

    def _prelu(self, call: Call, out):
        self._full_range(out, "PRELU")
        x = self._input(call.args[1])
        alpha = self._dequant(self._def(call.args[2]).args[1])
        if alpha is None:
            raise UnsupportedOperatorError("PRELU alpha must be a quantized int8 constant or activation")
        if alpha.scale.size != 1:
            raise UnsupportedOperatorError("PRELU with a per-channel quantized alpha is not supported")
        src = alpha.src
        if isinstance(src, np.ndarray):
            if src.dtype != np.int8:
                raise UnsupportedOperatorError(f"PRELU alpha of type {src.dtype} is not supported (int8 only)")
            src = relax.const(src)
        params = ap.prelu_params(x.scalar_scale, x.scalar_zp, alpha.scalar_scale, alpha.scalar_zp, out.scale, out.zero_point)
        shape = [int(d) for d in call.ty.shape]
        return self._emit(qa.prelu, x.src, src, out_shape=shape, params=_ints(params), op="prelu")

    def _resize_bilinear(self, x, attrs, out_hw, out):
        """RESIZE_BILINEAR of NHWC int8 `x` interpolates raw int8 values whatever the quantization (as TFLM)."""
        self._full_range(out, "RESIZE_BILINEAR")
        mode = str(attrs.coordinate_transformation_mode)
        if mode not in ("asymmetric", "align_corners", "half_pixel"):
            raise UnsupportedOperatorError(f"bilinear resize with coordinate mode {mode} is not supported")
        return self._emit(
            qa.resize_bilinear, x.src, out_hw=tuple(out_hw), op="resize_bilinear",
            align_corners=mode == "align_corners", half_pixel_centers=mode == "half_pixel",
        )
