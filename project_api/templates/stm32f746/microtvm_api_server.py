"""Project API server for the STM32F746 (DISCO-F746NG): bare-metal firmware built with
arm-none-eabi-gcc, flashed with openocd or st-flash, the transport over the ST-LINK virtual COM
port with pyserial; runs are timed with DWT->CYCCNT."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from project_api.arm_build import fill_template, link_firmware, memory_report, require_tool, run_tool, stack_placeholders
from project_api.server import IoTimeoutError, ProjectOption, ServerError, TransportClosedError, TransportTimeouts, main
from project_api.standalone import StandaloneBoard
from project_api.template_base import TemplateHandler

CPU_FLAGS = ["-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-sp-d16"]
RAM_BYTES, FLASH_BYTES, DTCM_BYTES = 320 * 1024, 1024 * 1024, 64 * 1024
DTCM_RESERVE = 4096  # room left in DTCM for .data and .bss when the arena goes there too
FLASH_TIMEOUT_SEC = 120
OPENOCD_BOARD = "board/stm32f7discovery.cfg"
FLASH_RULES = f"""flash: $(ELF)
\topenocd -f {OPENOCD_BOARD} -c "program $(ELF) verify reset exit"

.PHONY: flash
"""


def arena_region(arena_bytes: int, stack_bytes: int) -> str:
    """DTCM when the arena fits beside the stacks, .data and .bss; the main SRAM otherwise."""
    stacks = sum(stack_placeholders(stack_bytes).values())
    return "DTCM" if arena_bytes + stacks + DTCM_RESERVE <= DTCM_BYTES else "SRAM"


class Stm32f746Handler(TemplateHandler):
    platform_name = "stm32f746"
    boards = ["stm32f746"]
    template_files = ["board_stm32f746.c", "link.ld.in"]
    firmware_files = TemplateHandler.firmware_files + ["cortex_m.c"]
    serial_port = None

    def extra_options(self) -> list[ProjectOption]:
        return [
            ProjectOption("serial_port", "str", "the ST-LINK virtual COM port, e.g. /dev/ttyACM0", required=["open_transport"]),
            ProjectOption("baud_rate", "int", "USART1 baud rate", default=115200, optional=["generate_project", "open_transport"]),
            ProjectOption("flash_tool", "str", "program with openocd or st-flash (auto: whichever is installed)",
                          choices=["auto", "openocd", "st-flash"], default="auto", optional=["flash"]),
        ]

    def generate_board_files(self, project_dir: Path, metadata: dict, options: dict) -> None:
        fill_template(project_dir / "link.ld.in", project_dir / "link.ld", {
            **stack_placeholders(options["stack_bytes"]),
            "ARENA_REGION": arena_region(metadata["arena_bytes"], options["stack_bytes"]),
        })

    def standalone_board(self, options: dict) -> StandaloneBoard:
        run_help = (f"make flash      # program the DISCO-F746NG with openocd (apt-get install openocd); the outputs\n"
                    f"                # arrive on the ST-LINK virtual COM port (e.g. /dev/ttyACM0) at {options['baud_rate']} baud")
        return StandaloneBoard("stm32f746", CPU_FLAGS, "board_stm32f746.c", FLASH_RULES, run_help,
                               defines=(f"TINYML_BAUD_RATE={options['baud_rate']}u",))

    @property
    def elf(self) -> Path:
        return self.build_dir / "firmware.elf"

    def build(self, options: dict) -> None:
        resolved = self.options("build", options)
        self.build_dir.mkdir(exist_ok=True)
        sources = self.model_sources() + [self.directory / "firmware" / "cortex_m.c", self.directory / "board_stm32f746.c"]
        link_firmware(sources, self.include_dirs(), CPU_FLAGS, self.directory / "link.ld", self.elf,
                      defines=(f"TINYML_BAUD_RATE={resolved['baud_rate']}u", *self.model_defines(resolved)))
        self.write_firmware_info(memory_report(self.elf, RAM_BYTES, FLASH_BYTES))

    def flash(self, options: dict) -> None:
        tool = self.options("flash", options)["flash_tool"]
        self.firmware_info()
        if tool == "auto":
            tool = next((t for t in ("openocd", "st-flash") if shutil.which(t)), None)
            if tool is None:
                raise ServerError("neither openocd nor st-flash found on PATH: apt-get install openocd (or stlink-tools)")
        if tool == "openocd":
            openocd = require_tool("openocd", "apt-get install openocd")
            run_tool([openocd, "-f", OPENOCD_BOARD, "-c", f"program {self.elf} verify reset exit"], "openocd", FLASH_TIMEOUT_SEC)
        else:
            binary = self.elf.with_suffix(".bin")
            run_tool([require_tool("arm-none-eabi-objcopy", "apt-get install binutils-arm-none-eabi"), "-O", "binary",
                      str(self.elf), str(binary)], "arm-none-eabi-objcopy")
            st_flash = require_tool("st-flash", "apt-get install stlink-tools")
            run_tool([st_flash, "--reset", "write", str(binary), "0x08000000"], "st-flash", FLASH_TIMEOUT_SEC)

    def open_transport(self, options: dict) -> TransportTimeouts:
        resolved = self.options("open_transport", options)
        port = resolved["serial_port"]
        if not os.path.exists(port):
            raise ServerError(f"serial port {port} not found: is the board plugged in? (ST-LINK VCP is usually /dev/ttyACM0)")
        try:
            import serial
        except ImportError:
            raise ServerError("pyserial is not installed: pip install pyserial") from None
        self.close_transport()
        try:
            self.serial_port = serial.Serial(port, resolved["baud_rate"], timeout=1, write_timeout=5)
        except serial.SerialException as err:
            raise ServerError(f"cannot open serial port {port}: {err}") from None
        self.serial_port.reset_input_buffer()
        return TransportTimeouts(0.0, 10.0, 30.0)

    def close_transport(self) -> None:
        if self.serial_port is not None:
            self.serial_port.close()
            self.serial_port = None

    def _port(self, method: str):
        if self.serial_port is None:
            raise ServerError(f"{method}: the transport is not open: call open_transport first")
        return self.serial_port

    def read_transport(self, n: int, timeout_sec: float | None) -> bytes:
        import serial

        port = self._port("read_transport")
        port.timeout = timeout_sec
        try:
            data = port.read(1)
            if data:
                data += port.read(min(n - 1, port.in_waiting))
        except serial.SerialException as err:
            raise TransportClosedError(f"serial port: {err}") from None
        if not data:
            raise IoTimeoutError(f"no data from the board within {timeout_sec} s")
        return data

    def write_transport(self, data: bytes, timeout_sec: float | None) -> None:
        import serial

        port = self._port("write_transport")
        port.write_timeout = timeout_sec
        try:
            port.write(data)
            port.flush()
        except serial.SerialTimeoutException:
            raise IoTimeoutError(f"could not write to the board within {timeout_sec} s") from None
        except serial.SerialException as err:
            raise TransportClosedError(f"serial port: {err}") from None


if __name__ == "__main__":
    main(Stm32f746Handler(Path(__file__).resolve().parent))
