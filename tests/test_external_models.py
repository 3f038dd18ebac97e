"""Real-world models written by other people (`models/external/`, licenses in its README):
each compiles for an STM32H743, is bit-exact against TFLite Micro on the host for 20 inputs, and
on the emulated Cortex-M7 (qemu-m7 with the H743's limits) for 3 inputs."""

from __future__ import annotations

from pathlib import Path

import pytest

import tvm_tinyml
from tvm_tinyml.run import run_on_board
from tvm_tinyml.verify import verify

EXTERNAL = Path(__file__).resolve().parent.parent / "models" / "external"
MODELS = sorted(p.stem for p in EXTERNAL.glob("*.tflite"))


@pytest.fixture(scope="module", params=MODELS)
def model(request) -> str:
    return str(EXTERNAL / f"{request.param}.tflite")


def test_compiles_for_stm32h743(model, tmp_path):
    artifact = tvm_tinyml.build(model, target="stm32h743")
    artifact.export(tmp_path)
    assert artifact.memory.arena_bytes <= artifact.target.sram_bytes


def test_bit_exact_on_host(model):
    result = verify(model, inputs=20)
    assert result.bit_exact, result


def test_bit_exact_on_qemu_m7(model):
    result = run_on_board(model, "qemu-m7", inputs=3, target="stm32h743")
    assert result.bit_exact, result
    assert result.instructions > 0
