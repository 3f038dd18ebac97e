"""QuantizeRealize: rewrite dequantize -> float op -> quantize patterns into integer kernels.

Frontends import quantized models as float Relax ops between `R.dequantize` and
`R.quantize`. This pass finds, for every `R.quantize`, the float computation that feeds it
(its leaves are `R.dequantize` of int8 tensors or of int8/int32 constants) and replaces it by
one `R.call_tir` to an integer kernel from `schedules.qnn_compute`: int8 in/out, int32
accumulation, the int32 bias folded in, fixed-point requantization with per-channel
multiplier and shift computed as TFLite Micro does, and the activation (float `relu`/`clip`
before the quantize, or an int8 `clip` after it) fused as the output clamp. An explicit PAD
feeding a convolution is fused into the convolution's padding. Integer-only ops (reshape,
`astype`-wrapped average pooling) are rewritten in place.

Graph inputs that are float and immediately quantized, and outputs that are dequantized,
become int8 by default (`float_io=False`): the entry then exchanges int8 tensors and the model
info records their scale and zero point.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass

import numpy as np
import tvm
from tvm import relax
from tvm.ir.expr import Call, Var

from schedules import qnn_compute as qc
from tvm_tinyml import quant_params as qp
from tvm_tinyml.errors import UnsupportedOperatorError


@dataclass(frozen=True)
class _Dequant:
    """A `R.dequantize(src, scale, zp)` leaf: `src` is a Relax value or a numpy constant."""

    src: object
    scale: np.ndarray
    zero_point: np.ndarray

    @property
    def scalar_scale(self) -> float:
        if self.scale.size != 1:
            raise UnsupportedOperatorError("per-channel quantized activations are not supported")
        return float(self.scale.reshape(-1)[0])

    @property
    def scalar_zp(self) -> int:
        return int(self.zero_point.reshape(-1)[0])


def _op_name(value) -> str:
    return value.op.name if isinstance(value, Call) and hasattr(value.op, "name") else ""


@tvm.transform.module_pass(opt_level=0, name="QuantizeRealize")
class QuantizeRealize:
    """Rewrite the QDQ-wrapped float ops of `main` into int8 integer kernels (see module doc)."""

    def __init__(self, float_io: bool = False) -> None:
        self.float_io = float_io

    def transform_module(self, mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        realized = _Realizer(mod["main"], self.float_io).run()
        return relax.transform.DeadCodeElimination(["main"])(realized)


class _Realizer:
    def __init__(self, func: relax.Function, float_io: bool) -> None:
        self.func = func
        self.float_io = float_io
        self.bindings = [b for block in func.body.blocks for b in block.bindings]
        self.defs = {b.var: b.value for b in self.bindings}
        self.uses: Counter = Counter()
        for b in self.bindings:
            for v in relax.analysis.free_vars(b.value):
                self.uses[v] += 1
        for v in relax.analysis.free_vars(func.body.body):
            self.uses[v] += 1
        self.bb = relax.BlockBuilder()
        self.env: dict = {}
        self.pad_of: dict = {}
        self.layout = self._activation_layout()
        self.folded: set = set()
        self.float_inputs: dict = {}

    def _activation_layout(self) -> str:
        """NCHW if the model's spatial ops say so (ONNX), else NHWC (TFLite)."""
        for b in self.bindings:
            attrs = getattr(b.value, "attrs", None)
            layout = getattr(attrs, "data_layout", None) or getattr(attrs, "layout", None)
            if layout in ("NHWC", "NCHW"):
                return layout
        return "NHWC"

    # ---------------------------------------------------------------- driver
    def run(self) -> tvm.IRModule:
        params = [self._param(p) for p in self.func.params]
        with self.bb.function("main", params, attrs={"num_input": len(params)}):
            with self.bb.dataflow():
                for var, (param, value) in list(self.float_inputs.items()):
                    scale, zero_point = self._affine(value)
                    self.env[var] = self._emit(qc.quantize_f32, param, relax.const(np.float32([scale])), zero_point, op="quantize")
                for binding in self.bindings:
                    if binding.var not in self.folded:
                        self._visit(binding.var, binding.value)
                outputs = [self._output(v) for v in self._flat_outputs()]
                result = outputs[0] if len(outputs) == 1 else relax.Tuple(outputs)
                gv = self.bb.emit_output(result)
            self.bb.emit_func_output(gv)
        return self.bb.finalize()

    def _param(self, param: Var) -> Var:
        dtype = param.ty.dtype
        if dtype == "int8":
            self.env[param] = param
            return param
        users = [b for b in self.bindings if param in relax.analysis.free_vars(b.value)]
        if dtype != "float32" or len(users) != 1 or _op_name(users[0].value) != "relax.quantize":
            raise UnsupportedOperatorError(f"input {param}: float inputs must feed a single QUANTIZE")
        self.folded.add(users[0].var)
        if self.float_io:
            self.float_inputs[users[0].var] = (param, users[0].value)
            return param
        new = relax.Var(str(param), relax.TensorType(param.ty.shape, "int8"))
        self.env[users[0].var] = new
        return new

    def _affine(self, call: Call) -> tuple[float, int]:
        """(scale, zero point) of a per-tensor quantize/dequantize call."""
        return float(self._constant(call.args[1]).reshape(-1)[0]), int(self._constant(call.args[2]).reshape(-1)[0])

    def _flat_outputs(self) -> list:
        out = self._def(self.func.body.body) if self.func.body.body in self.defs else self.func.body.body
        return list(out.fields) if isinstance(out, relax.Tuple) else [self.func.body.body]

    def _output(self, var):
        value = self.defs.get(var)
        if var in self.env:
            return self.env[var]
        if _op_name(value) == "relax.dequantize" and value.args[0] in self.env:
            if self.float_io:
                scale, zero_point = self._affine(value)
                return self._emit(qc.dequantize_i8, self.env[value.args[0]], relax.const(np.float32([scale])), zero_point, op="dequantize")
            return self.env[value.args[0]]
        raise UnsupportedOperatorError(f"output {var}: not an int8 tensor or a DEQUANTIZE of one")

    def _visit(self, var: Var, value) -> None:
        name = _op_name(value)
        if name == "relax.quantize":
            self._realize_quantize(var, value)
        elif name == "relax.clip" and value.args[0] in self.env and var.ty.dtype == "int8":
            lo, hi = int(value.args[1].value), int(value.args[2].value)
            self.env[var] = self._emit(qc.requantize, self.env[value.args[0]], params=(0, 1 << 30, 1, 0, lo, hi), op="clip")
        elif name == "relax.reshape" and value.args[0] in self.env:
            self.env[var] = self.bb.emit(relax.op.reshape(self.env[value.args[0]], var.ty.shape))
        elif name == "relax.astype" and var.ty.dtype == "int8":
            self._realize_int_pool(var, value)
        elif name == "relax.nn.max_pool2d" and value.args[0] in self.env:
            lo, hi, result_var = self._fused_clip(var)
            result = self._emit(qc.max_pool2d, self.env[value.args[0]], op="max_pool2d", act_min=lo, act_max=hi, **self._pool_args(value))
            self.env[var] = self.env[result_var] = result
        # float ops, dequantize and int32 helpers are consumed lazily by the quantize that uses them

    # ---------------------------------------------------------------- helpers
    def _emit(self, compute, *args, op: str, **kwargs):
        """Emit one kernel; its kind and plain keyword arguments are kept as PrimFunc attributes
        (`tinyml.op`, `tinyml.attrs` as JSON) for the stages that reason about kernels."""
        attrs = {"tinyml.op": op, "tinyml.attrs": json.dumps({k: _plain(v) for k, v in kwargs.items()})}
        call = self.bb.call_te(compute, *args, primfunc_name_hint=op, primfunc_attrs=attrs, **kwargs)
        return self.bb.emit(call)

    def _def(self, expr):
        return self.defs.get(expr) if isinstance(expr, Var) else expr

    def _constant(self, expr) -> np.ndarray | None:
        """Numpy value of a constant, following bindings and folding reshape/permute_dims."""
        value = self._def(expr)
        if isinstance(value, tvm.ir.expr.Constant):
            return value.value.numpy()
        if _op_name(value) in ("relax.reshape", "relax.permute_dims"):
            inner = self._constant(value.args[0])
            return None if inner is None else self._fold_like(value, inner)
        return None

    def _dequant(self, expr) -> _Dequant | None:
        value = self._def(expr)
        if _op_name(value) in ("relax.reshape", "relax.permute_dims"):
            inner = self._dequant(value.args[0])
            if inner is not None and isinstance(inner.src, np.ndarray):
                return _Dequant(self._fold_like(value, inner.src), inner.scale, inner.zero_point)
            return None
        if _op_name(value) != "relax.dequantize":
            return None
        src = value.args[0]
        const = self._constant(src)
        scale, zp = self._constant(value.args[1]), self._constant(value.args[2])
        if const is not None:
            return _Dequant(const, scale, zp)
        if src not in self.env:
            return None
        return _Dequant(self.env[src], scale, zp)

    @staticmethod
    def _fold_like(value, array: np.ndarray) -> np.ndarray:
        if _op_name(value) == "relax.reshape":
            return array.reshape([int(d) for d in value.ty.shape])
        axes = value.attrs.axes
        return array.transpose([int(a) for a in axes] if axes is not None else None)

    def _fused_clip(self, var: Var) -> tuple[int, int, Var]:
        """Bounds of an int8 clip that is the only user of `var` (marks it folded)."""
        if self.uses[var] == 1:
            for b in self.bindings:
                if _op_name(b.value) == "relax.clip" and b.value.args[0].same_as(var):
                    self.folded.add(b.var)
                    return int(b.value.args[1].value), int(b.value.args[2].value), b.var
        return -128, 127, var

    # ---------------------------------------------------------------- patterns
    def _realize_quantize(self, var: Var, value: Call) -> None:
        out_scale, out_zp = self._affine(value)
        if var.ty.dtype != "int8":
            raise UnsupportedOperatorError(f"QUANTIZE to {var.ty.dtype} is not supported (int8 only)")
        lo, hi, result_var = self._fused_clip(var)
        expr = value.args[0]
        act = "none"
        core = self._def(expr)
        if _op_name(core) == "relax.nn.relu":
            act, expr = "relu", core.args[0]
        elif _op_name(core) == "relax.clip":
            fmin, fmax = float(core.args[1].value), float(core.args[2].value)
            act = {(0.0, 6.0): "relu6", (-1.0, 1.0): "relu_n1_to_1"}.get((fmin, fmax))
            if act is None:
                raise UnsupportedOperatorError(f"activation clip({fmin}, {fmax}) is not supported")
            expr = core.args[0]
        if act in ("relu6", "relu_n1_to_1") and _op_name(self._def(expr)) == "relax.dequantize":
            # TFLite Micro's standalone RELU6 / RELU_N1_TO_1 clamp the raw input and ignore the
            # output quantization (activations_common.cc), so we do the same.
            x = self._input(expr)
            amin, amax = qp.activation_range(act, x.scalar_scale, x.scalar_zp)
            result = self._emit(qc.requantize, x.src, params=(0, 1 << 30, 1, 0, max(amin, lo), min(amax, hi)), op="clip")
            self.env[var] = self.env[result_var] = result
            return
        amin, amax = qp.activation_range(act, out_scale, out_zp)
        out = _OutQuant(out_scale, out_zp, max(amin, lo), min(amax, hi))
        result = self._realize_float(expr, out)
        self.env[var] = self.env[result_var] = result

    def _realize_float(self, expr, out: "_OutQuant"):
        value = self._def(expr)
        name = _op_name(value)
        bias = None
        if name == "relax.add":
            for core, other in ((value.args[0], value.args[1]), (value.args[1], value.args[0])):
                leaf = self._dequant(other)
                if _op_name(self._def(core)) in ("relax.nn.conv2d", "relax.matmul") and leaf is not None and isinstance(leaf.src, np.ndarray):
                    bias = leaf.src.reshape(-1).astype(np.int32)
                    value, name = self._def(core), _op_name(self._def(core))
                    break
        handler = getattr(self, "_q_" + name.replace("relax.", "").replace(".", "_"), None)
        if handler is None:
            raise UnsupportedOperatorError(f"quantized {name.replace('relax.', '')} is not supported")
        return handler(value, out, bias)

    def _input(self, expr) -> _Dequant:
        leaf = self._dequant(expr)
        if leaf is None or isinstance(leaf.src, np.ndarray):
            raise UnsupportedOperatorError(f"expected a dequantized int8 activation, got {self._def(expr)}")
        return leaf

    def _q_nn_conv2d(self, call: Call, out: "_OutQuant", bias):
        attrs = call.attrs
        layout = self._spatial_layout(attrs.data_layout, "conv2d")
        x = self._input(call.args[0])
        w = self._weights(call.args[1])
        src, pads = self._unpad(x)
        pads = [int(p) + extra for p, extra in zip(attrs.padding, pads)]
        kernel_layout = attrs.kernel_layout
        channels_in = int(call.args[0].ty.shape[layout.index("C")])
        groups = int(attrs.groups)
        if groups == 1:
            kernel = w.src.transpose([kernel_layout.index(c) for c in "HWIO"])
            compute, op = qc.conv2d, "conv2d"
            out_channels = kernel.shape[3]
        elif groups == channels_in:
            kernel = w.src.transpose([kernel_layout.index(c) for c in "HWOI"])
            kernel = kernel.reshape(kernel.shape[0], kernel.shape[1], -1)
            compute, op = qc.depthwise_conv2d, "depthwise_conv2d"
            out_channels = kernel.shape[2]
        else:
            raise UnsupportedOperatorError(f"grouped conv2d (groups={groups}) is not supported")
        mult, shift = qp.conv_output_multipliers(x.scalar_scale, w.scale.reshape(-1).astype(np.float32), out.scale)
        mult = np.broadcast_to(mult, (out_channels,)).astype(np.int32)
        shift = np.broadcast_to(shift, (out_channels,)).astype(np.int32)
        bias = np.zeros(out_channels, np.int32) if bias is None else bias
        return self._emit(
            compute, src, relax.const(kernel.astype(np.int8)), relax.const(bias), relax.const(mult), relax.const(shift),
            op=op, strides=[int(s) for s in attrs.strides], pads=pads, dilation=[int(d) for d in attrs.dilation],
            in_zp=x.scalar_zp, out_zp=out.zero_point, act_min=out.act_min, act_max=out.act_max, layout=layout,
        )

    @staticmethod
    def _spatial_layout(layout: str, op: str) -> str:
        if layout not in ("NHWC", "NCHW"):
            raise UnsupportedOperatorError(f"{op} with layout {layout} is not supported (NHWC or NCHW)")
        return layout

    def _weights(self, expr) -> _Dequant:
        """A dequantized constant weight with symmetric (zero point 0) quantization."""
        w = self._dequant(expr)
        if w is None or not isinstance(w.src, np.ndarray):
            raise UnsupportedOperatorError("convolution/matmul with non-constant weights is not supported")
        if np.any(w.zero_point != 0):
            raise UnsupportedOperatorError("weights with a non-zero zero point are not supported (int8 weights are symmetric)")
        return w

    def _unpad(self, x: _Dequant):
        if x.src in self.pad_of:
            src, pads, value = self.pad_of[x.src]
            if value == x.scalar_zp:
                return src, pads
        return x.src, (0, 0, 0, 0)

    def _q_matmul(self, call: Call, out: "_OutQuant", bias):
        x = self._input(call.args[0])
        w = self._weights(call.args[1])
        weight = np.ascontiguousarray(w.src.T).astype(np.int8)  # [K, N] -> [N, K]
        n = weight.shape[0]
        mult, shift = qp.conv_output_multipliers(x.scalar_scale, w.scale.reshape(-1).astype(np.float32), out.scale)
        mult = np.broadcast_to(mult, (n,)).astype(np.int32)
        shift = np.broadcast_to(shift, (n,)).astype(np.int32)
        bias = np.zeros(n, np.int32) if bias is None else bias
        data = x.src
        rank = len(call.args[0].ty.shape)
        if rank != 2:
            data = self.bb.emit(relax.op.reshape(data, (-1, weight.shape[1])))
        result = self._emit(
            qc.dense, data, relax.const(weight), relax.const(bias), relax.const(mult), relax.const(shift),
            op="dense", in_zp=x.scalar_zp, out_zp=out.zero_point, act_min=out.act_min, act_max=out.act_max,
        )
        return result if rank == 2 else self.bb.emit(relax.op.reshape(result, call.ty.shape))

    def _binary(self, call: Call, out: "_OutQuant", compute, params_fn, op: str):
        a, b = self._operand(call.args[0]), self._operand(call.args[1])
        params = params_fn(a.scalar_scale, a.scalar_zp, b.scalar_scale, b.scalar_zp, out.scale, out.zero_point, out.act_min, out.act_max)
        params = [int(v) for v in params.values()]
        shape = [int(d) for d in call.ty.shape]
        return self._emit(compute, _as_relax(a.src), _as_relax(b.src), out_shape=shape, params=params, op=op)

    def _operand(self, expr) -> _Dequant:
        """A dequantized int8 activation or constant (an ADD/MUL operand may be either)."""
        leaf = self._dequant(expr)
        if leaf is not None and isinstance(leaf.src, np.ndarray) and leaf.src.dtype == np.int8:
            return leaf
        return self._input(expr)

    def _q_add(self, call: Call, out: "_OutQuant", bias):
        return self._binary(call, out, qc.elementwise_add, qp.add_params, "add")

    def _q_multiply(self, call: Call, out: "_OutQuant", bias):
        return self._binary(call, out, qc.elementwise_mul, qp.mul_params, "mul")

    def _q_nn_softmax(self, call: Call, out: "_OutQuant", bias):
        arg, beta = self._softmax_beta(call.args[0])
        x = self._input(arg)
        if out.zero_point != -128 or abs(out.scale - 1.0 / 256) > 1e-9:
            raise UnsupportedOperatorError("int8 softmax needs output scale 1/256 and zero point -128")
        mult, left_shift, diff_min = qp.softmax_params(x.scalar_scale, beta)
        return self._emit(qc.softmax, x.src, op="softmax", input_multiplier=mult, input_left_shift=left_shift, diff_min=diff_min)

    def _softmax_beta(self, expr) -> tuple:
        """(x, beta) of softmax's input multiply(x, beta) (TFLite's beta != 1), else (expr, 1.0)."""
        scaled = self._def(expr)
        if _op_name(scaled) == "relax.multiply":
            beta = self._constant(scaled.args[1])
            if beta is not None and beta.size == 1:
                return scaled.args[0], float(beta.reshape(-1)[0])
        return expr, 1.0

    def _q_sigmoid(self, call: Call, out: "_OutQuant", bias):
        x = self._input(call.args[0])
        if out.zero_point != -128 or abs(out.scale - 1.0 / 256) > 1e-9:
            raise UnsupportedOperatorError("int8 logistic needs output scale 1/256 and zero point -128")
        params = [int(v) for v in qp.logistic_params(x.scalar_scale, x.scalar_zp).values()]
        return self._emit(qc.logistic, x.src, params=params, op="logistic", act_min=out.act_min, act_max=out.act_max)

    def _q_divide(self, call: Call, out: "_OutQuant", bias):
        """Only as the end of the TFLite importer's HARD_SWISH: x * clip(x + 3, 0, 6) / 6."""
        x = self._hard_swish_input(call)
        if x is None:
            raise UnsupportedOperatorError("quantized divide is only supported as HARD_SWISH: x * clip(x + 3, 0, 6) / 6")
        params = qp.hard_swish_params(x.scalar_scale, x.scalar_zp, out.scale, out.zero_point)
        if params["output_exponent"] > 0:
            raise UnsupportedOperatorError("int8 hard swish needs output scale >= input scale / 128")
        params = [int(v) for v in params.values()]
        return self._emit(qc.hard_swish, x.src, params=params, op="hard_swish", act_min=out.act_min, act_max=out.act_max)

    def _hard_swish_input(self, div: Call) -> _Dequant | None:
        """x of divide(multiply(x, clip(add(x, 3), 0, 6)), 6), operands in either order, else None."""
        mul = self._def(div.args[0])
        if _op_name(mul) != "relax.multiply" or not self._is_scalar(div.args[1], 6.0):
            return None
        for x, relu6 in (mul.args, mul.args[::-1]):
            clip = self._def(relu6)
            if _op_name(clip) != "relax.clip" or (float(clip.args[1].value), float(clip.args[2].value)) != (0.0, 6.0):
                continue
            add = self._def(clip.args[0])
            if _op_name(add) == "relax.add" and any(
                a.same_as(x) and self._is_scalar(c, 3.0) for a, c in (add.args, add.args[::-1])
            ):
                return self._input(x)
        return None

    def _is_scalar(self, expr, value: float) -> bool:
        const = self._constant(expr)
        return const is not None and const.size == 1 and float(const.reshape(-1)[0]) == value

    def _q_mean(self, call: Call, out: "_OutQuant", bias):
        x = self._input(call.args[0])
        shape = [int(d) for d in call.args[0].ty.shape]
        axes = sorted({int(a) % len(shape) for a in call.attrs.axis})
        count = int(np.prod([shape[a] for a in axes]))
        params = [int(v) for v in qp.mean_params(x.scalar_scale, x.scalar_zp, out.scale, out.zero_point, count).values()]
        result = self._emit(qc.mean, x.src, axes=axes, params=params, op="mean")
        if not call.attrs.keepdims:
            result = self.bb.emit(relax.op.reshape(result, call.ty.shape))
        return result

    def _same_quant(self, x: _Dequant, out: "_OutQuant", op: str) -> None:
        if abs(x.scalar_scale - out.scale) > 1e-12 * max(1.0, out.scale) or x.scalar_zp != out.zero_point:
            raise UnsupportedOperatorError(f"quantized {op} with different input and output quantization is not supported")

    def _q_nn_pad(self, call: Call, out: "_OutQuant", bias):
        x = self._input(call.args[0])
        self._same_quant(x, out, "PAD")
        widths = [int(w) for w in call.attrs.pad_width]
        h, w = (1, 2) if self.layout == "NHWC" else (2, 3)
        spatial = (2 * h, 2 * h + 1, 2 * w, 2 * w + 1)
        if len(widths) != 8 or any(v for i, v in enumerate(widths) if i not in spatial):
            raise UnsupportedOperatorError(f"PAD is supported on the spatial axes of 4-D {self.layout} tensors only")
        pads = (widths[2 * h], widths[2 * w], widths[2 * h + 1], widths[2 * w + 1])
        if not any(pads):  # nothing to pad: a view, not a copy kernel
            return self.bb.emit(relax.op.reshape(x.src, call.ty.shape))
        value = x.scalar_zp + qp.round_half_away(float(call.attrs.pad_value) / x.scalar_scale)
        if not -128 <= value <= 127:
            raise UnsupportedOperatorError(f"PAD value {call.attrs.pad_value} is outside the int8 range")
        result = self._emit(qc.pad, x.src, op="pad", pads=pads, pad_value=value, layout=self.layout)
        self.pad_of[result] = (x.src, pads, value)
        return result

    def _q_permute_dims(self, call: Call, out: "_OutQuant", bias):
        x = self._input(call.args[0])
        self._same_quant(x, out, "TRANSPOSE")
        shape = [int(d) for d in call.args[0].ty.shape]
        axes = [int(a) for a in call.attrs.axes] if call.attrs.axes is not None else list(range(len(shape)))[::-1]
        moved = [a for a in axes if shape[a] != 1]
        if moved == sorted(moved):  # only size-1 axes move: the bytes keep their order, a view
            return self.bb.emit(relax.op.reshape(x.src, call.ty.shape))
        return self._emit(qc.transpose, x.src, axes=axes, op="transpose")

    def _q_reshape(self, call: Call, out: "_OutQuant", bias):
        x = self._input(call.args[0])
        self._same_quant(x, out, "RESHAPE")
        return self.bb.emit(relax.op.reshape(x.src, call.ty.shape))

    def _pool_args(self, call: Call):
        attrs = call.attrs
        if getattr(attrs, "count_include_pad", False) and any(int(p) for p in attrs.padding):
            raise UnsupportedOperatorError("average pooling that counts padding is not supported")
        return dict(
            pool=[int(p) for p in attrs.pool_size],
            strides=[int(s) for s in attrs.strides],
            pads=[int(p) for p in attrs.padding],
            layout=self._spatial_layout(attrs.layout, call.op.name),
        )

    def _q_nn_max_pool2d(self, call: Call, out: "_OutQuant", bias):
        x = self._input(call.args[0])
        self._same_quant(x, out, "MAX_POOL_2D")
        return self._emit(qc.max_pool2d, x.src, op="max_pool2d", act_min=out.act_min, act_max=out.act_max, **self._pool_args(call))

    def _q_nn_avg_pool2d(self, call: Call, out: "_OutQuant", bias):
        x = self._input(call.args[0])
        self._same_quant(x, out, "AVERAGE_POOL_2D")
        return self._emit(qc.avg_pool2d, x.src, op="avg_pool2d", act_min=out.act_min, act_max=out.act_max, **self._pool_args(call))

    def _q_dequantize(self, call: Call, out: "_OutQuant", bias):
        x = self._input(call)
        mult, shift = qp.quantize_multiplier(x.scalar_scale / out.scale)
        return self._emit(qc.requantize, x.src, params=(x.scalar_zp, mult, shift, out.zero_point, out.act_min, out.act_max), op="requantize")

    def _q_concat(self, call: Call, out: "_OutQuant", bias):
        parts = [self._input(field) for field in self._def(call.args[0]).fields]
        for part in parts:
            self._same_quant(part, out, "CONCATENATION")
        rank = len(call.ty.shape)
        axis = int(call.attrs.axis) % rank
        return self._emit(qc.concatenate, [p.src for p in parts], axis=axis, op="concatenate")

    def _q_image_resize2d(self, call: Call, out: "_OutQuant", bias):
        x = self._input(call.args[0])
        self._same_quant(x, out, "RESIZE_NEAREST_NEIGHBOR")
        attrs = call.attrs
        if attrs.method != "nearest_neighbor" or attrs.layout != "NHWC":
            raise UnsupportedOperatorError(f"resize {attrs.method} ({attrs.layout}) is not supported")
        mode = attrs.coordinate_transformation_mode
        shape = call.ty.shape
        return self._emit(
            qc.resize_nearest, x.src, out_hw=(int(shape[1]), int(shape[2])), op="resize_nearest",
            align_corners=mode == "align_corners", half_pixel_centers=mode in ("half_pixel", "tf_half_pixel_for_nn"),
        )

    def _realize_int_pool(self, var: Var, value: Call) -> None:
        """astype(int8) <- avg_pool2d(int32) <- astype(int32) <- int8: the frontend's integer pooling."""
        pool = self._def(value.args[0])
        if _op_name(pool) != "relax.nn.avg_pool2d":
            raise UnsupportedOperatorError(f"integer {_op_name(pool)} is not supported")
        widen = self._def(pool.args[0])
        src = widen.args[0] if _op_name(widen) == "relax.astype" else None
        if src not in self.env:
            raise UnsupportedOperatorError("integer avg_pool2d on a non-int8 tensor is not supported")
        lo, hi, result_var = self._fused_clip(var)
        result = self._emit(qc.avg_pool2d, self.env[src], op="avg_pool2d", act_min=lo, act_max=hi, **self._pool_args(pool))
        self.env[var] = self.env[result_var] = result


def _as_relax(src):
    """A kernel argument: an activation as is, a constant int8 array as a Relax constant."""
    return relax.const(src) if isinstance(src, np.ndarray) else src


def _plain(value):
    """A JSON-friendly copy of a kernel argument (tuples become lists, numpy ints become int)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value.item() if isinstance(value, np.generic) else value


@dataclass(frozen=True)
class _OutQuant:
    scale: float
    zero_point: int
    act_min: int
    act_max: int
