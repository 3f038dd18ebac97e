"""Project API server for QEMU's Cortex-M boards: qemu-m7 (mps2-an500) and qemu-m4 (mps2-an386).

build: the firmware (arm-none-eabi-gcc, linked within the emulated STM32 part's RAM and flash)
and the tinyml_cycles plugin (host cc). flash: boots qemu-system-arm with the firmware, the
UART on stdio and the plugin counting between the firmware's markers. The transport is the
UART through QEMU's stdio pipes; the firmware's EXIT ends QEMU through semihosting.
"""

from __future__ import annotations

from pathlib import Path

from project_api.arm_build import (
    HOST_CC_HINT,
    fill_template,
    link_firmware,
    memory_report,
    require_tool,
    run_tool,
    stack_placeholders,
    symbol_address,
)
from project_api.process_channel import ProcessChannelHandler
from project_api.server import ProjectOption, main
from project_api.standalone import StandaloneBoard

MACHINES = {
    "qemu-m7": ("mps2-an500", ["-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-d16"]),
    "qemu-m4": ("mps2-an386", ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]),
}
PLUGIN_SOURCE = "tinyml_cycles_plugin.c"
PLUGIN = "libtinyml_cycles.so"
COUNTS_FILE = "tinyml_counts.bin"  # board_qemu.c reads it back through semihosting
QEMU_HINT = "install QEMU: apt-get install qemu-system-arm"
PLUGIN_CFLAGS = ["-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror"]
# The Makefile's `run`: QEMU in build/ (the plugin's counts file is relative to it), the UART on stdout.
RUN_RULES = """PLUGIN := build/{plugin}
symbol = 0x$(shell arm-none-eabi-nm $(ELF) | awk '$$3 == "$(1)" {{print $$1}}')

$(PLUGIN): {plugin_source}
\t@mkdir -p build
\tcc {plugin_cflags} -o $@ $<

run: $(ELF) $(PLUGIN)
\tcd build && qemu-system-arm -M {machine} -display none -monitor none -serial stdio \\
\t  -semihosting-config enable=on,target=native -kernel firmware.elf \\
\t  -plugin ./{plugin},begin=$(call symbol,tinyml_marker_begin),end=$(call symbol,tinyml_marker_end),out={counts}

.PHONY: run
"""


class QemuHandler(ProcessChannelHandler):
    platform_name = "qemu"
    boards = list(MACHINES)
    template_files = ["board_qemu.c", "link.ld.in", PLUGIN_SOURCE]
    firmware_files = ProcessChannelHandler.firmware_files + ["cortex_m.c"]

    def extra_options(self) -> list[ProjectOption]:
        return [
            ProjectOption("ram_bytes", "int", "RAM the linker may use (default: an STM32F746's 320 KB)",
                          default=320 * 1024, optional=["generate_project"]),
            ProjectOption("flash_bytes", "int", "flash the linker may use (default: an STM32F746's 1 MB)",
                          default=1024 * 1024, optional=["generate_project"]),
        ]

    def generate_board_files(self, project_dir: Path, metadata: dict, options: dict) -> None:
        fill_template(project_dir / "link.ld.in", project_dir / "link.ld", {
            "FLASH_BYTES": options["flash_bytes"], "RAM_BYTES": options["ram_bytes"], **stack_placeholders(options["stack_bytes"]),
        })

    def standalone_board(self, options: dict) -> StandaloneBoard:
        machine, cpu_flags = MACHINES[options["board"]]
        rules = RUN_RULES.format(plugin=PLUGIN, plugin_source=PLUGIN_SOURCE, plugin_cflags=" ".join(PLUGIN_CFLAGS),
                                 machine=machine, counts=COUNTS_FILE)
        run_help = (f"make run        # run it in QEMU ({machine}, apt-get install qemu-system-arm): the outputs, "
                    "then the cycles the tinyml_cycles plugin estimates")
        return StandaloneBoard(options["board"], cpu_flags, "board_qemu.c", rules, run_help)

    def build(self, options: dict) -> None:
        resolved = self.options("build", options)
        self.build_dir.mkdir(exist_ok=True)
        elf = self.build_dir / "firmware.elf"
        sources = self.model_sources() + [self.directory / "firmware" / "cortex_m.c", self.directory / "board_qemu.c"]
        link_firmware(sources, self.include_dirs(), MACHINES[resolved["board"]][1], self.directory / "link.ld", elf,
                      defines=self.model_defines(resolved))
        cc = require_tool("cc", f"{HOST_CC_HINT} (it builds the QEMU plugin)")
        run_tool([cc, *PLUGIN_CFLAGS, "-o", str(self.build_dir / PLUGIN),
                  str(self.directory / PLUGIN_SOURCE)], "building the QEMU plugin")
        info = memory_report(elf, resolved["ram_bytes"], resolved["flash_bytes"])
        markers = ("tinyml_marker_begin", "tinyml_marker_end") + (("tinyml_layer_mark",) if resolved["profile_layers"] else ())
        info["markers"] = {name: symbol_address(elf, name) for name in markers}
        self.write_firmware_info(info)

    def flash(self, options: dict) -> None:
        resolved = self.options("flash", options)
        qemu = require_tool("qemu-system-arm", QEMU_HINT)
        firmware = self.firmware_info()
        markers = firmware["markers"]
        (self.build_dir / COUNTS_FILE).unlink(missing_ok=True)
        plugin = (f"{self.build_dir / PLUGIN},begin=0x{markers['tinyml_marker_begin']:x},"
                  f"end=0x{markers['tinyml_marker_end']:x},out={COUNTS_FILE}")
        if "tinyml_layer_mark" in markers:
            plugin += f",mark=0x{markers['tinyml_layer_mark']:x}"
        self.start_process([
            qemu, "-M", MACHINES[resolved["board"]][0], "-display", "none", "-monitor", "none", "-serial", "stdio",
            "-semihosting-config", "enable=on,target=native", "-kernel", firmware["elf"], "-plugin", plugin,
        ])


if __name__ == "__main__":
    main(QemuHandler(Path(__file__).resolve().parent))
