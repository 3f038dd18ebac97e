"""Emit one TIR kernel as a plain C function with TVM's C code generator.

TVM 0.27's C backend only emits functions behind the packed-function ABI (DLTensor
arguments, asserts, TVMFFIAny). We lower the kernel with TVM's own TIR passes, let TVM's C
codegen print it, and keep only the kernel body that follows the argument unpacking; the
signature is rebuilt with typed pointers: `static void name(const int8_t *data, ..., int8_t *out)`.
No TVM runtime, no workspace allocation: a kernel's only extra memory is its local arrays
(the staging buffers of the SIMD templates, at most 1 KiB), reported as `stack_bytes`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import tvm
from tvm import s_tir, tirx

_TARGET = tvm.target.Target({"kind": "c"}).with_host(tvm.target.Target({"kind": "c"}))
_CTYPES = {"int8": "int8_t", "uint8": "uint8_t", "int16": "int16_t", "int32": "int32_t", "int64": "int64_t", "float32": "float"}
_SIZES = {"int8_t": 1, "uint8_t": 1, "int16_t": 2, "int32_t": 4, "int64_t": 8, "float": 4}
_LOCAL_ARRAY = re.compile(r"^\s+(\w+) \w+\[(\d+)\];$", re.MULTILINE)
_BIND = re.compile(r"^  (\w+)\* (\w+) = \(\(\1\*\)\(\(\1\*\)\(\(\(DLTensor\*\)\w+_handle(?:_\d+)?\)\[0\]\.data\)\)\);$")


@dataclass(frozen=True)
class CKernel:
    """A kernel as C: `params` are (c type, name, is_output) in call order."""

    name: str
    params: tuple[tuple[str, str, bool], ...]
    body: str

    def source(self, comment: str) -> str:
        args = ", ".join(f"{ctype} *{name}" if out else f"const {ctype} *{name}" for ctype, name, out in self.params)
        return f"/* {comment} */\nTINYML_KERNEL void {self.name}({args}) {{\n{self.body}}}\n"

    @property
    def stack_bytes(self) -> int:
        """Bytes of the local arrays the kernel declares (its stack scratch beyond scalars)."""
        return sum(_SIZES[ctype] * int(n) for ctype, n in _LOCAL_ARRAY.findall(self.body) if ctype in _SIZES)


def _lower(func: tirx.PrimFunc, name: str) -> tvm.IRModule:
    mod = tvm.IRModule({name: func.with_attr("global_symbol", name)})
    passes = [
        tirx.transform.BindTarget(_TARGET),
        s_tir.transform.LowerInitBlock(),
        s_tir.transform.PlanAndUpdateBufferAllocationLocation(),
        s_tir.transform.ConvertBlocksToOpaque(),
        s_tir.transform.CompactBufferAllocation(),
        s_tir.transform.LowerMatchBuffer(),
        s_tir.transform.LowerOpaqueBlock(),
        tirx.transform.FlattenBuffer(),
        tirx.transform.NarrowDataType(32),
        tirx.transform.StmtSimplify(),
        tirx.transform.StorageRewrite(),
        tirx.transform.StmtSimplify(),
        tirx.transform.RemoveNoOp(),
        tirx.transform.AnnotateEntryFunc(),
        tirx.transform.SplitHostDevice(),
        tirx.transform.MakePackedAPI(),
        tirx.transform.LowerTVMBuiltin(),
        tirx.transform.LowerIntrin(),
    ]
    with _TARGET:
        return tvm.transform.Sequential(passes)(mod)


def emit_kernel(func: tirx.PrimFunc, name: str, num_outputs: int = 1) -> CKernel:
    """Lower a scheduled kernel and print it as a plain C function named `name`."""
    source = tvm.get_global_func("target.build.c")(_lower(func, name), _TARGET).inspect_source()
    lines = source[source.index(f"__tvm_ffi_{name}(void* self_handle") :].splitlines()
    binds = [i for i, line in enumerate(lines) if _BIND.match(line)]
    if len(binds) != len(func.params):
        raise RuntimeError(f"kernel {name}: cannot find its {len(func.params)} buffer arguments in TVM's C output")
    end = lines.index("  return 0;")
    params = []
    for k, i in enumerate(binds):
        ctype, var = _BIND.match(lines[i]).groups()
        params.append((ctype, var, k >= len(binds) - num_outputs))
    body = "\n".join(lines[binds[-1] + 1 : end]) + "\n"
    return CKernel(name, tuple(params), body)


def ctype(dtype: str) -> str:
    """C type of a TVM dtype string."""
    return _CTYPES[dtype]
