"""Small deterministic ONNX test models: a float CNN and its int8 QDQ quantization."""

from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

INPUT_SHAPE = (1, 3, 16, 16)
CHANNELS = 8
CLASSES = 10


def random_inputs(count: int, seed: int) -> list[np.ndarray]:
    """`count` float inputs for the CNN, uniform in [-1, 1)."""
    rng = np.random.default_rng(seed)
    return [rng.uniform(-1.0, 1.0, INPUT_SHAPE).astype(np.float32) for _ in range(count)]


def make_float_cnn(path_dir: str) -> str:
    """Conv3x3+Relu -> depthwise Conv3x3+Relu -> Conv1x1 -> residual Add -> GAP -> Flatten -> Gemm."""
    rng = np.random.default_rng(0)

    def weight(name: str, *shape: int, scale: float) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.normal(0.0, scale, shape).astype(np.float32), name)

    c = CHANNELS
    initializers = [
        weight("conv1_w", c, 3, 3, 3, scale=0.3),
        weight("conv1_b", c, scale=0.1),
        weight("dw_w", c, 1, 3, 3, scale=0.3),
        weight("dw_b", c, scale=0.1),
        weight("pw_w", c, c, 1, 1, scale=0.3),
        weight("pw_b", c, scale=0.1),
        weight("fc_w", c, CLASSES, scale=0.3),
        weight("fc_b", CLASSES, scale=0.1),
    ]
    same3x3 = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
    nodes = [
        helper.make_node("Conv", ["input", "conv1_w", "conv1_b"], ["conv1"], **same3x3),
        helper.make_node("Relu", ["conv1"], ["relu1"]),
        helper.make_node("Conv", ["relu1", "dw_w", "dw_b"], ["dw"], group=c, **same3x3),
        helper.make_node("Relu", ["dw"], ["relu2"]),
        helper.make_node("Conv", ["relu2", "pw_w", "pw_b"], ["pw"], kernel_shape=[1, 1]),
        helper.make_node("Add", ["relu1", "pw"], ["residual"]),
        helper.make_node("GlobalAveragePool", ["residual"], ["pool"]),
        helper.make_node("Flatten", ["pool"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes,
        "qdq_cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, INPUT_SHAPE)],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, (1, CLASSES))],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    os.makedirs(path_dir, exist_ok=True)
    path = os.path.join(path_dir, "cnn_float.onnx")
    onnx.save(model, path)
    return path


def make_qdq_cnn(path_dir: str) -> str:
    """Build the float CNN in `path_dir` and quantize it statically to int8 QDQ; return its path."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter(random_inputs(8, seed=1))

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self._batches, None)
            return None if batch is None else {"input": batch}

    float_path = make_float_cnn(path_dir)
    qdq_path = os.path.join(path_dir, "cnn_qdq.onnx")
    quantize_static(
        float_path,
        qdq_path,
        Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
    )
    return qdq_path
