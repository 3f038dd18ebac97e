"""Project API server for the build machine: the firmware runtime compiled natively with cc,
its channel the process's stdin/stdout. Fast, for tests; no cycle counter."""

from __future__ import annotations

from pathlib import Path

from project_api.arm_build import HOST_CC_HINT, require_tool, run_tool
from project_api.process_channel import ProcessChannelHandler
from project_api.server import main

HOST_CFLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror"]


class HostHandler(ProcessChannelHandler):
    platform_name = "host"
    boards = ["host"]
    template_files = ["board_host.c"]

    def build(self, options: dict) -> None:
        resolved = self.options("build", options)
        self.build_dir.mkdir(exist_ok=True)
        cc = require_tool("cc", HOST_CC_HINT)
        binary = self.build_dir / "firmware"
        includes = [f"-I{d}" for d in self.include_dirs()]
        sources = [str(s) for s in self.model_sources() + [self.directory / "board_host.c"]]
        defines = [f"-D{d}" for d in self.model_defines(resolved)]
        run_tool([cc, *HOST_CFLAGS, *defines, *includes, *sources, "-o", str(binary)], "cc")
        self.write_firmware_info({"binary": str(binary), "flash_bytes": None, "ram_bytes": None, "stack_bytes": None})

    def flash(self, options: dict) -> None:
        self.options("flash", options)
        self.start_process([self.firmware_info()["binary"]])


if __name__ == "__main__":
    main(HostHandler(Path(__file__).resolve().parent))
