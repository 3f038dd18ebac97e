"""A mutation fuzzer for the command line: corrupt models (bytes and structure, TFLite and ONNX) and
bad flag values, run each case through `tvm-tinyml`, and classify what came back.

The contract every case must keep: exit 0 with a bit-exact result, or a refusal that is exactly one
stderr line with exit 2 (3 for an internal error), never a traceback, a signal or a hang.
Cases run in a long-lived worker process (`CliWorker`) so that one that crashes or hangs is caught
and the worker restarted. Used by tests/test_input_fuzz.py and benchmarks/fuzz_inputs.py.
"""

from __future__ import annotations

import copy
import json
import multiprocessing
import os
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

ROOT = Path(__file__).resolve().parent.parent
TFLITE_SEEDS = [ROOT / "models" / "ad01_int8.tflite", ROOT / "models" / "external" / "tflm_hello_world_int8.tflite",
                ROOT / "models" / "external" / "tflm_micro_speech_quantized.tflite"]
CASE_TIMEOUT_SEC = 300.0

# Outcome classes.
CLEAN_ERROR, ACCEPTED, DEFECT = "clean error", "accepted and bit-exact", "defect"


@dataclass
class Case:
    """One fuzz case: a mutator's name, the model bytes it made (or None) and the CLI arguments;
    "{model}" in `argv` is replaced by the written model's path."""

    mutator: str
    model: bytes | None
    argv: list[str]
    suffix: str = ".tflite"
    expect_refusal: bool = False  # bad flag values must never be accepted


@dataclass
class Outcome:
    kind: str
    detail: str
    exit_code: int | None


# ---------------------------------------------------------------- running cases


def _serve(conn) -> None:
    """Worker loop: run `tvm_tinyml.cli.main(argv)` with fds 1 and 2 captured; reply (code, out, err)."""
    from tvm_tinyml.cli import main

    while True:
        try:
            argv = conn.recv()
        except EOFError:
            return
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            sys.stdout.flush(), sys.stderr.flush()
            saved = os.dup(1), os.dup(2)
            os.dup2(out.fileno(), 1), os.dup2(err.fileno(), 2)
            try:
                code = main(argv)
            except SystemExit as e:  # argparse's --help / --version
                code = e.code if isinstance(e.code, int) else 2
            except BaseException as e:  # noqa: BLE001 - must reach the parent as a defect
                import traceback

                traceback.print_exc()
                code = f"raised {type(e).__name__}"
            finally:
                sys.stdout.flush(), sys.stderr.flush()
                os.dup2(saved[0], 1), os.dup2(saved[1], 2)
                os.close(saved[0]), os.close(saved[1])
            out.seek(0), err.seek(0)
            conn.send((code, out.read().decode(errors="replace"), err.read().decode(errors="replace")))


class CliWorker:
    """A process that runs CLI invocations one at a time; restarted after a crash or a hang."""

    def __init__(self) -> None:
        self._proc = None
        self._start()

    def _start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child,), daemon=True)
        self._proc.start()
        child.close()

    def run(self, argv: list[str], timeout_sec: float = CASE_TIMEOUT_SEC) -> tuple:
        """(exit code or "signal N" / "hang", stdout, stderr)."""
        self._conn.send(argv)
        if self._conn.poll(timeout_sec):
            try:
                return self._conn.recv()
            except (EOFError, OSError):  # the worker died mid-case
                pass
        else:
            os.kill(self._proc.pid, signal.SIGKILL)
            self._proc.join()
            self._start()
            return "hang", "", ""
        self._proc.join()
        died = f"signal {-self._proc.exitcode}" if self._proc.exitcode and self._proc.exitcode < 0 else f"died {self._proc.exitcode}"
        self._start()
        return died, "", ""

    def close(self) -> None:
        self._conn.close()
        self._proc.join(timeout=10)
        if self._proc.is_alive():
            self._proc.kill()


def run_case(worker: CliWorker, case: Case, tmp: Path) -> Outcome:
    """Write the case's model, run its command, classify the result."""
    argv = list(case.argv)
    if case.model is not None:
        path = tmp / f"fuzz{case.suffix}"
        path.write_bytes(case.model)
        argv = [a.replace("{model}", str(path)) for a in argv]
    code, out, err = worker.run(argv)
    return classify(case, code, out, err)


def classify(case: Case, code, out: str, err: str) -> Outcome:
    err_lines = [line for line in err.splitlines() if line.strip()]
    if not isinstance(code, int):
        return Outcome(DEFECT, f"{code}: {err_lines[-1] if err_lines else ''}", None)
    if "Traceback" in err:
        return Outcome(DEFECT, f"traceback: {err_lines[-1]}", code)
    if code == 0:
        if case.expect_refusal:
            return Outcome(DEFECT, "bad flag accepted", code)
        record = _last_json(out)
        if record is not None and record.get("passed") is False:
            return Outcome(DEFECT, "accepted but mismatching", code)
        return Outcome(ACCEPTED, "", code)
    if code in (2, 3):
        if len(err_lines) != 1:
            return Outcome(DEFECT, f"{len(err_lines)} stderr lines: {' | '.join(err_lines[:3])}", code)
        if "--json" in case.argv:
            record = _last_json(out)
            if record is None or record.get("exit_code") != code or "error" not in record:
                return Outcome(DEFECT, "no JSON error object on stdout", code)
        return Outcome(CLEAN_ERROR if code == 2 else "internal error", err_lines[0], code)
    if code == 1:
        return Outcome(DEFECT, "accepted but mismatching", code)
    return Outcome(DEFECT, f"exit {code}: {err_lines[-1] if err_lines else ''}", code)


def _last_json(out: str) -> dict | None:
    lines = [line for line in out.splitlines() if line.strip()]
    try:
        record = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None


# ---------------------------------------------------------------- byte mutators


def bit_flips(data: bytes, rng: np.random.Generator) -> bytes:
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 9))):
        i = int(rng.integers(len(out)))
        out[i] ^= 1 << int(rng.integers(8))
    return bytes(out)


def truncation(data: bytes, rng: np.random.Generator) -> bytes:
    return data[: int(rng.integers(0, len(data)))]


def overwrite(data: bytes, rng: np.random.Generator) -> bytes:
    out = bytearray(data)
    start, length = int(rng.integers(len(out))), int(rng.integers(1, 64))
    out[start : start + length] = rng.integers(0, 256, min(length, len(out) - start)).astype(np.uint8).tobytes()
    return bytes(out)


def zero_fill(data: bytes, rng: np.random.Generator) -> bytes:
    out = bytearray(data)
    start, length = int(rng.integers(len(out))), int(rng.integers(1, 256))
    end = min(len(out), start + length)
    out[start:end] = bytes(end - start)
    return bytes(out)


def duplication(data: bytes, rng: np.random.Generator) -> bytes:
    start, length = int(rng.integers(len(data))), int(rng.integers(1, 256))
    chunk = data[start : start + length]
    at = int(rng.integers(len(data)))
    return data[:at] + chunk + data[at:]


BYTE_MUTATORS: dict[str, Callable] = {
    "bit flips": bit_flips, "truncation": truncation, "overwrite": overwrite, "zero fill": zero_fill, "duplication": duplication,
}


# ---------------------------------------------------------------- structured TFLite mutators


def _unpack(data: bytes):
    return schema.ModelT.InitFromPackedBuf(bytearray(data), 0)


def _pack(model) -> bytes:
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _is_constant(model, graph, index: int) -> bool:
    buf = graph.tensors[index].buffer
    return buf < len(model.buffers) and model.buffers[buf].data is not None and len(model.buffers[buf].data) > 0


def _activations(model, graph) -> list[int]:
    used = {t for op in graph.operators for t in list(op.inputs) + list(op.outputs) if t >= 0}
    return sorted(t for t in used if not _is_constant(model, graph, t))


def _structured(mutate: Callable) -> Callable:
    """A structured mutator: unpack the flatbuffer, let `mutate(model, graph, rng)` change it, repack."""

    def mutator(data: bytes, rng: np.random.Generator) -> bytes:
        model = _unpack(data)
        mutate(model, model.subgraphs[0], rng)
        return _pack(model)

    mutator.__doc__ = mutate.__doc__
    return mutator


@_structured
def bad_shape(model, graph, rng):
    """A tensor dimension set to -1, 0 or a huge value."""
    tensor = graph.tensors[int(rng.choice(_activations(model, graph)))]
    axis = int(rng.integers(len(tensor.shape))) if len(tensor.shape) else 0
    shape = list(tensor.shape) or [1]
    shape[axis] = int(rng.choice([-1, 0, 1 << 20, (1 << 31) - 1]))
    tensor.shape = shape


@_structured
def bad_scale(model, graph, rng):
    """A quantization scale set to 0, negative, NaN or infinity."""
    quantized = [t for t in graph.tensors if t.quantization is not None and t.quantization.scale is not None and len(t.quantization.scale)]
    tensor = quantized[int(rng.integers(len(quantized)))]
    scales = list(tensor.quantization.scale)
    scales[int(rng.integers(len(scales)))] = float(rng.choice([0.0, -abs(scales[0]), float("nan"), float("inf")]))
    tensor.quantization.scale = scales


@_structured
def bad_zero_point(model, graph, rng):
    """An activation's zero point outside the int8 range."""
    tensor = graph.tensors[int(rng.choice(_activations(model, graph)))]
    if tensor.quantization is not None and tensor.quantization.zeroPoint is not None and len(tensor.quantization.zeroPoint):
        tensor.quantization.zeroPoint = [int(rng.choice([-129, 128, 1000, -70000]))] * len(tensor.quantization.zeroPoint)


@_structured
def short_buffer(model, graph, rng):
    """A constant's data cut shorter than its shape needs."""
    constants = [t for t in graph.tensors if t.buffer < len(model.buffers) and model.buffers[t.buffer].data is not None and len(model.buffers[t.buffer].data) > 1]
    buf = model.buffers[constants[int(rng.integers(len(constants)))].buffer]
    buf.data = buf.data[: int(rng.integers(1, len(buf.data)))]


@_structured
def activation_made_constant(model, graph, rng):
    """An operator's output (an activation) given constant data."""
    op = graph.operators[int(rng.integers(len(graph.operators)))]
    tensor = graph.tensors[op.outputs[0]]
    size = int(np.prod(tensor.shape)) * (4 if tensor.type == schema.TensorType.INT32 else 1)
    buf = schema.BufferT()
    buf.data = np.zeros(max(size, 1), np.uint8)
    model.buffers.append(buf)
    tensor.buffer = len(model.buffers) - 1


@_structured
def operators_swapped(model, graph, rng):
    """Two operators exchanged, so one reads a tensor before it is written."""
    if len(graph.operators) > 1:
        i = int(rng.integers(len(graph.operators) - 1))
        graph.operators[i], graph.operators[i + 1] = graph.operators[i + 1], graph.operators[i]


@_structured
def tensor_index_out_of_range(model, graph, rng):
    """An operator input pointing past the tensor table."""
    op = graph.operators[int(rng.integers(len(graph.operators)))]
    inputs = list(op.inputs)
    inputs[int(rng.integers(len(inputs)))] = len(graph.tensors) + int(rng.integers(1, 100))
    op.inputs = inputs


@_structured
def output_from_constant(model, graph, rng):
    """A graph output redirected to a constant tensor."""
    constants = [i for i in range(len(graph.tensors)) if _is_constant(model, graph, i)]
    graph.outputs = [int(rng.choice(constants))]


@_structured
def per_channel_length(model, graph, rng):
    """A per-channel scale array one entry short."""
    tensors = [t for t in graph.tensors if t.quantization is not None and t.quantization.scale is not None and len(t.quantization.scale) > 1]
    if tensors:
        q = tensors[int(rng.integers(len(tensors)))].quantization
        q.scale, q.zeroPoint = list(q.scale)[:-1], list(q.zeroPoint)[:-1]


@_structured
def unsupported_type(model, graph, rng):
    """An activation typed as a string or a complex number."""
    graph.tensors[int(rng.choice(_activations(model, graph)))].type = int(rng.choice([schema.TensorType.STRING, schema.TensorType.COMPLEX64]))


@_structured
def no_outputs(model, graph, rng):
    """The graph's output list emptied."""
    graph.outputs = []


@_structured
def bad_opcode(model, graph, rng):
    """An operator whose opcode index names no operator code."""
    graph.operators[int(rng.integers(len(graph.operators)))].opcodeIndex = len(model.operatorCodes) + 3


TFLITE_MUTATORS: dict[str, Callable] = {
    "shape": bad_shape, "scale": bad_scale, "zero point": bad_zero_point, "short buffer": short_buffer,
    "constant activation": activation_made_constant, "operator order": operators_swapped,
    "tensor index": tensor_index_out_of_range, "constant output": output_from_constant,
    "per-channel length": per_channel_length, "tensor type": unsupported_type, "no outputs": no_outputs,
    "opcode": bad_opcode,
}


# ---------------------------------------------------------------- ONNX mutators


def onnx_seed() -> bytes:
    """A small QDQ ONNX model (conv, relu, global average pool) quantized by hand-written QDQ nodes."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    init = [
        numpy_helper.from_array(np.float32(0.05), "s_x"), numpy_helper.from_array(np.int8(-3), "z_x"),
        numpy_helper.from_array(rng.integers(-100, 100, (4, 3, 3, 3)).astype(np.int8), "w_q"),
        numpy_helper.from_array(np.full(4, 0.01, np.float32), "s_w"), numpy_helper.from_array(np.zeros(4, np.int8), "z_w"),
        numpy_helper.from_array(np.float32(0.08), "s_y"), numpy_helper.from_array(np.int8(5), "z_y"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s_x", "z_x"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "s_x", "z_x"], ["xd"]),
        helper.make_node("DequantizeLinear", ["w_q", "s_w", "z_w"], ["wd"], axis=0),
        helper.make_node("Conv", ["xd", "wd"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("QuantizeLinear", ["c", "s_y", "z_y"], ["cq"]),
        helper.make_node("DequantizeLinear", ["cq", "s_y", "z_y"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "fuzz_seed", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


def _onnx_structured(mutate: Callable) -> Callable:
    def mutator(data: bytes, rng: np.random.Generator) -> bytes:
        model = onnx.load_from_string(data)
        mutate(model, rng)
        return model.SerializeToString()

    mutator.__doc__ = mutate.__doc__
    return mutator


@_onnx_structured
def onnx_no_outputs(model, rng):
    """The graph's outputs removed."""
    del model.graph.output[:]


@_onnx_structured
def onnx_bad_scale(model, rng):
    """A QDQ scale set to 0, negative or NaN."""
    from onnx import numpy_helper

    scales = [i for i, t in enumerate(model.graph.initializer) if t.name.startswith("s_")]
    index = int(rng.choice(scales))
    old = numpy_helper.to_array(model.graph.initializer[index])
    new = np.full_like(old, float(rng.choice([0.0, -0.05, float("nan")])))
    model.graph.initializer[index].CopyFrom(numpy_helper.from_array(new, model.graph.initializer[index].name))


@_onnx_structured
def onnx_node_order(model, rng):
    """The nodes reversed (no longer in topological order)."""
    nodes = list(model.graph.node)[::-1]
    del model.graph.node[:]
    model.graph.node.extend(copy.deepcopy(nodes))


@_onnx_structured
def onnx_initializer_dims(model, rng):
    """An initializer whose declared dims disagree with its data."""
    weights = [t for t in model.graph.initializer if len(t.dims) > 1]
    weights[0].dims[0] += int(rng.integers(1, 4))


ONNX_MUTATORS: dict[str, Callable] = {
    "onnx outputs": onnx_no_outputs, "onnx scale": onnx_bad_scale, "onnx node order": onnx_node_order,
    "onnx initializer dims": onnx_initializer_dims,
}


# ---------------------------------------------------------------- bad flag values

BAD_FLAGS: list[list[str]] = [
    ["verify", "{model}", "--inputs", "0"], ["verify", "{model}", "--inputs", "-1"], ["verify", "{model}", "--inputs", "x"],
    ["verify", "{model}", "--seed", "-3"], ["compile", "{model}", "--patch", "1,2x0", "-o", "{tmp}/o"],
    ["compile", "{model}", "--patch", "0,2", "-o", "{tmp}/o"], ["compile", "{model}", "--patch", "banana", "-o", "{tmp}/o"],
    ["compile", "{model}", "--patch-mac-overhead", "-1", "-o", "{tmp}/o"],
    ["compile", "{model}", "--patch-mac-overhead", "nan", "-o", "{tmp}/o"], ["compile", "{model}", "-o", ""],
    ["compile", "{model}", "-o", "/proc/tvm-tinyml/out"], ["memory", "{model}", "--plot", "/proc/tvm-tinyml/x.png"],
    ["compile", "{model}", "--target", "stm32f999", "-o", "{tmp}/o"], ["run", "{model}", "--board", "esp32"],
    ["tune", "{model}", "--board", "qemu-m7", "--trials", "-5", "--log", "{tmp}/t.jsonl"],
    ["verify", "{model}", "--tuning-log", "{tmp}/random.log"], ["verify", "{model}", "--tuning-log", "{tmp}/array.log"],
    ["verify", "{model}", "--tuning-log", "{tmp}/truncated.log"], ["verify", "{model}", "--tuning-log", "{tmp}/badconfig.log"],
    ["verify", "{model}", "--tuning-log", "{tmp}/missing.log"], ["verify", "--json"], ["frobnicate"],
]


def write_bad_logs(tmp: Path, rng: np.random.Generator) -> None:
    """The tuning logs BAD_FLAGS names: random bytes, a JSON array, truncated JSON, non-dict configs."""
    (tmp / "random.log").write_bytes(rng.integers(0, 256, 300).astype(np.uint8).tobytes())
    (tmp / "array.log").write_text("[1, 2, 3]\n")
    (tmp / "truncated.log").write_text('{"workload": "w", "config": {"a": 1\n{"workload": "w", "config": {}}\n')
    (tmp / "badconfig.log").write_text('{"workload": "w", "config": [1, 2]}\n')


# ---------------------------------------------------------------- case generation


def cases(count: int, seed: int, tmp: Path) -> list[Case]:
    """`count` cases drawn from every mutator family with a fixed seed."""
    rng = np.random.default_rng(seed)
    write_bad_logs(tmp, rng)
    seeds = [p.read_bytes() for p in TFLITE_SEEDS]
    onnx_model = onnx_seed()
    families = [("byte", BYTE_MUTATORS), ("tflite", TFLITE_MUTATORS), ("onnx", ONNX_MUTATORS), ("flags", None)]
    weights = np.array([0.35, 0.4, 0.12, 0.13])
    out = []
    for k in range(count):
        family, mutators = families[int(rng.choice(len(families), p=weights))]
        if family == "flags":
            argv = [a.replace("{tmp}", str(tmp)) for a in BAD_FLAGS[k % len(BAD_FLAGS)]]
            out.append(Case("flag value", seeds[0], argv, expect_refusal=True))
            continue
        name = list(mutators)[int(rng.integers(len(mutators)))]
        onnx_family = family == "onnx" or (family == "byte" and rng.random() < 0.2)
        source = onnx_model if onnx_family else seeds[int(rng.integers(len(seeds)))]
        try:
            data = mutators[name](source, rng)
        except (IndexError, ValueError):  # a mutator that found nothing to change in this seed
            data = bit_flips(source, rng)
            name = "bit flips"
        command = ["verify", "{model}", "--inputs", "2", "--json"] if k % 3 else ["compile", "{model}", "-o", str(tmp / f"c{k}"), "--json"]
        out.append(Case(f"{'onnx ' if onnx_family and family == 'byte' else ''}{name}", data, command, ".onnx" if onnx_family else ".tflite"))
    return out
