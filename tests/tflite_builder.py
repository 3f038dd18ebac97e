"""Build small .tflite flatbuffers in tests, and run them in TFLite Micro.

Uses the flatbuffers object API shipped with the ``tflite-micro`` pip package
(``schema_py_generated``: ModelT, TensorT, ...). Example::

    b = ModelBuilder()
    x = b.add_tensor([1, 4, 4, 8], np.int8, scale=0.05, zero_point=-3)
    axis = b.add_tensor([2], np.int32, data=np.array([1, 2]))
    y = b.add_tensor([1, 1, 1, 8], np.int8, scale=0.04, zero_point=2)
    b.add_operator("MEAN", [x, axis], [y], keep_dims=True)
    model = b.build(inputs=[x], outputs=[y])
    (out,) = run_tflm(model, [x_data])

Operator options are given as keyword arguments named after the schema
fields, in snake_case or camelCase (``fused_activation_function="RELU"``,
``padding="SAME"``, ``stride_w=1``, ``keep_dims=True``, ``beta=1.0``). Enum
fields accept their schema names as strings.
"""

from __future__ import annotations

from typing import Any, Sequence

import flatbuffers
import numpy as np
from tflite_micro.python.tflite_micro import runtime
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

_TENSOR_TYPES = {
    np.dtype(np.int8): schema.TensorType.INT8,
    np.dtype(np.int16): schema.TensorType.INT16,
    np.dtype(np.int32): schema.TensorType.INT32,
    np.dtype(np.int64): schema.TensorType.INT64,
    np.dtype(np.uint8): schema.TensorType.UINT8,
    np.dtype(np.float32): schema.TensorType.FLOAT32,
    np.dtype(np.bool_): schema.TensorType.BOOL,
}

# Builtin operators whose options table is not simply "<CamelCaseName>Options".
_OPTIONS_NAME = {
    "CONV_2D": "Conv2DOptions",
    "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions",
    "AVERAGE_POOL_2D": "Pool2DOptions",
    "MAX_POOL_2D": "Pool2DOptions",
    "L2_POOL_2D": "Pool2DOptions",
    "MEAN": "ReducerOptions",
    "SUM": "ReducerOptions",
    "REDUCE_MAX": "ReducerOptions",
    "REDUCE_MIN": "ReducerOptions",
    "REDUCE_PROD": "ReducerOptions",
    "MAXIMUM": "MaximumMinimumOptions",
    "MINIMUM": "MaximumMinimumOptions",
    "RELU": None,
    "RELU6": None,
    "LOGISTIC": None,
    "TANH": None,
    # sequence family
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "UnidirectionalSequenceLSTMOptions",
    "SVDF": "SVDFOptions",
    # matrix family
    "BATCH_MATMUL": "BatchMatMulOptions",
}

# Option fields holding enums, so that strings like "RELU" or "SAME" work.
_ENUM_FIELDS = {
    "fusedActivationFunction": schema.ActivationFunctionType,
    "padding": schema.Padding,
}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _options_table(op_name: str) -> str | None:
    if op_name in _OPTIONS_NAME:
        return _OPTIONS_NAME[op_name]
    name = "".join(p.capitalize() for p in op_name.split("_")) + "Options"
    return name if hasattr(schema.BuiltinOptions, name) else None


class ModelBuilder:
    """Accumulates tensors and operators of a single-subgraph TFLite model."""

    def __init__(self) -> None:
        self._tensors: list[Any] = []
        self._buffers: list[Any] = [schema.BufferT()]  # buffer 0: empty
        self._opcodes: list[int] = []
        self._operators: list[Any] = []

    def add_tensor(self, shape: Sequence[int], dtype: Any, *,
                   scale: float | Sequence[float] | None = None,
                   zero_point: int | Sequence[int] = 0,
                   quantized_dimension: int = 0,
                   data: np.ndarray | None = None, name: str = "",
                   variable: bool = False) -> int:
        """Adds a tensor and returns its index.

        ``scale``/``zero_point`` may be per-tensor scalars or per-channel
        sequences (along ``quantized_dimension``); no ``scale`` means an
        unquantized tensor. ``data`` makes the tensor a constant;
        ``variable`` marks an op's state (an LSTM's, an SVDF's).
        """
        dtype = np.dtype(dtype)
        t = schema.TensorT()
        t.shape = [int(d) for d in shape]
        t.type = _TENSOR_TYPES[dtype]
        t.name = name or f"t{len(self._tensors)}"
        t.isVariable = variable
        if scale is not None:
            q = schema.QuantizationParametersT()
            q.scale = [float(s) for s in np.atleast_1d(scale)]
            zps = np.atleast_1d(zero_point)
            q.zeroPoint = [int(z) for z in (np.broadcast_to(zps, len(q.scale)))]
            q.quantizedDimension = quantized_dimension
            t.quantization = q
        if data is not None:
            arr = np.ascontiguousarray(np.asarray(data, dtype=dtype).reshape(t.shape))
            buf = schema.BufferT()
            buf.data = np.frombuffer(arr.tobytes(), dtype=np.uint8)
            self._buffers.append(buf)
            t.buffer = len(self._buffers) - 1
        self._tensors.append(t)
        return len(self._tensors) - 1

    def quantization(self, index: int) -> tuple[float, int]:
        """Scale and zero point of per-tensor quantized tensor `index`."""
        q = self._tensors[index].quantization
        return float(q.scale[0]), int(q.zeroPoint[0])

    def add_operator(self, op: str, inputs: Sequence[int], outputs: Sequence[int],
                     **options: Any) -> None:
        """Adds a builtin operator (``op`` is a BuiltinOperator name, e.g. "ADD").

        Optional inputs (e.g. a missing bias) are given as -1.
        """
        code = getattr(schema.BuiltinOperator, op)
        if code not in self._opcodes:
            self._opcodes.append(code)
        o = schema.OperatorT()
        o.opcodeIndex = self._opcodes.index(code)
        o.inputs = list(inputs)
        o.outputs = list(outputs)
        table = _options_table(op)
        if table is not None:
            opts = getattr(schema, table + "T")()
            for key, value in options.items():
                field = key if hasattr(opts, key) else _camel(key)
                if not hasattr(opts, field):
                    raise ValueError(f"{table} has no field {key!r}")
                if isinstance(value, str):
                    value = getattr(_ENUM_FIELDS[field], value.upper())
                setattr(opts, field, value)
            o.builtinOptionsType = getattr(schema.BuiltinOptions, table)
            o.builtinOptions = opts
        elif options:
            raise ValueError(f"{op} takes no options")
        self._operators.append(o)

    def build(self, inputs: Sequence[int], outputs: Sequence[int]) -> bytes:
        """Serializes the model with the given graph inputs/outputs."""
        sg = schema.SubGraphT()
        sg.tensors = self._tensors
        sg.inputs = list(inputs)
        sg.outputs = list(outputs)
        sg.operators = self._operators
        sg.name = "main"
        model = schema.ModelT()
        model.version = 3
        model.description = "tvm-tinyml test model"
        model.subgraphs = [sg]
        model.buffers = self._buffers
        model.operatorCodes = []
        for code in self._opcodes:
            oc = schema.OperatorCodeT()
            oc.builtinCode = code
            oc.deprecatedBuiltinCode = min(code, schema.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES)
            oc.version = 1
            model.operatorCodes.append(oc)
        fbb = flatbuffers.Builder(1024)
        fbb.Finish(model.Pack(fbb), file_identifier=b"TFL3")
        return bytes(fbb.Output())


def run_tflm(model: bytes, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Runs ``model`` once in the TFLM reference interpreter."""
    interp = runtime.Interpreter.from_bytes(model, arena_size=1 << 20)
    for i, x in enumerate(inputs):
        interp.set_input(x, i)
    interp.invoke()
    num_outputs = schema.Model.GetRootAs(model, 0).Subgraphs(0).OutputsLength()
    return [interp.get_output(i) for i in range(num_outputs)]


def build_single_op_model(op: str, inputs: Sequence[dict], outputs: Sequence[dict],
                          **options: Any) -> bytes:
    """One-operator model. ``inputs``/``outputs`` are ``add_tensor`` kwargs
    dicts (``shape``, ``dtype``, ``scale``, ``zero_point``, ``data``...);
    inputs without ``data`` become graph inputs, in order."""
    b = ModelBuilder()
    in_idx = [b.add_tensor(**t) for t in inputs]
    out_idx = [b.add_tensor(**t) for t in outputs]
    b.add_operator(op, in_idx, out_idx, **options)
    graph_inputs = [i for i, t in zip(in_idx, inputs) if t.get("data") is None]
    return b.build(graph_inputs, out_idx)
