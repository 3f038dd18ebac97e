"""`run_on_board`: a model built, flashed through the Project API, checked bit-exact against
TFLite Micro, with deterministic counts on QEMU; every failure is one TinyMLError, in bounded time."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from tflite_builder import ModelBuilder
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


def _pointwise_model(tmp_path: Path, hw: int, in_dtype=np.int8, out_dtype=np.int8) -> str:
    """QUANTIZE (when the input is uint8) -> 1x1 conv 16 -> 8 channels -> QUANTIZE (when the output is uint8)."""
    rng = np.random.default_rng(0)
    b = ModelBuilder()
    x = b.add_tensor([1, hw, hw, 16], in_dtype, scale=1 / 255, zero_point=0 if in_dtype == np.uint8 else -128)
    q = x
    if in_dtype == np.uint8:
        q = b.add_tensor([1, hw, hw, 16], np.int8, scale=1 / 255, zero_point=-128)
        b.add_operator("QUANTIZE", [x], [q])
    w_scales = rng.uniform(0.002, 0.02, 8)
    w = b.add_tensor([8, 1, 1, 16], np.int8, scale=w_scales, data=rng.integers(-127, 128, (8, 1, 1, 16)))
    bias = b.add_tensor([8], np.int32, scale=w_scales / 255, data=rng.integers(-3000, 3000, 8))
    y = b.add_tensor([1, hw, hw, 8], np.int8, scale=0.004, zero_point=3)
    b.add_operator("CONV_2D", [q, w, bias], [y], padding="VALID", stride_w=1, stride_h=1)
    out = y
    if out_dtype == np.uint8:
        out = b.add_tensor([1, hw, hw, 8], np.uint8, scale=0.004, zero_point=131)
        b.add_operator("QUANTIZE", [y], [out])
    path = tmp_path / f"pointwise_{hw}.tflite"
    path.write_bytes(b.build([x], [out]))
    return str(path)


def test_uint8_ends_on_qemu_are_bit_exact(tmp_path):
    """uint8 input and output bytes travel to the firmware and back in their own dtype."""
    model = _pointwise_model(tmp_path, 8, np.uint8, np.uint8)
    result = run_on_board(model, "qemu-m7", inputs=2)
    assert result.bit_exact and result.passed


def test_qemu_board_takes_a_larger_targets_limits(tmp_path):
    """A 400 KB arena does not fit the default qemu-m7 (an STM32F746's 320 KB) but runs as an STM32H743."""
    model = _pointwise_model(tmp_path, 160)
    with pytest.raises(TinyMLError, match="does not fit qemu-m7: arena"):
        run_on_board(model, "qemu-m7", inputs=1)
    result = run_on_board(model, "qemu-m7", inputs=1, target="stm32h743")
    assert result.bit_exact and result.arena_bytes > 320 * 1024
    with pytest.raises(TinyMLError, match="its core cortex-m7 is not the qemu-m4 board's cortex-m4"):
        run_on_board(model, "qemu-m4", inputs=1, target="stm32h743")


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
