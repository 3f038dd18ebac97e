"""InplaceDepthwise: run depthwise convolutions in place where that saves memory.

Rewrites `R.call_tir(depthwise_conv2d, (x, w, b, mult, shift))` (NHWC, channel multiplier 1)
into `R.call_tir(depthwise_conv2d_inplace, (x, w, b, mult, shift))` returning
`(out, scratch)`, whose kernel (`schedules.depthwise_inplace`) saves one input channel plane
in `scratch` (H*W bytes) and writes the output over the input. The memory planner may then
give input and output the same bytes. The rewrite is made only where the scratch plane is
smaller than what streaming the ordinary kernel over its input costs (the bytes its output
must start before its input, from `tvm_tinyml.overlap`): e.g. (W + 1) * C for a 3x3
stride-1 window, nothing for most stride-2 layers.

Before:
    lv1 = R.call_tir(depthwise_conv2d, (lv, w, b, m, s), out_ty=R.Tensor((1, 25, 5, 64), "int8"))
After:
    lv1_pair = R.call_tir(depthwise_conv2d_inplace, (lv, w, b, m, s),
                          out_ty=[R.Tensor((1, 25, 5, 64), "int8"), R.Tensor((125,), "int8")])
    lv1 = lv1_pair[0]
"""

from __future__ import annotations

import json

import tvm
from tvm import relax
from tvm.ir.expr import Call

from schedules.depthwise_inplace import depthwise_conv2d_inplace
from tvm_tinyml.overlap import max_overlap_delta


def _shape(ty) -> tuple[int, ...]:
    return tuple(int(d) for d in ty.shape)


@relax.expr_functor.mutator
class _Rewriter(relax.PyExprMutator):
    def __init__(self, mod: tvm.IRModule) -> None:
        super().__init__(mod)
        self.mod = mod

    def visit_call_(self, call: Call) -> relax.Expr:
        call = super().visit_call_(call)
        if call.op.name != "relax.call_tir":
            return call
        func = self.mod[call.args[0]]
        if str(func.attrs.get("tinyml.op", "")) != "depthwise_conv2d":
            return call
        attrs = json.loads(str(func.attrs["tinyml.attrs"]))
        data, weight = call.args[1].fields[:2]
        shape = _shape(data.ty)
        out_shape = _shape(call.ty)
        _, h, w, c = shape
        if attrs.get("layout", "NHWC") != "NHWC" or out_shape[3] != c:
            return call
        delta = max_overlap_delta("depthwise_conv2d", attrs, 0, [shape, _shape(weight.ty)], 1, out_shape, 1)
        if delta is None or h * w >= -delta:
            return call
        kernel = depthwise_conv2d_inplace(
            shape, _shape(weight.ty)[:2], out_shape[1:3],
            **{k: attrs[k] for k in ("strides", "pads", "dilation", "in_zp", "out_zp", "act_min", "act_max")},
        )
        attrs_out = {"tinyml.op": "depthwise_conv2d_inplace", "tinyml.attrs": json.dumps(attrs)}
        gvar = self.builder_.add_func(kernel.with_attrs(attrs_out), "depthwise_conv2d_inplace")
        pair = self.builder_.emit(
            relax.op.call_tir(gvar, call.args[1], [relax.TensorType(out_shape, "int8"), relax.TensorType((h * w,), "int8")])
        )
        return relax.TupleGetItem(pair, 0)


@tvm.transform.module_pass(opt_level=0, name="InplaceDepthwise")
class InplaceDepthwise:
    """Rewrite depthwise convolutions into their in-place form (see module doc)."""

    def transform_module(self, mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        rewriter = _Rewriter(mod)
        for gvar, func in mod.functions.items():
            if isinstance(func, relax.Function):
                rewriter.builder_.update_func(gvar, rewriter.visit_expr(func))
        result = rewriter.builder_.get()
        return relax.transform.DeadCodeElimination(["main"])(result)
