"""Model validation in front of every import, as TFLite Micro's verifier and kernels' Prepare do.

Plain Python (flatbuffers through the `tflite` package, protobuf through `onnx`), no TVM: nothing
reaches TVM, TFLite Micro or onnxruntime before a model passes. Each refusal is one
`InvalidModelError` line naming the model, the tensor or operator (index and name) and the problem.
"""

from __future__ import annotations

import math
import struct

import numpy as np
import onnx
import tflite
from onnx import numpy_helper

from tvm_tinyml.errors import TinyMLError

# Tensor types tvm-tinyml or TFLite Micro kernels read or write (int32/int64/bool for indices and
# shapes, int16 for sequence-model state, float32 at float model ends).
TFLITE_TYPES = {
    tflite.TensorType.INT8: np.dtype(np.int8),
    tflite.TensorType.UINT8: np.dtype(np.uint8),
    tflite.TensorType.INT16: np.dtype(np.int16),
    tflite.TensorType.INT32: np.dtype(np.int32),
    tflite.TensorType.INT64: np.dtype(np.int64),
    tflite.TensorType.FLOAT32: np.dtype(np.float32),
    tflite.TensorType.BOOL: np.dtype(np.bool_),
}
_TYPE_NAMES = {v: k for k, v in vars(tflite.TensorType).items() if not k.startswith("_")}
MAX_TENSOR_BYTES = 1 << 30  # no microcontroller holds a tensor of a GiB


class InvalidModelError(TinyMLError):
    """The model file is malformed or inconsistent (TFLite Micro would refuse it or misbehave)."""


def validate_tflite(model: tflite.Model, size: int, source: str) -> None:
    """Check a parsed .tflite model (`size` bytes) before import; raise InvalidModelError."""
    try:
        _TFLiteChecker(model, size, source).run()
    except InvalidModelError:
        raise
    except Exception as e:  # a read past the buffer: flatbuffers raises struct.error, IndexError, ...
        raise InvalidModelError(f"{source}: truncated or corrupt TFLite file ({_first_line(e)})") from None


class _TFLiteChecker:
    def __init__(self, model: tflite.Model, size: int, source: str) -> None:
        self.model, self.size, self.source = model, size, source
        self.graph = None
        self.codes: list[str] = []

    def fail(self, message: str) -> None:
        raise InvalidModelError(f"{self.source}: {message}")

    def count(self, n: int, what: str) -> int:
        if not 0 <= n <= self.size // 4:
            self.fail(f"{what}: implausible vector length {n}")
        return n

    def run(self) -> None:
        model = self.model
        for i in range(self.count(model.BuffersLength(), "buffers")):
            model.Buffers(i).DataAsNumpy()
        for i in range(self.count(model.OperatorCodesLength(), "operator codes")):
            code = model.OperatorCodes(i)
            self.codes.append(_op_name(code))
        if self.count(model.SubgraphsLength(), "subgraphs") == 0:
            self.fail("the model has no subgraph")
        self.graph = model.Subgraphs(0)
        num_tensors = self.count(self.graph.TensorsLength(), "tensors")
        used = self.used_tensors()
        constant = [self.check_tensor(i, i in used) for i in range(num_tensors)]
        self.check_graph(constant)

    def used_tensors(self) -> set[int]:
        """Tensors that are graph inputs/outputs or operator inputs/outputs (not, e.g., an LSTM's
        shapeless intermediates, of which TFLite Micro reads only the quantization)."""
        graph = self.graph
        used = set(self.indices(graph.InputsAsNumpy(), "graph input")) | set(self.indices(graph.OutputsAsNumpy(), "graph output"))
        for i in range(self.count(graph.OperatorsLength(), "operators")):
            op = graph.Operators(i)
            used.update(self.indices(op.InputsAsNumpy(), f"operator #{i}"))
            used.update(self.indices(op.OutputsAsNumpy(), f"operator #{i}"))
        return used

    # ---------------------------------------------------------------- tensors
    def tensor_name(self, index: int) -> str:
        return f"tensor #{index} '{self.graph.Tensors(index).Name().decode(errors='replace')}'"

    def check_tensor(self, index: int, used: bool) -> bool:
        """Check one tensor's type, shape, data and quantization; True if it is a constant."""
        tensor = self.graph.Tensors(index)
        name = self.tensor_name(index)
        shape = [int(d) for d in np.atleast_1d(tensor.ShapeAsNumpy())] if tensor.ShapeLength() else []
        self.count(len(shape), f"{name} shape")
        dtype = TFLITE_TYPES.get(tensor.Type())
        if not used:
            if tensor.Quantization() is not None and dtype is not None:
                self.check_quantization(tensor, name, dtype, None)
            return False
        if dtype is None:
            self.fail(f"{name}: tensor type {_TYPE_NAMES.get(tensor.Type(), tensor.Type())} is not supported")
        for axis, dim in enumerate(shape):
            if dim < 1:
                self.fail(f"{name}: dimension {axis} is {dim} (shape {shape}); every dimension must be >= 1")
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes > MAX_TENSOR_BYTES:
            self.fail(f"{name}: shape {shape} needs {nbytes:,} B, more than any microcontroller has")
        if not 0 <= tensor.Buffer() < self.model.BuffersLength():
            self.fail(f"{name} refers to missing buffer {tensor.Buffer()}")
        data_bytes = self.model.Buffers(tensor.Buffer()).DataLength()
        if data_bytes and data_bytes != nbytes:
            self.fail(f"{name}: its data has {data_bytes:,} B but shape {shape} of {dtype.name} needs {nbytes:,} B")
        if tensor.Quantization() is not None:
            self.check_quantization(tensor, name, dtype, shape)
        return data_bytes > 0

    def check_quantization(self, tensor, name: str, dtype: np.dtype, shape: list[int] | None) -> None:
        """Scales finite and positive, zero points in range, per-channel arrays as long as their
        dimension (`shape` None: a tensor only its quantization is read of)."""
        quant = tensor.Quantization()
        scales = np.atleast_1d(quant.ScaleAsNumpy()) if quant.ScaleLength() else np.zeros(0)
        zero_points = np.atleast_1d(quant.ZeroPointAsNumpy()) if quant.ZeroPointLength() else np.zeros(0, np.int64)
        if scales.size == 0:
            return
        if not np.all(np.isfinite(scales)) or np.any(scales <= 0):
            bad = scales[~(np.isfinite(scales) & (scales > 0))][0]
            self.fail(f"{name}: quantization scale {bad} is not a finite positive number")
        if zero_points.size not in (1, scales.size) and not (zero_points.size == 0 and dtype.kind == "f"):
            self.fail(f"{name}: {zero_points.size} zero points for {scales.size} scales")
        if dtype.kind in "iu" and zero_points.size:
            info = np.iinfo(dtype)
            outside = zero_points[(zero_points < info.min) | (zero_points > info.max)]
            if outside.size:
                self.fail(f"{name}: zero point {int(outside[0])} is outside the {dtype.name} range")
        if scales.size > 1 and shape is not None:
            axis = quant.QuantizedDimension()
            channels = shape[axis] if 0 <= axis < len(shape) else (shape[0] if len(shape) == 1 else None)
            if channels != scales.size:
                self.fail(f"{name}: {scales.size} per-channel scales along dimension {axis} of shape {shape}")

    # ---------------------------------------------------------------- graph
    def op_name(self, index: int) -> str:
        op = self.graph.Operators(index)
        code = op.OpcodeIndex()
        if not 0 <= code < len(self.codes):
            self.fail(f"operator #{index} has no operator code ({code})")
        return f"operator #{index} ({self.codes[code]})"

    def indices(self, values, what: str) -> list[int]:
        out = [int(v) for v in np.atleast_1d(values)] if not isinstance(values, int) else []
        for v in out:
            if not -1 <= v < self.graph.TensorsLength():
                self.fail(f"{what} refers to missing tensor {v}")
        return out

    def check_options(self, name: str, op) -> None:
        """The operator's options table lies inside the file (importers read its fields unchecked):
        its vtable, its inline part and every field the vtable names."""
        table = op.BuiltinOptions()
        if table is None:
            return
        data, pos = table.Bytes, table.Pos
        vtable = pos - struct.unpack_from("<i", data, pos)[0] if 0 <= pos <= self.size - 4 else -1
        inside = False
        if 0 <= vtable <= self.size - 4:
            length, inline = struct.unpack_from("<HH", data, vtable)
            if 4 <= length and vtable + length <= self.size and 4 <= inline and pos + inline <= self.size:
                inside = all(o < inline for o in struct.unpack_from(f"<{(length - 4) // 2}H", data, vtable + 4))
        if not inside:
            self.fail(f"{name}: its options table lies outside the file (truncated or corrupt)")

    def check_graph(self, constant: list[bool]) -> None:
        graph = self.graph
        inputs = self.indices(graph.InputsAsNumpy(), "graph input")
        outputs = self.indices(graph.OutputsAsNumpy(), "graph output")
        if not outputs:
            self.fail("the graph has no outputs")
        for t in inputs:
            if t < 0 or constant[t]:
                self.fail(f"graph input {self.tensor_name(t) if t >= 0 else t} is a constant")
        writer: dict[int, int] = {}
        ops = [graph.Operators(i) for i in range(self.count(graph.OperatorsLength(), "operators"))]
        names = [self.op_name(i) for i in range(len(ops))]
        for i, op in enumerate(ops):
            self.check_options(names[i], op)
        for i, op in enumerate(ops):
            for t in self.indices(op.OutputsAsNumpy(), names[i]):
                if t < 0:
                    self.fail(f"{names[i]} has a missing output")
                if constant[t]:
                    self.fail(f"{names[i]} writes {self.tensor_name(t)}, which holds constant data")
                if t in writer or t in inputs:
                    self.fail(f"{names[i]} writes {self.tensor_name(t)}, already written by {names[writer[t]] if t in writer else 'the graph input'}")
                writer[t] = i
        ready = set(inputs) | {t for t, c in enumerate(constant) if c}
        for i, op in enumerate(ops):
            for t in self.indices(op.InputsAsNumpy(), names[i]):
                if t < 0 or t in ready or graph.Tensors(t).IsVariable():
                    continue
                if t in writer:
                    self.fail(f"{names[i]} reads {self.tensor_name(t)} before {names[writer[t]]} writes it (operators out of order)")
                self.fail(f"{names[i]} reads {self.tensor_name(t)}, which is neither a graph input, a constant nor any operator's output")
            ready.update(t for t in self.indices(op.OutputsAsNumpy(), names[i]))
        for t in outputs:
            if constant[t]:
                self.fail(f"graph output {self.tensor_name(t)} is a constant")
            if t not in ready:
                self.fail(f"graph output {self.tensor_name(t)} is written by no operator")


def _op_name(code) -> str:
    names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
    name = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "UNKNOWN")
    if name == "CUSTOM":
        return f"CUSTOM({(code.CustomCode() or b'').decode(errors='replace')})"
    return name


# ---------------------------------------------------------------- ONNX


def validate_onnx(model: onnx.ModelProto, source: str) -> None:
    """Check an ONNX model before import: onnx's own checker (structure, topological order, types),
    then the quantization parameters of every QuantizeLinear/DequantizeLinear."""
    graph = model.graph
    if not graph.output:
        raise InvalidModelError(f"{source}: the graph has no outputs")
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as e:  # onnx raises ValidationError, InferenceError and others
        raise InvalidModelError(f"{source}: invalid ONNX model ({_first_line(e)})") from None
    constants = {}
    for init in graph.initializer:
        try:
            constants[init.name] = numpy_helper.to_array(init)
        except Exception as e:
            raise InvalidModelError(f"{source}: initializer '{init.name}' cannot be read ({_first_line(e)})") from None
    for index, node in enumerate(graph.node):
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear") or len(node.input) < 2:
            continue
        where = f"node #{index} '{node.name}' ({node.op_type})"
        scale = constants.get(node.input[1])
        if scale is not None and (not np.all(np.isfinite(scale)) or np.any(scale <= 0)):
            raise InvalidModelError(f"{source}: {where}: scale {scale.reshape(-1)[0]} is not a finite positive number")


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
