"""The build glue of an export (CMakeLists.txt, `<name>.mk`, example_main.c) works as a user would use it.

For two bundled models: cmake with the exported arm-none-eabi toolchain file builds the static
library for cortex-m7 and cortex-m4 with -Wall -Werror; the example built on the host (through
CMake and through the .mk) prints what `run_host` and TFLite Micro compute for its inputs.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

import tvm_tinyml
from tvm_tinyml.codegen.example_c import example_inputs, parse_example_output
from tvm_tinyml.verify import reference_outputs

MODELS = Path(__file__).resolve().parent.parent / "models"
EXPORT_MODELS = ["kws_ref_model", "ad01_int8"]
CORE_TARGETS = {"cortex-m7": "stm32f746", "cortex-m4": "stm32f412"}
WARNINGS = "-Wall -Wextra -Werror"


def _run(command: list[str], cwd: Path | None = None) -> str:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout}\n{result.stderr}"
    return result.stdout




@pytest.fixture(scope="module", params=EXPORT_MODELS)
def host_export(request, tmp_path_factory):
    """(model path, artifact, export directory) for the host target."""
    model = str(MODELS / f"{request.param}.tflite")
    artifact = tvm_tinyml.build(model, target="host")
    return model, artifact, artifact.export(tmp_path_factory.mktemp(request.param))


def _expected(model: str, artifact) -> list[np.ndarray]:
    """What the example must print: run_host on its inputs, itself equal to TFLite Micro's outputs."""
    inputs = example_inputs(artifact.metadata)
    ours = artifact.run_host(inputs)
    reference = reference_outputs(model, artifact.metadata, [inputs])[0]
    for got, want in zip(ours, reference):
        np.testing.assert_array_equal(got, want)
    assert any(len(np.unique(out)) > 1 for out in ours), "degenerate outputs: the test would not see a wrong input"
    return ours


def _check_printed(text: str, model: str, artifact) -> None:
    expected = _expected(model, artifact)
    for got, want in zip(parse_example_output(text, artifact.metadata), expected):
        np.testing.assert_array_equal(got, want)
    assert f"top class: {int(np.argmax(expected[0]))}\n" in text


def _user_project(directory: Path, export: Path, name: str, example: bool) -> Path:
    """A user's CMake project that pulls the export in with add_subdirectory (warnings as errors)."""
    directory.mkdir()
    text = f"cmake_minimum_required(VERSION 3.13)\nproject(app C)\nadd_compile_options({WARNINGS})\nadd_subdirectory({export} {name})\n"
    if example:
        text += f"add_executable(app {export / 'example_main.c'})\ntarget_link_libraries(app PRIVATE {name})\n"
    (directory / "CMakeLists.txt").write_text(text)
    return directory


@pytest.mark.parametrize("core", sorted(CORE_TARGETS))
@pytest.mark.parametrize("name", EXPORT_MODELS)
def test_cmake_cross_builds_library(tmp_path, name, core):
    artifact = tvm_tinyml.build(str(MODELS / f"{name}.tflite"), target=CORE_TARGETS[core])
    out = artifact.export(tmp_path / "export")
    app = _user_project(tmp_path / "app", out, name, example=False)
    build = tmp_path / "build"
    _run(["cmake", "-S", str(app), "-B", str(build), f"-DCMAKE_TOOLCHAIN_FILE={out / 'arm-none-eabi.cmake'}",
          "-DCMAKE_EXPORT_COMPILE_COMMANDS=ON"])
    _run(["cmake", "--build", str(build)])
    (command,) = json.loads((build / "compile_commands.json").read_text())
    assert command["command"].split()[0].endswith("arm-none-eabi-gcc")
    assert {f"-mcpu={core}", "-Werror", "-std=c99"} <= set(command["command"].split())
    symbols = _run(["arm-none-eabi-nm", "--defined-only", str(build / name / f"lib{name}.a")])
    assert f" T {name}_run" in symbols


def test_cmake_add_subdirectory_and_example(tmp_path, host_export):
    model, artifact, out = host_export
    app = _user_project(tmp_path / "app", out, artifact.name, example=True)
    _run(["cmake", "-S", str(app), "-B", str(tmp_path / "build")])
    _run(["cmake", "--build", str(tmp_path / "build")])
    _check_printed(_run([str(tmp_path / "build" / "app")]), model, artifact)


def test_cmake_example_option(tmp_path, host_export):
    model, artifact, out = host_export
    _run(["cmake", "-S", str(out), "-B", str(tmp_path / "build"), f"-DCMAKE_C_FLAGS={WARNINGS}", f"-D{artifact.name.upper()}_EXAMPLE=ON"])
    _run(["cmake", "--build", str(tmp_path / "build")])
    _check_printed(_run([str(tmp_path / "build" / f"{artifact.name}_example")]), model, artifact)


def test_make_fragment_builds_example(tmp_path, host_export):
    model, artifact, out = host_export
    var = artifact.name.upper()
    (tmp_path / "Makefile").write_text(
        f"include {out / (artifact.name + '.mk')}\n"
        f"SRCS := $({var}_EXAMPLE) $({var}_SRCS)\n"
        f"example: $(SRCS)\n\t$(CC) {WARNINGS} $({var}_CFLAGS) $(SRCS) -o $@\n"
    )
    _run(["make", "-C", str(tmp_path), "example"])
    _check_printed(_run([str(tmp_path / "example")]), model, artifact)


@pytest.mark.parametrize("name", EXPORT_MODELS)
def test_make_fragment_cross_compiles(tmp_path, name):
    artifact = tvm_tinyml.build(str(MODELS / f"{name}.tflite"), target="stm32f412")
    out = artifact.export(tmp_path / "export")
    var = name.upper()
    (tmp_path / "Makefile").write_text(
        f"include {out / (name + '.mk')}\n"
        f"model.o: $({var}_SRCS)\n\tarm-none-eabi-gcc $({var}_MACHINE_FLAGS) {WARNINGS} $({var}_CFLAGS) -c $< -o $@\n"
    )
    log = _run(["make", "-C", str(tmp_path), "model.o"])
    assert "-mcpu=cortex-m4" in log.split()
    symbols = _run(["arm-none-eabi-nm", "--defined-only", str(tmp_path / "model.o")])
    assert f" T {name}_run" in symbols
