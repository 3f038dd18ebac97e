"""Work a model does, for reports: multiply-accumulates per inference.

MACs are counted from the .tflite file as MLPerf Tiny does: CONV_2D (output elements x kernel
height x kernel width x input channels), DEPTHWISE_CONV_2D (output elements x kernel height x
kernel width) and FULLY_CONNECTED (output elements x input features); pooling, elementwise ops
and softmax count 0. Like `reference.py`, used by reports and benchmarks, never by the build.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def count_macs(model_path: str | Path) -> int | None:
    """MACs of one inference of a .tflite model; None for other formats."""
    import tflite

    data = Path(model_path).read_bytes()
    if data[4:8] != b"TFL3":
        return None
    model = tflite.Model.GetRootAsModel(data, 0)
    graph = model.Subgraphs(0)
    op = tflite.BuiltinOperator
    total = 0
    for i in range(graph.OperatorsLength()):
        operator = graph.Operators(i)
        code = model.OperatorCodes(operator.OpcodeIndex())
        kind = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if kind not in (op.CONV_2D, op.DEPTHWISE_CONV_2D, op.FULLY_CONNECTED):
            continue
        outputs = int(np.prod(graph.Tensors(operator.Outputs(0)).ShapeAsNumpy()))
        weights = graph.Tensors(operator.Inputs(1)).ShapeAsNumpy()
        if kind == op.CONV_2D:
            total += outputs * int(weights[1] * weights[2] * weights[3])
        elif kind == op.DEPTHWISE_CONV_2D:
            total += outputs * int(weights[1] * weights[2])
        else:
            total += outputs * int(weights[-1])
    return total
