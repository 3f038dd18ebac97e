"""`tvm-tinyml compile MODEL --project qemu|stm32f746 -o DIR`: a bare-metal project that `make` builds.

`make run` of the qemu project runs the firmware in QEMU; what it prints is compared bit-exact
with TFLite Micro on the same inputs (app_main.c's pattern, reproduced by `example_inputs`).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tvm_tinyml.cli import main
from tvm_tinyml.codegen.example_c import example_inputs, parse_example_output
from tvm_tinyml.verify import reference_outputs

MODELS = Path(__file__).resolve().parent.parent / "models"


def _make(directory: Path, *targets: str) -> str:
    result = subprocess.run(["make", "-C", str(directory), *targets], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    return result.stdout


def _compile_project(model: Path, project: str, out: Path, *extra: str) -> dict:
    assert main(["compile", str(model), "--project", project, "-o", str(out), *extra]) == 0
    assert {"Makefile", "README.md", "app_main.c", "link.ld", "firmware", "model"} <= {p.name for p in out.iterdir()}
    return json.loads((out / "model" / "metadata.json").read_text())


@pytest.mark.parametrize("name, target", [("kws_ref_model", "stm32f746"), ("ad01_int8", "stm32f412")])
def test_qemu_project_make_run_is_bit_exact(tmp_path, name, target):
    model = MODELS / f"{name}.tflite"
    meta = _compile_project(model, "qemu", tmp_path / "project", "--target", target)
    printed = _make(tmp_path / "project", "run")
    want = reference_outputs(str(model), meta, [example_inputs(meta)])[0]
    assert any(len(np.unique(out)) > 1 for out in want), "degenerate reference outputs"
    for got, expected in zip(parse_example_output(printed, meta), want):
        np.testing.assert_array_equal(got, expected)
    assert f"top class: {int(np.argmax(want[0]))}\n" in printed
    cycles = [line for line in printed.splitlines() if line.startswith("cycles: ")]
    assert len(cycles) == 1 and int(cycles[0].split()[1]) > meta["macs"] // 4


def test_stm32f746_project_builds_both_entries(tmp_path):
    out = tmp_path / "project"
    _compile_project(MODELS / "kws_ref_model.tflite", "stm32f746", out)
    assert "build/firmware.elf" in _make(out)
    app_symbols = subprocess.run(["arm-none-eabi-nm", str(out / "build" / "firmware.elf")], capture_output=True, text=True).stdout
    assert " tinyml_app_main" in app_symbols and " tinyml_firmware_serve" not in app_symbols
    _make(out, "clean")
    _make(out, "ENTRY=tinyml_firmware_serve")
    serve_symbols = subprocess.run(["arm-none-eabi-nm", str(out / "build" / "firmware.elf")], capture_output=True, text=True).stdout
    assert " tinyml_firmware_serve" in serve_symbols and " tinyml_app_main" not in serve_symbols
    assert "make flash" in (out / "README.md").read_text()


def test_project_refuses_a_target_of_another_core(tmp_path, capsys):
    code = main(["compile", str(MODELS / "ad01_int8.tflite"), "--project", "stm32f746", "--target", "stm32f412", "-o", str(tmp_path / "p")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["tvm-tinyml: error: --project stm32f746: target stm32f412 is a cortex-m4; the project needs cortex-m7"]


def test_project_refuses_a_non_empty_directory(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["compile", str(MODELS / "ad01_int8.tflite"), "--project", "qemu", "-o", str(tmp_path)]) == 2
    assert "exists and is not an empty directory" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_project_relative_output_directory(tmp_path, monkeypatch):
    """-o relative to the caller's directory (the template server runs elsewhere)."""
    monkeypatch.chdir(tmp_path)
    _compile_project(MODELS / "ad01_int8.tflite", "qemu", Path("relative"))
    assert (tmp_path / "relative" / "Makefile").is_file()
