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

from memory_planner import Graph, OpCall, Tensor
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


def lower(mod: tvm.IRModule) -> Lowered:
    """Turn the integer `main` of `mod` into a Graph."""
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
    return Lowered(graph, kernels, constants)
