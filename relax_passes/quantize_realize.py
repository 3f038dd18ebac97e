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

from relax_passes.realize_activations import ActivationRealizer  # activations (act)
from relax_passes.exact_lookup import ExactLookupRealizer
from relax_passes.movement_realize import MOVEMENT_RELAX_OPS, MovementRealizer, shape_of
from schedules import qnn_activations as qa
from schedules import qnn_binary as qb
from schedules import qnn_compute as qc
from schedules import qnn_sequence as qs
from schedules import qnn_matrix as qm
from schedules import qnn_movement as qmv
from schedules import qnn_reduce as qr
from tvm_tinyml import quant_params as qp
from tvm_tinyml.errors import TinyMLError, UnsupportedOperatorError


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


# ONNX Resize modes (coordinate transformation, nearest rounding) whose source indices are TFLM's
_ONNX_NEAREST_MODES = {("asymmetric", "floor"), ("half_pixel", "round_prefer_floor"), ("align_corners", "round_prefer_ceil")}
_ONNX_LINEAR_MODES = {"asymmetric", "half_pixel"}  # align_corners: TFLM's Q10 taps differ by more than 1 LSB
# MLAS's vector pooling kernel keeps a padded input row in 2048 floats (3 of them over-read)
_MLAS_REDUCTION_BUFFER = 2045
# float ops whose `add` of a dequantized int32 constant is their bias
_BIAS_CORES = ("relax.nn.conv2d", "relax.matmul", "relax.nn.conv2d_transpose")


def _op_name(value) -> str:
    return value.op.name if isinstance(value, Call) and hasattr(value.op, "name") else ""


@tvm.transform.module_pass(opt_level=0, name="QuantizeRealize")
class QuantizeRealize:
    """Rewrite the QDQ-wrapped float ops of `main` into int8 integer kernels (see module doc)."""

    def __init__(self, float_io: bool = False, origins: dict | None = None, exact_float: bool = False) -> None:
        """`origins` optionally maps bound expressions of `main` to a description of the source
        operator (e.g. "operator #7 (PAD)"), which prefixes the message of a refused pattern.
        `exact_float` (ONNX) realizes elementwise float chains as exact tables (exact_lookup.py)."""
        self.float_io = float_io
        self.origins = origins or {}
        self.exact_float = exact_float

    def transform_module(self, mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        realized = _Realizer(mod["main"], self.float_io, self.origins, self.exact_float).run()
        return relax.transform.DeadCodeElimination(["main"])(realized)


class _Realizer(ActivationRealizer, MovementRealizer, ExactLookupRealizer):
    def __init__(self, func: relax.Function, float_io: bool, origins: dict, exact_float: bool = False) -> None:
        self.func = func
        self.float_io = float_io
        self.exact_float = exact_float
        self.origins = origins
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
        self.uint8_inputs: dict = {}

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
        failure = None
        with self.bb.function("main", params, attrs={"num_input": len(params)}):
            with self.bb.dataflow():
                try:
                    gv = self.bb.emit_output(self._body())
                except TinyMLError as err:  # close the builder's scopes cleanly, then refuse
                    failure = err
                    gv = self.bb.emit_output(relax.Tuple([]))
            self.bb.emit_func_output(gv)
        if failure is not None:
            raise failure
        return self.bb.finalize()

    def _body(self) -> relax.Expr:
        """Emit every kernel of `main`; return its result (one tensor or a tuple)."""
        for var, (param, params) in self.uint8_inputs.items():
            self.env[var] = self._emit(qc.requantize, param, params=params, op="requantize")
        for var, (param, value) in list(self.float_inputs.items()):
            scale, zero_point = self._affine(value)
            self.env[var] = self._emit(qc.quantize_f32, param, relax.const(np.float32([scale])), zero_point, op="quantize")
        for binding in self.bindings:
            if binding.var not in self.folded:
                self._visit_named(binding.var, binding.value)
        outputs = [self._output(v) for v in self._flat_outputs()]
        return outputs[0] if len(outputs) == 1 else relax.Tuple(outputs)

    def _param(self, param: Var) -> Var:
        dtype = param.ty.dtype
        if dtype in ("int8", "int32"):  # int32: GATHER indices (movement_realize.py)
            self.env[param] = param
            return param
        users = self._users(param)
        if dtype == "uint8":
            return self._uint8_param(param, users)
        if dtype != "float32" or len(users) != 1 or _op_name(users[0].value) != "relax.quantize":
            raise UnsupportedOperatorError(f"input {param}: float inputs must feed a single QUANTIZE")
        self.folded.add(users[0].var)
        if self.float_io:
            self.float_inputs[users[0].var] = (param, users[0].value)
            return param
        new = relax.Var(str(param), relax.TensorType(param.ty.shape, "int8"))
        self.env[users[0].var] = new
        return new

    def _users(self, var: Var) -> list:
        return [b for b in self.bindings if var in relax.analysis.free_vars(b.value)]

    def _uint8_param(self, param: Var, users: list) -> Var:
        """A uint8 model input: TFLite's QUANTIZE uint8 -> int8 imports as dequantize -> quantize.

        The entry keeps the uint8 input and one requantize kernel (TFLite Micro's Requantize:
        MultiplyByQuantizedMultiplier of x - zero point) makes the int8 tensor the model computes on.
        """
        dequant = users[0].value if len(users) == 1 else None
        quants = self._users(users[0].var) if dequant is not None and _op_name(dequant) == "relax.dequantize" else []
        if len(quants) != 1 or _op_name(quants[0].value) != "relax.quantize" or quants[0].var.ty.dtype != "int8":
            raise UnsupportedOperatorError(f"input {param}: uint8 inputs must feed a single QUANTIZE to int8")
        (in_scale, in_zp), (out_scale, out_zp) = self._affine(dequant), self._affine(quants[0].value)
        mult, shift = qp.quantize_multiplier(in_scale / out_scale)
        self.folded.update({users[0].var, quants[0].var})
        self.env[param] = param
        self.uint8_inputs[quants[0].var] = (param, (in_zp, mult, shift, out_zp, -128, 127))
        return param

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
        if _op_name(value) == "relax.nn.log_softmax" and self._dequant(value.args[0]) is not None:
            return self._float_log_softmax(value)
        table = self._float_lookup(var) if self.exact_float and var.ty.dtype == "float32" else None
        if table is not None:
            return table
        raise UnsupportedOperatorError(f"output {var}: not an int8 tensor or a DEQUANTIZE of one")

    def _visit_named(self, var: Var, value) -> None:
        """`_visit`, naming the source operator of `value` in a refusal."""
        try:
            self._visit(var, value)
        except UnsupportedOperatorError as err:
            origin = self.origins.get(value)
            if origin is None:
                raise
            raise UnsupportedOperatorError(f"{origin}: {err}") from None

    def _visit(self, var: Var, value) -> None:
        name = _op_name(value)
        if name == "relax.quantize":
            self._realize_quantize(var, value)
        elif name == "relax.clip" and value.args[0] in self.env and var.ty.dtype == "int8":
            lo, hi = int(value.args[1].value), int(value.args[2].value)
            self.env[var] = self._emit(qc.requantize, self.env[value.args[0]], params=(0, 1 << 30, 1, 0, lo, hi), op="clip")
        elif name == "relax.reshape" and value.args[0] in self.env:
            self.env[var] = self.bb.emit(relax.op.reshape(self.env[value.args[0]], var.ty.shape))
        elif name in MOVEMENT_RELAX_OPS and var.ty.dtype == "int8" and self._movement_sources(name, value) is not None:
            self.env[var] = self._realize_movement(name, var, value)  # data movement (movement_realize.py)
        elif name == "relax.permute_dims" and value.args[0] in self.env:  # BATCH_MATMUL adj_x / adj_y
            self.env[var] = self._emit(qc.transpose, self.env[value.args[0]], axes=[int(a) for a in value.attrs.axes], op="transpose")
        elif name in ("relax.argmax", "relax.argmin") and value.args[0] in self.env:
            self._realize_arg_min_max(var, value)
        elif name == "relax.astype" and var.ty.dtype == "int8":
            self._realize_int_pool(var, value)
        elif name == "relax.nn.max_pool2d" and value.args[0] in self.env:
            lo, hi, result_var = self._fused_clip(var)
            result = self._emit(qc.max_pool2d, self.env[value.args[0]], op="max_pool2d", act_min=lo, act_max=hi, **self._pool_args(value))
            self.env[var] = self.env[result_var] = result
        elif name == "relax.call_dps_packed" and value.args[1].fields[0] in self.env:
            self._realize_sequence(var, value)
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
        clip = self._single_user(var, "relax.clip")
        if clip is None:
            return -128, 127, var
        self.folded.add(clip)
        value = self.defs[clip]
        return int(value.args[1].value), int(value.args[2].value), clip

    def _single_user(self, var: Var, op_name: str) -> Var | None:
        """The variable bound to the only use of `var` if that use is an `op_name` call."""
        if self.uses[var] == 1:
            for b in self.bindings:
                if _op_name(b.value) == op_name and b.value.args[0].same_as(var):
                    return b.var
        return None

    # ---------------------------------------------------------------- patterns
    def _realize_quantize(self, var: Var, value: Call) -> None:
        out_scale, out_zp = self._affine(value)
        if var.ty.dtype == "uint8" and _op_name(self._def(value.args[0])) == "relax.dequantize":
            x = self._input(value.args[0])
            mult, shift = qp.quantize_multiplier(x.scalar_scale / out_scale)
            params = (x.scalar_zp, mult, shift, out_zp, 0, 255)
            self.env[var] = self._emit(qc.requantize, x.src, params=params, out_dtype="uint8", op="requantize")
            return
        if var.ty.dtype != "int8":
            raise UnsupportedOperatorError(f"QUANTIZE to {var.ty.dtype} is not supported (int8, or uint8 from int8)")
        lo, hi, result_var = self._fused_clip(var)
        expr = value.args[0]
        table = self._exact_lookup(expr, out_scale, out_zp, lo, hi) if self.exact_float else None
        if table is not None:
            self.env[var] = self.env[result_var] = table
            return
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
                if _op_name(self._def(core)) in _BIAS_CORES and leaf is not None and isinstance(leaf.src, np.ndarray):
                    bias = leaf.src.reshape(-1).astype(np.int32)
                    value, name = self._def(core), _op_name(self._def(core))
                    break
        if isinstance(value, relax.TupleGetItem):
            return self._split_part(value, out)
        if name == "relax.call_tir":  # an importer's own TIR kernel (ONNX Pad reflect: mirror_pad)
            raise UnsupportedOperatorError(f"quantized {value.args[0].name_hint} is not supported")
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
        mult, shift, bias = self._channel_requant(x, w, out, out_channels, bias)
        return self._emit(
            compute, src, relax.const(kernel.astype(np.int8)), relax.const(bias), relax.const(mult), relax.const(shift),
            op=op, strides=[int(s) for s in attrs.strides], pads=pads, dilation=[int(d) for d in attrs.dilation],
            in_zp=x.scalar_zp, out_zp=out.zero_point, act_min=out.act_min, act_max=out.act_max, layout=layout,
        )

    @staticmethod
    def _channel_requant(x: _Dequant, w: _Dequant, out: "_OutQuant", channels: int, bias):
        """Per-output-channel (multiplier, shift) of a conv/matmul, and its bias (zeros if none)."""
        mult, shift = qp.conv_output_multipliers(x.scalar_scale, w.scale.reshape(-1).astype(np.float32), out.scale)
        mult = np.broadcast_to(mult, (channels,)).astype(np.int32)
        shift = np.broadcast_to(shift, (channels,)).astype(np.int32)
        return mult, shift, np.zeros(channels, np.int32) if bias is None else bias

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
        if bias is None and not self._is_dense_weight(call.args[1]):
            return self._batch_matmul(call, out)
        x = self._scaled_input(call.args[0])
        w = self._weights(call.args[1])
        weight = np.ascontiguousarray(w.src.T).astype(np.int8)  # [K, N] -> [N, K]
        n = weight.shape[0]
        mult, shift, bias = self._channel_requant(x, w, out, n, bias)
        data = x.src
        rank = len(call.args[0].ty.shape)
        if rank != 2:
            data = self.bb.emit(relax.op.reshape(data, (-1, weight.shape[1])))
        result = self._emit(
            qc.dense, data, relax.const(weight), relax.const(bias), relax.const(mult), relax.const(shift),
            op="dense", in_zp=x.scalar_zp, out_zp=out.zero_point, act_min=out.act_min, act_max=out.act_max,
        )
        return result if rank == 2 else self.bb.emit(relax.op.reshape(result, call.ty.shape))

    def _scaled_input(self, expr) -> _Dequant:
        """A matmul's int8 input; ONNX Gemm's alpha (a positive scalar multiply) joins its scale."""
        value = self._def(expr)
        alpha = self._constant(value.args[1]) if _op_name(value) == "relax.multiply" else None
        if alpha is None or alpha.size != 1 or float(alpha.reshape(-1)[0]) <= 0:
            return self._input(expr)
        x = self._input(value.args[0])
        return _Dequant(x.src, x.scale * np.float32(alpha.reshape(-1)[0]), x.zero_point)

    # ---------------------------------------------------------------- binary elementwise (family: binary)
    def _binary(self, args, result: Call, compute, op: str, params_of):
        """One broadcasting kernel on two int8 operands, activations or constants (either side,
        any broadcastable shape); `params_of(a, b)` gives the helper's scalar arguments."""
        a, b = (self._operand(x, op) for x in args)
        if isinstance(a.src, np.ndarray) and isinstance(b.src, np.ndarray):
            raise UnsupportedOperatorError(f"quantized {op} of two constants is not supported")
        params = [int(v) for v in params_of(a, b)]
        shape = [int(d) for d in result.ty.shape]
        if not isinstance(a.src, np.ndarray) and a.src.same_as(b.src):
            # op(x, x): one kernel argument read twice (the same tensor passed as two arguments
            # does not survive C codegen)
            def compute_once(x, **kwargs):
                return compute(x, x, **kwargs)

            return self._emit(compute_once, a.src, out_shape=shape, params=params, op=op)
        return self._emit(compute, *(self._kernel_operand(x) for x in (a, b)), out_shape=shape, params=params, op=op)

    def _operand(self, expr, op: str) -> _Dequant:
        """A binary op's operand: a dequantized int8 activation or per-tensor int8 constant."""
        leaf = self._dequant(expr)
        if leaf is None:
            raise UnsupportedOperatorError(f"quantized {op}: expected a dequantized int8 tensor, got {self._def(expr)}")
        if isinstance(leaf.src, np.ndarray) and leaf.src.dtype != np.int8:
            raise UnsupportedOperatorError(f"quantized {op} with a {leaf.src.dtype} constant operand is not supported (int8 only)")
        if leaf.scale.size != 1:
            raise UnsupportedOperatorError(f"quantized {op} with a per-channel quantized operand is not supported")
        return leaf

    @staticmethod
    def _kernel_operand(leaf: _Dequant):
        """The kernel input for an operand: the activation, or the constant as an int8 tensor
        (a 0-d scalar as one element, which broadcasts like it)."""
        if not isinstance(leaf.src, np.ndarray):
            return leaf.src
        return relax.const(leaf.src.reshape(leaf.src.shape or (1,)))

    @staticmethod
    def _rescaled(params_fn, out: "_OutQuant"):
        """params_of for ops whose quant_params function takes both inputs' and the output's
        quantization plus the activation range (ADD, SUB, MUL)."""
        def params_of(a: _Dequant, b: _Dequant):
            return params_fn(a.scalar_scale, a.scalar_zp, b.scalar_scale, b.scalar_zp,
                             out.scale, out.zero_point, out.act_min, out.act_max).values()
        return params_of
    # ---------------------------------------------------------------- matrix family
    def _is_dense_weight(self, expr) -> bool:
        """A constant 2-D right-hand side with zero points 0: FULLY_CONNECTED's `dense` kernel."""
        w = self._dequant(expr)
        return w is not None and isinstance(w.src, np.ndarray) and w.src.ndim == 2 and not np.any(w.zero_point != 0)

    def _batch_matmul(self, call: Call, out: "_OutQuant"):
        """BATCH_MATMUL: int8 x int8 (activation or constant right-hand side), per-tensor scales."""
        a, b = self._dequant(call.args[0]), self._dequant(call.args[1])
        if a is None or b is None:
            raise UnsupportedOperatorError("BATCH_MATMUL operands must be int8 tensors or int8 constants")
        if (out.act_min, out.act_max) != (-128, 127):
            raise UnsupportedOperatorError("BATCH_MATMUL followed by a clamp is not supported")
        mult, shift = qp.conv_output_multipliers(a.scalar_scale, np.float32(b.scalar_scale), out.scale)
        lhs, rhs = (relax.const(v.src.astype(np.int8)) if isinstance(v.src, np.ndarray) else v.src for v in (a, b))
        return self._emit(
            qm.batch_matmul, lhs, rhs, op="batch_matmul", out_shape=[int(d) for d in call.ty.shape],
            lhs_zp=a.scalar_zp, rhs_zp=b.scalar_zp, mult=int(mult[0]), shift=int(shift[0]), out_zp=out.zero_point,
        )

    def _q_nn_conv2d_transpose(self, call: Call, out: "_OutQuant", bias):
        """TRANSPOSE_CONV (NHWC data, IOHW weights as the TFLite importer makes them); ONNX
        ConvTranspose (NCHW data) is the same kernel between two transposes."""
        attrs = call.attrs
        nchw = attrs.data_layout == "NCHW" and attrs.out_layout == "NCHW"
        if (attrs.data_layout, attrs.kernel_layout) not in (("NHWC", "IOHW"), ("NCHW", "IOHW")) or int(attrs.groups) != 1:
            raise UnsupportedOperatorError(f"conv2d_transpose {attrs.data_layout}/{attrs.kernel_layout} groups={attrs.groups} is not supported")
        if any(int(d) != 1 for d in attrs.dilation) or any(int(p) for p in attrs.output_padding):
            raise UnsupportedOperatorError("conv2d_transpose with dilation or output padding is not supported")
        x = self._input(call.args[0])
        w = self._weights(call.args[1])
        kernel = np.ascontiguousarray(w.src.transpose(1, 2, 3, 0)).astype(np.int8)  # IOHW -> OHWI
        out_channels = kernel.shape[0]
        mult, shift, bias = self._channel_requant(x, w, out, out_channels, bias)
        shape = shape_of(call)
        src = self._emit(qc.transpose, x.src, axes=[0, 2, 3, 1], op="transpose") if nchw else x.src
        result = self._emit(
            qm.transpose_conv2d, src, relax.const(kernel), relax.const(bias), relax.const(mult), relax.const(shift),
            op="transpose_conv2d", strides=[int(s) for s in attrs.strides], pads=[int(attrs.padding[0]), int(attrs.padding[1])],
            out_hw=shape[2:4] if nchw else shape[1:3], in_zp=x.scalar_zp, out_zp=out.zero_point, act_min=out.act_min, act_max=out.act_max,
        )
        return self._emit(qc.transpose, result, axes=[0, 3, 1, 2], op="transpose") if nchw else result


    def _binary_exact(self, call: Call, out: "_OutQuant", kind: str):
        """ONNX Add / Sub / Mul as onnxruntime's float ops (qnn_binary.binary_exact), either
        operand an activation or an int8 constant."""
        a, b = (self._operand(x, kind) for x in call.args)
        if isinstance(a.src, np.ndarray) and isinstance(b.src, np.ndarray):
            raise UnsupportedOperatorError(f"quantized {kind} of two constants is not supported")
        tables = [relax.const(_real_table(v)) for v in (a, b)]
        options = dict(out_shape=shape_of(call), kind=kind, out_zp=out.zero_point, act_min=out.act_min,
                       act_max=out.act_max, op=f"{kind}_exact")
        scale = relax.const(np.float32([out.scale]))
        if not isinstance(a.src, np.ndarray) and a.src.same_as(b.src):  # op(x, x): one argument (see _binary)
            def compute_once(x, lhs_table, rhs_table, out_scale, **kwargs):
                return qb.binary_exact(x, x, lhs_table, rhs_table, out_scale, **kwargs)

            return self._emit(compute_once, a.src, *tables, scale, **options)
        return self._emit(qb.binary_exact, *(self._kernel_operand(v) for v in (a, b)), *tables, scale, **options)

    def _q_add(self, call: Call, out: "_OutQuant", bias):
        if self.exact_float:
            return self._binary_exact(call, out, "add")
        return self._binary(call.args, call, qc.elementwise_add, "add", self._rescaled(qp.add_params, out))

    def _q_subtract(self, call: Call, out: "_OutQuant", bias):
        if self.exact_float:
            return self._binary_exact(call, out, "sub")
        return self._binary(call.args, call, qb.elementwise_sub, "sub", self._rescaled(qp.sub_params, out))

    def _q_multiply(self, call: Call, out: "_OutQuant", bias):
        """MUL, or SQUARED_DIFFERENCE, which the importer writes as d * d with d = x - y."""
        diff = self._def(call.args[0])
        if call.args[0].same_as(call.args[1]) and _op_name(diff) == "relax.subtract":
            def params_of(a: _Dequant, b: _Dequant):
                params = qp.squared_difference_params(a.scalar_scale, a.scalar_zp, b.scalar_scale, b.scalar_zp, out.scale, out.zero_point)
                return [*params.values(), out.act_min, out.act_max]
            return self._binary(diff.args, call, qb.squared_difference, "squared_difference", params_of)
        if self.exact_float:
            return self._binary_exact(call, out, "mul")
        return self._binary(call.args, call, qc.elementwise_mul, "mul", self._rescaled(qp.mul_params, out))

    def _q_maximum(self, call: Call, out: "_OutQuant", bias):
        """TFLM's MAXIMUM takes the larger raw int8 value, ignoring all quantization."""
        return self._binary(call.args, call, qb.maximum, "maximum", lambda a, b: (out.act_min, out.act_max))

    def _q_minimum(self, call: Call, out: "_OutQuant", bias):
        """TFLM's MINIMUM takes the smaller raw int8 value, ignoring all quantization."""
        return self._binary(call.args, call, qb.minimum, "minimum", lambda a, b: (out.act_min, out.act_max))

    def _q_nn_softmax(self, call: Call, out: "_OutQuant", bias):
        if self.exact_float:
            return self._softmax_exact(call, out)
        x, beta = self._softmax_input(call)
        if out.zero_point != -128 or abs(out.scale - 1.0 / 256) > 1e-9:
            raise UnsupportedOperatorError("int8 softmax needs output scale 1/256 and zero point -128")
        mult, left_shift, diff_min = qp.softmax_params(x.scalar_scale, beta)
        return self._emit(qc.softmax, x.src, op="softmax", input_multiplier=mult, input_left_shift=left_shift, diff_min=diff_min)

    def _softmax_exact(self, call: Call, out: "_OutQuant"):
        """ONNX Softmax on any axis, as onnxruntime computes it in float (qnn_reduce.softmax_exact)."""
        x = self._input(call.args[0])
        if (out.act_min, out.act_max) != (-128, 127):
            raise UnsupportedOperatorError("Softmax followed by a clamp is not supported")
        exp_table = np.exp(-np.float32(x.scalar_scale) * np.arange(256, dtype=np.float32)).astype(np.float32)
        axis = int(call.attrs.axis) % len(call.ty.shape)
        return self._emit(qr.softmax_exact, x.src, relax.const(exp_table), axis=axis,
                          inv_out_scale=float(np.float32(1.0) / np.float32(out.scale)), out_zp=out.zero_point, op="softmax_exact")

    def _q_sigmoid(self, call: Call, out: "_OutQuant", bias):
        x = self._input(call.args[0])
        if out.zero_point != -128:  # TFLM's only check; it writes raw Q0.8 whatever the output scale
            raise UnsupportedOperatorError("int8 logistic needs output zero point -128")
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
        """MEAN; ONNX GlobalAveragePool (a kept-dims mean over H and W of NCHW) as onnxruntime's
        float global pool."""
        shape = [int(d) for d in call.args[0].ty.shape]
        if self.exact_float and len(shape) == 4 and self._reduced_axes(call) == [2, 3] and call.attrs.keepdims:
            return self._emit_avg_pool_exact(self._input(call.args[0]), out, "global", pool=shape[2:], strides=[1, 1],
                                             pads=[0, 0, 0, 0], count_include_pad=False)
        return self._mean_or_sum(call, out, qp.mean_params, "mean")

    def _mean_or_sum(self, call: Call, out: "_OutQuant", params_fn, op: str):
        """MEAN or SUM (`params_fn` folds the 1/count or not): tinyml_mean_i8 over the sums."""
        x = self._input(call.args[0])
        axes = self._reduced_axes(call)
        shape = [int(d) for d in call.args[0].ty.shape]
        count = int(np.prod([shape[a] for a in axes]))
        params = [int(v) for v in params_fn(x.scalar_scale, x.scalar_zp, out.scale, out.zero_point, count).values()]
        return self._unkeep(call, self._emit(qc.mean, x.src, axes=axes, params=params, op=op))

    # ---------------------------------------------------------------- reduce family
    def _reduced_axes(self, call: Call) -> list[int]:
        """Sorted distinct non-negative axes of a Relax reduction (None: all axes)."""
        rank = len(call.args[0].ty.shape)
        if call.attrs.axis is None:
            return list(range(rank))
        return sorted({int(a) % rank for a in call.attrs.axis})

    def _unkeep(self, call: Call, result):
        """Reshape a kept-dims reduction result to the call's shape when keepdims is false."""
        return result if call.attrs.keepdims else self.bb.emit(relax.op.reshape(result, call.ty.shape))

    def _q_sum(self, call: Call, out: "_OutQuant", bias):
        return self._mean_or_sum(call, out, qp.sum_params, "sum")

    def _min_max(self, call: Call, out: "_OutQuant", kind: str):
        x = self._input(call.args[0])
        self._same_quant(x, out, f"REDUCE_{kind.upper()}")
        result = self._emit(qr.reduce_min_max, x.src, axes=self._reduced_axes(call), kind=kind, op=f"reduce_{kind}")
        return self._unkeep(call, result)

    def _q_max(self, call: Call, out: "_OutQuant", bias):
        return self._min_max(call, out, "max")

    def _q_min(self, call: Call, out: "_OutQuant", bias):
        return self._min_max(call, out, "min")

    @staticmethod
    def _check_last_axis(call: Call, op: str) -> None:
        rank = len(call.args[0].ty.shape)
        if int(call.attrs.axis) % rank != rank - 1:
            raise UnsupportedOperatorError(f"{op} over axis {int(call.attrs.axis)} is not supported (last axis only)")

    def _softmax_input(self, call: Call) -> tuple[_Dequant, float]:
        """The int8 input of a last-axis softmax and its beta (a scalar multiply before it)."""
        self._check_last_axis(call, "SOFTMAX")
        inner = self._def(call.args[0])
        if _op_name(inner) == "relax.multiply":
            beta = self._constant(inner.args[1])
            if beta is not None and beta.size == 1:
                return self._input(inner.args[0]), float(beta.reshape(-1)[0])
        return self._input(call.args[0]), 1.0

    def _q_nn_log_softmax(self, call: Call, out: "_OutQuant", bias):
        self._check_last_axis(call, "LOG_SOFTMAX")
        x = self._input(call.args[0])
        if (out.scale, out.zero_point) != qp.LOG_SOFTMAX_OUTPUT:
            raise UnsupportedOperatorError("int8 LOG_SOFTMAX needs output scale 16/256 and zero point 127")
        if (out.act_min, out.act_max) != (-128, 127):
            raise UnsupportedOperatorError("int8 LOG_SOFTMAX followed by a clamp is not supported")
        params = [int(v) for v in qp.log_softmax_params(x.scalar_scale).values()]
        return self._emit(qr.log_softmax, x.src, params=params, op="log_softmax")

    def _float_log_softmax(self, call: Call):
        """A float32 LOG_SOFTMAX of a DEQUANTIZE at the model's end, run in float as TFLM does."""
        self._check_last_axis(call, "LOG_SOFTMAX")
        x = self._input(call.args[0])
        real = self._emit(qc.dequantize_i8, x.src, relax.const(np.float32([x.scalar_scale])), x.scalar_zp, op="dequantize")
        return self._emit(qr.log_softmax_f32, real, op="log_softmax_f32")

    def _realize_arg_min_max(self, var: Var, value: Call) -> None:
        """argmax/argmin of an int8 tensor, with the frontend's cast to the TFLite output type folded."""
        kind = "max" if _op_name(value) == "relax.argmax" else "min"
        data = value.args[0]
        rank = len(data.ty.shape)
        if value.attrs.axis is None:
            raise UnsupportedOperatorError(f"ARG_{kind.upper()} without an axis is not supported")
        axis = int(value.attrs.axis) % rank
        if int(data.ty.shape[axis]) >= 1 << qr.ARG_INDEX_BITS:
            raise UnsupportedOperatorError(f"ARG_{kind.upper()} over more than 2^{qr.ARG_INDEX_BITS} elements is not supported")
        out_var, out_dtype = var, str(var.ty.dtype)
        cast = self._single_user(var, "relax.astype")
        if cast is not None and str(cast.ty.dtype) in ("int32", "int64"):
            self.folded.add(cast)
            out_var, out_dtype = cast, str(cast.ty.dtype)
        result = self._emit(qr.arg_min_max, self.env[data], axis=axis, kind=kind, out_dtype=out_dtype, op=f"arg_{kind}")
        self.env[var] = self.env[out_var] = self.bb.emit(relax.op.reshape(result, var.ty.shape))

    def _same_quant(self, x: _Dequant, out: "_OutQuant", op: str) -> None:
        if abs(x.scalar_scale - out.scale) > 1e-12 * max(1.0, out.scale) or x.scalar_zp != out.zero_point:
            raise UnsupportedOperatorError(f"quantized {op} with different input and output quantization is not supported")

    def _q_nn_pad(self, call: Call, out: "_OutQuant", bias):
        x = self._input(call.args[0])
        self._same_quant(x, out, "PAD")
        value = x.scalar_zp + qp.round_half_away(float(call.attrs.pad_value) / x.scalar_scale)
        return self._pad_kernel(x.src, [int(w) for w in call.attrs.pad_width], value, shape_of(call))

    def _q_take(self, call: Call, out: "_OutQuant", bias):
        """ONNX Pad reflect / edge (onnx_pad: one constant-index take per axis) and Gather on
        int8 data; a take of a take realizes the inner one first (takes copy values unchanged)."""
        if self._constant(call.args[1]) is None:
            raise UnsupportedOperatorError("quantized GATHER needs constant indices")
        if self._dequant(call.args[0]) is None and _op_name(self._def(call.args[0])) == "relax.take":
            return self._realize_take(None, call, self._realize_float(call.args[0], out))
        x = self._input(call.args[0])
        self._same_quant(x, out, "GATHER")
        return self._realize_take(None, call, x.src)

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
        """RESHAPE; also ONNX's Squeeze and Unsqueeze (squeeze, expand_dims): views, no kernel.
        A view of a float op (ONNX: MaxPool -> Flatten in one QDQ group) is the view of its
        realized kernel: a view moves no value, so it commutes with the quantize."""
        if self._dequant(call.args[0]) is None and _op_name(self._def(call.args[0])):
            return self.bb.emit(relax.op.reshape(self._realize_float(call.args[0], out), call.ty.shape))
        x = self._input(call.args[0])
        return self.bb.emit(relax.op.reshape(self._requantized(x, out, "RESHAPE"), call.ty.shape))

    _q_squeeze = _q_reshape
    _q_expand_dims = _q_reshape

    def _q_strided_slice(self, call: Call, out: "_OutQuant", bias):
        """ONNX Slice (any axes, steps): the int8 strided copy of movement_realize."""
        x = self._input(call.args[0])
        self._same_quant(x, out, "SLICE")
        return self._realize_strided_slice(call, call, x.src)

    def _split_part(self, item: relax.TupleGetItem, out: "_OutQuant"):
        """One output of ONNX Split (`split(x)[i]`): a strided copy of its section."""
        split = self._def(item.tuple_value)
        if _op_name(split) != "relax.split":
            raise UnsupportedOperatorError(f"quantized tuple item of {_op_name(split) or split} is not supported")
        x = self._input(split.args[0])
        self._same_quant(x, out, "SPLIT")
        shape = shape_of(split.args[0])
        axis = int(split.attrs.axis) % len(shape)
        begin = [0] * len(shape)
        begin[axis] = sum(int(f.shape[axis]) for f in split.ty.fields[: item.index])
        return self._emit(qmv.strided, x.src, begin=begin, strides=[1] * len(shape), out_shape=shape_of(item), op="strided_slice")

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
        """MAX_POOL_2D; ONNX MaxPool between different quantizations: the int8 max (dequantizing
        is monotonic, so it commutes with the max), requantized."""
        x = self._input(call.args[0])
        if self.exact_float and (x.scalar_scale, x.scalar_zp) != (out.scale, out.zero_point):
            pooled = self._emit(qc.max_pool2d, x.src, op="max_pool2d", act_min=-128, act_max=127, **self._pool_args(call))
            return self._requantized(_Dequant(pooled, x.scale, x.zero_point), out, "MAX_POOL_2D")
        self._same_quant(x, out, "MAX_POOL_2D")
        return self._emit(qc.max_pool2d, x.src, op="max_pool2d", act_min=out.act_min, act_max=out.act_max, **self._pool_args(call))

    def _q_nn_avg_pool2d(self, call: Call, out: "_OutQuant", bias):
        """AVERAGE_POOL_2D (TFLM's integer mean); ONNX AveragePool as onnxruntime's float pool."""
        x = self._input(call.args[0])
        if self.exact_float:
            return self._avg_pool_exact(call, x, out)
        self._same_quant(x, out, "AVERAGE_POOL_2D")
        return self._emit(qc.avg_pool2d, x.src, op="avg_pool2d", act_min=out.act_min, act_max=out.act_max, **self._pool_args(call))

    def _avg_pool_exact(self, call: Call, x: _Dequant, out: "_OutQuant"):
        """ONNX AveragePool in MLAS's float order (qnn_reduce.avg_pool_exact): its global kernel
        when the window is the image, its vector kernel for width strides up to 2 and windows up
        to 32, else its generic one."""
        attrs = call.attrs
        if attrs.layout != "NCHW" or any(int(d) != 1 for d in attrs.dilation) or attrs.ceil_mode:
            raise UnsupportedOperatorError("AveragePool with dilation or ceil_mode is not supported (NCHW)")
        pool, strides = [int(p) for p in attrs.pool_size], [int(s) for s in attrs.strides]
        pads = [int(p) for p in attrs.padding]
        h, w = shape_of(call.args[0])[2:]
        if pool == [h, w] and strides == [1, 1] and not any(pads):
            order = "global"
        elif strides[1] <= 2 and max(pool) <= 32 and w + pads[1] + pads[3] <= _MLAS_REDUCTION_BUFFER:
            order = "columns"
        else:
            order = "rows"
        return self._emit_avg_pool_exact(x, out, order, pool=pool, strides=strides, pads=pads,
                                         count_include_pad=bool(attrs.count_include_pad))

    def _emit_avg_pool_exact(self, x: _Dequant, out: "_OutQuant", order: str, zp_in_float: bool = False, **window):
        return self._emit(qr.avg_pool_exact, x.src, relax.const(_real_table(x)), relax.const(np.float32([out.scale])), op="avg_pool_exact",
                          order=order, out_zp=out.zero_point, zp_in_float=zp_in_float, act_min=out.act_min,
                          act_max=out.act_max, **window)

    def _q_dequantize(self, call: Call, out: "_OutQuant", bias):
        x = self._input(call)
        if self.exact_float:
            return self._requantized(x, out, "QUANTIZE")
        mult, shift = qp.quantize_multiplier(x.scalar_scale / out.scale)
        return self._emit(qc.requantize, x.src, params=(x.scalar_zp, mult, shift, out.zero_point, out.act_min, out.act_max), op="requantize")

    def _q_concat(self, call: Call, out: "_OutQuant", bias):
        parts = [self._input(field) for field in self._def(call.args[0]).fields]
        full = _OutQuant(out.scale, out.zero_point, -128, 127)
        sources = [self._requantized(part, full, "CONCATENATION") for part in parts]
        rank = len(call.ty.shape)
        axis = int(call.attrs.axis) % rank
        return self._emit(qc.concatenate, sources, axis=axis, op="concatenate")

    def _requantized(self, x: _Dequant, out: "_OutQuant", op: str):
        """`x` in the output's quantization: itself, or (ONNX: each element is quantize(dequantize(x)))
        a 256-entry table of onnxruntime's float result; TFLite needs both the same, as TFLM copies raw bytes."""
        same = x.scalar_scale == out.scale and x.scalar_zp == out.zero_point
        if not self.exact_float or same and (out.act_min, out.act_max) == (-128, 127):
            self._same_quant(x, out, op)
            return x.src
        q = np.rint(_real_table(x) / np.float32(out.scale)) + out.zero_point
        table = np.clip(q, out.act_min, out.act_max).astype(np.int8)
        return self._emit(qa.lookup, x.src, relax.const(table), op="lookup")

    def _q_image_resize2d(self, call: Call, out: "_OutQuant", bias):
        """RESIZE_NEAREST_NEIGHBOR / RESIZE_BILINEAR on NHWC; ONNX Resize (NCHW) is the same
        kernel between two transposes, for the coordinate modes whose indices match TFLM's."""
        attrs = call.attrs
        if attrs.layout == "NHWC":
            return self._resize_nhwc(call, self._input(call.args[0]), shape_of(call)[1:3], out)
        if attrs.layout != "NCHW":
            raise UnsupportedOperatorError(f"resize {attrs.method} ({attrs.layout}) is not supported")
        mode = (str(attrs.coordinate_transformation_mode), str(attrs.rounding_method))
        if mode not in _ONNX_NEAREST_MODES if attrs.method == "nearest_neighbor" else mode[0] not in _ONNX_LINEAR_MODES:
            raise UnsupportedOperatorError(f"resize {attrs.method} with coordinate mode {mode[0]} ({mode[1]}) is not supported")
        x = self._input(call.args[0])
        self._same_quant(x, out, "RESIZE")
        nhwc = self._emit(qc.transpose, x.src, axes=[0, 2, 3, 1], op="transpose")
        result = self._resize_nhwc(call, _Dequant(nhwc, x.scale, x.zero_point), shape_of(call)[2:4], out)
        return self._emit(qc.transpose, result, axes=[0, 3, 1, 2], op="transpose")

    def _resize_nhwc(self, call: Call, x: _Dequant, out_hw: list[int], out: "_OutQuant"):
        attrs = call.attrs
        if attrs.method == "linear":
            return self._resize_bilinear(x, attrs, out_hw, out)  # activations (act)
        self._same_quant(x, out, "RESIZE_NEAREST_NEIGHBOR")
        if attrs.method != "nearest_neighbor":
            raise UnsupportedOperatorError(f"resize {attrs.method} ({attrs.layout}) is not supported")
        mode = attrs.coordinate_transformation_mode
        return self._emit(
            qc.resize_nearest, x.src, out_hw=tuple(out_hw), op="resize_nearest",
            align_corners=mode == "align_corners", half_pixel_centers=mode in ("half_pixel", "tf_half_pixel_for_nn"),
        )

    # ---------------------------------------------------------------- sequence family (LSTM, SVDF)
    def _realize_sequence(self, var: Var, value: Call) -> None:
        """A recurrent op's marker (tvm_tinyml.sequence_import: int8 input, constants, parameter
        table last) -> its kernel, whose state and gate buffers are extra outputs (planned scratch)."""
        fields = value.args[1].fields
        args = [self.env[fields[0]], *fields[1:]]
        params = self._constant(fields[-1])
        kernel = qs.sequence_kernel(str(value.args[0].global_symbol), args, tuple(int(d) for d in var.ty.shape), params)
        attrs = {"tinyml.op": kernel.op, "tinyml.attrs": json.dumps({"params": params.tolist()})}
        gvar = self.bb.add_func(kernel.func.with_attrs(attrs), kernel.op)
        outputs = self.bb.emit(relax.op.call_tir(gvar, relax.Tuple(args), kernel.out_types))
        self.env[var] = self.bb.emit(relax.TupleGetItem(outputs, 0))

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


def _real_table(x: _Dequant) -> np.ndarray:
    """float32 value of each int8 code of `x` as onnxruntime dequantizes it: (q - zero point) * scale."""
    return (np.arange(-128, 128, dtype=np.int32) - x.scalar_zp).astype(np.float32) * np.float32(x.scalar_scale)


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
