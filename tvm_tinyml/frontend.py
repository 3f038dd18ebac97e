"""Model import: TFLite / ONNX files (or a Relax IRModule) to a Relax IRModule plus IO description.

Only this module knows model file formats. Quantized models come out of TVM's importers in
QDQ form (`R.quantize(op(R.dequantize(x)))`); `QDQOperatorConverter` adds that form for the
quantized TFLite operators TVM's frontend refuses.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import tflite
import tvm
from onnx import helper, numpy_helper
from tflite.BuiltinOperator import BuiltinOperator
from tvm import relax
from tvm.relax.frontend.onnx import from_onnx as _tvm_from_onnx
from tvm.relax.frontend.tflite import tflite_frontend

from . import onnx_qoperator, sequence_import
from .errors import TinyMLError, UnsupportedOperatorError
from .quiet import native_stderr_captured
from .validate import validate_onnx, validate_tflite
from .frontend_movement import MOVEMENT_OPS, MovementConverter

SUPPORTED_TFLITE_OPS = frozenset(
    {
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "FULLY_CONNECTED",
        "ADD",
        "MUL",
        "AVERAGE_POOL_2D",
        "MAX_POOL_2D",
        "MEAN",
        "CONCATENATION",
        "PAD",
        "PADV2",
        "RESHAPE",
        "SOFTMAX",
        "TRANSPOSE",
        "QUANTIZE",
        "DEQUANTIZE",
        "RESIZE_NEAREST_NEIGHBOR",
        "RELU",
        "RELU6",
        "LOGISTIC",
        "HARD_SWISH",
        # sequence family (tvm_tinyml.sequence_import)
        "UNIDIRECTIONAL_SEQUENCE_LSTM",
        "SVDF",
        # reduce family
        "SUM",
        "REDUCE_MAX",
        "REDUCE_MIN",
        "ARG_MAX",
        "ARG_MIN",
        "LOG_SOFTMAX",
        # matrix family
        "BATCH_MATMUL",
        "TRANSPOSE_CONV",
        # activations and bilinear resize (act)
        "LEAKY_RELU",
        "PRELU",
        "TANH",
        "ELU",
        "RSQRT",
        "RESIZE_BILINEAR",
        # binary elementwise (family: binary)
        "SUB",
        "MAXIMUM",
        "MINIMUM",
        "SQUARED_DIFFERENCE",
    }
)
# Builtins TFLite Micro has no kernel for: without a bit-exact reference we refuse them.
_NO_TFLM_KERNEL = frozenset({"RELU_N1_TO_1", "RELU_0_TO_1"})
SUPPORTED_TFLITE_OPS |= MOVEMENT_OPS

_TFLITE_OP_NAMES = {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}
_TFLITE_DTYPES = {v: k.lower() for k, v in vars(tflite.TensorType).items() if not k.startswith("_")}
_INT_DTYPES = ("int8", "uint8", "int16")
_FLOAT_MODEL = "float model: tvm-tinyml compiles int8-quantized models; quantize it with {}"


@dataclass(frozen=True)
class TensorInfo:
    """A model input or output.

    `scale`/`zero_point` are the tensor's own (per-tensor) quantization, None if it is float.
    `quant_scale`/`quant_zero_point` describe the int8 tensor the model computes with: the
    tensor's own parameters, or for a float input/output those of the QUANTIZE it feeds or
    the DEQUANTIZE it comes from (None if there is none).
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: float | None = None
    zero_point: int | None = None
    quant_scale: float | None = None
    quant_zero_point: int | None = None


@dataclass(frozen=True)
class ModelInfo:
    """What `load` learned about a model: a C-identifier name, its format, path and IO."""

    name: str
    format: str
    path: str | None
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    origins: dict = field(default_factory=dict, compare=False)  # imported Relax call -> "operator #i (NAME)"


def sniff_format(data: bytes, source: str = "model") -> str:
    """Return "tflite" or "onnx" from a model file's contents (never from its name);
    `source` names the data in the error message."""
    if len(data) >= 8 and data[4:8] == b"TFL3":
        return "tflite"
    if _parse_onnx(data) is not None:
        return "onnx"
    raise TinyMLError(f"{source}: not a TFLite or ONNX model (unrecognized file contents)")


def load(model: str | os.PathLike | tvm.IRModule) -> tuple[tvm.IRModule, ModelInfo]:
    """Import a .tflite/.onnx file or take a Relax IRModule; return it with its ModelInfo."""
    if isinstance(model, tvm.IRModule):
        inputs, outputs = _relax_io(model)
        return model, ModelInfo("model", "relax", None, inputs, outputs)
    path = str(model)
    data = _read(path)
    fmt = sniff_format(data, path)
    origins: dict = {}
    if fmt == "tflite":
        parsed = _parse_tflite(data, path)
        mod, (inputs, outputs) = _import_tflite(parsed, path, origins), _tflite_io(parsed)
    else:
        parsed = _parse_onnx_file(data, path)
        mod, (inputs, outputs) = _import_onnx(parsed, path), _onnx_io(parsed)
    return mod, ModelInfo(_c_identifier(Path(path).stem), fmt, path, inputs, outputs, origins)


def from_tflite(path: str | os.PathLike) -> tvm.IRModule:
    """Import an int8 .tflite file into Relax (QDQ form)."""
    path = str(path)
    return _import_tflite(_parse_tflite(_read(path), path), path)


def from_onnx(path: str | os.PathLike) -> tvm.IRModule:
    """Import an int8 QDQ .onnx file into Relax; weights become constants."""
    path = str(path)
    return _import_onnx(_parse_onnx_file(_read(path), path), path)


def _import_tflite(model: tflite.Model, path: str, origins: dict | None = None) -> tvm.IRModule:
    """Check a parsed .tflite model against what we support, then convert it to Relax.

    `origins`, if given, receives each operator's imported output expression mapped to
    "operator #i (NAME)", so later stages can say which operator they refuse.
    """
    _check_tflite_ops(model, path)
    tables: list = []

    class Converter(QDQOperatorConverter):
        def convert_op_to_relax(self):
            super().convert_op_to_relax()
            tables.append(self.exp_tab)

    mod = _tvm_import(path, lambda: tflite_frontend.from_tflite(model, op_converter=Converter))
    graph = model.Subgraphs(0)
    for index in range(graph.OperatorsLength()):
        op = graph.Operators(index)
        where = f"operator #{index} ({_tflite_op_name(model, op)})"
        for tensor in np.atleast_1d(op.OutputsAsNumpy()):
            expr = tables[0].exprs.get(graph.Tensors(int(tensor)).Name().decode()) if tables else None
            if expr is None:
                continue
            _check_declared_shape(path, where, graph, int(tensor), expr)
            if origins is not None:
                origins[expr] = where
    return mod


def _check_declared_shape(path: str, where: str, graph, index: int, expr) -> None:
    """A TFLite output tensor's declared shape must be the one its operator computes (as TFLite
    Micro's Prepare would find it); a model that disagrees with itself is refused."""
    ty = getattr(expr, "ty", None)
    if not isinstance(ty, relax.TensorType) or ty.shape is None:
        return
    computed = [int(d) if isinstance(d, tvm.tirx.IntImm) else None for d in ty.shape]
    tensor = graph.Tensors(index)
    declared = [int(d) for d in np.atleast_1d(tensor.ShapeAsNumpy())] if tensor.ShapeLength() else []
    if None not in computed and int(np.prod(computed)) != int(np.prod(declared)):
        raise TinyMLError(
            f"{path}: {where}: output tensor #{index} '{tensor.Name().decode(errors='replace')}' is declared "
            f"{declared} but the operator computes {computed}"
        )


def _import_onnx(model: onnx.ModelProto, path: str) -> tvm.IRModule:
    """Reject float ONNX models, rewrite QOperator nodes to QDQ (onnx_qoperator), then convert to Relax."""
    model = onnx_qoperator.to_qdq(model, path)
    if not any(node.op_type in ("QuantizeLinear", "DequantizeLinear") for node in model.graph.node):
        hint = "onnxruntime.quantization (QDQ format, int8)"
        raise TinyMLError(f"{path}: {_FLOAT_MODEL.format(hint)}")
    return _tvm_import(path, lambda: _tvm_from_onnx(model))


# ---------------------------------------------------------------- file reading and checks


def _read(path: str) -> bytes:
    """Read a model file, turning OS errors into one-line TinyMLErrors."""
    if not os.path.exists(path):
        raise TinyMLError(f"{path}: no such file")
    if os.path.isdir(path):
        raise TinyMLError(f"{path}: is a directory, not a model file")
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise TinyMLError(f"{path}: cannot read: {e.strerror}") from None


def _parse_tflite(data: bytes, path: str) -> tflite.Model:
    """Parse and validate the contents of a .tflite file (`validate.validate_tflite`)."""
    if sniff_format(data, path) != "tflite":
        raise TinyMLError(f"{path}: not a TFLite model")
    try:
        model = tflite.Model.GetRootAsModel(data, 0)
    except Exception as e:  # flatbuffers has no verifier: any read may fail on a corrupt file
        raise TinyMLError(f"{path}: truncated or corrupt TFLite file ({_first_line(e)})") from None
    validate_tflite(model, len(data), path)
    return model


def _io_indices(node) -> tuple[np.ndarray, np.ndarray]:
    """Input and output tensor indices of a TFLite subgraph or operator."""
    return np.atleast_1d(node.InputsAsNumpy()), np.atleast_1d(node.OutputsAsNumpy())


def _tflite_op_name(model: tflite.Model, op) -> str:
    """The builtin operator name of `op`, e.g. "CONV_2D" ("CUSTOM(name)" for custom ops)."""
    code = model.OperatorCodes(op.OpcodeIndex())
    name = _TFLITE_OP_NAMES.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "UNKNOWN")
    if name == "CUSTOM":
        return f"CUSTOM({(code.CustomCode() or b'').decode(errors='replace')})"
    return name


def _check_tflite_ops(model: tflite.Model, path: str) -> None:
    """Reject float models and operators outside SUPPORTED_TFLITE_OPS, naming the first one."""
    graph = model.Subgraphs(0)
    ops = [graph.Operators(i) for i in range(graph.OperatorsLength())]
    names = [_tflite_op_name(model, op) for op in ops]
    # QUANTIZE/DEQUANTIZE alone say nothing (a float model may have them at its ends), unless
    # they are all there is (an int8 -> int8 requantize model).
    compute = [op for op, name in zip(ops, names) if name not in ("QUANTIZE", "DEQUANTIZE")] or ops
    if not any(_uses_int_tensor(graph, op) for op in compute):
        hint = "the TFLite converter (full integer quantization)"
        raise TinyMLError(f"{path}: {_FLOAT_MODEL.format(hint)}")
    for index, name in enumerate(names):
        if name in _NO_TFLM_KERNEL:
            raise UnsupportedOperatorError(
                f"{path}: operator #{index} ({name}) is not supported: TFLite Micro has no kernel for it"
            )
        if name not in SUPPORTED_TFLITE_OPS:
            raise UnsupportedOperatorError(f"{path}: operator #{index} ({name}) is not supported")


def _uses_int_tensor(graph, op) -> bool:
    """Whether a TFLite operator reads or writes an int8/uint8/int16 tensor."""
    indices = np.concatenate(_io_indices(op))
    return any(_tflite_dtype(graph, int(i)) in _INT_DTYPES for i in indices if i >= 0)


def _parse_onnx(data: bytes) -> onnx.ModelProto | None:
    """The ModelProto in `data`, or None unless it parses and has a non-empty graph."""
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception:  # protobuf raises DecodeError or others on random bytes
        return None
    return model if model.HasField("graph") and len(model.graph.node) > 0 else None


def _parse_onnx_file(data: bytes, path: str) -> onnx.ModelProto:
    """Parse the contents of a .onnx file."""
    model = _parse_onnx(data)
    if model is None:
        raise TinyMLError(f"{path}: not an ONNX model")
    validate_onnx(model, path)
    return model


def _tvm_import(path: str, importer) -> tvm.IRModule:
    """Run a TVM importer, turning its exceptions into one-line TinyMLErrors (TVM's own stderr
    lines are kept out of the terminal)."""
    try:
        with native_stderr_captured():
            return importer()
    except tvm.error.OpNotImplemented as e:
        raise UnsupportedOperatorError(f"{path}: {_first_line(e)}") from None
    except Exception as e:
        raise TinyMLError(f"{path}: TVM import failed: {_first_line(e)}") from None


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _c_identifier(stem: str) -> str:
    """`stem` made a valid C identifier."""
    name = re.sub(r"[^0-9A-Za-z_]", "_", stem)
    return name if name and not name[0].isdigit() else f"model_{name}"


# ---------------------------------------------------------------- IO description


def _tflite_dtype(graph, index: int) -> str:
    return _TFLITE_DTYPES.get(graph.Tensors(index).Type(), "unknown")


def _tflite_quant(graph, index: int) -> tuple[float | None, int | None]:
    """Per-tensor (scale, zero_point) of a TFLite tensor, or (None, None)."""
    quant = graph.Tensors(index).Quantization()
    if quant is None or quant.ScaleLength() != 1:
        return None, None
    zero_point = int(quant.ZeroPoint(0)) if quant.ZeroPointLength() else 0
    return float(quant.Scale(0)), zero_point


def _tflite_io(model: tflite.Model) -> tuple[list[TensorInfo], list[TensorInfo]]:
    """TensorInfo for the main subgraph's inputs and outputs."""
    graph = model.Subgraphs(0)
    quantized_side = {}  # float graph tensor -> the int8 tensor a QUANTIZE/DEQUANTIZE maps it to
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        name = _tflite_op_name(model, op)
        if name == "QUANTIZE":
            quantized_side[int(op.Inputs(0))] = int(op.Outputs(0))
        elif name == "DEQUANTIZE":
            quantized_side[int(op.Outputs(0))] = int(op.Inputs(0))

    def info(index: int) -> TensorInfo:
        tensor = graph.Tensors(index)
        scale, zero_point = _tflite_quant(graph, index)
        quant_scale, quant_zero_point = _tflite_quant(graph, quantized_side.get(index, index))
        shape = tuple(int(d) for d in np.atleast_1d(tensor.ShapeAsNumpy()))
        return TensorInfo(
            tensor.Name().decode(), shape, _tflite_dtype(graph, index),
            scale, zero_point, quant_scale, quant_zero_point,
        )

    inputs, outputs = _io_indices(graph)
    return [info(int(i)) for i in inputs], [info(int(i)) for i in outputs]


def _onnx_io(model: onnx.ModelProto) -> tuple[list[TensorInfo], list[TensorInfo]]:
    """TensorInfo for an ONNX graph's (non-initializer) inputs and outputs."""
    graph = model.graph
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    qdq = {}  # graph tensor -> (scale, zero_point) of the Quantize/DequantizeLinear next to it
    for node in graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and node.input[1] in constants:
            scale = constants[node.input[1]]
            zero_point = constants.get(node.input[2]) if len(node.input) > 2 else None
            if scale.size == 1:
                params = (scale.item(), zero_point.item() if zero_point is not None else 0)
                qdq.setdefault(node.input[0], params)
                qdq.setdefault(node.output[0], params)

    def info(value: onnx.ValueInfoProto) -> TensorInfo:
        tensor_type = value.type.tensor_type
        dtype = helper.tensor_dtype_to_np_dtype(tensor_type.elem_type).name
        shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor_type.shape.dim)
        quant = qdq.get(value.name, (None, None))
        own = quant if dtype in _INT_DTYPES else (None, None)
        return TensorInfo(value.name, shape, dtype, *own, *quant)

    inputs = [info(v) for v in graph.input if v.name not in constants]
    return inputs, [info(v) for v in graph.output]


def _relax_io(mod: tvm.IRModule) -> tuple[list[TensorInfo], list[TensorInfo]]:
    """TensorInfo for the parameters and tensor results of `main`."""
    main = mod["main"]
    results = main.ret_ty.fields if isinstance(main.ret_ty, relax.TupleType) else [main.ret_ty]

    def info(name: str, ty: relax.TensorType) -> TensorInfo:
        dims = ty.shape if ty.shape is not None else []
        shape = tuple(int(d) if isinstance(d, tvm.tirx.IntImm) else -1 for d in dims)
        return TensorInfo(name, shape, str(ty.dtype))

    inputs = [info(p.name, p.ty) for p in main.params]
    return inputs, [info(f"output_{i}", ty) for i, ty in enumerate(results)]


# ---------------------------------------------------------------- quantized TFLite converters


class QDQOperatorConverter(MovementConverter, tflite_frontend.OperatorConverter):
    """TVM's TFLite converter plus QDQ lowering of quantized RESIZE_NEAREST_NEIGHBOR and
    BATCH_MATMUL: dequantize the input, apply the float op, quantize the result. Data-movement
    operators (PAD, TRANSPOSE, SLICE, ...) come from `MovementConverter` as int8 Relax ops.
    SOFTMAX keeps beta, TRANSPOSE_CONV its fused activation, reductions take repeated axes,
    ARG_MAX/ARG_MIN (int8 in, no QDQ) cast to the int32 TFLM writes.

    (Quantized MAX_POOL_2D is already supported upstream, as an int8 max_pool2d.)
    """

    _SUPPORTED_QUANTIZED_OPS = tflite_frontend.OperatorConverter._SUPPORTED_QUANTIZED_OPS | {
        "RESIZE_NEAREST_NEIGHBOR",
        "UNIDIRECTIONAL_SEQUENCE_LSTM",  # sequence family
        "SVDF",
        # reduce family
        "ARG_MAX",
        "ARG_MIN",
        # matrix family
        "BATCH_MATMUL",
        "PRELU",  # activations (act)
        "ELU",
    } | MOVEMENT_OPS

    def get_tensors(self, tensors_idx_list):
        """TVM's tensor wrappers, with each quantized_dimension made valid for the tensor's rank.

        TFLite Micro ignores the quantized dimension where it cannot apply: a per-tensor scale, or
        a 1-D per-channel bias whose converter copied the 4-D weight's dimension (person_detect's
        depthwise biases carry 3). Relax's dequantize needs an axis inside the tensor.
        """
        wrappers = [self._tensor_wrapper(int(i)) for i in self._indices_or_empty(tensors_idx_list)]
        for wrapper in wrappers:
            params = wrapper.qnn_params
            if params is None or wrapper.tensor == 0:
                continue
            rank = len(np.atleast_1d(wrapper.tensor.ShapeAsNumpy())) if wrapper.tensor.ShapeLength() else 0
            if wrapper.tensor.Quantization().ScaleLength() == 1:
                params["axis"] = 0  # per-tensor (e.g. a 1-channel per-channel depthwise filter)
            elif not 0 <= params["axis"] < max(rank, 1):
                params["axis"] = max(rank - 1, 0)
        return wrappers

    def _tensor_wrapper(self, index: int) -> tflite_frontend.TensorWrapper:
        """TVM's wrapper of one tensor; a quantization table without scales (palm_detection's
        int32 shape and size constants) means unquantized, as in TFLite Micro."""
        if index >= 0:
            tensor = self.subgraph.Tensors(index)
            quant = tensor.Quantization()
            if quant is not None and quant.ScaleLength() == 0:
                return tflite_frontend.TensorWrapper(index, tensor, self.model.Buffers(tensor.Buffer()))
        return super().get_tensors([index])[0]

    def convert_fully_connected(self, op):
        """Convert TFLite FULLY_CONNECTED, flattening the input to [-1, K] as TFLite does.

        (TVM's converter feeds a rank-4 input straight to matmul and keeps its rank.)
        """
        input_tensor, weight_tensor = self.get_input_tensors(op)[:2]
        name = tflite_frontend.get_tensor_name(self.subgraph, input_tensor.tensor_idx)
        if len(self.get_tensor_shape(input_tensor)) == 2 or not self.exp_tab.has_expr(name):
            return super().convert_fully_connected(op)
        depth = int(self.get_tensor_shape(weight_tensor)[1])
        original = self.exp_tab.get_expr(name)
        self.exp_tab.set_expr(name, relax.op.reshape(original, [-1, depth]), force_override=True)
        try:
            out = super().convert_fully_connected(op)
        finally:
            self.exp_tab.set_expr(name, original, force_override=True)
        out_shape = [int(d) for d in self.get_tensor_shape(self.get_output_tensors(op)[0])]
        return relax.op.reshape(out, out_shape)

    def convert_resize_nearest_neighbor(self, op):
        """Convert TFLite RESIZE_NEAREST_NEIGHBOR (NHWC).

        TFLite picks source index floor((x + offset) * scale) (offset 0.5 with half-pixel
        centers), or round-half-up(x * scale) with aligned corners.
        """
        if not self.is_quantized(op):
            return super().convert_resize_nearest_neighbor(op)
        from tflite.ResizeNearestNeighborOptions import ResizeNearestNeighborOptions

        options = self._get_builtin_options(op, ResizeNearestNeighborOptions)
        align, half_pixel = options.AlignCorners(), options.HalfPixelCenters()
        if align and half_pixel:
            raise tvm.error.OpNotImplemented(
                "RESIZE_NEAREST_NEIGHBOR with both align_corners and half_pixel_centers"
            )
        coord_trans = "align_corners" if align else "half_pixel" if half_pixel else "asymmetric"
        rounding = "round_prefer_ceil" if align or half_pixel else "floor"
        size = tuple(int(v) for v in self.get_tensor_value(self.get_input_tensors(op)[1]))
        out = relax.op.image.resize2d(
            self._dequantized_input(op), size, None, "NHWC", "nearest_neighbor", coord_trans, rounding
        )
        return self.quantize(out, self.get_output_tensors(op)[0])

    # ---- sequence family: recurrent ops become opaque markers (tvm_tinyml.sequence_import)
    def convert_unidirectional_sequence_lstm(self, op):
        """Convert an int8 TFLite UNIDIRECTIONAL_SEQUENCE_LSTM into its kernel marker."""
        if not self.is_quantized(op):
            return super().convert_unidirectional_sequence_lstm(op)
        return sequence_import.lstm_marker(self, op)

    def convert_svdf(self, op):
        """Convert an int8 TFLite SVDF (int16 or int8 state) into its kernel marker."""
        if not self.is_quantized(op):
            return super().convert_svdf(op)
        return sequence_import.svdf_marker(self, op)
    # ---------------------------------------------------------------- reduce family
    def convert_softmax(self, op):
        """Convert TFLite SOFTMAX, keeping beta (TVM's converter drops it) as a multiply by a
        scalar before the softmax when it is not 1."""
        from tflite.SoftmaxOptions import SoftmaxOptions

        beta = self._get_builtin_options(op, SoftmaxOptions).Beta() if op.BuiltinOptions() is not None else 1.0
        if not self.is_quantized(op) or beta == 1.0:
            return super().convert_softmax(op)
        out = relax.op.multiply(self._dequantized_input(op), relax.const(np.float32(beta)))
        return self.quantize(relax.op.nn.softmax(out, axis=-1), self.get_output_tensors(op)[0])

    def _convert_reduce(self, relax_op, op):
        """Convert TFLite MEAN/SUM/REDUCE_*, with repeated axes (TFLite allows them) made distinct."""
        rank = len(self.get_tensor_shape(self.get_input_tensors(op)[0]))

        def distinct(data, axis, keepdims):
            return relax_op(data, sorted({int(a) % rank for a in axis}), keepdims)

        return super()._convert_reduce(distinct, op)

    def _convert_arg_min_max(self, op, relax_op):
        """Convert TFLite ARG_MAX/ARG_MIN to int32 indices (the only output type TFLM has)."""
        name = "ARG_MAX" if relax_op is relax.op.argmax else "ARG_MIN"
        dtype = _TFLITE_DTYPES.get(self.get_output_tensors(op)[0].tensor.Type(), "unknown")
        if dtype != "int32":
            raise tvm.error.OpNotImplemented(f"{name} with {dtype} output is not supported (int32 only, as TFLite Micro)")
        axis_dtype = _TFLITE_DTYPES.get(self.get_input_tensors(op)[1].tensor.Type(), "unknown")
        if axis_dtype != "int32":
            raise tvm.error.OpNotImplemented(f"{name} with an {axis_dtype} axis is not supported (int32 only, as TFLite Micro)")
        return relax.op.astype(super()._convert_arg_min_max(op, relax_op), dtype)

    # ---------------------------------------------------------------- matrix family
    def convert_batch_matmul(self, op):
        """Convert quantized TFLite BATCH_MATMUL: int8 operands (adj_x / adj_y as an int8
        transpose of the last two axes, as TFLM transposes them too) dequantized into a
        broadcasting matmul."""
        if not self.is_quantized(op):
            return super().convert_batch_matmul(op)
        from tflite.BatchMatMulOptions import BatchMatMulOptions

        options = self._get_builtin_options(op, BatchMatMulOptions)
        tensors = self.get_input_tensors(op)
        if any(t.tensor.Quantization() is None or t.tensor.Quantization().ScaleLength() != 1 for t in tensors):
            raise tvm.error.OpNotImplemented("BATCH_MATMUL with per-channel or float operands is not supported (per-tensor int8 only)")
        operands = []
        for tensor, adjoint in zip(tensors, (options.AdjX(), options.AdjY())):
            expr = self.get_tensor_expr(tensor)
            if adjoint:
                rank = len(self.get_tensor_shape(tensor))
                expr = relax.op.permute_dims(expr, [*range(rank - 2), rank - 1, rank - 2])
            operands.append(self.dequantize(expr, tensor))
        return self.quantize(relax.op.matmul(*operands), self.get_output_tensors(op)[0])

    def convert_transpose_conv(self, op):
        """Convert TFLite TRANSPOSE_CONV, adding the fused activation TVM's converter drops.

        TVM derives the padding from the output size as TFLite does; its conv2d_transpose then
        has the TFLite output size only for the usual output shapes, so others are refused.
        """
        from tflite.TransposeConvOptions import TransposeConvOptions

        out = super().convert_transpose_conv(op)
        output_shape, weights, data = self.get_input_tensors(op)[:3]
        if data.qnn_params is None:
            return out
        options = self._get_builtin_options(op, TransposeConvOptions)
        wanted = [int(v) for v in self.get_tensor_value(output_shape)]
        _, kh, kw, _ = (int(d) for d in self.get_tensor_shape(weights))
        in_h, in_w = (int(d) for d in self.get_tensor_shape(data)[1:3])
        strides = (options.StrideH(), options.StrideW())
        sizes = [
            _transpose_conv_size(size, in_size, kernel, stride, options.Padding())
            for size, in_size, kernel, stride in zip(wanted[1:3], (in_h, in_w), (kh, kw), strides)
        ]
        if sizes != wanted[1:3]:
            raise tvm.error.OpNotImplemented(
                f"TRANSPOSE_CONV from {in_h}x{in_w} to {wanted[1]}x{wanted[2]} (strides {strides}) is not supported"
            )
        output = self.get_output_tensors(op)[0]
        scale, zero_point = (tflite_frontend.get_scalar_from_constant(output.qnn_params[k]) for k in ("scale", "zero_point"))
        return self.convert_qnn_fused_activation_function(
            out, options.FusedActivationFunction(), scale, zero_point, self.get_tensor_type_str(output.tensor.Type())
        )

    # ---------------------------------------------------------------- activations (act)

    def convert_prelu(self, op):
        """Convert quantized TFLite PRELU to where(x >= 0, x, x * alpha), alpha (a constant or
        an activation) broadcast against x; the pass matches exactly this pattern."""
        if not self.is_quantized(op):
            return super().convert_prelu(op)
        x = self._dequantized_input(op)
        alpha_tensor = self.get_input_tensors(op)[1]
        alpha = self.dequantize(self.get_tensor_expr(alpha_tensor), alpha_tensor)
        out = relax.op.where(relax.op.greater_equal(x, relax.const(0.0)), x, relax.op.multiply(x, alpha))
        return self.quantize(out, self.get_output_tensors(op)[0])

    def convert_elu(self, op):
        """Convert quantized TFLite ELU to where(x < 0, exp(x) - 1, x) (matched by the pass)."""
        if not self.is_quantized(op):
            return super().convert_elu(op)
        x = self._dequantized_input(op)
        out = relax.op.where(relax.op.less(x, relax.const(0.0)), relax.op.exp(x) - relax.const(1.0), x)
        return self.quantize(out, self.get_output_tensors(op)[0])

    def convert_resize_bilinear(self, op):
        """Convert TFLite RESIZE_BILINEAR, refusing align_corners with half_pixel_centers as
        TFLite Micro does (TVM's converter would silently pick half-pixel)."""
        from tflite.ResizeBilinearOptions import ResizeBilinearOptions

        options = self._get_builtin_options(op, ResizeBilinearOptions)
        if options.AlignCorners() and options.HalfPixelCenters():
            raise tvm.error.OpNotImplemented("RESIZE_BILINEAR with both align_corners and half_pixel_centers")
        return super().convert_resize_bilinear(op)

    def convert_conv(self, op, conv_type):
        """TVM's CONV_2D / DEPTHWISE_CONV_2D conversion; an absent bias (input -1) means no bias.

        (TVM's converter takes any third input for a bias tensor and crashes on -1.)
        """
        self._drop_absent_inputs = True
        try:
            return super().convert_conv(op, conv_type)
        finally:
            self._drop_absent_inputs = False

    def get_input_tensors(self, op):
        """The op's input tensors; trailing absent ones dropped while converting a convolution."""
        tensors = super().get_input_tensors(op)
        while getattr(self, "_drop_absent_inputs", False) and tensors and tensors[-1].tensor_idx < 0:
            tensors.pop()
        return tensors

    def _dequantized_input(self, op) -> relax.Expr:
        """The op's first input, dequantized to float32."""
        tensor = self.get_input_tensors(op)[0]
        return self.dequantize(self.get_tensor_expr(tensor), tensor)


def _transpose_conv_size(out_size: int, in_size: int, kernel: int, stride: int, padding: int) -> int:
    """The output size of TVM's conv2d_transpose for TFLite's padding (computed from the TFLite
    output size `out_size`: SAME pads as a convolution of it would, VALID not at all)."""
    from tflite.Padding import Padding

    total = max(0, (-(-out_size // stride) - 1) * stride + kernel - out_size) if padding == Padding.SAME else 0
    return (in_size - 1) * stride - total + kernel


def source_classic_bound(path: str | os.PathLike) -> int | None:
    """The classic bound of a TFLite model's own graph, as TFLite Micro sees it: the largest
    sum of activation tensors alive together (inputs from the start, outputs to the end, no
    op overwriting its input). None for other formats."""
    data = _read(str(path))
    if sniff_format(data, str(path)) != "tflite":
        return None
    model = _parse_tflite(data, str(path))
    graph = model.Subgraphs(0)
    steps = graph.OperatorsLength()
    first: dict[int, int] = {}
    last: dict[int, int] = {}

    def touch(index: int, step: int) -> None:
        if index < 0 or model.Buffers(graph.Tensors(index).Buffer()).DataLength() > 0:
            return  # optional input, or a constant (flash)
        first[index], last[index] = min(first.get(index, step), step), max(last.get(index, step), step)

    inputs, outputs = _io_indices(graph)
    for index in inputs:
        touch(int(index), 0)
    for step in range(steps):
        for indices in _io_indices(graph.Operators(step)):
            for index in indices:
                touch(int(index), step)
    for index in outputs:
        touch(int(index), steps)
    size = {i: int(np.prod(graph.Tensors(i).ShapeAsNumpy())) * np.dtype(_tflite_dtype(graph, i)).itemsize for i in first}
    return max(sum(size[i] for i in first if first[i] <= step <= last[i]) for step in range(steps + 1))


def tflite_constant_bytes(path: str | os.PathLike) -> int:
    """Bytes of all non-empty buffers of a .tflite file: the model's own weights and constants."""
    model = _parse_tflite(_read(str(path)), str(path))
    return sum(model.Buffers(i).DataLength() for i in range(model.BuffersLength()))
