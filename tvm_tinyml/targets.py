"""Microcontroller targets: core, DSP/FPU features, memory sizes, clock, and the TVM target."""

from __future__ import annotations

from dataclasses import dataclass

from tvm_tinyml.errors import TinyMLError


@dataclass(frozen=True)
class McuTarget:
    """One board or emulator we compile for."""

    name: str
    core: str
    dsp: bool
    fpu: str | None
    sram_bytes: int
    flash_bytes: int
    clock_hz: int
    description: str

    @property
    def tvm_target(self) -> dict:
        """The TVM target (C source) kernels are generated for."""
        if self.core == "host":
            return {"kind": "c"}
        return {"kind": "c", "mcpu": self.core, "keys": ["arm_cpu", "cpu"]}

    @property
    def gcc_flags(self) -> list[str]:
        """arm-none-eabi-gcc machine flags (empty for the host)."""
        if self.core == "host":
            return []
        flags = [f"-mcpu={self.core}", "-mthumb"]
        if self.fpu:
            flags += ["-mfloat-abi=hard", f"-mfpu={self.fpu}"]
        return flags


_KIB = 1024
TARGETS: dict[str, McuTarget] = {
    t.name: t
    for t in [
        McuTarget("stm32f746", "cortex-m7", True, "fpv5-sp-d16", 320 * _KIB, 1024 * _KIB, 216_000_000, "STM32F746 (DISCO-F746NG, NUCLEO-F746ZG)"),
        McuTarget("stm32h743", "cortex-m7", True, "fpv5-d16", 1024 * _KIB, 2048 * _KIB, 480_000_000, "STM32H743 (NUCLEO-H743ZI)"),
        McuTarget("stm32f412", "cortex-m4", True, "fpv4-sp-d16", 256 * _KIB, 1024 * _KIB, 100_000_000, "STM32F412 (NUCLEO-F412ZG)"),
        McuTarget("stm32l4r5", "cortex-m4", True, "fpv4-sp-d16", 640 * _KIB, 2048 * _KIB, 120_000_000, "STM32L4R5 (NUCLEO-L4R5ZI)"),
        McuTarget("stm32f411", "cortex-m4", True, "fpv4-sp-d16", 128 * _KIB, 512 * _KIB, 100_000_000, "STM32F411 (NUCLEO-F411RE)"),
        McuTarget("qemu-m7", "cortex-m7", True, "fpv5-d16", 320 * _KIB, 1024 * _KIB, 216_000_000, "QEMU mps2-an500, limits of an STM32F746"),
        McuTarget("qemu-m4", "cortex-m4", True, "fpv4-sp-d16", 320 * _KIB, 1024 * _KIB, 216_000_000, "QEMU mps2-an386, limits of an STM32F746"),
        McuTarget("host", "host", False, None, 1 << 40, 1 << 40, 0, "the build machine (cc), for tests"),
    ]
}


def get_target(name: str) -> McuTarget:
    """Look a target up by name, with a clear error listing the known ones."""
    try:
        return TARGETS[name]
    except KeyError:
        raise TinyMLError(f"unknown target {name!r}; known targets: {', '.join(TARGETS)}") from None
