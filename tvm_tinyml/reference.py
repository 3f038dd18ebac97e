"""Reference runtimes (TFLite Micro, onnxruntime) and model IO descriptions.

Used only by verification, tests and benchmarks, never by the build path.
The heavy runtimes are imported lazily inside the functions that need them.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

import numpy as np

from tvm_tinyml.progress import run_with_progress

_ARENA_SIZE = 4 * 1024 * 1024


@dataclass(frozen=True)
class TensorInfo:
    """One model input or output; scale/zero_point are None when not (per-tensor) quantized."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    scale: float | None
    zero_point: int | None


def tflite_io(model_path: str) -> tuple[list[TensorInfo], list[TensorInfo]]:
    """Describe the inputs and outputs of a .tflite model's main subgraph."""
    import tflite

    with open(model_path, "rb") as f:
        model = tflite.Model.GetRootAsModel(f.read(), 0)
    graph = model.Subgraphs(0)
    dtypes = {
        getattr(tflite.TensorType, name): np.dtype(name.lower())
        for name in ("INT8", "UINT8", "INT16", "INT32", "INT64", "FLOAT32", "BOOL")
    }

    def info(index: int) -> TensorInfo:
        tensor = graph.Tensors(index)
        quant = tensor.Quantization()
        scale = zero_point = None
        if quant is not None and quant.ScaleLength() == 1:
            scale = float(quant.Scale(0))
            zero_point = int(quant.ZeroPoint(0)) if quant.ZeroPointLength() else 0
        return TensorInfo(
            name=tensor.Name().decode(),
            shape=tuple(int(d) for d in tensor.ShapeAsNumpy()),
            dtype=dtypes[tensor.Type()],
            scale=scale,
            zero_point=zero_point,
        )

    inputs = [info(graph.Inputs(i)) for i in range(graph.InputsLength())]
    outputs = [info(graph.Outputs(i)) for i in range(graph.OutputsLength())]
    return inputs, outputs


def onnx_io(model_path: str) -> tuple[list[TensorInfo], list[TensorInfo]]:
    """Describe the graph inputs and outputs of an ONNX model.

    For a QDQ model the scale/zero point are those of the QuantizeLinear that consumes
    an input, or of the DequantizeLinear that produces an output (None otherwise).
    """
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(model_path).graph
    consts = {init.name: numpy_helper.to_array(init) for init in graph.initializer}

    def qparams(op_type: str, name: str, port: str) -> tuple[float | None, int | None]:
        for node in graph.node:
            names = node.input if port == "input" else node.output
            if node.op_type == op_type and names and names[0] == name:
                scale = consts.get(node.input[1])
                if scale is None or scale.size != 1:
                    return None, None
                zp = consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
                return float(scale.reshape(())), int(zp.reshape(())) if zp is not None else 0
        return None, None

    def info(value: onnx.ValueInfoProto, op_type: str, port: str) -> TensorInfo:
        ttype = value.type.tensor_type
        scale, zero_point = qparams(op_type, value.name, port)
        return TensorInfo(
            name=value.name,
            shape=tuple(d.dim_value if d.HasField("dim_value") else -1 for d in ttype.shape.dim),
            dtype=np.dtype(onnx.helper.tensor_dtype_to_np_dtype(ttype.elem_type)),
            scale=scale,
            zero_point=zero_point,
        )

    inputs = [info(v, "QuantizeLinear", "input") for v in graph.input if v.name not in consts]
    outputs = [info(v, "DequantizeLinear", "output") for v in graph.output]
    return inputs, outputs


def _tflm_interpreter(model_path: str):
    from tflite_micro.python.tflite_micro import runtime

    return runtime.Interpreter.from_file(model_path, arena_size=_ARENA_SIZE)


def _tflm_invoke(interpreter, num_outputs: int, inputs: list[np.ndarray]) -> list[np.ndarray]:
    for index, array in enumerate(inputs):
        interpreter.set_input(np.ascontiguousarray(array), index)
    interpreter.invoke()
    return [np.array(interpreter.get_output(i), copy=True) for i in range(num_outputs)]


def run_tflm(model_path: str, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Run TFLite Micro once; one array per model input, outputs in model order."""
    return run_tflm_batch(model_path, [inputs])[0]


def run_tflm_batch(model_path: str, input_sets: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
    """Run TFLite Micro on several input sets with one interpreter (reset between runs)."""
    num_outputs = len(tflite_io(model_path)[1])
    interpreter = _tflm_interpreter(model_path)
    results = []
    for inputs in input_sets:
        results.append(_tflm_invoke(interpreter, num_outputs, inputs))
        interpreter.reset()
    return results


_ARENA_SCRIPT = """
import sys
import numpy as np
from tflite_micro.python.tflite_micro import runtime
interp = runtime.Interpreter.from_file(
    sys.argv[1], arena_size=int(sys.argv[2]),
    intrepreter_config=runtime.InterpreterConfig.kAllocationRecording)
interp.invoke()
interp.print_allocations()
"""


def tflm_arena_bytes(model_path: str) -> dict[str, int]:
    """TFLM's arena usage: total, head (activations) and tail (persistent data), in bytes.

    Runs in a subprocess because the figures are printed to the C-level stderr.
    """
    proc = run_with_progress([sys.executable, "-c", _ARENA_SCRIPT, model_path, str(_ARENA_SIZE)], "TFLM arena", 120)
    found = dict(re.findall(r"Arena allocation (total|head|tail) (\d+) bytes", proc.stderr))
    if proc.returncode != 0 or set(found) != {"total", "head", "tail"}:
        raise RuntimeError(
            f"could not measure the TFLM arena of {model_path} (exit {proc.returncode}):\n"
            f"{proc.stderr[-2000:]}"
        )
    return {key: int(value) for key, value in found.items()}


def run_onnxruntime(model_path: str, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Run an ONNX model once on the CPU execution provider, single-threaded, with all graph
    optimizations disabled: onnxruntime then executes a QDQ graph node by node in float, the exact
    semantics of the model. Its optimized int8 kernels may saturate intermediate sums on x86 CPUs
    without VNNI, so they are no reference."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
    feeds = {meta.name: array for meta, array in zip(session.get_inputs(), inputs)}
    return [np.array(out, copy=True) for out in session.run(None, feeds)]
