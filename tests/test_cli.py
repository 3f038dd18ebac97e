"""The `tvm-tinyml` command line: output contracts, exit codes, and one clear line for bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from conftest import MODELS
from tflite_builder import ModelBuilder, build_single_op_model

KWS = str(MODELS / "kws_ref_model.tflite")
Q = dict(dtype=np.int8, scale=0.05, zero_point=-7)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tvm_tinyml.cli", *args], capture_output=True, text=True, timeout=600
    )


def assert_bad_input(result: subprocess.CompletedProcess, *words: str) -> None:
    """Exit 2, one line on stderr naming the problem, no traceback."""
    assert result.returncode == 2, result
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("tvm-tinyml: error: ")
    assert "Traceback" not in result.stderr + result.stdout
    for word in words:
        assert word in lines[0]


def write(tmp_path, data: bytes, name: str = "model.tflite") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


# ---------------------------------------------------------------- contracts


def test_verify_json_last_line():
    result = cli("verify", KWS, "--inputs", "5", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"model", "inputs", "bit_exact", "max_abs_diff", "reference"} <= set(report)
    assert report["model"] == "kws_ref_model" and report["inputs"] == 5
    assert report["bit_exact"] is True and report["max_abs_diff"] == 0
    assert report["reference"] == "tflite-micro"


def test_memory_json(tmp_path):
    plot = tmp_path / "arena.png"
    result = cli("memory", KWS, "--target", "stm32f746", "--json", "--plot", str(plot))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {"model", "target", "arena_bytes", "flash_bytes", "peak_bytes", "lower_bound_bytes", "classic_bound_bytes",
            "tflm_arena_bytes", "tvm_default_bytes", "planner"} <= set(report)
    assert report["target"] == "stm32f746"
    assert report["classic_bound_bytes"] == 16000  # two 1x25x5x64 int8 tensors alive together
    assert report["tflm_arena_bytes"] == 24272  # pip tflite-micro, recording allocations
    assert report["lower_bound_bytes"] <= report["peak_bytes"] == report["arena_bytes"] < report["classic_bound_bytes"]
    assert report["peak_bytes"] < report["tvm_default_bytes"]
    assert report["flash_bytes"] > 20000
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_memory_table():
    result = cli("memory", KWS)
    assert result.returncode == 0, result.stderr
    assert "arena (SRAM)" in result.stdout and "conv2d" in result.stdout


def test_compile_writes_the_artifact(tmp_path):
    result = cli("compile", KWS, "--target", "stm32f746", "-o", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    files = {p.name for p in (tmp_path / "out").iterdir()}
    assert files == {"kws_ref_model.c", "kws_ref_model.h", "tinyml_math.h", "memory.json", "metadata.json",
                     "CMakeLists.txt", "kws_ref_model.mk", "example_main.c", "arm-none-eabi.cmake"}
    header = (tmp_path / "out" / "kws_ref_model.h").read_text()
    for needle in ("KWS_REF_MODEL_ARENA_BYTES", "KWS_REF_MODEL_NUM_INPUTS 1", "KWS_REF_MODEL_INPUT0_SHAPE {1, 49, 10, 1}",
                   "KWS_REF_MODEL_INPUT0_ZERO_POINT 83", "int kws_ref_model_run(uint8_t *arena);"):
        assert needle in header


def test_verify_mismatch_exits_1(monkeypatch, capsys):
    """A wrong kernel must be caught: nudge every requantization multiplier and expect exit 1."""
    from relax_passes import quantize_realize
    from tvm_tinyml import cli as cli_module

    exact = quantize_realize.qp.conv_output_multipliers

    def nudged(*args, **kwargs):
        mult, shift = exact(*args, **kwargs)
        return mult + (1 << 24), shift

    monkeypatch.setattr(quantize_realize.qp, "conv_output_multipliers", nudged)
    status = cli_module.main(["verify", str(MODELS / "ad01_int8.tflite"), "--inputs", "3", "--json"])
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert status == 1
    assert report["bit_exact"] is False and report["max_abs_diff"] > 0


# ---------------------------------------------------------------- bad input


def test_missing_file(tmp_path):
    assert_bad_input(cli("compile", str(tmp_path / "nope.tflite"), "-o", str(tmp_path)), "nope.tflite", "no such file")


def test_random_bytes(tmp_path):
    path = write(tmp_path, np.random.default_rng(0).bytes(4096), "random.tflite")
    assert_bad_input(cli("memory", path), "random.tflite", "not a TFLite or ONNX model")


def test_truncated_tflite(tmp_path):
    data = (MODELS / "kws_ref_model.tflite").read_bytes()
    assert_bad_input(cli("verify", write(tmp_path, data[: len(data) // 2]), "--inputs", "1"), "model.tflite")


def test_float_model(tmp_path):
    f32 = dict(shape=[1, 4], dtype=np.float32)
    path = write(tmp_path, build_single_op_model("ADD", [f32, f32], [f32]))
    assert_bad_input(cli("compile", path, "-o", str(tmp_path / "o")), "float model")


def test_unsupported_operator(tmp_path):
    b = ModelBuilder()
    x, y, z = (b.add_tensor([1, 4], **Q) for _ in range(3))
    b.add_operator("RELU", [x], [y])
    b.add_operator("LSTM", [y], [z])
    assert_bad_input(cli("memory", write(tmp_path, b.build([x], [z]))), "LSTM", "#1")


def test_model_too_big_for_the_target(tmp_path):
    # A 1x160x160x32 activation (800 KiB) cannot fit the 128 KiB of SRAM of an STM32F411.
    weight = dict(shape=[32, 1, 1, 8], dtype=np.int8, scale=[0.01] * 32, quantized_dimension=0,
                  data=np.ones((32, 1, 1, 8), np.int8))
    bias = dict(shape=[32], dtype=np.int32, scale=[0.0005] * 32, quantized_dimension=0, data=np.zeros(32, np.int32))
    model = build_single_op_model(
        "CONV_2D", [dict(shape=[1, 160, 160, 8], **Q), weight, bias], [dict(shape=[1, 160, 160, 32], **Q)],
        padding="VALID", stride_h=1, stride_w=1,
    )
    result = cli("compile", write(tmp_path, model), "--target", "stm32f411", "-o", str(tmp_path / "o"))
    assert_bad_input(result, "does not fit stm32f411", "(SRAM 131,072 B)", "weights 544 B")  # int8 weights + requantization tables


def test_unknown_target():
    result = cli("memory", KWS, "--target", "stm32f999")
    assert result.returncode == 2 and "invalid choice" in result.stderr and "Traceback" not in result.stderr


def test_run_json_on_the_host_board():
    result = cli("run", KWS, "--board", "host", "--inputs", "2", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"model", "board", "bit_exact", "cycles", "cycles_source", "instructions", "macs", "arena_bytes",
            "flash_bytes", "firmware_ram_bytes"} <= set(report)
    assert report["board"] == "host" and report["bit_exact"] is True
    assert report["macs"] == 2_656_768  # MLPerf Tiny's count for the DS-CNN KWS model
