"""The depthwise micro-kernel paths (schedules/depthwise.py) vs the default schedule on the host:
the 3x3 in-place plane kernel (strides 1/2, pads 0/1, planes down to 3 columns, edge words) and
the ordinary kernel's unrolled 3x3 interior pixels, on random shapes, data and weights."""

from __future__ import annotations

import ctypes
import subprocess

import numpy as np
import pytest
import tvm
from tvm.script import ir as I
from tvm.script import relax as R

from schedules.check import RUNTIME_DIR, compare_with_default
from tvm_tinyml.tune import extract_tasks


def depthwise_module(h: int, w: int, c: int, stride: int, pads: tuple[int, int, int, int], seed: int,
                     out_scale: float = 0.03) -> tvm.IRModule:
    """dequantize -> 3x3 depthwise conv (HWOI) -> quantize, random weights, bias and zero points."""
    rng = np.random.default_rng(seed)
    weight = rng.integers(-127, 128, (1, 3, 3, c)).astype(np.int8)
    scales = rng.uniform(0.002, 0.02, c).astype(np.float32)
    bias = rng.integers(-3000, 3000, c).astype(np.int32)
    in_zp, out_zp = int(rng.integers(-128, 128)), int(rng.integers(-20, 20))
    top, left, bottom, right = pads
    oh, ow = (h + top + bottom - 3) // stride + 1, (w + left + right - 3) // stride + 1

    @I.ir_module
    class Module:
        @R.function
        def main(x: R.Tensor((1, h, w, c), "int8")) -> R.Tensor((1, oh, ow, c), "int8"):
            with R.dataflow():
                lv = R.dequantize(x, R.const(0.05, "float32"), R.const(in_zp, "int32"), out_dtype="float32", axis=0)
                wq = R.dequantize(R.const(weight), R.const(scales), R.const(0, "int32"), out_dtype="float32", axis=3)
                wr = R.reshape(wq, R.shape([3, 3, c, 1]))
                conv = R.nn.conv2d(lv, wr, strides=[stride, stride], padding=[top, left, bottom, right], groups=c,
                                   data_layout="NHWC", kernel_layout="HWOI", out_dtype="float32")
                b = R.dequantize(R.const(bias), R.const(scales * np.float32(0.05)), R.const(0, "int32"), out_dtype="float32", axis=0)
                y = R.add(conv, b)
                q = R.quantize(y, R.const(out_scale, "float32"), R.const(out_zp, "int32"), out_dtype="int8", axis=-1)
                R.output(q)
            return q

    return Module


CASES = [  # (h, w, c, stride, pads): in-place when the plane is smaller than (W + 1) * C
    (6, 6, 16, 1, (1, 1, 1, 1)), (3, 3, 12, 1, (1, 1, 1, 1)), (7, 5, 8, 1, (1, 1, 1, 1)), (2, 4, 16, 1, (1, 1, 1, 1)),
    (4, 3, 32, 2, (1, 1, 1, 1)), (6, 6, 64, 2, (0, 0, 1, 1)), (7, 7, 32, 2, (1, 1, 1, 1)), (5, 8, 32, 1, (0, 0, 0, 0)),
    (10, 9, 64, 2, (0, 0, 1, 1)), (7, 6, 12, 2, (1, 1, 1, 1)), (9, 9, 4, 1, (1, 1, 1, 1)), (8, 11, 6, 1, (0, 0, 0, 0)),
    (10, 9, 8, 2, (0, 0, 1, 1)),
]


@pytest.mark.parametrize("h, w, c, stride, pads", CASES)
def test_depthwise_paths_are_bit_exact(h, w, c, stride, pads):
    tasks = [t for t in extract_tasks(depthwise_module(h, w, c, stride, pads, seed=h * w + c), "host")
             if t.op.startswith("depthwise")]
    assert tasks
    for task in tasks:
        for config in task.space:
            for seed in range(2):
                ok, diff = compare_with_default(task.func, config, task.constants, seed=seed)
                assert ok, (task.op, config, diff)


@pytest.mark.parametrize("h, w, c, stride, pads", [(6, 6, 16, 1, (1, 1, 1, 1)), (10, 9, 8, 2, (0, 0, 1, 1))])
def test_slow_requantization_path_is_bit_exact(h, w, c, stride, pads):
    # out_scale small enough that some shifts are >= 0: tinyml_dw_fast_ok refuses, the general path runs.
    tasks = [t for t in extract_tasks(depthwise_module(h, w, c, stride, pads, seed=3, out_scale=0.00002), "host")
             if t.op.startswith("depthwise")]
    assert tasks
    for task in tasks:
        assert int(np.max(task.constants[4])) >= 0
        for config in task.space:
            ok, diff = compare_with_default(task.func, config, task.constants, seed=0)
            assert ok, (task.op, config, diff)


def test_fast_requant_equals_reference(tmp_path):
    src = tmp_path / "rq.c"
    src.write_text(f'#include "{RUNTIME_DIR}/tinyml_math.h"\n#include "{RUNTIME_DIR}/tinyml_simd_dw.h"\n'
                   "int check(const int32_t *acc, const int32_t *mult, const int32_t *shift, const int32_t *zp, int n) {\n"
                   "  int bad = 0, used = 0;\n"
                   "  for (int i = 0; i < n; ++i) {\n"
                   "    if (!tinyml_dw_fast_ok(acc[i], -shift[i], 9)) continue;\n"
                   "    ++used;\n"
                   "    bad += tinyml_requant_i8(acc[i], mult[i], shift[i], zp[i], -128, 100) !=\n"
                   "           tinyml_dw_requant2(2 * acc[i], mult[i], -shift[i], tinyml_dw_nudge(-shift[i], zp[i]), -128, 100);\n"
                   "  }\n"
                   "  return used > n / 2 ? bad : -1;\n}\n")
    so = tmp_path / "rq.so"
    subprocess.run(["cc", "-O1", "-Wall", "-Wextra", "-Werror", "-Wno-unused-function", "-shared", "-fPIC", "-o", so, src],
                   check=True)
    rng = np.random.default_rng(2)
    n = 400_000
    acc = rng.integers(-2**30 + 300_000, 2**30 - 300_000, n, dtype=np.int64)
    acc[: n // 2] = rng.integers(-300_000, 300_000, n // 2)
    acc = acc.astype(np.int32)
    mult = rng.integers(2**30, 2**31, n, dtype=np.int64).astype(np.int32)
    shift = rng.integers(-22, 0, n).astype(np.int32)
    zp = rng.integers(-128, 128, n).astype(np.int32)
    lib = ctypes.CDLL(str(so))
    ptr = lambda a: a.ctypes.data_as(ctypes.c_void_p)  # noqa: E731
    assert lib.check(ptr(acc), ptr(mult), ptr(shift), ptr(zp), n) == 0
