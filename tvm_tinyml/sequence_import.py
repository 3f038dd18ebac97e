"""Import of the recurrent TFLite ops TVM's converter refuses when quantized (int8 LSTM, SVDF).

A layer becomes one opaque marker, `R.call_dps_packed("tinyml.<op>", (x, constants..., table))`
with an int8 result: the int8 input, its weights (an LSTM's stacked per gate), its biases and,
last, the int32 parameter table TFLM's Prepare would compute (tvm_tinyml.sequence_params). QuantizeRealize
turns the marker into a call of the C micro-kernel (schedules.qnn_sequence).
Variants TFLM's integer kernel rejects raise `OpNotImplemented` naming the missing case.
"""

from __future__ import annotations

import numpy as np
import tvm
from tflite.ActivationFunctionType import ActivationFunctionType
from tflite.SVDFOptions import SVDFOptions
from tflite.UnidirectionalSequenceLSTMOptions import UnidirectionalSequenceLSTMOptions
from tvm import relax

from tvm_tinyml.sequence_params import LstmQuant, SvdfQuant, lstm_params, svdf_params

LSTM_SYMBOL = "tinyml.unidirectional_sequence_lstm"
SVDF_SYMBOL = "tinyml.svdf"
_INPUT_WEIGHTS, _RECURRENT_WEIGHTS, _BIASES = (1, 2, 3, 4), (5, 6, 7, 8), (12, 13, 14, 15)
_HIDDEN, _CELL = 18, 19
_ABSENT = {(9, 10, 11): "peephole connections", (16, 17): "a projection layer", (20, 21, 22, 23): "layer normalization"}


def _origin(converter, tflite_op, name: str) -> str:
    """ "operator #i (NAME)" for the operator being converted (found by its output tensor)."""
    graph, output = converter.subgraph, int(tflite_op.Outputs(0))
    index = next(i for i in range(graph.OperatorsLength()) if int(graph.Operators(i).Outputs(0)) == output)
    return f"operator #{index} ({name})"


def _require(condition: bool, op: str, case: str, only: str = "") -> None:
    """Raise "<op> with <case> is not supported (<only> only)" unless `condition`; `op` is the
    operator's origin ("operator #i (NAME)")."""
    if not condition:
        raise tvm.error.OpNotImplemented(f"{op} with {case} is not supported" + (f" ({only} only)" if only else ""))


def _dtype(converter, wrapper) -> str:
    return converter.get_tensor_type_str(wrapper.tensor.Type())


def _quant(wrapper) -> tuple[np.ndarray, np.ndarray]:
    """A tensor's (scales, zero points) as stored in the flatbuffer (empty if none)."""
    quant = wrapper.tensor.Quantization()
    if quant is None or not quant.ScaleLength():
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    zero_points = quant.ZeroPointAsNumpy() if quant.ZeroPointLength() else np.zeros(1, np.int64)
    return quant.ScaleAsNumpy(), zero_points


def _per_tensor(wrapper, op: str, what: str) -> tuple[float, int]:
    scales, zero_points = _quant(wrapper)
    _require(scales.size == 1, op, f"{what} without per-tensor quantization")
    return float(scales[0]), int(zero_points[0])


def _weights(converter, tensors, indices, op: str) -> tuple[np.ndarray, tuple[float, ...]]:
    """Gate weights stacked as [4][rows][cols] int8, and their per-tensor scales."""
    arrays, scales = [], []
    for i in indices:
        _require(_dtype(converter, tensors[i]) == "int8", op, f"{_dtype(converter, tensors[i])} weights (tensor {i})", "int8")
        scale, zero_point = _per_tensor(tensors[i], op, f"weights tensor {i}")
        _require(zero_point == 0, op, f"weights with zero point {zero_point}")
        arrays.append(np.asarray(converter.get_tensor_value(tensors[i]), dtype=np.int8))
        scales.append(scale)
    return np.stack(arrays), tuple(scales)


def _check_lstm_tensors(converter, tensors, output, op: str) -> None:
    _require(len(tensors) == 24, op, f"{len(tensors)} input tensors (24 expected)")
    _require(_dtype(converter, tensors[0]) == "int8" and _dtype(converter, output) == "int8", op,
             f"{_dtype(converter, tensors[0])} activations", "int8")
    _require(len(converter.get_tensor_shape(tensors[0])) == 3, op, "an input of rank other than 3")
    for indices, case in _ABSENT.items():
        _require(all(tensors[i].tensor_idx < 0 for i in indices), op, case)
    present = _INPUT_WEIGHTS + _RECURRENT_WEIGHTS + _BIASES
    _require(all(tensors[i].tensor_idx >= 0 for i in present), op, "a coupled input-forget gate (no input gate)")
    _require(all(_dtype(converter, tensors[i]) == "int32" for i in _BIASES), op, "non-int32 biases")
    _require(_dtype(converter, tensors[_CELL]) == "int16", op, f"{_dtype(converter, tensors[_CELL])} cell state", "int16")
    _require(_dtype(converter, tensors[_HIDDEN]) == "int8", op, "a non-int8 hidden state")


def _marker(converter, symbol: str, tflite_op, x: relax.Expr, constants: list[np.ndarray]) -> relax.Expr:
    """`R.call_dps_packed(symbol, (x, *constants))` with the op's int8 output type."""
    output = converter.get_output_tensors(tflite_op)[0]
    out_shape = [int(d) for d in converter.get_tensor_shape(output)]
    args = relax.Tuple([x] + [relax.const(a) for a in constants])
    return relax.op.call_dps_packed(relax.ExternFunc(symbol), args, relax.TensorType(out_shape, "int8"))


def lstm_marker(converter, tflite_op) -> relax.Expr:
    """The marker for an int8 UNIDIRECTIONAL_SEQUENCE_LSTM (see module doc)."""
    op = _origin(converter, tflite_op, "UNIDIRECTIONAL_SEQUENCE_LSTM")
    tensors = converter.get_input_tensors(tflite_op)
    _check_lstm_tensors(converter, tensors, converter.get_output_tensors(tflite_op)[0], op)
    options = converter._get_builtin_options(tflite_op, UnidirectionalSequenceLSTMOptions)
    activation = int(options.FusedActivationFunction())
    _require(activation == ActivationFunctionType.TANH, op, f"cell activation {activation}", "TANH")
    w_in, in_scales = _weights(converter, tensors, _INPUT_WEIGHTS, op)
    w_rec, rec_scales = _weights(converter, tensors, _RECURRENT_WEIGHTS, op)
    bias = np.stack([np.asarray(converter.get_tensor_value(tensors[i]), dtype=np.int32) for i in _BIASES])
    input_scale, input_zp = _per_tensor(tensors[0], op, "the input")
    hidden_scale, hidden_zp = _per_tensor(tensors[_HIDDEN], op, "the hidden state")
    cell_scale, _ = _per_tensor(tensors[_CELL], op, "the cell state")
    quant = LstmQuant(input_scale, input_zp, hidden_scale, hidden_zp, cell_scale, in_scales, rec_scales)
    input_shape = tuple(int(d) for d in converter.get_tensor_shape(tensors[0]))
    params = lstm_params(input_shape, int(w_in.shape[1]), bool(options.TimeMajor()), quant, float(options.CellClip()))
    return _marker(converter, LSTM_SYMBOL, tflite_op, converter.get_tensor_expr(tensors[0]), [w_in, w_rec, bias, params])


def svdf_marker(converter, tflite_op) -> relax.Expr:
    """The marker for an int8 SVDF with an int16 or int8 activation state: (x, feature weights,
    time weights as int16, bias, parameter table)."""
    op = _origin(converter, tflite_op, "SVDF")
    tensors = converter.get_input_tensors(tflite_op)
    _require(len(tensors) == 5, op, f"{len(tensors)} input tensors (5 expected)")
    x, w_feature, w_time, bias, state = tensors
    output = converter.get_output_tensors(tflite_op)[0]
    _require(len(converter.get_tensor_shape(x)) == 2, op, "an input of rank other than 2")
    _require(_dtype(converter, x) == "int8" and _dtype(converter, output) == "int8", op, f"{_dtype(converter, x)} activations", "int8")
    _require(_dtype(converter, w_feature) == "int8", op, f"{_dtype(converter, w_feature)} feature weights", "int8")
    state_type = _dtype(converter, state)
    _require(state_type in ("int16", "int8") and _dtype(converter, w_time) == state_type, op,
             f"{state_type} state and {_dtype(converter, w_time)} time weights", "int16 or int8, the same for both")
    _require(bias.tensor_idx >= 0 and _dtype(converter, bias) == "int32", op, "no int32 bias")
    batch, input_dim = (int(d) for d in converter.get_tensor_shape(x))
    filters, memory = (int(d) for d in converter.get_tensor_shape(w_time))
    rank = int(converter._get_builtin_options(tflite_op, SVDFOptions).Rank())
    _require(rank > 0 and filters % rank == 0, op, f"rank {rank} not dividing {filters} filters")
    quant = SvdfQuant(*_per_tensor(x, op, "the input"), _per_tensor(w_feature, op, "the feature weights")[0],
                      _per_tensor(w_time, op, "the time weights")[0], *_per_tensor(state, op, "the state"),
                      *_per_tensor(output, op, "the output"))
    params = svdf_params(batch, input_dim, filters, rank, memory, quant, 8 if state_type == "int8" else 16)
    constants = [np.asarray(converter.get_tensor_value(t)).astype(dtype) for t, dtype in
                 ((w_feature, np.int8), (w_time, np.int16), (bias, np.int32))]  # int8 time weights widened
    return _marker(converter, SVDF_SYMBOL, tflite_op, converter.get_tensor_expr(x), [*constants, params])
