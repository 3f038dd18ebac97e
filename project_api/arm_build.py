"""Build firmware with arm-none-eabi-gcc and read its memory use from the linked ELF."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from project_api.server import ServerError

CFLAGS = ["-std=c99", "-O2", "-Wall", "-Werror", "-ffunction-sections", "-fdata-sections"]
LDFLAGS = ["-nostartfiles", "--specs=nano.specs", "-Wl,--gc-sections", "-lm"]  # -lm: expf/logf of float model ends
TOOLCHAIN_HINT = "install the Arm toolchain: apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi"
HOST_CC_HINT = "install a host C compiler: apt-get install gcc"
FLASH_SECTIONS = (".text", ".ARM.exidx", ".data")
RAM_SECTIONS = (".stack", ".data", ".bss", ".arena")
_BUILD_TIMEOUT_SEC = 600
HANDLER_STACK_BYTES = 1024  # exceptions (the fault handler) run on their own stack
STACK_GUARD_BYTES = 1024  # below the process stack, made inaccessible by the MPU (cortex_m.c)


def stack_placeholders(stack_bytes: int) -> dict[str, int]:
    """The linker script values of the stack layout shared by the Cortex-M templates."""
    return {"STACK_BYTES": stack_bytes, "HANDLER_STACK_BYTES": HANDLER_STACK_BYTES, "STACK_GUARD_BYTES": STACK_GUARD_BYTES}


def require_tool(name: str, hint: str) -> str:
    """The tool's path, or a ServerError saying how to install it."""
    path = shutil.which(name)
    if path is None:
        raise ServerError(f"{name} not found on PATH: {hint}")
    return path


def run_tool(command: list[str], what: str, timeout_sec: float = _BUILD_TIMEOUT_SEC) -> str:
    """Run a build tool; a failure becomes a ServerError quoting its first error line."""
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_sec)
    except subprocess.TimeoutExpired:
        raise ServerError(f"{what} did not finish within {timeout_sec} s") from None
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or [f"exit code {result.returncode}"]
        overflow = [line for line in lines if "overflowed by" in line]
        first = overflow[0] if overflow else next((line for line in lines if "error" in line), lines[0])
        reason = "firmware does not fit the part" if overflow else f"{what} failed"
        raise ServerError(f"{reason}: {first.strip()}", {"stderr": result.stderr[-4000:]})
    return result.stdout


def link_firmware(
    sources: list[Path], include_dirs: list[Path], cpu_flags: list[str], linker_script: Path, elf: Path, defines: tuple[str, ...] = ()
) -> None:
    """Compile and link `sources` into `elf` (one gcc call); `defines` are NAME=VALUE."""
    gcc = require_tool("arm-none-eabi-gcc", TOOLCHAIN_HINT)
    includes = [f"-I{d}" for d in include_dirs]
    command = [gcc, *cpu_flags, *CFLAGS, *(f"-D{d}" for d in defines), *includes, *map(str, sources), *LDFLAGS, f"-T{linker_script}",
               f"-Wl,-Map={elf.with_suffix('.map')}", "-o", str(elf)]
    run_tool(command, "arm-none-eabi-gcc")


def section_sizes(elf: Path) -> dict[str, int]:
    """Section name -> size in bytes (arm-none-eabi-size -A)."""
    output = run_tool([require_tool("arm-none-eabi-size", TOOLCHAIN_HINT), "-A", str(elf)], "arm-none-eabi-size")
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\.\S+)\s+(\d+)\s+\d+", output, re.M)}


def symbol_address(elf: Path, name: str) -> int:
    """Address of a function symbol (the Thumb bit cleared)."""
    output = run_tool([require_tool("arm-none-eabi-nm", TOOLCHAIN_HINT), str(elf)], "arm-none-eabi-nm")
    for line in output.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[2] == name:
            return int(fields[0], 16) & ~1
    raise ServerError(f"{elf.name} has no symbol {name}")


def memory_report(elf: Path, ram_bytes: int, flash_bytes: int) -> dict:
    """What the firmware takes: flash (code, constants, .data image) and RAM (stacks, .data, .bss, arena)."""
    sizes = section_sizes(elf)
    used_flash = sum(sizes.get(s, 0) for s in FLASH_SECTIONS)
    used_ram = sum(sizes.get(s, 0) for s in RAM_SECTIONS)
    if used_flash > flash_bytes or used_ram > ram_bytes:
        raise ServerError(f"firmware does not fit: RAM {used_ram:,} B of {ram_bytes:,} B, flash {used_flash:,} B of {flash_bytes:,} B")
    return {"elf": str(elf), "flash_bytes": used_flash, "ram_bytes": used_ram, "stack_bytes": sizes.get(".stack", 0), "sections": sizes,
            "ram_bytes_available": ram_bytes, "flash_bytes_available": flash_bytes}


def fill_template(template: Path, output: Path, values: dict[str, int | str]) -> None:
    """Copy `template` to `output`, replacing each @KEY@ with its value."""
    text = template.read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", str(value))
    if "@" in re.sub(r"/\*.*?\*/", "", text, flags=re.S):
        raise ServerError(f"{template.name}: unfilled placeholder")
    output.write_text(text)
