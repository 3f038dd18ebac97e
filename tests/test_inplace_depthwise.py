"""InplaceDepthwise: before/after on small hand-written Relax modules, and numbers unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import tvm
from tvm import relax
from tvm.script import ir as I
from tvm.script import relax as R

import tvm_tinyml
from relax_passes import InplaceDepthwise, QuantizeRealize
from tvm_tinyml import quant_params as qp


def depthwise_module(h: int, w: int, c: int, stride: int) -> tvm.IRModule:
    """dequantize -> depthwise conv (HWOI, as the TFLite importer writes it) -> quantize."""
    rng = np.random.default_rng(h * 100 + w * 10 + c)
    weight = rng.integers(-127, 128, (1, 3, 3, c)).astype(np.int8)
    scales = np.full(c, 0.01, np.float32)
    bias = rng.integers(-300, 300, c).astype(np.int32)
    oh, ow = (h - 1) // stride + 1, (w - 1) // stride + 1

    @I.ir_module
    class Before:
        @R.function
        def main(x: R.Tensor((1, h, w, c), "int8")) -> R.Tensor((1, oh, ow, c), "int8"):
            with R.dataflow():
                lv = R.dequantize(x, R.const(0.05, "float32"), R.const(-10, "int32"), out_dtype="float32", axis=0)
                wq = R.dequantize(R.const(weight), R.const(scales), R.const(0, "int32"), out_dtype="float32", axis=3)
                wr = R.reshape(wq, R.shape([3, 3, c, 1]))
                conv = R.nn.conv2d(lv, wr, strides=[stride, stride], padding=[1, 1, 1, 1], groups=c,
                                   data_layout="NHWC", kernel_layout="HWOI", out_dtype="float32")
                b = R.dequantize(R.const(bias), R.const(scales * np.float32(0.05)), R.const(0, "int32"), out_dtype="float32", axis=0)
                y = R.add(conv, b)
                q = R.quantize(y, R.const(0.04, "float32"), R.const(5, "int32"), out_dtype="int8", axis=-1)
                R.output(q)
            return q

    return Before


def kernel_ops(mod: tvm.IRModule) -> list[str]:
    calls = [b.value for block in mod["main"].body.blocks for b in block.bindings
             if isinstance(b.value, relax.Call) and b.value.op.name == "relax.call_tir"]
    return [str(mod[c.args[0]].attrs["tinyml.op"]) for c in calls]


def test_rewrites_when_the_plane_is_smaller_than_the_streaming_gap():
    # 25x5x64 (KWS): a 125-byte plane beats streaming's (W + 1) * C = 384 bytes.
    after = InplaceDepthwise()(QuantizeRealize()(depthwise_module(25, 5, 64, 1)))
    assert kernel_ops(after) == ["depthwise_conv2d_inplace"]
    (pair,) = [b for block in after["main"].body.blocks for b in block.bindings if isinstance(b.var.ty, relax.TupleType)]
    out, scratch = pair.var.ty.fields
    assert tuple(int(d) for d in out.shape) == (1, 25, 5, 64)
    assert tuple(int(d) for d in scratch.shape) == (125,)
    # The original kernel is gone from the module.
    assert not any(str(f.attrs.get("tinyml.op", "")) == "depthwise_conv2d" for f in after.functions.values() if hasattr(f, "attrs") and f.attrs)


def test_keeps_the_streaming_kernel_when_the_plane_is_larger():
    # 16x16x4: a 256-byte plane costs more than streaming's (16 + 1) * 4 = 68 bytes.
    after = InplaceDepthwise()(QuantizeRealize()(depthwise_module(16, 16, 4, 1)))
    assert kernel_ops(after) == ["depthwise_conv2d"]


def test_is_a_composable_pass():
    seq = tvm.transform.Sequential([QuantizeRealize(), InplaceDepthwise()])
    assert kernel_ops(seq(depthwise_module(25, 5, 64, 1))) == ["depthwise_conv2d_inplace"]


@pytest.mark.parametrize("h, w, c, stride", [(25, 5, 64, 1), (7, 3, 32, 1), (6, 4, 16, 1)])
def test_in_place_kernel_computes_the_same_numbers(h, w, c, stride):
    mod = depthwise_module(h, w, c, stride)
    x = np.random.default_rng(1).integers(-128, 128, (1, h, w, c)).astype(np.int8)
    in_place = tvm_tinyml.build(mod, target="host")
    streaming = tvm_tinyml.build(mod, target="host", memory_planner="tvm")  # no in-place rewrite
    assert "depthwise_conv2d_inplace" in in_place.metadata["layers"]
    assert "depthwise_conv2d_inplace" not in streaming.metadata["layers"]
    np.testing.assert_array_equal(in_place.run_host([x])[0], streaming.run_host([x])[0])
    # ... and the in-place plan gives the output exactly the input's bytes.
    plan = in_place.plan
    graph_inputs = [r.name for r in plan.requirements if r.first == 0]
    assert any(o.min_delta == 0 == o.max_delta for o in plan.overlaps), plan.overlaps
    assert graph_inputs


def test_multiplier_parameters_match_tflm_formula():
    # The rewrite keeps the kernel's quantization: compare the requantization constants.
    after = InplaceDepthwise()(QuantizeRealize()(depthwise_module(25, 5, 64, 1)))
    (call,) = [b.value for block in after["main"].body.blocks for b in block.bindings
               if isinstance(b.value, relax.Call) and b.value.op.name == "relax.call_tir"]
    mult = call.args[1].fields[3].value.numpy()
    want, _ = qp.conv_output_multipliers(0.05, np.full(64, 0.01, np.float32), 0.04)
    np.testing.assert_array_equal(mult, want)
