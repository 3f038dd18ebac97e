"""End to end on real models: bit-exact vs TFLite Micro, within 1 LSB vs onnxruntime, and the
exported C builds for Cortex-M7 and Cortex-M4 with -Wall -Werror."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

import tvm_tinyml
from conftest import BUNDLED, MODELS
from tvm_tinyml.reference import run_tflm, tflm_arena_bytes
from tvm_tinyml.verify import verify

ARM_GCC = shutil.which("arm-none-eabi-gcc") or "arm-none-eabi-gcc"  # installed by .ci/run
ARM_FLAGS = {
    "cortex-m7": ["-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-d16"],
    "cortex-m4": ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"],
}


def test_all_bundled_models_are_tested():
    assert BUNDLED == ["ad01_int8", "kws_ref_model", "pretrainedResnet_quant", "tinyengine_vww", "vww_96_int8"]


@pytest.mark.parametrize("name", BUNDLED)
def test_bit_exact_vs_tflm(name):
    result = verify(str(MODELS / f"{name}.tflite"), inputs=20, seed=1)
    assert result.reference == "tflite-micro"
    assert result.bit_exact and result.max_abs_diff == 0, result


def test_float_io_bit_exact_vs_tflm():
    result = verify(str(MODELS / "tinyengine_vww.tflite"), inputs=3, float_io=True)
    assert result.bit_exact, result


def test_float_io_keeps_float_ends_in_the_arena():
    int8_io = tvm_tinyml.build(str(MODELS / "tinyengine_vww.tflite"))
    float_io = tvm_tinyml.build(str(MODELS / "tinyengine_vww.tflite"), float_io=True)
    assert int8_io.metadata["inputs"][0]["dtype"] == "int8"
    assert float_io.metadata["inputs"][0]["dtype"] == "float32"
    image = {a: [t["bytes"] for t in a.memory.tensors if t["op"] == "input"] for a in (int8_io, float_io)}
    assert image[int8_io] == [80 * 80 * 3] and image[float_io] == [80 * 80 * 3 * 4]


@pytest.mark.parametrize("name", ["kws_ref_model", "pretrainedResnet_quant"])
def test_tvm_memory_plan_is_bit_exact_too(name):
    path = str(MODELS / f"{name}.tflite")
    ours, tvms = tvm_tinyml.build(path, target="host"), tvm_tinyml.build(path, target="host", memory_planner="tvm")
    assert tvms.memory.planner.startswith("tvm") and ours.memory.arena_bytes < tvms.memory.arena_bytes
    x = np.random.default_rng(3).integers(-128, 128, ours.metadata["inputs"][0]["shape"]).astype(np.int8)
    np.testing.assert_array_equal(ours.run_host([x])[0], tvms.run_host([x])[0])
    np.testing.assert_array_equal(ours.run_host([x])[0], run_tflm(path, [x])[0])


def test_onnx_qdq_within_one_lsb(qdq_onnx):
    result = verify(qdq_onnx, inputs=20)
    assert result.reference == "onnxruntime"
    assert result.max_abs_diff <= 1, result


@pytest.mark.parametrize("name", ["kws_ref_model", "vww_96_int8", "pretrainedResnet_quant", "ad01_int8"])
def test_arena_not_above_tflm_activations(name):
    path = str(MODELS / f"{name}.tflite")
    assert tvm_tinyml.build(path).memory.arena_bytes <= tflm_arena_bytes(path)["head"]


@pytest.mark.parametrize("core", sorted(ARM_FLAGS))
@pytest.mark.parametrize("name", BUNDLED + ["qdq_onnx"])
def test_exported_c_builds_for_cortex_m(tmp_path, name, core, request):
    model = request.getfixturevalue("qdq_onnx") if name == "qdq_onnx" else str(MODELS / f"{name}.tflite")
    artifact = tvm_tinyml.build(model, target="stm32f746" if core == "cortex-m7" else "stm32f412")
    out = artifact.export(tmp_path)
    assert {p.name for p in out.iterdir()} >= {f"{artifact.name}.c", f"{artifact.name}.h", "tinyml_math.h", "memory.json", "metadata.json"}
    command = [ARM_GCC, *ARM_FLAGS[core], "-O2", "-Wall", "-Werror", "-c", str(out / f"{artifact.name}.c"), "-o", str(tmp_path / "model.o")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    symbols = subprocess.run(["arm-none-eabi-nm", str(tmp_path / "model.o")], capture_output=True, text=True, timeout=60).stdout
    undefined = [line.split()[-1] for line in symbols.splitlines() if line.split()[0] == "U"]
    assert set(undefined) <= {"memcpy", "memset"}, undefined
