"""Tests for relax_passes.QuantizeRealize: QDQ float patterns -> R.call_tir of integer kernels.

Each test writes a small QDQ "Before" module in TVMScript (the form TVM's TFLite/ONNX importers
produce), runs the pass and checks the After's `main`: the kernels it calls (their `tinyml.op`),
that it is integer-only, the constants handed to the kernels and the clamp bounds in the
kernels. The integer kernels are generated TIR, so instead of a structural-equality After the
numeric tests build the Before end to end for the host (`tvm_tinyml.build(..., target="host")`)
and compare with a short numpy model of TFLite Micro's integer arithmetic (TFLM itself for
softmax).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import tvm
from tvm import relax
from tvm.script import ir as I
from tvm.script import relax as R

import tvm_tinyml
from relax_passes import QuantizeRealize
from tflite_builder import build_single_op_model, run_tflm
from tvm_tinyml import quant_params as qp
from tvm_tinyml.errors import UnsupportedOperatorError

RNG = np.random.default_rng(20240611)
S_X, ZP_X = 0.05, -3  # the activation quantization most tests use


# ---------------------------------------------------------------- After inspection


def realize(mod: tvm.IRModule) -> tvm.IRModule:
    after = QuantizeRealize()(mod)
    relax.analysis.well_formed(after)
    return after


def main_bindings(mod: tvm.IRModule) -> list:
    return [b for block in mod["main"].body.blocks for b in block.bindings]


def kernel_calls(mod: tvm.IRModule) -> list[tuple[tvm.tirx.PrimFunc, relax.Call]]:
    """(PrimFunc, call) of every R.call_tir in main, in order."""
    call_tir = tvm.ir.Op.get("relax.call_tir")
    return [
        (mod[b.value.args[0]], b.value)
        for b in main_bindings(mod)
        if isinstance(b.value, relax.Call) and b.value.op.same_as(call_tir)
    ]


def kernel_ops(mod: tvm.IRModule) -> list[str]:
    return [str(func.attrs["tinyml.op"]) for func, _ in kernel_calls(mod)]


def call_constants(call: relax.Call) -> list[np.ndarray]:
    return [a.value.numpy() for a in call.args[1].fields if isinstance(a, tvm.ir.expr.Constant)]


def requant_args(func: tvm.tirx.PrimFunc) -> list[tuple[int, int, int]]:
    """(out_zp, act_min, act_max) of every tinyml_requant_i8 call in a kernel."""
    pattern = r'"tinyml_requant_i8", .*, (-?\d+), (-?\d+), (-?\d+)\)$'
    return [tuple(map(int, m)) for m in re.findall(pattern, func.script(), re.M)]


def assert_integer_only(mod: tvm.IRModule, out_shape: tuple[int, ...]) -> None:
    """No QDQ op and no float tensor left; int8 in and out; only kernels the main calls."""
    main = mod["main"]
    for param in main.params:
        assert param.ty.dtype == "int8", param
    for b in main_bindings(mod):
        if isinstance(b.value, relax.Call):
            assert b.value.op.name in ("relax.call_tir", "relax.reshape"), b.value.op.name
        assert "float" not in str(b.var.ty.dtype), b
    assert main.ret_ty.dtype == "int8"
    assert tuple(int(d) for d in main.ret_ty.shape) == out_shape
    called = {call.args[0].name_hint for _, call in kernel_calls(mod)}
    kernels = {gv.name_hint for gv in mod.get_global_vars() if isinstance(mod[gv], tvm.tirx.PrimFunc)}
    assert kernels == called, "unused kernels left in the module"


def run_host(mod: tvm.IRModule, *inputs: np.ndarray) -> list[np.ndarray]:
    return tvm_tinyml.build(mod, target="host").run_host(list(inputs))


def i8(shape, seed: int = 0) -> np.ndarray:
    """Random int8 test input, the same whichever tests run."""
    return np.random.default_rng(seed).integers(-128, 128, shape, dtype=np.int8)


# ---------------------------------------------------------------- numpy TFLM integer model


def mbqm(x, multiplier, shift) -> np.ndarray:
    """tflite::MultiplyByQuantizedMultiplier (double rounding), elementwise, in int64."""
    x, m, s = (np.asarray(v, np.int64) for v in (x, multiplier, shift))
    x = ((x << np.maximum(s, 0)) + 2**31) % 2**32 - 2**31  # int32 wrap-around of the left shift
    prod = x * m
    prod = prod + np.where(prod >= 0, 1 << 30, 1 - (1 << 30))
    high = np.sign(prod) * (np.abs(prod) >> 31)  # SaturatingRoundingDoublingHighMul
    right = np.maximum(-s, 0)
    mask = (np.int64(1) << right) - 1
    return (high >> right) + ((high & mask) > (mask >> 1) + (high < 0))  # RoundingDivideByPOT


def requant(acc, mult, shift, zp: int, lo: int = -128, hi: int = 127) -> np.ndarray:
    return np.clip(mbqm(acc, mult, shift) + zp, lo, hi).astype(np.int8)


def conv_acc(x, w, bias, in_zp: int, stride: int = 1, pads=(0, 0, 0, 0), depthwise: bool = False):
    """int32 accumulator of an NHWC conv (w HWIO) or depthwise conv (w HWC, multiplier 1)."""
    top, left, bottom, right = pads
    xp = np.pad(x.astype(np.int64) - in_zp, ((0, 0), (top, bottom), (left, right), (0, 0)))
    kh, kw = w.shape[:2]
    oh, ow = (xp.shape[1] - kh) // stride + 1, (xp.shape[2] - kw) // stride + 1
    acc = 0
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, i : i + stride * oh : stride, j : j + stride * ow : stride, :]
            tap = w[i, j].astype(np.int64)
            acc = acc + (patch * tap if depthwise else patch @ tap)
    return acc + bias


# ---------------------------------------------------------------- conv2d

W_CONV = RNG.integers(-127, 128, (3, 3, 4, 6), dtype=np.int8)
W_CONV_SCALES = np.array([0.004, 0.006, 0.008, 0.01, 0.015, 0.02], np.float32)
B_CONV = RNG.integers(-3000, 3000, 6, dtype=np.int32)
B_CONV_SCALES = np.float32(S_X) * W_CONV_SCALES
S_CONV, ZP_CONV = 0.15, 5


def test_conv2d_bias_relu() -> None:
    @I.ir_module
    class Before:
        @R.function
        def main(x: R.Tensor((1, 8, 8, 4), "int8")) -> R.Tensor((1, 8, 8, 6), "int8"):
            with R.dataflow():
                lv = R.dequantize(x, R.const(S_X, "float32"), R.const(ZP_X, "int32"), out_dtype="float32", axis=0)
                w = R.dequantize(R.const(W_CONV), R.const(W_CONV_SCALES), R.const(np.zeros(6, "int32")), out_dtype="float32", axis=3)
                conv = R.nn.conv2d(lv, w, padding=[1, 1, 1, 1], data_layout="NHWC", kernel_layout="HWIO", out_dtype="float32")
                b = R.dequantize(R.const(B_CONV), R.const(B_CONV_SCALES), R.const(np.zeros(6, "int32")), out_dtype="float32", axis=0)
                biased = R.add(conv, b)
                act = R.nn.relu(biased)
                q = R.quantize(act, R.const(S_CONV, "float32"), R.const(ZP_CONV, "int32"), out_dtype="int8", axis=-1)
                R.output(q)
            return q

    after = realize(Before)
    assert_integer_only(after, (1, 8, 8, 6))
    assert kernel_ops(after) == ["conv2d"]
    (func, call), = kernel_calls(after)
    assert call.args[1].fields[0].same_as(after["main"].params[0])
    weight, bias, mult, shift = call_constants(call)
    want_mult, want_shift = qp.conv_output_multipliers(S_X, W_CONV_SCALES, S_CONV)
    np.testing.assert_array_equal(weight, W_CONV)
    np.testing.assert_array_equal(bias, B_CONV)
    np.testing.assert_array_equal(mult, want_mult)
    np.testing.assert_array_equal(shift, want_shift)
    assert bias.dtype == mult.dtype == shift.dtype == np.int32
    assert len(set(mult.tolist())) > 1  # really per channel
    assert requant_args(func) == [(ZP_CONV, ZP_CONV, 127)]  # relu: clamp below at the zero point

    x = i8((1, 8, 8, 4))
    (got,) = run_host(Before, x)
    want = requant(conv_acc(x, W_CONV, B_CONV, ZP_X, pads=(1, 1, 1, 1)), want_mult, want_shift, ZP_CONV, ZP_CONV, 127)
    np.testing.assert_array_equal(got, want)
    assert (got == ZP_CONV).any() and int(got.max()) - int(got.min()) > 50  # the clamp and the requantization both matter


def test_conv2d_int8_clip_after_quantize_is_fused() -> None:
    @I.ir_module
    class Before:
        @R.function
        def main(x: R.Tensor((1, 8, 8, 4), "int8")) -> R.Tensor((1, 4, 4, 6), "int8"):
            with R.dataflow():
                lv = R.dequantize(x, R.const(S_X, "float32"), R.const(ZP_X, "int32"), out_dtype="float32", axis=0)
                w = R.dequantize(R.const(W_CONV), R.const(W_CONV_SCALES), R.const(np.zeros(6, "int32")), out_dtype="float32", axis=3)
                conv = R.nn.conv2d(lv, w, strides=[2, 2], padding=[1, 1, 0, 0], data_layout="NHWC", kernel_layout="HWIO", out_dtype="float32")
                q = R.quantize(conv, R.const(S_CONV, "float32"), R.const(ZP_CONV, "int32"), out_dtype="int8", axis=-1)
                c = R.clip(q, -20, 60)
                R.output(c)
            return c

    after = realize(Before)
    assert_integer_only(after, (1, 4, 4, 6))
    assert kernel_ops(after) == ["conv2d"]  # no separate clip kernel
    (func, call), = kernel_calls(after)
    _, bias, mult, shift = call_constants(call)
    np.testing.assert_array_equal(bias, np.zeros(6, np.int32))  # no bias: zeros
    assert requant_args(func) == [(ZP_CONV, -20, 60)]

    x = i8((1, 8, 8, 4))
    (got,) = run_host(Before, x)
    want = requant(conv_acc(x, W_CONV, 0, ZP_X, stride=2, pads=(1, 1, 0, 0)), mult, shift, ZP_CONV, -20, 60)
    np.testing.assert_array_equal(got, want)
    assert (got == -20).any() and (got == 60).any()


def test_int8_clip_alone_is_a_clamp_kernel() -> None:
    @I.ir_module
    class Before:
        @R.function
        def main(x: R.Tensor((1, 16), "int8")) -> R.Tensor((1, 16), "int8"):
            with R.dataflow():
                c = R.clip(x, -10, 30)
                R.output(c)
            return c

    after = realize(Before)
    assert_integer_only(after, (1, 16))
    assert kernel_ops(after) == ["clip"]
    x = np.arange(-128, 128, 16, dtype=np.int8).reshape(1, 16)
    np.testing.assert_array_equal(run_host(Before, x)[0], np.clip(x, -10, 30))


# ---------------------------------------------------------------- depthwise conv


@pytest.mark.parametrize("multiplier", [1, 2])
def test_depthwise_conv2d_hwoi(multiplier: int) -> None:
    """The TFLite frontend form: a (1, 3, 3, C*M) int8 weight dequantized on axis 3, reshaped
    to HWOI (3, 3, C*M, 1), conv2d with groups=C."""
    c, co = 4, 4 * multiplier
    rng = np.random.default_rng(multiplier)
    weight = rng.integers(-127, 128, (1, 3, 3, co), dtype=np.int8)
    w_scales = np.linspace(0.005, 0.02, co).astype(np.float32)
    bias = rng.integers(-2000, 2000, co, dtype=np.int32)
    s_out, zp_out = 0.08, -10

    @I.ir_module
    class Before:
        @R.function
        def main(x: R.Tensor((1, 6, 6, 4), "int8")) -> R.Tensor((1, 6, 6, co), "int8"):
            with R.dataflow():
                lv = R.dequantize(x, R.const(S_X, "float32"), R.const(ZP_X, "int32"), out_dtype="float32", axis=0)
                w = R.dequantize(R.const(weight), R.const(w_scales), R.const(np.zeros(co, "int32")), out_dtype="float32", axis=3)
                w_hwoi = R.reshape(w, (3, 3, co, 1))
                conv = R.nn.conv2d(lv, w_hwoi, padding=[1, 1, 1, 1], groups=c, data_layout="NHWC", kernel_layout="HWOI", out_dtype="float32")
                b = R.dequantize(R.const(bias), R.const(np.float32(S_X) * w_scales), R.const(np.zeros(co, "int32")), out_dtype="float32", axis=0)
                biased = R.add(conv, b)
                q = R.quantize(biased, R.const(s_out, "float32"), R.const(zp_out, "int32"), out_dtype="int8", axis=-1)
                R.output(q)
            return q

    after = realize(Before)
    assert_integer_only(after, (1, 6, 6, co))
    assert kernel_ops(after) == ["depthwise_conv2d"]
    (func, call), = kernel_calls(after)
    kernel, got_bias, mult, shift = call_constants(call)
    want_mult, want_shift = qp.conv_output_multipliers(S_X, w_scales, s_out)
    np.testing.assert_array_equal(kernel, weight.reshape(3, 3, co))  # HWC, multiplier folded into C
    np.testing.assert_array_equal(got_bias, bias)
    np.testing.assert_array_equal(mult, want_mult)
    np.testing.assert_array_equal(shift, want_shift)
    assert requant_args(func) == [(zp_out, -128, 127)]

    x = i8((1, 6, 6, 4))
    (got,) = run_host(Before, x)
    x_rep = np.repeat(x, multiplier, axis=3)  # output channel o reads input channel o // M
    acc = conv_acc(x_rep, weight.reshape(3, 3, co), bias, ZP_X, pads=(1, 1, 1, 1), depthwise=True)
    np.testing.assert_array_equal(got, requant(acc, want_mult, want_shift, zp_out))
    assert int(got.max()) - int(got.min()) > 50


# ---------------------------------------------------------------- fully connected

W_FC = RNG.integers(-127, 128, (8, 32), dtype=np.int8)  # TFLite [N, K]
W_FC_SCALES = np.linspace(0.003, 0.012, 8).astype(np.float32)
B_FC = RNG.integers(-4000, 4000, 8, dtype=np.int32)


def test_fully_connected_matmul_relu6() -> None:
    """TFLite FC form: matmul(x, dequantize(permute_dims(W), axis=1)) + bias, float clip(0, 6)."""
    s_out, zp_out = 0.05, -100  # relu6 bounds: -100 and -100 + 6 / 0.05 = 20

    @I.ir_module
    class Before:
        @R.function
        def main(x: R.Tensor((1, 32), "int8")) -> R.Tensor((1, 8), "int8"):
            with R.dataflow():
                lv = R.dequantize(x, R.const(S_X, "float32"), R.const(ZP_X, "int32"), out_dtype="float32", axis=0)
                wt = R.permute_dims(R.const(W_FC), [1, 0])
                w = R.dequantize(wt, R.const(W_FC_SCALES), R.const(np.zeros(8, "int32")), out_dtype="float32", axis=1)
                mm = R.matmul(lv, w, out_dtype="float32")
                b = R.dequantize(R.const(B_FC), R.const(np.float32(S_X) * W_FC_SCALES), R.const(np.zeros(8, "int32")), out_dtype="float32", axis=0)
                biased = R.add(mm, b)
                act = R.clip(biased, R.prim_value(0.0), R.prim_value(6.0))
                q = R.quantize(act, R.const(s_out, "float32"), R.const(zp_out, "int32"), out_dtype="int8", axis=-1)
                R.output(q)
            return q

    after = realize(Before)
    assert_integer_only(after, (1, 8))
    assert kernel_ops(after) == ["dense"]
    (func, call), = kernel_calls(after)
    weight, bias, mult, shift = call_constants(call)
    want_mult, want_shift = qp.fully_connected_multiplier(S_X, W_FC_SCALES, s_out)
    np.testing.assert_array_equal(weight, W_FC)  # back to [N, K]
    np.testing.assert_array_equal(bias, B_FC)
    np.testing.assert_array_equal(mult, want_mult)
    np.testing.assert_array_equal(shift, want_shift)
    lo, hi = qp.activation_range("relu6", s_out, zp_out)
    assert (lo, hi) == (-100, 20)
    assert requant_args(func) == [(zp_out, lo, hi)]

    x = i8((4, 1, 32))
    model = tvm_tinyml.build(Before, target="host")
    got = np.concatenate([model.run_host([row])[0] for row in x])
    acc = (x.reshape(4, 32).astype(np.int64) - ZP_X) @ W_FC.T.astype(np.int64) + B_FC
    want = requant(acc, want_mult, want_shift, zp_out, lo, hi)
    np.testing.assert_array_equal(got, want)
    assert (got == lo).any() and (got == hi).any()


# ---------------------------------------------------------------- elementwise


def add_ref(a, b, s1, zp1, s2, zp2, s_out, zp_out) -> np.ndarray:
    p = qp.add_params(s1, zp1, s2, zp2, s_out, zp_out, -128, 127)
    x1 = (a.astype(np.int64) + p["in1_offset"]) << p["left_shift"]
    x2 = (b.astype(np.int64) + p["in2_offset"]) << p["left_shift"]
    raw = mbqm(x1, p["in1_mult"], p["in1_shift"]) + mbqm(x2, p["in2_mult"], p["in2_shift"])
    return requant(raw, p["out_mult"], p["out_shift"], zp_out)


def test_residual_add_different_scales() -> None:
    s2, zp2, s_out, zp_out = 0.11, 7, 0.09, -4

    @I.ir_module
    class Before:
        @R.function
        def main(a: R.Tensor((1, 4, 4, 8), "int8"), b: R.Tensor((1, 4, 4, 8), "int8")) -> R.Tensor((1, 4, 4, 8), "int8"):
            with R.dataflow():
                fa = R.dequantize(a, R.const(S_X, "float32"), R.const(ZP_X, "int32"), out_dtype="float32", axis=0)
                fb = R.dequantize(b, R.const(s2, "float32"), R.const(zp2, "int32"), out_dtype="float32", axis=0)
                s = R.add(fa, fb)
                q = R.quantize(s, R.const(s_out, "float32"), R.const(zp_out, "int32"), out_dtype="int8", axis=-1)
                R.output(q)
            return q

    after = realize(Before)
    assert_integer_only(after, (1, 4, 4, 8))
    assert kernel_ops(after) == ["add"]
    (func, call), = kernel_calls(after)
    assert [v.same_as(p) for v, p in zip(call.args[1].fields, after["main"].params)] == [True, True]
    params = qp.add_params(S_X, ZP_X, s2, zp2, s_out, zp_out, -128, 127)
    assert "tinyml_add_i8" in func.script()
    assert ", ".join(str(v) for v in params.values()) + ")" in func.script()

    a, b = i8((1, 4, 4, 8), seed=1), i8((1, 4, 4, 8), seed=2)
    (got,) = run_host(Before, a, b)
    np.testing.assert_array_equal(got, add_ref(a, b, S_X, ZP_X, s2, zp2, s_out, zp_out))
    # and it is an ADD: within one step of the float result
    real = (a.astype(np.float64) - ZP_X) * np.float32(S_X) + (b.astype(np.float64) - zp2) * np.float32(s2)
    assert np.abs(got - np.clip(np.round(real / s_out) + zp_out, -128, 127)).max() <= 1


# ---------------------------------------------------------------- softmax, mean, pooling


def test_softmax() -> None:
    s_in, zp_in = 0.07, 3

    @I.ir_module
    class Before:
        @R.function
        def main(x: R.Tensor((2, 10), "int8")) -> R.Tensor((2, 10), "int8"):
            with R.dataflow():
                lv = R.dequantize(x, R.const(s_in, "float32"), R.const(zp_in, "int32"), out_dtype="float32", axis=0)
                sm = R.nn.softmax(lv, axis=-1)
                q = R.quantize(sm, R.const(1.0 / 256, "float32"), R.const(-128, "int32"), out_dtype="int8", axis=-1)
                R.output(q)
            return q

    after = realize(Before)
    assert_integer_only(after, (2, 10))
    assert kernel_ops(after) == ["softmax"]
    (func, _), = kernel_calls(after)
    mult, shift, diff_min = qp.softmax_params(s_in)
    assert f'"tinyml_softmax_rows_i8", x, out, 2, 10, {mult}, {shift}, {diff_min})' in func.script().replace(".data", "")

    x = i8((2, 10))
    (got,) = run_host(Before, x)
    model = build_single_op_model(
        "SOFTMAX",
        [dict(shape=x.shape, dtype=np.int8, scale=s_in, zero_point=zp_in)],
        [dict(shape=x.shape, dtype=np.int8, scale=1 / 256, zero_point=-128)],
        beta=1.0,
    )
    np.testing.assert_array_equal(got, run_tflm(model, [x])[0])


@pytest.mark.parametrize("keepdims", [True, False])
def test_mean_over_spatial_axes(keepdims: bool) -> None:
    s_out, zp_out = 0.02, 6
    out_shape = (1, 1, 1, 6) if keepdims else (1, 6)

    @I.ir_module
    class Before:
        @R.function
        def main(x: R.Tensor((1, 4, 5, 6), "int8")) -> R.Tensor(out_shape, "int8"):
            with R.dataflow():
                lv = R.dequantize(x, R.const(S_X, "float32"), R.const(ZP_X, "int32"), out_dtype="float32", axis=0)
                m = R.mean(lv, axis=[1, 2], keepdims=keepdims)
                q = R.quantize(m, R.const(s_out, "float32"), R.const(zp_out, "int32"), out_dtype="int8", axis=-1)
                R.output(q)
            return q

    after = realize(Before)
    assert_integer_only(after, out_shape)
    assert kernel_ops(after) == ["mean"]
    (func, _), = kernel_calls(after)
    params = qp.mean_params(S_X, ZP_X, s_out, zp_out, 20)
    assert '"tinyml_mean_i8", acc[' in func.script()
    assert ", ".join(str(v) for v in params.values()) + ")" in func.script()

    x = i8((1, 4, 5, 6)) // 4  # keep the mean inside the int8 output range
    (got,) = run_host(Before, x)
    total = x.astype(np.int64).sum(axis=(1, 2), keepdims=keepdims)
    want = requant(total - ZP_X * 20, params["multiplier"], params["shift"], zp_out)
    np.testing.assert_array_equal(got, want)
    real_mean = (x.astype(np.float64) - ZP_X).mean(axis=(1, 2), keepdims=keepdims) * np.float32(S_X)
    assert np.abs(got - (np.round(real_mean / s_out) + zp_out)).max() <= 1


def test_integer_avg_pool2d() -> None:
    """The frontend's integer AVERAGE_POOL_2D: astype(int32) -> avg_pool2d -> astype(int8)."""

    @I.ir_module
    class Before:
        @R.function
        def main(x: R.Tensor((1, 7, 7, 3), "int8")) -> R.Tensor((1, 4, 4, 3), "int8"):
            with R.dataflow():
                wide = R.astype(x, "int32")
                pool = R.nn.avg_pool2d(wide, pool_size=[3, 3], strides=[2, 2], padding=[1, 1, 1, 1], layout="NHWC")
                q = R.astype(pool, "int8")
                R.output(q)
            return q

    after = realize(Before)
    assert_integer_only(after, (1, 4, 4, 3))
    assert kernel_ops(after) == ["avg_pool2d"]
    (func, _), = kernel_calls(after)
    assert '"tinyml_avgpool_round_i8"' in func.script() and "-128, 127)" in func.script()

    x = i8((1, 7, 7, 3))
    (got,) = run_host(Before, x)
    want = np.empty((1, 4, 4, 3), np.int8)
    for oy in range(4):
        for ox in range(4):
            win = x[0, max(2 * oy - 1, 0) : 2 * oy + 2, max(2 * ox - 1, 0) : 2 * ox + 2].astype(np.int64)
            total, count = win.sum(axis=(0, 1)), win.shape[0] * win.shape[1]  # padding not counted
            half = np.where(total > 0, count // 2, -(count // 2))
            want[0, oy, ox] = np.trunc((total + half) / count)  # TFLite: round half away from zero
    np.testing.assert_array_equal(got, want)


# ---------------------------------------------------------------- requantize, pad, float IO


def test_requantize() -> None:
    s_out, zp_out = 0.1, 2

    @I.ir_module
    class Before:
        @R.function
        def main(x: R.Tensor((1, 64), "int8")) -> R.Tensor((1, 64), "int8"):
            with R.dataflow():
                lv = R.dequantize(x, R.const(S_X, "float32"), R.const(ZP_X, "int32"), out_dtype="float32", axis=0)
                q = R.quantize(lv, R.const(s_out, "float32"), R.const(zp_out, "int32"), out_dtype="int8", axis=-1)
                R.output(q)
            return q

    after = realize(Before)
    assert_integer_only(after, (1, 64))
    assert kernel_ops(after) == ["requantize"]
    (func, _), = kernel_calls(after)
    mult, shift = qp.quantize_multiplier(float(np.float32(S_X)) / float(np.float32(s_out)))
    assert f"{mult}, {shift}, {zp_out}, -128, 127)" in func.script()

    x = np.arange(-128, 128, 4, dtype=np.int8).reshape(1, 64)
    (got,) = run_host(Before, x)
    np.testing.assert_array_equal(got, requant(x.astype(np.int64) - ZP_X, mult, shift, zp_out))
    # x = 0: (0 + 3) * 0.5 = 1.5 rounds away from zero to 2, plus zp 2
    assert got[0, 32] == 4


def test_pad_fused_into_conv() -> None:
    s_pad = S_X  # PAD keeps the quantization

    @I.ir_module
    class Before:
        @R.function
        def main(x: R.Tensor((1, 8, 8, 4), "int8")) -> R.Tensor((1, 5, 4, 6), "int8"):
            with R.dataflow():
                lv = R.dequantize(x, R.const(S_X, "float32"), R.const(ZP_X, "int32"), out_dtype="float32", axis=0)
                p = R.nn.pad(lv, [0, 0, 1, 2, 0, 1, 0, 0])  # top 1, bottom 2, left 0, right 1
                qp_ = R.quantize(p, R.const(s_pad, "float32"), R.const(ZP_X, "int32"), out_dtype="int8", axis=-1)
                lv2 = R.dequantize(qp_, R.const(s_pad, "float32"), R.const(ZP_X, "int32"), out_dtype="float32", axis=0)
                w = R.dequantize(R.const(W_CONV), R.const(W_CONV_SCALES), R.const(np.zeros(6, "int32")), out_dtype="float32", axis=3)
                conv = R.nn.conv2d(lv2, w, strides=[2, 2], padding=[0, 1, 0, 0], data_layout="NHWC", kernel_layout="HWIO", out_dtype="float32")
                q = R.quantize(conv, R.const(S_CONV, "float32"), R.const(ZP_CONV, "int32"), out_dtype="int8", axis=-1)
                R.output(q)
            return q

    after = realize(Before)
    assert_integer_only(after, (1, 5, 4, 6))
    assert kernel_ops(after) == ["conv2d"]  # no pad kernel
    assert not any("pad" in gv.name_hint for gv in after.get_global_vars())
    (func, call), = kernel_calls(after)
    assert call.args[1].fields[0].same_as(after["main"].params[0])  # the conv reads the unpadded input
    # the conv pads 8x8 by (top 1, left 1, bottom 2, right 1) to 11x10 itself
    assert "(T.int64(1), T.int64(11), T.int64(10), T.int64(4))" in func.script()

    x = i8((1, 8, 8, 4))
    (got,) = run_host(Before, x)
    _, bias, mult, shift = call_constants(call)
    want = requant(conv_acc(x, W_CONV, 0, ZP_X, stride=2, pads=(1, 1, 2, 1)), mult, shift, ZP_CONV)
    np.testing.assert_array_equal(got, want)


def test_float_input_and_output_become_int8() -> None:
    w = np.random.default_rng(1).integers(-127, 128, (1, 1, 4, 3), dtype=np.int8)
    s_out, zp_out = 0.04, 1

    @I.ir_module
    class Before:
        @R.function
        def main(x: R.Tensor((1, 5, 5, 4), "float32")) -> R.Tensor((1, 5, 5, 3), "float32"):
            with R.dataflow():
                q0 = R.quantize(x, R.const(S_X, "float32"), R.const(ZP_X, "int32"), out_dtype="int8", axis=-1)
                lv = R.dequantize(q0, R.const(S_X, "float32"), R.const(ZP_X, "int32"), out_dtype="float32", axis=0)
                fw = R.dequantize(R.const(w), R.const(0.01, "float32"), R.const(0, "int32"), out_dtype="float32", axis=3)
                conv = R.nn.conv2d(lv, fw, data_layout="NHWC", kernel_layout="HWIO", out_dtype="float32")
                q = R.quantize(conv, R.const(s_out, "float32"), R.const(zp_out, "int32"), out_dtype="int8", axis=-1)
                y = R.dequantize(q, R.const(s_out, "float32"), R.const(zp_out, "int32"), out_dtype="float32", axis=0)
                R.output(y)
            return y

    after = realize(Before)
    assert_integer_only(after, (1, 5, 5, 3))
    (param,) = after["main"].params
    assert param.name == "x" and param.ty.dtype == "int8"
    assert tuple(int(d) for d in param.ty.shape) == (1, 5, 5, 4)
    assert kernel_ops(after) == ["conv2d"]
    (_, call), = kernel_calls(after)
    assert call.args[1].fields[0].same_as(param)
    _, _, mult, shift = call_constants(call)
    want_mult, want_shift = qp.conv_output_multipliers(S_X, np.float32(0.01), s_out, num_channels=3)
    np.testing.assert_array_equal(mult, want_mult)
    np.testing.assert_array_equal(shift, want_shift)

    x = i8((1, 5, 5, 4))
    (got,) = run_host(Before, x)  # the built model takes and returns the int8 tensors
    assert got.dtype == np.int8
    np.testing.assert_array_equal(got, requant(conv_acc(x, w, 0, ZP_X), want_mult, want_shift, zp_out))


# ---------------------------------------------------------------- errors

# The pass runs as a Python callback behind TVM's FFI; our error classes are registered with
# `tvm_ffi.register_error`, so they must arrive with their own type through the pass too.
ENTRY_POINTS = [
    pytest.param(lambda mod: QuantizeRealize()(mod), id="pass"),
    pytest.param(lambda mod: QuantizeRealize()._inst.transform_module(mod, None), id="body"),
]


@pytest.mark.parametrize("run_pass", ENTRY_POINTS)
def test_unsupported_float_op_raises(run_pass) -> None:
    @I.ir_module
    class Before:
        @R.function
        def main(x: R.Tensor((1, 16), "int8")) -> R.Tensor((1, 16), "int8"):
            with R.dataflow():
                lv = R.dequantize(x, R.const(S_X, "float32"), R.const(ZP_X, "int32"), out_dtype="float32", axis=0)
                g = R.nn.gelu(lv)
                q = R.quantize(g, R.const(S_X, "float32"), R.const(ZP_X, "int32"), out_dtype="int8", axis=-1)
                R.output(q)
            return q

    with pytest.raises(UnsupportedOperatorError, match="gelu"):
        run_pass(Before)


@pytest.mark.parametrize("run_pass", ENTRY_POINTS)
def test_softmax_wrong_output_scale_raises(run_pass) -> None:
    @I.ir_module
    class Before:
        @R.function
        def main(x: R.Tensor((1, 10), "int8")) -> R.Tensor((1, 10), "int8"):
            with R.dataflow():
                lv = R.dequantize(x, R.const(S_X, "float32"), R.const(ZP_X, "int32"), out_dtype="float32", axis=0)
                sm = R.nn.softmax(lv, axis=-1)
                q = R.quantize(sm, R.const(1.0 / 128, "float32"), R.const(-128, "int32"), out_dtype="int8", axis=-1)
                R.output(q)
            return q

    with pytest.raises(UnsupportedOperatorError, match="softmax.*1/256"):
        run_pass(Before)


# ---------------------------------------------------------------- former bugs
# Each accepts either a correct result or an UnsupportedOperatorError, never a wrong answer.


def test_pad_value_is_honoured() -> None:
    @I.ir_module
    class Before:
        @R.function
        def main(x: R.Tensor((1, 2, 2, 1), "int8")) -> R.Tensor((1, 4, 4, 1), "int8"):
            with R.dataflow():
                lv = R.dequantize(x, R.const(S_X, "float32"), R.const(ZP_X, "int32"), out_dtype="float32", axis=0)
                p = R.nn.pad(lv, [0, 0, 1, 1, 1, 1, 0, 0], pad_value=1.0)  # real 1.0 = int8 17
                q = R.quantize(p, R.const(S_X, "float32"), R.const(ZP_X, "int32"), out_dtype="int8", axis=-1)
                R.output(q)
            return q

    try:
        realize(Before)
    except UnsupportedOperatorError:
        return
    (got,) = run_host(Before, np.zeros((1, 2, 2, 1), np.int8))
    assert got[0, 0, 0, 0] == ZP_X + 20


def test_matmul_batched_input_keeps_shape() -> None:
    @I.ir_module
    class Before:
        @R.function
        def main(x: R.Tensor((1, 2, 32), "int8")) -> R.Tensor((1, 2, 8), "int8"):
            with R.dataflow():
                lv = R.dequantize(x, R.const(S_X, "float32"), R.const(ZP_X, "int32"), out_dtype="float32", axis=0)
                w = R.dequantize(R.permute_dims(R.const(W_FC), [1, 0]), R.const(0.01, "float32"), R.const(0, "int32"), out_dtype="float32", axis=1)
                mm = R.matmul(lv, w, out_dtype="float32")
                q = R.quantize(mm, R.const(0.2, "float32"), R.const(0, "int32"), out_dtype="int8", axis=-1)
                R.output(q)
            return q

    try:
        after = realize(Before)
    except UnsupportedOperatorError:
        return
    assert tuple(int(d) for d in after["main"].ret_ty.shape) == (1, 2, 8)


def test_weight_zero_point_is_not_ignored() -> None:
    @I.ir_module
    class Before:
        @R.function
        def main(x: R.Tensor((1, 4), "int8")) -> R.Tensor((1, 1), "int8"):
            with R.dataflow():
                lv = R.dequantize(x, R.const(1.0, "float32"), R.const(0, "int32"), out_dtype="float32", axis=0)
                wt = R.permute_dims(R.const(np.ones((1, 4), "int8")), [1, 0])
                w = R.dequantize(wt, R.const(1.0, "float32"), R.const(1, "int32"), out_dtype="float32", axis=1)
                mm = R.matmul(lv, w, out_dtype="float32")  # the weights are all (1 - 1) * 1.0 = 0
                q = R.quantize(mm, R.const(1.0, "float32"), R.const(0, "int32"), out_dtype="int8", axis=-1)
                R.output(q)
            return q

    try:
        realize(Before)
    except UnsupportedOperatorError:
        return
    (got,) = run_host(Before, np.full((1, 4), 5, np.int8))
    assert got[0, 0] == 0
