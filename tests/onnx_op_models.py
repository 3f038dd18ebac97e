"""Single-op and small multi-op ONNX test models, built in float with onnx.helper and
quantized to int8 by onnxruntime.quantization.quantize_static (QDQ or QOperator format)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


@dataclass
class OpCase:
    """A float ONNX graph: `nodes` from graph input "x" (and "y" if `shapes` has two) to "out"."""

    name: str
    nodes: list
    shapes: list  # input shapes
    out_shape: tuple | None = None
    weights: dict = field(default_factory=dict)  # initializer name -> float array
    opset: int = 13

    def model(self) -> onnx.ModelProto:
        names = ["x", "y", "z"][: len(self.shapes)]
        inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in zip(names, self.shapes)]
        out = helper.make_tensor_value_info("out", TensorProto.FLOAT, self.out_shape)
        inits = [numpy_helper.from_array(np.asarray(v, np.float32) if np.asarray(v).dtype.kind == "f" else np.asarray(v), k)
                 for k, v in self.weights.items()]
        graph = helper.make_graph(self.nodes, self.name, inputs, [out], inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)])
        model.ir_version = 8
        return onnx.shape_inference.infer_shapes(model)


def node(op: str, inputs: list, outputs: list | None = None, **attrs):
    return helper.make_node(op, inputs, outputs or ["out"], **attrs)


def weight(seed: int, *shape: int, scale: float = 0.3) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, scale, shape).astype(np.float32)


def calibration(shapes: list, count: int = 8, seed: int = 1) -> list[dict]:
    rng = np.random.default_rng(seed)
    names = ["x", "y", "z"]
    return [{n: rng.uniform(-1.0, 1.0, s).astype(np.float32) for n, s in zip(names, shapes)} for _ in range(count)]


def quantize(case: OpCase, directory: str, fmt: str = "qdq", per_channel: bool = False) -> str:
    """Write `case` in float, quantize it statically to int8 (`fmt` "qdq" or "qoperator"); return the path."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter(calibration(case.shapes))

        def get_next(self):
            return next(self._batches, None)

    logging.getLogger().setLevel(logging.ERROR)  # quantize_static warns about pre-processing
    os.makedirs(directory, exist_ok=True)
    float_path = os.path.join(directory, f"{case.name}_float.onnx")
    onnx.save(case.model(), float_path)
    path = os.path.join(directory, f"{case.name}_{fmt}.onnx")
    quantize_static(
        float_path, path, Reader(),
        quant_format=QuantFormat.QDQ if fmt == "qdq" else QuantFormat.QOperator,
        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=per_channel,
        op_types_to_quantize=sorted({n.op_type for n in case.nodes}),
        extra_options={"ActivationSymmetric": False, "WeightSymmetric": True, "ForceQuantizeNoInputCheck": True},
    )
    return path
