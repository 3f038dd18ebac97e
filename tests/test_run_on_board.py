"""`run_on_board`: a model built, flashed through the Project API, checked bit-exact against
TFLite Micro, with deterministic counts on QEMU; every failure is one TinyMLError, in bounded time."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from tvm_tinyml.errors import TinyMLError
from tvm_tinyml.run import run_on_board

KWS = str(Path(__file__).resolve().parent.parent / "models" / "kws_ref_model.tflite")


def test_kws_on_host_is_bit_exact():
    result = run_on_board(KWS, "host", inputs=3)
    assert result.bit_exact and result.passed
    assert (result.cycles, result.cycles_source, result.instructions) == (None, None, None)
    assert result.macs == 2_656_768


@pytest.mark.parametrize("board", ["qemu-m7", "qemu-m4"])
def test_kws_on_qemu_is_bit_exact_with_deterministic_counts(board):
    first = run_on_board(KWS, board, inputs=2, seed=1)
    second = run_on_board(KWS, board, inputs=2, seed=1)  # counts depend on the data: same inputs again
    assert first.bit_exact and second.bit_exact
    assert first.cycles_source == "estimate-m4-table"
    assert first.cycles == second.cycles and first.instructions == second.instructions
    assert first.instructions > first.macs  # at least one instruction per multiply-accumulate
    assert 1.0 < first.cycles / first.instructions < 3.0
    record = first.to_dict()
    for field in ("model", "board", "bit_exact", "cycles", "cycles_source", "instructions", "macs", "arena_bytes",
                  "flash_bytes", "firmware_ram_bytes"):
        assert field in record
    assert record["firmware_ram_bytes"] > record["arena_bytes"]
    assert record["flash_bytes"] > record["weights_bytes"]


def tools_dir(tmp_path: Path, tools: list[str]) -> str:
    """A directory holding links to just `tools`, to be the whole PATH."""
    directory = tmp_path / "bin"
    directory.mkdir()
    for tool in tools:
        if shutil.which(tool):
            os.symlink(shutil.which(tool), directory / tool)
    return str(directory)


def test_missing_qemu_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", tools_dir(tmp_path, ["arm-none-eabi-gcc", "arm-none-eabi-size", "arm-none-eabi-nm", "cc", "as", "ld"]))
    start = time.monotonic()
    with pytest.raises(TinyMLError, match=r"^qemu-m7: flash: qemu-system-arm not found on PATH: install QEMU"):
        run_on_board(KWS, "qemu-m7", inputs=1)
    assert time.monotonic() - start < 60


def test_absent_serial_port_or_flash_tool_is_one_clear_error(tmp_path, monkeypatch):
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc not installed")
    monkeypatch.setenv("PATH", tools_dir(tmp_path, ["arm-none-eabi-gcc", "arm-none-eabi-size", "arm-none-eabi-nm"]))
    with pytest.raises(TinyMLError, match="^stm32f746: flash: neither openocd nor st-flash found on PATH"):
        run_on_board(KWS, "stm32f746", inputs=1, serial="/dev/tinyml-no-such-port")


def test_unknown_board():
    with pytest.raises(TinyMLError, match="unknown board 'esp32'"):
        run_on_board(KWS, "esp32")
