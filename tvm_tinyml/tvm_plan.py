"""TVM's own memory plan (Relax StaticPlanBlockMemory), for comparison with ours.

`tvm_plan_bytes(mod)` is what TVM's default Relax flow allocates for a module: every planned
storage, every unplanned output tensor and the function's inputs. `tvm_offsets(mod, graph)`
lays TVM's storages out one after another and maps our tensors onto them (a copy TVM made a view shares
its input's bytes), so a model can be built with TVM's plan (`memory_planner="tvm"`).
"""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax
from tvm.ir.expr import Call, Var

from memory_planner import Graph, OpCall, Overlap


def _planned(mod: tvm.IRModule) -> relax.Function:
    seq = tvm.transform.Sequential(
        [
            relax.transform.LegalizeOps(),
            relax.transform.FoldConstant(),  # weights are constants (flash), not planned memory
            relax.transform.RewriteDataflowReshape(),  # reshapes are views, as in TVM's default pipeline
            relax.transform.ToNonDataflow(),
            relax.transform.RemovePurityChecking(),
            relax.transform.CallTIRRewrite(),
            relax.transform.StaticPlanBlockMemory(),
        ]
    )
    return seq(mod)["main"]


def _bindings(func: relax.Function) -> list:
    return [b for block in func.body.blocks for b in block.bindings]


def _op(value) -> str:
    return value.op.name if isinstance(value, Call) and hasattr(value.op, "name") else ""


def _nbytes(ty) -> int:
    return int(np.prod([int(d) for d in ty.shape])) * np.dtype(str(ty.dtype)).itemsize


def tvm_plan_bytes(mod: tvm.IRModule) -> int:
    """Bytes TVM's default plan needs for `mod`: storages + unplanned tensors + inputs."""
    func = _planned(mod)
    total = sum(_nbytes(p.ty) for p in func.params)
    for b in _bindings(func):
        name = _op(b.value)
        if name == "relax.memory.alloc_storage":  # its shape is a size in bytes
            total += int(b.value.args[0].values[0])
        elif name == "relax.builtin.alloc_tensor":
            total += _nbytes(b.var.ty)
    return total


def tvm_offsets(mod: tvm.IRModule, graph: Graph) -> tuple[dict[str, int], int, list[Overlap]]:
    """Offsets of our storage roots under TVM's plan of the integer module, the arena size, and
    the copies TVM turned into views.

    RewriteDataflowReshape replaces a kernel that keeps the byte order (an identity or size-1-axis
    TRANSPOSE, an empty PAD) by a view of its input: that kernel's output then sits on its input,
    which is exact (each byte is written with the value it already holds), so such a pair gets an
    Overlap of delta 0."""
    func = _planned(mod)
    var_offset: dict = {}  # every planned variable -> the arena offset of its bytes (a tuple: a list)
    end = 0
    for param in func.params:
        var_offset[param] = end
        end += _nbytes(param.ty)
    storage_offset: dict = {}
    calls: list[tuple[str, list]] = []
    for b in _bindings(func):
        name = _op(b.value)
        if name == "relax.memory.alloc_storage":
            storage_offset[b.var] = end
            end += int(b.value.args[0].values[0])
        elif name == "relax.memory.alloc_tensor":
            var_offset[b.var] = storage_offset[b.value.args[0]]
        elif name == "relax.builtin.alloc_tensor":
            var_offset[b.var] = end
            end += _nbytes(b.var.ty)
        elif name == "relax.reshape":
            var_offset[b.var] = var_offset[b.value.args[0]]
        elif isinstance(b.value, Var) and b.value in var_offset:
            var_offset[b.var] = var_offset[b.value]
        elif isinstance(b.value, relax.Tuple):  # a kernel's result and scratch, taken apart below
            var_offset[b.var] = [var_offset.get(f) for f in b.value.fields]
        elif isinstance(b.value, relax.TupleGetItem):
            var_offset[b.var] = var_offset[b.value.tuple_value][b.value.index]
        elif isinstance(b.value, Call) and isinstance(b.value.op, tvm.ir.GlobalVar):
            calls.append((b.value.op.name_hint, list(b.value.args)))
    offsets = {graph.storage(name): var_offset[param] for param, name in zip(func.params, graph.inputs)}
    views: list[Overlap] = []
    pending = iter(calls)
    call = next(pending, None)
    for op in graph.ops:
        if call is not None and _same_call(graph, op, call, offsets, var_offset):
            args = call[1]  # a kernel's outputs (result, then scratch) are its last arguments
            for tensor, arg in zip(op.outputs, args[len(args) - len(op.outputs):]):
                offsets[graph.storage(tensor)] = var_offset[arg]
            call = next(pending, None)
        elif relax.analysis.has_reshape_pattern(mod[op.kernel]) and len(op.outputs) == 1:
            source, output = graph.storage(op.inputs[0]), graph.storage(op.outputs[0])
            offsets[output] = offsets[source]
            views.append(Overlap(source, output, 0, 0))
        else:
            raise RuntimeError(f"TVM's plan has no call of kernel {op.kernel} (writing {op.outputs[0]})")
    if call is not None:
        raise RuntimeError(f"TVM's plan calls kernel {call[0]}, which the kernel graph does not")
    return offsets, end, views


def _same_call(graph: Graph, op: OpCall, call: tuple[str, list], offsets: dict[str, int], var_offset: dict) -> bool:
    """Whether TVM's `call` is `op`: the same kernel reading the same bytes."""
    name, args = call
    if name != op.kernel:
        return False
    reads = args[: len(args) - len(op.outputs)]
    return len(reads) == len(op.inputs) and all(
        graph.tensors[t].const or (a in var_offset and var_offset[a] == offsets.get(graph.storage(t)))
        for t, a in zip(op.inputs, reads)
    )
