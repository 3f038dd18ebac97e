"""Instructions per MAC of every depthwise layer of the bundled vww_96 and MCUNet models.

    python benchmarks/depthwise_layers.py [--models vww_96_int8 tinyengine_vww] [--board qemu-m7]

Each DEPTHWISE_CONV_2D of a model is cut out with its own tensors (weights, bias, quantization,
options) into a one-operator .tflite and run on the emulated board (bit-exact check against
TFLite Micro included); instr/MAC is the run's instructions (the whole one-operator model: its
fixed cost is a few tens of instructions, not subtracted) over the layer's MACs. `kind` says
whether the layer runs in place (`depthwise_conv2d_inplace`) or streaming.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
from pathlib import Path

import flatbuffers
import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

import tvm_tinyml
from tvm_tinyml.run import run_on_board

MODELS = Path(__file__).resolve().parent.parent / "models"
HEADER = ("| model | op | input | kernel | stride | pad | kind | MACs | instructions | instr/MAC | bit-exact |\n"
          "|---|---:|---|---|---:|---|---|---:|---:|---:|---|")


def depthwise_layers(path: Path) -> list[tuple[int, bytes]]:
    """(operator index, one-operator model) for every DEPTHWISE_CONV_2D of the model at `path`."""
    model = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    graph = model.subgraphs[0]
    layers = []
    for index, op in enumerate(graph.operators):
        code = model.operatorCodes[op.opcodeIndex]
        if max(code.builtinCode, code.deprecatedBuiltinCode) != schema.BuiltinOperator.DEPTHWISE_CONV_2D:
            continue
        tensors = [copy.deepcopy(graph.tensors[i]) for i in op.inputs]
        tensors.append(copy.deepcopy(graph.tensors[op.outputs[0]]))
        buffers = [schema.BufferT()]
        for t in tensors:
            data = model.buffers[t.buffer].data if t.buffer else None
            if data is not None and len(data):
                buffers.append(copy.deepcopy(model.buffers[t.buffer]))
                t.buffer = len(buffers) - 1
            else:
                t.buffer = 0
        single = schema.ModelT()
        single.version, single.description, single.buffers = 3, f"{path.stem} op {index}", buffers
        oc = copy.deepcopy(code)
        single.operatorCodes = [oc]
        new_op = copy.deepcopy(op)
        new_op.opcodeIndex, new_op.inputs, new_op.outputs = 0, list(range(len(op.inputs))), [len(op.inputs)]
        sg = schema.SubGraphT()
        sg.tensors, sg.operators, sg.name = tensors, [new_op], "main"
        sg.inputs, sg.outputs = [0], [len(op.inputs)]
        single.subgraphs = [sg]
        fbb = flatbuffers.Builder(1024)
        fbb.Finish(single.Pack(fbb), file_identifier=b"TFL3")
        layers.append((index, bytes(fbb.Output())))
    return layers


def describe(tflite: bytes) -> dict:
    model = schema.ModelT.InitFromPackedBuf(tflite, 0)
    graph = model.subgraphs[0]
    op = graph.operators[0]
    x, w, y = (graph.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
    opts = op.builtinOptions
    _, kh, kw, c = w.shape
    _, oh, ow, _ = y.shape
    return {"input": "x".join(str(d) for d in x.shape[1:]), "kernel": f"{kh}x{kw}", "stride": opts.strideH,
            "pad": "same" if opts.padding == schema.Padding.SAME else "valid", "macs": int(oh * ow * c * kh * kw)}


def row(name: str, index: int, tflite: bytes, board: str, inputs: int) -> str:
    info = describe(tflite)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}_op{index}.tflite"
        path.write_bytes(tflite)
        layers = tvm_tinyml.build(str(path), target="host").metadata["layers"]
        kind = "in place" if any("inplace" in str(layer) for layer in layers) else "streaming"
        r = run_on_board(str(path), board, inputs=inputs, timeout_sec=600)
    verdict = "yes" if r.bit_exact else f"max diff {r.max_abs_diff}"
    return (f"| {name} | {index} | {info['input']} | {info['kernel']} | {info['stride']} | {info['pad']} | {kind} | "
            f"{info['macs']:,} | {r.instructions:,} | {r.instructions / info['macs']:.2f} | {verdict} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["vww_96_int8", "tinyengine_vww"])
    parser.add_argument("--board", default="qemu-m7")
    parser.add_argument("--inputs", type=int, default=1)
    args = parser.parse_args()
    print(HEADER)
    for name in args.models:
        for index, tflite in depthwise_layers(MODELS / f"{name}.tflite"):
            print(row(name, index, tflite, args.board, args.inputs), flush=True)


if __name__ == "__main__":
    main()
