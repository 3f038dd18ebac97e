"""Write the model's C source and header: weights, kernels, and the AOT-style entry.

The entry follows TFLite Micro's spirit: every activation, the inputs and the outputs live in
one caller-provided arena at offsets fixed by the memory plan.

    int8_t *<name>_input(uint8_t *arena, int i);
    const int8_t *<name>_output(const uint8_t *arena, int i);
    int <name>_run(uint8_t *arena);
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from memory_planner import Graph, Plan
from schedules.dispatch import config_for, schedule_for
from schedules.qnn_sequence import HEADERS as SEQUENCE_HEADERS
from tvm_tinyml.codegen.kernel_c import CKernel, ctype, emit_kernel
from tvm_tinyml.codegen.patch_loop import PatchLoops
from tvm_tinyml.lower import Lowered
from tvm_tinyml.macs import op_macs

RUNTIME_HEADER = "tinyml_math.h"
SIMD_HEADERS = ("tinyml_simd.h", "tinyml_simd_conv.h", "tinyml_simd_dw.h")  # inlined when a kernel uses them
RUNTIME_DIR = Path(__file__).parent / "runtime"
# Before each layer the entry calls TINYML_LAYER(mark): nothing, unless the model is built for
# `tvm-tinyml profile` (or a user's own profiler) with -DTINYML_PROFILE_LAYERS.
LAYER_MARK_MACRO = """/* Layer marks: built with -DTINYML_PROFILE_LAYERS, the entry calls tinyml_layer_mark(n) (which
 * the application defines) before the n-th layer it runs; otherwise the marks compile to nothing. */
#ifdef TINYML_PROFILE_LAYERS
void tinyml_layer_mark(uint32_t mark);
#define TINYML_LAYER(mark) tinyml_layer_mark(mark)
#else
#define TINYML_LAYER(mark) ((void)0)
#endif
"""


def simd_source() -> str:
    """The SIMD micro-kernel headers as one text to inline into a C file (their own includes dropped)."""
    parts = []
    for header in SIMD_HEADERS:
        text = (RUNTIME_DIR / header).read_text()
        parts.append(f"/* ---- {header} ---- */\n" + text.replace('#include "tinyml_simd.h"\n', ""))
    return "\n".join(parts)


def kernel_headers_source(graph: Graph) -> list[str]:
    """The runtime headers of the C micro-kernels the graph's kernels call (sequence family),
    inlined once each."""
    headers = sorted({SEQUENCE_HEADERS[op.op] for op in graph.ops if op.op in SEQUENCE_HEADERS})
    return [f"/* ---- {header} ---- */\n" + (RUNTIME_DIR / header).read_text() for header in headers]


@dataclass(frozen=True)
class IOQuant:
    """Scale and zero point of a model input or output (None for float tensors)."""

    scale: float | None
    zero_point: int | None


@dataclass(frozen=True)
class ModelSources:
    """Generated files: name -> text."""

    files: dict[str, str]
    weights_bytes: int  # const data written to flash (weights in the layouts the kernels use, tables)
    kernel_stack_bytes: int  # the largest stack scratch (local arrays) of any kernel
    layers: list[dict]  # per layer mark, in execution order: what runs until the next mark (profile)


def _literal(value) -> str:
    """An exact C literal: integers as is, float32 as the shortest repr that round-trips."""
    return f"{float(value)!r}f" if isinstance(value, np.floating) else str(int(value))


def _array(name: str, data: np.ndarray) -> str:
    values = data.reshape(-1)
    rows = [", ".join(_literal(v) for v in values[i : i + 24]) for i in range(0, len(values), 24)]
    body = ",\n  ".join(rows)
    return f"static const {ctype(str(data.dtype))} {name}[{len(values)}] __attribute__((aligned(4))) = {{\n  {body}\n}};\n"


def _pointer(graph: Graph, plan: Plan, name: str, constant_names: dict[str, str], writable: bool) -> str:
    tensor = graph.tensors[name]
    if tensor.const:
        return constant_names[name]
    qualifier = "" if writable else "const "
    offset = plan.offsets[graph.storage(name)]
    return f"({qualifier}{ctype(tensor.dtype)} *)(arena + {offset})"


def _io_macros(prefix: str, kind: str, graph: Graph, plan: Plan, names: list[str], quant: list[IOQuant]) -> list[str]:
    lines = [f"#define {prefix}_NUM_{kind}S {len(names)}"]
    for i, (name, q) in enumerate(zip(names, quant)):
        tensor = graph.tensors[name]
        tag = f"{prefix}_{kind}{i}"
        shape = ", ".join(str(d) for d in tensor.shape)
        lines += [
            f"#define {tag}_OFFSET {plan.offsets[graph.storage(name)]}",
            f"#define {tag}_BYTES {tensor.nbytes}",
            f"#define {tag}_RANK {len(tensor.shape)}",
            f"#define {tag}_SHAPE {{{shape}}}",
        ]
        if q.scale is not None:
            lines += [f"#define {tag}_SCALE {float(q.scale)!r}f", f"#define {tag}_ZERO_POINT {q.zero_point}"]
    return lines


def generate(name: str, lowered: Lowered, plan: Plan, inputs: list[IOQuant], outputs: list[IOQuant]) -> ModelSources:
    """C source and header for model `name` (a C identifier)."""
    graph = lowered.graph
    prefix = name.upper()
    constant_names = {c: f"{name}_{c}" for c in lowered.constants}
    kernels: dict[str, CKernel] = {}
    scheduled: dict = {}
    relayout: dict = {}
    for op in graph.ops:
        if op.kernel not in kernels:
            scheduled[op.kernel] = schedule_for(lowered.kernels[op.kernel])
            kernels[op.kernel] = emit_kernel(scheduled[op.kernel].func, f"{name}_{op.kernel}", len(op.outputs))
        for index, transform in scheduled[op.kernel].transforms.items():  # weight layouts the schedule wants
            relayout[op.inputs[index]] = transform

    source = [f'/* Generated by tvm-tinyml for model "{name}". Do not edit. */', f'#include "{name}.h"', "", LAYER_MARK_MACRO]
    if any(s.templated for s in scheduled.values()):
        source += [simd_source()]
    source += kernel_headers_source(graph)
    source += ["/* ---- weights (flash) ---- */"]
    loops = PatchLoops(name, graph, plan, constant_names, lowered.constants)
    weights = {c: relayout[c](data) if c in relayout else data for c, data in lowered.constants.items() if c not in loops.loop_constants}
    source += [_array(constant_names[c], data) for c, data in weights.items()]
    source += ["/* ---- kernels ---- */"]
    layers: dict[str, list[str]] = {}
    for index, op in enumerate(graph.ops):
        layers.setdefault(op.kernel, [op.op]).append(f"#{index}")
    source += [k.source(f"{layers[kname][0]}, used by layers {' '.join(layers[kname][1:])}") for kname, k in kernels.items()]

    def offsets_table(kind: str, names: list[str]) -> str:
        values = ", ".join(str(plan.offsets[graph.storage(n)]) for n in names)
        return f"static const uint32_t {name}_{kind}_offsets[{len(names)}] = {{{values}}};"

    source += [
        "/* ---- entry ---- */",
        offsets_table("input", graph.inputs),
        offsets_table("output", graph.outputs),
        "",
        f"int8_t *{name}_input(uint8_t *arena, int i) {{ return (int8_t *)(arena + {name}_input_offsets[i]); }}",
        "",
        f"const int8_t *{name}_output(const uint8_t *arena, int i) {{ return (const int8_t *)(arena + {name}_output_offsets[i]); }}",
        "",
        f"int {name}_run(uint8_t *arena) {{",
    ]
    if not graph.ops:
        source.append("  (void)arena; /* the model only reinterprets its input */")
    marks: list[dict] = []
    for position, index in enumerate(plan.order):
        if loops.covers(position):  # patch-based inference: one loop over the patches
            lines = loops.lines(position, kernels)
            if lines:
                marks.append(_patch_mark(graph, plan, loops, position))
                source += [f"  TINYML_LAYER({len(marks) - 1});"] + lines
            continue
        op = graph.ops[index]
        args = [_pointer(graph, plan, t, constant_names, False) for t in op.inputs]
        args += [_pointer(graph, plan, t, constant_names, True) for t in op.outputs]
        marks.append(_layer_mark(graph, op, index, kernels[op.kernel].name, config_for(lowered.kernels[op.kernel])))
        source.append(f"  /* layer {index}: {op.op} */")
        source.append(f"  TINYML_LAYER({len(marks) - 1});")
        source.append(f"  {kernels[op.kernel].name}({', '.join(args)});")
    source += ["  return 0;", "}", ""]

    guard = f"{prefix}_H_"
    header = [
        f'/* Generated by tvm-tinyml for model "{name}". */',
        f"#ifndef {guard}",
        f"#define {guard}",
        "#include <stdint.h>",
        f'#include "{RUNTIME_HEADER}" /* tinyml_quantize_f32 / tinyml_dequantize_i8 convert float data */',
        "",
        "/* One arena holds inputs, outputs and every activation; align it to 16 bytes. */",
        f"#define {prefix}_ARENA_BYTES {plan.arena_bytes}",
    ]
    header += _io_macros(prefix, "INPUT", graph, plan, graph.inputs, inputs)
    header += _io_macros(prefix, "OUTPUT", graph, plan, graph.outputs, outputs)
    header += [
        "",
        f"int8_t *{name}_input(uint8_t *arena, int i);",
        f"const int8_t *{name}_output(const uint8_t *arena, int i);",
        f"int {name}_run(uint8_t *arena);",
        "",
        f"#endif /* {guard} */",
        "",
    ]
    weights_bytes = sum(int(data.nbytes) for data in weights.values())
    weights_bytes += sum(int(lowered.constants[c].nbytes) for c in loops.loop_constants)  # patch origins
    stack_bytes = max((k.stack_bytes for k in kernels.values()), default=0)
    return ModelSources({f"{name}.c": "\n".join(source), f"{name}.h": "\n".join(header)}, weights_bytes, stack_bytes, marks)


def _shapes(graph: Graph, op) -> dict:
    tensors = [graph.tensors[t] for t in op.inputs]
    return {"inputs": [list(t.shape) for t in tensors if not t.const], "output": list(graph.tensors[op.outputs[0]].shape)}


def _layer_mark(graph: Graph, op, index: int, kernel: str, config: dict | None) -> dict:
    """What one layer mark measures: a single kernel call."""
    return {"index": index, "op": op.op, "kernel": kernel, "config": config, "macs": op_macs(graph, op), **_shapes(graph, op)}


def _patch_mark(graph: Graph, plan: Plan, loops: PatchLoops, position: int) -> dict:
    """What a patch loop's mark measures: every patch of its stage."""
    period, patches = loops.loops[position]
    ops = [graph.ops[i] for i in plan.order[position : position + period * patches]]
    first = plan.order[position]
    return {
        "index": first, "op": f"patch stage ({period} layers)", "kernel": f"patch loop at layer {first}",
        "config": {"patches": patches}, "macs": sum(op_macs(graph, op) for op in ops),
        **_shapes(graph, ops[0]), "output": list(graph.tensors[ops[-1].outputs[0]].shape),
    }
