"""`tvm-tinyml profile`: counts at every layer mark, adding up to the whole run, matching `run`;
the layer marks compile to nothing in a normal build."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

import tvm_tinyml
from project_api.firmware_protocol import LayerCounts
from tvm_tinyml.profile import _segments, profile_on_board
from tvm_tinyml.run import run_on_board

MODELS = Path(__file__).resolve().parent.parent / "models"
KWS = str(MODELS / "kws_ref_model.tflite")
LAYER_FIELDS = {"index", "op", "kernel", "config", "macs", "instructions", "cycles"}


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tvm_tinyml.cli", *args], capture_output=True, text=True, timeout=600)


def test_layer_counts_decode_and_segments():
    payload = struct.pack("<II", 3, 2) + struct.pack("<IQQ", 3, 100, 40) + struct.pack("<IQQ", 1, 250, 0)
    counts = LayerCounts.decode(payload)
    assert counts.marks == 3 and counts.cycles == [100, 250] and counts.instructions == [40, None]
    assert _segments([10, 15, 40], 100) == [5, 25, 60]
    assert _segments([10, None], 100) == [None, None]


def test_kws_profile_adds_up_and_matches_run():
    result = cli("profile", KWS, "--board", "qemu-m7", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"model", "board", "instructions", "cycles", "macs", "layers"} <= set(report)
    layers = report["layers"]
    assert [layer["index"] for layer in layers] == list(range(12))  # KWS: 12 kernel calls, in order
    assert all(LAYER_FIELDS <= set(layer) for layer in layers)
    assert all(layer["instructions"] > 0 and layer["cycles"] > 0 for layer in layers)
    assert sum(layer["macs"] for layer in layers) == report["macs"] == 2_656_768
    layer_sum = sum(layer["instructions"] for layer in layers)
    assert 0.99 * report["instructions"] <= layer_sum <= report["instructions"]
    assert abs(sum(layer["cycles"] for layer in layers) - report["cycles"]) <= 0.01 * report["cycles"]
    run = run_on_board(KWS, "qemu-m7", inputs=1)  # the plain firmware, no marks
    assert abs(report["instructions"] - run.instructions) <= 0.01 * run.instructions
    convs = [layer for layer in layers if layer["op"] == "conv2d"]
    assert convs and all(layer["config"] and "simd" in layer["config"] for layer in convs)
    assert report["bit_exact"] and "conv2d" in result.stdout  # the table precedes the JSON line


def test_patch_stage_is_one_row():
    result = profile_on_board(KWS, "qemu-m4", patch=(3, 2))
    stage = result.layers[0]
    assert stage.op.startswith("patch stage") and stage.config == {"patches": 4}
    assert result.bit_exact and len(result.layers) == 10  # the stage, then the 9 layers after it
    assert sum(layer.instructions for layer in result.layers) <= result.instructions


def test_layer_marks_compile_to_nothing_unless_profiling(tmp_path):
    artifact = tvm_tinyml.build(KWS, target="stm32f746")
    source = artifact.sources["kws_ref_model.c"]
    assert source.count("  TINYML_LAYER(") == 12  # one mark per layer
    out = artifact.export(tmp_path)
    gcc = shutil.which("arm-none-eabi-gcc")
    flags = ["-mcpu=cortex-m7", "-mthumb", "-O2", "-Wall", "-Wextra", "-Werror", f"-I{out}", "-c", str(out / "kws_ref_model.c")]
    plain = subprocess.run([gcc, *flags, "-o", str(tmp_path / "plain.o")], capture_output=True, text=True)
    marked = subprocess.run([gcc, *flags, "-DTINYML_PROFILE_LAYERS", "-o", str(tmp_path / "marked.o")], capture_output=True, text=True)
    assert plain.returncode == 0 and marked.returncode == 0, plain.stderr + marked.stderr
    nm = shutil.which("arm-none-eabi-nm")
    assert "tinyml_layer_mark" not in subprocess.run([nm, str(tmp_path / "plain.o")], capture_output=True, text=True).stdout
    assert " U tinyml_layer_mark" in subprocess.run([nm, str(tmp_path / "marked.o")], capture_output=True, text=True).stdout


@pytest.mark.parametrize("args, words", [
    (["--board", "host"], "invalid choice: 'host'"),
    (["--board", "stm32f746"], "stm32f746: "),  # built with its marks; no board attached here
])
def test_profile_refusals_are_one_line(args, words):
    result = cli("profile", KWS, *args)
    assert result.returncode == 2 and words in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
