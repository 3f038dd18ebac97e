"""Check a scheduled kernel against the default schedule on the host (compile with cc, run, compare).

Used by the tests and by the tuner's host pre-check: random int8 data, the kernel's real
weights and requantization parameters, every output byte compared.
"""

from __future__ import annotations

import ctypes
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from tvm import tirx

from schedules.default import default_schedule
from schedules.space import schedule_kernel
from tvm_tinyml.codegen.kernel_c import ctype, emit_kernel

RUNTIME_DIR = Path(__file__).resolve().parent.parent / "tvm_tinyml" / "codegen" / "runtime"


def _c_array(name: str, data: np.ndarray) -> str:
    values = ", ".join(str(int(v)) for v in data.reshape(-1))
    return f"static const {ctype(str(data.dtype))} {name}[{max(data.size, 1)}] = {{{values}}};\n"


def compare_with_default(func: tirx.PrimFunc, config: dict | None, constants: dict[int, np.ndarray], seed: int = 0) -> tuple[bool, int]:
    """(equal, number of differing bytes) of the config's kernel vs the default schedule on random input.

    `constants` maps parameter index -> array for the kernel's constant parameters (weights...).
    """
    rng = np.random.default_rng(seed)
    params = list(func.params)
    n_out = len(params) - max(constants) - 1
    scheduled = schedule_kernel(func, config)
    ref = emit_kernel(default_schedule(func), "ref_kernel", n_out)
    new = emit_kernel(scheduled.func, "new_kernel", n_out)
    in_shape = tuple(int(d) for d in params[0].shape)
    data = rng.integers(-128, 128, size=in_shape, dtype=np.int8)
    out_sizes = [int(np.prod([int(d) for d in p.shape])) for p in params[len(params) - n_out:]]
    src = ['#include <stdint.h>', '#include <string.h>', f'#include "{RUNTIME_DIR}/tinyml_math.h"',
           f'#include "{RUNTIME_DIR}/tinyml_simd_conv.h"', f'#include "{RUNTIME_DIR}/tinyml_simd_dw.h"',
           _c_array("input0", data)]
    ref_args, new_args = ["input0"], ["input0"]
    for index, array in sorted(constants.items()):
        src.append(_c_array(f"c{index}", array))
        transform = scheduled.transforms.get(index)
        src.append(_c_array(f"t{index}", transform(array) if transform else array))
        ref_args.append(f"c{index}")
        new_args.append(f"t{index}")
    src += [ref.source("reference"), new.source("candidate")]
    outs = []
    for i, size in enumerate(out_sizes):
        src.append(f"static int8_t ro{i}[{size}], no{i}[{size}];")
        outs.append(i)
    ref_args += [f"ro{i}" for i in outs]
    new_args += [f"no{i}" for i in outs]
    src.append(f"int run(int8_t *ref_out, int8_t *new_out) {{ ref_kernel({', '.join(ref_args)}); new_kernel({', '.join(new_args)});"
               f" memcpy(ref_out, ro0, {out_sizes[0]}); memcpy(new_out, no0, {out_sizes[0]}); return 0; }}")
    with tempfile.TemporaryDirectory() as tmp:
        c = Path(tmp) / "k.c"
        so = Path(tmp) / "k.so"
        c.write_text("\n".join(src))
        subprocess.run(["cc", "-std=c99", "-O1", "-Wall", "-Wextra", "-Werror", "-Wno-unused-function", "-shared", "-fPIC",
                        "-o", str(so), str(c)], check=True, capture_output=True, text=True)
        lib = ctypes.CDLL(str(so))
        a = np.zeros(out_sizes[0], np.int8)
        b = np.zeros(out_sizes[0], np.int8)
        lib.run(a.ctypes.data_as(ctypes.c_void_p), b.ctypes.data_as(ctypes.c_void_p))
    diff = int(np.count_nonzero(a != b))
    return diff == 0, diff
