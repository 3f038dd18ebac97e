"""Multiply-accumulate counts of a compiled graph, as MLPerf Tiny counts them."""

from __future__ import annotations

import numpy as np

from memory_planner import Graph, OpCall


def op_macs(graph: Graph, op: OpCall) -> int:
    """Multiply-accumulates of one op, counted as MLPerf Tiny does: convolutions and dense layers
    only (output elements x reduction length), plus an LSTM's gate FCs (as dense layers)."""
    outputs = int(np.prod(graph.tensors[op.outputs[0]].shape))
    weight = graph.tensors[op.inputs[1]].shape if len(op.inputs) > 1 else ()
    if op.op == "conv2d":
        return outputs * int(np.prod(weight[:3]))  # HWIO: kh * kw * ci
    if op.op.startswith("depthwise_conv2d"):
        return outputs * int(np.prod(weight[:2]))  # HWC: kh * kw
    if op.op == "dense":
        return outputs * int(weight[1])  # [N, K]
    if op.op == "unidirectional_sequence_lstm":  # sequence family: 4 gates x (input + recurrent FC) per step
        state, inputs, recurrent = weight[1], weight[2], graph.tensors[op.inputs[2]].shape[2]
        return outputs // int(state) * 4 * int(state) * int(inputs + recurrent)
    return 0


def model_macs(graph: Graph) -> int:
    """Multiply-accumulates per inference of the whole graph."""
    return sum(op_macs(graph, op) for op in graph.ops)
