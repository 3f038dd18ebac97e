"""TVM's own memory plan (Relax StaticPlanBlockMemory), for comparison with ours.

`tvm_plan_bytes(mod)` is what TVM's default Relax flow allocates for a module: every planned
storage, every unplanned output tensor and the function's inputs. `tvm_offsets(mod, graph)`
lays TVM's storages out one after another and maps our tensors onto them, so a model can be
built with TVM's plan (`memory_planner="tvm"`).
"""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax
from tvm.ir.expr import Call

from memory_planner import Graph


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


def tvm_offsets(mod: tvm.IRModule, graph: Graph) -> tuple[dict[str, int], int]:
    """Offsets of our storage roots under TVM's plan of the integer module, and the arena size."""
    func = _planned(mod)
    offsets: dict[str, int] = {}
    storage_offset: dict = {}
    end = 0
    for param, name in zip(func.params, graph.inputs):
        offsets[graph.storage(name)] = end
        end += _nbytes(param.ty)
    tensor_storage: dict = {}
    outputs: list = []
    for b in _bindings(func):
        name = _op(b.value)
        if name == "relax.memory.alloc_storage":
            storage_offset[b.var] = end
            end += int(b.value.args[0].values[0])
        elif name == "relax.memory.alloc_tensor":
            tensor_storage[b.var] = storage_offset[b.value.args[0]]
        elif name == "relax.builtin.alloc_tensor":
            tensor_storage[b.var] = end
            end += _nbytes(b.var.ty)
        elif isinstance(b.value, Call) and isinstance(b.value.op, tvm.ir.GlobalVar):
            outputs.append(b.value.args)
    for op, args in zip(graph.ops, outputs):  # a kernel's outputs (result, then scratch) are its last arguments
        for tensor, arg in zip(op.outputs, args[len(args) - len(op.outputs):]):
            offsets[graph.storage(tensor)] = tensor_storage[arg]
    return offsets, end
