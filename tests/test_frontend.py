"""Tests for tvm_tinyml.frontend: format sniffing, import, ModelInfo, errors, QDQ converters."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import tvm
from onnx import TensorProto, helper
from tvm import relax

from onnx_models import make_float_cnn, make_qdq_cnn
from tflite_builder import ModelBuilder, build_single_op_model, run_tflm
from tvm_tinyml import frontend
from tvm_tinyml.errors import TinyMLError, UnsupportedOperatorError

MODELS = Path(__file__).resolve().parent.parent / "models"
KWS = MODELS / "kws_ref_model.tflite"

# name -> (input shape, dtype, scale, zero point), (output shape, dtype, scale, zero point)
EXPECTED_IO = {
    "kws_ref_model": (((1, 49, 10, 1), "int8", 0.5847029, 83), ((1, 12), "int8", 0.00390625, -128)),
    "vww_96_int8": (((1, 96, 96, 3), "int8", 0.0039215689, -128), ((1, 2), "int8", 0.00390625, -128)),
    "pretrainedResnet_quant": (((1, 32, 32, 3), "int8", 1.0, -128), ((1, 10), "int8", 0.00390625, -128)),
    "ad01_int8": (((1, 640), "int8", 0.39101523, 89), ((1, 640), "int8", 0.36449847, 96)),
    "tinyengine_vww": (((1, 80, 80, 3), "float32", None, None), ((1, 2), "float32", None, None)),
}

Q_IN = dict(dtype=np.int8, scale=0.05, zero_point=-7)
Q_OUT = dict(dtype=np.int8, scale=0.08, zero_point=3)


def write(tmp_path: Path, data: bytes, name: str = "model.tflite") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def tiny_onnx_bytes() -> bytes:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, (1, 4))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, (1, 4))],
    )
    return helper.make_model(graph).SerializeToString()


def bindings(mod: tvm.IRModule) -> list:
    return [b for block in mod["main"].body.blocks for b in block.bindings]


def call_named(mod: tvm.IRModule, op_name: str) -> list:
    return [
        b for b in bindings(mod) if isinstance(b.value, relax.Call) and b.value.op.name == op_name
    ]


def qdq_around(mod: tvm.IRModule, op_name: str) -> tuple[relax.Call, relax.Call, relax.Call]:
    """(dequantize feeding, the call of, quantize consuming) the one `op_name` call in main."""
    (op,) = call_named(mod, op_name)
    (deq,) = [b.value for b in bindings(mod) if b.var.same_as(op.value.args[0])]
    (quant,) = [b.value for b in call_named(mod, "relax.quantize") if b.value.args[0].same_as(op.var)]
    return deq, op.value, quant


def qparams(call: relax.Call) -> tuple[float, int]:
    return float(call.args[1].value.numpy()), int(call.args[2].value.numpy())


def run_relax(mod: tvm.IRModule, *inputs: np.ndarray) -> np.ndarray:
    vm = relax.VirtualMachine(tvm.compile(mod, target="llvm"), tvm.cpu())
    return vm["main"](*[tvm.runtime.tensor(x) for x in inputs]).numpy()


def single_op_model(op: str, shape_in, shape_out, q_out: dict, extra_inputs=(), **options) -> bytes:
    """A one-operator model with an int8 Q_IN input and an int8 `q_out` output."""
    inputs = [dict(shape=list(shape_in), **Q_IN), *extra_inputs]
    return build_single_op_model(op, inputs, [dict(shape=list(shape_out), **q_out)], **options)


def check_qdq(tmp_path: Path, op_name: str, make_model) -> relax.Call:
    """`make_model(q_out)` imports to dequantize(Q_IN) -> `op_name` -> quantize(q_out), and
    with q_out == Q_IN (which TFLite requires for these ops) computes what TFLM computes."""
    mod, _ = frontend.load(write(tmp_path, make_model(Q_OUT), "qdq.tflite"))
    deq, op, quant = qdq_around(mod, op_name)
    assert deq.op.name == "relax.dequantize" and deq.args[0].ty.dtype == "int8"
    assert qparams(deq) == pytest.approx((Q_IN["scale"], Q_IN["zero_point"]))
    assert op.ty.dtype == "float32"
    assert qparams(quant) == pytest.approx((Q_OUT["scale"], Q_OUT["zero_point"]))
    assert quant.attrs.out_dtype == "int8"

    model = make_model(Q_IN)
    mod, info = frontend.load(write(tmp_path, model, "same_params.tflite"))
    x = int8_input(*info.inputs[0].shape)
    np.testing.assert_array_equal(run_relax(mod, x), run_tflm(model, [x])[0])
    return op


def int8_input(*shape: int) -> np.ndarray:
    return np.random.default_rng(0).integers(-128, 128, shape).astype(np.int8)


# ---------------------------------------------------------------- sniffing


def test_sniff_tflite_and_onnx_bytes():
    assert frontend.sniff_format(KWS.read_bytes()) == "tflite"
    assert frontend.sniff_format(tiny_onnx_bytes()) == "onnx"


@pytest.mark.parametrize(
    "data",
    [b"", b"TFL3", np.random.default_rng(1).bytes(4096), b"hello world\n" * 10],
)
def test_sniff_garbage(data):
    with pytest.raises(TinyMLError, match="blob: not a TFLite or ONNX model"):
        frontend.sniff_format(data, "blob")


def test_format_comes_from_contents_not_extension(tmp_path):
    renamed = tmp_path / "kws.onnx"
    shutil.copy(KWS, renamed)
    mod, info = frontend.load(renamed)
    assert info.format == "tflite"
    assert info.name == "kws"
    assert "main" in [gv.name_hint for gv in mod.get_global_vars()]


def test_from_functions_check_the_format(tmp_path):
    assert isinstance(frontend.from_tflite(KWS), tvm.IRModule)
    with pytest.raises(TinyMLError, match="relu.onnx: not a TFLite model"):
        frontend.from_tflite(write(tmp_path, tiny_onnx_bytes(), "relu.onnx"))
    with pytest.raises(TinyMLError, match="not an ONNX model"):
        frontend.from_onnx(KWS)


# ---------------------------------------------------------------- the bundled TFLite models


@pytest.mark.parametrize("name", sorted(EXPECTED_IO))
def test_bundled_models_import(name):
    path = MODELS / f"{name}.tflite"
    mod, info = frontend.load(path)
    assert isinstance(mod, tvm.IRModule)
    assert (info.name, info.format, info.path) == (name, "tflite", str(path))
    assert len(info.inputs) == len(info.outputs) == 1
    for tensor, (shape, dtype, scale, zero_point) in zip(info.inputs + info.outputs, EXPECTED_IO[name]):
        assert (tensor.shape, tensor.dtype, tensor.zero_point) == (shape, dtype, zero_point)
        assert tensor.scale == (None if scale is None else pytest.approx(scale))
    main = mod["main"]
    assert [tuple(int(d) for d in p.ty.shape) for p in main.params] == [info.inputs[0].shape]
    assert str(main.params[0].ty.dtype) == info.inputs[0].dtype


def test_int8_io_quant_fields_equal_own():
    _, info = frontend.load(KWS)
    (tensor,) = info.inputs
    assert (tensor.quant_scale, tensor.quant_zero_point) == (tensor.scale, tensor.zero_point)


def test_float_io_model_records_quantized_side():
    mod, info = frontend.load(MODELS / "tinyengine_vww.tflite")
    (inp,), (out,) = info.inputs, info.outputs
    assert inp.name == "input_0_f.1" and out.name == "1422"
    assert inp.quant_scale == pytest.approx(0.0078393072) and inp.quant_zero_point == 0
    assert out.quant_scale == pytest.approx(0.146878466) and out.quant_zero_point == 1
    assert len(call_named(mod, "relax.nn.pad")) == 4
    assert len(call_named(mod, "relax.permute_dims")) >= 1


# ---------------------------------------------------------------- ONNX and Relax inputs


def test_onnx_qdq_model(tmp_path):
    mod, info = frontend.load(make_qdq_cnn(str(tmp_path)))
    assert (info.name, info.format) == ("cnn_qdq", "onnx")
    (inp,), (out,) = info.inputs, info.outputs
    assert (inp.shape, inp.dtype, inp.scale) == ((1, 3, 16, 16), "float32", None)
    assert inp.quant_scale > 0 and out.quant_scale > 0
    assert out.shape == (1, 10)
    assert len(mod["main"].params) == 1  # weights are constants, not parameters
    assert call_named(mod, "relax.nn.conv2d")


def test_onnx_float_model_is_rejected(tmp_path):
    with pytest.raises(TinyMLError, match="float model.*int8-quantized"):
        frontend.load(make_float_cnn(str(tmp_path)))


def test_relax_module_passes_through():
    mod, _ = frontend.load(KWS)
    same, info = frontend.load(mod)
    assert same is mod
    assert (info.name, info.format, info.path) == ("model", "relax", None)
    assert info.inputs[0].shape == (1, 49, 10, 1) and info.inputs[0].dtype == "int8"
    assert info.outputs[0].shape == (1, 12)


@pytest.mark.parametrize("stem", ["my-model.v2", "2nd model"])
def test_name_is_a_c_identifier(tmp_path, stem):
    path = tmp_path / f"{stem}.tflite"
    shutil.copy(KWS, path)
    name = frontend.load(path)[1].name
    assert name.isidentifier() and name.isascii()


# ---------------------------------------------------------------- bad inputs


def test_missing_file(tmp_path):
    with pytest.raises(TinyMLError, match=r"nope\.tflite: no such file"):
        frontend.load(tmp_path / "nope.tflite")


def test_directory(tmp_path):
    with pytest.raises(TinyMLError, match="is a directory"):
        frontend.load(tmp_path)


def test_random_bytes_file(tmp_path):
    path = write(tmp_path, np.random.default_rng(2).bytes(10000), "random.tflite")
    with pytest.raises(TinyMLError, match="random.tflite: not a TFLite or ONNX model"):
        frontend.load(path)


@pytest.mark.parametrize("name", sorted(EXPECTED_IO))
@pytest.mark.parametrize("keep", [0.5, 0.99])
def test_truncated_tflite(tmp_path, name, keep):
    data = (MODELS / f"{name}.tflite").read_bytes()
    path = write(tmp_path, data[: int(len(data) * keep)])
    with pytest.raises(TinyMLError, match="truncated or corrupt TFLite file") as err:
        frontend.load(path)
    assert "\n" not in str(err.value)


def test_float_tflite_model(tmp_path):
    f32 = dict(shape=[1, 4], dtype=np.float32)
    model = build_single_op_model("ADD", [f32, f32], [f32])
    with pytest.raises(TinyMLError, match="float model: tvm-tinyml compiles int8-quantized models"):
        frontend.load(write(tmp_path, model))


def test_unsupported_operator(tmp_path):
    b = ModelBuilder()
    x, y, z = (b.add_tensor([1, 4], **Q_IN) for _ in range(3))
    b.add_operator("RELU", [x], [y])
    b.add_operator("LSTM", [y], [z])
    with pytest.raises(UnsupportedOperatorError, match=r"operator #1 \(LSTM\) is not supported"):
        frontend.load(write(tmp_path, b.build([x], [z])))


def test_tvm_importer_errors_are_wrapped(tmp_path):
    # TVM's frontend asserts that quantized MAX_POOL_2D keeps its quantization parameters.
    model = build_single_op_model(
        "MAX_POOL_2D", [dict(shape=[1, 4, 4, 2], **Q_IN)], [dict(shape=[1, 2, 2, 2], **Q_OUT)],
        filter_height=2, filter_width=2, stride_h=2, stride_w=2, padding="VALID",
    )
    with pytest.raises(TinyMLError, match=r"operator #0 \(MAX_POOL_2D\): TVM import failed: .*max_pool2d") as err:
        frontend.load(write(tmp_path, model))
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------- quantized converters


def check_int8_movement(tmp_path: Path, op_name: str, model: bytes) -> relax.Call:
    """Data movement (frontend_movement.py) imports as `op_name` on the int8 input itself, and
    even with an output quantization other than the input's computes what TFLM computes."""
    mod, info = frontend.load(write(tmp_path, model, "movement.tflite"))
    (op,) = call_named(mod, op_name)
    assert op.value.args[0].same_as(mod["main"].params[0]) and op.value.ty.dtype == "int8"
    assert not call_named(mod, "relax.dequantize") and not call_named(mod, "relax.quantize")
    x = int8_input(*info.inputs[0].shape)
    np.testing.assert_array_equal(run_relax(mod, x), run_tflm(model, [x])[0])
    return op.value


@pytest.mark.parametrize("pads", [[[0, 0], [1, 2], [3, 0], [0, 0]], [[0, 0], [0, 0], [0, 0], [1, 1]]])
def test_quantized_pad(tmp_path, pads):
    shape_out = np.add([1, 3, 4, 2], np.sum(pads, axis=1))
    paddings = dict(shape=[4, 2], dtype=np.int32, data=np.array(pads))
    op = check_int8_movement(tmp_path, "relax.nn.pad", single_op_model("PAD", [1, 3, 4, 2], shape_out, Q_OUT, [paddings]))
    assert op.attrs.pad_value == Q_OUT["zero_point"]  # TFLM pads with the output zero point
    assert [int(v) for v in op.attrs.pad_width] == np.ravel(pads).tolist()


def test_quantized_padv2(tmp_path):
    pads = [[0, 0], [2, 1], [1, 1], [0, 0]]
    extra = [
        dict(shape=[4, 2], dtype=np.int32, data=np.array(pads)),
        dict(shape=[], data=np.array(13), **Q_OUT),
    ]
    op = check_int8_movement(tmp_path, "relax.nn.pad", single_op_model("PADV2", [1, 3, 4, 2], [1, 6, 6, 2], Q_OUT, extra))
    assert op.attrs.pad_value == 13  # the raw constant byte


@pytest.mark.parametrize("shape, perm", [([1, 3, 4, 2], [0, 3, 1, 2]), ([5, 3, 2], [2, 0, 1])])
def test_quantized_transpose(tmp_path, shape, perm):
    perm_tensor = dict(shape=[len(perm)], dtype=np.int32, data=np.array(perm))
    model = single_op_model("TRANSPOSE", shape, np.take(shape, perm), Q_OUT, [perm_tensor])
    op = check_int8_movement(tmp_path, "relax.permute_dims", model)
    assert [int(a) for a in op.attrs.axes] == perm


@pytest.mark.parametrize("align_corners, half_pixel_centers", [(False, False), (True, False), (False, True)])
@pytest.mark.parametrize("size_in, size_out", [((3, 5), (7, 9)), ((6, 9), (4, 5)), ((4, 4), (8, 8))])
def test_quantized_resize_nearest_neighbor(tmp_path, align_corners, half_pixel_centers, size_in, size_out):
    size = dict(shape=[2], dtype=np.int32, data=np.array(size_out))
    op = check_qdq(
        tmp_path, "relax.image.resize2d",
        lambda q_out: single_op_model(
            "RESIZE_NEAREST_NEIGHBOR", [1, *size_in, 2], [1, *size_out, 2], q_out, [size],
            align_corners=align_corners, half_pixel_centers=half_pixel_centers,
        ),
    )
    assert op.attrs.method == "nearest_neighbor" and op.attrs.layout == "NHWC"


def test_resize_with_align_corners_and_half_pixel_is_unsupported(tmp_path):
    size = dict(shape=[2], dtype=np.int32, data=np.array([4, 4]))
    model = single_op_model(
        "RESIZE_NEAREST_NEIGHBOR", [1, 2, 2, 1], [1, 4, 4, 1], Q_IN, [size],
        align_corners=True, half_pixel_centers=True,
    )
    with pytest.raises(UnsupportedOperatorError, match="align_corners and half_pixel_centers"):
        frontend.load(write(tmp_path, model))


@pytest.mark.parametrize("padding, activation", [("VALID", "NONE"), ("SAME", "RELU")])
def test_quantized_max_pool_stays_int8(tmp_path, padding, activation):
    # Already supported upstream: max commutes with the (shared) quantization, so TVM
    # emits an int8 max_pool2d; the fused activation is a clip in the int8 domain.
    model = single_op_model(
        "MAX_POOL_2D", [1, 5, 5, 3], [1, 3, 3, 3] if padding == "SAME" else [1, 2, 2, 3], Q_IN,
        filter_height=2, filter_width=2, stride_h=2, stride_w=2,
        padding=padding, fused_activation_function=activation,
    )
    mod, _ = frontend.load(write(tmp_path, model))
    (pool,) = call_named(mod, "relax.nn.max_pool2d")
    assert pool.value.args[0].ty.dtype == "int8" and pool.value.attrs.layout == "NHWC"
    assert not call_named(mod, "relax.dequantize")
    x = int8_input(1, 5, 5, 3)
    np.testing.assert_array_equal(run_relax(mod, x), run_tflm(model, [x])[0])
