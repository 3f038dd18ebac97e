"""ONNX operators, QDQ and QOperator, each within 1 LSB of onnxruntime (ORT_DISABLE_ALL).

Every case is a float graph built with onnx.helper (tests/onnx_op_models.py), quantized by
onnxruntime.quantization.quantize_static with random calibration data, compiled with
tvm_tinyml and run on the host against the reference on random int8 inputs.
"""

from __future__ import annotations

import subprocess
import tempfile

import numpy as np
import onnx
import pytest
from onnx import helper

import tvm_tinyml
from onnx_op_models import OpCase, node, quantize, weight
from test_models import ARM_FLAGS, ARM_GCC
from tvm_tinyml.errors import UnsupportedOperatorError
from tvm_tinyml.onnx_qoperator import to_qdq
from tvm_tinyml.verify import verify

S = (1, 4, 6, 6)  # NCHW activation
I64 = np.int64


def _conv(name, w_shape, **attrs):
    return OpCase(name, [node("Conv", ["x", "w", "b"], **attrs)], [S], None, {"w": weight(0, *w_shape), "b": weight(1, w_shape[0])})


def _const(name, *values, dtype=I64):
    return {name: np.array(values, dtype)}


def _resize(mode: str, coords: str, rounding: str | None, scales=(1, 1, 2, 2)):
    attrs = {"mode": mode, "coordinate_transformation_mode": coords, **({"nearest_mode": rounding} if rounding else {})}
    name = f"resize_{mode}_{coords}"
    return OpCase(name, [node("Resize", ["x", "", "scales"], **attrs)], [S], None, {"scales": np.array(scales, np.float32)})


# (case, has a QOperator form)
CASES = [
    (_conv("conv3x3_same", (8, 4, 3, 3), pads=[1, 1, 1, 1]), True),
    (_conv("conv_stride2", (8, 4, 3, 3), strides=[2, 2]), True),
    (_conv("conv_dilated", (6, 4, 3, 3), dilations=[2, 2], pads=[2, 2, 2, 2]), True),
    (_conv("conv_depthwise", (4, 1, 3, 3), group=4, pads=[1, 0, 1, 0]), True),
    (_conv("conv1x1", (8, 4, 1, 1)), True),
    (OpCase("conv_transpose_s2", [node("ConvTranspose", ["x", "w", "b"], strides=[2, 2])], [S], None,
            {"w": weight(0, 4, 8, 3, 3), "b": weight(1, 8)}), False),
    (OpCase("conv_transpose_pads", [node("ConvTranspose", ["x", "w"], strides=[2, 2], pads=[1, 1, 1, 1])], [S], None,
            {"w": weight(0, 4, 3, 3, 3)}), False),
    (OpCase("gemm_transb", [node("Gemm", ["x", "w", "b"], transB=1)], [(2, 16)], None, {"w": weight(0, 8, 16), "b": weight(1, 8)}), True),
    (OpCase("gemm", [node("Gemm", ["x", "w", "b"])], [(2, 16)], None, {"w": weight(0, 16, 8), "b": weight(1, 8)}), True),
    (OpCase("gemm_no_bias", [node("Gemm", ["x", "w"], transB=1, alpha=0.5)], [(1, 16)], None, {"w": weight(0, 8, 16)}), True),
    (OpCase("matmul", [node("MatMul", ["x", "w"])], [(3, 16)], None, {"w": weight(0, 16, 8)}), True),
    (OpCase("add", [node("Add", ["x", "y"])], [S, S]), True),
    (OpCase("add_broadcast", [node("Add", ["x", "y"])], [S, (1, 4, 1, 1)]), True),
    (OpCase("sub", [node("Sub", ["x", "y"])], [S, S]), False),
    (OpCase("mul", [node("Mul", ["x", "y"])], [S, S]), True),
    (OpCase("add_relu", [node("Add", ["x", "y"], ["s"]), node("Relu", ["s"])], [S, S]), False),
    (OpCase("add_clip", [node("Add", ["x", "y"], ["s"]), node("Clip", ["s", "lo", "hi"])], [S, S], None,
            {"lo": np.float32(-0.25), "hi": np.float32(0.75)}), False),
    (OpCase("add_relu6", [node("Add", ["x", "y"], ["s"]), node("Clip", ["s", "lo", "hi"])], [S, S], None,
            {"lo": np.float32(0.0), "hi": np.float32(6.0)}), False),
    (OpCase("leaky_relu", [node("LeakyRelu", ["x"], alpha=0.1)], [S]), True),
    (OpCase("prelu_channel", [node("PRelu", ["x", "s"])], [S], None, {"s": np.abs(weight(0, 4, 1, 1))}), False),
    (OpCase("sigmoid", [node("Sigmoid", ["x"])], [S]), True),
    (OpCase("hard_sigmoid", [node("HardSigmoid", ["x"], alpha=0.3, beta=0.4)], [S]), False),
    (OpCase("hard_swish", [node("HardSwish", ["x"])], [S], opset=14), False),
    (OpCase("tanh", [node("Tanh", ["x"])], [S]), False),
    (OpCase("max_pool", [node("MaxPool", ["x"], kernel_shape=[2, 2], strides=[2, 2])], [S]), False),
    (OpCase("max_pool_pads", [node("MaxPool", ["x"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])], [S]), False),
    (OpCase("avg_pool", [node("AveragePool", ["x"], kernel_shape=[2, 2], strides=[2, 2])], [S]), True),
    (OpCase("avg_pool_pads", [node("AveragePool", ["x"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])], [S]), True),
    (OpCase("avg_pool_count_pad", [node("AveragePool", ["x"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                                         count_include_pad=1)], [S]), True),
    (OpCase("avg_pool_stride3", [node("AveragePool", ["x"], kernel_shape=[2, 2], strides=[3, 3], pads=[1, 1, 0, 0])], [S]), False),
    (OpCase("global_avg_pool", [node("GlobalAveragePool", ["x"])], [S]), False),
    (OpCase("concat", [node("Concat", ["x", "y"], axis=1)], [S, S]), True),
    (OpCase("concat_last", [node("Concat", ["x", "y"], axis=-1)], [S, (1, 4, 6, 2)]), True),
    (OpCase("softmax_last", [node("Softmax", ["x"], axis=-1)], [(2, 10)]), True),
    (OpCase("softmax_channels", [node("Softmax", ["x"], axis=1)], [S]), False),
    (OpCase("reshape", [node("Reshape", ["x", "shape"])], [S], None, _const("shape", 1, -1)), False),
    (OpCase("flatten", [node("Flatten", ["x"], axis=2)], [S]), False),
    (OpCase("transpose", [node("Transpose", ["x"], perm=[0, 2, 3, 1])], [S]), False),
    (OpCase("squeeze", [node("Squeeze", ["x", "axes"])], [(1, 4, 1, 6)], None, _const("axes", 2)), False),
    (OpCase("unsqueeze", [node("Unsqueeze", ["x", "axes"])], [(4, 6)], None, _const("axes", 0, 3)), False),
    (OpCase("split_halves", [node("Split", ["x"], ["a", "b"], axis=1), node("Add", ["a", "b"])], [S]), False),
    (OpCase("split_sizes", [node("Split", ["x", "sizes"], ["a", "out"], axis=2)], [S], None, _const("sizes", 2, 4)), False),
    (OpCase("slice_step2", [node("Slice", ["x", "st", "en", "ax", "sp"])], [S], None,
            {**_const("st", 1), **_const("en", 6), **_const("ax", 2), **_const("sp", 2)}), False),
    (OpCase("slice_negative", [node("Slice", ["x", "st", "en", "ax", "sp"])], [S], None,
            {**_const("st", -1, 0), **_const("en", -7, 3), **_const("ax", 3, 1), **_const("sp", -1, 1)}), False),
    (OpCase("pad_constant", [node("Pad", ["x", "p"])], [S], None, _const("p", 0, 0, 1, 2, 0, 0, 1, 0)), False),
    (OpCase("pad_channels_value", [node("Pad", ["x", "p", "v"])], [S], None,
            {**_const("p", 0, 2, 0, 0, 0, 1, 0, 0), "v": np.float32(0.5)}), False),
    (OpCase("pad_reflect", [node("Pad", ["x", "p"], mode="reflect")], [S], None, _const("p", 0, 0, 1, 1, 0, 0, 1, 2)), False),
    (OpCase("pad_edge", [node("Pad", ["x", "p"], mode="edge")], [S], None, _const("p", 0, 0, 2, 0, 0, 0, 1, 3)), False),
    *[(_resize(mode, coords, rounding), False) for mode, coords, rounding in [
        ("nearest", "half_pixel", "round_prefer_floor"), ("nearest", "asymmetric", "floor"),
        ("nearest", "align_corners", "round_prefer_ceil"), ("linear", "half_pixel", None),
        ("linear", "asymmetric", None)]],
    (OpCase("conv_relu_pool", [node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]), node("Relu", ["c"], ["r"]),
                               node("MaxPool", ["r"], ["m"], kernel_shape=[2, 2], strides=[2, 2]),
                               node("Flatten", ["m"], ["f"]), node("Gemm", ["f", "fw", "fb"], transB=1)],
            [S], None, {"w": weight(0, 8, 4, 3, 3), "b": weight(1, 8), "fw": weight(2, 5, 72), "fb": weight(3, 5)}), True),
    (OpCase("conv_flatten_hard_sigmoid", [node("Conv", ["x", "w", "b"], ["c"]), node("Flatten", ["c"], ["f"]),
                                          node("HardSigmoid", ["f"], alpha=0.2, beta=0.5)],
            [S], None, {"w": weight(0, 3, 4, 3, 3), "b": weight(1, 3)}), True),
    (OpCase("residual_sigmoid", [node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]), node("Sigmoid", ["c"], ["s"]),
                                 node("Mul", ["x", "s"], ["m"]), node("Concat", ["m", "x"], ["out"], axis=1)],
            [S], None, {"w": weight(0, 4, 4, 3, 3), "b": weight(1, 4)}), True),
]
# QDQ cases onnxruntime computes with single float32 operations we reproduce exactly (pooling in
# its summation order, Add / Sub / Mul, elementwise tables): bit-exact, not just within 1 LSB.
BIT_EXACT_QDQ = {"add", "add_broadcast", "sub", "mul", "add_relu", "add_clip", "leaky_relu", "sigmoid", "tanh", "max_pool",
                 "avg_pool", "avg_pool_pads", "avg_pool_count_pad", "avg_pool_stride3", "global_avg_pool"}
PARAMS = [pytest.param(c, "qdq", id=f"{c.name}-qdq") for c, _ in CASES]
PARAMS += [pytest.param(c, "qoperator", id=f"{c.name}-qoperator") for c, qop in CASES if qop]


@pytest.mark.parametrize("case,fmt", PARAMS)
def test_within_one_lsb_of_onnxruntime(tmp_path, case, fmt):
    path = quantize(case, str(tmp_path), fmt, per_channel=case.name.startswith("conv"))
    if fmt == "qoperator":
        assert any(n.op_type.startswith(("QLinear", "QGemm")) for n in onnx.load(path).graph.node)
    result = verify(path, inputs=4, seed=3)
    assert result.reference == "onnxruntime"
    assert result.max_abs_diff <= (0 if fmt == "qdq" and case.name in BIT_EXACT_QDQ else 1), result


def test_qoperator_rewrite_is_qdq():
    case = next(c for c, _ in CASES if c.name == "conv_relu_pool")
    with tempfile.TemporaryDirectory() as tmp:
        model = onnx.load(quantize(case, tmp, "qoperator"))
    ops = [n.op_type for n in to_qdq(model, "m.onnx").graph.node]
    assert not any(op.startswith(("QLinear", "QGemm")) for op in ops)
    assert {"Conv", "MaxPool", "Gemm", "DequantizeLinear", "QuantizeLinear"} <= set(ops)


def test_unknown_qlinear_op_is_refused_naming_the_node():
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
             helper.make_node("QLinearFoo", ["q", "s", "z", "s", "z"], ["y"], domain="com.microsoft")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.INT8, [4])],
                              [onnx.numpy_helper.from_array(np.float32(0.1), "s"), onnx.numpy_helper.from_array(np.int8(0), "z")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.microsoft", 1)])
    with pytest.raises(UnsupportedOperatorError, match=r"^m\.onnx: node #1 \(QLinearFoo\) is not supported$"):
        to_qdq(model, "m.onnx")


# Ops (and modes) without an integer kernel here: one line naming the problem.
REFUSED = [
    (_resize("linear", "align_corners", None), "resize linear with coordinate mode align_corners"),
    (_resize("nearest", "half_pixel", "floor"), "resize nearest_neighbor with coordinate mode half_pixel (floor)"),
    (OpCase("conv_transpose_grouped", [node("ConvTranspose", ["x", "w"], group=2)], [S], None, {"w": weight(0, 4, 2, 3, 3)}),
     "conv2d_transpose NCHW/IOHW groups=2 is not supported"),
]


@pytest.mark.parametrize("case,message", [pytest.param(c, m, id=c.name) for c, m in REFUSED])
def test_refused_with_one_line(tmp_path, case, message):
    path = quantize(case, str(tmp_path), "qdq")
    with pytest.raises(UnsupportedOperatorError) as err:
        tvm_tinyml.build(path, target="host")
    text = str(err.value)
    assert "\n" not in text and text.startswith(path) and message in text, text


@pytest.mark.parametrize("name", ["softmax_channels", "prelu_channel", "resize_linear_half_pixel"])
def test_onnx_kernels_build_for_cortex_m(tmp_path, name):
    """The ONNX-only kernels (exact softmax, per-channel table, NCHW resize) are -Wall -Werror C
    for a Cortex-M7 and call nothing beyond memcpy/memset."""
    case = next(c for c, _ in CASES if c.name == name)
    artifact = tvm_tinyml.build(quantize(case, str(tmp_path), "qdq"), target="stm32f746")
    out = artifact.export(tmp_path / "out")
    obj = tmp_path / "model.o"
    command = [ARM_GCC, *ARM_FLAGS["cortex-m7"], "-O2", "-Wall", "-Werror", "-c", str(out / f"{artifact.name}.c"), "-o", str(obj)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    symbols = subprocess.run(["arm-none-eabi-nm", str(obj)], capture_output=True, text=True, timeout=60).stdout
    assert {line.split()[-1] for line in symbols.splitlines() if line.split()[0] == "U"} <= {"memcpy", "memset"}
