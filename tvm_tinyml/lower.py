"""Integer Relax module -> plain `Graph` (ordered kernel calls) + the kernels and weights.

After QuantizeRealize, `main` is a straight sequence of `R.call_tir` to integer kernels,
`R.reshape` (a pure alias) and variable renames. This walks it once and hands the planner
nothing but names, shapes, sizes and call order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import tvm
from tvm import relax, tirx
from tvm.ir.expr import Call, Var

from memory_planner import Graph, OpCall, Overlap, Tensor
from tvm_tinyml.errors import UnsupportedOperatorError
from tvm_tinyml.overlap import max_overlap_delta


@dataclass
class Lowered:
    """The Graph plus what codegen needs: kernels by name and constant data by tensor name."""

    graph: Graph
    kernels: dict[str, tirx.PrimFunc]
    constants: dict[str, np.ndarray]


def _nbytes(shape: tuple[int, ...], dtype: str) -> int:
    return int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize


def _tensor_type(ty) -> tuple[tuple[int, ...], str]:
    return tuple(int(d) for d in ty.shape), str(ty.dtype)


def _op_call(graph: Graph, func: tirx.PrimFunc, kernel: str, inputs: tuple[str, ...], outputs: tuple[str, ...]) -> OpCall:
    """The call, with its kernel parameters and how its output may overlap each input."""
    op = str(func.attrs.get("tinyml.op", kernel))
    if op in ("patch_conv2d", "patch_depthwise_conv2d"):  # PatchFusion's window kernels: plain convs with pads 0
        op = op[len("patch_"):]
    attrs = json.loads(str(func.attrs.get("tinyml.attrs", "{}")))
    shapes = [graph.tensors[t].shape for t in inputs]
    out = graph.tensors[outputs[0]]
    overlap = tuple(
        max_overlap_delta(op, attrs, i, shapes, np.dtype(graph.tensors[t].dtype).itemsize, out.shape, np.dtype(out.dtype).itemsize)
        for i, t in enumerate(inputs)
    )
    if attrs.get("full_input"):  # a patch kernel reading its window of a whole tensor at a runtime origin
        overlap = (None,) * len(inputs)
    inplace = (0,) if op.endswith("_inplace") else ()
    return OpCall(kernel, op, inputs, outputs, overlap, inplace, attrs)


def lower(mod: tvm.IRModule, loop_overlaps: bool = True) -> Lowered:
    """Turn the integer `main` of `mod` into a Graph.

    With `loop_overlaps`, a patch loop's stage is one buffer the places write in place, and
    the loop offers `patch_loop_overlaps`; without, every place has an output of its own.
    """
    func = mod["main"]
    graph = Graph()
    constants: dict[str, np.ndarray] = {}
    kernels: dict[str, tirx.PrimFunc] = {}
    names: dict = {}
    tuples: dict = {}
    const_names: dict = {}

    def add_tensor(ty, alias_of: str | None = None) -> str:
        shape, dtype = _tensor_type(ty)
        name = f"t{len(graph.tensors) - len(constants)}"
        graph.tensors[name] = Tensor(name, shape, dtype, _nbytes(shape, dtype), alias_of=alias_of)
        return name

    def add_var(var: Var, alias_of: str | None = None) -> str:
        names[var] = add_tensor(var.ty, alias_of)
        return names[var]

    def arg_name(expr) -> str:
        if isinstance(expr, tvm.ir.expr.Constant):
            if expr in const_names:  # one weight array for a constant several calls share (patches)
                return const_names[expr]
            data = expr.value.numpy()
            name = f"c{len(constants)}"
            constants[name] = data
            const_names[expr] = name
            graph.tensors[name] = Tensor(name, data.shape, str(data.dtype), data.nbytes, const=True)
            return name
        return names[expr]

    for param in func.params:
        graph.inputs.append(add_var(param))
    for block in func.body.blocks:
        for binding in block.bindings:
            value, var = binding.value, binding.var
            if isinstance(value, relax.Tuple):
                tuples[var] = [names[f] for f in value.fields]
            elif isinstance(value, Var) and value in tuples:
                tuples[var] = tuples[value]
            elif isinstance(value, Var):
                add_var(var, alias_of=names[value])
            elif isinstance(value, relax.TupleGetItem):
                add_var(var, alias_of=tuples[value.tuple_value][value.index])
            elif isinstance(value, Call) and value.op.name == "relax.zeros":
                add_var(var)  # storage only (PatchFusion's stage tensor): the patches write every element
            elif isinstance(value, Call) and value.op.name == "relax.reshape":
                add_var(var, alias_of=names[value.args[0]])
            elif isinstance(value, Call) and value.op.name == "relax.call_tir":
                gvar, args = value.args[0], value.args[1].fields
                kernel = gvar.name_hint
                kernels[kernel] = mod[gvar]
                inputs = tuple(arg_name(a) for a in args)
                if isinstance(var.ty, relax.TupleType):  # an output plus scratch
                    outputs = tuple(add_tensor(field) for field in var.ty.fields)
                    tuples[var] = list(outputs)
                elif loop_overlaps and str(mod[gvar].attrs.get("tinyml.op", "")) == "patch_place_inplace":
                    # writes its patch into the stage tensor's own bytes: one buffer for the whole loop
                    outputs = (add_var(var, alias_of=inputs[0]),)
                else:
                    outputs = (add_var(var),)
                graph.ops.append(_op_call(graph, mod[gvar], kernel, inputs, outputs))
            else:
                raise UnsupportedOperatorError(f"cannot lower {value} to a kernel call")
    for i in range(1, len(graph.ops)):  # a patch loop runs patch by patch, as the graph lists it
        if graph.ops[i].attrs.get("patch") and graph.ops[i - 1].attrs.get("patch"):
            graph.after[i] = {i - 1}
    result = func.body.body
    if isinstance(result, relax.Tuple):
        graph.outputs = [names[f] for f in result.fields]
    else:
        graph.outputs = tuples.get(result, [names.get(result)])
    if loop_overlaps:  # after the outputs are known: a loop input that is a model output offers none
        graph.loop_overlaps = patch_loop_overlaps(graph, constants)
    return Lowered(graph, kernels, constants)


def patch_loop_overlaps(graph: Graph, constants: dict[str, np.ndarray]) -> list[Overlap]:
    """How far a patch loop's stage tensor may overlap the whole tensor its patches read.

    Patches run in graph order; patch q's first kernel reads a window of the loop's input X
    (`full_input`), its `patch_place_inplace` then writes the patch's block into the stage S
    (S is one buffer: every place writes in place). After patch p, S holds bytes up to
    W[p] = the highest byte any place <= p wrote, and the patches after p still read X from
    R[p] = their lowest byte on. Placing S `d` bytes after X is safe when every such written
    byte lands below every byte still to read: d <= R[p] - W[p] - 1 for every p but the last
    (after the last patch nobody reads X). The places' other stores put back the byte they
    read (same buffer), and S is never zero-filled, so no other write lands on X.
    Patch p's own buffers (the windows its kernels write, alive only within patch p) may sit
    wholly below R'[p] = the lowest byte of X patches >= p read, and wholly above W[p] in S.
    Offered only when the loop's patches are X's only readers and X is not a model output.
    """
    result = []
    readers: dict[str, list[int]] = {}
    for i, op in enumerate(graph.ops):
        for t in op.inputs:
            if not graph.tensors[t].const:
                readers.setdefault(graph.storage(t), []).append(i)
    outputs = {graph.storage(t) for t in graph.outputs if t is not None}
    full = [i for i, op in enumerate(graph.ops) if op.attrs.get("full_input")]
    places = [i for i, op in enumerate(graph.ops) if op.op == "patch_place_inplace"]
    for source in sorted({graph.storage(graph.ops[i].inputs[0]) for i in full}):
        loads = [i for i in full if graph.storage(graph.ops[i].inputs[0]) == source]
        if sorted(set(readers.get(source, []))) != loads or source in outputs or len(loads) != len(places) or len(loads) < 2:
            continue
        stage = {graph.storage(graph.ops[i].outputs[0]) for i in places}
        if len(stage) != 1 or any(not (a < b) for a, b in zip(loads, places)) or any(not (b < a) for a, b in zip(loads[1:], places)):
            continue
        x = graph.tensors[source]
        reads = [_window_first_byte(graph, graph.ops[i], constants, x) for i in loads]
        writes = [_block_last_byte(graph, graph.ops[i], constants) for i in places]
        stage = stage.pop()
        delta = min(min(reads[p + 1:]) - max(writes[: p + 1]) - 1 for p in range(len(loads) - 1))
        if delta < 2**62:
            result.append(Overlap(source, stage, int(delta)))
        # Patch p's own buffers live within patch p: below every byte of X patches >= p read,
        # and above every byte of S places <= p write (in S's still unwritten tail, or past it).
        for p, (load, place) in enumerate(zip(loads, places)):
            first_read, last_written = min(reads[p:]), max(writes[: p + 1])
            roots = {graph.storage(t) for i in range(load, place) for t in graph.ops[i].outputs} - {source, stage}
            for root in sorted(roots):
                size = graph.tensors[root].nbytes
                if first_read < 2**62:
                    result.append(Overlap(source, root, int(first_read - size)))
                result.append(Overlap(stage, root, graph.tensors[stage].nbytes, last_written + 1))
    return result


def _window_first_byte(graph: Graph, op: OpCall, constants: dict, x) -> int:
    """Lowest byte of X a full-input patch kernel reads (its window clipped to the image)."""
    oy, ox = (int(v) for v in constants[op.inputs[-1]].reshape(-1))
    wh, ww = op.attrs["window_hw"]
    ih, iw = op.attrs["image_hw"]
    shape = graph.tensors[op.inputs[0]].shape
    y0, x0, y1, x1 = max(oy, 0), max(ox, 0), min(oy + wh, ih), min(ox + ww, iw)
    if y0 >= y1 or x0 >= x1:
        return 2**63
    return (y0 * iw + x0) * shape[3] * (x.nbytes // int(np.prod(x.shape)))


def _block_last_byte(graph: Graph, op: OpCall, constants: dict) -> int:
    """Highest byte of the stage a place writes (its patch block)."""
    _, h, w, c = graph.tensors[op.outputs[0]].shape
    _, ph, pw, _ = graph.tensors[op.inputs[1]].shape
    py, px = (int(v) for v in constants[op.inputs[2]].reshape(-1))
    itemsize = graph.tensors[op.outputs[0]].nbytes // (h * w * c)
    return (((py + ph - 1) * w + px + pw - 1) * c + c) * itemsize - 1
