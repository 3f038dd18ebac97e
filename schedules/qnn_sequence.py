"""Kernels of the recurrent ops (int8 LSTM, SVDF): TIR wrappers around C micro-kernels.

A recurrence is a poor fit for TE, so each kernel is one `T.call_extern` of a readable C
function in `tvm_tinyml/codegen/runtime/tinyml_lstm.h` / `tinyml_svdf.h` (inlined into the
model's C when a kernel uses it). Its state and gate buffers are extra kernel outputs, so the memory planner
places them in the arena like any other tensor (the report lists them as scratch).
"""

from __future__ import annotations

from dataclasses import dataclass

from tvm import relax, tirx
from tvm.script import tirx as T

from tvm_tinyml.sequence_import import LSTM_SYMBOL, SVDF_SYMBOL

HEADERS = {"unidirectional_sequence_lstm": "tinyml_lstm.h", "svdf": "tinyml_svdf.h"}  # kernel kind -> its C header
_BATCH, _STATE, _TIME_MAJOR = 0, 3, 4  # TINYML_LSTM_* slots of the parameter table
_SVDF_BATCH, _SVDF_FILTERS, _SVDF_MEMORY = 0, 2, 4  # TINYML_SVDF_* slots


@dataclass(frozen=True)
class SequenceKernel:
    """A kernel for a marker: the PrimFunc, its kind and the types of its outputs (result first)."""

    func: tirx.PrimFunc
    op: str
    out_types: list


def _shape(expr) -> tuple[int, ...]:
    return tuple(int(d) for d in expr.ty.shape)


def lstm_kernel(args: list, out_shape: tuple[int, ...], params) -> SequenceKernel:
    """(x, w_in, w_rec, bias, params) -> (out, hidden int8, cell int16, gates int16)."""
    x_shape, w_in_shape, w_rec_shape, bias_shape, p_shape = (_shape(a) for a in args)
    batch, state = int(params[_BATCH]), int(params[_STATE])
    rows = batch if params[_TIME_MAJOR] else 1
    states, gates = batch * state, 4 * rows * state

    @T.prim_func(private=True)
    def unidirectional_sequence_lstm(
        x: T.Buffer(x_shape, "int8"),
        w_in: T.Buffer(w_in_shape, "int8"),
        w_rec: T.Buffer(w_rec_shape, "int8"),
        bias: T.Buffer(bias_shape, "int32"),
        p: T.Buffer(p_shape, "int32"),
        out: T.Buffer(out_shape, "int8"),
        hidden: T.Buffer((states,), "int8"),
        cell: T.Buffer((states,), "int16"),
        gate: T.Buffer((gates,), "int16"),
    ):
        T.evaluate(T.call_extern("void", "tinyml_lstm_i8", x.data, w_in.data, w_rec.data, bias.data, p.data,
                                 out.data, hidden.data, cell.data, gate.data))

    out_types = [relax.TensorType(out_shape, "int8"), relax.TensorType((states,), "int8"),
                 relax.TensorType((states,), "int16"), relax.TensorType((gates,), "int16")]
    return SequenceKernel(unidirectional_sequence_lstm, "unidirectional_sequence_lstm", out_types)


def svdf_kernel(args: list, out_shape: tuple[int, ...], params) -> SequenceKernel:
    """(x, w_feature, w_time, bias, params) -> (out, state int16[batch * filters * memory])."""
    x_shape, wf_shape, wt_shape, bias_shape, p_shape = (_shape(a) for a in args)
    states = int(params[_SVDF_BATCH]) * int(params[_SVDF_FILTERS]) * int(params[_SVDF_MEMORY])

    @T.prim_func(private=True)
    def svdf(
        x: T.Buffer(x_shape, "int8"),
        w_feature: T.Buffer(wf_shape, "int8"),
        w_time: T.Buffer(wt_shape, "int16"),
        bias: T.Buffer(bias_shape, "int32"),
        p: T.Buffer(p_shape, "int32"),
        out: T.Buffer(out_shape, "int8"),
        state: T.Buffer((states,), "int16"),
    ):
        T.evaluate(T.call_extern("void", "tinyml_svdf_i8", x.data, w_feature.data, w_time.data, bias.data, p.data,
                                 out.data, state.data))

    return SequenceKernel(svdf, "svdf", [relax.TensorType(out_shape, "int8"), relax.TensorType((states,), "int16")])


def sequence_kernel(symbol: str, args: list, out_shape: tuple[int, ...], params) -> SequenceKernel:
    """The kernel for marker `symbol` (tvm_tinyml.sequence_import); `params` is its int32 table."""
    if symbol == LSTM_SYMBOL:
        return lstm_kernel(args, out_shape, params)
    if symbol == SVDF_SYMBOL:
        return svdf_kernel(args, out_shape, params)
    raise ValueError(f"unknown sequence marker {symbol}")
