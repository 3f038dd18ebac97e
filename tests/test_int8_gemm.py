"""The int8-weight GEMM conv / dense kernels (the default, schedules/conv2d.py simd=3): bit-exact
vs TFLite Micro on the host (portable C) and on qemu (the SXTB16 / SMLAD / SMMLAR asm) for 1x1,
3x3, stride 2, dense, odd channel counts and windows whose size is not a multiple of 4; their
requantization equal to TFLM's; `weights="int16"` (`--weights int16`) keeping the int16 path;
the weights in flash the size of the model's own."""

from __future__ import annotations

import ctypes
import json
import re
import subprocess
import sys

import numpy as np
import pytest

import tvm_tinyml
from conftest import MODELS
from schedules.check import RUNTIME_DIR
from test_ops import acc_out_scale, act, add_conv, check, int8_data, make_fully_connected, weight_scales
from tflite_builder import ModelBuilder, run_tflm
from tvm_tinyml import frontend
from tvm_tinyml.run import run_on_board


def conv_model(kernel: int, stride: int, cin: int, cout: int, size: int, seed: int) -> bytes:
    b = ModelBuilder()
    shape = [1, size, size, cin]
    x = act(b, shape)
    y, _ = add_conv(b, x, shape, cout, kernel=kernel, stride=stride, padding="SAME", seed=seed)
    return b.build([x], [y])


def mixed_model() -> bytes:
    """3x3 stride 2 on 3 channels (window of 27 values), 1x1 to an odd channel count over pixels
    that leave a short block, a dense layer with an odd number of units."""
    b = ModelBuilder()
    x = act(b, [1, 15, 15, 3])
    mid = dict(scale=0.3, zero_point=-5)
    y, shape = add_conv(b, x, [1, 15, 15, 3], 12, kernel=3, stride=2, seed=21, out_q=mid)
    y2_q = dict(scale=acc_out_scale(mid["scale"], weight_scales(7, 23), 12), zero_point=4)
    y, shape = add_conv(b, y, shape, 7, kernel=1, seed=22, in_scale=mid["scale"], out_q=y2_q)
    g = np.random.default_rng(23)
    depth = int(np.prod(shape[1:]))
    weights = b.add_tensor([9, depth], np.int8, scale=0.01, zero_point=0, data=g.integers(-127, 128, (9, depth)))
    out = act(b, [1, 9], scale=acc_out_scale(y2_q["scale"], np.array([0.01]), depth), zero_point=3)
    b.add_operator("FULLY_CONNECTED", [y, weights, -1], [out])
    return b.build([x], [out])


@pytest.mark.parametrize("kernel, stride, cin, cout, size, kernel_fn", [
    (1, 1, 32, 32, 8, "pw8c_6"),  # 64 pixels: ten 6-pixel blocks and a 4-pixel tail
    (1, 1, 5, 9, 5, "pw8c_6"),  # K = 5 (padded to 8), odd channels
    (3, 1, 16, 16, 8, "gemm8c_3"),  # K = 144: three pixels fit the scratch
    (3, 2, 3, 8, 11, "gemm8c_6"),  # K = 27, stride 2, windows clipped at the borders
    (3, 2, 8, 5, 9, "gemm8c_5"),  # 5 output columns: one block per row
])
def test_conv_int8_gemm_is_bit_exact(tmp_path, kernel, stride, cin, cout, size, kernel_fn):
    artifact = check(tmp_path, conv_model(kernel, stride, cin, cout, size, seed=kernel * 10 + cout))
    assert f"tinyml_conv_s8_{kernel_fn}_u2(" in artifact.sources["model.c"]


@pytest.mark.parametrize("units", [64, 33])
def test_dense_int8_gemm_is_bit_exact(tmp_path, units):
    artifact = check(tmp_path, make_fully_connected([1, 200], units, with_bias=True, activation="NONE", seed=units),
                     min_distinct=3)
    assert "tinyml_conv_s8_pw8r_1_u2(" in artifact.sources["model.c"]


def test_int16_weights_option_keeps_the_int16_path(tmp_path):
    model = conv_model(1, 1, 32, 32, 8, seed=3)
    path = tmp_path / "pw.tflite"
    path.write_bytes(model)
    int8 = tvm_tinyml.build(str(path), target="host")
    int16 = tvm_tinyml.build(str(path), target="host", weights="int16")
    assert "tinyml_conv_s8_pw_2_u2(" in int16.sources["pw.c"] and not re.search(r"tinyml_conv_s8_pw8\w+\(", int16.sources["pw.c"])
    assert int16.memory.flash_bytes - int8.memory.flash_bytes >= 32 * 32  # one more byte per weight
    xs = [int8_data([1, 8, 8, 32], 5)]
    np.testing.assert_array_equal(int16.run_host(xs)[0].reshape(1, 8, 8, 32), run_tflm(model, xs)[0])
    with pytest.raises(tvm_tinyml.TinyMLError, match="unknown weights 'int4'"):
        tvm_tinyml.build(str(path), target="host", weights="int4")


def test_weights_cli_flag(tmp_path):
    path = tmp_path / "pw.tflite"
    path.write_bytes(conv_model(1, 1, 32, 32, 8, seed=3))
    flash = {}
    for weights in ("int8", "int16"):
        out = subprocess.run([sys.executable, "-m", "tvm_tinyml.cli", "memory", str(path), "--json", "--weights", weights],
                             capture_output=True, text=True, check=True).stdout
        flash[weights] = json.loads(out.splitlines()[-1])["flash_bytes"]
    assert flash["int16"] - flash["int8"] >= 32 * 32


@pytest.mark.parametrize("weights", ["int8", "int16"])
def test_gemm_kernels_are_bit_exact_on_qemu(tmp_path, weights):
    path = tmp_path / "mixed.tflite"
    path.write_bytes(mixed_model())
    result = run_on_board(str(path), "qemu-m7", inputs=3, weights=weights)
    assert result.bit_exact and result.passed


def test_int8_requantization_equals_reference(tmp_path):
    """tinyml_requant8_fast (SMMLAR form, |acc| < 2^30, shift in [-22, -1]) and the general
    fallback equal TFLM's MultiplyByQuantizedMultiplier + zero point + clamp."""
    src = tmp_path / "rq8.c"
    src.write_text(f'#include "{RUNTIME_DIR}/tinyml_math.h"\n#include "{RUNTIME_DIR}/tinyml_simd_conv.h"\n'
                   "int check(const int32_t *acc, const int32_t *mult, const int32_t *shift, const int32_t *zp, int n) {\n"
                   "  int bad = 0;\n"
                   "  for (int i = 0; i < n; ++i) {\n"
                   "    int8_t got;\n"
                   "    const int32_t out_zp = zp[i], act_min = -128, act_max = 100;\n"
                   "    TINYML_REQUANT8_STORE(1, acc[i], 0, 0, 0, 0, 0, acc[i] / 2, mult[i], shift[i], &got, 1);\n"
                   "    bad += got != tinyml_requant_i8(acc[i], mult[i], shift[i], out_zp, act_min, act_max);\n"
                   "  }\n"
                   "  return bad;\n}\n")
    so = tmp_path / "rq8.so"
    subprocess.run(["cc", "-O1", "-Wall", "-Wextra", "-Werror", "-Wno-unused-function", "-shared", "-fPIC", "-o", so, src],
                   check=True)
    rng = np.random.default_rng(2)
    n = 400_000
    acc = rng.integers(-2**30 + 1, 2**30, n)
    acc[: n // 2] = rng.integers(-200_000, 200_000, n // 2)  # the sizes real layers reach
    acc[:7] = [0, -1, 1, 2**30 - 1, -2**30 + 1, 2**29, -2**29]
    mult = rng.integers(2**30, 2**31, n)
    mult[::97] = 0
    shift = rng.integers(-24, 3, n)  # the fast range, its edges and the general fallback
    zp = rng.integers(-128, 128, n)
    arrays = [np.ascontiguousarray(a.astype(np.int32)) for a in (acc, mult, shift, zp)]
    lib = ctypes.CDLL(str(so))
    assert lib.check(*(a.ctypes.data_as(ctypes.c_void_p) for a in arrays), n) == 0


@pytest.mark.parametrize("model", ["ad01_int8", "pretrainedResnet_quant"])
def test_weights_in_flash_within_a_tenth_of_the_models_constants(model):
    """Models without depthwise layers (whose kernels keep their own layouts): weights, bias and
    requantization tables in flash at most 1.10x the .tflite's own buffers."""
    path = MODELS / f"{model}.tflite"
    artifact = tvm_tinyml.build(str(path), target="stm32f746")
    assert artifact.memory.flash_bytes <= 1.10 * frontend.tflite_constant_bytes(path)
    assert not re.search(r"tinyml_conv_s8_(pw|gemm)_\d", artifact.sources[f"{model}.c"])  # no int16 weights
